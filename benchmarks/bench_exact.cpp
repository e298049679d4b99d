// Exact inversion per prompt, next to the continuous methods on the same prompts: the C++ side of
// benchmarks/python/sipit.py (same cases, prompts and JSON fields), one JSON line per method.
//
//   build-bench/benchmarks/bench_exact --case stories260K --blocks 5 --prompts 20 --length 20
//   build-bench/benchmarks/bench_exact --case gpt2-small --blocks 12 --prompts 3 --prompt-file ids.txt
//
// Cases: stories260K (the trained model in ../shared, half the prompts sampled from it at temperature
// 1, half uniform ids) and gpt2-small (untrained, d 768, uniform ids). Seconds are wall-clock per
// prompt, prompts run one at a time on --threads intra-op threads, except exact-together's: all the
// prompts in one run (the library's batch of prompts), its time divided by their number.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

namespace {

std::vector<std::vector<std::int64_t>> read_prompts(const std::string& path) {
    std::ifstream in(path);
    require(in.good(), "cannot read ", path);
    std::vector<std::vector<std::int64_t>> out;
    for (std::string line; std::getline(in, line);) {
        std::istringstream s(line);
        std::vector<std::int64_t> ids;
        for (std::int64_t id; s >> id;) ids.push_back(id);
        if (!ids.empty()) out.push_back(ids);
    }
    return out;
}

std::vector<std::int64_t> sampled(const Llama& model, int length, at::Generator& gen) {
    c10::InferenceMode no_autograd;
    std::vector<std::int64_t> ids{1};
    while (static_cast<int>(ids.size()) < length) {
        const auto T = static_cast<std::int64_t>(ids.size());
        at::Tensor x = model.embed(at::tensor(ids, at::kLong).unsqueeze(0));
        const auto ctx = model.context(T, true);
        for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
        ids.push_back(at::multinomial(at::softmax(model.unembed(x)[0][T - 1], -1), 1, false, gen).item<std::int64_t>());
    }
    return ids;
}

std::vector<std::int64_t> uniform(std::int64_t vocab, int length, at::Generator& gen) {
    at::Tensor ids = at::randint(vocab, {length}, gen, at::kLong);
    return {ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + length};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// One prompt at a time (seconds per prompt: the median), or all in one run(), the prompts searched
// together (seconds per prompt: the run's over the prompts).
template <class Exp>
nlohmann::json measure(const Exp& exp, const std::vector<std::vector<std::int64_t>>& prompts, const RunOptions& options,
                       std::int64_t vocab, bool together = false) {
    std::vector<double> seconds;
    std::vector<Result> results;
    auto timed = [&](auto&& run) {
        const auto started = std::chrono::steady_clock::now();
        run();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
    if (together)
        timed([&] { results = exp.run(prompts, options); });
    else
        for (auto& p : prompts) timed([&] { results.push_back(exp.run(p, options)); });
    double exact = 0, tokens = 0, total = 0, checked = 0, positions = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const Result& r = results[i];
        exact += r.exact(), tokens += double(r.exact_tokens()), total += double(prompts[i].size());
        if (r.verification())
            checked += double(r.verification()->candidates_checked()), positions += double(prompts[i].size());
    }
    nlohmann::json j{{"exact", exact / double(prompts.size())},
                     {"token_accuracy", tokens / total},
                     {"seconds_per_prompt", together ? seconds.front() / double(prompts.size()) : median(seconds)},
                     {"seconds", seconds}};
    if (positions > 0) j["candidates_checked_percent_of_vocab"] = 100.0 * checked / positions / double(vocab);
    return j;
}

template <class Model, class S>
void run_case(const Model& model, const S& slice, const std::vector<std::vector<std::int64_t>>& prompts,
              nlohmann::json base, const std::vector<std::string>& methods, int continuous_steps) {
    const auto vocab = model.token_embedding().size(0);
    for (const auto& method : methods) {
        nlohmann::json j = base;
        j["method"] = method;
        if (method == "exact" || method == "exact-together") {
            j.update(measure(Experiment<Model, S, L1, Exact<GradientRank>>{model, slice}, prompts, {}, vocab,
                             method == "exact-together"));
        } else if (method == "exact-exhaustive") {
            j.update(measure(Experiment<Model, S, L1, Exact<Exhaustive>>{model, slice}, prompts, {}, vocab));
        } else if (method == "adam") {
            RunOptions o;
            o.steps = continuous_steps;
            j.update(measure(Experiment<Model, S, L1, Adam<>>{model, slice}, prompts, o, vocab));
        } else {
            fail("unknown method ", method, " (exact, exact-together, exact-exhaustive, adam)");
        }
        std::cout << j.dump() << std::endl;
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Exact inversion per prompt against the continuous methods"};
    std::string which = "stories260K", prompt_file, shared = "../shared";
    int blocks = 5, count = 20, length = 20, threads = 1, continuous_steps = 500;
    std::uint64_t seed = 0;
    std::vector<std::string> methods{"exact", "adam"};
    app.add_option("--case", which, "stories260K or gpt2-small")->check(CLI::IsMember({"stories260K", "gpt2-small"}));
    app.add_option("--blocks", blocks, "blocks from the first")->check(CLI::Range(1, 12));
    app.add_option("--prompts", count, "prompts")->check(CLI::Range(1, 1000));
    app.add_option("--length", length, "tokens per prompt")->check(CLI::Range(1, 1024));
    app.add_option("--seed", seed, "seed of the prompts");
    app.add_option("--prompt-file", prompt_file,
                   "one line of space-separated ids per prompt (replaces --prompts/--length/--seed)");
    app.add_option("--methods", methods,
                   "exact, exact-together (the prompts searched as one batch), exact-exhaustive, adam")
        ->delimiter(',');
    app.add_option("--continuous-steps", continuous_steps, "steps of the continuous method")
        ->check(CLI::Range(1, 100000));
    app.add_option("--threads", threads, "intra-op threads")->check(CLI::Range(1, 64));
    app.add_option("--shared", shared, "the shared/ folder with stories260K");
    CLI11_PARSE(app, argc, argv);
    try {
        at::set_num_threads(threads);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        nlohmann::json base{{"case", which}, {"blocks", blocks}, {"threads", threads}};
        if (which == "stories260K") {
            const auto model = load<Llama>(std::filesystem::path(shared) / "models/stories260K/hf");
            auto prompts = prompt_file.empty() ? std::vector<std::vector<std::int64_t>>{} : read_prompts(prompt_file);
            for (int p = 0; prompt_file.empty() && p < count; ++p)
                prompts.push_back(p < count / 2 ? sampled(model, length, gen) : uniform(512, length, gen));
            base["prompts"] = prompts.size(), base["length"] = prompts.front().size();
            run_case(model, BlockSlice{{0, blocks}}, prompts, base, methods, continuous_steps);
        } else {
            const auto model = untrained<GPT2>(GPT2Config{}, {}, seed, Needs{{0, blocks}, true, false});
            auto prompts = prompt_file.empty() ? std::vector<std::vector<std::int64_t>>{} : read_prompts(prompt_file);
            for (int p = 0; prompt_file.empty() && p < count; ++p) prompts.push_back(uniform(50257, length, gen));
            base["prompts"] = prompts.size(), base["length"] = prompts.front().size();
            run_case(model, BlockSlice{{0, blocks}}, prompts, base, methods, continuous_steps);
        }
    } catch (const std::exception& e) {
        std::cerr << "bench_exact: " << e.what() << "\n";
        return 1;
    }
}
