#pragma once
// GPT-2 (Radford et al. 2019) with Hugging Face names and layouts.
//   x_0 = W_E[ids] + W_P[0..T)
//   x   = x + c_proj(attn(ln_1(x)));  x = x + c_proj(gelu(c_fc(ln_2(x))))      (pre-LN block)
//   logits = ln_f(x) · W_Eᵀ                                                    (tied unembedding)
// Conv1D weights are stored [in, out]: y = x·W + b, no transpose.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/kernels/cpu.hpp>
#include <inputrep/model/model.hpp>

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

    std::int64_t inner() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
    int layers() const { return static_cast<int>(n_layer); }

    static GPT2Config from_json(const Json& j) {
        GPT2Config c;
        c.vocab_size = config_value<std::int64_t>(j, "vocab_size", c.vocab_size);
        c.n_positions = config_value<std::int64_t>(j, "n_positions", config_value<std::int64_t>(j, "n_ctx", c.n_positions));
        c.n_embd = config_value<std::int64_t>(j, "n_embd", c.n_embd);
        c.n_layer = config_value<std::int64_t>(j, "n_layer", c.n_layer);
        c.n_head = config_value<std::int64_t>(j, "n_head", c.n_head);
        c.n_inner = config_value<std::int64_t>(j, "n_inner", 0);
        c.layer_norm_epsilon = config_value<double>(j, "layer_norm_epsilon", c.layer_norm_epsilon);
        auto act = config_value<std::string>(j, "activation_function", "gelu_new");
        require(act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu", "gpt2: unsupported activation_function \"", act, "\"");
        c.gelu_tanh = act != "gelu";
        c.tie_word_embeddings = config_value<bool>(j, "tie_word_embeddings", true);
        require(c.n_embd > 0 && c.n_head > 0 && c.n_embd % c.n_head == 0, "gpt2: n_embd (", c.n_embd,
                ") must be a positive multiple of n_head (", c.n_head, ")");
        require(c.n_layer > 0 && c.vocab_size > 0 && c.n_positions > 0, "gpt2: n_layer, vocab_size and n_positions must be positive");
        return c;
    }

    Json to_json() const {
        return {{"model_type", "gpt2"},           {"architectures", {"GPT2LMHeadModel"}},
                {"vocab_size", vocab_size},       {"n_positions", n_positions},
                {"n_ctx", n_positions},           {"n_embd", n_embd},
                {"n_layer", n_layer},             {"n_head", n_head},
                {"n_inner", n_inner > 0 ? Json(n_inner) : Json(nullptr)},
                {"layer_norm_epsilon", layer_norm_epsilon},
                {"activation_function", gelu_tanh ? "gelu_new" : "gelu"},
                {"tie_word_embeddings", tie_word_embeddings}};
    }
};

class GPT2 {
public:
    using Config = GPT2Config;
    static constexpr std::string_view family = "gpt2";

    struct Block {
        at::Tensor ln_1_w, ln_1_b, c_attn_w, c_attn_b, attn_proj_w, attn_proj_b;
        at::Tensor ln_2_w, ln_2_b, c_fc_w, c_fc_b, mlp_proj_w, mlp_proj_b;
    };

    // Shared by every block call on sequences of one length: the causal mask as an additive bias.
    struct Context {
        std::int64_t length = 0;
        at::Tensor mask;  // [T, T], -inf above the diagonal; undefined when attention is bidirectional
        BlockVariant variant;
    };

    // Adam from the embeddings' own scale recovers prompts exactly where the seed's plain descent
    // from N(0, 1) does not (measured: docs/defaults.md).
    static InversionDefaults defaults() { return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.01, 1e-4}}; }

    const Config& config() const { return config_; }
    int depth() const { return static_cast<int>(config_.n_layer); }
    std::int64_t context_length() const { return config_.n_positions; }
    std::int64_t d_model() const { return config_.n_embd; }
    std::int64_t vocab_size() const { return config_.vocab_size; }
    Placement placement() const { return placement_; }
    const at::Tensor& token_embedding() const { return need(wte_, "the token embedding wte"); }

    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        Context c{length, {}, variant};
        if (causal)
            c.mask = at::full({length, length}, -std::numeric_limits<double>::infinity(), placement_.options()).triu(1);
        return c;
    }

    at::Tensor position_offset(std::int64_t length) const { return need(wpe_, "the position embedding wpe").narrow(0, 0, length); }

    at::Tensor embed(const at::Tensor& ids) const {
        require(ids.size(-1) <= config_.n_positions, "gpt2: ", ids.size(-1), " tokens exceed the context of ", config_.n_positions);
        return at::embedding(token_embedding(), ids) + position_offset(ids.size(-1));
    }

    at::Tensor block(int i, const at::Tensor& x, const Context& ctx) const {
        Tape unused;
        return block(i, x, ctx, unused);
    }

    at::Tensor unembed(const at::Tensor& x) const {
        need(ln_f_w_, "the final norm ln_f");
        auto h = at::layer_norm(x, {config_.n_embd}, ln_f_w_, ln_f_b_, config_.layer_norm_epsilon);
        return at::matmul(h, (lm_head_.defined() ? lm_head_ : token_embedding()).t());
    }

    // The whole forward pass with every hook point recorded; logits when the head was loaded.
    at::Tensor run_with_cache(const at::Tensor& ids, ActivationCache& cache) const {
        auto tok = at::embedding(token_embedding(), ids);
        auto pos = position_offset(ids.size(-1)).expand_as(tok);
        cache.add("hook_embed", tok);
        cache.add("hook_pos_embed", pos);
        auto x = tok + pos;
        auto ctx = context(ids.size(-1), true);
        for (int i = 0; i < depth(); ++i) {
            cache.add("blocks." + std::to_string(i) + ".hook_resid_pre", x);
            x = block(i, x, ctx);
            cache.add("blocks." + std::to_string(i) + ".hook_resid_post", x);
        }
        return ln_f_w_.defined() ? unembed(x) : at::Tensor();
    }

    // Every materialised tensor under its name in hub GPT-2 files (no "transformer." prefix), in model order.
    std::vector<std::pair<std::string, at::Tensor>> named_tensors() const {
        std::vector<std::pair<std::string, at::Tensor>> out;
        auto add = [&](std::string name, const at::Tensor& t) { if (t.defined()) out.emplace_back(std::move(name), t); };
        add("wte.weight", wte_), add("wpe.weight", wpe_);
        for (int i = 0; i < depth(); ++i) {
            if (!h_[i]) continue;
            const Block& b = *h_[i];
            auto n = "h." + std::to_string(i) + ".";
            add(n + "ln_1.weight", b.ln_1_w), add(n + "ln_1.bias", b.ln_1_b);
            add(n + "attn.c_attn.weight", b.c_attn_w), add(n + "attn.c_attn.bias", b.c_attn_b);
            add(n + "attn.c_proj.weight", b.attn_proj_w), add(n + "attn.c_proj.bias", b.attn_proj_b);
            add(n + "ln_2.weight", b.ln_2_w), add(n + "ln_2.bias", b.ln_2_b);
            add(n + "mlp.c_fc.weight", b.c_fc_w), add(n + "mlp.c_fc.bias", b.c_fc_b);
            add(n + "mlp.c_proj.weight", b.mlp_proj_w), add(n + "mlp.c_proj.bias", b.mlp_proj_b);
        }
        add("ln_f.weight", ln_f_w_), add("ln_f.bias", ln_f_b_), add("lm_head.weight", lm_head_);
        return out;
    }

    // What the input gradient of one block needs from its forward pass.
    struct Tape {
        at::Tensor x, mean_1, rstd_1;
        AttentionTape attention;  // q, k, v, p as [B, H, T, hd] and [B, H, T, T]
        at::Tensor x_mid, mean_2, rstd_2, u;
    };

    // The block, recording its tape; the same arithmetic as block(), without autograd.
    at::Tensor block(int i, const at::Tensor& x, const Context& ctx, Tape& tape) const {
        const Block& b = layer(i);
        x_check(x);
        const auto D = config_.n_embd;
        const BlockVariant& v = ctx.variant;
        at::Tensor h = x;
        if (v.norms) std::tie(h, tape.mean_1, tape.rstd_1) = at::native_layer_norm(x, {D}, b.ln_1_w, b.ln_1_b, config_.layer_norm_epsilon);
        auto qkv = conv1d(h, b.c_attn_w, b.c_attn_b);
        tape.x = x;
        auto attended = conv1d(attention(qkv, ctx, tape.attention), b.attn_proj_w, b.attn_proj_b);
        tape.x_mid = v.attention_residual ? x + attended : attended;
        if (!v.mlp) return tape.x_mid;
        h = tape.x_mid;
        if (v.norms) std::tie(h, tape.mean_2, tape.rstd_2) = at::native_layer_norm(tape.x_mid, {D}, b.ln_2_w, b.ln_2_b, config_.layer_norm_epsilon);
        tape.u = conv1d(h, b.c_fc_w, b.c_fc_b);
        return tape.x_mid + conv1d(at::gelu(tape.u, gelu()), b.mlp_proj_w, b.mlp_proj_b);
    }

    // ∂(Σ dy·block(x))/∂x from the tape: the chain rule written out, input gradients only.
    at::Tensor block_input_grad(int i, const at::Tensor& dy, const Context& ctx, const Tape& tape) const {
        require(ctx.variant == BlockVariant{}, "gpt2: the written-out input gradient covers whole blocks only");
        const Block& b = layer(i);
        const auto D = config_.n_embd;
        // MLP: out = x_mid + gelu(u)·W_proj, u = LN_2(x_mid)·W_fc
        auto du = at::gelu_backward(conv1d_input_grad(dy, b.mlp_proj_w), tape.u, gelu());
        auto dx_mid = dy + std::get<0>(at::native_layer_norm_backward(conv1d_input_grad(du, b.c_fc_w), tape.x_mid, {D}, tape.mean_2,
                                                                     tape.rstd_2, b.ln_2_w, b.ln_2_b, {true, false, false}));
        // attention: x_mid = x + merge(P·V)·W_proj, P = softmax(Q·Kᵀ/√hd + mask)
        auto dqkv = attention_input_grad(conv1d_input_grad(dx_mid, b.attn_proj_w), tape.attention);
        return dx_mid + std::get<0>(at::native_layer_norm_backward(conv1d_input_grad(dqkv, b.c_attn_w), tape.x, {D}, tape.mean_1,
                                                                  tape.rstd_1, b.ln_1_w, b.ln_1_b, {true, false, false}));
    }

    // Hugging Face initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2·n_layer)),
    // biases 0, LayerNorm (1, 0).
    static GPT2 untrained(const Config& config, const Placement& placement, std::uint64_t seed, const Needs& needs) {
        GPT2 m(config, placement, needs);
        const auto d = config.n_embd, f = config.inner();
        const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * config.n_layer);
        auto p = placement;
        auto normal = [&](at::IntArrayRef s, double sd, const std::string& name) { return init::normal(s, sd, seed, name, p); };
        auto zeros = [&](at::IntArrayRef s) { return init::constant(s, 0.0, p); };
        auto ones = [&](at::IntArrayRef s) { return init::constant(s, 1.0, p); };
        if (needs.embedding || needs.head) m.wte_ = normal({config.vocab_size, d}, std, "wte.weight");
        if (needs.embedding) m.wpe_ = normal({config.n_positions, d}, std, "wpe.weight");
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i) {
            auto n = "h." + std::to_string(i) + ".";
            m.h_[i] = Block{ones({d}), zeros({d}), normal({d, 3 * d}, std, n + "attn.c_attn.weight"), zeros({3 * d}),
                            normal({d, d}, residual_std, n + "attn.c_proj.weight"), zeros({d}),
                            ones({d}), zeros({d}), normal({d, f}, std, n + "mlp.c_fc.weight"), zeros({f}),
                            normal({f, d}, residual_std, n + "mlp.c_proj.weight"), zeros({d})};
        }
        if (needs.head) m.ln_f_w_ = ones({d}), m.ln_f_b_ = zeros({d});
        return m;
    }

    // Names with or without the "transformer." prefix; attn.bias/masked_bias buffers are ignored.
    static GPT2 load(const std::filesystem::path& folder, const Placement& placement, const Needs& needs) {
        auto config = Config::from_json(read_config(folder));
        auto ckpt = Checkpoint::open(folder);
        return load(config, ckpt, placement, needs);
    }

    static GPT2 load(const Config& config, const Checkpoint& ckpt, const Placement& placement, const Needs& needs) {
        GPT2 m(config, placement, needs);
        const std::string prefix = ckpt.has("transformer.wte.weight") ? "transformer." : "";
        const auto d = config.n_embd, f = config.inner();
        auto get = [&](const std::string& name, at::IntArrayRef shape) { return ckpt.load(prefix + name, placement, shape); };
        if (needs.embedding || needs.head) m.wte_ = get("wte.weight", {config.vocab_size, d});
        if (needs.embedding) m.wpe_ = get("wpe.weight", {config.n_positions, d});
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i) {
            auto n = "h." + std::to_string(i) + ".";
            m.h_[i] = Block{get(n + "ln_1.weight", {d}),          get(n + "ln_1.bias", {d}),
                            get(n + "attn.c_attn.weight", {d, 3 * d}), get(n + "attn.c_attn.bias", {3 * d}),
                            get(n + "attn.c_proj.weight", {d, d}),     get(n + "attn.c_proj.bias", {d}),
                            get(n + "ln_2.weight", {d}),          get(n + "ln_2.bias", {d}),
                            get(n + "mlp.c_fc.weight", {d, f}),   get(n + "mlp.c_fc.bias", {f}),
                            get(n + "mlp.c_proj.weight", {f, d}), get(n + "mlp.c_proj.bias", {d})};
        }
        if (needs.head) {
            m.ln_f_w_ = get("ln_f.weight", {d});
            m.ln_f_b_ = get("ln_f.bias", {d});
            // An untied head must be in the file: falling back to wte would give silently wrong logits.
            if (!config.tie_word_embeddings) m.lm_head_ = ckpt.load("lm_head.weight", placement, {config.vocab_size, d});
        }
        return m;
    }

private:
    GPT2(const Config& config, const Placement& placement, const Needs& needs)
        : config_(config), placement_(placement.resolved()), h_(config.n_layer) {
        require(needs.blocks.begin >= 0 && needs.blocks.begin <= needs.blocks.end && needs.blocks.end <= config.n_layer,
                "gpt2: blocks [", needs.blocks.begin, ", ", needs.blocks.end, ") are outside the model's ", config.n_layer, " blocks");
    }

    const at::Tensor& need(const at::Tensor& t, std::string_view what) const {
        if (!t.defined()) fail("gpt2: ", what, " was not loaded (load the model with the Needs that include it)");
        return t;
    }
    const Block& layer(int i) const {
        require(i >= 0 && i < depth(), "gpt2: block ", i, " does not exist (the model has ", depth(), " blocks)");
        require(h_[i].has_value(), "gpt2: block ", i, " was not loaded (load the model for a slice that includes it)");
        return *h_[i];
    }
    void x_check(const at::Tensor& x) const {
        require(x.dim() == 3 && x.size(2) == config_.n_embd, "gpt2: block input must be [batch, tokens, ", config_.n_embd, "]");
    }

    // y = x·W + b over the last axis, as one fused addmm.
    static at::Tensor conv1d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        auto sizes = x.sizes().vec();
        sizes.back() = w.size(1);
        return at::addmm(b, x.reshape({-1, x.size(-1)}), w).view(sizes);
    }

    // ∂(x·W + b)/∂x applied to dy: dy·Wᵀ.
    static at::Tensor conv1d_input_grad(const at::Tensor& dy, const at::Tensor& w) {
        auto sizes = dy.sizes().vec();
        sizes.back() = w.size(0);
        return at::mm(dy.reshape({-1, dy.size(-1)}), w.t()).view(sizes);
    }

    Heads heads_of(const at::Tensor& x) const {
        return {x.size(0), x.size(1), config_.n_head, config_.n_head, config_.n_embd / config_.n_head};
    }

    // Softmax attention from q|k|v [B, T, 3D] to the merged heads [B, T, D]; the fused loop on CPU
    // f32 outside a graph (kernels/cpu.hpp), ATen otherwise.
    at::Tensor attention(const at::Tensor& qkv, const Context& ctx, AttentionTape& t) const {
        const Heads s = heads_of(qkv);
        const auto B = s.batch, T = s.tokens, H = s.heads, hd = s.head_size;
        if (cpu::attention_applies(qkv, s)) {
            auto y = cpu::attention(qkv, {}, {}, ctx.mask, s, t);
            t.q = t.q.view({B, H, T, hd}), t.k = t.k.view({B, H, T, hd}), t.v = t.v.view({B, H, T, hd}), t.p = t.p.view({B, H, T, T});
            return y;
        }
        auto heads = [&](int k) { return qkv.narrow(2, k * H * hd, H * hd).view({B, T, H, hd}).transpose(1, 2); };
        t.q = heads(0), t.k = heads(1), t.v = heads(2);
        auto scores = at::matmul(t.q, t.k.transpose(-2, -1)).mul_(1.0 / std::sqrt(double(hd)));
        if (ctx.mask.defined()) scores.add_(ctx.mask);
        t.p = at::softmax(scores, -1);
        return at::matmul(t.p, t.v).transpose(1, 2).reshape({B, T, H * hd});
    }

    // ∂/∂(q|k|v) from ∂/∂(merged heads): softmax's backward through P = softmax(Q·Kᵀ/√hd + mask).
    at::Tensor attention_input_grad(const at::Tensor& dy, const AttentionTape& t) const {
        const Heads s = heads_of(dy);
        if (cpu::attention_applies(dy, s)) return cpu::attention_input_grad(dy, {}, {}, s, t);
        const auto B = s.batch, T = s.tokens, H = s.heads, hd = s.head_size;
        auto dy_heads = dy.view({B, T, H, hd}).transpose(1, 2);
        auto dp = at::matmul(dy_heads, t.v.transpose(-2, -1));
        auto dv = at::matmul(t.p.transpose(-2, -1), dy_heads);
        auto ds = at::_softmax_backward_data(dp, t.p, -1, t.p.scalar_type()).mul_(1.0 / std::sqrt(double(hd)));
        auto dq = at::matmul(ds, t.k), dk = at::matmul(ds.transpose(-2, -1), t.q);
        auto merge = [&](const at::Tensor& x) { return x.transpose(1, 2).reshape({B, T, H * hd}); };
        return at::cat({merge(dq), merge(dk), merge(dv)}, 2);
    }

    const char* gelu() const { return config_.gelu_tanh ? "tanh" : "none"; }

    Config config_;
    Placement placement_;
    at::Tensor wte_, wpe_, ln_f_w_, ln_f_b_, lm_head_;
    std::vector<std::optional<Block>> h_;
};

}  // namespace inputrep
