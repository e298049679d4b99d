#pragma once
// What every command that runs a model shares: the model options, the families, the prompt
// options, and the commands that are templates over the model family. Those are instantiated once
// per family in family_NAME.cpp (generated from the family list), so the program compiles in parallel and never instantiates the
// product of every policy axis: each axis is dispatched at run time.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <inputrep/attribution/attribution.hpp>
#include <inputrep/attribution/html.hpp>
#include <inputrep/bandwidth.hpp>
#include <inputrep/core/device.hpp>
#include <inputrep/core/error.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/experiment.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/io/save_safetensors.hpp>
#include <inputrep/model/families.hpp>
#include <inputrep/model/load.hpp>
#include <inputrep/model/swap.hpp>
#include <inputrep/results.hpp>
#include <inputrep/search/generate.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

#include "cli.hpp"

namespace cli {

using namespace inputrep;
namespace fs = std::filesystem;

// --model/--untrained and where and how it runs.
struct ModelOptions {
    std::string model, untrained, vocab;
    std::uint64_t seed = 0;
    std::optional<std::uint64_t> weights_seed;  // an untrained model's weights (default: seed)
    int threads = 1;
    Placement placement;
    bool ignore_memory = false;     // build the model even when its estimated bytes exceed the available memory
    bool legacy_positions = false;  // GPT-2: wpe[0] at every position, as the author's scripts
};

// --legacy-positions changes GPT-2's absolute position embedding; other families have none.
inline void require_legacy_positions_apply(const std::string& family) {
    if (family != "gpt2")
        throw UsageError("--legacy-positions is GPT-2's (its absolute position embedding); a " + family +
                         " model has none");
}

inline std::shared_ptr<ModelOptions> add_model_options(CLI::App& app) {
    auto o = std::make_shared<ModelOptions>();
    app.add_option("--model", o->model,
                   "Hugging Face model folder (config.json + safetensors, sharded or not), a llama2.c .bin file or a "
                   "GGUF file (llama.cpp's; Llama and GPT-2)");
    app.add_option(
           "--untrained", o->untrained,
           "untrained model FAMILY[:key=value,...] with config.json keys, e.g. gpt2:n_layer=1; its vocab_size is the "
           "tokenizer's when the command reads one")
        ->type_name("FAMILY");
    add_number(
        app, "--seed", o->seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
        "seed for the optimisation's start, and for untrained weights unless --weights-seed is given (default 0)");
    add_number(
        app, "--weights-seed", o->weights_seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
        "seed for an untrained model's weights alone (default: --seed), so that the start can vary over one model");
    add_parsed(app, "--device", o->placement.device, parse_device, "cpu (default), cuda or cuda:N");
    add_parsed(app, "--dtype", o->placement.dtype, parse_dtype,
               "f32 (default), bf16 or f16 (f16 computes as f32 on the CPU)");
    auto* quantize =
        add_parsed(app, "--quantize", o->placement.weights, parse_weights,
                   "the blocks' linear weights in 8 bits: int8 (per output channel, weight-only) or llm.int8 "
                   "(bitsandbytes' LLM.int8: outlier input columns >= 6 in 16 bits); embeddings stay as --dtype");
    app.add_flag_callback(
           "--load-in-8bit", [o] { o->placement.weights = Weights::llm_int8; },
           "the seed's load_in_8bit: the same as --quantize llm.int8")
        ->excludes(quantize);
    app.add_option("--vocab", o->vocab,
                   "tokenizer folder (default: the model folder's own tokenizer, else GPT-2's from scripts/setup)")
        ->type_name("DIR");
    add_number(app, "--threads", o->threads, 1, 256,
               "libtorch intra-op threads (default 1: more compete with OpenBLAS's own threads; docs/performance.md)");
    app.add_flag("--ignore-memory-check", o->ignore_memory,
                 "build the model even when the bytes it needs (estimated from its tensors before any is allocated) "
                 "exceed MemAvailable");
    app.add_flag(
        "--legacy-positions", o->legacy_positions,
        "GPT-2 only: add wpe[0] at every position, as the seed author's scripts did (position_ids on the wrong axis)");
    app.parse_complete_callback([o] {
        if (o->model.empty() == o->untrained.empty())
            throw UsageError("give exactly one of --model DIR and --untrained FAMILY");
        if (o->weights_seed && o->untrained.empty())
            throw UsageError("--weights-seed seeds an untrained model's weights: give --untrained FAMILY");
        // Checked here too (not only when the model is built) so that a sweep refuses the row before any runs.
        if (o->legacy_positions && !o->untrained.empty())
            require_legacy_positions_apply(std::string(text::split_once(o->untrained, ':').first));
    });
    return o;
}

// A folder holds a tokenizer in one of the formats Tokenizer::from_folder reads.
inline bool has_tokenizer(const fs::path& dir) {
    return std::ranges::any_of(std::initializer_list<const char*>{"tokenizer.model", "tokenizer.bin", "tokenizer.json",
                                                                  "vocab.json", "encoder.json"},
                               [&](const char* name) { return fs::exists(dir / name); });
}

// A folder's tokenizer, read once per process: a sweep checks every row, each with its tokenizer,
// before any runs, and copies of a Tokenizer share one vocabulary.
inline Tokenizer tokenizer_from(const fs::path& dir) {
    static std::map<fs::path, Tokenizer> read;
    if (auto it = read.find(dir); it != read.end()) return it->second;
    return read.emplace(dir, Tokenizer::from_folder(dir)).first->second;
}

// --vocab, else the model folder's own tokenizer or a GGUF file's, else GPT-2's vocabulary from scripts/setup.
inline Tokenizer tokenizer_for(const ModelOptions& o) {
    if (!o.vocab.empty()) return tokenizer_from(o.vocab);
    if (!o.model.empty() && fs::is_directory(o.model) && has_tokenizer(o.model)) return tokenizer_from(o.model);
    if (!o.model.empty() && fs::path(o.model).extension() == ".gguf" && fs::is_regular_file(o.model)) {
        static std::map<fs::path, std::optional<Tokenizer>> read;  // once per process, as tokenizer_from
        auto it = read.find(o.model);
        if (it == read.end()) it = read.emplace(o.model, Tokenizer::from_gguf(o.model)).first;
        if (it->second) return *it->second;
    }
    const char* env = std::getenv("INPUTREP_DATA");
    const auto dir = fs::path(env ? env : INPUTREP_DATA_DIR) / "gpt2";
    require(fs::exists(dir), "no tokenizer: pass --vocab DIR, or run scripts/setup to fetch GPT-2's vocabulary into ",
            dir.string());
    return tokenizer_from(dir);
}

// Calls `body.template operator()<M>(config)` with the family and config the options name, building
// nothing. An untrained model takes `vocab_size` (the tokenizer's, when the command read one) unless
// its FAMILY:key=value list sets it.
template <class Body>
void with_config(const ModelOptions& o, std::optional<std::int64_t> vocab_size, Body&& body) {
    std::optional<Json> config;
    std::string family, overrides;
    if (!o.model.empty()) {
        config = model_config(o.model);
        family = config_value<std::string>(*config, "model_type", "");
    } else {
        const auto [name, rest] = text::split_once(o.untrained, ':');
        family = name, overrides = rest.value_or("");
    }
    if (o.legacy_positions) require_legacy_positions_apply(family);
    with_model_type(family, [&]<class M>() {
        using Config = typename M::Config;
        if (config) return body.template operator()<M>(Config::from_json(*config));
        Json json = Config{}.to_json();
        json["model_type"] = family;
        if (vocab_size) json["vocab_size"] = *vocab_size;
        apply_overrides(json, overrides);
        body.template operator()<M>(Config::from_json(json));
    });
}

// What a GGUF file's quantised matrices take kept in their blocks (on the CPU, not asked for 8-bit).
inline std::function<std::optional<std::uint64_t>(const std::string&)> stored_blocks(const ModelOptions& o) {
    if (fs::path(o.model).extension() != ".gguf" || !fs::is_regular_file(o.model) || !keeps_file_blocks(o.placement))
        return {};
    auto file = std::make_shared<GgufFile>(GgufFile::open(o.model));
    return [file](const std::string& name) { return file->block_bytes(name); };
}

// Calls `body(model)` with the model the options name, built with only what `needs` asks for, once
// its estimated bytes are known to fit (or --ignore-memory-check).
template <class Body>
void with_model(const ModelOptions& o, Needs needs, std::optional<std::int64_t> vocab_size, Body&& body) {
    at::set_num_threads(o.threads);
    with_config(o, vocab_size, [&]<class M>(const typename M::Config& cfg) {
        const int depth = cfg.layers();
        if (needs.blocks.end < 0) needs.blocks = {0, depth};
        require(needs.blocks.end <= depth, M::family, " model has ", depth, " blocks; --blocks asks for block ",
                needs.blocks.end - 1);
        if (o.placement.device.is_cpu()) {
            try {
                check_memory(M::estimated_bytes(cfg, needs, o.placement.dtype, o.placement.weights, stored_blocks(o)),
                             o.ignore_memory);
            } catch (const Error& e) {
                const int fits = M::deepest_fitting(cfg, needs, o.placement.dtype, o.placement.weights,
                                                    available_memory_bytes().value_or(0));
                const std::string hint = fits > needs.blocks.begin
                                             ? "; blocks " + std::to_string(needs.blocks.begin) + ".." +
                                                   std::to_string(fits - 1) + " would fit (invert --blocks " +
                                                   std::to_string(needs.blocks.begin) + ":" + std::to_string(fits) + ")"
                                             : "";
                throw Error(std::string(e.what()) + hint + " (--ignore-memory-check; `inputrep memory` plans it)");
            }
        }
        auto model = o.model.empty() ? untrained<M>(cfg, o.placement, o.weights_seed.value_or(o.seed), needs)
                                     : load<M>(o.model, o.placement, needs);
        if constexpr (requires { model.set_legacy_positions(true); })
            if (o.legacy_positions) model.set_legacy_positions(true);
        body(model);
    });
}

// --prompt TEXT or --ids I,J,...
struct PromptOptions {
    std::vector<std::string> prompts, ids;
};

// "I,J,...", checked as the command line is parsed.
inline std::vector<std::int64_t> parse_ids(std::string_view text) {
    std::vector<std::int64_t> ids;
    for (auto id : text::split(text, ',')) ids.push_back(text::to_number<std::int64_t>(id, text));
    return ids;
}

inline std::shared_ptr<PromptOptions> add_prompt_options(CLI::App& app, bool repeatable, const std::string& what) {
    auto o = std::make_shared<PromptOptions>();
    const std::string again = repeatable ? " (repeat for a batch)" : "";
    auto prompt =
        app.add_option("--prompt", o->prompts, what + again)->type_name("TEXT")->expected(1)->allow_extra_args(false);
    auto ids = app.add_option("--ids", o->ids, "token ids I,J,... instead of --prompt" + again)
                   ->type_name("I,J,...")
                   ->expected(1)
                   ->allow_extra_args(false)
                   ->check(parsed_by(parse_ids));
    if (repeatable)
        for (auto* option : {prompt, ids}) option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    return o;
}

inline void require_one_prompt(const PromptOptions& p) {
    if (p.prompts.size() + p.ids.size() != 1) throw UsageError("give exactly one of --prompt TEXT and --ids I,J,...");
}

// The tokenizer a command reads when it need not print text: the one --vocab names, or the
// default when the prompt is text.
inline std::optional<Tokenizer> tokenizer_if_asked(const ModelOptions& o, const PromptOptions& p) {
    require_one_prompt(p);
    if (o.vocab.empty() && p.prompts.empty()) return std::nullopt;
    return tokenizer_for(o);
}

// The one prompt of a command that takes exactly one.
inline std::vector<std::int64_t> one_prompt(const PromptOptions& p, const std::optional<Tokenizer>& tokenizer) {
    require_one_prompt(p);
    auto ids = p.ids.empty() ? tokenizer->encode(p.prompts.front()) : parse_ids(p.ids.front());
    require(!ids.empty(), "empty prompt: no tokens to run");
    return ids;
}

// The same contract as the library's embed: every id names a row of the embedding.
template <class M>
void check_ids(const M& model, const std::vector<std::int64_t>& ids) {
    for (auto id : ids)
        require(id >= 0 && id < model.vocab_size(), "token id ", id, " is outside the vocabulary of ",
                model.vocab_size());
    require(static_cast<std::int64_t>(ids.size()) <= model.context_length(), "prompt of ", ids.size(),
            " tokens is longer than the model's context of ", model.context_length(), " positions");
}

// A run that produced NaN or inf names where it first appeared, in the order the forward pass
// records its hook points, looking only at positions before `positions` (all when unset).
inline void require_finite(const ActivationCache& cache, std::string_view what,
                           std::optional<std::int64_t> positions = std::nullopt) {
    for (const auto& [hook, value] : cache.entries()) {
        auto seen = positions ? value.narrow(1, 0, *positions) : value;
        require(at::isfinite(seen).all().item<bool>(), what, ": ", hook, " holds non-finite values (NaN or inf)");
    }
}

// --optimizer: a continuous method (family.hpp runs it), or exact search (search_results).
using InvertOptimizer = std::variant<AnyOrSequentialOptimizer, AnyExact>;

inline InvertOptimizer parse_invert_optimizer(std::string_view s) {
    if (s.starts_with("exact")) return parse_exact(s);
    return parse_optimizer(s);
}

struct InvertRequest {
    std::vector<std::vector<std::int64_t>> prompts;
    SliceSpec slice;
    bool plain_blocks = true;  // one range, causal, whole blocks: the written-out gradient applies
    AnyMetric metric{L1{}};
    InvertOptimizer optimizer = AnyOrSequentialOptimizer{AnyOptimizer{Adam<>{}}};
    std::optional<fs::path> target;         // exact search from captured outputs: a .safetensors of hook points
    std::string target_hook;                // the tensors in it, comma-separated (default: the slice's ends)
    std::optional<ModelOptions> prior;      // exact search: the model whose next-token distribution orders candidates
    bool plain_exact = false;               // --optimizer exact, whose order the program picks (prepare_invert)
    bool no_context = false;                // --no-context: sequential, each position a one-token input alone
    std::optional<std::int64_t> padded_to;  // --pad-to: every prompt right-padded to this length
    std::optional<fs::path> csv;            // a folder for traces.csv and top_k.csv
    AnyMask mask{AllTokens{}, std::nullopt};
    AnySpace space = EmbeddingSpace{};
    AnyDecoder decoder{PseudoInverse{}};
    RunOptions options;
    std::optional<Tokenizer> tokenizer;
    bool json = false, stats = false;
    std::optional<fs::path> report;
};

struct AttributeRequest {
    std::vector<std::int64_t> ids;
    AttributionMethod method = AttributionMethod::combined;
    AttributionOptions options;
    std::optional<Tokenizer> tokenizer;
    std::optional<fs::path> html;
    bool json = false;
};

struct BandwidthRequest {
    std::vector<std::int64_t> prompt;
    BlockRange blocks{0, 1};
    AnyMetric metric{L1{}};
    AnyOptimizer optimizer{Adam<>{}};
    BandwidthOptions options;
    std::optional<fs::path> report;
    bool json = false;
};

// What an inversion gives, one per prompt: a gradient method's Results or exact search's.
using Outcomes = std::variant<std::vector<Result>, std::vector<SearchResult>>;

// What a run found for one prompt, without its trace and top-k lines: what `invert --json` prints
// first and each line of a sweep holds. A field that does not apply to the kind of run is absent.
template <Outcome R>
Json describe_outcome(const R& r) {
    Json out{{"target", r.target()},
             {"ids", r.ids()},
             {"decoded", r.decoded()},
             {"exact", r.exact()},
             {"exact_tokens", r.exact_tokens()},
             {"distance", r.distance()}};
    if constexpr (std::same_as<R, SearchResult>) {
        const Verification& v = r.verification();
        out["verified"] = v.verified(), out["tolerance"] = v.tolerance,
        out["candidates_checked"] = v.candidates_checked();
        out["ambiguous"] = v.where(Verdict::ambiguous), out["unmatched"] = v.where(Verdict::unmatched);
        out["undetermined"] = v.where(Verdict::undetermined);
    } else if (!std::isnan(r.shifted_distance())) {  // a captured target has no shifted input
        out["shifted_distance"] = r.shifted_distance();
    }
    return out;
}

// An invert command line, parsed and checked: the model to build and the request to run on it.
struct InvertRun {
    ModelOptions model;
    InvertRequest request;
};

// `inputrep invert ARGS...` (ARGS after the command's name) parsed and checked as the command does,
// without running it: the sweep checks every row this way before any runs. Mistakes throw what the
// command would (CLI::ParseError, UsageError, inputrep::Error). invert.cpp.
InvertRun parse_invert(const std::vector<std::string>& args);
// Builds the model and runs the request in this process. invert.cpp.
Outcomes run_inversion(const InvertRun& run);

// Exact search (--optimizer exact...): search.cpp, the one file of the program that includes the
// search (search/exact.hpp), compiles it for every family.
std::vector<SearchResult> search_results(AnyModel model, const InvertRequest& q);

// Defined in family.hpp, instantiated for each family in its generated family_NAME.cpp.
template <class M>
Outcomes invert_results(const M& model, const InvertRequest& q);
template <class M>
void run_invert(const M& model, const InvertRequest& q);
template <class M>
void run_attribute(const M& model, const AttributeRequest& q);
template <class M>
void run_bandwidth(const M& model, const BandwidthRequest& q);

}  // namespace cli
