#pragma once
// Exact inversion, Exact<Rank> on the optimizer axis: recover the prompt token by token, each token
// verified against the slice's output. A causal slice's output at position t depends only on tokens
// ≤ t (Nikolaou et al. 2025, "SipIt"), so with the prefix known:
//
//   for t = 0 .. T−1:
//     order  = Rank(t)   Exhaustive: every allowed token; GradientRank: the vocabulary by the
//                        first-order change of the error, −∇ₑ½‖O(prefix ⊕ e)_t − Ô_t‖²·E_v at the
//                        mean embedding, after (where the slice outputs the residual stream) the
//                        tokens nearest the target itself
//     verify in batches: err(v) = ‖O(prefix ⊕ v)_t − Ô_t‖₂ / ‖Ô_t‖₂ over the compared outputs
//     accept the best once err(v) ≤ tolerance
//
// Nothing is picked silently: a position where several checked candidates are within tolerance is
// `ambiguous`, one where none is is `unmatched`, each with its candidates and their errors. A
// position with no compared output (position 0 under Tokens<1, End>) is found through the next
// position it influences: each of its candidates, in rank order and within a budget, is kept only if
// the next position then verifies; past the budget it is `undetermined`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/model/incremental.hpp>
#include <inputrep/policy/slice.hpp>
#include <inputrep/policy/space.hpp>

namespace inputrep {

// Every allowed token, in id order.
struct Exhaustive {
    static constexpr std::string_view name = "exhaustive";
};

// Candidates by a first-order estimate of their error. With the prefix fixed, the error of token v
// at t is about L(ē) + ∇L(ē)·(E_v − ē), L(e) = ½‖O(prefix ⊕ e)_t − Ô_t‖² and ē the mean embedding:
// one backward pass of one position through the incremental state orders the whole vocabulary by
// −∇L(ē)·E_v (HotFlip's linearisation; SipIt's gradient step from a token ranks much the same). On
// untrained GPT-2 small through 12 blocks this puts the true token first at every position checked
// (40 of 40), where the tokens nearest the target rank it about 2,500th. Where the slice outputs
// the residual stream, the token's embedding is a term of the target, and the nearest tokens to
// the target come first (one batch): through 1 block of GPT-2 they are the true token, and on
// stories260K through 5 blocks they rank it 120th on average against the gradient's 223rd. Past
// that first batch the two orders are merged, the one that placed this search's accepted tokens
// better taking three places in four (docs/exact.md).
struct GradientRank {
    static constexpr std::string_view name = "gradient";
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
        case at::kDouble: return 1e-9;
        case at::kFloat: return 3e-5;
        case at::kBFloat16: return 0.15;
        case at::kHalf: return 2e-2;
        default: fail("exact inversion: no default tolerance for dtype ", c10::toString(dtype), " (set Exact::tolerance)");
    }
}

template <class Rank = GradientRank>
struct Exact {
    Rank rank{};
    std::optional<double> tolerance;  // relative error; unset: default_tolerance(the model's dtype)
    bool verify_all = false;          // check every allowed token at every position: uniqueness proven, not assumed
    std::int64_t batch = 8;           // candidates per prompt in the first batched check; each further one doubles
    std::int64_t max_batch = 512;     // up to this many
    std::int64_t budget = 0;          // candidates checked per position before it is unmatched (0: all allowed)
    std::int64_t joint_budget = 64;   // candidates tried at a position with no compared output
};

// Chosen at run time (the CLI's --optimizer exact[:gradient|:exhaustive]).
using AnyExact = std::variant<Exact<GradientRank>, Exact<Exhaustive>>;

inline AnyExact parse_exact(std::string_view s) {
    if (s == "exact" || s == "exact:gradient") return Exact<GradientRank>{};
    if (s == "exact:exhaustive") return Exact<Exhaustive>{};
    fail("unknown exact search \"", s, "\" (expected exact, exact:gradient or exact:exhaustive)");
}

template <class O>
inline constexpr bool is_exact = false;
template <class R>
inline constexpr bool is_exact<Exact<R>> = true;

// What the search found at one position.
enum class Verdict { verified, ambiguous, unmatched, undetermined };

inline std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::verified: return "verified";
        case Verdict::ambiguous: return "ambiguous";
        case Verdict::unmatched: return "unmatched";
        case Verdict::undetermined: return "undetermined";
    }
    return "?";
}

inline std::ostream& operator<<(std::ostream& out, Verdict v) { return out << to_string(v); }

struct Candidate {
    std::int64_t id = 0;
    double error = 0;  // relative error of its output at the position (at the next compared one for an uncompared position)
};

struct PositionCheck {
    Verdict verdict = Verdict::verified;
    bool compared = true;                 // the mask compares this position's output
    double error = std::numeric_limits<double>::quiet_NaN();
    double margin = std::numeric_limits<double>::infinity();  // the best other checked candidate's error
    std::int64_t checked = 0;             // candidates verified
    std::vector<Candidate> candidates;    // the best checked ones (up to 5), by error; all within tolerance when ambiguous
};

struct Verification {
    double tolerance = 0;
    std::vector<PositionCheck> positions;
    double seconds = 0;
    // Every compared position reproduced within tolerance by exactly one checked candidate, and every
    // uncompared one determined through the position after it.
    bool verified() const {
        return std::all_of(positions.begin(), positions.end(), [](const PositionCheck& p) { return p.verdict == Verdict::verified; });
    }
    std::int64_t candidates_checked() const {
        std::int64_t n = 0;
        for (auto& p : positions) n += p.checked;
        return n;
    }
    std::vector<std::int64_t> where(Verdict v) const {
        std::vector<std::int64_t> out;
        for (std::size_t t = 0; t < positions.size(); ++t)
            if (positions[t].verdict == v) out.push_back(static_cast<std::int64_t>(t));
        return out;
    }
};

namespace detail {

// The compared features of each output position, read off the mask by applying it to the outputs'
// flat indices: masks are selections of positions and features, so this works for every mask.
template <class Mask>
std::vector<at::Tensor> compared_features(const Mask& mask, std::int64_t T, std::int64_t F) {
    const at::Tensor flat = mask(at::arange(T * F, at::kDouble).view({1, T, F})).reshape({-1}).to(at::kLong);
    std::vector<at::Tensor> out(T);
    const at::Tensor positions = at::div(flat, F, "floor"), features = flat.remainder(F);
    for (std::int64_t t = 0; t < T; ++t) out[t] = features.masked_select(positions == t);
    return out;
}

// ‖o − target‖ / ‖target‖ per row, in f64.
inline at::Tensor relative_error(const at::Tensor& o, const at::Tensor& target) {
    auto o64 = o.to(at::kDouble), t64 = target.to(at::kDouble);
    auto norm = at::linalg_vector_norm(t64, 2, at::IntArrayRef{-1}).clamp_min(1e-30);
    return at::linalg_vector_norm(o64 - t64, 2, at::IntArrayRef{-1}) / norm;
}

}  // namespace detail

// The search over a batch of prompts of one length: `target` is the slice's output [P, T, F] for the
// prompts (or captured from elsewhere); the result is the ids [P, T] and a Verification per prompt.
template <class Rank, class Model, Slice S, class Mask, class Space, class DecoderState>
class ExactSearch {
public:
    ExactSearch(const Exact<Rank>& policy, const Model& model, const S& slice, const Mask& mask, const Space& space, const DecoderState& decoder)
        : policy_(policy), model_(model), slice_(slice), mask_(mask), space_(space), decoder_(decoder) {
        require(slice.causal(), "exact inversion searches left to right, which needs a causal slice (this one is bidirectional)");
        const at::Tensor w = model.token_embedding();
        // Allowed tokens: those the decoder does not rule out.
        allowed_ = at::isfinite(decoder.restrict(at::zeros({w.size(0)}, at::TensorOptions(at::kFloat).device(w.device()))))
                       .nonzero()
                       .view({-1})
                       .to(at::kCPU);
        require(allowed_.numel() > 0, "exact inversion: the decoder allows no token");
        allowed_w_ = allowed_.numel() == w.size(0) ? w : w.index_select(0, allowed_.to(w.device()));  // no copy of a whole vocabulary
        mean_ = allowed_w_.to(at::kFloat).mean(0).to(w.scalar_type());
        tolerance_ = policy.tolerance.value_or(default_tolerance(model.placement().resolved().dtype));
        require(tolerance_ > 0, "exact inversion: the tolerance must be positive");
        require(policy.batch >= 1, "exact inversion: the candidate batch must be at least 1");
        limit_ = policy.verify_all || policy.budget <= 0 ? allowed_.numel() : std::min<std::int64_t>(policy.budget, allowed_.numel());
    }

    struct Outcome {
        std::vector<std::int64_t> ids;
        Verification verification;
    };

    std::vector<Outcome> run(const at::Tensor& target) {
        const auto started = std::chrono::steady_clock::now();
        require(target.dim() == 3, "exact inversion: the target must be [prompts, tokens, features], not ", target.sizes());
        const std::int64_t P = target.size(0), T = target.size(1), F = target.size(2);
        require(T <= model_.context_length(), "exact inversion: the target has ", T, " positions but the model's context is ",
                model_.context_length());
        target_ = target.to(at::kCPU).clone();  // a normal tensor, even from inference mode: gradient_order differentiates against it
        features_ = detail::compared_features(mask_, T, F);
        ids_ = at::zeros({P, T}, at::kLong);
        checks_.assign(P, std::vector<PositionCheck>(T));
        std::vector<std::int64_t> all(P);
        for (std::int64_t p = 0; p < P; ++p) all[p] = p;
        prefix_.assign(P, Incremental<Model>(model_, slice_));
        for (std::int64_t t = 0; t < T; ++t) {
            if (resolved_[t]) continue;
            if (features_[t].numel() == 0) {
                determine_through_next(t);
                continue;
            }
            search(t, all);
            for (std::int64_t p = 0; p < P; ++p) prefix_[p].append({ids_[p][t].template item<std::int64_t>()});
        }
        std::vector<Outcome> out;
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        for (std::int64_t p = 0; p < P; ++p) {
            at::Tensor row = ids_[p].contiguous();
            out.push_back({{row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + T}, {tolerance_, checks_[p], seconds / double(P)}});
        }
        return out;
    }

private:
    // The slice's output at position t for each prompt's candidates after its resolved prefix: one
    // batched call per prompt through its incremental state (model/incremental.hpp). [rows, F]
    at::Tensor outputs_at(const std::vector<std::int64_t>& rows, const std::vector<std::int64_t>& candidates) {
        at::NoGradGuard no_grad;
        std::vector<at::Tensor> parts;
        for (std::size_t r = 0; r < rows.size();) {
            std::size_t e = r;
            while (e < rows.size() && rows[e] == rows[r]) ++e;
            const at::Tensor ids = at::tensor(std::vector<std::int64_t>(candidates.begin() + r, candidates.begin() + e), at::kLong);
            parts.push_back(prefix_[rows[r]].extend(ids).select(1, 0).to(at::kCPU));
            r = e;
        }
        return at::cat(parts, 0);
    }

    static std::vector<std::int64_t> to_vector(const at::Tensor& ids) {
        const at::Tensor c = ids.to(at::kCPU, at::kLong).contiguous();
        return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
    }

    // Allowed tokens by score [allowed] (higher first), as ids.
    std::vector<std::int64_t> by_score(const at::Tensor& scores) const {
        return to_vector(allowed_.index_select(0, std::get<1>(scores.to(at::kCPU, at::kFloat).sort(-1, true))));
    }

    // GradientRank's order for prompt p at position t: −∇L(ē)·E_v over the allowed tokens, L the
    // squared error of the compared outputs at `compared_at` (≥ t, the positions between held at ē).
    std::vector<std::int64_t> gradient_order(std::int64_t t, std::int64_t p, std::int64_t compared_at) {
        const std::int64_t n = compared_at - t + 1;
        const at::Device device = allowed_w_.device();
        const at::Tensor e = mean_.view({1, 1, -1}).expand({1, n, mean_.size(0)}).clone().requires_grad_(true);
        const at::Tensor target = target_[p][compared_at].index_select(0, features_[compared_at]).to(device, mean_.scalar_type());
        const at::Tensor out = prefix_[p].extend_embedded(e)[0][n - 1].index_select(0, features_[compared_at].to(device));
        const at::Tensor g = torch::autograd::grad({(out - target).pow(2).sum() * 0.5}, {e})[0][0][0];
        at::NoGradGuard no_grad;
        return by_score(-at::mv(allowed_w_.to(at::kFloat), g.to(at::kFloat)));
    }

    // Whether the slice's output at t is the residual stream, all of it compared.
    bool residual(std::int64_t t) const { return features_[t].numel() == mean_.size(0) && target_.size(2) == mean_.size(0); }

    // The allowed tokens nearest (by the decoder's score) to the target at t less its position
    // embedding, where the slice outputs the residual stream; none elsewhere.
    std::vector<std::int64_t> nearest_order(std::int64_t t, std::int64_t p) {
        if (!residual(t)) return {};
        at::NoGradGuard no_grad;
        at::Tensor x = target_[p][t].to(allowed_w_.device(), mean_.scalar_type());
        if (auto offset = model_.position_offset(t + 1); offset.defined()) x = x - offset[t];
        const at::Tensor scores = decoder_.scores(x.view({1, 1, -1})).view({-1});
        return by_score(scores.index_select(0, allowed_.to(scores.device())));
    }

    // The order a position's candidates are checked in first, for prompt p: Exhaustive's id order;
    // GradientRank's tokens nearest the target where the slice outputs the residual stream (no model
    // call; a first batch of them decides most positions through few blocks), else the gradient's.
    std::vector<std::int64_t> first_order(std::int64_t t, std::int64_t p) {
        if constexpr (std::same_as<Rank, Exhaustive>) {
            return to_vector(allowed_);
        } else {
            static_assert(std::same_as<Space, EmbeddingSpace>, "GradientRank differentiates through an embedding: use EmbeddingSpace, or Exact<Exhaustive>");
            return residual(t) ? nearest_order(t, p) : gradient_order(t, p, t);
        }
    }

    // Past a failed first batch: the checked candidates, then the nearest and the gradient's orders
    // merged, the one that ranked the accepted tokens of this search better so far taking three
    // places in four (through 12 blocks of GPT-2 the gradient's, through 5 of stories260K the nearest).
    std::vector<std::int64_t> merged_order(std::span<const std::int64_t> checked, const std::vector<std::int64_t>& nearest,
                                           const std::vector<std::int64_t>& gradient) const {
        const bool gradient_leads = gradient_rank_sum_ <= nearest_rank_sum_;
        const auto& lead = gradient_leads ? gradient : nearest;
        const auto& other = gradient_leads ? nearest : gradient;
        std::vector<char> seen(model_.token_embedding().size(0), 0);
        std::vector<std::int64_t> out(checked.begin(), checked.end());
        for (auto id : checked) seen[id] = 1;
        auto take = [&](std::int64_t id) {
            if (!seen[id]) seen[id] = 1, out.push_back(id);
        };
        for (std::size_t i = 0, j = 0; i < lead.size() || j < other.size();) {
            for (int k = 0; k < 3 && i < lead.size(); ++k) take(lead[i++]);
            if (j < other.size()) take(other[j++]);
        }
        return out;
    }

    // Where each order placed an accepted token, so the better one leads the next merge.
    void learn(std::int64_t id, const std::vector<std::int64_t>& nearest, const std::vector<std::int64_t>& gradient) {
        auto rank = [&](const std::vector<std::int64_t>& order) { return double(std::ranges::find(order, id) - order.begin()); };
        nearest_rank_sum_ += rank(nearest), gradient_rank_sum_ += rank(gradient);
    }

    // The order of candidates at an uncompared position t, judged at the compared position `at`.
    std::vector<std::int64_t> uncompared_order(std::int64_t t, std::int64_t p, std::int64_t at) {
        if constexpr (std::same_as<Rank, Exhaustive>) return to_vector(allowed_);
        else return gradient_order(t, p, at);
    }

    // Ranks and verifies position t for `prompts` (their prefixes resolved), recording the verdicts.
    // Returns, per prompt, whether the position verified.
    std::vector<bool> search(std::int64_t t, const std::vector<std::int64_t>& prompts) {
        const auto A = static_cast<std::int64_t>(prompts.size());
        const at::Tensor features = features_[t];
        const at::Tensor index = at::tensor(prompts, at::kLong);
        const at::Tensor targets = target_.index_select(0, index).select(1, t).index_select(1, features);  // [A, F_t]
        struct State {
            std::vector<std::int64_t> order, nearest, gradient;  // the two last only once refined
            std::vector<Candidate> checked;
            std::int64_t next = 0;
            bool done = false, refined = false;
        };
        std::vector<State> states(A);
        for (std::int64_t a = 0; a < A; ++a) {
            states[a].refined = std::same_as<Rank, Exhaustive> || !residual(t);
            states[a].order = first_order(t, prompts[a]);
        }
        // A well-ranked token is found in the first small batch; a poorly ranked one in few calls.
        for (std::int64_t batch = policy_.batch;; batch = std::min(2 * batch, std::max(policy_.batch, policy_.max_batch))) {
            std::vector<std::int64_t> rows, cands;
            for (std::int64_t a = 0; a < A; ++a) {
                auto& s = states[a];
                if (s.done) continue;
                const auto n = std::min({batch, limit_ - s.next, static_cast<std::int64_t>(s.order.size()) - s.next});
                for (std::int64_t k = 0; k < n; ++k) rows.push_back(a), cands.push_back(s.order[s.next + k]);
                s.next += n;
            }
            if (rows.empty()) break;
            std::vector<std::int64_t> owners(rows.size());
            for (std::size_t i = 0; i < rows.size(); ++i) owners[i] = prompts[rows[i]];
            const at::Tensor err = detail::relative_error(outputs_at(owners, cands).index_select(1, features),
                                                          targets.index_select(0, at::tensor(rows, at::kLong)))
                                       .contiguous();
            const double* e = err.data_ptr<double>();
            for (std::size_t i = 0; i < rows.size(); ++i) states[rows[i]].checked.push_back({cands[i], e[i]});
            for (std::int64_t a = 0; a < A; ++a) {
                auto& s = states[a];
                if (s.done) continue;
                const bool found = std::any_of(s.checked.begin(), s.checked.end(), [&](const Candidate& c) { return c.error <= tolerance_; });
                s.done = s.next >= std::min<std::int64_t>(limit_, s.order.size()) || (found && !policy_.verify_all);
                if (!s.done && !s.refined) {
                    s.refined = true;
                    s.nearest = std::move(s.order), s.gradient = gradient_order(t, prompts[a], t);
                    s.order = merged_order(std::span(s.nearest).first(s.next), s.nearest, s.gradient);
                }
            }
        }
        std::vector<bool> verified(A);
        for (std::int64_t a = 0; a < A; ++a) {
            auto& checked = states[a].checked;
            std::stable_sort(checked.begin(), checked.end(), [](const Candidate& x, const Candidate& y) { return x.error < y.error; });
            PositionCheck& pc = checks_[prompts[a]][t];
            pc.compared = true;
            pc.checked += static_cast<std::int64_t>(checked.size());
            pc.error = checked.front().error;
            pc.margin = checked.size() > 1 ? checked[1].error : std::numeric_limits<double>::infinity();
            const auto within = std::count_if(checked.begin(), checked.end(), [&](const Candidate& c) { return c.error <= tolerance_; });
            pc.verdict = within == 1 ? Verdict::verified : within > 1 ? Verdict::ambiguous : Verdict::unmatched;
            pc.candidates.assign(checked.begin(), checked.begin() + std::min<std::ptrdiff_t>(std::max<std::ptrdiff_t>(within, 5), checked.size()));
            ids_[prompts[a]][t] = checked.front().id;
            if (within == 1 && !states[a].gradient.empty()) learn(checked.front().id, states[a].nearest, states[a].gradient);
            verified[a] = within >= 1;
        }
        return verified;
    }

    // A position with no compared output: keep the first candidate (in rank order, within the joint
    // budget) after which the next position verifies. Prompt by prompt, as each tries its own list.
    void determine_through_next(std::int64_t t) {
        const std::int64_t T = target_.size(1), P = target_.size(0);
        const bool next_compared = t + 1 < T && features_[t + 1].numel() > 0;
        auto accept = [&](std::int64_t p, std::int64_t u) { prefix_[p].append({ids_[p][u].template item<std::int64_t>()}); };
        for (std::int64_t p = 0; p < P; ++p) {
            PositionCheck& pc = checks_[p][t];
            pc.compared = false;
            if (!next_compared) {  // nothing after it reads it, or the next position is uncompared too
                pc.verdict = Verdict::undetermined;
                ids_[p][t] = uncompared_order(t, p, t + 1 < T ? last_compared_after(t) : t).front();
                accept(p, t);
                continue;
            }
            const auto order = uncompared_order(t, p, t + 1);
            const std::int64_t budget = std::min<std::int64_t>(policy_.joint_budget, order.size());
            const Incremental<Model> before = prefix_[p];
            std::vector<Candidate> tried;
            bool found = false;
            for (std::int64_t k = 0; k < budget && !found; ++k) {
                ids_[p][t] = order[k];
                prefix_[p] = before;
                accept(p, t);
                checks_[p][t + 1] = {};
                found = search(t + 1, {p})[0];
                tried.push_back({ids_[p][t].template item<std::int64_t>(), checks_[p][t + 1].error});
                pc.checked += checks_[p][t + 1].checked;
            }
            std::stable_sort(tried.begin(), tried.end(), [](const Candidate& x, const Candidate& y) { return x.error < y.error; });
            pc.candidates.assign(tried.begin(), tried.begin() + std::min<std::size_t>(5, tried.size()));
            pc.error = tried.front().error;
            pc.margin = tried.size() > 1 ? tried[1].error : std::numeric_limits<double>::infinity();
            if (found) {
                pc.verdict = Verdict::verified;
            } else {
                pc.verdict = Verdict::undetermined;
                ids_[p][t] = tried.front().id;
                prefix_[p] = before;
                accept(p, t);
                checks_[p][t + 1] = {};
                search(t + 1, {p});
            }
            accept(p, t + 1);
        }
        resolved_[t + 1] = next_compared;
    }

    std::int64_t last_compared_after(std::int64_t t) const {
        for (auto u = static_cast<std::int64_t>(features_.size()) - 1; u > t; --u)
            if (features_[u].numel() > 0) return u;
        return t;
    }

    Exact<Rank> policy_;
    const Model& model_;
    const S& slice_;
    const Mask& mask_;
    const Space& space_;
    const DecoderState& decoder_;
    at::Tensor allowed_, allowed_w_, mean_, target_, ids_;  // allowed ids, their embeddings and mean
    double nearest_rank_sum_ = 0, gradient_rank_sum_ = 0;  // where each order placed the accepted tokens
    double tolerance_ = 0;
    std::int64_t limit_ = 0;
    std::vector<at::Tensor> features_;
    std::vector<std::vector<PositionCheck>> checks_;
    std::map<std::int64_t, bool> resolved_;
    std::vector<Incremental<Model>> prefix_;  // per prompt: the resolved prefix's state
};

}  // namespace inputrep
