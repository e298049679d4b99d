// Exact inversion per prompt, next to the continuous methods on the same prompts: the C++ side of
// benchmarks/python/sipit.py (same cases, prompts and JSON fields), one JSON line per method.
//
//   build-bench/benchmarks/bench_exact --case stories260K --blocks 5 --prompts 20 --length 20
//   build-bench/benchmarks/bench_exact --case gpt2-small --blocks 12 --prompts 3 --prompt-file ids.txt
//   build-bench/benchmarks/bench_exact --case stories260K --hook blocks.4.attn.hook_k --kind sampled
//       --methods exact-together,exact-prior-together
//   build-bench/benchmarks/bench_exact --case models/llama-brown --kind held-out --corpus brown
//
// Cases: stories260K (the trained model in ../shared; --kind mixed: half the prompts sampled from it
// at temperature 1, half uniform ids), gpt2-small (untrained, d 768, uniform ids), or a folder that
// `inputrep train` wrote (a Llama, a GPT-2 or a masked mixer; --kind held-out: BOS and the first tokens of each
// held-out document of --corpus, the text it did not train on). --hook ends the slice at hook
// points (blocks.N.attn.hook_k: a leaked KV cache) instead of after --blocks. Seconds are wall-clock
// per prompt, prompts run one at a time on --threads intra-op threads, except the -together
// methods': all the prompts in one run (the library's batch of prompts), its time divided by their
// number. exact-prior adds the model's own next-token distribution to the candidate orders;
// exact-stored-f16 and -bf16 search targets computed in f32 and stored coarser, as a GPU capture.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <inputrep/inputrep.hpp>
#include <inputrep/train/corpus.hpp>

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

template <class M>
std::vector<std::int64_t> sampled(const M& model, int length, at::Generator& gen, std::int64_t bos = 1) {
    c10::InferenceMode no_autograd;
    std::vector<std::int64_t> ids{bos};
    while (static_cast<int>(ids.size()) < length) {
        const auto T = static_cast<std::int64_t>(ids.size());
        at::Tensor x = model.embed(at::tensor(ids, at::kLong).unsqueeze(0));
        const auto ctx = model.context(T, true);
        for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
        ids.push_back(
            at::multinomial(at::softmax(model.unembed(x)[0][T - 1], -1), 1, false, gen).template item<std::int64_t>());
    }
    return ids;
}

std::vector<std::int64_t> uniform(std::int64_t vocab, int length, at::Generator& gen) {
    at::Tensor ids = at::randint(vocab, {length}, gen, at::kLong);
    return {ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + length};
}

// BOS and the first length − 1 tokens of the held-out documents, one window per document in turn
// (then the next window of each), as the trainer split them (`run`: trainer_state.json's, with the fraction and BOS).
std::vector<std::vector<std::int64_t>> held_out(const std::filesystem::path& folder, const nlohmann::json& run,
                                                const std::string& corpus, const std::filesystem::path& data, int count,
                                                int length) {
    const auto documents =
        train::read_corpus(train::named_corpus(corpus, data), run.at("held_out").get<double>()).held_out;
    const auto tokenizer = Tokenizer::from_folder(folder);
    std::vector<std::vector<std::int64_t>> encoded;
    for (const auto& d : documents) encoded.push_back(tokenizer.encode(d.text));
    std::vector<std::vector<std::int64_t>> out;
    for (std::size_t window = 0; static_cast<int>(out.size()) < count; ++window) {
        bool any = false;
        for (const auto& ids : encoded) {
            const auto begin = window * std::size_t(length - 1);
            if (static_cast<int>(out.size()) == count || begin + length - 1 > ids.size()) continue;
            std::vector<std::int64_t> p{run.at("bos").get<std::int64_t>()};
            p.insert(p.end(), ids.begin() + begin, ids.begin() + begin + length - 1);
            out.push_back(std::move(p)), any = true;
        }
        require(any, folder.string(), ": the held-out documents give only ", out.size(), " prompts of ", length);
    }
    return out;
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
    std::vector<typename Exp::result_type> results;
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
        const auto& r = results[i];
        exact += r.exact(), tokens += double(r.exact_tokens()), total += double(prompts[i].size());
        if constexpr (std::same_as<typename Exp::result_type, SearchResult>)
            checked += double(r.candidates_checked()), positions += double(prompts[i].size());
    }
    nlohmann::json j{{"exact", exact / double(prompts.size())},
                     {"token_accuracy", tokens / total},
                     {"seconds_per_prompt", together ? seconds.front() / double(prompts.size()) : median(seconds)},
                     {"seconds", seconds}};
    if (positions > 0) j["candidates_checked_percent_of_vocab"] = 100.0 * checked / positions / double(vocab);
    return j;
}

// From targets computed in f32 and stored as `dtype` (run_from_target: no prompt given), all the
// prompts in one run: how many come back exact, and each position's verdict, a verified wrong token
// counted apart.
template <class Model, class S>
nlohmann::json measure_stored(const Model& model, const S& slice, const std::vector<std::vector<std::int64_t>>& prompts,
                              at::ScalarType dtype) {
    const auto P = static_cast<std::int64_t>(prompts.size()), T = static_cast<std::int64_t>(prompts.front().size());
    std::vector<std::int64_t> flat;
    for (auto& p : prompts) flat.insert(flat.end(), p.begin(), p.end());
    at::Tensor target;
    {
        c10::InferenceMode no_autograd;
        const at::Tensor ids = at::tensor(flat, at::kLong).view({P, T});
        target = apply_slice(slice, model, model.embed(ids), model.context(T, true, slice.variant())).to(dtype);
    }
    const auto started = std::chrono::steady_clock::now();
    const auto results = Experiment<Model, S, L1, Exact<GradientRank>>{model, slice}.run_from_target(target);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    double exact = 0, right = 0, checked = 0;
    std::map<std::string, std::int64_t> verdicts;
    std::int64_t wrong_verified = 0;
    for (std::int64_t p = 0; p < P; ++p) {
        const auto& r = results[p];
        exact += r.ids() == prompts[p];
        for (std::int64_t t = 0; t < T; ++t) {
            const auto& pc = r.verification().positions[t];
            const bool ok = r.ids()[t] == prompts[p][t];
            right += ok, checked += double(pc.checked), ++verdicts[std::string(to_string(pc.verdict))];
            wrong_verified += !ok && pc.verdict == Verdict::verified;
        }
    }
    return {{"stored", c10::toString(dtype)},
            {"exact", exact / double(P)},
            {"token_accuracy", right / double(P * T)},
            {"verdicts", verdicts},
            {"wrong_verified", wrong_verified},
            {"tolerance", results.front().verification().tolerance},
            {"candidates_checked_percent_of_vocab",
             100.0 * checked / double(P * T) / double(model.token_embedding().size(0))},
            {"seconds_per_prompt", seconds / double(P)}};
}

template <class Model, class S>
void run_case(const Model& model, const S& slice, const std::vector<std::vector<std::int64_t>>& prompts,
              nlohmann::json base, const std::vector<std::string>& methods, int continuous_steps) {
    const auto vocab = model.token_embedding().size(0);
    for (const auto& method : methods) {
        nlohmann::json j = base;
        j["method"] = method;
        if (method.starts_with("exact-prior") || method == "exact" || method == "exact-together") {
            const Exact<GradientRank> search{.rank = {.self_prior = method.starts_with("exact-prior")}};
            j.update(measure(Experiment<Model, S, L1, Exact<GradientRank>>{model, slice, {}, search}, prompts, {},
                             vocab, method.ends_with("-together")));
        } else if (method == "exact-stored-f16" || method == "exact-stored-bf16") {
            j.update(measure_stored(model, slice, prompts, method.ends_with("bf16") ? at::kBFloat16 : at::kHalf));
        } else if (method == "exact-exhaustive") {
            j.update(measure(Experiment<Model, S, L1, Exact<Exhaustive>>{model, slice}, prompts, {}, vocab));
        } else if (method == "adam") {
            RunOptions o;
            o.steps = continuous_steps;
            j.update(measure(Experiment<Model, S, L1, Adam<>>{model, slice}, prompts, o, vocab));
        } else {
            fail("unknown method ", method,
                 " (exact, exact-together, exact-prior, exact-prior-together, exact-stored-f16, exact-stored-bf16, "
                 "exact-exhaustive, adam)");
        }
        std::cout << j.dump() << std::endl;
    }
}

// The prompts of --kind for a model whose first token is `bos`.
template <class M>
std::vector<std::vector<std::int64_t>> prompts_of(const M& model, const std::string& kind, int count, int length,
                                                  at::Generator& gen, std::int64_t bos) {
    std::vector<std::vector<std::int64_t>> out;
    const auto vocab = model.token_embedding().size(0);
    for (int p = 0; p < count; ++p)
        out.push_back(kind == "sampled" || (kind == "mixed" && p < count / 2) ? sampled(model, length, gen, bos)
                                                                              : uniform(vocab, length, gen));
    return out;
}

// Through --blocks, or up to --hook.
template <class Model>
void run_slices(const Model& model, const std::string& hook, int blocks,
                const std::vector<std::vector<std::int64_t>>& prompts, nlohmann::json base,
                const std::vector<std::string>& methods, int continuous_steps) {
    base["prompts"] = prompts.size(), base["length"] = prompts.front().size();
    if (hook.empty()) return run_case(model, BlockSlice{{0, blocks}}, prompts, base, methods, continuous_steps);
    base["hook"] = hook;
    run_case(model, SliceSpec::up_to(parse_hooks(hook)), prompts, base, methods, continuous_steps);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Exact inversion per prompt against the continuous methods"};
    std::string which = "stories260K", prompt_file, shared = "../shared", hook, kind, corpus = "brown", data = "data";
    int blocks = 5, count = 20, length = 20, threads = 1, continuous_steps = 500;
    std::uint64_t seed = 0;
    std::vector<std::string> methods{"exact", "adam"};
    app.add_option("--case", which, "stories260K, gpt2-small or a folder `inputrep train` wrote");
    app.add_option("--blocks", blocks, "blocks from the first")->check(CLI::Range(1, 12));
    app.add_option("--hook", hook, "end the slice at these hook points, comma-separated (instead of --blocks)");
    app.add_option("--kind", kind,
                   "prompts: mixed (half sampled, half uniform; stories260K's default), sampled, uniform, or held-out "
                   "(a trained folder's default)")
        ->check(CLI::IsMember({"mixed", "sampled", "uniform", "held-out"}));
    app.add_option("--corpus", corpus, "held-out prompts: the corpus the folder trained on (brown or fortunes)");
    app.add_option("--data", data, "where scripts/setup put the corpora");
    app.add_option("--prompts", count, "prompts")->check(CLI::Range(1, 1000));
    app.add_option("--length", length, "tokens per prompt")->check(CLI::Range(2, 1024));
    app.add_option("--seed", seed, "seed of the prompts");
    app.add_option("--prompt-file", prompt_file,
                   "one line of space-separated ids per prompt (replaces --prompts/--length/--seed)");
    app.add_option("--methods", methods,
                   "exact, exact-together (the prompts searched as one batch), exact-prior, exact-prior-together, "
                   "exact-stored-f16, exact-stored-bf16 (f32 targets stored as f16 or bf16, searched together), "
                   "exact-exhaustive, adam")
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
        auto given = prompt_file.empty() ? std::vector<std::vector<std::int64_t>>{} : read_prompts(prompt_file);
        if (which == "stories260K") {
            const auto model = load<Llama>(std::filesystem::path(shared) / "models/stories260K/hf");
            if (kind.empty()) kind = "mixed";
            require(kind != "held-out", "stories260K has no held-out documents here: --kind mixed, sampled or uniform");
            const auto prompts = given.empty() ? prompts_of(model, kind, count, length, gen, 1) : given;
            base["kind"] = kind;
            run_slices(model, hook, blocks, prompts, base, methods, continuous_steps);
        } else if (which == "gpt2-small") {
            const auto model = untrained<GPT2>(GPT2Config{}, {}, seed, Needs{{0, blocks}, true, false});
            const auto prompts = given.empty() ? prompts_of(model, "uniform", count, length, gen, 0) : given;
            run_slices(model, hook, blocks, prompts, base, methods, continuous_steps);
        } else {
            const std::filesystem::path folder = which;
            const auto family = read_config(folder).at("model_type").get<std::string>();
            if (kind.empty()) kind = "held-out";
            base["kind"] = kind;
            auto go = [&]<class M>() {
                const auto model = load<M>(folder);
                // How the trainer split the corpus and began each sequence.
                const auto run = nlohmann::json::parse(std::ifstream(folder / "trainer_state.json")).at("run");
                const auto bos = run.at("bos").get<std::int64_t>();
                const auto prompts = !given.empty()       ? given
                                     : kind == "held-out" ? held_out(folder, run, corpus, data, count, length)
                                                          : prompts_of(model, kind, count, length, gen, bos);
                run_slices(model, hook, blocks, prompts, base, methods, continuous_steps);
            };
            if (family == "llama")
                go.template operator()<Llama>();
            else if (family == "gpt2")
                go.template operator()<GPT2>();
            else if (family == "mixer")
                go.template operator()<Mixer>();
            else
                fail(folder.string(), " is a ", family, " model; this benchmark takes a llama, gpt2 or mixer folder");
        }
    } catch (const std::exception& e) {
        std::cerr << "bench_exact: " << e.what() << "\n";
        return 1;
    }
}
