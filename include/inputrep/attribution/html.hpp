#pragma once
// A standalone HTML page of an attribution: each token highlighted by its score, in the seed's
// colour map. For display the scores are min–max scaled over the tokens to v ∈ [0, 1] (left as
// they are when all are equal), then coloured #rr6e6e with rr = ⌊255·v⌋: blue-green (low) to red (high).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <xtensor/xmath.hpp>

#include <inputrep/attribution/attribution.hpp>
#include <inputrep/report/escape.hpp>
#include <inputrep/core/error.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

namespace inputrep {

namespace detail {

using report::append_escaped;

// A token's text as it should read on the page. Spaces stay spaces (the page keeps white space,
// so a leading space shows as highlighted room); line breaks, tabs and other control bytes get a
// visible mark, otherwise a "\n" token would be an empty-looking span.
inline void append_token_text(std::string& out, std::string_view text) {
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') out += "\u21b5\n";                      // ↵, then the break itself
        else if (c == '\t') out += "\u2192\t";                 // →
        else if (u < 0x20) out += std::string{'\xe2', '\x90', char(0x80 + u)};  // U+2400 + u: ␀ ... ␟
        else if (u == 0x7f) out += "\u2421";                   // ␡
        else append_escaped(out, std::string_view(&c, 1));
    }
}

template <class... Args>
std::string formatted(const char* format, Args... args) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, args...);
    return buffer;
}

}  // namespace detail

inline std::string attribution_html(const AttributionResult& r, const Tokenizer& tokenizer) {
    const auto T = r.ids.size();
    require(r.normalised.size() == T, "attribution_html: ", r.normalised.size(), " scores for ", T, " tokens");
    const float lo = xt::amin(r.normalised)(), hi = xt::amax(r.normalised)();
    const bool scaled = hi > lo;
    auto decode = [&](std::int64_t id) { return tokenizer.decode(std::span(&id, 1)); };

    std::string title = "Attribution: ";
    title += method_name(r.method);
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>";
    detail::append_escaped(out, title + " (" + r.model + ")");
    out += "</title>\n<style>\n"
           "body { font-family: sans-serif; margin: 2em; color: #222; background: #fff; }\n"
           ".meta, .legend { color: #555; }\n"
           ".text { font-family: monospace; font-size: 1.25em; line-height: 2; white-space: pre-wrap; }\n"
           ".token { padding: 0.15em 0; margin-right: 1px; border-radius: 3px; }\n"
           ".bar { display: inline-block; width: 12em; height: 1em; vertical-align: middle;\n"
           "       background: linear-gradient(to right, #006e6e, #ff6e6e); }\n"
           "</style>\n</head>\n<body>\n<h1>";
    detail::append_escaped(out, title);
    out += "</h1>\n<p class=\"meta\">Model: ";
    detail::append_escaped(out, r.model);
    out += r.blocks == r.depth ? detail::formatted(", all %d blocks", r.depth)
                               : detail::formatted(", blocks 0&ndash;%d of %d", r.blocks - 1, r.depth);
    out += detail::formatted(" and the head &middot; the prediction after token %lld of %zu</p>\n",
                             static_cast<long long>(r.position + 1), T);
    out += "<p class=\"legend\">low <span class=\"bar\"></span> high &mdash; ";
    out += scaled ? "colour: the score scaled from the lowest to the highest token"
                  : "every token scores the same, so the colour shows the score as it is";
    out += "; hover a token for its score.</p>\n<div class=\"text\">";
    for (std::size_t t = 0; t < T; ++t) {
        const float score = r.normalised(t);
        const float v = std::clamp(scaled ? (score - lo) / (hi - lo) : score, 0.0f, 1.0f);
        const int red = static_cast<int>(v * 255);
        // White and black text reach equal WCAG contrast on #rr6e6e near rr = 133.
        const char* ink = red < 133 ? "#fff" : "#000";
        out += detail::formatted("<span class=\"token\" data-score=\"%.6f\" title=\"score %.4f\" ", score, score);
        out += detail::formatted("style=\"background-color: #%02x6e6e; color: %s\">", red, ink);
        detail::append_token_text(out, decode(r.ids[t]));
        out += "</span>";
    }
    out += "</div>\n<p class=\"prediction\">Predicted next token: <b>";
    detail::append_token_text(out, decode(r.predicted));
    out += "</b></p>\n</body>\n</html>\n";
    return out;
}

inline void write_attribution_html(const std::filesystem::path& file, const AttributionResult& r, const Tokenizer& tokenizer) {
    const std::string page = attribution_html(r, tokenizer);
    std::ofstream out(file, std::ios::binary);
    require(out.good(), "attribution_html: cannot write ", file.string());
    out.write(page.data(), static_cast<std::streamsize>(page.size()));
    require(out.good(), "attribution_html: writing ", file.string(), " failed");
}

}  // namespace inputrep
