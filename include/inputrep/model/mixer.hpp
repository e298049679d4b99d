#pragma once
// The masked mixer (Badger 2024): an MLP-mixer made causal by triangular token-mixing weights.
//   x_0 = W_E[ids]                                                       (no positional encoding)
//   x = x + Σ_k TokenMix_k(seq_layernorm(x));  x = x + patch_ff(patch_layernorm(x))
//   logits = x · W_lmᵀ                                                   (no final norm)
// TokenMix mixes positions, the same matrix for every feature d:
//   flat:      out[b,i,d] = c_i + Σ_{j≤i} W[i,j]·x[b,j,d]                W: T×T (a Conv1d(T, T, 1))
//   expanded:  Conv1d(T, eT, 1) → GELU → Conv1d(eT, T, 1), row i of each weight keeping columns j ≤ i
// parallel_convolutions = p sums p such mixers, each with its own weights and biases. patch_ff is
// Linear(D, 4D) → GELU (exact erf) → Linear(4D, D). The triangle is applied in every forward pass,
// so gradients never reach the upper triangle and the stored weights are never changed.
//
// Tensor names are the seed's PyTorch module names, so its checkpoints load as they are:
//   wte.weight [V, D]; lm_head.weight [V, D] (absent when tied)
//   mixerblocks.N.{seq_layernorm,patch_layernorm}.{weight,bias} [D]
//   mixerblocks.N.patch_ff.0.{weight [4D, D], bias [4D]}, mixerblocks.N.patch_ff.2.{weight [D, 4D], bias [D]}
//   flat:      mixerblocks.N.conv.{weight [T, T, 1], bias [T]}
//   expanded:  mixerblocks.N.conv.0.{weight [eT, T, 1], bias [eT]}, mixerblocks.N.conv.2.{weight [T, eT, 1], bias [T]}
//   p > 1:     mixerblocks.N.convs.K.… in place of mixerblocks.N.conv.…
//
// Sequences shorter than T: because every weight is lower-triangular, the first t outputs of a
// T-long input depend only on its first t positions, so a t-long input runs on the leading t rows
// and columns of each weight. That is exactly the seed's right-padding to T with the padded
// positions' outputs dropped. To compare the padded positions' outputs too, pad the ids to T.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/model.hpp>

namespace inputrep {

struct MixerConfig {
    // The seed's flat TinyStories mixer: D 512, 8 blocks, 512 positions, its 4096-token vocabulary.
    std::int64_t vocab_size = 4096;
    std::int64_t hidden_size = 512;
    std::int64_t num_hidden_layers = 8;
    std::int64_t context_length = 512;
    bool expanded = false;  // token_mixing: "flat" | "expanded"
    double expansion_factor = 1;
    std::int64_t parallel_convolutions = 1;
    bool tie_word_embeddings = false;

    // int(e·T), as the seed's ConvForward computes it.
    std::int64_t expanded_length() const { return static_cast<std::int64_t>(expansion_factor * double(context_length)); }
    int layers() const { return static_cast<int>(num_hidden_layers); }

    static MixerConfig from_json(const Json& j) {
        MixerConfig c;
        auto type = config_value<std::string>(j, "model_type", "mixer");
        require(type == "mixer", "mixer: config.json has model_type \"", type, "\", not \"mixer\"");
        c.vocab_size = config_value<std::int64_t>(j, "vocab_size", c.vocab_size);
        c.hidden_size = config_value<std::int64_t>(j, "hidden_size", c.hidden_size);
        c.num_hidden_layers = config_value<std::int64_t>(j, "num_hidden_layers", c.num_hidden_layers);
        c.context_length = config_value<std::int64_t>(j, "context_length", c.context_length);
        auto mixing = config_value<std::string>(j, "token_mixing", "flat");
        require(mixing == "flat" || mixing == "expanded", "mixer: token_mixing must be \"flat\" or \"expanded\", not \"", mixing, "\"");
        c.expanded = mixing == "expanded";
        c.expansion_factor = config_value<double>(j, "expansion_factor", c.expansion_factor);
        c.parallel_convolutions = config_value<std::int64_t>(j, "parallel_convolutions", c.parallel_convolutions);
        c.tie_word_embeddings = config_value<bool>(j, "tie_word_embeddings", false);
        require(c.hidden_size > 0 && c.num_hidden_layers > 0 && c.context_length > 0 && c.vocab_size > 0,
                "mixer: hidden_size, num_hidden_layers, context_length and vocab_size must be positive");
        require(c.parallel_convolutions >= 1, "mixer: parallel_convolutions must be at least 1");
        require(!c.expanded || c.expanded_length() >= 1, "mixer: expansion_factor ", c.expansion_factor, " times context_length ",
                c.context_length, " leaves no hidden positions");
        return c;
    }

    Json to_json() const {
        return {{"model_type", "mixer"},
                {"vocab_size", vocab_size},
                {"hidden_size", hidden_size},
                {"num_hidden_layers", num_hidden_layers},
                {"context_length", context_length},
                {"token_mixing", expanded ? "expanded" : "flat"},
                {"expansion_factor", expansion_factor},
                {"parallel_convolutions", parallel_convolutions},
                {"tie_word_embeddings", tie_word_embeddings}};
    }
};

class Mixer {
public:
    using Config = MixerConfig;
    static constexpr std::string_view family = "mixer";

    struct Conv {
        at::Tensor w, b;  // Conv1d layout: weight [out, in, 1], bias [out]
    };
    struct Block {
        at::Tensor seq_ln_w, seq_ln_b;
        std::vector<std::vector<Conv>> mixers;  // p mixers, each 1 conv (flat) or 2 with a GELU between (expanded)
        at::Tensor patch_ln_w, patch_ln_b, ff_in_w, ff_in_b, ff_out_w, ff_out_b;
    };

    struct Context {
        std::int64_t length = 0;
        BlockVariant variant;
    };

    // Measured on the default shape (untrained, 10-token prompts, through 1 and 8 blocks): from the
    // embeddings' own N(0, 1) scale, Adam 0.05 → 0 and the seed's plain descent 0.02 → 0.002 recover
    // every token and end below the shifted input's distance; GPT-2's 0.01 rates do not.
    static InversionDefaults defaults() { return {.steps = 500, .init_scale = 1.0, .adam = {0.05, 0.0}, .gradient_descent = {0.02, 0.002}}; }

    const Config& config() const { return config_; }
    int depth() const { return static_cast<int>(config_.num_hidden_layers); }
    std::int64_t context_length() const { return config_.context_length; }
    std::int64_t d_model() const { return config_.hidden_size; }
    std::int64_t vocab_size() const { return config_.vocab_size; }
    Placement placement() const { return placement_; }
    const at::Tensor& token_embedding() const { return need(wte_, "the token embedding wte"); }

    // The triangular weights make every block causal; there is no bidirectional mixer to ask for.
    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        require(causal, "mixer: the token mixing is causal by construction (triangular weights); a bidirectional slice does not apply");
        length_check(length);
        return {length, variant};
    }

    at::Tensor position_offset(std::int64_t) const { return {}; }

    at::Tensor embed(const at::Tensor& ids) const {
        length_check(ids.size(-1));
        return at::embedding(token_embedding(), ids);
    }

    at::Tensor block(int i, const at::Tensor& x, const Context& ctx) const { return forward_block(i, x, ctx, nullptr); }

    at::Tensor unembed(const at::Tensor& x) const {
        return at::linear(x, need(config_.tie_word_embeddings ? wte_ : lm_head_, "the head lm_head"));
    }

    at::Tensor run_with_cache(const at::Tensor& ids, ActivationCache& cache) const {
        auto x = embed(ids);
        cache.add("hook_embed", x);
        auto ctx = context(ids.size(-1), true);
        for (int i = 0; i < depth(); ++i) {
            cache.add("blocks." + std::to_string(i) + ".hook_resid_pre", x);
            x = forward_block(i, x, ctx, &cache);
            cache.add("blocks." + std::to_string(i) + ".hook_resid_post", x);
        }
        return head_ ? unembed(x) : at::Tensor();
    }

    // Every materialised tensor under its name, in model order.
    std::vector<std::pair<std::string, at::Tensor>> named_tensors() const {
        std::vector<std::pair<std::string, at::Tensor>> out;
        if (wte_.defined()) out.emplace_back("wte.weight", wte_);
        for (int i = 0; i < depth(); ++i) {
            if (!blocks_[i]) continue;
            const Block& b = *blocks_[i];
            auto n = "mixerblocks." + std::to_string(i) + ".";
            out.emplace_back(n + "seq_layernorm.weight", b.seq_ln_w);
            out.emplace_back(n + "seq_layernorm.bias", b.seq_ln_b);
            for (std::size_t k = 0; k < b.mixers.size(); ++k)
                for (std::size_t l = 0; l < b.mixers[k].size(); ++l) {
                    auto c = conv_name(i, int(k), int(l));
                    out.emplace_back(c + ".weight", b.mixers[k][l].w);
                    out.emplace_back(c + ".bias", b.mixers[k][l].b);
                }
            out.emplace_back(n + "patch_layernorm.weight", b.patch_ln_w);
            out.emplace_back(n + "patch_layernorm.bias", b.patch_ln_b);
            out.emplace_back(n + "patch_ff.0.weight", b.ff_in_w);
            out.emplace_back(n + "patch_ff.0.bias", b.ff_in_b);
            out.emplace_back(n + "patch_ff.2.weight", b.ff_out_w);
            out.emplace_back(n + "patch_ff.2.bias", b.ff_out_b);
        }
        if (lm_head_.defined()) out.emplace_back("lm_head.weight", lm_head_);
        return out;
    }

    // PyTorch's defaults, as the seed's untrained mixers had them: Embedding N(0, 1); Conv1d and
    // Linear weights and biases U(±1/√fan_in); LayerNorm (1, 0). A tied matrix is the head's, since
    // the seed ties by handing lm_head's weight to wte.
    static Mixer untrained(const Config& config, const Placement& placement, std::uint64_t seed, const Needs& needs) {
        Mixer m(config, placement, needs);
        m.build(needs, [&](const std::string& name, at::IntArrayRef shape, Init init) {
            switch (init.kind) {
                case Init::normal: return init::normal(shape, init.scale, seed, name, placement);
                case Init::uniform: return init::uniform(shape, init.scale, seed, name, placement);
                default: return init::constant(shape, init.kind == Init::ones ? 1.0 : 0.0, placement);
            }
        });
        return m;
    }

    static Mixer load(const std::filesystem::path& folder, const Placement& placement, const Needs& needs) {
        auto config = Config::from_json(read_config(folder));
        auto ckpt = Checkpoint::open(folder);
        return load(config, ckpt, placement, needs);
    }

    static Mixer load(const Config& config, const Checkpoint& ckpt, const Placement& placement, const Needs& needs) {
        Mixer m(config, placement, needs);
        m.build(needs, [&](const std::string& name, at::IntArrayRef shape, Init) { return ckpt.load(name, placement, shape); });
        return m;
    }

private:
    struct Init {
        enum Kind { normal, uniform, ones, zeros } kind;
        double scale = 0;  // σ of normal, bound of uniform
    };

    Mixer(const Config& config, const Placement& placement, const Needs& needs)
        : config_(config), placement_(placement.resolved()), blocks_(config.num_hidden_layers), head_(needs.head) {
        require(needs.blocks.begin >= 0 && needs.blocks.begin <= needs.blocks.end && needs.blocks.end <= config.num_hidden_layers,
                "mixer: blocks [", needs.blocks.begin, ", ", needs.blocks.end, ") are outside the model's ", config.num_hidden_layers,
                " blocks");
    }

    std::string conv_name(int block, int k, int layer) const {
        auto n = "mixerblocks." + std::to_string(block) + (config_.parallel_convolutions == 1 ? ".conv" : ".convs." + std::to_string(k));
        return config_.expanded ? n + "." + std::to_string(2 * layer) : n;
    }

    // One list of what `needs` materialises, with names, shapes and initialisation; `make` reads
    // or draws each tensor.
    template <class Make>
    void build(const Needs& needs, Make&& make) {
        const auto D = config_.hidden_size, T = config_.context_length, V = config_.vocab_size;
        auto bound = [](std::int64_t fan_in) { return Init{Init::uniform, 1.0 / std::sqrt(double(fan_in))}; };
        if (needs.embedding || (needs.head && config_.tie_word_embeddings))
            wte_ = make("wte.weight", {V, D}, config_.tie_word_embeddings ? bound(D) : Init{Init::normal, 1.0});
        // (out, in) of each conv of one token mixer.
        std::vector<std::pair<std::int64_t, std::int64_t>> convs{{T, T}};
        if (config_.expanded) convs = {{config_.expanded_length(), T}, {T, config_.expanded_length()}};
        for (int i = needs.blocks.begin; i < needs.blocks.end; ++i) {
            auto n = "mixerblocks." + std::to_string(i) + ".";
            Block b;
            b.seq_ln_w = make(n + "seq_layernorm.weight", {D}, Init{Init::ones});
            b.seq_ln_b = make(n + "seq_layernorm.bias", {D}, Init{Init::zeros});
            for (int k = 0; k < config_.parallel_convolutions; ++k) {
                auto& mixer = b.mixers.emplace_back();
                for (std::size_t l = 0; l < convs.size(); ++l) {
                    auto [out, in] = convs[l];
                    auto c = conv_name(i, k, int(l));
                    mixer.push_back({make(c + ".weight", {out, in, 1}, bound(in)), make(c + ".bias", {out}, bound(in))});
                }
            }
            b.patch_ln_w = make(n + "patch_layernorm.weight", {D}, Init{Init::ones});
            b.patch_ln_b = make(n + "patch_layernorm.bias", {D}, Init{Init::zeros});
            b.ff_in_w = make(n + "patch_ff.0.weight", {4 * D, D}, bound(D));
            b.ff_in_b = make(n + "patch_ff.0.bias", {4 * D}, bound(D));
            b.ff_out_w = make(n + "patch_ff.2.weight", {D, 4 * D}, bound(4 * D));
            b.ff_out_b = make(n + "patch_ff.2.bias", {D}, bound(4 * D));
            blocks_[i] = std::move(b);
        }
        if (needs.head && !config_.tie_word_embeddings) lm_head_ = make("lm_head.weight", {V, D}, bound(D));
    }

    void length_check(std::int64_t length) const {
        require(length <= config_.context_length, "mixer: ", length, " tokens exceed the context_length of ", config_.context_length,
                " (the token-mixing weights are context_length × context_length)");
    }
    const at::Tensor& need(const at::Tensor& t, std::string_view what) const {
        if (!t.defined()) fail("mixer: ", what, " was not loaded (load the model with the Needs that include it)");
        return t;
    }
    const Block& layer(int i) const {
        require(i >= 0 && i < depth(), "mixer: block ", i, " does not exist (the model has ", depth(), " blocks)");
        require(blocks_[i].has_value(), "mixer: block ", i, " was not loaded (load the model for a slice that includes it)");
        return *blocks_[i];
    }

    // y [B, n, D] → [B, min(t, out), D] through the leading rows and columns of the triangle.
    static at::Tensor causal_conv(const Conv& c, const at::Tensor& y, std::int64_t t) {
        const auto rows = std::min(t, c.w.size(0));
        auto w = c.w.squeeze(-1).narrow(0, 0, rows).narrow(1, 0, y.size(1)).tril();
        return at::matmul(w, y) + c.b.narrow(0, 0, rows).unsqueeze(-1);
    }

    at::Tensor token_mix(const std::vector<Conv>& mixer, const at::Tensor& h) const {
        auto y = causal_conv(mixer.front(), h, h.size(1));
        for (std::size_t l = 1; l < mixer.size(); ++l) y = causal_conv(mixer[l], at::gelu(y), h.size(1));
        return y;
    }

    // The block as the context's variant asks, token mixing standing where attention stands in a
    // transformer: without the layer norms, without the residual around the token mixing, or
    // without patch_ff (all three off: the token mixing alone).
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, ActivationCache* cache) const {
        const Block& b = layer(i);
        const BlockVariant& v = ctx.variant;
        const auto D = config_.hidden_size;
        require(x.dim() == 3 && x.size(2) == D, "mixer: block input must be [batch, tokens, ", D, "]");
        require(x.size(1) == ctx.length, "mixer: ", x.size(1), " tokens but the context was built for ", ctx.length);
        auto h = v.norms ? at::layer_norm(x, {D}, b.seq_ln_w, b.seq_ln_b, layer_norm_eps) : x;
        auto mixed = token_mix(b.mixers.front(), h);
        for (std::size_t k = 1; k < b.mixers.size(); ++k) mixed = mixed + token_mix(b.mixers[k], h);
        auto y = v.attention_residual ? x + mixed : mixed;
        if (!v.mlp) return y;
        if (cache) cache->add("blocks." + std::to_string(i) + ".hook_resid_mid", y);
        h = v.norms ? at::layer_norm(y, {D}, b.patch_ln_w, b.patch_ln_b, layer_norm_eps) : y;
        return y + at::linear(at::gelu(at::linear(h, b.ff_in_w, b.ff_in_b)), b.ff_out_w, b.ff_out_b);
    }

    static constexpr double layer_norm_eps = 1e-5;  // nn.LayerNorm's default; the seed never sets it

    Config config_;
    Placement placement_;
    at::Tensor wte_, lm_head_;
    std::vector<std::optional<Block>> blocks_;
    bool head_ = false;
};

}  // namespace inputrep
