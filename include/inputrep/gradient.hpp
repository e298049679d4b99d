#pragma once
// The two gradient engines of an inversion step: the distance of every batch row,
//   d = m(compared(Slice(space(x))), target),
// and ∂(Σ d)/∂x. written_out_gradient runs the model's own chain rule through whole blocks (GPT-2 and
// Llama record a Tape and return block_input_grad; no autograd graph); autograd_gradient serves every
// other slice, family, and the CUDA/bf16 paths of the same. Tests hold the first against the second.
#include <vector>

#include <inputrep/core/torch.hpp>
#include <inputrep/model/model.hpp>
#include <inputrep/model/slice.hpp>
#include <inputrep/policy/mask.hpp>
#include <inputrep/policy/metric.hpp>

namespace inputrep {

struct DistanceGradient {
    at::Tensor distance;  // [batch]
    at::Tensor gradient;  // like x
};

// Whether a slice of a model can take the written-out path: a plain run of whole blocks of a family
// that writes out its block's input gradient.
template <class Family, class S>
inline constexpr bool written_out_applies = is_block_chain<S>&& InputGradientModel<Family>;

template <class Family, class Space, Slice S, class Metric, OutputMask Compared>
requires written_out_applies<Family, S> DistanceGradient
written_out_gradient(const Family& model, const Space& space, const S& slice, const typename Family::Context& ctx,
                     std::vector<typename Family::Tape>& tapes, const Metric& metric, const Compared& compared,
                     const at::Tensor& x, const at::Tensor& target) {
    c10::InferenceMode no_autograd;  // lighter than NoGradGuard: no version counters or autograd keys
    const auto r = slice.range();
    tapes.resize(r.end - r.begin);
    at::Tensor y = space.slice_input(model, x);
    for (int i = r.begin; i < r.end; ++i) y = model.block(i, y, ctx, tapes[i - r.begin]);
    auto [distance, d_compared] = metric.value_and_grad(compared(y), target);
    at::Tensor dy = compared.backward(d_compared, y);
    for (int i = r.end - 1; i >= r.begin; --i) dy = model.block_input_grad(i, dy, ctx, tapes[i - r.begin]);
    return {distance, space.input_grad(model, dy)};
}

// x must require grad; the graph is built for this one call and released.
template <class Family, class Space, Slice S, class Metric, OutputMask Compared>
DistanceGradient autograd_gradient(const Family& model, const Space& space, const S& slice,
                                   const typename Family::Context& ctx, const Metric& metric, const Compared& compared,
                                   const at::Tensor& x, const at::Tensor& target) {
    at::Tensor out = compared(apply_slice(slice, model, space.slice_input(model, x), ctx));
    auto [distance, d_compared] = metric.value_and_grad(out.detach(), target);
    return {distance, torch::autograd::grad({out}, {x}, {d_compared})[0]};
}

}  // namespace inputrep
