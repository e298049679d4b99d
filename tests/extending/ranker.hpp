// A ranker: where the slice outputs the residual stream, whose first term is the token's
// embedding, candidates by the cosine between the target and each allowed token's embedding; past a
// failed first batch, and at positions with no compared output, the search's gradient order.
#include <inputrep/inputrep.hpp>

struct CosineRank {
    static constexpr std::string_view name = "cosine";

    inputrep::Orders first(const inputrep::RankQuery& q) const {
        if (q.targets.size(1) != q.embeddings.size(1)) return q.gradient();
        const at::Tensor e = q.embeddings.to(at::kFloat), t = q.targets.to(e.device(), at::kFloat);
        return q.order(at::matmul(t / t.norm(2, -1, true), (e / e.norm(2, -1, true)).t()));  // [prompts, allowed]
    }
    inputrep::Orders then(const inputrep::RankQuery& q) const { return q.gradient(); }
};
static_assert(inputrep::Refining<CosineRank>);
