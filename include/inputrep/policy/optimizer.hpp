#pragma once
// Optimizer axis: how the input moves given the gradient of the summed distance. Both keep their
// state in preallocated tensors and update in place, so a step allocates nothing of its own.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <concepts>
#include <optional>
#include <string_view>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/core/schedule.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/kernels/cpu.hpp>

namespace inputrep {

// Rates fixed in the type: GradientDescent<Linear<2.0, 0.2>>.
template <double Start, double Stop>
struct Linear {
    static constexpr std::optional<Schedule> rates() { return Schedule{Start, Stop}; }
};
// Rates from the run options, else the model family's defaults.
struct DefaultRates {
    static constexpr std::optional<Schedule> rates() { return std::nullopt; }
};

enum class OptimizerKind { gradient_descent, adam };

// x ← x − lr·g: plain steps, no momentum, clipping or projection (the author's loop).
template <class Rates = DefaultRates>
struct GradientDescent {
    static constexpr OptimizerKind kind = OptimizerKind::gradient_descent;
    std::optional<Schedule> rates() const { return Rates::rates(); }
    struct State {
        void step(at::Tensor& x, const at::Tensor& g, double lr) { x.sub_(g, lr); }
    };
    State start(const at::Tensor&) const { return {}; }
};

// Adam (Kingma & Ba 2015), β = (0.9, 0.999), ε = 1e-8, as torch.optim.Adam computes it.
template <class Rates = DefaultRates>
struct Adam {
    static constexpr OptimizerKind kind = OptimizerKind::adam;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    std::optional<Schedule> rates() const { return Rates::rates(); }
    struct State {
        double beta1, beta2, eps;
        at::Tensor m, v, denom;
        int t = 0;
        void step(at::Tensor& x, const at::Tensor& g, double lr) {
            ++t;
            if (cpu::applies(x) && x.is_contiguous()) return cpu::adam_step(x, g, m, v, beta1, beta2, eps, lr, t);
            m.mul_(beta1).add_(g, 1 - beta1);
            v.mul_(beta2).addcmul_(g, g, 1 - beta2);
            const double bias1 = 1 - std::pow(beta1, t), bias2 = 1 - std::pow(beta2, t);
            at::sqrt_out(denom, v).div_(std::sqrt(bias2)).add_(eps);
            x.addcdiv_(m, denom, -lr / bias1);
        }
    };
    State start(const at::Tensor& x) const {
        return {beta1, beta2, eps, at::zeros_like(x), at::zeros_like(x), at::empty_like(x)};
    }
};

template <class O>
inline OptimizerKind kind_of(const O& o) {
    if constexpr (requires { o.chosen(); })
        return o.chosen();
    else
        return O::kind;
}

// Which output position a step compares, and where the step is in its rate schedule. An optimizer
// without a focus() compares every position over one schedule of all the steps.
struct Focus {
    int position = -1;  // -1: every position
    int step = 0, steps = 0;
};

// One position at a time (the seed's sequential representation): the steps are split into one
// phase per token; phase p optimises position p alone with a fresh Inner optimizer (its rate
// schedule restarting), comparing output position p. Earlier positions keep what their phase
// found; in a causal slice later positions cannot affect output p.
template <class Inner = Adam<>>
struct Sequential {
    Inner inner{};
    OptimizerKind chosen() const { return kind_of(inner); }
    std::optional<Schedule> rates() const { return inner.rates(); }
    static Focus focus(int done, int steps, std::int64_t length) {
        const int phase = static_cast<int>((steps + length - 1) / length), position = done / phase,
                  first = position * phase;
        return {position, done - first, std::min(phase, steps - first)};
    }
    struct State {
        Inner inner;
        int position = -1;
        std::optional<typename Inner::State> current;
        void step_at(at::Tensor& x, const at::Tensor& g, double lr, int p) {
            at::Tensor xp = x.narrow(1, p, 1), gp = g.narrow(1, p, 1);
            if (p != position) position = p, current.emplace(inner.start(xp));
            current->step(xp, gp, lr);
        }
    };
    State start(const at::Tensor&) const { return {inner, -1, std::nullopt}; }
};

// An optimizer that compares one output position at a time (Sequential).
template <class O>
concept Focusing = requires(int n, std::int64_t length) {
    { O::focus(n, n, length) } -> std::same_as<Focus>;
};

template <class O>
Focus focus_of(int done, int steps, std::int64_t length) {
    if constexpr (Focusing<O>)
        return O::focus(done, steps, length);
    else
        return {-1, done, steps};
}

template <class O>
concept Optimizer = requires(const O& o, const at::Tensor& x) {
    { o.rates() } -> std::same_as<std::optional<Schedule>>;
    {o.start(x)};
};

// Chosen at run time: "gd" or "adam", with the family's default rates unless the options set them.
struct AnyOptimizer {
    std::variant<GradientDescent<>, Adam<>> optimizer;
    std::optional<Schedule> rates() const { return std::nullopt; }
    OptimizerKind chosen() const {
        return std::visit([](const auto& o) { return std::decay_t<decltype(o)>::kind; }, optimizer);
    }
    struct State {
        std::variant<GradientDescent<>::State, Adam<>::State> state;
        void step(at::Tensor& x, const at::Tensor& g, double lr) {
            std::visit([&](auto& s) { s.step(x, g, lr); }, state);
        }
    };
    State start(const at::Tensor& x) const {
        return std::visit([&](const auto& o) { return State{o.start(x)}; }, optimizer);
    }
    static AnyOptimizer parse(std::string_view s) {
        if (s == "gd") return {GradientDescent<>{}};
        if (s == "adam") return {Adam<>{}};
        fail("unknown optimizer \"", s, "\" (expected gd or adam)");
    }
};

// ---- Parser: the CLI's --optimizer, as text -------------------------------------------------------

// An optimizer over every position at once, or one position at a time.
using AnyOrSequentialOptimizer = std::variant<AnyOptimizer, Sequential<AnyOptimizer>>;

// "adam", "gd", "sequential" (Adam, one position at a time) or "sequential:adam|gd".
inline AnyOrSequentialOptimizer parse_optimizer(std::string_view s) {
    constexpr std::string_view sequential = "sequential";
    if (s == sequential) return Sequential<AnyOptimizer>{AnyOptimizer::parse("adam")};
    if (s.starts_with(sequential) && s.substr(sequential.size()).starts_with(':'))
        return Sequential<AnyOptimizer>{AnyOptimizer::parse(s.substr(sequential.size() + 1))};
    if (s == "adam" || s == "gd") return AnyOptimizer::parse(s);
    fail("unknown optimizer \"", s, "\" (expected adam, gd, sequential or sequential:adam|gd)");
}

}  // namespace inputrep
