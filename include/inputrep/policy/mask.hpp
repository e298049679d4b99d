#pragma once
// Output-mask axis: which part of the output [batch, tokens, d] is compared.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
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

// Output features (neurons) B..E-1 of every compared position: the seed's "bandwidth" experiments.
struct NeuronRange {
    std::int64_t begin = 0, end = End;
    at::Tensor operator()(const at::Tensor& out) const {
        require(begin < out.size(-1), "neuron mask starts at feature ", begin, " but the output has only ", out.size(-1));
        return out.narrow(-1, begin, std::min<std::int64_t>(end, out.size(-1)) - begin);
    }
    void check(std::int64_t) const { require(begin >= 0 && begin < end, "neuron mask [", begin, ", ", end, ") is empty"); }
};

template <int B, int E = End>
struct Neurons : NeuronRange {
    static_assert(B >= 0, "Neurons<B, E>: B must be >= 0");
    static_assert(B < E, "Neurons<B, E>: E is exclusive, so E must be greater than B (the mask would compare nothing)");
    constexpr Neurons() : NeuronRange{B, E} {}
};

// Masks return views of the output: the written-out gradient scatters through them.
template <class M>
concept OutputMask = requires(const M& m, const at::Tensor& t) {
    { m(t) } -> std::same_as<at::Tensor>;
    m.check(std::int64_t{});
};

// M1, then M2 on what M1 kept: Mask<Tokens<1>, Neurons<0, 2201>>.
template <OutputMask M1, OutputMask M2>
struct Mask {
    M1 first{};
    M2 second{};
    at::Tensor operator()(const at::Tensor& out) const { return second(first(out)); }
    void check(std::int64_t length) const { first.check(length), second.check(length); }
};


// Chosen at run time: "all", "last", "tokens:B:E", "neurons:B:E" (E may be "end"), or a token and a
// neuron mask joined by ',' ("tokens:1:end,neurons:0:2201").
struct AnyMask {
    std::variant<AllTokens, TokenRange, LastToken> tokens;
    std::optional<NeuronRange> neurons;

    at::Tensor operator()(const at::Tensor& out) const {
        auto kept = std::visit([&](const auto& m) { return m(out); }, tokens);
        return neurons ? (*neurons)(kept) : kept;
    }
    void check(std::int64_t length) const {
        std::visit([&](const auto& m) { m.check(length); }, tokens);
        if (neurons) neurons->check(length);
    }
    static AnyMask parse(std::string_view s) {
        AnyMask mask{AllTokens{}, std::nullopt};
        bool have_tokens = false;
        while (!s.empty()) {
            auto comma = s.find(',');
            auto part = s.substr(0, comma);
            s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
            if (part == "all" || part == "last" || part.starts_with("tokens:")) {
                require(!have_tokens, "mask: more than one token mask");
                have_tokens = true;
                if (part == "last") mask.tokens = LastToken{};
                else if (part != "all") {
                    auto [b, e] = range(part.substr(7), part);
                    mask.tokens = TokenRange{b, e};
                }
            } else if (part.starts_with("neurons:")) {
                require(!mask.neurons, "mask: more than one neuron mask");
                auto [b, e] = range(part.substr(8), part);
                mask.neurons = NeuronRange{b, e};
            } else {
                fail("unknown mask \"", part, "\" (expected all, last, tokens:B:E or neurons:B:E)");
            }
        }
        return mask;
    }

private:
    static std::pair<std::int64_t, std::int64_t> range(std::string_view text, std::string_view whole) {
        auto rest = std::string(text);
        auto colon = rest.find(':');
        try {
            std::int64_t b = std::stoll(rest.substr(0, colon));
            std::int64_t e = End;
            if (colon != std::string::npos && rest.substr(colon + 1) != "end") e = std::stoll(rest.substr(colon + 1));
            require(b >= 0 && b < e, "mask \"", whole, "\": need 0 <= B < E");
            return {b, e};
        } catch (const std::logic_error&) {
            fail("mask \"", whole, "\" is not B:E");
        }
    }
};

}  // namespace inputrep
