// A metric: Huber distance, quadratic for small differences and linear beyond delta, so a few
// outlying neurons (the massive activations of trained models) do not dominate the sum.
#include <inputrep/inputrep.hpp>

struct Huber {
    static constexpr std::string_view name = "huber";
    double delta = 1.0;

    // One distance per batch row: a sum over tokens and features, like every metric here.
    at::Tensor operator()(const at::Tensor& out, const at::Tensor& target) const {
        return value_and_grad(out, target).first;
    }

    // The distances and ∂(Σ distances)/∂out, written out so the loop records no autograd graph.
    std::pair<at::Tensor, at::Tensor> value_and_grad(const at::Tensor& out, const at::Tensor& target) const {
        auto d = out - target;
        auto small = d.abs() <= delta;
        auto value = at::where(small, 0.5 * d * d, delta * (d.abs() - 0.5 * delta));
        return {value.flatten(1).sum(1), at::where(small, d, delta * d.sign())};
    }
};
static_assert(inputrep::Metric<Huber>);
