#pragma once
// GPT-2 (Radford et al. 2019) with Hugging Face names and layouts.
//   x_0 = W_E[ids] + W_P[0..T)
//   x   = x + c_proj(attn(ln_1(x)));  x = x + c_proj(gelu(c_fc(ln_2(x))))      (pre-LN block)
//   logits = ln_f(x) · W_Eᵀ                                                    (tied unembedding)
// Conv1D weights are stored [in, out]: y = x·W + b, no transpose.
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/io/gguf.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/family.hpp>

namespace inputrep {

struct GPT2Config {
    std::int64_t vocab_size = 50257;
    std::int64_t n_positions = 1024;
    std::int64_t n_embd = 768;
    std::int64_t n_layer = 12;
    std::int64_t n_head = 12;
    std::int64_t n_inner = 0;  // 0: 4·n_embd
    double layer_norm_epsilon = 1e-5;
    bool gelu_tanh = true;  // "gelu_new"; "gelu" is the exact erf form
    bool tie_word_embeddings = true;
    // The author's GPT-2 scripts built position_ids on the wrong axis, so wpe[0] was added at every
    // position (seed notes §1.1); true reproduces that. inputrep's own key, written only when set.
    bool legacy_positions = false;

    std::int64_t inner() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
    int layers() const { return static_cast<int>(n_layer); }

    static constexpr auto keys() {
        using C = GPT2Config;
        return std::tuple{Key{"vocab_size", &C::vocab_size, positive},
                          Key{"n_positions", &C::n_positions, positive},
                          Key{"n_embd", &C::n_embd, positive},
                          Key{"n_layer", &C::n_layer, positive},
                          Key{"n_head", &C::n_head, positive},
                          OptionalSize{"n_inner", &C::n_inner},
                          Key{"layer_norm_epsilon", &C::layer_norm_epsilon, positive},
                          Choice<C, 3>{"activation_function",
                                       &C::gelu_tanh,
                                       {{{"gelu_new", true}, {"gelu_pytorch_tanh", true}, {"gelu", false}}}},
                          Key{"tie_word_embeddings", &C::tie_word_embeddings},
                          Key{"legacy_positions", &C::legacy_positions}};
    }

    static GPT2Config from_json(const Json& j) {
        GPT2Config c;
        c.n_positions = config_value<std::int64_t>(j, "n_ctx", c.n_positions);  // the older name; n_positions wins
        read_config(j, "gpt2", c, keys());
        require(c.n_embd % c.n_head == 0, "gpt2: n_embd (", c.n_embd, ") must be a multiple of n_head (", c.n_head,
                ")");
        return c;
    }
    Json to_json() const {
        Json j{{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_ctx", n_positions}};
        write_config(j, *this, keys());
        if (!legacy_positions) j.erase("legacy_positions");  // not a Hugging Face key: written only when set
        return j;
    }
};

struct GPT2Block {
    at::Tensor ln_1_w, ln_1_b, c_attn_b, attn_proj_b, ln_2_w, ln_2_b, c_fc_b, mlp_proj_b;
    Weight c_attn_w{Weight::conv1d}, attn_proj_w{Weight::conv1d}, c_fc_w{Weight::conv1d}, mlp_proj_w{Weight::conv1d};
};

class GPT2 : public Family<GPT2, GPT2Config, GPT2Block> {
    using Base = Family<GPT2, GPT2Config, GPT2Block>;
    friend Base;

public:
    static constexpr std::string_view family = "gpt2";
    static constexpr std::array<std::string_view, 1> model_types{"gpt2"};  // config.json's model_type
    static constexpr std::int64_t neutral_token = 50256;  // <|endoftext|>, what occlusion substitutes (as the seed)
    using Base::block;
    using Base::load;

    using Context = AttentionContext;  // no rotary tables: positions are added to the embedding

    // Adam from the embeddings' own scale recovers prompts exactly where the seed's plain descent
    // from N(0, 1) does not (measured: docs/defaults.md).
    static InversionDefaults defaults() {
        return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.01, 1e-4}};
    }

    std::int64_t context_length() const { return config_.n_positions; }
    std::int64_t d_model() const { return config_.n_embd; }
    std::int64_t vocab_size() const { return config_.vocab_size; }

    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        return {length, {}, causal ? causal_mask(length, placement_) : at::Tensor(), variant};
    }

    // wpe[0..length), or wpe[0] at every position with legacy_positions (the author's scripts).
    at::Tensor position_offset(std::int64_t length) const {
        const auto& wpe = need(wpe_, "the position embedding wpe");
        return config_.legacy_positions ? wpe.narrow(0, 0, 1).expand({length, config_.n_embd})
                                        : wpe.narrow(0, 0, length);
    }
    // The author's convention on a model already built (a loaded checkpoint has no such key).
    void set_legacy_positions(bool on) { config_.legacy_positions = on; }

    at::Tensor final_norm(const at::Tensor& x) const {
        return at::layer_norm(x, {config_.n_embd}, need(ln_f_w_, "the final norm ln_f"), ln_f_b_,
                              config_.layer_norm_epsilon);
    }
    at::Tensor head(const at::Tensor& h) const {
        return at::matmul(h, (lm_head_.defined() ? lm_head_ : token_embedding()).t());
    }

    // Hub GPT-2 names (no "transformer." prefix; load() accepts either) and Hugging Face's
    // initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2·n_layer)), biases 0,
    // LayerNorm (1, 0). Conv1D weights are [in, out].
    template <class Self, class Visit>
    static void each_tensor(Self& m, const Needs& needs, Visit&& visit) {
        const Config& c = m.config_;
        const auto d = c.n_embd, f = c.inner();
        const auto w = Init::gaussian(0.02), residual = Init::gaussian(0.02 / std::sqrt(2.0 * c.n_layer)),
                   ones = Init{Init::ones}, zeros = Init{};
        if (needs.embedding || needs.head) visit("wte.weight", m.embedding_, Shape{c.vocab_size, d}, w);
        if (needs.embedding) visit("wpe.weight", m.wpe_, Shape{c.n_positions, d}, w);
        each_block(m, needs, [&](int i, auto& b) {
            const auto n = "h." + std::to_string(i) + ".";
            visit(n + "ln_1.weight", b.ln_1_w, Shape{d}, ones), visit(n + "ln_1.bias", b.ln_1_b, Shape{d}, zeros);
            visit(n + "attn.c_attn.weight", b.c_attn_w, Shape{d, 3 * d}, w),
                visit(n + "attn.c_attn.bias", b.c_attn_b, Shape{3 * d}, zeros);
            visit(n + "attn.c_proj.weight", b.attn_proj_w, Shape{d, d}, residual),
                visit(n + "attn.c_proj.bias", b.attn_proj_b, Shape{d}, zeros);
            visit(n + "ln_2.weight", b.ln_2_w, Shape{d}, ones), visit(n + "ln_2.bias", b.ln_2_b, Shape{d}, zeros);
            visit(n + "mlp.c_fc.weight", b.c_fc_w, Shape{d, f}, w),
                visit(n + "mlp.c_fc.bias", b.c_fc_b, Shape{f}, zeros);
            visit(n + "mlp.c_proj.weight", b.mlp_proj_w, Shape{f, d}, residual),
                visit(n + "mlp.c_proj.bias", b.mlp_proj_b, Shape{d}, zeros);
        });
        if (needs.head) {
            visit("ln_f.weight", m.ln_f_w_, Shape{d}, ones), visit("ln_f.bias", m.ln_f_b_, Shape{d}, zeros);
            // An untied head must be in the file: falling back to wte would give silently wrong logits.
            if (!c.tie_word_embeddings) visit("lm_head.weight", m.lm_head_, Shape{c.vocab_size, d}, w);
        }
    }

    // A Hugging Face folder (config.json + safetensors) or a GGUF file.
    static GPT2 load(const std::filesystem::path& path, const Placement& placement, const Needs& needs) {
        if (path.extension() == ".gguf" && std::filesystem::is_regular_file(path)) {
            auto file = GgufFile::open(path);
            require(file.architecture() == "gpt2", path.string(), ": a ", file.architecture(),
                    " GGUF file, not a GPT-2");
            return Base::load(Config::from_json(file.config()), file, placement, needs);
        }
        return Base::load(path, placement, needs);
    }

    // Names with or without the "transformer." prefix; attn.bias/masked_bias buffers are ignored.
    // lm_head.weight is never prefixed.
    static GPT2 load(const Config& config, const Checkpoint& ckpt, const Placement& placement, const Needs& needs) {
        struct Prefixed {
            const Checkpoint& ckpt;
            std::string prefix;
            at::Tensor load(const std::string& name, const Placement& p, at::IntArrayRef shape) const {
                return ckpt.load(name == "lm_head.weight" ? name : prefix + name, p, shape);
            }
        };
        return Base::load(config, Prefixed{ckpt, ckpt.has("transformer.wte.weight") ? "transformer." : ""}, placement,
                          needs);
    }

    // What the input gradient of one block needs from its forward pass.
    struct Tape {
        at::Tensor x, mean_1, rstd_1;
        AttentionTape attention;
        at::Tensor x_mid, mean_2, rstd_2, u;
    };

    // The block, recording its tape; the same code path as block().
    at::Tensor block(int i, const at::Tensor& x, const Context& ctx, Tape& tape) const {
        return forward_block(i, x, ctx, BlockHooks{i}, &tape);
    }

    // ∂(Σ dy·block(x))/∂x from the tape: the chain rule written out, input gradients only.
    at::Tensor block_input_grad(int i, const at::Tensor& dy, const Context& ctx, const Tape& tape) const {
        require(ctx.variant == BlockVariant{}, "gpt2: the written-out input gradient covers whole blocks only");
        const Block& b = layer(i);
        const auto D = config_.n_embd;
        // MLP: out = x_mid + gelu(u)·W_proj, u = LN_2(x_mid)·W_fc
        auto du = at::gelu_backward(b.mlp_proj_w.input_grad(dy), tape.u, gelu());
        auto dx_mid =
            dy + std::get<0>(at::native_layer_norm_backward(b.c_fc_w.input_grad(du), tape.x_mid, {D}, tape.mean_2,
                                                            tape.rstd_2, b.ln_2_w, b.ln_2_b, {true, false, false}));
        // attention: x_mid = x + merge(P·V)·W_proj, P = softmax(Q·Kᵀ/√hd + mask)
        auto dqkv = attention_input_grad(b.attn_proj_w.input_grad(dx_mid), heads_of(dy), {}, tape.attention);
        return dx_mid +
               std::get<0>(at::native_layer_norm_backward(b.c_attn_w.input_grad(dqkv), tape.x, {D}, tape.mean_1,
                                                          tape.rstd_1, b.ln_1_w, b.ln_1_b, {true, false, false}));
    }

private:
    using Base::Base;

    // The block as the context's variant asks (the seed's ablations drop the norms, the residual
    // around attention, or the MLP), recording what the input gradient needs.
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, const BlockHooks& hook,
                             Tape* tape = nullptr) const {
        const Block& b = layer(i);
        check_input(x, ctx, hook);
        Tape unused;
        Tape& t = tape ? *tape : unused;
        const auto D = config_.n_embd;
        const BlockVariant& v = ctx.variant;
        at::Tensor h = x;
        if (v.norms)
            std::tie(h, t.mean_1, t.rstd_1) =
                at::native_layer_norm(x, {D}, b.ln_1_w, b.ln_1_b, config_.layer_norm_epsilon);
        t.x = x;
        auto z = attention(b.c_attn_w(h, b.c_attn_b), heads_of(x), {}, ctx.mask, t.attention, hook);
        if (hook.reached) return z;  // a point inside attention
        auto attn_out = b.attn_proj_w(z, b.attn_proj_b);
        if (hook(Hook::attn_out, attn_out)) return attn_out;
        t.x_mid = v.attention_residual ? x + attn_out : attn_out;
        if (hook(Hook::resid_mid, t.x_mid) || !v.mlp) return t.x_mid;
        h = t.x_mid;
        if (v.norms)
            std::tie(h, t.mean_2, t.rstd_2) =
                at::native_layer_norm(t.x_mid, {D}, b.ln_2_w, b.ln_2_b, config_.layer_norm_epsilon);
        t.u = b.c_fc_w(h, b.c_fc_b);
        auto mlp_out = b.mlp_proj_w(at::gelu(t.u, gelu()), b.mlp_proj_b);
        if (hook(Hook::mlp_out, mlp_out)) return mlp_out;
        return t.x_mid + mlp_out;
    }

    Heads heads_of(const at::Tensor& x) const {
        return {x.size(0), x.size(1), config_.n_head, config_.n_head, config_.n_embd / config_.n_head};
    }

    const char* gelu() const { return config_.gelu_tanh ? "tanh" : "none"; }

    at::Tensor wpe_, ln_f_w_, ln_f_b_, lm_head_;
};

}  // namespace inputrep
