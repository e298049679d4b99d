#pragma once
// Llama 1/2/3 (Touvron et al. 2023; Meta 2024) and Mistral (Jiang et al. 2023) with Hugging Face
// names and layouts. Mistral is this model with model_type "mistral" and a sliding window.
//   x_0 = W_E[ids]                                                  (no absolute positions)
//   h   = RMSNorm(x);  x = x + o(attn(RoPE(q(h)), RoPE(k(h)), v(h)))
//   h   = RMSNorm(x);  x = x + down(silu(gate(h)) ⊙ up(h))           (SwiGLU)
//   logits = RMSNorm(x) · W_Uᵀ                                       (W_U = W_E when tied)
//   RMSNorm(x) = w · x / sqrt(mean(x²) + eps), computed in f32
//   RoPE: position p turns the pair (x_i, x_{i+hd/2}) by p·θ^(−2i/hd) (HF's rotate-half layout;
//   Meta/llama2.c weights are permuted into it on load, so there is one attention code path)
//   GQA: kv head j serves query heads j·g .. j·g+g−1, g = heads / kv_heads
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <inputrep/io/gguf.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/llama2c.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/family.hpp>

namespace inputrep {

// Llama 3.1's long-context rewrite of the rotary frequencies (rope_scaling.rope_type "llama3"):
// wavelengths below original/high_freq_factor are kept, those above original/low_freq_factor are
// stretched by `factor`, and the band between is blended.
struct Llama3RopeScaling {
    double factor = 8.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    std::int64_t original_max_position_embeddings = 8192;
};

// The default shape is the seed's small comparison Llama (hidden 256, intermediate 4·256, 8 layers,
// LlamaConfig's eps 1e-6, θ 1e4, 2048 positions, untied) with 8 heads of 32 instead of the 32
// heads of 8 it got by accident, and Llama-2's vocabulary of 32000 so its tokenizer fits.
struct LlamaConfig {
    std::string model_type = "llama";  // "llama" or "mistral"
    std::int64_t vocab_size = 32000;
    std::int64_t hidden_size = 256;
    std::int64_t intermediate_size = 1024;
    std::int64_t num_hidden_layers = 8;
    std::int64_t num_attention_heads = 8;
    std::int64_t num_key_value_heads = 0;  // 0: num_attention_heads (no GQA)
    std::int64_t head_dim = 0;             // 0: hidden_size / num_attention_heads
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    std::optional<Llama3RopeScaling> rope_scaling;
    std::int64_t max_position_embeddings = 2048;
    bool tie_word_embeddings = false;
    std::optional<std::int64_t> sliding_window;  // Mistral: a query sees at most this many keys

    int layers() const { return static_cast<int>(num_hidden_layers); }
    std::int64_t kv_heads() const { return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads; }
    std::int64_t head_size() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }

    // inv_freq_i = θ^(−2i/hd) for i < hd/2, rescaled by rope_scaling (HF's _compute_llama3_parameters).
    std::vector<double> rope_frequencies() const {
        const auto hd = head_size();
        std::vector<double> inv(hd / 2);
        for (std::int64_t i = 0; i < hd / 2; ++i) inv[i] = std::pow(rope_theta, -2.0 * double(i) / double(hd));
        if (!rope_scaling) return inv;
        const auto& s = *rope_scaling;
        const double original = double(s.original_max_position_embeddings);
        for (auto& f : inv) {
            const double wavelength = 2 * std::numbers::pi / f;
            if (wavelength < original / s.high_freq_factor) continue;
            if (wavelength > original / s.low_freq_factor) {
                f /= s.factor;
                continue;
            }
            const double smooth =
                (original / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            f = (1 - smooth) * f / s.factor + smooth * f;
        }
        return inv;
    }

    static constexpr auto keys() {
        using C = LlamaConfig;
        return std::tuple{Key{"vocab_size", &C::vocab_size, positive},
                          Key{"hidden_size", &C::hidden_size, positive},
                          Key{"intermediate_size", &C::intermediate_size, positive},
                          Key{"num_hidden_layers", &C::num_hidden_layers, positive},
                          Key{"num_attention_heads", &C::num_attention_heads, positive},
                          OptionalSize{"num_key_value_heads", &C::num_key_value_heads},
                          OptionalSize{"head_dim", &C::head_dim},
                          Key{"rms_norm_eps", &C::rms_norm_eps, positive},
                          Key{"rope_theta", &C::rope_theta, positive},
                          Key{"max_position_embeddings", &C::max_position_embeddings, positive},
                          Key{"tie_word_embeddings", &C::tie_word_embeddings}};
    }

    static LlamaConfig from_json(const Json& j) {
        LlamaConfig c;
        c.model_type = config_value<std::string>(j, "model_type", c.model_type);
        require(c.model_type == "llama" || c.model_type == "mistral", "llama: model_type \"", c.model_type,
                "\" is not a Llama-family model (expected \"llama\" or \"mistral\")");
        read_config(j, "llama", c, keys());
        c.rope_scaling = rope_scaling_from_json(j);
        // MistralConfig defaults to a 4096 window when the key is absent; null means none.
        const auto window = j.find("sliding_window");
        const bool windowed = window != j.end() && !window->is_null();
        require(!windowed || c.model_type == "mistral",
                "llama: sliding_window is a Mistral setting; set model_type to \"mistral\" to use it");
        if (windowed)
            c.sliding_window = config_value<std::int64_t>(j, "sliding_window", 0);
        else if (c.model_type == "mistral" && window == j.end())
            c.sliding_window = 4096;
        const auto act = config_value<std::string>(j, "hidden_act", "silu");
        require(act == "silu", "llama: hidden_act \"", act, "\" is not supported (only silu)");
        require(!config_value<bool>(j, "attention_bias", false) && !config_value<bool>(j, "mlp_bias", false),
                "llama: attention_bias / mlp_bias are not supported");

        require(c.head_dim > 0 || c.hidden_size % c.num_attention_heads == 0, "llama: hidden_size (", c.hidden_size,
                ") must be a multiple of num_attention_heads (", c.num_attention_heads, ") unless head_dim is given");
        require(c.head_size() % 2 == 0, "llama: the head size (", c.head_size(),
                ") must be even for rotary embeddings");
        require(c.num_attention_heads % c.kv_heads() == 0, "llama: num_attention_heads (", c.num_attention_heads,
                ") must be a multiple of num_key_value_heads (", c.kv_heads(), ")");
        require(!c.sliding_window || *c.sliding_window > 0, "llama: sliding_window must be positive or null");
        return c;
    }

    Json to_json() const {
        Json scaling = nullptr;
        if (rope_scaling)
            scaling = {{"rope_type", "llama3"},
                       {"factor", rope_scaling->factor},
                       {"low_freq_factor", rope_scaling->low_freq_factor},
                       {"high_freq_factor", rope_scaling->high_freq_factor},
                       {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings}};
        Json j{{"model_type", model_type},
               {"architectures", {model_type == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"}},
               {"hidden_act", "silu"},
               {"rope_scaling", scaling},
               {"sliding_window", sliding_window ? Json(*sliding_window) : Json(nullptr)}};
        write_config(j, *this, keys());
        return j;
    }

private:
    static std::optional<Llama3RopeScaling> rope_scaling_from_json(const Json& j) {
        auto it = j.find("rope_scaling");
        if (it == j.end() || it->is_null()) return std::nullopt;
        require(it->is_object(), "llama: rope_scaling must be an object or null (", it->dump(), ")");
        // Older configs name the kind "type", newer ones "rope_type".
        const auto type =
            config_value<std::string>(*it, "rope_type", config_value<std::string>(*it, "type", "default"));
        if (type == "default") return std::nullopt;
        require(type == "llama3", "llama: rope_scaling type \"", type,
                "\" is not supported (only \"llama3\" and \"default\")");
        Llama3RopeScaling s;
        s.factor = config_value<double>(*it, "factor", s.factor);
        s.low_freq_factor = config_value<double>(*it, "low_freq_factor", s.low_freq_factor);
        s.high_freq_factor = config_value<double>(*it, "high_freq_factor", s.high_freq_factor);
        s.original_max_position_embeddings =
            config_value<std::int64_t>(*it, "original_max_position_embeddings", s.original_max_position_embeddings);
        require(s.factor > 0 && s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0 &&
                    s.original_max_position_embeddings > 0,
                "llama: rope_scaling needs factor > 0, high_freq_factor > low_freq_factor > 0 and "
                "original_max_position_embeddings > 0");
        return s;
    }
};

struct LlamaBlock {
    at::Tensor input_layernorm, post_attention_layernorm;
    Weight q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
    // q|k|v and gate|up stacked, with the named weights as views into them: one matrix
    // product each instead of three and two, in the forward pass and in the gradient.
    Weight qkv, gate_up;
};

class Llama : public Family<Llama, LlamaConfig, LlamaBlock> {
    using Base = Family<Llama, LlamaConfig, LlamaBlock>;
    friend Base;

public:
    static constexpr std::string_view family = "llama";
    static constexpr std::array<std::string_view, 2> model_types{"llama", "mistral"};
    // </s> of Llama 1/2, Mistral and llama2.c's TinyStories models: what occlusion substitutes
    static constexpr std::int64_t neutral_token = 2;
    using Base::block;
    using Base::load;

    using Context = AttentionContext;  // rotary: rotate-half, tables [T, head_size], each frequency twice

    // The seed's rates for its Llama runs (plain descent 0.02 → 0.002 on L1 sums); Adam and the
    // initial scale as for GPT-2, whose embeddings have the same N(0, 0.02) scale untrained.
    static InversionDefaults defaults() {
        return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.02, 0.002}};
    }

    std::int64_t context_length() const { return config_.max_position_embeddings; }
    std::int64_t d_model() const { return config_.hidden_size; }
    std::int64_t vocab_size() const { return config_.vocab_size; }

    // Positions 0..T−1. Causal: a query sees keys up to itself. A sliding window W additionally
    // hides keys more than W−1 positions back (q−W < k ≤ q). Bidirectional drops only the causal
    // part: with a window, a query still sees at most W−1 earlier keys, and every later one.
    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        const auto inv = at::tensor(config_.rope_frequencies(), at::kDouble);
        auto angles = at::outer(at::arange(length, at::kDouble), inv);
        angles = at::cat({angles, angles}, -1);
        Context c{length,
                  {Rotary::half, angles.cos().to(placement_.options()), angles.sin().to(placement_.options())},
                  {},
                  variant};
        const auto q = at::arange(length, at::kLong).unsqueeze(1), k = at::arange(length, at::kLong).unsqueeze(0);
        auto hidden = causal ? k > q : at::zeros({length, length}, at::kBool);
        if (config_.sliding_window) hidden = hidden.logical_or(k <= q - *config_.sliding_window);
        if (hidden.any().item<bool>())
            c.mask = at::zeros({length, length}, at::kFloat)
                         .masked_fill(hidden, -std::numeric_limits<double>::infinity())
                         .to(placement_.options());
        return c;
    }

    // What the input gradient of one block needs from its forward pass.
    struct Tape {
        at::Tensor x, r_1;
        AttentionTape attention;
        at::Tensor mid, r_2, gate_up;
    };

    // The block, recording its tape; the same code path as block().
    at::Tensor block(int i, const at::Tensor& x, const Context& ctx, Tape& tape) const {
        return forward_block(i, x, ctx, BlockHooks{i}, &tape);
    }

    // ∂(Σ dy·block(x))/∂x from the tape: the chain rule written out, input gradients only.
    //   MLP:       out = mid + down(silu(gate) ⊙ up),   gate|up = W·RMSNorm(mid)
    //   attention: mid = x + o(merge(P·V)),              q|k|v = W·RMSNorm(x)
    at::Tensor block_input_grad(int i, const at::Tensor& dy, const Context& ctx, const Tape& t) const {
        require(ctx.variant == BlockVariant{}, "llama: the written-out input gradient covers whole blocks only");
        const Block& b = layer(i);
        auto dgate_up = swiglu_input_grad(b.down_proj.input_grad(dy), t.gate_up);
        auto dmid = rms_norm_input_grad(b.gate_up.input_grad(dgate_up), t.mid, t.r_2, b.post_attention_layernorm, dy);
        auto dqkv = attention_input_grad(b.o_proj.input_grad(dmid), heads_of(dy), ctx.rotary, t.attention);
        return rms_norm_input_grad(b.qkv.input_grad(dqkv), t.x, t.r_1, b.input_layernorm, dmid);
    }

    at::Tensor final_norm(const at::Tensor& x) const { return rms_norm(x, need(norm_, "the final norm model.norm")); }
    at::Tensor head(const at::Tensor& h) const {
        return at::linear(h, lm_head_.defined() ? lm_head_ : token_embedding());
    }

    // Every tensor `needs` asks for, with its Hugging Face name, the shape the config implies and
    // Hugging Face's initialisation (Linear and Embedding weights N(0, 0.02), RMSNorm weights 1).
    template <class Self, class Visit>
    static void each_tensor(Self& m, const Needs& needs, Visit&& visit) {
        const Config& c = m.config_;
        const auto d = c.hidden_size, ff = c.intermediate_size, q = c.num_attention_heads * c.head_size(),
                   kv = c.kv_heads() * c.head_size();
        const auto w = Init::gaussian(0.02), ones = Init{Init::ones};
        if (needs.embedding || (needs.head && c.tie_word_embeddings))
            visit("model.embed_tokens.weight", m.embedding_, Shape{c.vocab_size, d}, w);
        each_block(m, needs, [&](int i, auto& b) {
            const auto n = "model.layers." + std::to_string(i) + ".";
            visit(n + "input_layernorm.weight", b.input_layernorm, Shape{d}, ones);
            visit(n + "self_attn.q_proj.weight", b.q_proj, Shape{q, d}, w);
            visit(n + "self_attn.k_proj.weight", b.k_proj, Shape{kv, d}, w);
            visit(n + "self_attn.v_proj.weight", b.v_proj, Shape{kv, d}, w);
            visit(n + "self_attn.o_proj.weight", b.o_proj, Shape{d, q}, w);
            visit(n + "post_attention_layernorm.weight", b.post_attention_layernorm, Shape{d}, ones);
            visit(n + "mlp.gate_proj.weight", b.gate_proj, Shape{ff, d}, w);
            visit(n + "mlp.up_proj.weight", b.up_proj, Shape{ff, d}, w);
            visit(n + "mlp.down_proj.weight", b.down_proj, Shape{d, ff}, w);
        });
        if (needs.head) {
            visit("model.norm.weight", m.norm_, Shape{d}, ones);
            if (!c.tie_word_embeddings) visit("lm_head.weight", m.lm_head_, Shape{c.vocab_size, d}, w);
        }
    }

    // A Hugging Face folder (config.json + safetensors), a llama2.c .bin checkpoint or a GGUF file.
    static Llama load(const std::filesystem::path& path, const Placement& placement, const Needs& needs) {
        if (path.extension() == ".bin" && std::filesystem::is_regular_file(path)) {
            auto file = Llama2cCheckpoint::open(path);
            return load(Config::from_json(file.config()), file, placement, needs);
        }
        if (path.extension() == ".gguf" && std::filesystem::is_regular_file(path)) {
            auto file = GgufFile::open(path);
            require(file.architecture() == "llama", path.string(), ": a ", file.architecture(),
                    " GGUF file, not a Llama");
            return load(Config::from_json(file.config()), file, placement, needs);
        }
        return Base::load(path, placement, needs);
    }

    // What finish() stacks in one block (q|k|v and gate|up), for the memory estimate.
    static std::int64_t stacked_per_block(const Config& c) {
        return (c.num_attention_heads + 2 * c.kv_heads()) * c.head_size() * c.hidden_size +
               2 * c.intermediate_size * c.hidden_size;
    }

private:
    using Base::Base;

    void finish() {
        for (auto& layer : blocks_) {
            if (!layer) continue;
            auto& b = *layer;
            const auto q = b.q_proj.size(0), kv = b.k_proj.size(0), ff = b.gate_proj.size(0);
            b.qkv = Weight::cat({b.q_proj, b.k_proj, b.v_proj});
            b.q_proj = b.qkv.narrow(0, q), b.k_proj = b.qkv.narrow(q, kv), b.v_proj = b.qkv.narrow(q + kv, kv);
            b.gate_up = Weight::cat({b.gate_proj, b.up_proj});
            b.gate_proj = b.gate_up.narrow(0, ff), b.up_proj = b.gate_up.narrow(ff, ff);
        }
    }

    // The block as the context's variant asks (the seed's ablations drop the norms, the residual
    // around attention, or the MLP), recording what the input gradient needs.
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, const BlockHooks& hook,
                             Tape* tape = nullptr) const {
        const Block& b = layer(i);
        const BlockVariant& v = ctx.variant;
        check_input(x, ctx, hook);
        Tape unused;
        Tape& t = tape ? *tape : unused;
        t.x = x;
        auto h = v.norms ? rms_norm(x, b.input_layernorm, t.r_1) : x;
        auto z = attention(b.qkv(h), heads_of(x), ctx.rotary, ctx.mask, t.attention, hook);
        if (hook.reached) return z;  // a point inside attention
        auto attn_out = b.o_proj(z);
        if (hook(Hook::attn_out, attn_out)) return attn_out;
        t.mid = v.attention_residual ? x + attn_out : attn_out;
        if (hook(Hook::resid_mid, t.mid) || !v.mlp) return t.mid;
        h = v.norms ? rms_norm(t.mid, b.post_attention_layernorm, t.r_2) : t.mid;
        t.gate_up = b.gate_up(h);
        auto mlp_out = b.down_proj(swiglu(t.gate_up));
        if (hook(Hook::mlp_out, mlp_out)) return mlp_out;
        return t.mid + mlp_out;
    }

    // Each stage below has the ATen expression, which serves every device, dtype and autograd, and
    // a fused loop for f32 on the CPU outside a graph (kernels/cpu.hpp); tests compare the two.

    // In f32 whatever the compute dtype, as HF does: bf16 squares lose the small components.
    // r = 1/sqrt(mean(x²) + eps) is kept for the input gradient.
    at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, at::Tensor& r) const {
        if (cpu::applies(x)) return cpu::rms_norm(x, w, config_.rms_norm_eps, r);
        auto x32 = x.to(at::kFloat);
        r = (x32 * x32).mean(-1, true).add_(config_.rms_norm_eps).rsqrt_();
        return (x32 * r).to(x.scalar_type()) * w;
    }
    at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const {
        at::Tensor r;
        return rms_norm(x, w, r);
    }
    // y = w·x·r: residual + ∂/∂x applied to dy is residual + r·g − x·r³·mean(g·x), g = dy·w.
    static at::Tensor rms_norm_input_grad(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& r,
                                          const at::Tensor& w, const at::Tensor& residual) {
        if (cpu::applies(dy)) return cpu::rms_norm_input_grad(dy, x, r, w, residual);
        auto g = dy * w;  // r is f32: back to the compute dtype, or the next bf16 product refuses it
        return (residual + r * g - x * (r * r * r) * (g * x).mean(-1, true)).to(dy.scalar_type());
    }

    // SwiGLU on stacked gate|up: silu(gate) ⊙ up, and its gradient to gate|up.
    static at::Tensor swiglu(const at::Tensor& gate_up) {
        if (cpu::applies(gate_up)) return cpu::swiglu(gate_up);
        const auto ff = gate_up.size(-1) / 2;
        return at::silu(gate_up.narrow(-1, 0, ff)) * gate_up.narrow(-1, ff, ff);
    }
    static at::Tensor swiglu_input_grad(const at::Tensor& da, const at::Tensor& gate_up) {
        if (cpu::applies(da)) return cpu::swiglu_input_grad(da, gate_up);
        const auto ff = gate_up.size(-1) / 2;
        auto gate = gate_up.narrow(-1, 0, ff), up = gate_up.narrow(-1, ff, ff);
        auto sig = at::sigmoid(gate);
        return at::cat({da * up * sig * (1 + gate * (1 - sig)), da * gate * sig}, -1);
    }

    Heads heads_of(const at::Tensor& x) const {
        return {x.size(0), x.size(1), config_.num_attention_heads, config_.kv_heads(), config_.head_size()};
    }

    at::Tensor norm_, lm_head_;
};

}  // namespace inputrep
