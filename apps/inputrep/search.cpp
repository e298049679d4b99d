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

}  // namespace

template <class M>
std::vector<Result> search_results(const M& model, const InvertRequest& q) {
    std::vector<Result> results;
    std::visit(
        [&](auto optimizer) {
            if constexpr (std::same_as<decltype(optimizer), Exact<GradientRank>>)
                if (q.prior) optimizer.rank.prior = load_prior(*q.prior);
            // One slice type: the search runs every slice as chains of blocks (model/incremental.hpp).
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

template std::vector<Result> search_results<GPT2>(const GPT2&, const InvertRequest&);
template std::vector<Result> search_results<Llama>(const Llama&, const InvertRequest&);
template std::vector<Result> search_results<GPTJ>(const GPTJ&, const InvertRequest&);
template std::vector<Result> search_results<Mixer>(const Mixer&, const InvertRequest&);

}  // namespace cli
