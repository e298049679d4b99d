#pragma once
// llama2.c's tokenizer.bin and run.c's encoder, which approximates SentencePiece BPE:
//   file: int32 max_token_length, then per token: f32 score, int32 length, the piece's bytes
//         (the token count is not stored: it is the model's vocab_size, or what the file holds)
//   ids:  0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3..258 the bytes <0x00>..<0xFF>, then merged pieces
//         with U+2581 '▁' written as an ASCII space
//   encode: a dummy-prefix " ", then one piece per UTF-8 code point (absent ones fall back to
//         their bytes, id = byte + 3), then repeatedly merge the adjacent pair whose concatenation
//         is a piece of highest score (leftmost on ties) until no pair is a piece
//   decode: BOS/EOS print nothing, a piece right after BOS loses its leading space, and <0xHH>
//         pieces are the raw byte
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>

namespace inputrep {

class Llama2cTokenizer {
public:
    static constexpr std::int64_t bos_id = 1, eos_id = 2;

    // vocab_size comes from the model (its llama2.c header or config.json) and is checked against
    // the file; without one, the file's tokens are counted (it holds exactly its tokens).
    static Llama2cTokenizer from_file(const std::filesystem::path& path,
                                      std::optional<std::int64_t> expected_vocab_size = {}) {
        const std::string bytes = read_file(path, "llama2.c tokenizer");
        const bool counted = !expected_vocab_size;
        // Every token takes at least 8 bytes, so the count has this bound.
        const std::int64_t vocab_size = expected_vocab_size.value_or(std::int64_t(bytes.size() / 8));
        require(counted || vocab_size >= 259, path.string(), ": vocab_size ", vocab_size,
                " is too small for a llama2.c vocabulary (<unk>, <s>, </s> and 256 byte pieces come first)");

        std::size_t at = 0;
        auto read = [&](void* out, std::size_t n, std::int64_t token) {
            require(at + n <= bytes.size(), path.string(), ": ends inside token ", token,
                    counted ? std::string(" (truncated)")
                            : " of " + std::to_string(vocab_size) +
                                  " (truncated, or vocab_size is larger than the file's vocabulary)");
            std::memcpy(out, bytes.data() + at, n);
            at += n;
        };
        Llama2cTokenizer t;
        t.origin_ = path.string();
        std::int32_t max_token_length = 0;  // only sizes run.c's buffers
        read(&max_token_length, 4, -1);
        for (std::int64_t id = 0; id < vocab_size && !(counted && at == bytes.size()); ++id) {
            float score = 0;
            std::int32_t length = 0;
            read(&score, 4, id);
            read(&length, 4, id);
            require(length >= 0 && static_cast<std::size_t>(length) <= bytes.size() - at, path.string(), ": token ", id,
                    " has length ", length, ", past the end of the file");
            std::string piece(bytes, at, static_cast<std::size_t>(length));
            at += piece.size();
            t.ids_.emplace(piece, id);  // the first of duplicate pieces wins
            t.pieces_.push_back(std::move(piece));
            t.scores_.push_back(score);
        }
        require(at == bytes.size(), path.string(), ": ", bytes.size() - at, " bytes follow token ", vocab_size - 1,
                " (is vocab_size ", vocab_size, " right?)");
        require(!counted || t.pieces_.size() >= 259, path.string(), ": holds ", t.pieces_.size(),
                " tokens, too few for a llama2.c vocabulary (<unk>, <s>, </s> and 256 byte pieces come first)");
        return t;
    }

    std::vector<std::int64_t> encode(std::string_view text, bool bos = false, bool eos = false) const {
        std::vector<std::int64_t> ids;
        if (bos) ids.push_back(bos_id);
        if (!text.empty()) push_piece(" ", ids);
        for (std::size_t i = 0; i < text.size();) {
            std::size_t n = 1;  // a lead byte and up to 3 continuation bytes, as run.c groups them
            while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
            push_piece(text.substr(i, n), ids);
            i += n;
        }
        for (;;) {
            float best_score = -std::numeric_limits<float>::infinity();
            std::int64_t best_id = -1;
            std::size_t best_at = 0;
            for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
                auto it = ids_.find(pieces_[ids[i]] + pieces_[ids[i + 1]]);
                if (it != ids_.end() && scores_[it->second] > best_score) {
                    best_score = scores_[it->second];
                    best_id = it->second;
                    best_at = i;
                }
            }
            if (best_id < 0) break;
            ids[best_at] = best_id;
            ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
        }
        if (eos) ids.push_back(eos_id);
        return ids;
    }

    std::string decode(std::span<const std::int64_t> ids) const {
        std::string text;
        std::int64_t previous = -1;
        for (auto id : ids) {
            require(id >= 0 && id < vocab_size(), origin_, ": token id ", id, " is outside the vocabulary of ",
                    vocab_size());
            std::string_view piece = pieces_[id];
            if (id == bos_id || id == eos_id) piece = {};
            if (previous == bos_id && piece.starts_with(' ')) piece.remove_prefix(1);
            if (auto byte = byte_of(piece); byte >= 0)
                text += static_cast<char>(byte);
            else
                text += piece;
            previous = id;
        }
        return text;
    }

    std::int64_t vocab_size() const { return static_cast<std::int64_t>(pieces_.size()); }
    const std::string& piece(std::int64_t id) const {
        require(id >= 0 && id < vocab_size(), origin_, ": token id ", id, " is outside the vocabulary of ",
                vocab_size());
        return pieces_[id];
    }

private:
    void push_piece(std::string_view piece, std::vector<std::int64_t>& ids) const {
        if (auto it = ids_.find(std::string(piece)); it != ids_.end()) {
            ids.push_back(it->second);
            return;
        }
        for (unsigned char b : piece) ids.push_back(std::int64_t(b) + 3);
    }

    // "<0xHH>" -> HH, anything else -> -1.
    static int byte_of(std::string_view piece) {
        if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
        auto hex = [](char c) {
            return c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : -1;
        };
        const int hi = hex(piece[3]), lo = hex(piece[4]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    std::string origin_;
    std::vector<std::string> pieces_;
    std::vector<float> scores_;
    std::unordered_map<std::string, std::int64_t> ids_;
};

}  // namespace inputrep
