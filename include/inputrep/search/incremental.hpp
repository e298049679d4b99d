#pragma once
// Causal slices evaluated position by position (the incremental forward): a prefix runs once and
// each block keeps what later positions need of it (PrefixCache: keys and values; the masked
// mixer's token-mixing inputs); then N candidate tokens at the next position run as one batch that
// shares it. A causal block's output at position t depends on tokens ≤ t only, so this equals the
// full forward pass at that position (tested to 1e-5 in f32), at the cost of one position.
//   Incremental inc(model, Blocks<0, 5>{});
//   at::Tensor y = inc.append(ids);           // [1, n, d_out]: outputs at the appended positions, which join the prefix
//   at::Tensor c = inc.extend(candidates);    // [N] ids → [N, 1, d_out]: the output at the next position for each
//   inc.append(std::vector{best});            // the prefix grows by the accepted token
// It holds B prefixes of one length as well (a batch of prompts searched together): append
// ids [B, n], and extend(candidates, owners) runs each candidate after the prefix owners names, all
// B prefixes' candidates in one call, which is what makes small models fast (their cost is per
// call, not per candidate).
// Every causal slice kind: Blocks, BlockSlice, NoResidual, NoNorm, Attention<i>, Concat, UpTo and
// SliceSpec (outputs joined along features as apply_slice joins them). Bidirectional slices are
// refused: left-to-right evaluation needs causality.
#include <cstdint>
#include <span>
#include <vector>

#include <inputrep/model/family.hpp>
#include <inputrep/model/slice.hpp>

namespace inputrep {

// One run of blocks from the slice's input: blocks begin..end.block, the last one up to end.hook.
struct Chain {
    int begin = 0;
    HookPoint end;
};

template <int B, int E>
std::vector<Chain> chains_of(const Blocks<B, E>&) {
    return {{B, {E - 1, Hook::resid_post}}};
}
inline std::vector<Chain> chains_of(const BlockSlice& s) {
    return {{s.blocks.begin, {s.blocks.end - 1, Hook::resid_post}}};
}
template <HookString Name, int B>
std::vector<Chain> chains_of(const UpTo<Name, B>& s) {
    return {{B, s.end}};
}
template <class... Parts>
std::vector<Chain> chains_of(const Concat<Parts...>& c) {
    std::vector<Chain> out;
    std::apply([&](const auto&... p) { (std::ranges::copy(chains_of(p), std::back_inserter(out)), ...); }, c.parts);
    return out;
}
inline std::vector<Chain> chains_of(const SliceSpec& s) {
    std::vector<Chain> out;
    for (auto& end : s.end_hooks) out.push_back({s.parts.front().begin, end});
    if (!out.empty()) return out;
    for (auto& p : s.parts) out.push_back({p.begin, {p.end - 1, Hook::resid_post}});
    return out;
}

// Whether a slice type can run left to right: every kind but Bidirectional<...>.
template <class S>
inline constexpr bool is_causal_slice = true;
template <class S>
inline constexpr bool is_causal_slice<Bidirectional<S>> = false;

template <class M>
class Incremental {
public:
    template <Slice S>
    Incremental(const M& model, const S& slice) : model_(&model), chains_(chains_of(slice)), variant_(slice.variant()) {
        static_assert(is_causal_slice<S>,
                      "Incremental: a Bidirectional<...> slice sees later tokens, so it cannot run left to right");
        require(slice.causal(), "the incremental forward needs a causal slice (a bidirectional one sees later tokens)");
        for (auto& c : chains_) {
            require(c.begin >= 0 && c.begin <= c.end.block && c.end.block < model.depth(), "the slice's blocks [",
                    c.begin, ", ", c.end.block + 1, ") are outside the model's ", model.depth(), " blocks");
            caches_.emplace_back(c.end.block + 1 - c.begin);
        }
    }

    std::int64_t length() const { return length_; }
    std::int64_t prefixes() const { return prefixes_; }

    // The slice's outputs at the appended positions [B, n, d_out] for ids [B, n] (B: 1, or the
    // prefixes held); the tokens join the prefixes.
    at::Tensor append(const at::Tensor& ids) {
        require(ids.dim() == 2 && ids.size(1) > 0, "append: ids must be [prefixes, tokens], not ", ids.sizes());
        require(length_ == 0 || ids.size(0) == prefixes_, "append: ", ids.size(0), " rows of ids for ", prefixes_,
                " prefixes");
        auto y = step(embed(ids), true, {});
        prefixes_ = ids.size(0), length_ += ids.size(1);
        for (auto& chain : caches_)
            for (auto& c : chain) c.length = length_;
        return y;
    }
    at::Tensor append(std::span<const std::int64_t> ids) {
        require(!ids.empty(), "append: no tokens");
        return append(at::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), at::kLong).view({1, -1}));
    }
    at::Tensor append(std::initializer_list<std::int64_t> ids) {
        return append(std::span<const std::int64_t>(ids.begin(), ids.size()));
    }

    // For each of N candidate tokens [N] at the next position, the slice's output there [N, 1, d_out];
    // the prefixes are unchanged. With several prefixes, owners [N] names each candidate's.
    at::Tensor extend(const at::Tensor& candidates, const at::Tensor& owners = {}) {
        require(candidates.dim() == 1 && candidates.numel() > 0,
                "extend: candidates must be a non-empty list of token ids [N]");
        return step(embed(candidates.view({-1, 1})), false, owners);
    }

    // The same for continuous token embeddings e [N, n, d] at the next n positions (the position
    // embedding is added here, as for ids), differentiable in e: [N, n, d_out].
    at::Tensor extend_embedded(const at::Tensor& e, const at::Tensor& owners = {}) {
        require(e.dim() == 3 && e.size(0) > 0 && e.size(1) > 0, "extend_embedded: e must be [N, n, d], not ",
                e.sizes());
        return step(e, false, owners);
    }

    // The prefixes `rows` [R] alone, as a state of R prefixes sharing nothing mutable with this one.
    Incremental select(const at::Tensor& rows) const {
        Incremental out = *this;
        const at::Tensor r = rows.to(model_->placement().device, at::kLong);
        for (auto& chain : out.caches_)
            for (auto& c : chain) {
                if (c.k.defined()) c.k = c.k.index_select(0, r), c.v = c.v.index_select(0, r);
                for (auto& t : c.rows)
                    if (t.defined()) t = t.index_select(0, r);
            }
        out.prefixes_ = rows.numel();
        return out;
    }

private:
    at::Tensor embed(at::Tensor ids) const {
        const M& m = *model_;
        ids = ids.to(m.placement().device);
        check_token_ids(ids, m.token_embedding().size(0));
        return at::embedding(m.token_embedding(), ids);
    }

    // Each run's owner where owners [N] comes in runs of one length (undefined otherwise).
    at::Tensor equal_runs(const at::Tensor& owners) const {
        const auto [values, inverse, counts] = at::unique_consecutive(owners.to(at::kCPU), false, true);
        const bool equal = (counts == counts[0]).all().template item<bool>();
        return equal ? values.to(model_->placement().device, at::kLong) : at::Tensor();
    }

    at::Tensor step(at::Tensor x, bool append, const at::Tensor& owners) {
        const M& m = *model_;
        require(owners.defined() ? owners.dim() == 1 && owners.size(0) == x.size(0)
                                 : append || length_ == 0 || prefixes_ == 1,
                "extend: with ", prefixes_, " prefixes each candidate needs its owner (owners [N])");
        // One prefix broadcasts without the copy a gather would make.
        const at::Tensor own = owners.defined() && length_ > 0 && prefixes_ > 1
                                   ? owners.to(m.placement().device, at::kLong)
                                   : at::Tensor();
        const at::Tensor runs = own.defined() ? equal_runs(owners) : at::Tensor();
        const auto n = x.size(1), P = length_, L = P + n;
        require(L <= m.context_length(), P, " prefix tokens and ", n, " new ones exceed the model's context of ",
                m.context_length(), " positions");
        if (auto offset = m.position_offset(L); offset.defined()) x = x + offset.narrow(0, P, n);
        const auto ctx = m.context(L, true, variant_);
        std::vector<at::Tensor> outputs;
        for (std::size_t c = 0; c < chains_.size(); ++c) {
            const auto& chain = chains_[c];
            at::Tensor y = x;
            for (int i = chain.begin; i <= chain.end.block; ++i) {
                auto& cache = caches_[c][i - chain.begin];
                cache.append = append, cache.owners = own, cache.runs = runs;
                y = m.block_step(i, y, ctx, cache, i == chain.end.block ? chain.end.hook : Hook::resid_post);
            }
            outputs.push_back(y);
        }
        return outputs.size() == 1 ? outputs.front() : at::cat(outputs, -1);
    }

    const M* model_;
    std::vector<Chain> chains_;
    BlockVariant variant_;
    std::vector<std::vector<PrefixCache>> caches_;  // [chain][block]
    std::int64_t length_ = 0, prefixes_ = 1;
};

}  // namespace inputrep
