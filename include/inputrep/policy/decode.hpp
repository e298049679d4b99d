#pragma once
// Decoder axis: scores over the vocabulary for each optimised input embedding; top-k is taken on them.
#include <concepts>

#include <inputrep/core/torch.hpp>

namespace inputrep {

// argmax of e·W⁺ with W⁺ the Moore–Penrose pseudo-inverse of the token embedding W [V, d]. W has
// full column rank, so W⁺ = (WᵀW)⁻¹Wᵀ: one d×d inverse instead of an SVD of a V×d matrix.
struct PseudoInverse {
    struct State {
        at::Tensor w, gram_inverse;
        at::Tensor scores(const at::Tensor& e) const { return at::matmul(at::matmul(e.to(at::kFloat), gram_inverse), w.t()); }
    };
    State prepare(const at::Tensor& token_embedding) const {
        auto w = token_embedding.to(at::kFloat);
        auto gram = at::matmul(w.t(), w).to(at::kDouble);
        return {w, at::linalg_inv(gram).to(at::kFloat)};
    }
};

template <class D>
concept Decoder = requires(const D& d, const at::Tensor& t) {
    { d.prepare(t).scores(t) } -> std::same_as<at::Tensor>;
};

}  // namespace inputrep
