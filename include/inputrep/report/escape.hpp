#pragma once
// Text into HTML, for every page the library writes.
#include <string>
#include <string_view>

namespace inputrep::report {

inline void append_escaped(std::string& out, std::string_view text) {
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
}

inline std::string escape(std::string_view text) {
    std::string out;
    append_escaped(out, text);
    return out;
}

}  // namespace inputrep::report
