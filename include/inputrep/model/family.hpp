#pragma once
// The skeleton every model family stands on: one tensor list walked by load, untrained init, save
// and the memory estimate; the blocks a caller asked for; hook points under TransformerLens names;
// one attention (and its input gradient) for every family.
//
// A family F derives from Family<F, Config, Block> and writes only what is its own:
//   static constexpr std::string_view family;                       "gpt2"
//   static constexpr std::array<std::string_view, N> model_types;   config.json's model_type names it reads
//   static constexpr std::int64_t neutral_token (optional);          what occlusion substitutes by default
//   template <class Self, class Visit> static void each_tensor(Self& m, const Needs&, Visit&&);
//       visit(HF name, slot, Shape, Init) for each tensor the Needs materialise, in model order; a
//       slot is an at::Tensor, or a Weight where a linear layer's matrix goes (8-bit when asked)
//   Context context(T, causal, variant) const;                      what every block call of one length shares
//   at::Tensor forward_block(i, x, ctx, const BlockHooks&) const;    one block; hooks(Hook::attn_out, y) at each
//                                                                    sub-layer output returns true where to stop
//   at::Tensor final_norm(x) const (none: leave it out);  at::Tensor head(h) const   the unembedding
//   context_length(), d_model(), vocab_size(), defaults()
// and gets the rest: embed (ids and length checked), block, block_to, unembed, run_with_cache,
// named_tensors, parameters, untrained, load, estimated_bytes.
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <inputrep/core/memory.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/kernels/cpu.hpp>
#include <inputrep/model/config.hpp>
#include <inputrep/model/model.hpp>
#include <inputrep/model/weight.hpp>

namespace inputrep {

// ---- Hook points ----------------------------------------------------------------------------------

// The points inside block N, in the order a pre-LN block produces them (TransformerLens names).
// A parallel block (GPT-J) has no resid_mid; the masked mixer's token mixing stands where
// attention stands (attn_out) and its patch_ff where the MLP stands (mlp_out), and it has no
// points inside attention. A slice ending inside attention outputs that point's heads side by
// side, [tokens, heads·d_head]: keys and values per key/value head, after rotary, as a KV cache
// holds them.
enum class Hook { resid_pre, attn_q, attn_k, attn_v, attn_z, attn_out, resid_mid, mlp_out, resid_post };
inline constexpr std::array<std::string_view, 9> hook_names{"hook_resid_pre", "attn.hook_q",  "attn.hook_k",
                                                            "attn.hook_v",    "attn.hook_z",  "hook_attn_out",
                                                            "hook_resid_mid", "hook_mlp_out", "hook_resid_post"};
constexpr bool inside_attention(Hook h) { return h >= Hook::attn_q && h <= Hook::attn_z; }

// Inside attention (BlockHooks::record), in the order TransformerLens records them.
inline constexpr std::array<std::string_view, 5> attention_hook_names{"hook_q", "hook_k", "hook_v", "hook_pattern",
                                                                      "hook_z"};

inline std::string hook_name(int block, Hook hook) {
    return "blocks." + std::to_string(block) + "." + std::string(hook_names[int(hook)]);
}

// A hook point inside a block: blocks.3.hook_resid_mid is {3, Hook::resid_mid}.
struct HookPoint {
    int block = 0;
    Hook hook = Hook::resid_post;
    constexpr bool operator==(const HookPoint&) const = default;
    std::string name() const { return hook_name(block, hook); }
    // Where a slice ending here stops: resid_pre of block N is resid_post of block N-1.
    constexpr HookPoint slice_end() const {
        return hook == Hook::resid_pre ? HookPoint{block - 1, Hook::resid_post} : *this;
    }
};

// Shared by UpTo<"..."> at compile time and parse_hook at run time: the point, or why the name is not one.
struct HookParse {
    HookPoint point;
    const char* error = nullptr;
};
constexpr HookParse parse_hook_point(std::string_view s) {
    constexpr std::string_view prefix = "blocks.";
    if (!s.starts_with(prefix))
        return {{},
                "a slice ends at a block's hook point: blocks.N.hook_resid_pre, attn.hook_q, attn.hook_k, "
                "attn.hook_v, attn.hook_z, hook_attn_out, hook_resid_mid, hook_mlp_out or hook_resid_post"};
    s.remove_prefix(prefix.size());
    int block = 0;
    std::size_t digits = 0;
    for (; digits < s.size() && s[digits] >= '0' && s[digits] <= '9'; ++digits) {
        block = block * 10 + (s[digits] - '0');
        if (block > 1'000'000) return {{}, "the block number is too large"};
    }
    if (digits == 0 || digits == s.size() || s[digits] != '.')
        return {{}, "expected blocks.N.hook_... with a block number N"};
    s.remove_prefix(digits + 1);
    for (std::size_t h = 0; h < hook_names.size(); ++h)
        if (s == hook_names[h]) {
            const HookPoint p{block, Hook(h)};
            if (p.hook == Hook::resid_pre && block == 0)
                return {p, "blocks.0.hook_resid_pre is the embedding itself: the slice would hold no block"};
            return {p, nullptr};
        }
    if (s == "attn.hook_pattern")
        return {{},
                "attn.hook_pattern is [heads, tokens, tokens], not one output per position: a slice cannot end "
                "there (hidden --hooks saves it)"};
    return {{},
            "unknown hook point (expected hook_resid_pre, attn.hook_q, attn.hook_k, attn.hook_v, attn.hook_z, "
            "hook_attn_out, hook_resid_mid, hook_mlp_out or hook_resid_post)"};
}

// The run-time parse (the CLI's --hook NAME).
inline HookPoint parse_hook(std::string_view name) {
    const auto r = parse_hook_point(name);
    if (r.error) fail("hook \"", name, "\": ", r.error);
    return r.point;
}

// Several, comma-separated (the CLI's --hook blocks.3.attn.hook_k,blocks.3.attn.hook_v).
inline std::vector<HookPoint> parse_hooks(std::string_view names) {
    std::vector<HookPoint> out;
    for (auto name : text::split(names, ',')) out.push_back(parse_hook(name));
    return out;
}

// What a causal block keeps of the positions before the ones it is given (the incremental
// forward, search/incremental.hpp), for B prefixes of one length: attention's keys and values
// [B, KV, 1, P, hd], or the masked mixer's token-mixing inputs, one [B, P, D] per mixing layer.
struct PrefixCache {
    at::Tensor k, v;
    std::vector<at::Tensor> rows;
    std::int64_t length = 0;  // P: the positions held
    bool append = false;      // this call's positions join the prefix (one row per prefix)
    at::Tensor owners;        // [N] long: the prefix each of this call's rows follows; undefined: one prefix, broadcast
    at::Tensor runs;  // [R]: where the rows come in R equal runs, each run's prefix (a search's candidates per prompt)

    // The held tensor t [B, ...] as this call's rows see it: a prefix per row where owners says,
    // else as is (one prefix broadcasts over the batch without a copy).
    at::Tensor of_rows(const at::Tensor& t) const { return owners.defined() ? t.index_select(0, owners) : t; }

    // a [N, KV, g, n, m] times the held keys or values t [B, KV, 1, P, hd] as this call's rows see
    // them (t transposed: a·tᵀ, m = hd; else a·t, m = P). Rows in equal runs make one product per
    // run instead of a copy of the prefix per row, which at a small width costs more than the product.
    at::Tensor times(const at::Tensor& a, const at::Tensor& t, bool transposed) const {
        auto op = [&](const at::Tensor& x) { return transposed ? x.transpose(-2, -1) : x; };
        if (!runs.defined()) return at::matmul(a, op(of_rows(t)));
        const auto R = runs.size(0), KV = a.size(1), g = a.size(2), n = a.size(3);
        const auto rows =
            a.view({R, -1, KV, g, n, a.size(4)}).permute({0, 2, 1, 3, 4, 5}).reshape({R, KV, -1, a.size(4)});
        const auto y = at::matmul(rows, op(t.index_select(0, runs).squeeze(2)));  // [R, KV, run·g·n, ·]
        return y.view({R, KV, -1, g, n, y.size(-1)})
            .permute({0, 2, 1, 3, 4, 5})
            .reshape({a.size(0), KV, g, n, y.size(-1)});
    }
    // t with this call's positions fresh [B, ..., n, ...] appended along dim.
    at::Tensor joined(const at::Tensor& t, const at::Tensor& fresh, std::int64_t dim) const {
        require(!owners.defined() && (!t.defined() || t.size(0) == fresh.size(0)), "appending to ",
                t.defined() ? t.size(0) : 0, " prefixes needs one row per prefix, not ", fresh.size(0));
        return t.defined() ? at::cat({t, fresh}, dim) : fresh.contiguous();
    }
};

// What one block call records and where it stops. The family calls it at each sub-layer output;
// it records into the cache (when there is one) and answers whether the block should return here.
// With a prefix, the block runs positions P.. after those the prefix holds.
struct BlockHooks {
    int block = 0;
    ActivationCache* cache = nullptr;
    Hook stop = Hook::resid_post;
    mutable bool reached = false;
    PrefixCache* prefix = nullptr;
    std::int64_t offset() const { return prefix ? prefix->length : 0; }
    bool operator()(Hook hook, const at::Tensor& value) const {
        if (cache) cache->add(hook_name(block, hook), value);
        return reached = hook == stop;
    }
    // Inside attention: blocks.N.attn.NAME, computed only when the cache wants one of them.
    std::string attention_name(std::string_view name) const {
        return "blocks." + std::to_string(block) + ".attn." + std::string(name);
    }
    bool records_attention() const {
        return cache && std::ranges::any_of(attention_hook_names,
                                            [&](std::string_view n) { return cache->wants(attention_name(n)); });
    }
    void record(std::string_view name, const at::Tensor& value) const {
        if (cache) cache->add(attention_name(name), value);
    }
    // The block stops inside attention, at `heads` [B, T, heads, hd]: its output per position.
    at::Tensor stop_at(const at::Tensor& heads) const {
        reached = true;
        return heads.flatten(2);
    }
};

// ---- Tensors ----------------------------------------------------------------------------------

using Shape = std::vector<std::int64_t>;

// How an untrained tensor is drawn; the seed comes from the tensor's name (init::tensor_seed).
struct Init {
    enum Kind { normal, uniform, ones, zeros } kind = zeros;
    double scale = 0;  // σ of normal, bound of uniform
    static Init gaussian(double std) { return {normal, std}; }
    static Init bounded(double bound) { return {uniform, bound}; }
    at::Tensor draw(at::IntArrayRef shape, std::uint64_t seed, std::string_view name, const Placement& p) const {
        switch (kind) {
            case normal:
                return init::normal(shape, scale, seed, name, p);
            case uniform:
                return init::uniform(shape, scale, seed, name, p);
            default:
                return init::constant(shape, kind == ones ? 1.0 : 0.0, p);
        }
    }
};

// Where weights come from: a safetensors Checkpoint, a llama2.c file, or anything else that serves
// a tensor by Hugging Face name, checking the shape the config implies.
template <class S>
concept TensorSource = requires(const S& s, const std::string& name, const Placement& p, at::IntArrayRef shape) {
    { s.load(name, p, shape) } -> std::same_as<at::Tensor>;
};

// A matrix a file keeps in quantised blocks (GgufFile::blocks), held so in a Weight slot where the
// placement keeps them (keeps_file_blocks). False where the source or the placement keeps none.
template <class Source>
bool fill_blocks(Weight& slot, const Source& source, const std::string& name, const Shape& shape,
                 const Placement& placement) {
    if constexpr (requires { source.blocks(name, shape); }) {
        if (!keeps_file_blocks(placement)) return false;
        auto b = source.blocks(name, shape);
        if (b) slot.hold_blocks(std::move(b->rows), b->type, b->in, placement.resolved().dtype);
        return b.has_value();
    }
    return false;
}

// Token ids must index the embedding: one check, one message, for every path into a model.
inline void check_token_ids(const at::Tensor& ids, std::int64_t vocab) {
    const auto bad = ids.lt(0).logical_or(ids.ge(vocab));
    if (bad.any().item<bool>())
        fail("token id ", ids.masked_select(bad)[0].item<std::int64_t>(), " is outside the vocabulary of ", vocab);
}

// ---- Attention --------------------------------------------------------------------------------

// f32 for bf16/f16/f32 values, f64 for f64: where Hugging Face upcasts, without losing a double model's precision.
inline at::ScalarType at_least_f32(const at::Tensor& x) { return at::promote_types(x.scalar_type(), at::kFloat); }

// Rotary position embedding on queries and keys: Llama's rotate-half (dimension i pairs with
// i + hd/2, tables [T, hd] in the compute dtype) or GPT-J's adjacent pairs (2j, 2j+1) of the first
// rotary_dim dims (tables [T, rotary_dim/2], turned in at least f32 as Hugging Face does).
struct Rotary {
    enum Style { none, half, pairs } style = none;
    at::Tensor cos, sin;

    // x [..., T, hd] at positions offset.. turned by each position's angle, or by the opposite
    // angle (the transpose: what the input gradient needs).
    at::Tensor operator()(const at::Tensor& x, bool inverse = false, std::int64_t offset = 0) const {
        if (style == none) return x;
        const auto T = x.size(-2);
        const auto c = cos.narrow(0, offset, T), s = inverse ? -sin.narrow(0, offset, T) : sin.narrow(0, offset, T);
        if (style == half) {
            const auto h = x.size(-1) / 2;
            return x * c + at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1) * s;
        }
        const auto rd = 2 * cos.size(-1);
        auto pairs = x.narrow(-1, 0, rd).to(at_least_f32(x)).unflatten(-1, {rd / 2, 2});
        auto x1 = pairs.select(-1, 0), x2 = pairs.select(-1, 1);
        auto turned = at::stack({x1 * c - x2 * s, x2 * c + x1 * s}, -1).flatten(-2);
        return at::cat({turned, x.narrow(-1, rd, x.size(-1) - rd).to(at_least_f32(x))}, -1);
    }
};

// Softmax attention from packed q|k|v [B, T, (H + 2·KV)·hd] to the merged heads [B, T, H·hd]:
//   P = softmax(RoPE(Q)·RoPE(K)ᵀ/√hd + mask),  y = P·V
// Heads as [B, KV, group, T, hd] for queries and [B, KV, 1, T, hd] for keys and values, so each kv
// head broadcasts over the query heads it serves (GQA) without being copied; H = KV is plain
// multi-head attention. The softmax is taken in at least f32 whatever the compute dtype. The fused loop of
// kernels/cpu.hpp serves f32 on the CPU outside a graph where it applies (no GPT-J rotation).
// With a prefix, qkv holds positions P.. and the keys and values of 0..P−1 come from it.
// Heads [B, KV, group, T, hd] as TransformerLens lays them out: [B, T, heads, hd].
inline at::Tensor by_position(const at::Tensor& heads) { return heads.permute({0, 3, 1, 2, 4}).flatten(2, 3); }

// Where a block stops at q, k or v (hook.stop), that point, by position; else undefined.
inline at::Tensor stopped_at_qkv(const BlockHooks& hook, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v) {
    if (hook.stop != Hook::attn_q && hook.stop != Hook::attn_k && hook.stop != Hook::attn_v) return {};
    return hook.stop_at(by_position(hook.stop == Hook::attn_q ? q : hook.stop == Hook::attn_k ? k : v));
}

// A block stopping inside attention (hook.stop) gets that point instead, hook.reached set.
inline at::Tensor attention_after(const at::Tensor& qkv, const Heads& s, const Rotary& rotary, const at::Tensor& mask,
                                  const BlockHooks& hook);
inline at::Tensor attention(const at::Tensor& qkv, const Heads& s, const Rotary& rotary, const at::Tensor& mask,
                            AttentionTape& t, const BlockHooks& hook = {}) {
    if (hook.prefix) return attention_after(qkv, s, rotary, mask, hook);
    const bool record = hook.records_attention() || inside_attention(hook.stop);
    if (!record && rotary.style != Rotary::pairs && cpu::attention_applies(qkv, s))
        return cpu::attention(qkv, rotary.cos, rotary.sin, mask, s, t);
    const auto B = s.batch, T = s.tokens, KV = s.kv_heads, hd = s.head_size;
    auto heads = [&](std::int64_t offset, std::int64_t group) {
        return qkv.narrow(-1, offset * hd, KV * group * hd).view({B, T, KV, group, hd}).permute({0, 2, 3, 1, 4});
    };
    t.q = rotary(heads(0, s.group())), t.k = rotary(heads(s.heads, 1)), t.v = heads(s.heads + KV, 1);
    if (auto stopped = stopped_at_qkv(hook, t.q, t.k, t.v); stopped.defined()) return stopped;
    auto scores = at::matmul(t.q, t.k.transpose(-2, -1)).mul_(1.0 / std::sqrt(double(hd)));
    if (mask.defined()) scores.add_(mask);
    t.p = at::softmax(scores, -1, at_least_f32(scores)).to(t.v.scalar_type());
    auto z = at::matmul(t.p, t.v).permute({0, 3, 1, 2, 4});  // [B, T, KV, group, hd]
    if (hook.records_attention()) {
        hook.record("hook_q", by_position(t.q));
        hook.record("hook_k", by_position(t.k));
        hook.record("hook_v", by_position(t.v));
        hook.record("hook_pattern", t.p.reshape({B, s.heads, T, T}));
        hook.record("hook_z", z.reshape({B, T, s.heads, hd}));
    }
    if (hook.stop == Hook::attn_z) return hook.stop_at(z.reshape({B, T, s.heads, hd}));
    return z.reshape({B, T, s.heads * hd});
}

// Positions P..P+n−1 against the prefix's keys and values (one prefix broadcast over the batch of
// candidates without copies, or each row's own) and their own: scores = [q·K_prefixᵀ, q·kᵀ] + mask
// rows P.., one softmax, y = P_prefix·V_prefix + P_own·v.
inline at::Tensor attention_after(const at::Tensor& qkv, const Heads& s, const Rotary& rotary, const at::Tensor& mask,
                                  const BlockHooks& hook) {
    PrefixCache& prefix = *hook.prefix;
    const auto B = s.batch, n = s.tokens, KV = s.kv_heads, hd = s.head_size, P = prefix.length;
    auto heads = [&](std::int64_t offset, std::int64_t group) {
        return qkv.narrow(-1, offset * hd, KV * group * hd).view({B, n, KV, group, hd}).permute({0, 2, 3, 1, 4});
    };
    const auto q = rotary(heads(0, s.group()), false, P), k = rotary(heads(s.heads, 1), false, P),
               v = heads(s.heads + KV, 1);
    if (auto stopped = stopped_at_qkv(hook, q, k, v); stopped.defined()) {
        if (prefix.append) prefix.k = prefix.joined(prefix.k, k, -2), prefix.v = prefix.joined(prefix.v, v, -2);
        return stopped;
    }
    const double scale = 1.0 / std::sqrt(double(hd));
    auto scores = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
    if (P > 0) scores = at::cat({prefix.times(q, prefix.k, true).mul_(scale), scores}, -1);
    if (mask.defined()) scores.add_(mask.narrow(0, P, n));
    const auto p = at::softmax(scores, -1, at_least_f32(scores)).to(v.scalar_type());
    auto y = at::matmul(p.narrow(-1, P, n), v);
    if (P > 0) y = y + prefix.times(p.narrow(-1, 0, P), prefix.v, false);
    if (prefix.append) prefix.k = prefix.joined(prefix.k, k, -2), prefix.v = prefix.joined(prefix.v, v, -2);
    y = y.permute({0, 3, 1, 2, 4});
    if (hook.stop == Hook::attn_z) return hook.stop_at(y.reshape({B, n, s.heads, hd}));
    return y.reshape({B, n, s.heads * hd});
}

// ∂(Σ dy·attention)/∂(q|k|v), packed like attention's input: softmax's backward, then the
// rotations turned back.
inline at::Tensor attention_input_grad(const at::Tensor& dy, const Heads& s, const Rotary& rotary,
                                       const AttentionTape& t) {
    if (rotary.style != Rotary::pairs && cpu::attention_applies(dy, s))
        return cpu::attention_input_grad(dy, rotary.cos, rotary.sin, s, t);
    const auto B = s.batch, T = s.tokens, KV = s.kv_heads, hd = s.head_size;
    auto merge = [&](const at::Tensor& h) { return h.permute({0, 3, 1, 2, 4}).reshape({B, T, -1}); };
    auto dyh = dy.view({B, T, KV, s.group(), hd}).permute({0, 2, 3, 1, 4});
    auto dp = at::matmul(dyh, t.v.transpose(-2, -1));
    auto dv = at::matmul(t.p.transpose(-2, -1), dyh).sum(2, true);
    auto ds = at::_softmax_backward_data(dp, t.p, -1, t.p.scalar_type()).mul_(1.0 / std::sqrt(double(hd)));
    auto dq = rotary(at::matmul(ds, t.k), true);
    auto dk = rotary(at::matmul(ds.transpose(-2, -1), t.q).sum(2, true), true);
    return at::cat({merge(dq), merge(dk), merge(dv)}, -1).to(dy.scalar_type());
}

// What every block call of one sequence length shares in an attention family, built once per run.
struct AttentionContext {
    std::int64_t length = 0;
    Rotary rotary;    // none for absolute positions
    at::Tensor mask;  // [T, T] additive, −inf where a query may not see a key; undefined when it sees all
    BlockVariant variant;
};

// The additive causal mask [T, T]: −inf where a query may not see a key.
inline at::Tensor causal_mask(std::int64_t length, const Placement& p) {
    return at::full({length, length}, -std::numeric_limits<double>::infinity(), p.options()).triu(1);
}

// ---- The skeleton -----------------------------------------------------------------------------

template <class Derived, class ConfigT, class BlockT>
class Family {
public:
    using Config = ConfigT;
    using Block = BlockT;

    const Config& config() const { return config_; }
    int depth() const { return config_.layers(); }
    Placement placement() const { return placement_; }
    const at::Tensor& token_embedding() const { return need(embedding_, "the token embedding"); }

    // What embed adds beyond W_E[ids]: nothing, unless the family has absolute positions.
    at::Tensor position_offset(std::int64_t) const { return {}; }

    // ids [B, T] → the block-0 input [B, T, d].
    at::Tensor embed(const at::Tensor& ids) const {
        check_ids(ids);
        auto x = at::embedding(token_embedding(), ids);
        auto offset = self().position_offset(ids.size(-1));
        return offset.defined() ? x + offset : x;
    }

    template <class Context>
    at::Tensor block(int i, const at::Tensor& x, const Context& ctx) const {
        return self().forward_block(i, x, ctx, BlockHooks{i});
    }

    // Block i up to one of its hook points: its output there.
    template <class Context>
    at::Tensor block_to(int i, const at::Tensor& x, const Context& ctx, Hook stop) const {
        if (stop == Hook::resid_pre) return x;
        const BlockHooks hooks{i, nullptr, stop};
        auto y = self().forward_block(i, x, ctx, hooks);
        require(hooks.reached || stop == Hook::resid_post, Derived::family, " has no ", hook_name(i, stop),
                " (a point its block does not have, or one the slice's block variant leaves out)");
        return y;
    }

    // Block i at the positions after those `prefix` holds (x [N, n, d], the context built for all
    // P + n positions), up to `stop`; with prefix.append the n positions join it.
    template <class Context>
    at::Tensor block_step(int i, const at::Tensor& x, const Context& ctx, PrefixCache& prefix,
                          Hook stop = Hook::resid_post) const {
        const BlockHooks hooks{.block = i, .stop = stop, .prefix = &prefix};
        auto y = self().forward_block(i, x, ctx, hooks);
        require(hooks.reached || stop == Hook::resid_post, Derived::family, " has no ", hook_name(i, stop),
                " (a point its block does not have, or one the slice's block variant leaves out)");
        return y;
    }

    // Final norm (where the family has one) and head → logits.
    at::Tensor unembed(const at::Tensor& x) const { return self().head(normalized(x)); }

    // The whole forward pass with every hook point recorded, in the order produced; logits when
    // the head was loaded.
    at::Tensor run_with_cache(const at::Tensor& ids, ActivationCache& cache) const {
        check_ids(ids);
        at::Tensor x = at::embedding(token_embedding(), ids);
        cache.add("hook_embed", x);
        if (auto offset = self().position_offset(ids.size(-1)); offset.defined()) {
            auto pos = offset.expand_as(x);
            cache.add("hook_pos_embed", pos);
            x = x + pos;
        }
        const auto ctx = self().context(ids.size(-1), true);
        // Through the last block loaded: a model built for a slice caches that slice's hook points.
        const int end = std::min(depth(), needs_.blocks.end);
        for (int i = 0; i < end; ++i) {
            cache.add(hook_name(i, Hook::resid_pre), x);
            x = self().forward_block(i, x, ctx, BlockHooks{i, &cache});
            cache.add(hook_name(i, Hook::resid_post), x);
        }
        if (!needs_.head || end < depth()) return {};
        auto h = normalized(x);
        if (has_final_norm()) cache.add("ln_final.hook_normalized", h);
        return self().head(h);
    }

    // Every materialised tensor under its Hugging Face name, in model order (what a save writes).
    std::vector<std::pair<std::string, at::Tensor>> named_tensors() const {
        std::vector<std::pair<std::string, at::Tensor>> out;
        Derived::each_tensor(self(), everything(),
                             [&](const std::string& name, const auto& t, const Shape&, const Init&) {
                                 if (t.defined()) out.emplace_back(name, values(t));
                             });
        return out;
    }

    // The bytes the materialised tensors hold, 8-bit weights with their scales.
    std::uint64_t held_bytes() const {
        std::uint64_t n = 0;
        Derived::each_tensor(self(), everything(),
                             [&]<class T>(const std::string&, const T& t, const Shape&, const Init&) {
                                 if constexpr (std::same_as<T, Weight>)
                                     n += t.bytes();
                                 else
                                     n += t.defined() ? t.nbytes() : 0;
                             });
        return n;
    }

    // The tensors the forward pass computes with, each once: where a family stacks several named
    // weights into one (Llama's q|k|v), the stack rather than its views. A trainer sets
    // requires_grad on these and steps them in place; named_tensors() then saves the new values.
    std::vector<at::Tensor> parameters() const {
        std::vector<at::Tensor> out;
        for (auto& [_, t] : named_tensors()) {
            const at::Tensor p = t.is_view() ? at::Tensor(t._base()) : t;
            if (std::none_of(out.begin(), out.end(), [&](const at::Tensor& o) { return o.is_same(p); }))
                out.push_back(p);
        }
        return out;
    }

    // Hugging Face's initialisation as each family's tensor list states it, seeded per tensor name.
    static Derived untrained(const Config& config, const Placement& placement, std::uint64_t seed, const Needs& needs) {
        Derived m(config, placement, needs);
        Derived::each_tensor(m, needs,
                             [&]<class T>(const std::string& name, T& slot, const Shape& shape, const Init& init) {
                                 // An 8-bit matrix is quantised from its f32 draw, without a copy in the compute dtype between.
                                 if constexpr (std::same_as<T, Weight>)
                                     if (placement.weights != Weights::dense)
                                         return slot.hold(init.draw(shape, seed, name, {placement.device, at::kFloat}),
                                                          placement.weights, placement.resolved().dtype);
                                 fill(slot, init.draw(shape, seed, name, placement), placement);
                             });
        m.finish();
        return m;
    }

    template <TensorSource Source>
    static Derived load(const Config& config, const Source& source, const Placement& placement, const Needs& needs) {
        Derived m(config, placement, needs);
        Derived::each_tensor(m, needs, [&]<class T>(const std::string& name, T& slot, const Shape& shape, const Init&) {
            if constexpr (std::same_as<T, Weight>)
                if (fill_blocks(slot, source, name, shape, placement)) return;
            fill(slot, source.load(name, placement, shape), placement);
        });
        m.finish();
        return m;
    }

    // A Hugging Face folder: config.json and safetensors.
    static Derived load(const std::filesystem::path& folder, const Placement& placement, const Needs& needs) {
        return Derived::load(Config::from_json(read_config(folder)), Checkpoint::open(folder), placement, needs);
    }

    // The bytes the tensors `needs` materialises will take, from the same list, allocating nothing;
    // plus, where finish() stacks weights (Llama's q|k|v), one block's stack while it is built.
    // `blocks(name)` gives the bytes of a matrix a file keeps in its blocks (GgufFile::block_bytes), where
    // the placement keeps them (keeps_file_blocks).
    using BlockBytes = std::function<std::optional<std::uint64_t>(const std::string&)>;
    static std::uint64_t estimated_bytes(const Config& config, const Needs& needs, at::ScalarType dtype = at::kFloat,
                                         Weights weights = Weights::dense, const BlockBytes& blocks = {}) {
        const Placement p{at::kCPU, dtype, weights};
        const Derived m(config, p, needs);
        const std::uint64_t element = c10::elementSize(p.resolved().dtype);
        std::uint64_t n = 0;
        Derived::each_tensor(m, needs,
                             [&]<class T>(const std::string& name, const T& slot, const Shape& shape, const Init&) {
                                 if constexpr (std::same_as<T, Weight>) {
                                     const auto kept = blocks ? blocks(name) : std::nullopt;
                                     n += kept ? *kept : slot.bytes(shape.at(0), shape.at(1), element, weights);
                                 } else {
                                     std::uint64_t e = element;
                                     for (auto s : shape) e *= std::uint64_t(s);
                                     n += e;
                                 }
                             });
        if constexpr (requires { Derived::stacked_per_block(config); })
            if (needs.blocks.end > needs.blocks.begin)
                n += std::uint64_t(Derived::stacked_per_block(config)) * (weights == Weights::dense ? element : 1);
        return n;
    }

    // The end E of the deepest slice [needs.blocks.begin, E) that fits in `budget` bytes with what
    // `needs` asks besides blocks: what to load when the whole model does not fit. begin: not one block.
    static int deepest_fitting(const Config& config, Needs needs, at::ScalarType dtype, Weights weights,
                               std::uint64_t budget) {
        int end = needs.blocks.begin;
        for (; end < config.layers(); ++end) {
            needs.blocks.end = end + 1;
            if (estimated_bytes(config, needs, dtype, weights) > budget) break;
        }
        return end;
    }

protected:
    Family(const Config& config, const Placement& placement, const Needs& needs)
        : config_(config), placement_(placement.resolved()), needs_(needs), blocks_(config.layers()) {
        require(
            needs.blocks.begin >= 0 && needs.blocks.begin <= needs.blocks.end && needs.blocks.end <= config.layers(),
            Derived::family, ": blocks [", needs.blocks.begin, ", ", needs.blocks.end, ") are outside the model's ",
            config.layers(), " blocks");
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i) blocks_[i].emplace();
    }

    void finish() {}  // what a family does once its tensors are in place (Llama stacks q|k|v)

    Needs everything() const { return {{0, depth()}, true, true}; }

    // f(i, block) for each block `needs` asks for that this model built.
    template <class Self, class F>
    static void each_block(Self& m, const Needs& needs, F&& f) {
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i)
            if (m.blocks_[i]) f(i, *m.blocks_[i]);
    }

    const at::Tensor& need(const at::Tensor& t, std::string_view what) const {
        if (!t.defined())
            fail(Derived::family, ": ", what, " was not loaded (load the model with the Needs that include it)");
        return t;
    }
    const Block& layer(int i) const {
        require(i >= 0 && i < depth(), Derived::family, ": block ", i, " does not exist (the model has ", depth(),
                " blocks)");
        require(blocks_[i].has_value(), Derived::family, ": block ", i,
                " was not loaded (load the model for a slice that includes it)");
        return *blocks_[i];
    }
    // A block's input must be [batch, tokens, d] with as many tokens as its context was built for
    // (after those a prefix holds).
    template <class Context>
    void check_input(const at::Tensor& x, const Context& ctx, const BlockHooks& hook) const {
        const auto d = self().d_model();
        require(x.dim() == 3 && x.size(2) == d, Derived::family, ": block input must be [batch, tokens, ", d, "]");
        require(x.size(1) + hook.offset() == ctx.length, Derived::family, ": ", x.size(1), " tokens",
                hook.prefix ? " after the prefix" : "", " but the context was built for ", ctx.length);
    }
    void check_ids(const at::Tensor& ids) const {
        const auto T = ids.size(-1), n = self().context_length();
        require(T <= n, Derived::family, ": ", T, " tokens exceed the context_length of ", n);
        check_token_ids(ids, token_embedding().size(0));
    }

    Config config_;
    Placement placement_;
    Needs needs_;
    at::Tensor embedding_;  // W_E [V, d]
    std::vector<std::optional<Block>> blocks_;

private:
    const Derived& self() const { return static_cast<const Derived&>(*this); }

    static constexpr bool has_final_norm() {
        return requires(const Derived& d, const at::Tensor& x) { d.final_norm(x); };
    }
    at::Tensor normalized(const at::Tensor& x) const {
        if constexpr (has_final_norm())
            return self().final_norm(x);
        else
            return x;
    }
};

}  // namespace inputrep
