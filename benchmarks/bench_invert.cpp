// One inversion step (forward through the slice, gradient to the input, optimizer step), per case:
//   FAMILY-D-bBATCH-tTOKENS[-nBLOCKS][-METRIC][-any]
// named as in benchmarks/python/loops.py, which runs the same loop in PyTorch eager. "-any" runs the
// CLI's runtime-dispatched policies instead of the typed ones. Counter "steps/s" is batch steps per
// second; "prompt-steps/s" multiplies by the batch.
//
// Device and dtype: --device=cpu|cuda|cuda:N and --dtype=f32|bf16|f16 (or INPUTREP_DEVICE /
// INPUTREP_DTYPE; flags win), default cpu and f32. The model and the optimised input live there. On
// CUDA each measured step ends with torch::cuda::synchronize(), so a step is timed to its last
// kernel rather than to its last launch (the Python loop does the same). --min-time=SECONDS sets
// each case's minimum time per repetition (default 1; --benchmark_min_time cannot override it).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include <torch/cuda.h>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

namespace {

struct Case {
    std::string family;
    int d = 64, batch = 1, tokens = 5, layers = 1;
    std::string metric = "l1";
    bool any = false;
};

Case parse(const std::string& name) {
    Case c;
    std::vector<std::string> parts;
    for (std::size_t start = 0, dash; start <= name.size(); start = dash + 1) {
        dash = name.find('-', start);
        if (dash == std::string::npos) dash = name.size();
        parts.push_back(name.substr(start, dash - start));
    }
    c.family = parts[0];
    c.d = std::stoi(parts[1]);
    for (std::size_t i = 2; i < parts.size(); ++i) {
        const auto& p = parts[i];
        auto digits = p.size() > 1 && std::all_of(p.begin() + 1, p.end(), ::isdigit);
        if (digits && p[0] == 'b')
            c.batch = std::stoi(p.substr(1));
        else if (digits && p[0] == 't')
            c.tokens = std::stoi(p.substr(1));
        else if (digits && p[0] == 'n')
            c.layers = std::stoi(p.substr(1));
        else if (p == "any")
            c.any = true;
        else
            c.metric = p;
    }
    return c;
}

// Where the benchmarks run: set once in main() from the flags and the environment.
Placement placement;

template <class Model, class Metric, class Optimizer>
void run_steps(benchmark::State& state, const Model& model, const Case& c, Metric metric, Optimizer optimizer) {
    Experiment exp(model, BlockSlice{{0, c.layers}}, metric, optimizer, AllTokens{}, EmbeddingSpace{}, PseudoInverse{});
    std::vector<std::vector<std::int64_t>> prompts(c.batch);
    for (int p = 0; p < c.batch; ++p)
        for (int t = 0; t < c.tokens; ++t) prompts[p].push_back((p * 7919 + t * 104729) % model.vocab_size());
    RunOptions o;
    o.steps = 1 << 20;  // never reached: the benchmark decides how many steps to time
    auto session = exp.start(prompts, o);
    const bool cuda = placement.device.is_cuda();
    for (int i = 0; i < 3; ++i) session.step();  // warm-up: first-touch allocations
    if (cuda) torch::cuda::synchronize();
    for (auto _ : state) {
        session.step();
        if (cuda) torch::cuda::synchronize();
    }
    state.counters["steps/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["prompt-steps/s"] =
        benchmark::Counter(double(state.iterations()) * c.batch, benchmark::Counter::kIsRate);
}

template <class Model>
void dispatch(benchmark::State& state, const Model& model, const Case& c) {
    if (c.any) return run_steps(state, model, c, AnyMetric::parse(c.metric), AnyOptimizer::parse("gd"));
    if (c.metric == "l1") return run_steps(state, model, c, L1{}, GradientDescent<>{});
    if (c.metric == "l2") return run_steps(state, model, c, L2{}, GradientDescent<>{});
    if (c.metric == "cosine") return run_steps(state, model, c, Cosine{}, GradientDescent<>{});
    if (c.metric == "combined") return run_steps(state, model, c, Combined<>{}, GradientDescent<>{});
    state.SkipWithError(("unknown metric " + c.metric).c_str());
}

// The last model built, reused while consecutive runs ask for the same shape: Google Benchmark calls
// a case once per repetition and per round of its iteration estimate, and the metric and "-any"
// variants share a shape, so building GPT-2 small's 38M-entry embedding (or 12 blocks) each time
// would cost more than the steps measured. Only setup is saved; the timed steps are unchanged.
template <class M, class Build>
const M& cached(const std::string& key, Build&& build) {
    static std::string built_key;
    static std::optional<M> model;
    if (!model || built_key != key) {
        model.reset();
        model.emplace(build());
        built_key = key;
    }
    return *model;
}

void invert_step_or_throw(benchmark::State& state, const std::string& name) {
    const Case c = parse(name);
    at::set_num_threads(static_cast<int>(state.range(0)));
    const std::string key = c.family + "-" + std::to_string(c.d) + "-n" + std::to_string(c.layers);
    if (c.family == "gpt2") {
        auto config =
            config_with<GPT2>("n_embd=" + std::to_string(c.d) + ",n_head=" + std::to_string(std::max(1, c.d / 64)) +
                              ",n_layer=" + std::to_string(c.layers));
        return dispatch(
            state,
            cached<GPT2>(key,
                         [&] {
                             return untrained<GPT2>(config, placement, 0, Needs{{0, c.layers}, true, false});
                         }),
            c);
    }
    if (c.family == "llama") {  // stories260K's shape at d = 64
        auto config = config_with<Llama>(
            "hidden_size=" + std::to_string(c.d) + ",intermediate_size=" + std::to_string(c.d == 64 ? 172 : 4 * c.d) +
            ",num_attention_heads=8,num_key_value_heads=4,vocab_size=512,num_hidden_layers=" +
            std::to_string(c.layers));
        return dispatch(
            state,
            cached<Llama>(key,
                          [&] {
                              return untrained<Llama>(config, placement, 0, Needs{{0, c.layers}, true, false});
                          }),
            c);
    }
    state.SkipWithError(("unknown family " + c.family).c_str());
}

// A case that throws (say, a dtype a path does not support) is reported as that case's error; the
// others still run.
void invert_step(benchmark::State& state, const std::string& name) {
    try {
        invert_step_or_throw(state, name);
    } catch (const std::exception& e) {
        std::string what = e.what();
        state.SkipWithError(what.substr(0, what.find('\n')).c_str());
    }
}

// --device=X / --dtype=X, removed from argv before Google Benchmark reads it; else the environment.
std::string take_option(int& argc, char** argv, const char* name, const char* env, const char* fallback) {
    const std::string prefix = std::string("--") + name + "=";
    std::string value = std::getenv(env) && *std::getenv(env) ? std::getenv(env) : fallback;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
            value = argv[i] + prefix.size();
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    double min_time = 1.0;
    try {
        placement.device = parse_device(take_option(argc, argv, "device", "INPUTREP_DEVICE", "cpu"));
        placement.dtype = parse_dtype(take_option(argc, argv, "dtype", "INPUTREP_DTYPE", "f32"));
        // Each case's MinTime (Google Benchmark's --benchmark_min_time does not override a registered one).
        min_time = std::stod(take_option(argc, argv, "min-time", "INPUTREP_BENCH_MIN_TIME", "1.0"));
        require(min_time > 0, "--min-time must be positive");
        require(!placement.device.is_cuda() || torch::cuda::is_available(), "--device=", placement.device.str(),
                ": this torch sees no CUDA device");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_invert: %s\n", e.what());
        return 2;
    }
    benchmark::AddCustomContext("device", placement.device.str());
    benchmark::AddCustomContext("dtype", std::string(c10::toString(placement.resolved().dtype)));
    const std::vector<std::string> cases{"llama-64-b1-t8",          "llama-64-b1-t8-n5",      "llama-64-b1-t8-any",
                                         "llama-64-b1-t8-l2",       "llama-64-b1-t8-cosine",  "llama-64-b1-t8-combined",
                                         "gpt2-64-b1-t8",           "gpt2-64-b1-t8-any",      "gpt2-64-b1-t8-l2",
                                         "gpt2-64-b1-t8-cosine",    "gpt2-64-b1-t8-combined", "gpt2-768-b1-t5",
                                         "gpt2-768-b1-t5-any",      "gpt2-768-b1-t5-l2",      "gpt2-768-b1-t5-cosine",
                                         "gpt2-768-b1-t5-combined", "gpt2-768-b1-t5-n12",     "gpt2-768-b32-t5"};
    for (const auto& name : cases)
        benchmark::RegisterBenchmark(("invert/" + name).c_str(), [name](benchmark::State& s) { invert_step(s, name); })
            ->ArgName("threads")
            ->Arg(1)
            ->Arg(2)
            ->Unit(benchmark::kMicrosecond)
            ->MinTime(min_time)
            ->UseRealTime();  // rates per wall-clock second: OpenBLAS's worker threads do part of the work
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
