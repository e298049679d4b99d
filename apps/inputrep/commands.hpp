#pragma once
// The commands that run a model, as templates over the model family. Each family's translation
// unit (family_*.cpp) instantiates them once, so the program compiles in parallel and never
// instantiates the product of every policy axis: each axis is dispatched at run time here.
#include <sys/resource.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <xtensor/xjson.hpp>

#include <inputrep/inputrep.hpp>
#include <inputrep/report/html.hpp>

namespace cli {

using namespace inputrep;

inline std::int64_t peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
}

struct InvertRequest {
    std::vector<std::vector<std::int64_t>> prompts;
    SliceSpec slice;
    bool plain_blocks = true;  // one range, causal, whole blocks: the written-out gradient applies
    AnyMetric metric;
    AnyOptimizer optimizer;
    bool sequential = false;
    AnyMask mask;
    bool vocabulary_space = false;
    AnyDecoder decoder;
    RunOptions options;
    Tokenizer tokenizer;
    bool json = false, stats = false;
    std::optional<std::filesystem::path> report;
};

struct AttributeRequest {
    std::vector<std::int64_t> ids;
    AttributionMethod method;
    AttributionOptions options;
    Tokenizer tokenizer;
    std::optional<std::filesystem::path> html;
    bool json = false;
};

struct BandwidthRequest {
    std::vector<std::int64_t> prompt;
    BlockRange blocks;
    AnyMetric metric;
    AnyOptimizer optimizer;
    BandwidthOptions options;
    std::optional<std::filesystem::path> report;
    bool json = false;
};

inline Json describe(const Result& r, bool stats) {
    Json out{{"target", r.target()},
             {"ids", r.ids()},
             {"top_k", r.top_k_ids()},
             {"top_k_scores", r.top_k_scores()},
             {"top_k_text", r.top_k(r.top_k_ids().shape(0))},
             {"decoded", r.decoded()},
             {"exact", r.exact()},
             {"exact_tokens", r.exact_tokens()},
             {"distance", r.distance()},
             {"shifted_distance", r.shifted_distance()},
             {"trace", r.trace()},
             {"steps_per_second", r.steps_per_second()},
             {"restart", r.restart()},
             {"batch", r.batch()}};
    if (stats) out["peak_rss_bytes"] = peak_rss_bytes();
    return out;
}

inline void print(const std::vector<Result>& results, const InvertRequest& q) {
    if (q.json) {
        if (results.size() == 1) {
            std::cout << describe(results[0], q.stats).dump() << "\n";
        } else {
            Json all = Json::array();
            for (auto& r : results) all.push_back(describe(r, q.stats));
            std::cout << Json{{"results", all}}.dump() << "\n";
        }
        return;
    }
    for (auto& r : results) {
        std::cout << "target:   " << Json(q.tokenizer.decode(r.target())).dump() << "\n";
        auto lines = r.top_k(r.top_k_ids().shape(0));
        for (std::size_t k = 0; k < lines.size(); ++k) std::cout << "top-" << k + 1 << ":    " << Json(lines[k]).dump() << "\n";
        std::cout << "distance: " << r.distance() << " (shifted input: " << r.shifted_distance() << ", "
                  << (r.succeeded_in_distance() ? "closer" : "not closer") << ")\n"
                  << "exact:    " << (r.exact() ? "yes" : "no") << " (" << r.exact_tokens() << "/" << r.target().size() << " tokens)\n";
        if (q.stats)
            std::cout << "speed:    " << r.steps_per_second() << " steps/s (batch " << r.batch() << "), peak RSS "
                      << peak_rss_bytes() / (1 << 20) << " MiB\n";
    }
}

template <class M>
void invert(const M& model, const InvertRequest& q) {
    auto go = [&](auto space, auto slice, auto optimizer) {
        Experiment exp(model, slice, q.metric, optimizer, q.mask, space, q.decoder);
        exp.with_tokenizer(q.tokenizer);
        auto results = exp.run(q.prompts, q.options);
        if (q.options.progress) std::cerr << "\n";
        print(results, q);
        if (q.report) report::write(*q.report, report::inversion_report("inputrep invert", results, &q.tokenizer));
    };
    auto with_optimizer = [&](auto space, auto slice) {
        if (q.sequential) go(space, slice, Sequential<AnyOptimizer>{q.optimizer});
        else go(space, slice, q.optimizer);
    };
    auto with_slice = [&](auto space) {
        if (q.plain_blocks) with_optimizer(space, BlockSlice{q.slice.parts.front()});
        else with_optimizer(space, q.slice);
    };
    if (q.vocabulary_space) with_slice(VocabularySpace{});
    else with_slice(EmbeddingSpace{});
}

template <class M>
void attribute(const M& model, const AttributeRequest& q) {
    auto r = inputrep::attribute(model, q.ids, q.method, q.options);
    if (q.html) write_attribution_html(*q.html, r, q.tokenizer);
    if (q.json) {
        std::cout << Json{{"ids", r.ids},
                          {"method", std::string(method_name(r.method))},
                          {"position", r.position},
                          {"predicted", r.predicted},
                          {"predicted_text", q.tokenizer.decode(std::vector<std::int64_t>{r.predicted})},
                          {"scores", std::vector<float>(r.normalised.begin(), r.normalised.end())},
                          {"raw", std::vector<float>(r.raw.begin(), r.raw.end())}}
                         .dump()
                  << "\n";
        return;
    }
    for (std::size_t t = 0; t < r.ids.size(); ++t)
        std::cout << Json(q.tokenizer.decode(std::vector<std::int64_t>{r.ids[t]})).dump() << "\t" << r.normalised(t) << "\n";
    std::cout << "predicted next token: " << Json(q.tokenizer.decode(std::vector<std::int64_t>{r.predicted})).dump() << "\n";
}

template <class M>
void bandwidth(const M& model, const BandwidthRequest& q) {
    auto r = bandwidth_sweep(model, BlockSlice{q.blocks}, q.prompt, q.options, q.metric, q.optimizer);
    if (q.report) report::write(*q.report, report::bandwidth_report("inputrep bandwidth", r));
    if (q.json) {
        Json curve = Json::array();
        for (std::size_t i = 0; i < r.curve.shape(0); ++i) curve.push_back({r.curve(i, 0), r.curve(i, 1)});
        std::cout << Json{{"k", r.k}, {"d_model", r.d_model}, {"curve", curve}}.dump() << "\n";
        return;
    }
    std::cout << "smallest k with exact recovery: " << (r.k > 0 ? std::to_string(r.k) : "none") << " of " << r.d_model << "\n";
    for (std::size_t i = 0; i < r.curve.shape(0); ++i) std::cout << "k=" << r.curve(i, 0) << "\texact " << r.curve(i, 1) << "\n";
}

// The families the program runs; each has a translation unit defining these four functions.
#define INPUTREP_CLI_DECLARE(Family)                                  \
    void run_invert(const Family&, const InvertRequest&);            \
    void run_attribute(const Family&, const AttributeRequest&);      \
    void run_bandwidth(const Family&, const BandwidthRequest&);
#define INPUTREP_CLI_DEFINE(Family)                                                                          \
    void run_invert(const Family& m, const InvertRequest& q) { invert(m, q); }                             \
    void run_attribute(const Family& m, const AttributeRequest& q) { attribute(m, q); }                   \
    void run_bandwidth(const Family& m, const BandwidthRequest& q) { bandwidth(m, q); }

INPUTREP_CLI_DECLARE(GPT2)
INPUTREP_CLI_DECLARE(Llama)
INPUTREP_CLI_DECLARE(GPTJ)
INPUTREP_CLI_DECLARE(Mixer)

}  // namespace cli
