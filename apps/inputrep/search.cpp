// Exact search for every family (search_results, commands.hpp): the one file of the program that
// includes the search, so a change to it recompiles this file alone.
#include <inputrep/search/exact.hpp>

#include "commands.hpp"

namespace cli {

template <class M>
std::vector<Result> search_results(const M& model, const InvertRequest& q) {
    std::vector<Result> results;
    std::visit(
        [&](const auto& optimizer) {
            // One slice type: the search runs every slice as chains of blocks (model/incremental.hpp).
            Experiment exp(model, q.slice, q.metric, optimizer, q.mask, EmbeddingSpace{}, q.decoder);
            exp.with_tokenizer(*q.tokenizer);
            if (q.target) {
                const SafetensorsFile file(*q.target);
                results = exp.run_from_target(load_captured(file, q.target_hook, model.placement()), q.options);
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
