#pragma once
// The seed's "is the trained word-to-token embedding to blame?": a model's blocks with another token
// embedding (e.g. an untrained one). Experiments see the swapped W_E for targets and decoding.
#include <utility>

#include <inputrep/model/model.hpp>

namespace inputrep {

template <class M>
class WithEmbedding : public M {
public:
    WithEmbedding(M model, at::Tensor token_embedding) : M(std::move(model)), w_(std::move(token_embedding)) {
        require(w_.dim() == 2 && w_.size(1) == M::token_embedding().size(1), "a swapped token embedding must be [V, ",
                M::token_embedding().size(1), "]");
    }
    const at::Tensor& token_embedding() const { return w_; }
    at::Tensor embed(const at::Tensor& ids) const {
        auto e = at::embedding(w_, ids);
        auto offset = M::position_offset(ids.size(-1));
        return offset.defined() ? e + offset : e;
    }

private:
    at::Tensor w_;
};

template <class M>
struct family_of<WithEmbedding<M>> {
    using type = family_of_t<M>;
};

// The model's blocks behind an untrained N(0, std) embedding of the same shape (HF's scheme).
template <class M>
WithEmbedding<M> with_untrained_embedding(M model, std::uint64_t seed, double std = 0.02) {
    auto shape = model.token_embedding().sizes().vec();
    auto w = init::normal(shape, std, seed, "swapped.token_embedding", model.placement());
    return {std::move(model), std::move(w)};
}

}  // namespace inputrep
