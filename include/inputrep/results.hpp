#pragma once
// A run's results as arrays for analysis and export: every trace as [prompt, restart, step],
// reductions over prompts (exact-token rate, distance against the shifted input), and CSV files in
// long format that a notebook or spreadsheet reads as they are.
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
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

// Over prompts: the fraction recovered exactly, each prompt's exact-token rate (mean and standard
// deviation), and the final distance against the shifted input's.
struct Summary {
    std::size_t prompts = 0;
    double exact_prompts = 0;
    double exact_token_rate_mean = 0, exact_token_rate_std = 0;
    double distance_ratio_mean = 0;  // distance / shifted distance
    double closer_than_shifted = 0;  // fraction of prompts that succeed in distance
};

inline Summary summarize(std::span<const Result> results) {
    require(!results.empty(), "no results to summarise");
    const std::size_t P = results.size();
    xt::xtensor<double, 1> rate = xt::empty<double>({P}), ratio = xt::empty<double>({P}),
                           exact = xt::empty<double>({P}), closer = xt::empty<double>({P});
    for (std::size_t p = 0; p < P; ++p) {
        const auto& r = results[p];
        rate(p) = double(r.exact_tokens()) / double(r.target().size());
        ratio(p) = r.distance() / r.shifted_distance();
        exact(p) = r.exact();
        closer(p) = r.succeeded_in_distance();
    }
    return {P, xt::mean(exact)(), xt::mean(rate)(), xt::stddev(rate)(), xt::mean(ratio)(), xt::mean(closer)()};
}

// Two files in `folder`:
//   traces.csv  prompt,restart,step,distance      (every restart's distance per step)
//   top_k.csv   prompt,k,position,id,score,target (the decoder's k-th choice per position)
inline void write_csv(const std::filesystem::path& folder, std::span<const Result> results) {
    require(!results.empty(), "no results to write");
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    require(!ec && std::filesystem::is_directory(folder), "cannot create the CSV folder ", folder.string(), ": ",
            ec.message());
    // Each file through the one writer: a name that is not a regular file is refused, never replaced.
    auto write = [&](const char* name, const char* header, auto body) {
        write_file(folder / name, [&](std::ostream& f) {
            f.precision(9);
            f << header << '\n';
            body(f);
        });
    };
    // n rows of `width` numbers, row i filled by fill(i, row), as CSV lines.
    auto write_rows = [](std::ostream& f, std::size_t n, std::size_t width, auto fill) {
        xt::xtensor<double, 2> rows = xt::empty<double>({n, width});
        for (std::size_t i = 0; i < n; ++i) {
            auto row = xt::row(rows, i);
            fill(i, row);
        }
        xt::dump_csv(f, rows);
    };
    write("traces.csv", "prompt,restart,step,distance", [&](std::ostream& f) {
        for (std::size_t p = 0; p < results.size(); ++p) {
            const auto& t = results[p].traces();
            const std::size_t S = t.shape(1);
            write_rows(f, t.shape(0) * S, 4, [&](std::size_t i, auto& row) {
                row(0) = double(p), row(1) = double(i / S), row(2) = double(i % S), row(3) = t(i / S, i % S);
            });
        }
    });
    write("top_k.csv", "prompt,k,position,id,score,target", [&](std::ostream& f) {
        for (std::size_t p = 0; p < results.size(); ++p) {
            const auto& ids = results[p].top_k_ids();
            const auto& scores = results[p].top_k_scores();
            const auto& target = results[p].target();
            const std::size_t T = ids.shape(1);
            write_rows(f, ids.shape(0) * T, 6, [&](std::size_t i, auto& row) {
                const std::size_t k = i / T, t = i % T;
                row(0) = double(p), row(1) = double(k), row(2) = double(t), row(3) = double(ids(k, t)),
                row(4) = scores(k, t), row(5) = double(target[t]);
            });
        }
    });
}

}  // namespace inputrep
