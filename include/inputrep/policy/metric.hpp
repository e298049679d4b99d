#pragma once
// Metric axis: m(O(a_g), O(a)) per batch item. Reductions are sums, not means: the seed's learning
// rates are tuned to sums. value_and_grad is written out (no autograd graph); on CPU f32 every
// metric is one fused two-pass loop (cpu::metric), so the choice of metric costs nothing extra.
#include <cmath>
#include <concepts>
#include <utility>
#include <vector>
#include <string>
#include <string_view>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/kernels/cpu.hpp>

namespace inputrep {

namespace detail {
// A per-item [B] tensor shaped to broadcast against a [B, ...] one.
inline at::Tensor per_item(const at::Tensor& v, const at::Tensor& like) {
    std::vector<std::int64_t> shape(like.dim(), 1);
    shape[0] = v.size(0);
    return v.view(shape);
}
}  // namespace detail

// Σ|Δ|
struct L1 {
    static constexpr std::string_view name = "l1";
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return (out - target).abs().flatten(1).sum(1);
    }
    // The distances and ∂(Σ distances)/∂out, written out so no autograd graph is recorded.
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        if (cpu::applies(out)) return cpu::metric(out, target, {.l1 = 1});
        auto d = out - target;
        return {d.abs().flatten(1).sum(1), d.sign()};
    }
};

// ‖Δ‖₂ (not squared; its gradient at Δ = 0 is defined as 0)
struct L2 {
    static constexpr std::string_view name = "l2";
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return at::linalg_vector_norm((out - target).flatten(1), 2, at::IntArrayRef{1});
    }
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        if (cpu::applies(out)) return cpu::metric(out, target, {.l2 = 1});
        auto d = out - target;
        auto n = at::linalg_vector_norm(d.flatten(1), 2, at::IntArrayRef{1});
        return {n, d / detail::per_item(n.clamp_min(1e-30), d)};
    }
};

// 1 − |cos φ| between the flattened outputs (the author's form: anti-parallel counts as close),
// or 1 − cos φ when Absolute is false.
template <bool Absolute>
struct CosineDistance {
    static constexpr std::string_view name = Absolute ? "cosine" : "signed-cosine";
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return value_and_grad(out, target).first;
    }

    // ∂cos/∂o = t/(|o||t|) − cos·o/|o|²
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        if (cpu::applies(out)) return cpu::metric(out, target, {.cosine = 1, .absolute = Absolute});
        auto o = out.flatten(1), t = target.flatten(1);
        auto no = at::linalg_vector_norm(o, 2, at::IntArrayRef{1}).clamp_min(1e-12);
        auto nt = at::linalg_vector_norm(t, 2, at::IntArrayRef{1}).clamp_min(1e-12);
        auto cos = (o * t).sum(1) / (no * nt);
        auto dcos = t / (no * nt).unsqueeze(1) - o * (cos / (no * no)).unsqueeze(1);
        if (Absolute) return {1.0 - cos.abs(), ((-cos.sign()).unsqueeze(1) * dcos).reshape(out.sizes())};
        return {1.0 - cos, (-dcos).reshape(out.sizes())};
    }
};
using Cosine = CosineDistance<true>;
using SignedCosine = CosineDistance<false>;

// α·(1 − |cos φ|) + β·Σ|Δ| (the seed's α/β variant; it gives no values, so both default to 1).
struct WeightedCombination {
    static constexpr std::string_view name = "combined";
    double alpha = 1.0, beta = 1.0;
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return value_and_grad(out, target).first;
    }
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        if (cpu::applies(out)) return cpu::metric(out, target, {.l1 = beta, .cosine = alpha});
        auto [c, gc] = Cosine{}.value_and_grad(out, target);
        auto [l, gl] = L1{}.value_and_grad(out, target);
        return {alpha * c + beta * l, alpha * gc + beta * gl};
    }
};
template <double Alpha = 1.0, double Beta = 1.0>
struct Combined : WeightedCombination {
    constexpr Combined() : WeightedCombination{Alpha, Beta} {}
};

template <class M>
concept Metric = requires(const M& m, const at::Tensor& t) {
    { m(t, t) } -> std::same_as<at::Tensor>;
    { m.value_and_grad(t, t) } -> std::same_as<std::pair<at::Tensor, at::Tensor>>;
    { M::name } -> std::convertible_to<std::string_view>;
};

// Chosen at run time (the CLI): one visit per step, no allocation.
struct AnyMetric {
    static constexpr std::string_view name = "any";
    std::variant<L1, L2, Cosine, SignedCosine, WeightedCombination> metric;
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return std::visit([&](const auto& m) { return m(out, target); }, metric);
    }
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        return std::visit([&](const auto& m) { return m.value_and_grad(out, target); }, metric);
    }
    std::string_view chosen() const {
        return std::visit([](const auto& m) { return std::string_view(std::decay_t<decltype(m)>::name); }, metric);
    }
    static AnyMetric parse(std::string_view s) {
        if (s == L1::name) return {L1{}};
        if (s == L2::name) return {L2{}};
        if (s == Cosine::name) return {Cosine{}};
        if (s == SignedCosine::name) return {SignedCosine{}};
        if (s == "combined") return {WeightedCombination{}};
        if (s.starts_with("combined:")) {
            const auto weights = text::split(s.substr(9), ':');
            require(weights.size() == 2, "metric \"", s, "\" is not combined:ALPHA:BETA");
            const double alpha = text::to_number<double>(weights[0], "metric ALPHA"),
                         beta = text::to_number<double>(weights[1], "metric BETA");
            require(std::isfinite(alpha) && std::isfinite(beta), "metric \"", s,
                    "\": ALPHA and BETA must be finite numbers");
            return {WeightedCombination{alpha, beta}};
        }
        fail("unknown metric \"", s, "\" (expected l1, l2, cosine, signed-cosine or combined[:ALPHA:BETA])");
    }
};

}  // namespace inputrep
