#pragma once
// A standalone HTML page of an attribution: each token highlighted by its score, in the seed's
// colour map. For display the scores are min–max scaled over the tokens to v ∈ [0, 1] (left as
// they are when all are equal), then coloured #rr6e6e with rr = ⌊255·v⌋: blue-green (low) to red (high).
#include <algorithm>
#include <filesystem>
#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <xtensor/xmath.hpp>

#include <inputrep/attribution/attribution.hpp>
#include <inputrep/core/error.hpp>
#include <inputrep/report/page.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

namespace inputrep {

namespace detail {

// A token's text as it should read on the page. Spaces stay spaces (the page keeps white space,
// so a leading space shows as highlighted room); line breaks, tabs and other control bytes get a
// visible mark, otherwise a "\n" token would be an empty-looking span.
inline void append_token_text(std::string& out, std::string_view text) {
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n')
            out += "\u21b5\n";  // ↵, then the break itself
        else if (c == '\t')
            out += "\u2192\t";  // →
        else if (u < 0x20)
            out += std::string{'\xe2', '\x90', char(0x80 + u)};  // U+2400 + u: ␀ ... ␟
        else if (u == 0x7f)
            out += "\u2421";  // ␡
        else
            fmt::format_to(std::back_inserter(out), "{}", report::escaped{std::string_view(&c, 1)});
    }
}

inline constexpr std::string_view attribution_style =
    ".meta, .legend { color: #555; }\n"
    ".text { font-family: monospace; font-size: 1.25em; line-height: 2; white-space: pre-wrap; }\n"
    ".token { padding: 0.15em 0; margin-right: 1px; border-radius: 3px; }\n"
    ".bar { display: inline-block; width: 12em; height: 1em; vertical-align: middle;\n"
    "       background: linear-gradient(to right, #006e6e, #ff6e6e); }\n";

}  // namespace detail

inline std::string attribution_html(const AttributionResult& r, const Tokenizer& tokenizer) {
    const auto T = r.ids.size();
    require(r.normalised.size() == T, "attribution_html: ", r.normalised.size(), " scores for ", T, " tokens");
    const float lo = xt::amin(r.normalised)(), hi = xt::amax(r.normalised)();
    const bool scaled = hi > lo;
    auto decode = [&](std::int64_t id) { return tokenizer.decode(std::span(&id, 1)); };

    std::string body;
    auto out = std::back_inserter(body);
    fmt::format_to(out,
                   "<p class=\"meta\">Model: {}, {} and the head &middot; the prediction after token {} of {}</p>\n",
                   report::escaped{r.model},
                   r.blocks == r.depth ? fmt::format("all {} blocks", r.depth)
                                       : fmt::format("blocks 0&ndash;{} of {}", r.blocks - 1, r.depth),
                   r.position + 1, T);
    fmt::format_to(out,
                   "<p class=\"legend\">low <span class=\"bar\"></span> high &mdash; {}; hover a token for its "
                   "score.</p>\n<div class=\"text\">",
                   scaled ? "colour: the score scaled from the lowest to the highest token"
                          : "every token scores the same, so the colour shows the score as it is");
    for (std::size_t t = 0; t < T; ++t) {
        const float score = r.normalised(t);
        const float v = std::clamp(scaled ? (score - lo) / (hi - lo) : score, 0.0f, 1.0f);
        const int red = static_cast<int>(v * 255);
        // White and black text reach equal WCAG contrast on #rr6e6e near rr = 133.
        fmt::format_to(out,
                       "<span class=\"token\" data-score=\"{:.6f}\" title=\"score {:.4f}\" style=\"background-color: "
                       "#{:02x}6e6e; color: {}\">",
                       score, score, red, red < 133 ? "#fff" : "#000");
        detail::append_token_text(body, decode(r.ids[t]));
        body += "</span>";
    }
    body += "</div>\n<p class=\"prediction\">Predicted next token: <b>";
    detail::append_token_text(body, decode(r.predicted));
    body += "</b></p>";
    return report::page(fmt::format("Attribution: {}", method_name(r.method)), body, detail::attribution_style);
}

inline void write_attribution_html(const std::filesystem::path& file, const AttributionResult& r,
                                   const Tokenizer& tokenizer) {
    report::write(file, attribution_html(r, tokenizer));
}

}  // namespace inputrep
