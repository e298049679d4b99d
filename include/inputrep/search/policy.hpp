#pragma once
// Exact<Rank>, exact inversion's policy on the optimizer axis: its settings, the built-in rankers
// (search/rank.hpp says what a ranker is) and the default tolerances. The search itself is search/exact.hpp, which only the code that runs a
// search includes (an Experiment<..., Exact<R>> needs it where it runs).
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/model/slice.hpp>
#include <inputrep/search/rank.hpp>

namespace inputrep {

// Every allowed token, in id order.
struct Exhaustive {
    static constexpr std::string_view name = "exhaustive";
    Orders first(const RankQuery& q) const {
        const at::Tensor ids = q.allowed.contiguous();
        return Orders(q.prompts(), {ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel()});
    }
};

// A language model's next-token log-probabilities after each prefix: ids [P, t], t ≥ 1 → [P, V].
using Prior = std::function<at::Tensor(const at::Tensor& prefixes)>;

// Candidates by two estimates of their error, the cheap one first.
//  - Nearest, no model call (one batch). Where the slice outputs the residual stream, the token's
//    embedding is a term of the target: through 1 block of GPT-2 the nearest embedding is the true
//    token. Where the allowed vocabulary is small (at most `calibration_limit` / `calibration`
//    tokens), each token's typical output, its mean over `calibration` occurrences in random
//    contexts (token_centroids, once per experiment), is nearer still on a trained model: on
//    stories260K through 5 blocks the true token's mean rank is 99 (79 from 16 occurrences) against
//    the embeddings' 99, but first 24% of the time against 15%, and merged with them it checks a
//    quarter fewer candidates; on a trained d-128 Llama of 4 blocks (V 2,048) 4 against 177.
//    Both merge, the typical outputs taking three places in four.
//  - Gradient, one backward pass. With the prefix fixed, the error of token v at t is about
//    L(ē) + ∇L(ē)·(E_v − ē), L(e) = ½‖O(prefix ⊕ e)_t − Ô_t‖² and ē the mean embedding, so one
//    backward pass of one position through the incremental state orders the whole vocabulary by
//    −∇L(ē)·E_v (HotFlip's linearisation; SipIt's gradient step from a token ranks much the same).
//    On untrained GPT-2 small through 12 blocks this puts the true token first at every position
//    checked (40 of 40), where the nearest embeddings rank it about 2,500th; on stories260K it is
//    worse than the nearest (223rd).
// Past the first batch the two are merged, the one that placed this search's accepted tokens better
// taking three places in four (docs/exact.md).
struct GradientRank {
    static constexpr std::string_view name = "gradient";
    std::int64_t calibration = 8;            // occurrences of each allowed token in the calibration contexts (0: none)
    std::int64_t calibration_limit = 32768;  // calibration tokens at most: larger vocabularies go uncalibrated
    // The prior order (kvcloak's): candidates by a language model's next-token distribution at the
    // recovered prefix, merged with the first order, the one that placed this search's accepted tokens
    // better leading. `prior` when set (a smaller model with the same tokenizer: prior_of(model)),
    // else the inverted model's own full forward when `self_prior` (it must hold every block and its head).
    bool self_prior = false;
    Prior prior;

    // The orders without a model call where there are any (typical outputs leading the nearest
    // embeddings), else the gradient's; after an uncompared position, the held-at-mean order leads.
    Orders first(const RankQuery& q) const {
        Orders base;
        if (q.typical && q.nearest)
            base = q.merged(q.typical(), q.nearest());
        else if (q.typical)
            base = q.typical();
        else if (q.nearest)
            base = q.nearest();
        else
            base = q.gradient();
        return q.held_at_mean ? q.merged(q.held_at_mean(), base) : base;
    }
    // The gradient's order, where the first was the nearest tokens.
    Orders then(const RankQuery& q) const { return q.typical || q.nearest ? q.gradient() : Orders{}; }
};

// The relative error below which a candidate reproduces the target, per compute dtype, from the
// noise measured between the incremental check of a candidate and the full forward pass that made
// the target (stories260K, all 512 tokens checked at 80 positions; docs/exact.md): in f32 the true
// token's error is at most 5.9e-6 through 5 blocks while every other token's is 2.0e-4 or more, so
// 3e-5 separates them. In bf16 the true token's error reaches 1.0e-2 through 1 block and 0.10
// through 5, beyond the nearest other tokens (1.9e-3 and 2.1e-2): the default accepts the true token,
// and bf16 verdicts on trained models are often ambiguous, and say so.
inline double default_tolerance(at::ScalarType dtype) {
    switch (dtype) {
        case at::kDouble:
            return 1e-9;
        case at::kFloat:
            return 3e-5;
        case at::kBFloat16:
            return 0.15;
        case at::kHalf:
            return 2e-2;
        default:
            fail("exact inversion: no default tolerance for dtype ", c10::toString(dtype), " (set Exact::tolerance)");
    }
}

// The largest relative error of rounding to `dtype` (round to nearest): 2^-(mantissa bits + 1).
inline double unit_roundoff(at::ScalarType dtype) {
    switch (dtype) {
        case at::kDouble:
            return 0x1p-53;
        case at::kFloat:
            return 0x1p-24;
        case at::kBFloat16:
            return 0x1p-8;
        case at::kHalf:
            return 0x1p-11;
        default:
            fail("exact inversion: a target stored as ", c10::toString(dtype), " is not floating point");
    }
}

template <class Rank = GradientRank>
struct Exact {
    static_assert(Ranker<Rank>,
                  "Exact<Rank>: Rank must be a ranker, a copyable type with a static `name` and "
                  "`Orders first(const RankQuery&) const` (search/rank.hpp, docs/extending.md)");
    using rank_type = Rank;
    Rank rank{};
    std::optional<double> tolerance;  // relative error; unset: default_tolerance(the model's dtype)
    bool verify_all = false;          // check every allowed token at every position: uniqueness proven, not assumed
    std::int64_t batch = 8;           // candidates per prompt in the first batched check
    double growth =
        1.25;  // each further batch this many times as many (prompts share a call, so small steps cost little)
    std::int64_t max_batch = 512;  // up to this many
    std::int64_t budget = 0;       // candidates checked per position before it is unmatched (0: all allowed)
    std::int64_t joint_budget =
        0;  // candidates tried at a position with no compared output (0: all allowed up to 4,096 of them, else 64)
    // The precision the target was stored in (run_from_target: its dtype). Coarser than the model's,
    // its rounding widens the tolerance by its unit roundoff (‖fl(Ô) − Ô‖ ≤ u‖Ô‖), and since a wider
    // tolerance may then hold a wrong token too, every allowed token is checked at every position:
    // a position is verified only where the stored precision still separates the true token.
    std::optional<at::ScalarType> target_dtype;
};

// Chosen at run time (the CLI's --optimizer exact[:gradient|:exhaustive]).
using AnyExact = std::variant<Exact<GradientRank>, Exact<Exhaustive>>;

inline AnyExact parse_exact(std::string_view s) {
    if (s == "exact" || s == "exact:gradient") return Exact<GradientRank>{};
    if (s == "exact:prior") return Exact<GradientRank>{.rank = {.self_prior = true}};
    if (s == "exact:exhaustive") return Exact<Exhaustive>{};
    fail("unknown exact search \"", s, "\" (expected exact, exact:gradient, exact:prior or exact:exhaustive)");
}

template <class O>
inline constexpr bool is_exact = false;
template <class R>
inline constexpr bool is_exact<Exact<R>> = true;

// What an experiment keeps of exact search between runs: the calibration, computed once.
struct ExactCache {
    std::once_flag once;
    at::Tensor centroids;  // token_centroids over the allowed tokens; undefined when not calibrated
};

// The search (search/exact.hpp).
template <class Rank, class Model, Slice S, class Mask, class Space, class DecoderState>
class ExactSearch;

}  // namespace inputrep
