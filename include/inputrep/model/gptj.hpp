#pragma once
// GPT-J (Wang & Komatsuzaki 2021) with Hugging Face names and layouts.
//   x_0 = W_E[ids]                                                      (no absolute positions)
//   h = ln_1(x);  x = x + out_proj(attn(h)) + fc_out(gelu(fc_in(h)))   (parallel block, one LayerNorm)
//   logits = ln_f(x) · W_lmᵀ + b_lm
// Rotary embedding on the first rotary_dim dims of every head, adjacent pairs (2j, 2j+1) rotated by
// angle p·θ_j with θ_j = 10000^(-2j/rotary_dim) ("rotate_every_two"); the remaining dims pass through.
// q/k/v/out_proj have no bias; weights are nn.Linear [out, in].
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
#include <inputrep/model/model.hpp>

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

    static GPTJConfig from_json(const Json& j) {
        GPTJConfig c;
        c.vocab_size = config_value<std::int64_t>(j, "vocab_size", c.vocab_size);
        c.n_positions = config_value<std::int64_t>(j, "n_positions", c.n_positions);
        c.n_embd = config_value<std::int64_t>(j, "n_embd", c.n_embd);
        c.n_layer = config_value<std::int64_t>(j, "n_layer", c.n_layer);
        c.n_head = config_value<std::int64_t>(j, "n_head", c.n_head);
        c.rotary_dim = config_value<std::int64_t>(j, "rotary_dim", 0);
        c.n_inner = config_value<std::int64_t>(j, "n_inner", 0);
        c.layer_norm_epsilon = config_value<double>(j, "layer_norm_epsilon", c.layer_norm_epsilon);
        c.initializer_range = config_value<double>(j, "initializer_range", c.initializer_range);
        auto act = config_value<std::string>(j, "activation_function", "gelu_new");
        require(act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu", "gptj: unsupported activation_function \"", act, "\"");
        c.gelu_tanh = act != "gelu";
        c.tie_word_embeddings = config_value<bool>(j, "tie_word_embeddings", false);
        require(c.n_embd > 0 && c.n_head > 0 && c.n_embd % c.n_head == 0, "gptj: n_embd (", c.n_embd,
                ") must be a positive multiple of n_head (", c.n_head, ")");
        require(c.rotary() % 2 == 0 && c.rotary() <= c.head_dim(), "gptj: rotary_dim (", c.rotary(),
                ") must be even and at most the head dimension (", c.head_dim(), ")");
        require(c.n_layer > 0 && c.vocab_size > 0 && c.n_positions > 0, "gptj: n_layer, vocab_size and n_positions must be positive");
        return c;
    }

    Json to_json() const {
        return {{"model_type", "gptj"},           {"architectures", {"GPTJForCausalLM"}},
                {"vocab_size", vocab_size},       {"n_positions", n_positions},
                {"n_embd", n_embd},               {"n_layer", n_layer},
                {"n_head", n_head},               {"rotary_dim", rotary_dim > 0 ? Json(rotary_dim) : Json(nullptr)},
                {"n_inner", n_inner > 0 ? Json(n_inner) : Json(nullptr)},
                {"layer_norm_epsilon", layer_norm_epsilon},
                {"initializer_range", initializer_range},
                {"activation_function", gelu_tanh ? "gelu_new" : "gelu"},
                {"tie_word_embeddings", tie_word_embeddings}};
    }
};

class GPTJ {
public:
    using Config = GPTJConfig;
    static constexpr std::string_view family = "gptj";

    struct Block {
        at::Tensor ln_1_w, ln_1_b, q_w, k_w, v_w, out_w, fc_in_w, fc_in_b, fc_out_w, fc_out_b;
    };

    // Shared by every block call on sequences of one length: the causal mask and the rotary tables.
    struct Context {
        std::int64_t length = 0;
        at::Tensor mask;      // [T, T], -inf above the diagonal; undefined when attention is bidirectional
        at::Tensor cos, sin;  // [T, rotary_dim/2], f32
        BlockVariant variant;
    };

    // Measured on the default shape (untrained, 10-token prompts, through 1 and 4 blocks): GPT-2's
    // Adam defaults recover every token; plain descent needs 0.002 → 0.0002 to do the same (at
    // GPT-2's 0.01 → 0.0001 it recovers 20/30 and 5/30, at 0.03 and above almost none).
    static InversionDefaults defaults() { return {.steps = 500, .init_scale = 0.02, .adam = {0.01, 0.0}, .gradient_descent = {0.002, 0.0002}}; }

    const Config& config() const { return config_; }
    int depth() const { return static_cast<int>(config_.n_layer); }
    std::int64_t context_length() const { return config_.n_positions; }
    std::int64_t d_model() const { return config_.n_embd; }
    std::int64_t vocab_size() const { return config_.vocab_size; }
    Placement placement() const { return placement_; }
    const at::Tensor& token_embedding() const { return need(wte_, "the token embedding wte"); }

    // Tables in f32 as Hugging Face builds them: angles p·θ_j for positions p < T.
    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        Context c{length, {}, {}, {}, variant};
        if (causal)
            c.mask = at::full({length, length}, -std::numeric_limits<double>::infinity(), placement_.options()).triu(1);
        const auto rd = config_.rotary();
        auto f32 = at::TensorOptions().dtype(at::kFloat);
        auto inv_freq = at::pow(10000.0, at::arange(0, rd, 2, f32) / double(rd)).reciprocal();
        auto angles = at::outer(at::arange(length, f32), inv_freq).to(placement_.device);
        c.cos = angles.cos();
        c.sin = angles.sin();
        return c;
    }

    // Positions enter only through the rotation inside attention.
    at::Tensor position_offset(std::int64_t) const { return {}; }

    at::Tensor embed(const at::Tensor& ids) const {
        require(ids.size(-1) <= config_.n_positions, "gptj: ", ids.size(-1), " tokens exceed the context of ", config_.n_positions);
        return at::embedding(token_embedding(), ids);
    }

    at::Tensor block(int i, const at::Tensor& x, const Context& ctx) const { return forward_block(i, x, ctx, nullptr); }

    at::Tensor unembed(const at::Tensor& x) const {
        need(ln_f_w_, "the final norm ln_f");
        auto h = at::layer_norm(x, {config_.n_embd}, ln_f_w_, ln_f_b_, config_.layer_norm_epsilon);
        return at::linear(h, config_.tie_word_embeddings ? token_embedding() : lm_head_w_, lm_head_b_);
    }

    // The whole forward pass with every hook point recorded; logits when the head was loaded.
    // Attention and MLP read the same residual, so there is no hook_resid_mid.
    at::Tensor run_with_cache(const at::Tensor& ids, ActivationCache& cache) const {
        auto x = embed(ids);
        cache.add("hook_embed", x);
        auto ctx = context(ids.size(-1), true);
        for (int i = 0; i < depth(); ++i) {
            cache.add("blocks." + std::to_string(i) + ".hook_resid_pre", x);
            x = forward_block(i, x, ctx, &cache);
            cache.add("blocks." + std::to_string(i) + ".hook_resid_post", x);
        }
        return ln_f_w_.defined() ? unembed(x) : at::Tensor();
    }

    // x [..., T, head_dim]: pairs (2j, 2j+1) of the first rotary_dim dims turned by p·θ_j, the rest
    // unchanged; computed in f32.
    static at::Tensor rotate(const at::Tensor& x, const Context& ctx) {
        const auto rd = 2 * ctx.cos.size(-1), T = x.size(-2);
        auto pairs = x.narrow(-1, 0, rd).to(at::kFloat).unflatten(-1, {rd / 2, 2});
        auto x1 = pairs.select(-1, 0), x2 = pairs.select(-1, 1);
        auto cos = ctx.cos.narrow(0, 0, T), sin = ctx.sin.narrow(0, 0, T);
        auto turned = at::stack({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1).flatten(-2);
        return at::cat({turned, x.narrow(-1, rd, x.size(-1) - rd).to(at::kFloat)}, -1);
    }

    // Every materialised tensor under its Hugging Face name, in model order.
    std::vector<std::pair<std::string, at::Tensor>> named_tensors() const {
        std::vector<std::pair<std::string, at::Tensor>> out;
        auto add = [&](std::string name, const at::Tensor& t) { if (t.defined()) out.emplace_back(std::move(name), t); };
        add("transformer.wte.weight", wte_);
        for (int i = 0; i < depth(); ++i) {
            if (!h_[i]) continue;
            const Block& b = *h_[i];
            auto n = "transformer.h." + std::to_string(i) + ".";
            add(n + "ln_1.weight", b.ln_1_w), add(n + "ln_1.bias", b.ln_1_b);
            add(n + "attn.q_proj.weight", b.q_w), add(n + "attn.k_proj.weight", b.k_w);
            add(n + "attn.v_proj.weight", b.v_w), add(n + "attn.out_proj.weight", b.out_w);
            add(n + "mlp.fc_in.weight", b.fc_in_w), add(n + "mlp.fc_in.bias", b.fc_in_b);
            add(n + "mlp.fc_out.weight", b.fc_out_w), add(n + "mlp.fc_out.bias", b.fc_out_b);
        }
        add("transformer.ln_f.weight", ln_f_w_), add("transformer.ln_f.bias", ln_f_b_);
        add("lm_head.weight", lm_head_w_), add("lm_head.bias", lm_head_b_);
        return out;
    }

    // Hugging Face initialisation: every weight N(0, initializer_range), biases 0, LayerNorm (1, 0).
    static GPTJ untrained(const Config& config, const Placement& placement, std::uint64_t seed, const Needs& needs) {
        GPTJ m(config, placement, needs);
        auto normal = [&](at::IntArrayRef s, const std::string& name) { return init::normal(s, config.initializer_range, seed, name, placement); };
        auto zeros = [&](at::IntArrayRef s) { return init::constant(s, 0.0, placement); };
        auto ones = [&](at::IntArrayRef s) { return init::constant(s, 1.0, placement); };
        m.build(needs, [&](const std::string& name, at::IntArrayRef shape) {
            if (name.ends_with("ln_1.weight") || name.ends_with("ln_f.weight")) return ones(shape);
            if (name.ends_with(".bias")) return zeros(shape);
            return normal(shape, name);
        });
        return m;
    }

    // The attn.bias/masked_bias buffers some files carry are never read.
    static GPTJ load(const std::filesystem::path& folder, const Placement& placement, const Needs& needs) {
        auto config = Config::from_json(read_config(folder));
        auto ckpt = Checkpoint::open(folder);
        return load(config, ckpt, placement, needs);
    }

    static GPTJ load(const Config& config, const Checkpoint& ckpt, const Placement& placement, const Needs& needs) {
        GPTJ m(config, placement, needs);
        m.build(needs, [&](const std::string& name, at::IntArrayRef shape) { return ckpt.load(name, placement, shape); });
        return m;
    }

private:
    GPTJ(const Config& config, const Placement& placement, const Needs& needs)
        : config_(config), placement_(placement.resolved()), h_(config.n_layer) {
        require(needs.blocks.begin >= 0 && needs.blocks.begin <= needs.blocks.end && needs.blocks.end <= config.n_layer,
                "gptj: blocks [", needs.blocks.begin, ", ", needs.blocks.end, ") are outside the model's ", config.n_layer, " blocks");
    }

    // One list of what `needs` materialises, with names and shapes; `make` reads or draws each tensor.
    template <class Make>
    void build(const Needs& needs, Make&& make) {
        const auto d = config_.n_embd, f = config_.inner(), V = config_.vocab_size;
        if (needs.embedding || (needs.head && config_.tie_word_embeddings)) wte_ = make("transformer.wte.weight", {V, d});
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i) {
            auto n = "transformer.h." + std::to_string(i) + ".";
            h_[i] = Block{make(n + "ln_1.weight", {d}),         make(n + "ln_1.bias", {d}),
                          make(n + "attn.q_proj.weight", {d, d}), make(n + "attn.k_proj.weight", {d, d}),
                          make(n + "attn.v_proj.weight", {d, d}), make(n + "attn.out_proj.weight", {d, d}),
                          make(n + "mlp.fc_in.weight", {f, d}),   make(n + "mlp.fc_in.bias", {f}),
                          make(n + "mlp.fc_out.weight", {d, f}),  make(n + "mlp.fc_out.bias", {d})};
        }
        if (needs.head) {
            ln_f_w_ = make("transformer.ln_f.weight", {d});
            ln_f_b_ = make("transformer.ln_f.bias", {d});
            if (!config_.tie_word_embeddings) lm_head_w_ = make("lm_head.weight", {V, d});
            lm_head_b_ = make("lm_head.bias", {V});
        }
    }

    const at::Tensor& need(const at::Tensor& t, std::string_view what) const {
        if (!t.defined()) fail("gptj: ", what, " was not loaded (load the model with the Needs that include it)");
        return t;
    }
    const Block& layer(int i) const {
        require(i >= 0 && i < depth(), "gptj: block ", i, " does not exist (the model has ", depth(), " blocks)");
        require(h_[i].has_value(), "gptj: block ", i, " was not loaded (load the model for a slice that includes it)");
        return *h_[i];
    }

    // The block as the context's variant asks: without ln_1, without the residual (GPT-J's one
    // residual carries x past both sub-layers), or without the MLP.
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, ActivationCache* cache) const {
        const Block& b = layer(i);
        const BlockVariant& v = ctx.variant;
        require(x.dim() == 3 && x.size(2) == config_.n_embd, "gptj: block input must be [batch, tokens, ", config_.n_embd, "]");
        require(x.size(1) == ctx.length, "gptj: ", x.size(1), " tokens but the context was built for ", ctx.length);
        auto h = v.norms ? at::layer_norm(x, {config_.n_embd}, b.ln_1_w, b.ln_1_b, config_.layer_norm_epsilon) : x;
        auto y = attention(b, h, ctx);
        if (cache) cache->add("blocks." + std::to_string(i) + ".hook_attn_out", y);
        if (v.mlp) {
            auto m = mlp(b, h);
            if (cache) cache->add("blocks." + std::to_string(i) + ".hook_mlp_out", m);
            y = y + m;
        }
        return v.attention_residual ? x + y : y;
    }

    // Scores and softmax in f32, as Hugging Face computes them, whatever the weights' dtype.
    at::Tensor attention(const Block& b, const at::Tensor& h, const Context& ctx) const {
        const auto B = h.size(0), T = h.size(1), D = config_.n_embd, H = config_.n_head, hd = D / H;
        auto heads = [&](const at::Tensor& w) { return at::linear(h, w).view({B, T, H, hd}).transpose(1, 2); };
        auto q = rotate(heads(b.q_w), ctx), k = rotate(heads(b.k_w), ctx), v = heads(b.v_w);
        auto scores = at::matmul(q, k.transpose(-2, -1)).div_(std::sqrt(double(hd)));
        if (ctx.mask.defined()) scores.add_(ctx.mask);
        auto y = at::matmul(at::softmax(scores, -1).to(v.scalar_type()), v).transpose(1, 2).reshape({B, T, D});
        return at::linear(y, b.out_w);
    }

    at::Tensor mlp(const Block& b, const at::Tensor& h) const {
        auto u = at::linear(h, b.fc_in_w, b.fc_in_b);
        return at::linear(at::gelu(u, config_.gelu_tanh ? "tanh" : "none"), b.fc_out_w, b.fc_out_b);
    }

    Config config_;
    Placement placement_;
    at::Tensor wte_, ln_f_w_, ln_f_b_, lm_head_w_, lm_head_b_;
    std::vector<std::optional<Block>> h_;
};

}  // namespace inputrep
