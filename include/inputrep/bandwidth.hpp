#pragma once
// The seed's bandwidth experiment ("Noise on a Discreet Channel"): how many output neurons must be
// compared for the prompt to be recovered exactly? Bisection over k for Neurons<0, k>, assuming more
// neurons never hurt, plus the exactly-recovered-token fraction at every k tried.
#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <inputrep/experiment.hpp>

namespace inputrep {

struct BandwidthResult {
    std::int64_t k = -1;  // smallest k with exact recovery; -1 when even all neurons fail
    std::int64_t d_model = 0;
    xt::xtensor<double, 2> curve;  // rows (k, exactly recovered token fraction), k ascending
};

struct BandwidthOptions {
    RunOptions run;
    std::vector<std::int64_t> grid;  // extra k values for the curve; empty: 8 evenly spaced ones
    std::function<void(std::int64_t k, double fraction)> progress;
};

// Metric and optimizer as in any experiment; the mask is Neurons<0, k> on all tokens.
template <class Model, Slice S, Metric Mt = L1, Optimizer Op = Adam<>>
BandwidthResult bandwidth_sweep(const Model& model, S slice, std::span<const std::int64_t> prompt,
                                const BandwidthOptions& options = {}, Mt metric = {}, Op optimizer = {}) {
    const std::int64_t d = model.d_model();
    std::map<std::int64_t, double> fraction;  // k -> exact token fraction
    auto measure = [&](std::int64_t k) {
        if (auto it = fraction.find(k); it != fraction.end()) return it->second;
        Experiment<Model, S, Mt, Op, NeuronRange> exp(model, slice, metric, optimizer, NeuronRange{0, k});
        auto r = exp.run(prompt, options.run);
        const double f = double(r.exact_tokens()) / double(prompt.size());
        if (options.progress) options.progress(k, f);
        return fraction[k] = f;
    };
    BandwidthResult result;
    result.d_model = d;
    if (measure(d) == 1.0) {
        std::int64_t lo = 0, hi = d;  // invariant: k = hi recovers, k = lo does not (k = 0 compares nothing)
        while (hi - lo > 1) {
            const auto mid = lo + (hi - lo) / 2;
            (measure(mid) == 1.0 ? hi : lo) = mid;
        }
        result.k = hi;
    }
    auto grid = options.grid;
    if (grid.empty())
        for (int i = 1; i <= 8; ++i) grid.push_back(std::max<std::int64_t>(1, d * i / 8));
    for (auto k : grid) measure(std::clamp<std::int64_t>(k, 1, d));
    result.curve = xt::xtensor<double, 2>::from_shape({fraction.size(), 2});
    std::size_t row = 0;
    for (auto [k, f] : fraction) result.curve(row, 0) = double(k), result.curve(row, 1) = f, ++row;
    return result;
}

}  // namespace inputrep
