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
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/family.hpp>

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
    std::int64_t expanded_length() const {
        return static_cast<std::int64_t>(expansion_factor * double(context_length));
    }
    int layers() const { return static_cast<int>(num_hidden_layers); }

    static constexpr auto keys() {
        using C = MixerConfig;
        return std::tuple{Key{"vocab_size", &C::vocab_size, positive},
                          Key{"hidden_size", &C::hidden_size, positive},
                          Key{"num_hidden_layers", &C::num_hidden_layers, positive},
                          Key{"context_length", &C::context_length, positive},
                          Choice<C, 2>{"token_mixing", &C::expanded, {{{"flat", false}, {"expanded", true}}}},
                          Key{"expansion_factor", &C::expansion_factor},
                          Key{"parallel_convolutions", &C::parallel_convolutions, positive},
                          Key{"tie_word_embeddings", &C::tie_word_embeddings}};
    }

    static MixerConfig from_json(const Json& j) {
        MixerConfig c;
        auto type = config_value<std::string>(j, "model_type", "mixer");
        require(type == "mixer", "mixer: config.json has model_type \"", type, "\", not \"mixer\"");
        read_config(j, "mixer", c, keys());
        if (c.expanded) require_positive("mixer", "expansion_factor", c.expansion_factor);
        require(!c.expanded || c.expanded_length() >= 1, "mixer: expansion_factor ", c.expansion_factor,
                " times context_length ", c.context_length, " leaves no hidden positions");
        return c;
    }
    Json to_json() const {
        Json j{{"model_type", "mixer"}};
        write_config(j, *this, keys());
        return j;
    }
};

struct MixerBlock {
    struct Conv {
        at::Tensor w, b;  // Conv1d layout: weight [out, in, 1], bias [out]
    };
    at::Tensor seq_ln_w, seq_ln_b;
    std::vector<std::vector<Conv>> mixers;  // p mixers, each 1 conv (flat) or 2 with a GELU between (expanded)
    at::Tensor patch_ln_w, patch_ln_b, ff_in_b, ff_out_b;
    Weight ff_in_w, ff_out_w;
};

class Mixer : public Family<Mixer, MixerConfig, MixerBlock> {
    using Base = Family<Mixer, MixerConfig, MixerBlock>;
    friend Base;

public:
    static constexpr std::string_view family = "mixer";
    static constexpr std::array<std::string_view, 1> model_types{"mixer"};  // no neutral token: no fixed vocabulary
    using Conv = Block::Conv;

    struct Context {
        std::int64_t length = 0;
        BlockVariant variant;
    };

    // Measured on the default shape (untrained, 10-token prompts, through 1 and 8 blocks): from the
    // embeddings' own N(0, 1) scale, Adam 0.05 → 0 and the seed's plain descent 0.02 → 0.002 recover
    // every token and end below the shifted input's distance; GPT-2's 0.01 rates do not.
    static InversionDefaults defaults() {
        return {.steps = 500, .init_scale = 1.0, .adam = {0.05, 0.0}, .gradient_descent = {0.02, 0.002}};
    }

    std::int64_t context_length() const { return config_.context_length; }
    std::int64_t d_model() const { return config_.hidden_size; }
    std::int64_t vocab_size() const { return config_.vocab_size; }

    // The triangular weights make every block causal; there is no bidirectional mixer to ask for.
    Context context(std::int64_t length, bool causal, BlockVariant variant = {}) const {
        require(causal,
                "mixer: the token mixing is causal by construction (triangular weights); a bidirectional slice does "
                "not apply");
        require(length <= config_.context_length, "mixer: ", length, " tokens exceed the context_length of ",
                config_.context_length, " (the token-mixing weights are context_length × context_length)");
        return {length, variant};
    }

    // No final norm: the head reads the residual stream.
    at::Tensor head(const at::Tensor& x) const {
        return at::linear(x, need(config_.tie_word_embeddings ? embedding_ : lm_head_, "the head lm_head"));
    }

    // The seed's PyTorch names and PyTorch's defaults, as its untrained mixers had them: Embedding
    // N(0, 1); Conv1d and Linear weights and biases U(±1/√fan_in); LayerNorm (1, 0). A tied matrix
    // is the head's, since the seed ties by handing lm_head's weight to wte.
    template <class Self, class Visit>
    static void each_tensor(Self& m, const Needs& needs, Visit&& visit) {
        const Config& c = m.config_;
        const auto D = c.hidden_size, T = c.context_length, V = c.vocab_size, eT = c.expanded_length();
        const auto ones = Init{Init::ones}, zeros = Init{};
        auto fan_in = [](std::int64_t n) { return Init::bounded(1.0 / std::sqrt(double(n))); };
        if (needs.embedding || (needs.head && c.tie_word_embeddings))
            visit("wte.weight", m.embedding_, Shape{V, D}, c.tie_word_embeddings ? fan_in(D) : Init::gaussian(1.0));
        each_block(m, needs, [&](int i, auto& b) {
            const auto n = "mixerblocks." + std::to_string(i) + ".";
            visit(n + "seq_layernorm.weight", b.seq_ln_w, Shape{D}, ones),
                visit(n + "seq_layernorm.bias", b.seq_ln_b, Shape{D}, zeros);
            for (std::size_t k = 0; k < b.mixers.size(); ++k) {
                const auto conv = n + (b.mixers.size() == 1 ? "conv" : "convs." + std::to_string(k));
                // (out, in) of each conv of one token mixer: T×T, or T→eT→T with the GELU at index 1.
                const std::vector<std::pair<std::int64_t, std::int64_t>> shapes =
                    c.expanded ? std::vector<std::pair<std::int64_t, std::int64_t>>{{eT, T}, {T, eT}}
                               : std::vector<std::pair<std::int64_t, std::int64_t>>{{T, T}};
                for (std::size_t l = 0; l < shapes.size(); ++l) {
                    const auto [out, in] = shapes[l];
                    const auto name = c.expanded ? conv + "." + std::to_string(2 * l) : conv;
                    visit(name + ".weight", b.mixers[k][l].w, Shape{out, in, 1}, fan_in(in));
                    visit(name + ".bias", b.mixers[k][l].b, Shape{out}, fan_in(in));
                }
            }
            visit(n + "patch_layernorm.weight", b.patch_ln_w, Shape{D}, ones),
                visit(n + "patch_layernorm.bias", b.patch_ln_b, Shape{D}, zeros);
            visit(n + "patch_ff.0.weight", b.ff_in_w, Shape{4 * D, D}, fan_in(D)),
                visit(n + "patch_ff.0.bias", b.ff_in_b, Shape{4 * D}, fan_in(D));
            visit(n + "patch_ff.2.weight", b.ff_out_w, Shape{D, 4 * D}, fan_in(4 * D)),
                visit(n + "patch_ff.2.bias", b.ff_out_b, Shape{D}, fan_in(4 * D));
        });
        if (needs.head && !c.tie_word_embeddings) visit("lm_head.weight", m.lm_head_, Shape{V, D}, fan_in(D));
    }

private:
    Mixer(const Config& config, const Placement& placement, const Needs& needs) : Base(config, placement, needs) {
        for (auto& b : blocks_)
            if (b) b->mixers.assign(config.parallel_convolutions, std::vector<Conv>(config.expanded ? 2 : 1));
    }

    // Output rows [from, to) of a causal conv whose input rows are the prefix's `past` [1 or B, P, D]
    // (undefined: none) then `fresh` [B, n, D]: row t sees input rows j ≤ t of the triangle.
    // The weight is expanded to the batch (a bmm): libtorch 1.13's matmul of a matrix and a batch
    // folds the batch and hands back an input gradient that GELU's backward then misreads, so the
    // expanded mixer's gradient was garbage for batches of more than one (the test
    // mixer_gradient_is_the_same_in_a_batch).
    static at::Tensor causal_conv(const Conv& c, const at::Tensor& past, const at::Tensor& fresh, std::int64_t from,
                                  std::int64_t to) {
        const auto P = past.defined() ? past.size(1) : 0, n = P + fresh.size(1);
        auto w = c.w.squeeze(-1).narrow(0, from, to - from).narrow(1, 0, n).tril(from);
        auto batched = [](const at::Tensor& m, const at::Tensor& x) {
            return at::matmul(m.expand({x.size(0), m.size(0), m.size(1)}), x);
        };
        auto y = batched(w.narrow(1, P, n - P), fresh);
        if (P > 0) y = y + batched(w.narrow(1, 0, P), past);
        return y + c.b.narrow(0, from, to - from).unsqueeze(-1);
    }

    // One token mixer over positions P..P+n−1 of h [B, n, D]; each conv's output rows stop at its
    // width (an expanded mixer's e·T). With a prefix, `rows` holds each conv's earlier input rows.
    static at::Tensor token_mix(const std::vector<Conv>& mixer, const at::Tensor& h, at::Tensor* rows,
                                const BlockHooks& hook) {
        const auto P = hook.offset(), L = P + h.size(1);
        at::Tensor in = h;
        for (std::size_t l = 0; l < mixer.size(); ++l) {
            if (l > 0) in = at::gelu(in);
            const auto out = mixer[l].w.size(0);
            const at::Tensor past = rows && rows[l].defined() ? hook.prefix->of_rows(rows[l]) : at::Tensor();
            auto y = causal_conv(mixer[l], past, in, std::min(P, out), std::min(L, out));
            if (rows && hook.prefix->append) rows[l] = hook.prefix->joined(rows[l], in, 1);
            in = y;
        }
        return in;
    }

    // The block as the context's variant asks, token mixing standing where attention stands in a
    // transformer (hook_attn_out) and patch_ff where the MLP stands (hook_mlp_out): without the
    // layer norms, without the residual around the token mixing, or without patch_ff (all three
    // off: the token mixing alone).
    at::Tensor forward_block(int i, const at::Tensor& x, const Context& ctx, const BlockHooks& hook) const {
        const Block& b = layer(i);
        const BlockVariant& v = ctx.variant;
        const auto D = config_.hidden_size;
        check_input(x, ctx, hook);
        auto h = v.norms ? at::layer_norm(x, {D}, b.seq_ln_w, b.seq_ln_b, layer_norm_eps) : x;
        auto* prefix = hook.prefix;
        const auto convs = b.mixers.front().size();
        if (prefix) prefix->rows.resize(b.mixers.size() * convs);
        auto mix = [&](std::size_t k) {
            return token_mix(b.mixers[k], h, prefix ? prefix->rows.data() + k * convs : nullptr, hook);
        };
        auto mixed = mix(0);
        for (std::size_t k = 1; k < b.mixers.size(); ++k) mixed = mixed + mix(k);
        if (hook(Hook::attn_out, mixed)) return mixed;
        auto y = v.attention_residual ? x + mixed : mixed;
        if (hook(Hook::resid_mid, y) || !v.mlp) return y;
        h = v.norms ? at::layer_norm(y, {D}, b.patch_ln_w, b.patch_ln_b, layer_norm_eps) : y;
        auto mlp_out = b.ff_out_w(at::gelu(b.ff_in_w(h, b.ff_in_b)), b.ff_out_b);
        if (hook(Hook::mlp_out, mlp_out)) return mlp_out;
        return y + mlp_out;
    }

    static constexpr double layer_norm_eps = 1e-5;  // nn.LayerNorm's default; the seed never sets it

    at::Tensor lm_head_;
};

}  // namespace inputrep
