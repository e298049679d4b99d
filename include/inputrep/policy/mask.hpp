#pragma once
// Output-mask axis: which part of the output [batch, tokens, d] is compared.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>

namespace inputrep {

// Tokens<B, End>: through the last token.
inline constexpr int End = std::numeric_limits<int>::max();

struct AllTokens {
    at::Tensor operator()(const at::Tensor& out) const { return out; }
    void check(std::int64_t) const {}
};

// Output positions B..E-1.
struct TokenRange {
    std::int64_t begin = 0, end = End;
    at::Tensor operator()(const at::Tensor& out) const {
        return out.narrow(1, begin, std::min<std::int64_t>(end, out.size(1)) - begin);
    }
    void check(std::int64_t length) const {
        require(begin >= 0 && begin < end, "token mask [", begin, ", ", end, ") is empty");
        require(begin < length, "token mask starts at position ", begin, " but the prompt has only ", length, " tokens");
    }
};

template <int B, int E = End>
struct Tokens : TokenRange {
    static_assert(B >= 0, "Tokens<B, E>: B must be >= 0");
    static_assert(B < E, "Tokens<B, E>: E is exclusive, so E must be greater than B (the mask would compare nothing)");
    constexpr Tokens() : TokenRange{B, E} {}
};

struct LastToken {
    at::Tensor operator()(const at::Tensor& out) const { return out.narrow(1, out.size(1) - 1, 1); }
    void check(std::int64_t) const {}
};

template <class M>
concept Mask = requires(const M& m, const at::Tensor& t) {
    { m(t) } -> std::same_as<at::Tensor>;
    m.check(std::int64_t{});
};

// Chosen at run time: "all", "last", "tokens:B:E" (E may be "end").
struct AnyMask {
    std::variant<AllTokens, TokenRange, LastToken> mask;
    at::Tensor operator()(const at::Tensor& out) const {
        return std::visit([&](const auto& m) { return m(out); }, mask);
    }
    void check(std::int64_t length) const {
        std::visit([&](const auto& m) { m.check(length); }, mask);
    }
    static AnyMask parse(std::string_view s) {
        if (s == "all") return {AllTokens{}};
        if (s == "last") return {LastToken{}};
        if (s.starts_with("tokens:")) {
            auto rest = std::string(s.substr(7));
            auto colon = rest.find(':');
            try {
                std::int64_t b = std::stoll(rest.substr(0, colon));
                std::int64_t e = End;
                if (colon != std::string::npos && rest.substr(colon + 1) != "end") e = std::stoll(rest.substr(colon + 1));
                require(b >= 0 && b < e, "mask \"", s, "\": need 0 <= B < E");
                return {TokenRange{b, e}};
            } catch (const std::logic_error&) {
                fail("mask \"", s, "\" is not tokens:B:E");
            }
        }
        fail("unknown mask \"", s, "\" (expected all, last or tokens:B:E)");
    }
};

}  // namespace inputrep
