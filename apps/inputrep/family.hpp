#pragma once
// The commands that are templates over the model family, included only by family_NAME.cpp, each of
// which apps/inputrep/CMakeLists.txt generates from the family list to instantiate them with INPUTREP_CLI_FAMILY.
#include <sys/resource.h>

#include <iostream>

#include <xtensor/xjson.hpp>

#include <inputrep/report/html.hpp>

#include "commands.hpp"

namespace cli {

inline std::int64_t peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
}

// Timings and memory only with --stats, so the same command prints the same bytes.
inline Json describe(const Result& r, bool stats) {
    Json out = describe_outcome(r);
    out.update(Json{{"top_k", r.top_k_ids()},
                    {"top_k_scores", r.top_k_scores()},
                    {"top_k_text", r.top_k(r.top_k_ids().shape(0))},
                    {"trace", r.trace()},
                    {"restart", r.restart()},
                    {"batch", r.batch()}});
    if (stats) out["steps_per_second"] = r.steps_per_second(), out["peak_rss_bytes"] = peak_rss_bytes();
    return out;
}

// A search's positions: each one's verdict, error, margin (null where no other candidate was
// checked) and the best candidates it checked.
inline Json describe(const SearchResult& r, bool stats) {
    Json out = describe_outcome(r);
    Json positions = Json::array();
    for (const auto& p : r.verification().positions) {
        Json candidates = Json::array();
        for (const auto& c : p.candidates) candidates.push_back({{"id", c.id}, {"error", c.error}});
        positions.push_back({{"verdict", to_string(p.verdict)},
                             {"compared", p.compared},
                             {"error", p.error},
                             {"margin", std::isfinite(p.margin) ? Json(p.margin) : Json(nullptr)},
                             {"checked", p.checked},
                             {"candidates", candidates}});
    }
    out.update(Json{{"positions", positions}, {"batch", r.batch()}});
    if (stats) out["seconds"] = r.seconds(), out["peak_rss_bytes"] = peak_rss_bytes();
    return out;
}

template <Outcome R>
void print(const std::vector<R>& results, const InvertRequest& q) {
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
        // From captured outputs there is no prompt to compare with, nor a shifted input.
        const bool prompted = !r.target().empty();
        if (prompted) std::cout << "target:   " << Json(q.tokenizer->decode(r.target())).dump() << "\n";
        constexpr bool searched = std::same_as<R, SearchResult>;
        if constexpr (searched) {
            std::cout << "top-1:    " << Json(r.decoded()).dump() << "\n";
            std::cout << "distance: " << r.distance() << "\n";
        } else {
            auto lines = r.top_k(r.top_k_ids().shape(0));
            for (std::size_t k = 0; k < lines.size(); ++k)
                std::cout << "top-" << k + 1 << ":    " << Json(lines[k]).dump() << "\n";
            std::cout << "distance: " << r.distance();
            if (!std::isnan(r.shifted_distance()))
                std::cout << " (shifted input: " << r.shifted_distance() << ", "
                          << (r.succeeded_in_distance() ? "closer" : "not closer") << ")";
            std::cout << "\n";
        }
        if (prompted)
            std::cout << "exact:    " << (r.exact() ? "yes" : "no") << " (" << r.exact_tokens() << "/"
                      << r.target().size() << " tokens)\n";
        if constexpr (searched) {
            const Verification& v = r.verification();
            std::cout << "verified: " << (v.verified() ? "yes" : "no") << " (tolerance " << v.tolerance
                      << "; ambiguous at " << Json(v.where(Verdict::ambiguous)).dump() << ", unmatched at "
                      << Json(v.where(Verdict::unmatched)).dump() << ", undetermined at "
                      << Json(v.where(Verdict::undetermined)).dump() << "; " << v.candidates_checked()
                      << " candidates checked)\n";
            if (q.stats)
                std::cout << "speed:    " << r.seconds() << " s (batch " << r.batch() << "), peak RSS "
                          << peak_rss_bytes() / (1 << 20) << " MiB\n";
        } else if (q.stats) {
            std::cout << "speed:    " << r.steps_per_second() << " steps/s (batch " << r.batch() << "), peak RSS "
                      << peak_rss_bytes() / (1 << 20) << " MiB\n";
        }
    }
}

// A run whose distance or decoder scores are not finite found nothing: say where the slice's
// outputs stop being finite (the first hook point, as `hidden` names it), never print null.
template <class M, Outcome R>
void require_finite_results(const M& model, const std::vector<R>& results) {
    for (const auto& r : results) {
        bool finite = std::isfinite(r.distance());
        if constexpr (std::same_as<R, Result>)
            finite = finite && (r.target().empty() || std::isfinite(r.shifted_distance())) &&
                     xt::all(xt::isfinite(r.top_k_scores()));
        if (finite) continue;
        if (!r.target().empty()) {
            at::NoGradGuard no_grad;
            ActivationCache cache;
            model.run_with_cache(at::tensor(r.target(), at::kLong).unsqueeze(0).to(model.placement().device), cache);
            require_finite(cache, "invert");
        }
        if constexpr (std::same_as<R, Result>)
            fail("invert: the distance is ", r.distance(), " and the shifted input's ", r.shifted_distance(),
                 " though the slice's outputs are finite: the metric overflows (weights or inputs of an unusable "
                 "scale?)");
        fail("invert: the searched ids' distance is ", r.distance(),
             " though the slice's outputs are finite: the metric overflows (weights or inputs of an unusable scale?)");
    }
}

// The seed author's sequential script (--no-context): position p of a prompt optimised alone, as a
// one-token input, against the prompt's output at p, which saw tokens 0..p. The steps split into one
// phase per position by Sequential's own focus, so its setting differs from `sequential` by the
// context alone. Its trace is the positions' distances summed; with no shifted input of its own it
// reports none.
template <class M>
std::vector<Result> no_context_results(const M& model, const InvertRequest& q) {
    using Split = Sequential<AnyOptimizer>;
    const AnyOptimizer inner = std::get<Split>(std::get<AnyOrSequentialOptimizer>(q.optimizer)).inner;
    const BlockSlice slice{q.slice.parts.front()};
    Experiment exp(model, slice, q.metric, inner, q.mask, EmbeddingSpace{}, q.decoder);
    const int steps = q.options.steps > 0 ? q.options.steps : M::defaults().steps;
    std::vector<Result> results;
    for (const auto& ids : q.prompts) {
        const auto T = static_cast<std::int64_t>(ids.size());
        at::Tensor outputs;
        {
            at::NoGradGuard no_grad;
            ActivationCache cache;
            model.run_with_cache(at::tensor(ids, at::kLong).unsqueeze(0).to(model.placement().device), cache);
            outputs = cache[hook_name(slice.blocks.end - 1, Hook::resid_post)];
        }
        const std::size_t K = static_cast<std::size_t>(q.options.top_k);
        xt::xtensor<std::int64_t, 2> top_ids = xt::empty<std::int64_t>({K, std::size_t(T)});
        xt::xtensor<float, 2> top_scores = xt::empty<float>({K, std::size_t(T)});
        double distance = 0, seconds = 0;
        int done = 0;
        const int phase = Split::focus(0, steps, T).steps;
        for (std::int64_t p = 0; p < T; ++p) {
            RunOptions o = q.options;
            // With fewer steps than positions Sequential leaves the last ones unstepped; a run needs one.
            o.steps = std::max(1, Split::focus(static_cast<int>(p) * phase, steps, T).steps);
            const Result r = exp.run_from_target(outputs.narrow(1, p, 1), o).front();
            xt::view(top_ids, xt::all(), p) = xt::view(r.top_k_ids(), xt::all(), 0);
            xt::view(top_scores, xt::all(), p) = xt::view(r.top_k_scores(), xt::all(), 0);
            distance += r.distance();
            done += o.steps, seconds += o.steps / r.steps_per_second();
        }
        Result::Fields f{.target = ids,
                         .top_k_ids = top_ids,
                         .top_k_scores = top_scores,
                         .top_k_text = {},
                         .traces = {{static_cast<float>(distance)}},
                         .shifted_distance = std::numeric_limits<double>::quiet_NaN(),
                         .restart = 0,
                         .batch = 1,
                         .steps_per_second = done / seconds};
        for (std::size_t k = 0; k < K; ++k) {
            const xt::xtensor<std::int64_t, 1> line = xt::view(top_ids, k);
            f.top_k_text.push_back(q.tokenizer->decode(std::vector<std::int64_t>(line.begin(), line.end())));
        }
        results.emplace_back(std::move(f));
    }
    return results;
}

template <class M>
Outcomes invert_results(const M& model, const InvertRequest& q) {
    if (q.padded_to && *q.padded_to > model.context_length())
        fail("--pad-to ", *q.padded_to, " pads prompts past the model's context of ", model.context_length(),
             " positions; pad to at most ", model.context_length());
    for (auto& ids : q.prompts) check_ids(model, ids);
    if (std::holds_alternative<AnyExact>(q.optimizer)) {
        auto found = search_results(AnyModel{&model}, q);
        require_finite_results(model, found);
        return found;
    }
    std::vector<Result> results;
    if (q.no_context) {
        return no_context_results(model, q);  // each position's run checked its own distances
    } else {
        std::visit(
            [&](auto space, auto optimizer) {
                auto go = [&](auto slice) {
                    Experiment exp(model, slice, q.metric, optimizer, q.mask, space, q.decoder);
                    exp.with_tokenizer(*q.tokenizer);
                    results = q.target ? exp.run_from_target(load_captured_outputs(SafetensorsFile(*q.target),
                                                                                   q.target_hook, model.placement()),
                                                             q.options)
                                       : exp.run(q.prompts, q.options);
                };
                if (q.plain_blocks)
                    go(BlockSlice{q.slice.parts.front()});
                else
                    go(q.slice);
            },
            q.space, std::get<AnyOrSequentialOptimizer>(q.optimizer));
    }
    require_finite_results(model, results);
    return results;
}

template <class M>
void run_invert(const M& model, const InvertRequest& q) {
    const Outcomes outcomes = invert_results(model, q);
    if (q.options.progress) std::cerr << "\n";
    std::visit(
        [&]<Outcome R>(const std::vector<R>& results) {
            print(results, q);
            if (q.report) report::write(*q.report, report::inversion_report("inputrep invert", results, &*q.tokenizer));
            if (q.csv) write_csv(*q.csv, results);
        },
        outcomes);
}

template <class M>
void run_attribute(const M& model, const AttributeRequest& q) {
    check_ids(model, q.ids);
    auto r = attribute(model, q.ids, q.method, q.options);
    auto text = [&](std::int64_t id) { return Json(q.tokenizer->decode(std::vector<std::int64_t>{id})).dump(); };
    if (q.html) write_attribution_html(*q.html, r, *q.tokenizer);
    if (q.json) {
        std::cout << Json{{"ids", r.ids},
                          {"method", std::string(method_name(r.method))},
                          {"position", r.position},
                          {"predicted", r.predicted},
                          {"predicted_text", q.tokenizer->decode(std::vector<std::int64_t>{r.predicted})},
                          {"scores", std::vector<float>(r.normalised.begin(), r.normalised.end())},
                          {"raw", std::vector<float>(r.raw.begin(), r.raw.end())}}
                         .dump()
                  << "\n";
        return;
    }
    for (std::size_t t = 0; t < r.ids.size(); ++t) std::cout << text(r.ids[t]) << "\t" << r.normalised(t) << "\n";
    std::cout << "predicted next token: " << text(r.predicted) << "\n";
}

template <class M>
void run_bandwidth(const M& model, const BandwidthRequest& q) {
    check_ids(model, q.prompt);
    auto r = bandwidth_sweep(model, BlockSlice{q.blocks}, q.prompt, q.options, q.metric, q.optimizer);
    if (q.report) report::write(*q.report, report::bandwidth_report("inputrep bandwidth", r));
    if (q.json) {
        Json curve = Json::array();
        for (std::size_t i = 0; i < r.curve.shape(0); ++i) curve.push_back({r.curve(i, 0), r.curve(i, 1)});
        std::cout << Json{{"k", r.k}, {"d_model", r.d_model}, {"curve", curve}}.dump() << "\n";
        return;
    }
    std::cout << "smallest k with exact recovery: " << (r.k > 0 ? std::to_string(r.k) : "none") << " of " << r.d_model
              << "\n";
    for (std::size_t i = 0; i < r.curve.shape(0); ++i)
        std::cout << "k=" << r.curve(i, 0) << "\texact " << r.curve(i, 1) << "\n";
}

}  // namespace cli

#define INPUTREP_CLI_FAMILY(Family)                                                \
    namespace cli {                                                                \
    template Outcomes invert_results<Family>(const Family&, const InvertRequest&); \
    template void run_invert<Family>(const Family&, const InvertRequest&);         \
    template void run_attribute<Family>(const Family&, const AttributeRequest&);   \
    template void run_bandwidth<Family>(const Family&, const BandwidthRequest&);   \
    }
