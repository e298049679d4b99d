#pragma once
// Input-space axis: what is optimised and how it reaches the slice. Each space also carries the
// gradient back from the slice's input to what is optimised, so the written-out gradient path
// (no autograd) works for every space.
#include <concepts>
#include <string_view>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>

namespace inputrep {

namespace detail {
// N(0, σ) of the target's shape, drawn on the CPU from the run's generator (the same start on every
// device), then placed with the model.
template <class M>
at::Tensor normal_like(const M& model, const at::Tensor& target, double scale, at::Generator& gen) {
    auto x = at::empty(target.sizes(), at::kFloat);
    x.normal_(0.0, scale, gen);
    return x.to(model.placement().device, target.scalar_type());
}
}  // namespace detail

// Indirect representation: optimise the block-0 input [batch, tokens, d] itself. Its target is the
// model's embedding of the prompt (token plus position embedding where the family has one); it
// decodes after removing the position part.
struct EmbeddingSpace {
    static constexpr std::string_view name = "embedding";

    template <class M>
    at::Tensor target(const M& model, const at::Tensor& ids) const {
        return model.embed(ids);
    }

    template <class M>
    at::Tensor slice_input(const M&, const at::Tensor& x) const {
        return x;
    }

    template <class M>
    at::Tensor input_grad(const M&, const at::Tensor& d_slice_input) const {
        return d_slice_input;
    }

    template <class M>
    at::Tensor initial(const M& model, const at::Tensor& target, double scale, at::Generator& gen) const {
        return detail::normal_like(model, target, scale, gen);
    }

    template <class M, class State>
    at::Tensor scores(const M& model, const at::Tensor& x, const State& decoder) const {
        auto offset = model.position_offset(x.size(1));
        return decoder.scores(offset.defined() ? x - offset : x);
    }
};

// Direct representation: optimise x [batch, tokens, V]; the slice sees x·W_E (plus the position
// embedding where the family has one: the author's direct script added none, a bug for GPT-2).
// The target is one-hot × `one_hot_scale` (the author's choice), or, with one_hot_scale = 0, the
// pseudo-inverse image E(a)·W⁺ of the target embedding; the seed found the two equivalent.
struct VocabularySpace {
    static constexpr std::string_view name = "vocabulary";
    double one_hot_scale = 10.0;

    template <class M>
    at::Tensor target(const M& model, const at::Tensor& ids) const {
        const auto& w = model.token_embedding();
        if (one_hot_scale > 0) return at::one_hot(ids, w.size(0)).to(w.scalar_type()) * one_hot_scale;
        auto gram = at::matmul(w.t().to(at::kDouble), w.to(at::kDouble));
        return at::matmul(
                   at::linalg_solve(gram, at::embedding(w, ids).to(at::kDouble).transpose(-2, -1)).transpose(-2, -1),
                   w.t().to(at::kDouble))
            .to(w.scalar_type());
    }

    template <class M>
    at::Tensor slice_input(const M& model, const at::Tensor& x) const {
        auto e = at::matmul(x, model.token_embedding());
        auto offset = model.position_offset(x.size(1));
        return offset.defined() ? e + offset : e;
    }

    template <class M>
    at::Tensor input_grad(const M& model, const at::Tensor& d_slice_input) const {
        return at::matmul(d_slice_input, model.token_embedding().t());
    }

    template <class M>
    at::Tensor initial(const M& model, const at::Tensor& target, double scale, at::Generator& gen) const {
        return detail::normal_like(model, target, scale, gen);
    }

    template <class M, class State>
    at::Tensor scores(const M&, const at::Tensor& x, const State& decoder) const {
        return decoder.restrict(x.to(at::kFloat));
    }
};

template <class S>
concept InputSpace = requires {
    S::name;
};

// ---- Parser: the CLI's --space, as text ----------------------------------------------------------

// Chosen at run time; a visit picks the space once per run.
using AnySpace = std::variant<EmbeddingSpace, VocabularySpace>;

// "embedding" (optimise the block-0 input), "vocabulary" (a vocabulary-sized vector per position,
// target one-hot × 10 as the author's code) or "vocabulary:pinv-target" (target E(a)·W⁺, the
// seed's other choice, which it found equivalent: claim 8).
inline AnySpace parse_space(std::string_view s) {
    if (s == EmbeddingSpace::name) return EmbeddingSpace{};
    if (s == VocabularySpace::name) return VocabularySpace{};
    if (s == "vocabulary:pinv-target") return VocabularySpace{0.0};
    fail("unknown space \"", s, "\" (expected embedding, vocabulary or vocabulary:pinv-target)");
}

}  // namespace inputrep
