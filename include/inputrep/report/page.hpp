#pragma once
// The one skeleton of every page the library writes (inversion, bandwidth and attribution
// reports): self-contained HTML with no scripts and no external assets, so a report is one file
// that opens anywhere. Pages are put together with {fmt}; text enters only through `escaped`.
#include <filesystem>
#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>

namespace inputrep::report {

// Text as HTML text or attribute value: fmt::format("<td>{}</td>", escaped{name}).
struct escaped {
    std::string_view text;
};

}  // namespace inputrep::report

template <>
struct fmt::formatter<inputrep::report::escaped> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

    template <class Context>
    auto format(const inputrep::report::escaped& e, Context& ctx) const {
        auto out = ctx.out();
        for (const char c : e.text) {
            std::string_view entity;
            switch (c) {
                case '&':
                    entity = "&amp;";
                    break;
                case '<':
                    entity = "&lt;";
                    break;
                case '>':
                    entity = "&gt;";
                    break;
                case '"':
                    entity = "&quot;";
                    break;
                case '\'':
                    entity = "&#39;";
                    break;
                default:
                    *out++ = c;
                    continue;
            }
            out = std::copy(entity.begin(), entity.end(), out);
        }
        return out;
    }
};

namespace inputrep::report {

inline std::string escape(std::string_view text) { return fmt::format("{}", escaped{text}); }

// Rules every page shares; a page adds its own after them.
inline constexpr std::string_view base_style =
    "body { font-family: sans-serif; margin: 2em; max-width: 60em; color: #222; background: #fff; }\n"
    "table { border-collapse: collapse; }\n"
    "td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }\n"
    "code { white-space: pre; }\n";

// `body` is HTML already; `title` is text, shown as the page's title and heading.
inline std::string page(std::string_view title, std::string_view body, std::string_view style = {}) {
    return fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{0}</title>\n"
        "<style>\n{1}{2}</style>\n</head>\n<body>\n<h1>{0}</h1>\n{3}\n</body>\n</html>\n",
        escaped{title}, base_style, style, body);
}

inline void write(const std::filesystem::path& path, std::string_view html) { write_file(path, html); }

}  // namespace inputrep::report
