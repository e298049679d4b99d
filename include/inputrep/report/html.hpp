#pragma once
// The reports of `inputrep invert --report` and `inputrep bandwidth --report`: distance per step
// of each inversion with a table of what was recovered, and the bandwidth curve.
#include <cmath>
#include <concepts>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <inputrep/bandwidth.hpp>
#include <inputrep/experiment.hpp>
#include <inputrep/report/page.hpp>
#include <inputrep/report/plot.hpp>

namespace inputrep::report {

// Four significant digits; exponent form outside [0.01, 10^4), where fixed digits would mislead.
inline std::string number(double v) {
    return std::abs(v) >= 1e4 || (v != 0 && std::abs(v) < 1e-2) ? fmt::format("{:.2g}", v) : fmt::format("{:.4g}", v);
}

// A gradient run's report plots each prompt's distance per step; a search has no steps, and its
// table says instead whether every position verified and how many candidates were checked.
template <Outcome R>
std::string inversion_report(std::string_view title, const std::vector<R>& results, const Tokenizer* tokenizer) {
    constexpr bool searched = std::same_as<R, SearchResult>;
    Plot plot{.title = "distance per step", .x_label = "step", .y_label = "distance", .log_y = true};
    std::string rows;
    for (const auto& r : results) {
        const std::string target = tokenizer ? tokenizer->decode(r.target()) : "";
        fmt::format_to(std::back_inserter(rows),
                       "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{} ({}/{})</td><td>{}</td>",
                       escaped{target}, escaped{tokenizer ? r.decoded() : ""}, r.exact() ? "yes" : "no",
                       r.exact_tokens(), r.target().size(), number(r.distance()));
        if constexpr (searched) {
            fmt::format_to(std::back_inserter(rows), "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
                           r.verified() ? "yes" : "no", r.candidates_checked(), number(r.seconds()));
        } else {
            Series s{target.empty() ? fmt::format("prompt {}", plot.series.size() + 1) : target, {}, {}};
            const auto trace = r.trace();
            for (std::size_t i = 0; i < trace.size(); ++i) s.x.push_back(double(i)), s.y.push_back(trace(i));
            plot.series.push_back(std::move(s));
            fmt::format_to(std::back_inserter(rows), "<td>{}</td><td>{}</td></tr>\n", number(r.shifted_distance()),
                           number(r.steps_per_second()));
        }
    }
    const std::string head = searched ? "<th>verified</th><th>candidates checked</th><th>seconds</th>"
                                      : "<th>shifted input</th><th>steps/s</th>";
    return page(
        title,
        fmt::format("{}\n<table>\n<tr><th>target</th><th>top-1</th><th>exact</th><th>distance</th>{}</tr>\n{}</table>",
                    searched ? "" : svg(plot), head, rows));
}

inline std::string bandwidth_report(std::string_view title, const BandwidthResult& b) {
    Series s{"exact fraction", {}, {}};
    for (std::size_t i = 0; i < b.curve.shape(0); ++i) s.x.push_back(b.curve(i, 0)), s.y.push_back(b.curve(i, 1));
    const Plot plot{.title = "exactly recovered tokens against compared neurons",
                    .x_label = "neurons k (Neurons<0, k>)",
                    .y_label = "fraction of tokens",
                    .series = {std::move(s)}};
    return page(title, fmt::format("<p>Smallest neuron count k with exact recovery: <b>{}</b> of {}.</p>\n{}",
                                   b.k > 0 ? std::to_string(b.k) : std::string("none"), b.d_model, svg(plot)));
}

}  // namespace inputrep::report
