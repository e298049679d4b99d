#pragma once
// Rankers: the order in which exact search checks a position's candidates. The search verifies
// every candidate it checks, so an order changes how many it checks, never what it accepts: a good
// ranker puts the true token first. A ranker is any type with a name and
//
//   Orders first(const RankQuery& q) const       the order of the first batches, one per prompt
//   Orders then(const RankQuery& q) const        (optional) an order merged in once the first
//                                                batch has failed; empty: none
//
// The query holds the position, the allowed tokens, the prompts' recovered prefixes and targets,
// and the search's estimates of each candidate's error (each unset where it does not apply), so a
// ranker combines them or computes its own. Past a failed first batch the search merges `first`
// and `then`, the one that placed this search's accepted tokens better leading (docs/exact.md).
#include <concepts>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include <inputrep/core/torch.hpp>

namespace inputrep {

// Per prompt, token ids in the order they are checked.
using Orders = std::vector<std::vector<std::int64_t>>;

struct RankQuery {
    using Estimate = std::function<Orders()>;  // the allowed tokens by one estimate of their error, per prompt

    std::int64_t position = 0;  // the position ranked
    std::int64_t from = 0;      // the first unresolved position (≤ position: those between are held at ē)
    at::Tensor allowed;         // [allowed] ids, ascending
    at::Tensor embeddings;      // [allowed, d] their embeddings
    at::Tensor prefixes;        // [prompts, from] the recovered tokens
    at::Tensor targets;         // [prompts, F] the target at `position`, compared features only (F = 0: none)
    // Where the slice outputs the residual stream at `position`: by the decoder's score of the
    // target less its position embedding (no model call; through 1 block of GPT-2 the true token is first).
    Estimate nearest;
    // Where the allowed tokens were calibrated: by the distance of the target to each token's
    // typical output (its mean over random contexts; no model call).
    Estimate typical;
    // By −∇L(ē)·E_v, L the squared error at the next compared position with the unresolved
    // positions held at the mean embedding ē: one backward pass (HotFlip's linearisation).
    Estimate gradient;
    // Where `position` follows an uncompared one whose every candidate is tried: by the error at
    // `position` with the one before held at ē, one call of as many candidates as allowed.
    Estimate held_at_mean;
    std::function<Orders(const at::Tensor& scores)> order;  // scores [prompts, allowed] → ids, best first
    std::function<std::vector<std::int64_t>(const std::vector<std::int64_t>& lead,
                                            const std::vector<std::int64_t>& other)>
        merge;  // two orders, the lead taking three places in four

    std::int64_t prompts() const { return targets.size(0); }
    // Each prompt's order from `lead` and `other` merged.
    Orders merged(const Orders& lead, const Orders& other) const {
        Orders out;
        for (std::size_t a = 0; a < lead.size(); ++a) out.push_back(merge(lead[a], other[a]));
        return out;
    }
};

template <class R>
concept Ranker = std::copy_constructible<R> && requires(const R& r, const RankQuery& q) {
    { R::name } -> std::convertible_to<std::string_view>;
    { r.first(q) } -> std::same_as<Orders>;
};

// A ranker with a second order for positions its first batches did not decide.
template <class R>
concept Refining = Ranker<R> && requires(const R& r, const RankQuery& q) {
    { r.then(q) } -> std::same_as<Orders>;
};

}  // namespace inputrep
