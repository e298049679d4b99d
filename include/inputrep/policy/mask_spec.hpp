#pragma once
// The output mask as text, the one grammar that both the runs (AnyMask, policy/mask.hpp) and a
// sweep's summaries (which positions a row left out) read, libtorch-free as the sweeps are:
//   "all", "last", "tokens:B:E", "neurons:B:E" (E may be "end", or left out: through the last),
//   or a token and a neuron mask joined by ',' ("tokens:1:end,neurons:0:2201").
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/text.hpp>

namespace inputrep {

// Tokens<B, End>: through the last token.
inline constexpr int End = std::numeric_limits<int>::max();

struct MaskSpec {
    enum class Tokens { all, last, range };
    using Range = std::pair<std::int64_t, std::int64_t>;  // [B, E)
    Tokens tokens = Tokens::all;
    Range token_range{0, End};     // Tokens::range
    std::optional<Range> neurons;  // none: every feature

    static MaskSpec parse(std::string_view s) {
        MaskSpec mask;
        bool have_tokens = false;
        for (auto part : s.empty() ? std::vector<std::string_view>{} : text::split(s, ',')) {
            if (part == "all" || part == "last" || part.starts_with("tokens:")) {
                require(!have_tokens, "mask: more than one token mask");
                have_tokens = true;
                if (part == "last")
                    mask.tokens = Tokens::last;
                else if (part != "all")
                    mask.tokens = Tokens::range, mask.token_range = range(part.substr(7), part);
            } else if (part.starts_with("neurons:")) {
                require(!mask.neurons, "mask: more than one neuron mask");
                mask.neurons = range(part.substr(8), part);
            } else {
                fail("unknown mask \"", part, "\" (expected all, last, tokens:B:E or neurons:B:E)");
            }
        }
        return mask;
    }

    // The positions of a prompt of `length` tokens that are left out of the comparison: the tokens
    // only cross-token mixing carries.
    std::vector<bool> masked_positions(std::size_t length) const {
        std::vector<bool> masked(length, false);
        for (std::size_t p = 0; p < length; ++p) {
            const auto t = static_cast<std::int64_t>(p);
            if (tokens == Tokens::last) masked[p] = p + 1 < length;
            if (tokens == Tokens::range) masked[p] = t < token_range.first || t >= token_range.second;
        }
        return masked;
    }

private:
    // "B:E" or "B:end" (or "B", through the last), each bound all number: "3x" is not 3.
    static Range range(std::string_view text, std::string_view whole) {
        const auto bounds = text::split(text, ':');
        require(bounds.size() <= 2, "mask \"", whole, "\" is not B:E");
        const auto what = "mask \"" + std::string(whole) + "\"";
        const auto b = text::to_number<std::int64_t>(bounds.front(), what);
        const auto e = bounds.size() < 2 || bounds[1] == "end" ? std::int64_t{End}
                                                               : text::to_number<std::int64_t>(bounds[1], what);
        require(b >= 0 && b < e, "mask \"", whole, "\": need 0 <= B < E");
        return {b, e};
    }
};

}  // namespace inputrep
