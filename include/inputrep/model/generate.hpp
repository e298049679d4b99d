#pragma once
// Greedy decoding for any model family: append the most likely next token, one full forward pass
// per step (no KV cache: this serves checks and demos, not serving). Ties go to the lowest id, as
// llama2.c's argmax does.
#include <cstdint>
#include <vector>

#include <inputrep/model/model.hpp>

namespace inputrep {

template <class M>
    requires LanguageModel<family_of_t<M>>
std::vector<std::int64_t> generate(const M& model, std::vector<std::int64_t> ids, int steps) {
    require(!ids.empty(), "generate: the prompt is empty (start from the BOS token)");
    require(steps >= 0, "generate: steps must not be negative (got ", steps, ")");
    require(static_cast<std::int64_t>(ids.size()) + steps <= model.context_length(), "generate: ", ids.size(), " prompt tokens and ", steps,
            " new ones exceed the model's context of ", model.context_length(), " positions");
    at::NoGradGuard no_grad;
    for (int s = 0; s < steps; ++s) {
        const auto T = static_cast<std::int64_t>(ids.size());
        auto x = model.embed(at::tensor(ids, at::kLong).view({1, T}).to(model.placement().device));
        const auto ctx = model.context(T, true);
        for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
        ids.push_back(model.unembed(x.narrow(1, T - 1, 1)).argmax(-1).template item<std::int64_t>());
    }
    return ids;
}

}  // namespace inputrep
