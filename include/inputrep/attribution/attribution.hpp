#pragma once
// Which prompt tokens a next-token prediction rests on (the seed's "Model Interpretability").
// Let ℓ(a) ∈ R^V be the logits a model predicts at position p for the block-0 input a = embed(ids).
//   gradient×input  g_t = Σ_d |∂s/∂a_{t,d} · e_{t,d}|    s = Σ_v ℓ_v (the seed's) or ℓ_argmax,
//                                                        e_t = a_t minus the position embedding
//   occlusion       o_t = Σ_v |ℓ(ids with ids[t] := neutral)_v − ℓ(ids)_v|
//   combined        c_t = ½ (g_t / max g + o_t / max o)
// Every score is then divided by its maximum over the tokens. Tokens the prediction cannot read
// (those after p, through a causal model) score exactly 0.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/model/model.hpp>
#include <inputrep/model/slice.hpp>

namespace inputrep {

enum class AttributionMethod { gradient_x_input, occlusion, combined };

inline std::string_view method_name(AttributionMethod m) {
    switch (m) {
        case AttributionMethod::gradient_x_input:
            return "gradient×input";
        case AttributionMethod::occlusion:
            return "occlusion";
        case AttributionMethod::combined:
            return "combined";
    }
    fail("unknown attribution method ", static_cast<int>(m));
}

inline std::ostream& operator<<(std::ostream& out, AttributionMethod m) { return out << method_name(m); }

// The CLI's spelling: gradient (or gradient_x_input), occlusion, combined.
inline AttributionMethod parse_attribution_method(std::string_view s) {
    if (s == "gradient" || s == "gradient_x_input") return AttributionMethod::gradient_x_input;
    if (s == "occlusion") return AttributionMethod::occlusion;
    if (s == "combined") return AttributionMethod::combined;
    fail("unknown attribution method \"", s, "\" (expected gradient, occlusion or combined)");
}

// The scalar gradient×input differentiates. The seed sums every vocabulary logit, which asks what
// moves the whole distribution; the predicted token's logit asks what made that prediction.
enum class AttributionTarget { logit_sum, predicted_logit };

struct AttributionOptions {
    AttributionTarget target = AttributionTarget::logit_sum;
    std::optional<std::int64_t> neutral_id;  // unset: the family's neutral_token
    std::optional<std::int64_t> position;    // the prediction made at ids[position]; unset: the last token's
    std::optional<int> blocks;               // run blocks [0, blocks) then the head; unset: every block
};

struct AttributionResult {
    AttributionMethod method = AttributionMethod::occlusion;
    std::string model;          // the family, for reports
    int blocks = 0, depth = 0;  // blocks [0, blocks) of the model's depth ran before the head
    std::vector<std::int64_t> ids;
    std::int64_t position = 0;         // the attributed prediction is the one made at ids[position]
    std::int64_t predicted = 0;        // its argmax token
    xt::xtensor<float, 1> raw;         // per token; combined: the mean of the two normalised scores
    xt::xtensor<float, 1> normalised;  // raw / max raw (all 0 when nothing moved the prediction)
};

namespace detail {

// The prediction made at ids[position], through blocks [0, blocks) and the head.
struct Attributed {
    std::int64_t position;
    int blocks;
    // The tokens it reads, [first, position]: causal attention hides the later ones, and with no
    // block nothing mixes positions, so it reads its own token alone. The rest score exactly 0
    // without being run. Run, they would score rounding noise, not 0: OpenBLAS rounds a GEMM row
    // differently by its place in the batch, so equal rows of two sequences need not agree.
    std::int64_t first() const { return blocks == 0 ? position : 0; }
    std::int64_t count() const { return position + 1 - first(); }
};

struct Scores {
    xt::xtensor<float, 1> raw;
    std::int64_t predicted;
};

inline xt::xtensor<float, 1> host_scores(const at::Tensor& t) {
    const at::Tensor h = t.detach().to(at::kCPU, at::kFloat).contiguous();
    return xt::adapt(h.data_ptr<float>(), std::array<std::size_t, 1>{std::size_t(h.numel())});
}

// Scores v of tokens [first, first + |v|) among T tokens; the others stay 0.
inline xt::xtensor<float, 1> placed(const at::Tensor& v, std::int64_t first, std::int64_t T) {
    xt::xtensor<float, 1> out = xt::zeros<float>({std::size_t(T)});
    xt::view(out, xt::range(first, first + v.numel())) = host_scores(v);
    return out;
}

// Scores are non-negative; an all-zero vector (no token moved the prediction) stays zero rather
// than becoming 0/0.
inline xt::xtensor<float, 1> max_normalised(const xt::xtensor<float, 1>& v) {
    const float top = xt::amax(v)();
    if (top > 0) return v / top;
    return xt::zeros_like(v);
}

// Logits [B, V] at the attributed position of inputs x [B, position + 1, d].
template <class M>
at::Tensor next_token_logits(const M& model, const at::Tensor& x, const Attributed& a) {
    const auto ctx = model.context(x.size(1), true);
    const at::Tensor h = apply_slice(BlockSlice{{0, a.blocks}}, model, x, ctx);
    return model.unembed(h.narrow(1, a.position, 1)).squeeze(1);
}

template <class M>
Scores gradient_x_input(const M& model, const at::Tensor& ids, const Attributed& a, AttributionTarget target) {
    at::AutoGradMode enable_grad(true);  // a caller's NoGradGuard must not silently zero the scores
    const at::Tensor seen = ids.narrow(0, 0, a.position + 1);
    const at::Tensor x = model.embed(seen.unsqueeze(0)).detach().requires_grad_(true);
    const at::Tensor logits = next_token_logits(model, x, a)[0];
    const std::int64_t predicted = logits.argmax().template item<std::int64_t>();
    const at::Tensor s = target == AttributionTarget::logit_sum ? logits.sum() : logits[predicted];
    const at::Tensor g = torch::autograd::grad({s}, {x})[0];
    // The seed multiplies by the token embedding alone (its leaf was wte(ids); GPT-2 added wpe
    // inside): the position embedding is the same whichever token stands there. ∂s/∂e = ∂s/∂a
    // since a = e + offset.
    const at::Tensor offset = model.position_offset(seen.size(0));
    const at::Tensor e = offset.defined() ? x.detach() - offset : x.detach();
    return {placed((g * e).abs().sum(-1)[0], 0, ids.size(0)), predicted};
}

// One forward pass for every occlusion: row 0 is the prompt up to the prediction, row 1 + j the
// same with token first + j replaced. The baseline rides in the same batch so it meets the same
// kernels as the rows it is compared with.
template <class M>
Scores occlusion(const M& model, const at::Tensor& ids, const Attributed& a, std::int64_t neutral) {
    at::NoGradGuard no_grad;
    const auto first = a.first(), n = a.count();
    at::Tensor batch = ids.narrow(0, 0, a.position + 1).unsqueeze(0).repeat({n + 1, 1});
    batch.narrow(0, 1, n).narrow(1, first, n).diagonal().fill_(neutral);
    const at::Tensor logits = next_token_logits(model, model.embed(batch), a);
    at::Tensor v = (logits.narrow(0, 1, n) - logits[0]).abs().sum(-1);
    v.masked_fill_(ids.narrow(0, first, n) == neutral, 0);  // replacing a token by itself occludes nothing
    return {placed(v, first, ids.size(0)), logits[0].argmax().template item<std::int64_t>()};
}

}  // namespace detail

// Attribute model M's next-token prediction for `ids` to each token. Occlusion runs up to p + 2 copies
// of the prompt in one batch, so its memory grows as T²: the seed's reason to prefer
// gradient×input for long prompts.
template <class M>
AttributionResult attribute(const M& model, std::span<const std::int64_t> ids, AttributionMethod method,
                            const AttributionOptions& options = {}) {
    using Family = family_of_t<M>;
    static_assert(LanguageModel<Family>,
                  "attribute(model, ...): the model must be a model family (GPT2, ...) or Layers<Family, N>");
    const auto T = static_cast<std::int64_t>(ids.size());
    require(T > 0, "attribution: the prompt is empty");
    require(T <= model.context_length(), "attribution: the prompt of ", T, " tokens exceeds the model's context of ",
            model.context_length());
    const auto vocab = model.token_embedding().size(0);
    for (auto id : ids)
        require(id >= 0 && id < vocab, "attribution: token id ", id, " is outside the vocabulary of ", vocab);
    const detail::Attributed a{options.position.value_or(T - 1), options.blocks.value_or(model.depth())};
    require(a.position >= 0 && a.position < T, "attribution: position ", a.position, " is outside the prompt of ", T,
            " tokens");
    require(a.blocks >= 0 && a.blocks <= model.depth(), "attribution: blocks must be in [0, ", model.depth(), "], not ",
            a.blocks);

    const at::Tensor id_tensor =
        at::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), at::kLong).to(model.placement().device);
    auto occlude = [&] {
        std::int64_t neutral;
        if (options.neutral_id)
            neutral = *options.neutral_id;
        else if constexpr (requires { Family::neutral_token; })
            neutral = Family::neutral_token;  // one that carries no content of its own (GPT-2: <|endoftext|>)
        else
            fail("attribution: ", Family::family, " has no default neutral token; set AttributionOptions::neutral_id");
        require(neutral >= 0 && neutral < vocab, "attribution: the neutral token ", neutral,
                " is outside the vocabulary of ", vocab, " (set AttributionOptions::neutral_id)");
        return detail::occlusion(model, id_tensor, a, neutral);
    };
    auto gradient = [&] { return detail::gradient_x_input(model, id_tensor, a, options.target); };

    detail::Scores s = [&]() -> detail::Scores {
        switch (method) {
            case AttributionMethod::gradient_x_input:
                return gradient();
            case AttributionMethod::occlusion:
                return occlude();
            case AttributionMethod::combined: {
                // The author's code averaged occlusion() with occlusion() (a copy-paste slip), so the
                // seed's published "combined" map is occlusion alone; this is the intended mean.
                auto o = occlude();
                auto g = gradient();
                return {0.5f * (detail::max_normalised(g.raw) + detail::max_normalised(o.raw)), o.predicted};
            }
        }
        fail("attribution: unknown method ", static_cast<int>(method));
    }();
    AttributionResult r;
    r.method = method;
    r.model = std::string(Family::family);
    r.blocks = a.blocks;
    r.depth = model.depth();
    r.ids.assign(ids.begin(), ids.end());
    r.position = a.position;
    r.predicted = s.predicted;
    r.normalised = detail::max_normalised(s.raw);
    r.raw = std::move(s.raw);
    return r;
}

}  // namespace inputrep
