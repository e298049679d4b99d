#pragma once
// Exact inversion, Exact<Rank> on the optimizer axis: recover the prompt token by token, each token
// verified against the slice's output. A causal slice's output at position t depends only on tokens
// ≤ t (Nikolaou et al. 2025, "SipIt"), so with the prefix known:
//
//   for t = 0 .. T−1:
//     order  = Rank(t)   a ranker (search/rank.hpp). Exhaustive: every allowed token;
//                        GradientRank: first the tokens whose typical output (small vocabularies)
//                        or embedding (residual outputs) is nearest the target, then the
//                        vocabulary by the first-order change of the error,
//                        −∇ₑ½‖O(prefix ⊕ e)_t − Ô_t‖²·E_v at the mean embedding
//     verify in batches: err(v) = ‖O(prefix ⊕ v)_t − Ô_t‖₂ / ‖Ô_t‖₂ over the compared outputs
//     accept the best once err(v) ≤ tolerance
//
// Nothing is picked silently: a position where several checked candidates are within tolerance is
// `ambiguous`, one where none is is `unmatched`, each with its candidates and their errors. A
// position with no compared output (position 0 under Tokens<1, End>) is found through the next
// position, which reads it: pairs of candidates for the two are checked there, and the position is
// verified when exactly one of its candidates (within a budget) has a pair that reproduces the
// next position's output, ambiguous when several do, else `undetermined`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/model/slice.hpp>
#include <inputrep/policy/space.hpp>
#include <inputrep/search/incremental.hpp>
#include <inputrep/search/policy.hpp>
#include <inputrep/search/verdict.hpp>

namespace inputrep {

// Each allowed token's mean slice output [allowed, F] over `occurrences` random contexts: sequences
// of 64 tokens cut from that many seeded permutations of the allowed tokens, so every token occurs
// equally often, at every depth of context, run through the full forward.
template <class Model, Slice S>
at::Tensor token_centroids(const Model& model, const S& slice, const at::Tensor& allowed, std::int64_t occurrences) {
    c10::InferenceMode no_autograd;
    const std::int64_t A = allowed.numel(), L = std::min<std::int64_t>(64, model.context_length());
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
    std::vector<at::Tensor> rounds;
    for (std::int64_t k = 0; k < occurrences; ++k) rounds.push_back(at::randperm(A, gen, at::kLong));
    at::Tensor order = at::cat(rounds);  // indices into allowed, each A·occurrences / A times
    const std::int64_t n = order.numel(), rows = (n + L - 1) / L;
    order = at::cat({order, order.narrow(0, 0, rows * L - n)}).view({rows, L});  // the last row wraps round
    const at::Tensor ids = allowed.index_select(0, order.view({-1})).view({rows, L}).to(model.placement().device);
    const at::Tensor out = apply_slice(slice, model, model.embed(ids), model.context(L, true, slice.variant()));
    const at::Tensor flat = out.reshape({rows * L, -1}).to(at::kCPU, at::kFloat);
    at::Tensor sums = at::zeros({A, flat.size(1)}, at::kFloat).index_add_(0, order.view({-1}), flat);
    const at::Tensor counts = at::bincount(order.view({-1}), {}, A).to(at::kFloat).clamp_min(1);
    return sums / counts.unsqueeze(1);
}

// GradientRank's prior from `model`: its own next-token log-probabilities after each prefix (its
// full forward, over the last context_length tokens of a longer prefix). It must hold every block
// and its head.
template <class M>
Prior prior_of(M model) {
    return [model = std::move(model)](const at::Tensor& prefixes) {
        c10::InferenceMode no_autograd;
        const auto T = std::min<std::int64_t>(prefixes.size(1), model.context_length());
        at::Tensor x = model.embed(prefixes.narrow(1, prefixes.size(1) - T, T).to(model.placement().device));
        const auto ctx = model.context(T, true);
        for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
        return at::log_softmax(model.unembed(x.narrow(1, T - 1, 1)).squeeze(1).to(at::kFloat), -1).to(at::kCPU);
    };
}

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
// The prompts advance together, one position at a time: their prefixes are one incremental state of
// P rows, and each round checks every prompt's candidates in one batched call.
template <class Rank, class Model, Slice S, class Mask, class Space, class DecoderState>
class ExactSearch {
    // What a search fixes before any run: the policy, the allowed tokens, their embeddings and mean,
    // the tolerance, the calibration and the prior.
    struct Setup {
        Exact<Rank> policy_;
        const Model& model_;
        const S& slice_;
        const Mask& mask_;
        const Space& space_;
        const DecoderState& decoder_;
        bool residual_ends_;  // every run of blocks ends in the residual stream (not inside attention or an MLP)
        at::Tensor allowed_, allowed_w_, mean_;  // allowed ids, their embeddings and mean
        at::Tensor centroids_;  // [allowed, F]: each allowed token's typical output (token_centroids), or undefined
        Prior prior_;           // the ranker's prior (GradientRank's), or unset
        double tolerance_ = 0;
        bool check_all_ = false;  // every allowed token at every position: verify_all, or a coarse target
        std::int64_t limit_ = 0;
    };

public:
    // `cache` keeps the calibration across runs (a fresh one calibrates for this search alone).
    ExactSearch(const Exact<Rank>& policy, const Model& model, const S& slice, const Mask& mask, const Space& space,
                const DecoderState& decoder, ExactCache& cache)
        : s_{policy, model, slice, mask, space, decoder, std::ranges::all_of(chains_of(slice), [](const Chain& c) {
                 return c.end.hook == Hook::resid_post || c.end.hook == Hook::resid_mid;
             })} {
        require(slice.causal(),
                "exact inversion searches left to right, which needs a causal slice (this one is bidirectional)");
        const at::Tensor w = model.token_embedding();
        // Allowed tokens: those the decoder does not rule out.
        s_.allowed_ =
            at::isfinite(decoder.restrict(at::zeros({w.size(0)}, at::TensorOptions(at::kFloat).device(w.device()))))
                .nonzero()
                .view({-1})
                .to(at::kCPU);
        const at::Tensor& allowed = s_.allowed_;
        require(allowed.numel() > 0, "exact inversion: the decoder allows no token");
        s_.allowed_w_ = allowed.numel() == w.size(0)
                            ? w
                            : w.index_select(0, allowed.to(w.device()));  // no copy of a whole vocabulary
        s_.mean_ = s_.allowed_w_.to(at::kFloat).mean(0).to(w.scalar_type());
        const auto compute = model.placement().resolved().dtype;
        const bool coarse = policy.target_dtype && unit_roundoff(*policy.target_dtype) > unit_roundoff(compute);
        s_.tolerance_ = policy.tolerance.value_or(default_tolerance(compute) +
                                                  (coarse ? unit_roundoff(*policy.target_dtype) : 0.0));
        s_.check_all_ = policy.verify_all || coarse;
        require(s_.tolerance_ > 0, "exact inversion: the tolerance must be positive");
        require(policy.batch >= 1, "exact inversion: the candidate batch must be at least 1");
        require(policy.growth >= 1, "exact inversion: batches cannot shrink (growth ", policy.growth, " < 1)");
        s_.limit_ = s_.check_all_ || policy.budget <= 0 ? allowed.numel()
                                                        : std::min<std::int64_t>(policy.budget, allowed.numel());
        // What a ranker asks for by its settings: typical outputs, a prior.
        const Rank& r = policy.rank;
        if constexpr (requires { r.calibration, r.calibration_limit; }) {
            if (r.calibration > 0 && r.calibration * allowed.numel() <= r.calibration_limit)
                std::call_once(cache.once,
                               [&] { cache.centroids = token_centroids(model, slice, allowed, r.calibration); });
            s_.centroids_ = cache.centroids;
        }
        if constexpr (requires { r.prior, r.self_prior; })
            s_.prior_ = r.prior ? r.prior : r.self_prior ? prior_of(model) : Prior{};
    }

    struct Found {  // one prompt's ids and their verification
        std::vector<std::int64_t> ids;
        Verification verification;
    };

    // One run's state is a Pass, made here and gone after it.
    std::vector<Found> run(const at::Tensor& target) const { return Pass(s_).run(target); }

private:
    // A run of the search: the setup, and what the run learns as it goes (the target, the ids so
    // far, each position's check, the prompts' incremental state, where each order placed the
    // accepted tokens).
    class Pass : Setup {
        // Setup depends on the template's arguments, so its names are brought in by hand.
        using Setup::policy_, Setup::model_, Setup::slice_, Setup::mask_, Setup::decoder_, Setup::residual_ends_,
            Setup::allowed_, Setup::allowed_w_, Setup::mean_, Setup::centroids_, Setup::prior_, Setup::tolerance_,
            Setup::check_all_, Setup::limit_;

    public:
        explicit Pass(const Setup& setup) : Setup(setup), prefix_(setup.model_, setup.slice_) {}

        std::vector<Found> run(const at::Tensor& target) {
            const auto started = std::chrono::steady_clock::now();
            require(target.dim() == 3, "exact inversion: the target must be [prompts, tokens, features], not ",
                    target.sizes());
            const std::int64_t P = target.size(0), T = target.size(1), F = target.size(2);
            require(T <= model_.context_length(), "exact inversion: the target has ", T,
                    " positions but the model's context is ", model_.context_length());
            target_ =
                target.to(at::kCPU)
                    .clone();  // a normal tensor, even from inference mode: gradient_orders differentiates against it
            features_ = detail::compared_features(mask_, T, F);
            ids_ = at::zeros({P, T}, at::kLong);
            checks_.assign(P, std::vector<PositionCheck>(T));
            std::vector<std::int64_t> all(P);
            for (std::int64_t p = 0; p < P; ++p) all[p] = p;
            for (std::int64_t t = 0; t < T; ++t) {
                if (resolved_[t]) continue;
                if (features_[t].numel() == 0) {
                    determine_through_next(t, all);
                    continue;
                }
                search(t, all, prefix_, all);
                prefix_.append(ids_.narrow(1, t, 1));
            }
            std::vector<Found> out;
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            for (std::int64_t p = 0; p < P; ++p) {
                at::Tensor row = ids_[p].contiguous();
                out.push_back({{row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + T},
                               {tolerance_, checks_[p], seconds / double(P)}});
            }
            return out;
        }

    private:
        using State = Incremental<Model>;

        static at::Tensor long_tensor(const std::vector<std::int64_t>& v) { return at::tensor(v, at::kLong); }

        static std::vector<std::int64_t> to_vector(const at::Tensor& ids) {
            const at::Tensor c = ids.to(at::kCPU, at::kLong).contiguous();
            return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
        }

        // Allowed tokens by score, per row of scores [A, allowed] (higher first), as ids.
        Orders by_score(const at::Tensor& scores) const {
            const at::Tensor order = std::get<1>(scores.to(at::kCPU, at::kFloat).sort(-1, true));
            const at::Tensor ids = allowed_.index_select(0, order.reshape({-1})).view(order.sizes());
            Orders out;
            for (std::int64_t a = 0; a < ids.size(0); ++a) out.push_back(to_vector(ids[a]));
            return out;
        }

        // GradientRank's orders at position `at` (default t) for `prompts`, rows `rows` of `state`:
        // −∇L(ē)·E_v over the allowed tokens, L the squared error of the compared outputs at
        // `compared_at` (≥ t) with positions t..compared_at held at ē. One backward pass for all of
        // them: each row's input reaches only its own output.
        Orders gradient_orders(State& state, std::int64_t t, const std::vector<std::int64_t>& prompts,
                               const std::vector<std::int64_t>& rows, std::int64_t compared_at,
                               std::optional<std::int64_t> at = {}) {
            const auto A = static_cast<std::int64_t>(prompts.size()), n = compared_at - t + 1;
            const at::Device device = allowed_w_.device();
            const at::Tensor features = features_[compared_at].to(device);
            const at::Tensor e = mean_.view({1, 1, -1}).expand({A, n, mean_.size(0)}).clone().requires_grad_(true);
            const at::Tensor target = target_.index_select(0, long_tensor(prompts))
                                          .select(1, compared_at)
                                          .to(device, mean_.scalar_type())
                                          .index_select(1, features);
            const at::Tensor out =
                state.extend_embedded(e, long_tensor(rows)).select(1, n - 1).index_select(1, features);
            const at::Tensor g =
                torch::autograd::grad({(out - target).pow(2).sum() * 0.5}, {e})[0].select(1, at.value_or(t) - t);
            at::NoGradGuard no_grad;
            return by_score(-at::matmul(g.to(at::kFloat), allowed_w_.to(at::kFloat).t()));
        }

        // Whether the slice's output at t is the residual stream, all of it compared.
        bool residual(std::int64_t t) const {
            return residual_ends_ && features_[t].numel() == mean_.size(0) && target_.size(2) == mean_.size(0);
        }

        // The allowed tokens nearest (by the decoder's score) to each prompt's target at t less its
        // position embedding, where the slice outputs the residual stream.
        Orders nearest_orders(std::int64_t t, const std::vector<std::int64_t>& prompts) {
            at::NoGradGuard no_grad;
            at::Tensor x =
                target_.index_select(0, long_tensor(prompts)).select(1, t).to(allowed_w_.device(), mean_.scalar_type());
            if (auto offset = model_.position_offset(t + 1); offset.defined()) x = x - offset[t];
            const at::Tensor scores = decoder_.scores(x.unsqueeze(1)).squeeze(1);
            return by_score(scores.index_select(1, allowed_.to(scores.device())));
        }

        // The allowed tokens whose typical output is nearest each prompt's target at t, over the
        // features compared there.
        Orders typical_orders(std::int64_t t, const std::vector<std::int64_t>& prompts) {
            at::NoGradGuard no_grad;
            const at::Tensor x =
                target_.index_select(0, long_tensor(prompts)).select(1, t).index_select(1, features_[t]).to(at::kFloat);
            return by_score(-at::cdist(x, centroids_.index_select(1, features_[t])));
        }

        // The allowed tokens by the prior's probability after each prompt's recovered prefix (t ≥ 1).
        Orders prior_orders(std::int64_t t, const std::vector<std::int64_t>& prompts) {
            const auto V = model_.token_embedding().size(0);
            const at::Tensor logp = prior_(ids_.index_select(0, long_tensor(prompts)).narrow(1, 0, t));
            require(logp.dim() == 2 && logp.size(0) == static_cast<std::int64_t>(prompts.size()) && logp.size(1) == V,
                    "exact inversion: the prior gives ", logp.sizes(), " for ", prompts.size(),
                    " prefixes, not [prefixes, ", V, "] (it needs the inverted model's vocabulary)");
            return by_score(logp.to(at::kCPU, at::kFloat).index_select(1, allowed_));
        }

        // What the ranker sees at `position` for `prompts`, rows `rows` of `state`, whose positions from
        // `from` (≤ position) are unresolved; `judged` is the compared position the gradient is taken at.
        // Each estimate is set only where it applies; `pairs`: the search tries every candidate of the
        // uncompared position before `position`, so the error with it held at ē is worth one call.
        RankQuery query(State& state, std::int64_t from, std::int64_t position,
                        const std::vector<std::int64_t>& prompts, const std::vector<std::int64_t>& rows,
                        std::int64_t judged, bool pairs = false) {
            RankQuery q;
            q.position = position, q.from = from, q.allowed = allowed_, q.embeddings = allowed_w_;
            q.prefixes = ids_.index_select(0, long_tensor(prompts)).narrow(1, 0, from);
            q.targets =
                target_.index_select(0, long_tensor(prompts)).select(1, position).index_select(1, features_[position]);
            if (residual(position)) q.nearest = [this, position, prompts] { return nearest_orders(position, prompts); };
            if (centroids_.defined() && features_[position].numel() > 0)
                q.typical = [this, position, prompts] { return typical_orders(position, prompts); };
            q.gradient = [this, &state, from, position, prompts, rows, judged] {
                return gradient_orders(state, from, prompts, rows, judged, position);
            };
            if (pairs)
                q.held_at_mean = [this, from, prompts] {
                    Orders out;
                    for (auto p : prompts) out.push_back(held_at_mean_order(p, from));
                    return out;
                };
            q.order = [this](const at::Tensor& scores) { return by_score(scores); };
            q.merge = [this](const std::vector<std::int64_t>& lead, const std::vector<std::int64_t>& other) {
                return merged_order({}, lead, other, true);
            };
            return q;
        }

        // The batch after `batch`: `growth` times as many candidates, at least one more, up to max_batch.
        std::int64_t next_batch(std::int64_t batch) const {
            return std::min(std::max(batch + 1, std::int64_t(double(batch) * policy_.growth)),
                            std::max(policy_.batch, policy_.max_batch));
        }

        // The checked candidates, then `first` and `second` merged, the one leading taking three places
        // in four. Past a failed first batch the nearest and the gradient's orders merge so, the one
        // that ranked this search's accepted tokens better so far leading (through 12 blocks of GPT-2
        // the gradient's, through 5 of stories260K the nearest).
        std::vector<std::int64_t> merged_order(std::span<const std::int64_t> checked,
                                               const std::vector<std::int64_t>& first,
                                               const std::vector<std::int64_t>& second, bool first_leads) const {
            const auto& lead = first_leads ? first : second;
            const auto& other = first_leads ? second : first;
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

        // The verdict on a position from the candidates tried there (sorted here, best first): verified
        // when exactly one is within tolerance, ambiguous when several are (all of them kept, else the
        // best 5), else `none`. Returns how many are within tolerance.
        std::ptrdiff_t judge(PositionCheck& pc, std::vector<Candidate>& tried, Verdict none) const {
            std::stable_sort(tried.begin(), tried.end(),
                             [](const Candidate& x, const Candidate& y) { return x.error < y.error; });
            const auto within =
                std::count_if(tried.begin(), tried.end(), [&](const Candidate& c) { return c.error <= tolerance_; });
            pc.verdict = within == 1 ? Verdict::verified : within > 1 ? Verdict::ambiguous : none;
            pc.candidates.assign(tried.begin(), tried.begin() + std::min<std::ptrdiff_t>(
                                                                    std::max<std::ptrdiff_t>(within, 5), tried.size()));
            pc.error = tried.front().error;
            pc.margin = tried.size() > 1 ? tried[1].error : std::numeric_limits<double>::infinity();
            return within;
        }

        // Where each order placed an accepted token, so the better one leads the next merge.
        static double rank_of(std::int64_t id, const std::vector<std::int64_t>& order) {
            return double(std::ranges::find(order, id) - order.begin());
        }
        void learn(std::int64_t id, const std::vector<std::int64_t>& first, const std::vector<std::int64_t>& then) {
            first_rank_sum_ += rank_of(id, first), then_rank_sum_ += rank_of(id, then), ++learned_;
        }

        // The ranker's first order for each prompt of `q`, and its second (or none), checked: a
        // ranker is the user's code.
        Orders first_orders(const RankQuery& q) const { return validated(policy_.rank.first(q), q, false); }
        Orders then_orders(const RankQuery& q) const {
            if constexpr (Refining<Rank>)
                return validated(policy_.rank.then(q), q, true);
            else
                return {};
        }
        Orders validated(Orders orders, const RankQuery& q, bool may_be_none) const {
            if (may_be_none && orders.empty()) return orders;
            const auto V = model_.token_embedding().size(0);
            require(static_cast<std::int64_t>(orders.size()) == q.prompts(), "exact inversion: the ranker ", Rank::name,
                    " gave ", orders.size(), " orders for ", q.prompts(), " prompts");
            for (const auto& order : orders) {
                require(!order.empty(), "exact inversion: the ranker ", Rank::name, " gave an empty order at position ",
                        q.position);
                for (auto id : order)
                    require(id >= 0 && id < V, "exact inversion: the ranker ", Rank::name, " ranked token ", id,
                            ", outside the vocabulary of ", V);
            }
            return orders;
        }

        // Ranks and verifies position t for `prompts`, whose resolved prefixes are rows `rows` of
        // `state`, recording the verdicts. Returns, per prompt, whether the position verified.
        std::vector<bool> search(std::int64_t t, const std::vector<std::int64_t>& prompts, State& state,
                                 const std::vector<std::int64_t>& rows) {
            const auto A = static_cast<std::int64_t>(prompts.size());
            const at::Tensor features = features_[t];
            const RankQuery asked = query(state, t, t, prompts, rows, t);  // what the ranker sees at t
            const at::Tensor& targets = asked.targets;                     // [A, F_t]
            struct Progress {
                std::vector<std::int64_t> order, first, then;  // the two last only once refined
                std::vector<std::int64_t> ranked, prior;       // the ranker's first order and the prior's, where merged
                std::vector<Candidate> checked;
                std::int64_t next = 0;
                bool done = false, refined = !Refining<Rank>;
            };
            std::vector<Progress> states(A);
            auto orders = first_orders(asked);
            auto priors = prior_ && t > 0 ? prior_orders(t, prompts) : Orders{};
            for (std::int64_t a = 0; a < A; ++a) {
                auto& s = states[a];
                if (priors.empty()) {
                    s.order = std::move(orders[a]);
                } else {
                    s.ranked = std::move(orders[a]), s.prior = std::move(priors[a]);
                    s.order = merged_order({}, s.prior, s.ranked, prior_rank_sum_ <= ranked_rank_sum_);
                }
            }
            // Once the second order has placed the accepted tokens far better than the first (GradientRank
            // through 12 blocks of GPT-2: first, against about 2,700th), the first batch follows the merged
            // order already: a batch of nearest tokens bound to fail costs a pass over the model's weights.
            if (!states.front().refined && learned_ >= 4 && 4 * then_rank_sum_ < first_rank_sum_) {
                auto thens = then_orders(asked);
                for (std::int64_t a = 0; a < A && !thens.empty(); ++a) {
                    auto& s = states[a];
                    s.refined = true, s.first = std::move(s.order), s.then = std::move(thens[a]);
                    s.order = merged_order({}, s.first, s.then, false);
                }
            }
            // A well-ranked token is found in the first small batch; a poorly ranked one in few calls.
            for (std::int64_t batch = policy_.batch;; batch = next_batch(batch)) {
                std::vector<std::int64_t> members, owners, cands;
                for (std::int64_t a = 0; a < A; ++a) {
                    auto& s = states[a];
                    if (s.done) continue;
                    const auto n =
                        std::min({batch, limit_ - s.next, static_cast<std::int64_t>(s.order.size()) - s.next});
                    for (std::int64_t k = 0; k < n; ++k)
                        members.push_back(a), owners.push_back(rows[a]), cands.push_back(s.order[s.next + k]);
                    s.next += n;
                }
                if (members.empty()) break;
                at::Tensor outputs;
                {
                    at::NoGradGuard no_grad;
                    outputs = state.extend(long_tensor(cands), long_tensor(owners)).select(1, 0).to(at::kCPU);
                }
                const at::Tensor err = detail::relative_error(outputs.index_select(1, features),
                                                              targets.index_select(0, long_tensor(members)))
                                           .contiguous();
                const double* e = err.data_ptr<double>();
                for (std::size_t i = 0; i < members.size(); ++i) states[members[i]].checked.push_back({cands[i], e[i]});
                std::vector<std::int64_t> refine;
                for (std::int64_t a = 0; a < A; ++a) {
                    auto& s = states[a];
                    if (s.done) continue;
                    const bool found = std::any_of(s.checked.begin(), s.checked.end(),
                                                   [&](const Candidate& c) { return c.error <= tolerance_; });
                    s.done = s.next >= std::min<std::int64_t>(limit_, s.order.size()) || (found && !check_all_);
                    if (!s.done && !s.refined) refine.push_back(a);
                }
                if (refine.empty()) continue;
                std::vector<std::int64_t> refine_prompts, refine_rows;
                for (auto a : refine) refine_prompts.push_back(prompts[a]), refine_rows.push_back(rows[a]);
                auto thens = then_orders(query(state, t, t, refine_prompts, refine_rows, t));
                for (std::size_t i = 0; i < refine.size(); ++i) {
                    auto& s = states[refine[i]];
                    s.refined = true;
                    if (thens.empty()) continue;  // the ranker has no second order here
                    s.first = std::move(s.order), s.then = std::move(thens[i]);
                    s.order = merged_order(std::span(s.first).first(s.next), s.first, s.then,
                                           first_rank_sum_ <= then_rank_sum_);
                }
            }
            std::vector<bool> verified(A);
            for (std::int64_t a = 0; a < A; ++a) {
                auto& checked = states[a].checked;
                PositionCheck& pc = checks_[prompts[a]][t];
                pc.compared = true;
                pc.checked += static_cast<std::int64_t>(checked.size());
                const auto within = judge(pc, checked, Verdict::unmatched);
                ids_[prompts[a]][t] = checked.front().id;
                if (within == 1 && !states[a].then.empty()) learn(checked.front().id, states[a].first, states[a].then);
                if (within == 1 && !states[a].prior.empty()) {
                    prior_rank_sum_ += rank_of(checked.front().id, states[a].prior);
                    ranked_rank_sum_ += rank_of(checked.front().id, states[a].ranked);
                }
                verified[a] = within >= 1;
            }
            return verified;
        }

        // A position with no compared output, t. When the next one is compared it reads t, and pairs (u
        // at t, v at t + 1) are checked there in batched calls of two positions: u over its first
        // `joint_budget` candidates in rank order, v over the next position's, a batch more of them each
        // round, until some pair reproduces the target at t + 1 (or v runs out). u is verified when
        // exactly one of its candidates has such a pair, ambiguous when several do, else undetermined;
        // the reported u is the one with the best pair either way, and t + 1 is then searched after it.
        void determine_through_next(std::int64_t t, const std::vector<std::int64_t>& all) {
            const std::int64_t T = target_.size(1);
            const bool next_compared = t + 1 < T && features_[t + 1].numel() > 0;
            if (!next_compared) {  // nothing after it reads it, or the next position is uncompared too
                const auto judged = t + 1 < T ? last_compared_after(t) : t;
                const auto orders = first_orders(query(prefix_, t, t, all, all, judged));
                for (auto p : all) {
                    checks_[p][t].compared = false, checks_[p][t].verdict = Verdict::undetermined;
                    ids_[p][t] = orders[p].front();
                }
                prefix_.append(ids_.narrow(1, t, 1));
                return;
            }
            const auto firsts = first_orders(query(prefix_, t, t, all, all, t + 1));
            const auto budget_of = [&](std::int64_t size) {
                return std::min(policy_.joint_budget > 0 ? policy_.joint_budget : size <= 4096 ? size : 64, size);
            };
            const auto A = allowed_.numel();
            const auto seconds = first_orders(query(prefix_, t, t + 1, all, all, t + 1, budget_of(A) == A));
            const at::Tensor features = features_[t + 1], embedding = model_.token_embedding();
            for (auto p : all) {
                PositionCheck& pc = checks_[p][t];
                pc.compared = false;
                const auto budget = budget_of(static_cast<std::int64_t>(firsts[p].size()));
                const auto& second = seconds[p];
                const auto last = std::min<std::int64_t>(limit_, second.size());
                const at::Tensor us =
                    long_tensor(std::vector<std::int64_t>(firsts[p].begin(), firsts[p].begin() + budget));
                const at::Tensor target = target_[p][t + 1].index_select(0, features).unsqueeze(0);
                std::map<std::int64_t, double> best;  // u → the error of its best pair
                for (std::int64_t next = 0, batch = policy_.batch; next < last; batch = next_batch(batch)) {
                    const auto n = std::min(batch, last - next);
                    const at::Tensor vs =
                        long_tensor(std::vector<std::int64_t>(second.begin() + next, second.begin() + next + n));
                    next += n;
                    const at::Tensor u = us.repeat_interleave(n), v = vs.repeat({budget});
                    at::Tensor err;
                    {
                        at::NoGradGuard no_grad;
                        const at::Device device = embedding.device();
                        const at::Tensor e = at::stack(
                            {embedding.index_select(0, u.to(device)), embedding.index_select(0, v.to(device))}, 1);
                        const at::Tensor out =
                            prefix_.extend_embedded(e, at::full({u.numel()}, p, at::kLong)).select(1, 1).to(at::kCPU);
                        err = detail::relative_error(out.index_select(1, features), target).contiguous();
                    }
                    const double* e = err.data_ptr<double>();
                    const std::int64_t* ui = u.data_ptr<std::int64_t>();
                    for (std::int64_t i = 0; i < u.numel(); ++i)
                        if (auto [it, fresh] = best.try_emplace(ui[i], e[i]); !fresh)
                            it->second = std::min(it->second, e[i]);
                    pc.checked += u.numel();
                    if (!check_all_ && std::any_of(e, e + u.numel(), [&](double x) { return x <= tolerance_; })) break;
                }
                std::vector<Candidate> tried;
                for (auto [id, error] : best) tried.push_back({id, error});
                judge(pc, tried, Verdict::undetermined);
                ids_[p][t] = tried.front().id;
            }
            prefix_.append(ids_.narrow(1, t, 1));
            search(t + 1, all, prefix_, all);
            prefix_.append(ids_.narrow(1, t + 1, 1));
            resolved_[t + 1] = true;
        }

        // Position t + 1's allowed tokens for prompt p by their error there with t held at ē: one call
        // of as many pairs as a round of the pair search. What t adds to t + 1's output is then only
        // its deviation from the mean, so the true token comes early even where its embedding and
        // typical output do not place it so (the untrained Llama of benchmarks/contrast).
        std::vector<std::int64_t> held_at_mean_order(std::int64_t p, std::int64_t t) {
            at::NoGradGuard no_grad;
            const std::int64_t A = allowed_.numel();
            const at::Tensor e = at::stack({mean_.unsqueeze(0).expand({A, -1}), allowed_w_}, 1);  // [A, 2, d]: (ē, E_v)
            const at::Tensor out = prefix_.extend_embedded(e, at::full({A}, p, at::kLong)).select(1, 1).to(at::kCPU);
            const at::Tensor features = features_[t + 1];
            const at::Tensor target = target_[p][t + 1].index_select(0, features).unsqueeze(0);
            return by_score(-detail::relative_error(out.index_select(1, features), target).unsqueeze(0)).front();
        }

        std::int64_t last_compared_after(std::int64_t t) const {
            for (auto u = static_cast<std::int64_t>(features_.size()) - 1; u > t; --u)
                if (features_[u].numel() > 0) return u;
            return t;
        }

        at::Tensor target_, ids_;  // the target [P, T, F] on the host; the ids found so far
        std::vector<at::Tensor> features_;
        std::vector<std::vector<PositionCheck>> checks_;
        std::map<std::int64_t, bool> resolved_;
        State prefix_;                                   // the prompts' resolved prefixes, one row each
        double first_rank_sum_ = 0, then_rank_sum_ = 0;  // where the ranker's two orders placed the accepted tokens
        double prior_rank_sum_ = 0,
               ranked_rank_sum_ = 0;  // ... the prior's and the ranker's first order it merges with
        std::int64_t learned_ = 0;    // ... at this many positions
    };

    Setup s_;
};

}  // namespace inputrep
