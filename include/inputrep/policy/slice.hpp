#pragma once
// Slice axis: which part of the model the input passes through before outputs are compared.
#include <concepts>

#include <inputrep/model/model.hpp>

namespace inputrep {

// Blocks B..E-1 (E exclusive), applied in order from the block-0 input.
template <int B, int E>
struct Blocks {
    static_assert(B >= 0, "Blocks<B, E>: the first block B must be >= 0");
    static_assert(B < E, "Blocks<B, E>: E is exclusive, so E must be greater than B (the slice holds no block)");
    static constexpr int static_end = E;
    constexpr BlockRange range() const { return {B, E}; }
    constexpr bool causal() const { return true; }
};

// The same, chosen at run time (the CLI's --blocks B:E).
struct BlockSlice {
    BlockRange blocks;
    constexpr BlockRange range() const { return blocks; }
    constexpr bool causal() const { return true; }
};

// Slices that are a plain run of whole blocks, so the model's own input gradient can replace autograd.
template <class S>
inline constexpr bool is_block_chain = false;
template <int B, int E>
inline constexpr bool is_block_chain<Blocks<B, E>> = true;
template <>
inline constexpr bool is_block_chain<BlockSlice> = true;

template <class S>
concept Slice = requires(const S& s) {
    { s.range() } -> std::same_as<BlockRange>;
    { s.causal() } -> std::convertible_to<bool>;
};

template <class S>
constexpr int static_end_of() {
    if constexpr (requires { S::static_end; }) return S::static_end; else return dynamic_depth;
}

template <Slice S, class M>
at::Tensor apply_slice(const S& slice, const M& model, at::Tensor x, const typename M::Context& ctx) {
    const auto r = slice.range();
    for (int i = r.begin; i < r.end; ++i) x = model.block(i, x, ctx);
    return x;
}

}  // namespace inputrep
