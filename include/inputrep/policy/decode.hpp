#pragma once
// Decoder axis: scores over the vocabulary for each optimised input; top-k is taken on them. Input
// spaces call scores() on embeddings (indirect) or restrict() on vocabulary vectors (direct).
#include <concepts>
#include <cstdint>
#include <limits>
#include <string_view>
#include <variant>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>

namespace inputrep {

// argmax of e·W⁺ with W⁺ the Moore–Penrose pseudo-inverse of the token embedding W [V, d]. W has
// full column rank, so W⁺ = (WᵀW)⁻¹Wᵀ: one d×d inverse instead of an SVD of a V×d matrix.
struct PseudoInverse {
    struct State {
        at::Tensor w, gram_inverse;
        at::Tensor scores(const at::Tensor& e) const {
            return at::matmul(at::matmul(e.to(at::kFloat), gram_inverse), w.t());
        }
        at::Tensor restrict(const at::Tensor& s) const { return s; }
    };
    State prepare(const at::Tensor& token_embedding) const {
        auto w = token_embedding.to(at::kFloat);
        auto gram = at::matmul(w.t(), w).to(at::kDouble);
        return {w, at::linalg_inv(gram).to(at::kFloat)};
    }
};

// The nearest token embedding in Euclidean distance: score_v = −‖e − W_v‖².
struct Nearest {
    struct State {
        at::Tensor w, norms;
        at::Tensor scores(const at::Tensor& e) const { return 2 * at::matmul(e.to(at::kFloat), w.t()) - norms; }
        at::Tensor restrict(const at::Tensor& s) const { return s; }
    };
    State prepare(const at::Tensor& token_embedding) const {
        auto w = token_embedding.to(at::kFloat);
        return {w, (w * w).sum(1)};
    }
};

// The token whose embedding, standardised as a layer norm does (its mean over features removed, then
// its length), points nearest the input standardised: score_v = cos(e − mean(e), W_v − mean(W_v)).
// A position whose own output is not compared (Tokens<1, End>'s first) reaches the compared ones
// only through the first block's norm, which erases its mean and scale: every a·e + b (a > 0) gives
// the same outputs, and PseudoInverse and Nearest read whatever a and b the optimisation left.
struct Normed {
    struct State {
        at::Tensor w;  // [V, d], rows standardised
        at::Tensor scores(const at::Tensor& e) const { return at::matmul(standardised(e.to(at::kFloat)), w.t()); }
        at::Tensor restrict(const at::Tensor& s) const { return s; }
    };
    static at::Tensor standardised(const at::Tensor& x) {
        const at::Tensor centred = x - x.mean(-1, true);
        return centred / at::linalg_vector_norm(centred, 2, at::IntArrayRef{-1}, true).clamp_min(1e-12);
    }
    State prepare(const at::Tensor& token_embedding) const { return {standardised(token_embedding.to(at::kFloat))}; }
};

// The direct method's vocabulary vector x decoded through its own embedding: argmax of (x·W)·W⁺.
// The slice sees x only through x·W, so the optimisation moves x only inside W's column space
// (rank d of V dimensions) and argmax(x) mostly shows x's random start; (x·W)·W⁺ is x's part that
// the model sees, projected back onto the vocabulary. On an embedding it is PseudoInverse.
struct DirectPseudoInverse {
    struct State {
        PseudoInverse::State pinv;
        at::Tensor scores(const at::Tensor& e) const { return pinv.scores(e); }
        at::Tensor restrict(const at::Tensor& x) const { return pinv.scores(at::matmul(x.to(at::kFloat), pinv.w)); }
    };
    State prepare(const at::Tensor& token_embedding) const { return {PseudoInverse{}.prepare(token_embedding)}; }
};

// Only `allowed` tokens can be decoded (e.g. the tokens of a sentence). Disallowed scores become
// −inf; the author's masked_decode multiplied them by 0 instead, so a position whose allowed
// scores were all negative decoded to token 0 ("!") — not copied.
template <class Inner = PseudoInverse>
struct Restricted {
    std::vector<std::int64_t> allowed;
    Inner inner{};

    struct State {
        typename Inner::State inner;
        at::Tensor penalty;  // [V]: 0 for allowed tokens, −inf elsewhere
        at::Tensor restrict(const at::Tensor& s) const { return s + penalty.to(s.device()); }
        at::Tensor scores(const at::Tensor& e) const { return restrict(inner.scores(e)); }
    };
    State prepare(const at::Tensor& token_embedding) const {
        const auto vocab = token_embedding.size(0);
        require(!allowed.empty(), "Restricted decoding needs at least one allowed token");
        auto penalty = at::full({vocab}, -std::numeric_limits<float>::infinity(), at::kFloat);
        for (auto id : allowed) {
            require(id >= 0 && id < vocab, "allowed token ", id, " is outside the vocabulary of ", vocab);
            penalty[id] = 0.0f;
        }
        return {inner.prepare(token_embedding), penalty.to(token_embedding.device())};
    }
};

// Chosen at run time (the CLI's --decode pinv|nearest|normed|direct-pinv|restricted:TEXT). Decoding runs
// once per run, so the visit costs nothing that matters.
struct AnyDecoder {
    std::variant<PseudoInverse, Nearest, Restricted<PseudoInverse>, DirectPseudoInverse, Normed> decoder;
    struct State {
        std::variant<PseudoInverse::State, Nearest::State, Restricted<PseudoInverse>::State, DirectPseudoInverse::State,
                     Normed::State>
            state;
        at::Tensor scores(const at::Tensor& e) const {
            return std::visit([&](const auto& s) { return s.scores(e); }, state);
        }
        at::Tensor restrict(const at::Tensor& x) const {
            return std::visit([&](const auto& s) { return s.restrict(x); }, state);
        }
    };
    State prepare(const at::Tensor& token_embedding) const {
        return std::visit([&](const auto& d) { return State{d.prepare(token_embedding)}; }, decoder);
    }
};

template <class D>
concept Decoder = requires(const D& d, const at::Tensor& t) {
    { d.prepare(t).scores(t) } -> std::same_as<at::Tensor>;
    { d.prepare(t).restrict(t) } -> std::same_as<at::Tensor>;
};

// ---- Parser: the CLI's --decode, as text ---------------------------------------------------------

// "pinv", "nearest", "normed" (cosine after standardising), "direct-pinv" (a vocabulary vector
// through (x·W)·W⁺) or "restricted:TEXT"
// (only the tokens `encode(TEXT)` gives may be decoded).
template <class Encode>
requires std::invocable<const Encode&, std::string_view> AnyDecoder parse_decoder(std::string_view s,
                                                                                  const Encode& encode) {
    constexpr std::string_view restricted = "restricted:";
    if (s == "pinv") return {PseudoInverse{}};
    if (s == "nearest") return {Nearest{}};
    if (s == "normed") return {Normed{}};
    if (s == "direct-pinv") return {DirectPseudoInverse{}};
    if (s.starts_with(restricted)) {
        require(s.size() > restricted.size(), "decoder \"", s,
                "\": restricted:TEXT needs the TEXT whose tokens may be decoded");
        return {Restricted<PseudoInverse>{encode(s.substr(restricted.size()))}};
    }
    fail("unknown decoder \"", s, "\" (expected pinv, nearest, normed, direct-pinv or restricted:TEXT)");
}

}  // namespace inputrep
