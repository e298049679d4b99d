#pragma once
// Every model family, listed once. The program's dispatch on config.json's model_type, `train`,
// the config fuzz target and the program's per-family compilation units (apps/inputrep/CMakeLists.txt
// reads the `using Families` line below) all follow this list: a new family is its own header and
// one entry here (docs/extending.md, "Adding a family").
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/model/gpt2.hpp>
#include <inputrep/model/gptj.hpp>
#include <inputrep/model/llama.hpp>
#include <inputrep/model/mixer.hpp>

namespace inputrep {

template <class... Fs>
struct FamilyList {
    // f.template operator()<F>() for each family in order until one returns true; whether one did.
    template <class F>
    static bool any(F&& f) {
        return (... || f.template operator()<Fs>());
    }
    // f.template operator()<F>() for every family, in order.
    template <class F>
    static void each(F&& f) {
        (..., f.template operator()<Fs>());
    }
    // Rebinds the list: With<GPT2, Llama, ...>.
    template <template <class...> class With>
    using apply = With<Fs...>;
};

using Families = FamilyList<GPT2, Llama, GPTJ, Mixer>;

// Every model_type the families read, in list order.
inline std::vector<std::string> model_type_names() {
    std::vector<std::string> names;
    Families::each([&]<class M>() { names.insert(names.end(), M::model_types.begin(), M::model_types.end()); });
    return names;
}

// f.template operator()<F>() for the family whose config.json model_type is `model_type`; an
// unknown one is an Error naming those the families read.
template <class F>
void with_model_type(std::string_view model_type, F&& f) {
    const bool found = Families::any([&]<class M>() {
        if (std::ranges::find(M::model_types, model_type) == M::model_types.end()) return false;
        f.template operator()<M>();
        return true;
    });
    if (found) return;
    std::string known;
    for (const auto& name : model_type_names()) known += (known.empty() ? "" : ", ") + name;
    fail("unknown model_type \"", model_type, "\" (supported: ", known, ")");
}

// A model of any family, by reference: what a non-template function takes where each family's model
// may arrive (the program's exact search, compiled once for every family in one file).
template <class... Fs>
using AnyModelOf = std::variant<const Fs*...>;
using AnyModel = Families::apply<AnyModelOf>;

}  // namespace inputrep
