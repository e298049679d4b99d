#pragma once
// GPT-J (Wang & Komatsuzaki 2021) with Hugging Face names and layouts.
//   x_0 = W_E[ids]                                                      (no absolute positions)
//   h = ln_1(x);  x = x + out_proj(attn(h)) + fc_out(gelu(fc_in(h)))   (parallel block, one LayerNorm)
//   logits = ln_f(x) · W_lmᵀ + b_lm
// Rotary embedding on the first rotary_dim dims of every head, adjacent pairs (2j, 2j+1) rotated by
// angle p·θ_j with θ_j = 10000^(-2j/rotary_dim) ("rotate_every_two"); the remaining dims pass through.
// q/k/v/out_proj have no bias; weights are nn.Linear [out, in].
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/family.hpp>

namespace inputrep {

struct GPTJConfig {
    // A small GPT-J: GPT-J-6B's vocabulary, context and rotary share of a head (a quarter), at
    // width 256 with 4 heads of 64 and 4 blocks, so untrained runs fit a laptop.
    std::int64_t vocab_size = 50400;
    std::int64_t n_positions = 2048;
    std::int64_t n_embd = 256;
    std::int64_t n_layer = 4;
    std::int64_t n_head = 4;
    std::int64_t rotary_dim = 16;  // 0: the whole head
    std::int64_t n_inner = 0;      // 0: 4·n_embd
    double layer_norm_epsilon = 1e-5;
    double initializer_range = 0.02;
    bool gelu_tanh = true;  // "gelu_new"; "gelu" is the exact erf form
    bool tie_word_embeddings = false;

    std::int64_t head_dim() const { return n_embd / n_head; }
    std::int64_t rotary() const { return rotary_dim > 0 ? rotary_dim : head_dim(); }
    std::int64_t inner() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
    int layers() const { return static_cast<int>(n_layer); }

    static constexpr auto keys() {
        using C = GPTJConfig;
        return std::tuple{Key{"vocab_size", &C::vocab_size, positive},
                          Key{"n_positions", &C::n_positions, positive},
                          Key{"n_embd", &C::n_embd, positive},
                          Key{"n_layer", &C::n_layer, positive},
                          Key{"n_head", &C::n_head, positive},
                          OptionalSize{"rotary_dim", &C::rotary_dim},
                          OptionalSize{"n_inner", &C::n_inner},
                          Key{"layer_norm_epsilon", &C::layer_norm_epsilon, positive},
                          Key{"initializer_range", &C::initializer_range},
                          Choice<C, 3>{"activation_function",
                                       &C::gelu_tanh,
                                       {{{"gelu_new", true}, {"gelu_pytorch_tanh", true}, {"gelu", false}}}},
                          Key{"tie_word_embeddings", &C::tie_word_embeddings}};
    }

    static GPTJConfig from_json(const Json& j) {
        GPTJConfig c;
        read_config(j, "gptj", c, keys());
        require(c.n_embd % c.n_head == 0, "gptj: n_embd (", c.n_embd, ") must be a multiple of n_head (", c.n_head,
                ")");
        require(c.rotary() % 2 == 0 && c.rotary() <= c.head_dim(), "gptj: rotary_dim (", c.rotary(),
                ") must be even and at most the head dimension (", c.head_dim(), ")");
        return c;
    }

    Json to_json() const {
        Json j{{"model_type", "gptj"}, {"architectures", {"GPTJForCausalLM"}}};
        write_config(j, *this, keys());
        return j;
    }
};

struct GPTJBlock {
    at::Tensor ln_1_w, ln_1_b, fc_in_b, fc_out_b;
    Weight q_w, k_w, v_w, out_w, fc_in_w, fc_out_w;
    Weight qkv;  // q|k|v stacked, the named weights views into it: one product instead of three
};

class GPTJ : public Family<GPTJ, GPTJConfig, GPTJBlock> {
    using Base = Family<GPTJ, GPTJConfig, GPTJBlock>;
    friend Base;

public:
    static constexpr std::string_view family = "gptj";
    static constexpr std::array<std::string_view, 1> model_types{"gptj"};
    static constexpr std::int64_t neutral_token = 50256;  // GPT-J reads GPT-2's vocabulary: <|endoftext|>

    using Context = AttentionContext;  // rotary: adjacent pairs, tables [T, rotary_dim/2] in f32

    // Measured on the default shape (untrained, 10-token prompts, through 1 and 4 blocks): GPT-2's
    // Adam defaults recover every token; plain descent needs 0.002 → 0.0002 to do the same (at
    // GPT-2's 0.01 → 0.0001 it recovers 20/30 and 5/30, at 0.03 and above almost none).
    static InversionDefaults defaults() {
        return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.002, 0.0002}};
    }

    std::int64_t context_length() const { return config_.n_positions; }
    std::int64_t d_model() const { return config_.n_embd; }
    std::int64_t vocab_size() const { return config_.vocab_size; }

    // Tables in f32 as Hugging Face builds them: angles p·θ_j for positions p < T.
    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        const auto rd = config_.rotary();
        auto f32 = at::TensorOptions().dtype(at::kFloat);
        auto inv_freq = at::pow(10000.0, at::arange(0, rd, 2, f32) / double(rd)).reciprocal();
        auto angles = at::outer(at::arange(length, f32), inv_freq).to(placement_.device);
        return {length,
                {Rotary::pairs, angles.cos(), angles.sin()},
                causal ? causal_mask(length, placement_) : at::Tensor(),
                variant};
    }

    at::Tensor final_norm(const at::Tensor& x) const {
        return at::layer_norm(x, {config_.n_embd}, need(ln_f_w_, "the final norm ln_f"), ln_f_b_,
                              config_.layer_norm_epsilon);
    }
    at::Tensor head(const at::Tensor& h) const {
        return at::linear(h, config_.tie_word_embeddings ? token_embedding() : lm_head_w_, lm_head_b_);
    }

    // Hugging Face names and initialisation: every weight N(0, initializer_range), biases 0,
    // LayerNorm (1, 0). The attn.bias/masked_bias buffers some files carry are never read.
    template <class Self, class Visit>
    static void each_tensor(Self& m, const Needs& needs, Visit&& visit) {
        const Config& c = m.config_;
        const auto d = c.n_embd, f = c.inner(), V = c.vocab_size;
        const auto w = Init::gaussian(c.initializer_range), ones = Init{Init::ones}, zeros = Init{};
        if (needs.embedding || (needs.head && c.tie_word_embeddings))
            visit("transformer.wte.weight", m.embedding_, Shape{V, d}, w);
        each_block(m, needs, [&](int i, auto& b) {
            const auto n = "transformer.h." + std::to_string(i) + ".";
            visit(n + "ln_1.weight", b.ln_1_w, Shape{d}, ones), visit(n + "ln_1.bias", b.ln_1_b, Shape{d}, zeros);
            visit(n + "attn.q_proj.weight", b.q_w, Shape{d, d}, w),
                visit(n + "attn.k_proj.weight", b.k_w, Shape{d, d}, w);
            visit(n + "attn.v_proj.weight", b.v_w, Shape{d, d}, w),
                visit(n + "attn.out_proj.weight", b.out_w, Shape{d, d}, w);
            visit(n + "mlp.fc_in.weight", b.fc_in_w, Shape{f, d}, w),
                visit(n + "mlp.fc_in.bias", b.fc_in_b, Shape{f}, zeros);
            visit(n + "mlp.fc_out.weight", b.fc_out_w, Shape{d, f}, w),
                visit(n + "mlp.fc_out.bias", b.fc_out_b, Shape{d}, zeros);
        });
        if (needs.head) {
            visit("transformer.ln_f.weight", m.ln_f_w_, Shape{d}, ones),
                visit("transformer.ln_f.bias", m.ln_f_b_, Shape{d}, zeros);
            if (!c.tie_word_embeddings) visit("lm_head.weight", m.lm_head_w_, Shape{V, d}, w);
            visit("lm_head.bias", m.lm_head_b_, Shape{V}, zeros);
        }
    }

    static std::int64_t stacked_per_block(const Config& c) {
        return 3 * c.n_embd * c.n_embd;
    }  // q|k|v, for the memory estimate

private:
    using Base::Base;

    void finish() {
        for (auto& layer : blocks_) {
            if (!layer) continue;
            auto& b = *layer;
            const auto d = b.q_w.size(0);
            b.qkv = Weight::cat({b.q_w, b.k_w, b.v_w});
            b.q_w = b.qkv.narrow(0, d), b.k_w = b.qkv.narrow(d, d), b.v_w = b.qkv.narrow(2 * d, d);
        }
    }

    // The block as the context's variant asks: without ln_1, without the residual (GPT-J's one
    // residual carries x past both sub-layers), or without the MLP. Attention and MLP read the same
    // ln_1(x), so there is no resid_mid.
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, const BlockHooks& hook) const {
        const Block& b = layer(i);
        const BlockVariant& v = ctx.variant;
        check_input(x, ctx, hook);
        const auto H = config_.n_head;
        auto h = v.norms ? at::layer_norm(x, {config_.n_embd}, b.ln_1_w, b.ln_1_b, config_.layer_norm_epsilon) : x;
        AttentionTape unused;
        auto z =
            attention(b.qkv(h), {x.size(0), x.size(1), H, H, config_.head_dim()}, ctx.rotary, ctx.mask, unused, hook);
        if (hook.reached) return z;  // a point inside attention
        auto y = b.out_w(z);
        if (hook(Hook::attn_out, y)) return y;
        if (v.mlp) {
            auto m = b.fc_out_w(at::gelu(b.fc_in_w(h, b.fc_in_b), config_.gelu_tanh ? "tanh" : "none"), b.fc_out_b);
            if (hook(Hook::mlp_out, m)) return m;
            y = y + m;
        }
        return v.attention_residual ? x + y : y;
    }

    at::Tensor ln_f_w_, ln_f_b_, lm_head_w_, lm_head_b_;
};

}  // namespace inputrep
