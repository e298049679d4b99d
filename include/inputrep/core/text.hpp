#pragma once
// The one splitter and number reader behind every option string the library parses
// ("tokens:1:end,neurons:0:32", "combined:0.5:1", "concat:2:4"): each piece must be all number,
// so "1e12" is not the integer 1 and "3x" is not 3.
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <inputrep/core/error.hpp>

namespace inputrep::text {

// "a,b,,c" → {"a", "b", "", "c"}; "" → {""}. The pieces view `s`.
inline std::vector<std::string_view> split(std::string_view s, char separator) {
    std::vector<std::string_view> pieces;
    for (std::size_t at = 0;;) {
        const auto next = s.find(separator, at);
        pieces.push_back(s.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
        if (next == std::string_view::npos) return pieces;
        at = next + 1;
    }
}

// "head SEP rest" at the first `separator`: {"head", "rest"}; {s, nullopt} when there is none
// ("gpt2:n_layer=1" → {"gpt2", "n_layer=1"}, "n_layer=1" at '=' → {"n_layer", "1"}).
inline std::pair<std::string_view, std::optional<std::string_view>> split_once(std::string_view s, char separator) {
    const auto at = s.find(separator);
    if (at == std::string_view::npos) return {s, std::nullopt};
    return {s.substr(0, at), s.substr(at + 1)};
}

// The whole of `s` as a T, or an Error that names `what` ("--ids", "mask \"tokens:a:b\"").
template <class T>
T to_number(std::string_view s, std::string_view what) {
    T value{};
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    require(error != std::errc::result_out_of_range, what, ": ", s, " is out of range");
    require(error == std::errc{} && end == s.data() + s.size() && !s.empty(), what, ": \"", s, "\" is not ",
            std::is_integral_v<T> ? "an integer" : "a number");
    return value;
}

}  // namespace inputrep::text
