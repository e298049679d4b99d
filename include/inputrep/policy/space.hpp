#pragma once
// Input-space axis: what is optimised and how it reaches the slice.
#include <concepts>

#include <inputrep/core/torch.hpp>

namespace inputrep {

// Indirect representation: optimise the block-0 input [batch, tokens, d] itself. Its target is the
// model's embedding of the prompt (token plus position embedding where the family has one); it
// decodes after removing the position part.
struct EmbeddingSpace {
    template <class M>
    at::Tensor target(const M& model, const at::Tensor& ids) const { return model.embed(ids); }

    template <class M>
    at::Tensor slice_input(const M&, const at::Tensor& x) const { return x; }

    template <class M>
    at::Tensor initial(const M& model, const at::Tensor& target, double scale, at::Generator& gen) const {
        auto x = at::empty(target.sizes(), at::kFloat);
        x.normal_(0.0, scale, gen);
        return x.to(model.placement().device, target.scalar_type());
    }

    template <class M, class State>
    at::Tensor scores(const M& model, const at::Tensor& x, const State& decoder) const {
        auto offset = model.position_offset(x.size(1));
        return decoder.scores(offset.defined() ? x - offset : x);
    }
};

}  // namespace inputrep
