#pragma once
// The tokenizer a GGUF file carries in its metadata (tokenizer.ggml.*), built as the tokenizer of
// the files it was converted from:
//   "llama": SentencePiece BPE from tokens, scores and token_type (SentencePiece's own piece types),
//            with add_space_prefix (default true) and remove_extra_whitespaces (default false:
//            Llama's tokenizer.model keeps spaces as they are, and llama.cpp's converter writes
//            neither key for it)
//   "gpt2":  byte-level BPE from tokens and merges under the "gpt-2" pre-tokenizer; control and
//            user-defined tokens (token_type 3, 4) are matched whole, as <|endoftext|> is
#include <cstdint>
#include <string>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/io/gguf_format.hpp>
#include <inputrep/tokenizer/gpt2_bpe.hpp>
#include <inputrep/tokenizer/sentencepiece.hpp>

namespace inputrep::gguf {

namespace detail {
template <class T>
T need(const std::optional<T>& value, const Header& h, std::string_view key) {
    require(value.has_value(), h.where, ": the tokenizer needs metadata \"", key, "\"");
    return *value;
}
}  // namespace detail

inline SentencePiece sentencepiece(const Header& h) {
    const auto tokens = detail::need(h.strings("tokenizer.ggml.tokens"), h, "tokenizer.ggml.tokens");
    const auto scores = detail::need(h.numbers("tokenizer.ggml.scores"), h, "tokenizer.ggml.scores");
    const auto types = detail::need(h.integers("tokenizer.ggml.token_type"), h, "tokenizer.ggml.token_type");
    require(scores.size() == tokens.size() && types.size() == tokens.size(), h.where, ": ", tokens.size(),
            " tokens but ", scores.size(), " scores and ", types.size(), " token types");
    std::vector<SentencePiece::Piece> pieces;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        require(types[i] >= 1 && types[i] <= 6, h.where, ": token ", i, " has token_type ", types[i],
                ", not one of SentencePiece's (1-6)");
        pieces.push_back({tokens[i], float(scores[i]), static_cast<SentencePiece::Type>(types[i])});
    }
    return SentencePiece::from_pieces(std::move(pieces), h.boolean("tokenizer.ggml.add_space_prefix").value_or(true),
                                      h.boolean("tokenizer.ggml.remove_extra_whitespaces").value_or(false),
                                      h.where + " (tokenizer.ggml.*)");
}

inline Gpt2Bpe byte_level_bpe(const Header& h) {
    const auto pre = h.string("tokenizer.ggml.pre").value_or("(none)");
    require(
        pre == "gpt-2", h.where, ": tokenizer.ggml.pre is \"", pre,
        "\"; inputrep builds the \"gpt2\" tokenizer with GPT-2's own pre-tokenizer (\"gpt-2\") only: pass --vocab DIR");
    const auto tokens = detail::need(h.strings("tokenizer.ggml.tokens"), h, "tokenizer.ggml.tokens");
    const auto merges = detail::need(h.strings("tokenizer.ggml.merges"), h, "tokenizer.ggml.merges");
    std::vector<std::int64_t> specials;
    if (const auto types = h.integers("tokenizer.ggml.token_type")) {
        require(types->size() == tokens.size(), h.where, ": ", tokens.size(), " tokens but ", types->size(),
                " token types");
        for (std::size_t i = 0; i < types->size(); ++i)
            if ((*types)[i] == 3 || (*types)[i] == 4) specials.push_back(std::int64_t(i));
    }
    return Gpt2Bpe::from_lists(tokens, merges, specials, h.where + " (tokenizer.ggml.*)");
}

}  // namespace inputrep::gguf
