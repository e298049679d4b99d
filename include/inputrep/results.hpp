#pragma once
// A run's results as arrays for analysis and export: every trace as [prompt, restart, step],
// reductions over prompts (exact-token rate, distance against the shifted input), and CSV files in
// long format that a notebook or spreadsheet reads as they are.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include <xtensor/xcsv.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/experiment.hpp>

namespace inputrep {

// [prompt, restart, step]. Prompts that ran fewer steps (early stop, another batch) are padded with
// NaN after their final distance.
inline xt::xtensor<float, 3> traces(std::span<const Result> results) {
    require(!results.empty(), "no results");
    std::size_t restarts = 0, steps = 0;
    for (const auto& r : results)
        restarts = std::max(restarts, r.traces().shape(0)), steps = std::max(steps, r.traces().shape(1));
    auto out = xt::xtensor<float, 3>::from_shape({results.size(), restarts, steps});
    out.fill(std::numeric_limits<float>::quiet_NaN());
    for (std::size_t p = 0; p < results.size(); ++p) {
        const auto& t = results[p].traces();
        xt::view(out, p, xt::range(0, t.shape(0)), xt::range(0, t.shape(1))) = t;
    }
    return out;
}

// Over prompts, of any kind of run: the fraction recovered exactly, each prompt's exact-token rate
// (mean and standard deviation); then what applies to the kind: a gradient run's final distance
// against the shifted input's (from prompts, which have one), a search's verified fraction and the
// candidates it checked.
struct Summary {
    std::size_t prompts = 0;
    double exact_prompts = 0;
    double exact_token_rate_mean = 0, exact_token_rate_std = 0;
    std::optional<double> distance_ratio_mean;      // distance / shifted distance
    std::optional<double> closer_than_shifted;      // fraction of prompts that succeed in distance
    std::optional<double> verified;                 // fraction of prompts verified at every position
    std::optional<double> candidates_checked_mean;  // per prompt
};

template <Outcome R>
Summary summarize(std::span<const R> results) {
    require(!results.empty(), "no results to summarise");
    const std::size_t P = results.size();
    auto over_prompts = [&](auto of) {
        xt::xtensor<double, 1> v = xt::empty<double>({P});
        for (std::size_t p = 0; p < P; ++p) v(p) = of(results[p]);
        return v;
    };
    const auto rate = over_prompts([](const R& r) { return double(r.exact_tokens()) / double(r.target().size()); });
    Summary s{P, xt::mean(over_prompts([](const R& r) { return double(r.exact()); }))(), xt::mean(rate)(),
              xt::stddev(rate)()};
    if constexpr (std::same_as<R, Result>) {
        if (std::ranges::all_of(results, [](const R& r) { return !std::isnan(r.shifted_distance()); })) {
            s.distance_ratio_mean =
                xt::mean(over_prompts([](const R& r) { return r.distance() / r.shifted_distance(); }))();
            s.closer_than_shifted =
                xt::mean(over_prompts([](const R& r) { return double(r.succeeded_in_distance()); }))();
        }
    } else {
        s.verified = xt::mean(over_prompts([](const R& r) { return double(r.verified()); }))();
        s.candidates_checked_mean = xt::mean(over_prompts([](const R& r) { return double(r.candidates_checked()); }))();
    }
    return s;
}
template <Outcome R>
Summary summarize(const std::vector<R>& results) {
    return summarize(std::span<const R>(results));
}

namespace detail {

// `header` and `body` as the CSV file `folder`/`name`, through the one file writer: a name that is
// not a regular file is refused, never replaced.
template <class Body>
void write_csv_file(const std::filesystem::path& folder, const char* name, const char* header, Body body) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    require(!ec && std::filesystem::is_directory(folder), "cannot create the CSV folder ", folder.string(), ": ",
            ec.message());
    write_file(folder / name, [&](std::ostream& f) {
        f.precision(9);
        f << header << '\n';
        body(f);
    });
}

// n rows of `width` numbers, row i filled by fill(i, row), as CSV lines.
template <class Fill>
void write_csv_rows(std::ostream& f, std::size_t n, std::size_t width, Fill fill) {
    xt::xtensor<double, 2> rows = xt::empty<double>({n, width});
    for (std::size_t i = 0; i < n; ++i) {
        auto row = xt::row(rows, i);
        fill(i, row);
    }
    xt::dump_csv(f, rows);
}

}  // namespace detail

// A gradient run's two files in `folder`:
//   traces.csv  prompt,restart,step,distance      (every restart's distance per step)
//   top_k.csv   prompt,k,position,id,score,target (the decoder's k-th choice per position; target -1
//               from captured outputs, which have no prompt)
inline void write_csv(const std::filesystem::path& folder, std::span<const Result> results) {
    require(!results.empty(), "no results to write");
    detail::write_csv_file(folder, "traces.csv", "prompt,restart,step,distance", [&](std::ostream& f) {
        for (std::size_t p = 0; p < results.size(); ++p) {
            const auto& t = results[p].traces();
            const std::size_t S = t.shape(1);
            detail::write_csv_rows(f, t.shape(0) * S, 4, [&](std::size_t i, auto& row) {
                row(0) = double(p), row(1) = double(i / S), row(2) = double(i % S), row(3) = t(i / S, i % S);
            });
        }
    });
    detail::write_csv_file(folder, "top_k.csv", "prompt,k,position,id,score,target", [&](std::ostream& f) {
        for (std::size_t p = 0; p < results.size(); ++p) {
            const auto& ids = results[p].top_k_ids();
            const auto& scores = results[p].top_k_scores();
            const auto& target = results[p].target();
            const std::size_t T = ids.shape(1);
            detail::write_csv_rows(f, ids.shape(0) * T, 6, [&](std::size_t i, auto& row) {
                const std::size_t k = i / T, t = i % T;
                row(0) = double(p), row(1) = double(k), row(2) = double(t), row(3) = double(ids(k, t)),
                row(4) = scores(k, t), row(5) = t < target.size() ? double(target[t]) : -1.0;
            });
        }
    });
}

// A search's file in `folder`:
//   positions.csv  prompt,position,id,target,verdict,compared,error,margin,checked
// verdict: 0 verified, 1 ambiguous, 2 unmatched, 3 undetermined (Verdict's order); target -1 and
// margin inf where there is none.
inline void write_csv(const std::filesystem::path& folder, std::span<const SearchResult> results) {
    require(!results.empty(), "no results to write");
    detail::write_csv_file(folder, "positions.csv", "prompt,position,id,target,verdict,compared,error,margin,checked",
                           [&](std::ostream& f) {
                               for (std::size_t p = 0; p < results.size(); ++p) {
                                   const auto& r = results[p];
                                   const auto& positions = r.verification().positions;
                                   detail::write_csv_rows(f, positions.size(), 9, [&](std::size_t t, auto& row) {
                                       const PositionCheck& c = positions[t];
                                       row(0) = double(p), row(1) = double(t), row(2) = double(r.ids()[t]),
                                       row(3) = t < r.target().size() ? double(r.target()[t]) : -1.0,
                                       row(4) = double(c.verdict), row(5) = double(c.compared), row(6) = c.error,
                                       row(7) = c.margin, row(8) = double(c.checked);
                                   });
                               }
                           });
}

template <Outcome R>
void write_csv(const std::filesystem::path& folder, const std::vector<R>& results) {
    write_csv(folder, std::span<const R>(results));
}

}  // namespace inputrep
