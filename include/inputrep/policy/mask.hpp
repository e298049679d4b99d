#pragma once
// Output-mask axis: which part of the output [batch, tokens, d] is compared. A mask returns its part
// of the output, and writes the gradient of that part back into the output's shape (zeros where it
// compares nothing): the written-out gradient never assumes a mask is a view, so a mask that copies
// (Positions gathers) gets its gradient like any other.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/policy/mask_spec.hpp>

namespace inputrep {

namespace detail {
// The backward of a mask whose part is a view of the output: zeros, with the part's gradient
// written through the same view.
template <class M>
at::Tensor scatter_through_view(const M& mask, const at::Tensor& d_part, const at::Tensor& out) {
    at::Tensor d = at::zeros_like(out);
    mask(d).copy_(d_part);
    return d;
}
}  // namespace detail

struct AllTokens {
    at::Tensor operator()(const at::Tensor& out) const { return out; }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor&) const { return d_part; }
    constexpr bool selects_tokens() const { return false; }
    void check(std::int64_t) const {}
};

// Output positions B..E-1.
struct TokenRange {
    std::int64_t begin = 0, end = End;
    at::Tensor operator()(const at::Tensor& out) const {
        return out.narrow(1, begin, std::min<std::int64_t>(end, out.size(1)) - begin);
    }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return detail::scatter_through_view(*this, d_part, out);
    }
    constexpr bool selects_tokens() const { return true; }
    void check(std::int64_t length) const {
        require(begin >= 0 && begin < end, "token mask [", begin, ", ", end, ") is empty");
        require(begin < length, "token mask starts at position ", begin, " but the prompt has only ", length,
                " tokens");
        require(end == End || end <= length, "token mask ends at position ", end, " but the prompt has only ", length,
                " tokens (B:end compares through the last)");
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
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return detail::scatter_through_view(*this, d_part, out);
    }
    constexpr bool selects_tokens() const { return true; }
    void check(std::int64_t) const {}
};

// Chosen output positions in any order, gathered into a new tensor (not a view): e.g. the positions
// of the content words. A repeated position is compared twice and its gradient adds up.
struct Positions {
    std::vector<std::int64_t> list;
    at::Tensor operator()(const at::Tensor& out) const { return out.index_select(1, index(out)); }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return at::zeros_like(out).index_add_(1, index(out), d_part);
    }
    constexpr bool selects_tokens() const { return true; }
    void check(std::int64_t length) const {
        require(!list.empty(), "position mask is empty");
        for (auto p : list)
            require(p >= 0 && p < length, "position mask names position ", p, " but the prompt has ", length,
                    " tokens");
    }

private:
    at::Tensor index(const at::Tensor& out) const { return at::tensor(list, at::kLong).to(out.device()); }
};

// Output features (neurons) B..E-1 of every compared position: the seed's "bandwidth" experiments.
struct NeuronRange {
    std::int64_t begin = 0, end = End;
    at::Tensor operator()(const at::Tensor& out) const {
        require(begin < out.size(-1), "neuron mask starts at feature ", begin, " but the output has only ",
                out.size(-1));
        return out.narrow(-1, begin, std::min<std::int64_t>(end, out.size(-1)) - begin);
    }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return detail::scatter_through_view(*this, d_part, out);
    }
    constexpr bool selects_tokens() const { return false; }
    void check(std::int64_t) const {
        require(begin >= 0 && begin < end, "neuron mask [", begin, ", ", end, ") is empty");
    }
};

template <int B, int E = End>
struct Neurons : NeuronRange {
    static_assert(B >= 0, "Neurons<B, E>: B must be >= 0");
    static_assert(B < E, "Neurons<B, E>: E is exclusive, so E must be greater than B (the mask would compare nothing)");
    constexpr Neurons() : NeuronRange{B, E} {}
};

// A mask: its part of the output, that part's gradient written back into the output's shape, and
// whether it picks token positions (Sequential compares one position per phase and needs all).
template <class M>
concept OutputMask = requires(const M& m, const at::Tensor& t) {
    { m(t) } -> std::same_as<at::Tensor>;
    { m.backward(t, t) } -> std::same_as<at::Tensor>;
    { m.selects_tokens() } -> std::convertible_to<bool>;
    m.check(std::int64_t{});
};

// M1, then M2 on what M1 kept: Mask<Tokens<1>, Neurons<0, 2201>>.
template <OutputMask M1, OutputMask M2>
struct Mask {
    M1 first{};
    M2 second{};
    at::Tensor operator()(const at::Tensor& out) const { return second(first(out)); }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return first.backward(second.backward(d_part, first(out)), out);
    }
    constexpr bool selects_tokens() const { return first.selects_tokens() || second.selects_tokens(); }
    void check(std::int64_t length) const { first.check(length), second.check(length); }
};

// Whether a mask type picks token positions whatever its value (Tokens<1>, LastToken, Mask<...> of
// them), so the check can be a static_assert; a runtime mask (AnyMask) answers per value.
template <class M>
constexpr bool always_selects_tokens() {
    if constexpr (requires { typename std::bool_constant<M{}.selects_tokens()>; })
        return M{}.selects_tokens();
    else
        return false;
}

// Chosen at run time, from the mask's text (policy/mask_spec.hpp).
struct AnyMask {
    std::variant<AllTokens, TokenRange, LastToken> tokens;
    std::optional<NeuronRange> neurons;

    at::Tensor operator()(const at::Tensor& out) const {
        auto kept = std::visit([&](const auto& m) { return m(out); }, tokens);
        return neurons ? (*neurons)(kept) : kept;
    }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        if (!neurons) return std::visit([&](const auto& m) { return m.backward(d_part, out); }, tokens);
        return std::visit([&](const auto& m) { return m.backward(neurons->backward(d_part, m(out)), out); }, tokens);
    }
    bool selects_tokens() const { return !std::holds_alternative<AllTokens>(tokens); }
    void check(std::int64_t length) const {
        std::visit([&](const auto& m) { m.check(length); }, tokens);
        if (neurons) neurons->check(length);
    }
    static AnyMask parse(std::string_view s) {
        const auto spec = MaskSpec::parse(s);
        AnyMask mask{AllTokens{}, std::nullopt};
        if (spec.tokens == MaskSpec::Tokens::last) mask.tokens = LastToken{};
        if (spec.tokens == MaskSpec::Tokens::range)
            mask.tokens = TokenRange{spec.token_range.first, spec.token_range.second};
        if (spec.neurons) mask.neurons = NeuronRange{spec.neurons->first, spec.neurons->second};
        return mask;
    }
};

}  // namespace inputrep
