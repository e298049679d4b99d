// Loading a slice against the whole model: block 0 of an 8-block sharded GPT-2-small-shaped
// checkpoint (written once to the temp directory), each tensor read to the end so its pages are
// really resident. Counters: "rss" is the growth of resident memory while loading.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <fstream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

namespace {

std::int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * sysconf(_SC_PAGESIZE);
}

const std::filesystem::path& checkpoint() {
    static const std::filesystem::path dir = [] {
        auto d = std::filesystem::temp_directory_path() / "inputrep-bench-8-blocks";
        if (!std::filesystem::exists(d / "model.safetensors.index.json")) {
            auto model = untrained<GPT2>(config_with<GPT2>("n_layer=8"), {}, 0, Needs{{0, 8}, true, true});
            save_safetensors(model, d, {.max_shard_bytes = 64 << 20});
        }
        return d;
    }();
    return dir;
}

void load_and_touch(benchmark::State& state, const Needs& needs) {
    const auto& dir = checkpoint();
    const auto config = GPT2Config::from_json(read_config(dir));
    std::int64_t growth = 0, bytes = 0;
    for (auto _ : state) {
        const auto before = resident_bytes();
        auto model = GPT2::load(config, Checkpoint::open(dir), {}, needs);
        bytes = 0;
        for (auto& [name, t] : model.named_tensors())
            benchmark::DoNotOptimize(t.sum().item<float>()), bytes += t.nbytes();
        growth = resident_bytes() - before;
    }
    state.counters["rss"] = double(growth);
    state.counters["bytes"] = double(bytes);
}

}  // namespace

BENCHMARK_CAPTURE(load_and_touch, block_0, Needs{{0, 1}, false, false})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load_and_touch, block_0_and_embedding, Needs{{0, 1}, true, false})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load_and_touch, all_8_blocks, Needs{{0, 8}, true, true})->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
