#pragma once
// Slice axis: which part of the model the input passes through before outputs are compared.
#include <algorithm>
#include <concepts>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include <inputrep/core/text.hpp>
#include <inputrep/model/family.hpp>

namespace inputrep {

// Blocks B..E-1 (E exclusive), applied in order from the block-0 input.
template <int B, int E>
struct Blocks {
    static_assert(B >= 0, "Blocks<B, E>: the first block B must be >= 0");
    static_assert(B < E, "Blocks<B, E>: E is exclusive, so E must be greater than B (the slice holds no block)");
    static constexpr int static_end = E;
    constexpr BlockRange range() const { return {B, E}; }
    constexpr bool causal() const { return true; }
    constexpr BlockVariant variant() const { return {}; }
};

// The same, chosen at run time (the CLI's --blocks B:E).
struct BlockSlice {
    BlockRange blocks;
    constexpr BlockRange range() const { return blocks; }
    constexpr bool causal() const { return true; }
    constexpr BlockVariant variant() const { return {}; }
};

// The same blocks with attention over every position, earlier and later (the seed's Llama runs
// called blocks without a causal mask).
template <class S>
struct Bidirectional : S {
    constexpr bool causal() const { return false; }
};

// The seed's ablations of a slice's blocks (notes §4.4): without the residual around attention,
// without the normalisations, or the attention sub-layers alone.
template <class S>
struct NoResidual : S {
    constexpr BlockVariant variant() const {
        auto v = S::variant();
        v.attention_residual = false;
        return v;
    }
};
template <class S>
struct NoNorm : S {
    constexpr BlockVariant variant() const {
        auto v = S::variant();
        v.norms = false;
        return v;
    }
};
template <class S>
struct AttentionOnly : S {
    constexpr BlockVariant variant() const { return {false, false, false}; }
};
// The attention sub-layer of block i alone: no norm, no residual, no MLP.
template <int I>
using Attention = AttentionOnly<Blocks<I, I + 1>>;

// Several slices compared together: their outputs joined along the feature axis, so a token mask
// still selects positions. Concat<Blocks<0, 1>, Blocks<0, 2>, Blocks<0, 3>> is the output after 1, 2
// and 3 blocks (the author's script applied block 0 three times; not copied).
template <class... Parts>
struct Concat {
    static_assert(sizeof...(Parts) >= 1, "Concat<...> needs at least one slice");
    std::tuple<Parts...> parts{};
    static constexpr int static_end = std::max({Parts::static_end...});
    constexpr BlockRange range() const {
        BlockRange r{std::numeric_limits<int>::max(), 0};
        std::apply(
            [&](const auto&... p) {
                ((r.begin = std::min(r.begin, p.range().begin), r.end = std::max(r.end, p.range().end)), ...);
            },
            parts);
        return r;
    }
    constexpr bool causal() const { return std::get<0>(parts).causal(); }
    constexpr BlockVariant variant() const { return std::get<0>(parts).variant(); }

    template <class M, class Context>
    at::Tensor apply(const M& model, const at::Tensor& x, const Context& ctx) const;
};

// Blocks begin.. end.block, the last one only up to end.hook.
template <class M, class Context>
at::Tensor run_to(const M& model, at::Tensor x, const Context& ctx, int begin, HookPoint end) {
    for (int i = begin; i < end.block; ++i) x = model.block(i, x, ctx);
    return end.hook == Hook::resid_post ? model.block(end.block, x, ctx) : model.block_to(end.block, x, ctx, end.hook);
}

// Blocks B.. up to a hook point inside the last one (DESIGN §3): UpTo<"blocks.3.hook_resid_mid"> is
// blocks 0-2 and block 3's attention sub-layer with its residual; its output is that hook's cache
// entry. UpTo<"blocks.3.hook_resid_post"> is Blocks<0, 4>, UpTo<"blocks.3.hook_resid_pre"> Blocks<0, 3>.
template <std::size_t N>
struct HookString {
    char text[N]{};
    constexpr HookString(const char (&s)[N]) { std::copy_n(s, N, text); }
    constexpr std::string_view view() const { return {text, N - 1}; }
};

template <HookString Name, int B = 0>
struct UpTo {
    static constexpr HookParse parsed = parse_hook_point(Name.view());
    static_assert(parsed.error == nullptr,
                  "UpTo<\"NAME\">: NAME must be blocks.N.hook_resid_pre (N > 0), blocks.N.attn.hook_q, "
                  "attn.hook_k, attn.hook_v, attn.hook_z, blocks.N.hook_attn_out, blocks.N.hook_resid_mid, "
                  "blocks.N.hook_mlp_out or blocks.N.hook_resid_post");
    static constexpr HookPoint end = parsed.point.slice_end();
    static_assert(B >= 0 && B <= end.block,
                  "UpTo<NAME, B>: the first block B must be >= 0 and not after the hook's block");
    static constexpr int static_end = end.block + 1;
    constexpr BlockRange range() const { return {B, end.block + 1}; }
    constexpr bool causal() const { return true; }
    constexpr BlockVariant variant() const { return {}; }

    template <class M, class Context>
    at::Tensor apply(const M& model, const at::Tensor& x, const Context& ctx) const {
        return run_to(model, x, ctx, B, end);
    }
};

// Slices that are a plain run of whole blocks, so the model's own input gradient can replace autograd.
template <class S>
inline constexpr bool is_block_chain = false;
template <int B, int E>
inline constexpr bool is_block_chain<Blocks<B, E>> = true;
template <class S>
inline constexpr bool is_block_chain<Bidirectional<S>> = is_block_chain<S>;
template <>
inline constexpr bool is_block_chain<BlockSlice> = true;

template <class S>
concept Slice = requires(const S& s) {
    { s.range() } -> std::same_as<BlockRange>;
    { s.causal() } -> std::convertible_to<bool>;
    { s.variant() } -> std::same_as<BlockVariant>;
};

template <class S>
constexpr int static_end_of() {
    if constexpr (requires { S::static_end; })
        return S::static_end;
    else
        return dynamic_depth;
}

template <Slice S, class M>
at::Tensor apply_slice(const S& slice, const M& model, at::Tensor x, const typename M::Context& ctx) {
    if constexpr (requires { slice.apply(model, x, ctx); }) {
        return slice.apply(model, x, ctx);
    } else {
        const auto r = slice.range();
        for (int i = r.begin; i < r.end; ++i) x = model.block(i, x, ctx);
        return x;
    }
}

template <class... Parts>
template <class M, class Context>
at::Tensor Concat<Parts...>::apply(const M& model, const at::Tensor& x, const Context& ctx) const {
    return std::apply([&](const auto&... p) { return at::cat({apply_slice(p, model, x, ctx)...}, -1); }, parts);
}

// Any of the above, chosen at run time (the CLI's --blocks, --slice and --hook): one or more block
// ranges from a common input, joined along features when there are several; or the blocks from one
// input up to one or more hook points, their outputs joined the same way
// (SliceSpec::up_to(parse_hooks("blocks.3.attn.hook_k,blocks.3.attn.hook_v"))).
struct SliceSpec {
    std::vector<BlockRange> parts{{0, 1}};
    bool is_causal = true;
    BlockVariant block_variant{};
    std::vector<HookPoint> end_hooks;  // where the single part's runs end, each from parts.front().begin

    static SliceSpec up_to(const std::vector<HookPoint>& points, int begin = 0) {
        require(!points.empty(), "a slice up to hook points needs at least one");
        SliceSpec spec{{{begin, begin + 1}}, true, {}, {}};
        for (const auto& point : points) {
            const auto end = point.slice_end();
            require(end.block >= 0, "the slice would end at ", point.name(),
                    ", the embedding itself: it holds no block");
            require(begin >= 0 && begin <= end.block, "a slice from block ", begin, " cannot end at ", point.name());
            spec.parts.front().end = std::max(spec.parts.front().end, end.block + 1);
            spec.end_hooks.push_back(end);
        }
        return spec;
    }
    static SliceSpec up_to(HookPoint point, int begin = 0) { return up_to(std::vector{point}, begin); }

    BlockRange range() const {
        BlockRange r{std::numeric_limits<int>::max(), 0};
        for (auto& p : parts) r.begin = std::min(r.begin, p.begin), r.end = std::max(r.end, p.end);
        return r;
    }
    bool causal() const { return is_causal; }
    BlockVariant variant() const { return block_variant; }

    template <class M, class Context>
    at::Tensor apply(const M& model, const at::Tensor& x, const Context& ctx) const {
        std::vector<at::Tensor> outputs;
        if (end_hooks.empty()) {
            for (auto& p : parts) outputs.push_back(apply_slice(BlockSlice{p}, model, x, ctx));
        } else {
            require(parts.size() == 1, "a slice that ends at hook points has one block range");
            for (auto& end : end_hooks) outputs.push_back(run_to(model, x, ctx, parts.front().begin, end));
        }
        return outputs.size() == 1 ? outputs.front() : at::cat(outputs, -1);
    }
};

// ---- Parsers: the CLI's --blocks and --slice, as text -------------------------------------------

// "B:E": blocks B..E-1.
inline BlockRange parse_block_range(std::string_view s) {
    const auto bounds = text::split(s, ':');
    require(bounds.size() == 2, "blocks \"", s, "\" is not B:E");
    const BlockRange r{text::to_number<int>(bounds[0], "blocks B"), text::to_number<int>(bounds[1], "blocks E")};
    require(r.begin >= 0 && r.begin < r.end, "blocks B:E needs 0 <= B < E (E is exclusive), got ", s);
    return r;
}

// Modifiers of `blocks`, comma-separated: bidirectional, no-residual, no-norm, attention (the
// attention sub-layers alone), attention:I (block I's alone), concat:E1:E2:... (the outputs after
// blocks B..E1-1, B..E2-1, ... joined along features).
inline SliceSpec parse_slice(BlockRange blocks, std::string_view modifiers) {
    SliceSpec spec{{blocks}};
    if (modifiers.empty()) return spec;
    for (auto item : text::split(modifiers, ',')) {
        const auto words = text::split(item, ':');
        if (item == "bidirectional")
            spec.is_causal = false;
        else if (item == "no-residual")
            spec.block_variant.attention_residual = false;
        else if (item == "no-norm")
            spec.block_variant.norms = false;
        else if (item == "attention")
            spec.block_variant = {false, false, false};
        else if (words[0] == "attention" && words.size() == 2) {
            const int i = text::to_number<int>(words[1], "slice attention:I");
            require(i >= 0, "slice attention:I needs a block index >= 0, got ", i);
            spec.parts = {{i, i + 1}}, spec.block_variant = {false, false, false};
        } else if (words[0] == "concat" && words.size() >= 2) {
            spec.parts.clear();
            for (std::size_t k = 1; k < words.size(); ++k) {
                const int end = text::to_number<int>(words[k], "slice concat:E1:E2:...");
                require(end > blocks.begin, "slice concat:E1:E2:... needs block ends after ", blocks.begin, ", got ",
                        end);
                spec.parts.push_back({blocks.begin, end});
            }
        } else {
            fail("unknown slice modifier \"", item,
                 "\" (expected bidirectional, no-residual, no-norm, attention, attention:I or concat:E1:E2:...)");
        }
    }
    return spec;
}

}  // namespace inputrep
