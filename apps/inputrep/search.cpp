// Exact search for every family (search_results, commands.hpp): the one file of the program that
// includes the search, so a change to it recompiles this file alone.
#include <inputrep/search/exact.hpp>

#include "commands.hpp"

namespace cli {

namespace {

// --prior MODEL: the whole model, to its logits.
Prior load_prior(const ModelOptions& o) {
    Prior prior;
    with_model(o, Needs{{0, dynamic_depth}, true, true}, std::nullopt, [&](const auto& m) { prior = prior_of(m); });
    return prior;
}

template <class M>
std::vector<SearchResult> search(const M& model, const InvertRequest& q) {
    std::vector<SearchResult> results;
    std::visit(
        [&](auto optimizer) {
            if constexpr (std::same_as<decltype(optimizer), Exact<GradientRank>>)
                if (q.prior) optimizer.rank.prior = load_prior(*q.prior);
            // One slice type: the search runs every slice as chains of blocks (search/incremental.hpp).
            Experiment exp(model, q.slice, q.metric, optimizer, q.mask, EmbeddingSpace{}, q.decoder);
            exp.with_tokenizer(*q.tokenizer);
            if (q.target) {
                const SafetensorsFile file(*q.target);
                results = exp.run_from_target(load_captured_outputs(file, q.target_hook, model.placement()), q.options);
            } else {
                results = exp.run(q.prompts, q.options);
            }
        },
        std::get<AnyExact>(q.optimizer));
    return results;
}

}  // namespace

std::vector<SearchResult> search_results(AnyModel model, const InvertRequest& q) {
    return std::visit([&](const auto* m) { return search(*m, q); }, model);
}

}  // namespace cli
