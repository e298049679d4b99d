#pragma once
// What exact search reports per position: the verdict, the candidates checked and their errors.
// Results, summaries and the CLI read these; only search/exact.hpp computes them.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string_view>
#include <vector>

namespace inputrep {

// What the search found at one position.
enum class Verdict { verified, ambiguous, unmatched, undetermined };

inline std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::verified:
            return "verified";
        case Verdict::ambiguous:
            return "ambiguous";
        case Verdict::unmatched:
            return "unmatched";
        case Verdict::undetermined:
            return "undetermined";
    }
    return "?";
}

inline std::ostream& operator<<(std::ostream& out, Verdict v) { return out << to_string(v); }

struct Candidate {
    std::int64_t id = 0;
    double error =
        0;  // relative error of its output at the position (at the next compared one for an uncompared position)
};

struct PositionCheck {
    Verdict verdict = Verdict::verified;
    bool compared = true;  // the mask compares this position's output
    double error = std::numeric_limits<double>::quiet_NaN();
    double margin = std::numeric_limits<double>::infinity();  // the best other checked candidate's error
    std::int64_t checked = 0;                                 // candidates verified
    std::vector<Candidate>
        candidates;  // the best checked ones (up to 5), by error; all within tolerance when ambiguous
};

struct Verification {
    double tolerance = 0;
    std::vector<PositionCheck> positions;
    double seconds = 0;
    // Every compared position reproduced within tolerance by exactly one checked candidate, and every
    // uncompared one determined through the position after it.
    bool verified() const {
        return std::all_of(positions.begin(), positions.end(),
                           [](const PositionCheck& p) { return p.verdict == Verdict::verified; });
    }
    std::int64_t candidates_checked() const {
        std::int64_t n = 0;
        for (auto& p : positions) n += p.checked;
        return n;
    }
    std::vector<std::int64_t> where(Verdict v) const {
        std::vector<std::int64_t> out;
        for (std::size_t t = 0; t < positions.size(); ++t)
            if (positions[t].verdict == v) out.push_back(static_cast<std::int64_t>(t));
        return out;
    }
};

}  // namespace inputrep
