#pragma once
// An attention-only transformer (Elhage et al. 2021, "A Mathematical Framework for Transformer
// Circuits"), TransformerLens names: the worked example of docs/extending.md, "Adding a family".
//   x_0 = W_E[ids] + W_pos[0..T)
//   x   = x + attn(LN(x))                          (pre-LN, no MLP: blocks have no mlp_out)
//   logits = LN_final(x) · W_U
// tests/test_hooks.cpp checks its hook points and inverts a prompt through it.
#include <inputrep/model/family.hpp>

namespace example {

using namespace inputrep;

struct AttnOnlyConfig {
    std::int64_t d_vocab = 100, n_ctx = 32, d_model = 64, n_layers = 2, n_heads = 4;

    int layers() const { return static_cast<int>(n_layers); }

    // Each config.json key once: read_config and write_config walk this list (model/config.hpp).
    static constexpr auto keys() {
        using C = AttnOnlyConfig;
        return std::tuple{Key{"d_vocab", &C::d_vocab, positive}, Key{"n_ctx", &C::n_ctx, positive},
                          Key{"d_model", &C::d_model, positive}, Key{"n_layers", &C::n_layers, positive},
                          Key{"n_heads", &C::n_heads, positive}};
    }
    static AttnOnlyConfig from_json(const Json& j) {
        AttnOnlyConfig c;
        read_config(j, "attn-only", c, keys());
        require(c.d_model % c.n_heads == 0, "attn-only: d_model (", c.d_model, ") must be a multiple of n_heads (",
                c.n_heads, ")");
        return c;
    }
    Json to_json() const {
        Json j;
        write_config(j, *this, keys());
        return j;
    }
};

struct AttnOnlyBlock {
    at::Tensor ln_w, ln_b, qkv, qkv_b, out, out_b;  // Linear weights [out, in]; qkv packs q|k|v
};

class AttnOnly : public Family<AttnOnly, AttnOnlyConfig, AttnOnlyBlock> {
    using Base = Family<AttnOnly, AttnOnlyConfig, AttnOnlyBlock>;
    friend Base;

public:
    static constexpr std::string_view family = "attn-only";

    using Context = AttentionContext;

    static InversionDefaults defaults() {
        return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.01, 1e-4}};
    }

    std::int64_t context_length() const { return config_.n_ctx; }
    std::int64_t d_model() const { return config_.d_model; }
    std::int64_t vocab_size() const { return config_.d_vocab; }

    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        return {length, {}, causal ? causal_mask(length, placement_) : at::Tensor(), variant};
    }
    at::Tensor position_offset(std::int64_t length) const { return need(pos_, "W_pos").narrow(0, 0, length); }
    at::Tensor final_norm(const at::Tensor& x) const {
        return at::layer_norm(x, {config_.d_model}, need(ln_w_, "ln_final"), ln_b_);
    }
    at::Tensor head(const at::Tensor& h) const { return at::linear(h, need(unembed_, "unembed.W_U")); }

    // The one list: name, slot, shape, initialisation.
    template <class Self, class Visit>
    static void each_tensor(Self& m, const Needs& needs, Visit&& visit) {
        const auto& c = m.config_;
        const auto d = c.d_model, V = c.d_vocab;
        const auto w = Init::gaussian(0.02), ones = Init{Init::ones}, zeros = Init{};
        if (needs.embedding || needs.head) visit("embed.W_E", m.embedding_, Shape{V, d}, w);
        if (needs.embedding) visit("pos_embed.W_pos", m.pos_, Shape{c.n_ctx, d}, w);
        each_block(m, needs, [&](int i, auto& b) {
            const auto n = "blocks." + std::to_string(i) + ".";
            visit(n + "ln1.w", b.ln_w, Shape{d}, ones), visit(n + "ln1.b", b.ln_b, Shape{d}, zeros);
            visit(n + "attn.W_QKV", b.qkv, Shape{3 * d, d}, w), visit(n + "attn.b_QKV", b.qkv_b, Shape{3 * d}, zeros);
            visit(n + "attn.W_O", b.out, Shape{d, d}, w), visit(n + "attn.b_O", b.out_b, Shape{d}, zeros);
        });
        if (needs.head) {
            visit("ln_final.w", m.ln_w_, Shape{d}, ones), visit("ln_final.b", m.ln_b_, Shape{d}, zeros);
            visit("unembed.W_U", m.unembed_, Shape{V, d}, w);
        }
    }

private:
    using Base::Base;

    // The block as the variant asks; hook(...) records each sub-layer output and says where to stop.
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, const BlockHooks& hook) const {
        const Block& b = layer(i);
        check_input(x, ctx, hook);
        const auto H = config_.n_heads;
        auto h = ctx.variant.norms ? at::layer_norm(x, {config_.d_model}, b.ln_w, b.ln_b) : x;
        AttentionTape unused;
        const Heads heads{x.size(0), x.size(1), H, H, config_.d_model / H};
        auto z = attention(at::linear(h, b.qkv, b.qkv_b), heads, {}, ctx.mask, unused, hook);
        if (hook.reached) return z;  // a point inside attention
        auto attn_out = at::linear(z, b.out, b.out_b);
        if (hook(Hook::attn_out, attn_out)) return attn_out;
        return ctx.variant.attention_residual ? x + attn_out : attn_out;
    }

    at::Tensor pos_, ln_w_, ln_b_, unembed_;
};

}  // namespace example
