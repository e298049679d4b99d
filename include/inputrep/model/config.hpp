#pragma once
// A family's config keys, listed once: each entry names a config.json key and the member it fills,
// and read_config / write_config walk the same list, so a key read is a key written, with the same
// name and the same default (the member's). What is not a plain key (model_type, architectures, an
// alias, a nested object) each family reads and writes beside the list.
//
//   Key{"n_embd", &C::n_embd, positive}       a number or bool; `positive`: > 0 and finite
//   OptionalSize{"n_inner", &C::n_inner}      absent or null: 0 (derive it); given: > 0; 0 is written null
//   Choice<C, N>{"token_mixing", &C::expanded, {{"flat", false}, {"expanded", true}}}
//                                             one of the names; the first name of a value is written
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <inputrep/core/error.hpp>
#include <inputrep/io/hf_config.hpp>

namespace inputrep {

inline void require_positive(std::string_view family, std::string_view key, double value) {
    require(value > 0 && std::isfinite(value), family, ": ", key, " must be positive (got ", value, ")");
}

// An optional size whose absence (or null) means "derive it": 0 then; a value given must be positive,
// so num_key_value_heads=0 is an error rather than a silent "no grouping".
inline std::int64_t optional_size(const Json& j, std::string_view family, std::string_view key) {
    const auto v = config_value<std::int64_t>(j, key, 0);
    const auto it = j.find(key);
    if (it != j.end() && !it->is_null())
        require(v > 0, family, ": ", key, " must be positive (got ", v, "); leave it out or null for the default");
    return v;
}

inline constexpr bool positive = true;

template <class C, class T>
struct Key {
    std::string_view name;
    T C::*member;
    bool must_be_positive = false;
};

template <class C>
struct OptionalSize {
    std::string_view name;
    std::int64_t C::*member;
};

// Spelled out: clang before 17 does not deduce an aggregate's arguments by itself.
template <class C, class T>
Key(std::string_view, T C::*, bool = false) -> Key<C, T>;
template <class C>
OptionalSize(std::string_view, std::int64_t C::*) -> OptionalSize<C>;

template <class C, std::size_t N>
struct Choice {
    std::string_view name;
    bool C::*member;
    std::array<std::pair<std::string_view, bool>, N> names;
};

namespace detail {

// The name a Choice writes for the member's value: the first one of it.
template <class C, std::size_t N>
std::string_view written(const C& c, const Choice<C, N>& k) {
    for (const auto& [name, on] : k.names)
        if (on == c.*k.member) return name;
    return k.names.front().first;
}

template <class C, class T>
void read_entry(const Json& j, std::string_view family, C& c, const Key<C, T>& k) {
    c.*k.member = config_value<T>(j, k.name, c.*k.member);
    if (k.must_be_positive) require_positive(family, k.name, double(c.*k.member));
}
template <class C>
void read_entry(const Json& j, std::string_view family, C& c, const OptionalSize<C>& k) {
    c.*k.member = optional_size(j, family, k.name);
}
template <class C, std::size_t N>
void read_entry(const Json& j, std::string_view family, C& c, const Choice<C, N>& k) {
    const auto value = config_value<std::string>(j, k.name, std::string(written(c, k)));
    for (const auto& [name, on] : k.names)
        if (value == name) return void(c.*k.member = on);
    std::string names;
    for (std::size_t i = 0; i < N; ++i)
        names += (i == 0 ? "\"" : i + 1 == N ? " or \"" : ", \"") + std::string(k.names[i].first) + "\"";
    fail(family, ": ", k.name, " must be ", names, ", not \"", value, "\"");
}

template <class C, class T>
void write_entry(Json& j, const C& c, const Key<C, T>& k) {
    j[std::string(k.name)] = c.*k.member;
}
template <class C>
void write_entry(Json& j, const C& c, const OptionalSize<C>& k) {
    j[std::string(k.name)] = c.*k.member > 0 ? Json(c.*k.member) : Json(nullptr);
}
template <class C, std::size_t N>
void write_entry(Json& j, const C& c, const Choice<C, N>& k) {
    j[std::string(k.name)] = std::string(written(c, k));
}

}  // namespace detail

// Each key of `keys` (a tuple of entries) from `j` into `c`, whose members hold the defaults.
template <class C, class Keys>
void read_config(const Json& j, std::string_view family, C& c, const Keys& keys) {
    std::apply([&](const auto&... k) { (detail::read_entry(j, family, c, k), ...); }, keys);
}

// Each key of `keys` from `c` into `j`.
template <class C, class Keys>
void write_config(Json& j, const C& c, const Keys& keys) {
    std::apply([&](const auto&... k) { (detail::write_entry(j, c, k), ...); }, keys);
}

}  // namespace inputrep
