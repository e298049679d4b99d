#pragma once
// What exact search found for one prompt: the ids, how each position was verified, the distance of
// the recovered ids' output to the target, and the decoded text. A search has no trace, no decoder
// scores and no shifted input, so its result has none: a summary reads only what applies.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/search/verdict.hpp>

namespace inputrep {

// Positions where `ids` equals `target` (0 where there is no target).
inline std::size_t matching_tokens(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& target) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < std::min(ids.size(), target.size()); ++i) n += ids[i] == target[i];
    return n;
}

class SearchResult {
public:
    struct Fields {
        std::vector<std::int64_t> target;  // what the target came from; empty from captured outputs
        std::vector<std::int64_t> ids;
        std::optional<std::string> text;  // the ids decoded, when a tokenizer was attached
        Verification verification;
        double distance = 0;  // the experiment's metric between the recovered ids' output and the target
        int batch = 1;        // prompts searched together
    };
    explicit SearchResult(Fields f) : f_(std::move(f)) {}

    const std::vector<std::int64_t>& target() const { return f_.target; }
    const std::vector<std::int64_t>& ids() const { return f_.ids; }
    std::string decoded() const {
        require(f_.text.has_value(), "no tokenizer was attached to the experiment, so there is no text (use ids)");
        return *f_.text;
    }
    bool exact() const { return !f_.target.empty() && f_.ids == f_.target; }  // false when no prompt was given
    std::size_t exact_tokens() const { return matching_tokens(f_.ids, f_.target); }
    double distance() const { return f_.distance; }
    // The tolerance, each position's verdict, error, margin and candidates checked.
    const Verification& verification() const { return f_.verification; }
    bool verified() const { return f_.verification.verified(); }
    std::int64_t candidates_checked() const { return f_.verification.candidates_checked(); }
    double seconds() const { return f_.verification.seconds; }
    int batch() const { return f_.batch; }

private:
    Fields f_;
};

}  // namespace inputrep
