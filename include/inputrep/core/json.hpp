#pragma once
// JSON that someone else wrote (specs, results lines, trainer states, logs): parsed with a bound on
// its nesting (a recursive reader or printer of a document 100,000 levels deep overflows the stack),
// and read field by field with messages that name where and which field: "runs/a/results.jsonl:3:
// \"row\" is -1, not an integer >= 0", never a bare "[json.exception.type_error.302]".
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>

namespace inputrep {

using Json = nlohmann::json;

// Deeper than any file inputrep writes or reads (a spec's "rows" nest a few levels).
inline constexpr int max_json_depth = 64;

// `text` as JSON; `where` ("FILE" or "FILE:LINE") starts every message.
inline Json parse_json(std::string_view text, std::string_view where) {
    auto bounded = [&](int depth, Json::parse_event_t, Json&) {
        require(depth <= max_json_depth, where, ": nested deeper than ", max_json_depth, " levels");
        return true;
    };
    try {
        return Json::parse(text.begin(), text.end(), bounded);
    } catch (const Json::exception& e) {
        fail(where, " is not JSON (", e.what(), ")");
    }
}

namespace json_detail {

inline std::string short_dump(const Json& value) {
    auto text = value.dump();
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

}  // namespace json_detail

// object[key] as a T: an integer that fits T, a finite number, a string, a bool, an array or an
// object, else an error naming `where` and the key.
template <class T>
T json_field(const Json& object, std::string_view key, std::string_view where) {
    require(object.is_object(), where, ": expected a JSON object, found ", json_detail::short_dump(object));
    const auto it = object.find(key);
    require(it != object.end(), where, ": \"", key, "\" is missing");
    const Json& v = *it;
    auto wrong = [&](std::string_view expected) {
        fail(where, ": \"", key, "\" is ", json_detail::short_dump(v), ", not ", expected);
    };
    if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) wrong("true or false");
        return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
        if (v.is_number_unsigned() && std::in_range<T>(v.get<std::uint64_t>()))
            return static_cast<T>(v.get<std::uint64_t>());
        if (v.is_number_integer() && !v.is_number_unsigned() && std::in_range<T>(v.get<std::int64_t>()))
            return static_cast<T>(v.get<std::int64_t>());
        fail(where, ": \"", key, "\" is ", json_detail::short_dump(v), ", not ",
             std::is_signed_v<T> ? "an integer" : "an integer >= 0");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) wrong("a number");
        return v.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) wrong("a text");
        return v.get<std::string>();
    } else {
        static_assert(std::is_same_v<T, Json>, "json_field reads bool, integers, floating point, std::string or Json");
        return v;
    }
}

}  // namespace inputrep
