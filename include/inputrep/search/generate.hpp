#pragma once
// Greedy decoding for any model family: append the most likely next token. The prompt runs once and
// each new token runs alone against the kept keys and values (the incremental forward,
// search/incremental.hpp). Ties go to the lowest id, as llama2.c's argmax does.
#include <cstdint>
#include <vector>

#include <inputrep/model/model.hpp>
#include <inputrep/search/incremental.hpp>

namespace inputrep {

template <class M>
requires LanguageModel<family_of_t<M>> std::vector<std::int64_t> generate(const M& model, std::vector<std::int64_t> ids,
                                                                          int steps) {
    require(!ids.empty(), "generate: the prompt is empty (start from the BOS token)");
    require(steps >= 0, "generate: steps must not be negative (got ", steps, ")");
    require(static_cast<std::int64_t>(ids.size()) + steps <= model.context_length(), "generate: ", ids.size(),
            " prompt tokens and ", steps, " new ones exceed the model's context of ", model.context_length(),
            " positions");
    at::NoGradGuard no_grad;
    Incremental<M> state(model, BlockSlice{{0, model.depth()}});
    auto y = state.append(ids);
    for (int s = 0; s < steps; ++s) {
        ids.push_back(model.unembed(y.narrow(1, y.size(1) - 1, 1)).argmax(-1).template item<std::int64_t>());
        if (s + 1 < steps) y = state.append({ids.back()});
    }
    return ids;
}

}  // namespace inputrep
