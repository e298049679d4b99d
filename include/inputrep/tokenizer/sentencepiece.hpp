#pragma once
// SentencePiece BPE models (the tokenizer.model of Llama 1/2, Mistral, TinyLlama, llama2.c's
// TinyStories vocabularies), read and run here rather than through libsentencepiece: Debian's
// libsentencepiece carries its own protobuf 3.14 and exports it, libtorch loads the system's
// protobuf 3.21, and a program linking both crashes before main(). The file is a protobuf
// ModelProto; only the fields that encoding and decoding depend on are read.
//
//   normalise: the identity rule (rule tables such as nmt_nfkc are rejected); malformed UTF-8
//              bytes become U+FFFD; with remove_extra_whitespaces, leading, trailing and repeated
//              spaces go; add_dummy_prefix puts a space in front; spaces become ▁ (U+2581)
//   encode:    one symbol per character (a user-defined piece is one symbol and never merges), then
//              repeatedly merge the adjacent pair whose concatenation is a piece of highest score,
//              leftmost on ties (bpe_model.cc); merged pieces marked unused are split back; a
//              symbol outside the vocabulary becomes its bytes <0xHH> (byte_fallback) or <unk>,
//              one <unk> per run
//   decode:    control pieces (<s>, </s>) print nothing, <unk> prints " ⁇ ", ▁ prints a space and
//              the first one of the text is dropped (it was the dummy prefix), runs of byte pieces
//              are decoded as UTF-8 with U+FFFD for bytes that do not form a character
// No BOS or EOS is added unless asked: the ids a run uses are the ones it shows.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>

namespace inputrep {

class SentencePiece {
public:
    // ModelProto.SentencePiece.Type; llama.cpp's GGUF token types are the same numbers.
    enum class Type { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
    struct Piece {
        std::string text;
        float score = 0;
        Type type = Type::normal;
    };

    static SentencePiece from_file(const std::filesystem::path& model) {
        return SentencePiece(read_file(model, "SentencePiece model file"), model.string());
    }

    // A vocabulary without its protobuf, as a GGUF file's metadata holds it: the pieces in id order
    // and the normaliser's two switches; bytes fall back to their pieces when all 256 are there, as
    // in llama.cpp.
    static SentencePiece from_pieces(std::vector<Piece> pieces, bool add_dummy_prefix, bool remove_extra_whitespaces,
                                     std::string origin) {
        SentencePiece sp(std::move(origin));
        require(!pieces.empty(), sp.origin_, ": holds no pieces");
        for (const Piece& p : pieces) sp.check(p);
        sp.pieces_ = std::move(pieces);
        sp.add_dummy_prefix_ = add_dummy_prefix, sp.remove_extra_whitespaces_ = remove_extra_whitespaces;
        std::array<bool, 256> seen{};
        for (const Piece& p : sp.pieces_)
            if (const int b = byte_value(p.text); p.type == Type::byte && b >= 0) seen[b] = true;
        sp.byte_fallback_ = std::ranges::all_of(seen, [](bool b) { return b; });
        sp.index();
        return sp;
    }

    std::vector<std::int64_t> encode(std::string_view text, bool bos = false, bool eos = false) const {
        std::vector<std::int64_t> ids;
        if (bos) ids.push_back(special(bos_, "BOS (<s>)"));
        const std::string normalized = normalize(text);
        bool previous_unknown = false;
        for (std::string_view symbol : segment(normalized)) {
            const auto id = id_of(symbol);
            const bool unknown = id == unk_;
            if (unknown && byte_fallback_)
                for (unsigned char b : symbol) ids.push_back(byte_ids_[b]);
            else if (!(unknown && previous_unknown))
                ids.push_back(id);
            previous_unknown = unknown;
        }
        if (eos) ids.push_back(special(eos_, "EOS (</s>)"));
        return ids;
    }

    std::string decode(std::span<const std::int64_t> ids) const {
        std::string text, bytes;
        bool expect_prefix = true, prefix_seen = false;
        for (auto id : ids) {
            require(id >= 0 && id < vocab_size(), origin_, ": token id ", id, " is outside the vocabulary of ",
                    vocab_size());
            const Piece& p = pieces_[id];
            if (p.type == Type::byte) {
                bytes += static_cast<char>(byte_value(p.text));
                continue;
            }
            append_utf8(bytes, text);
            if (prefix_seen || !text.empty()) expect_prefix = false;
            prefix_seen = false;
            if (p.type == Type::control) continue;
            if (p.type == Type::unknown) {
                text += unk_surface_;
                continue;
            }
            std::string_view piece = p.text;
            if (expect_prefix && (add_dummy_prefix_ || remove_extra_whitespaces_) && piece.starts_with(space_symbol)) {
                piece.remove_prefix(space_symbol.size());
                prefix_seen = !remove_extra_whitespaces_;
            }
            for (std::size_t at; (at = piece.find(space_symbol)) != std::string_view::npos;
                 piece.remove_prefix(at + space_symbol.size()))
                text.append(piece.substr(0, at)).push_back(' ');
            text += piece;
        }
        append_utf8(bytes, text);
        return text;
    }

    std::int64_t vocab_size() const { return static_cast<std::int64_t>(pieces_.size()); }
    std::int64_t bos_id() const { return bos_; }  // -1 when the model has none
    std::int64_t eos_id() const { return eos_; }
    const std::string& piece(std::int64_t id) const {
        require(id >= 0 && id < vocab_size(), origin_, ": token id ", id, " is outside the vocabulary of ",
                vocab_size());
        return pieces_[id].text;
    }

private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using Index = std::unordered_map<std::string, std::int64_t, Hash, std::equal_to<>>;

    static constexpr std::string_view space_symbol = "\xE2\x96\x81";  // ▁
    static constexpr std::string_view replacement = "\xEF\xBF\xBD";   // U+FFFD

    // Protocol-buffer wire format: (field << 3 | wire type) keys, varints, length-delimited bytes,
    // little-endian fixed32/64.
    class Wire {
    public:
        Wire(std::string_view data, const std::string& origin) : data_(data), origin_(origin) {}
        bool done() const { return data_.empty(); }
        std::pair<std::uint64_t, int> key() {
            const auto k = varint();
            return {k >> 3, static_cast<int>(k & 7)};
        }
        std::uint64_t varint() {
            std::uint64_t v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                need(1);
                const auto b = static_cast<unsigned char>(data_[0]);
                data_.remove_prefix(1);
                v |= std::uint64_t(b & 0x7F) << shift;
                if (!(b & 0x80)) return v;
            }
            broken();
        }
        std::string_view bytes() {
            const auto n = varint();
            need(n);
            auto out = data_.substr(0, n);
            data_.remove_prefix(n);
            return out;
        }
        float fixed32() {
            need(4);
            float f;
            std::memcpy(&f, data_.data(), 4);
            data_.remove_prefix(4);
            return f;
        }
        void skip(int wire) {
            switch (wire) {
                case 0:
                    varint();
                    return;
                case 1:
                    need(8), data_.remove_prefix(8);
                    return;
                case 2:
                    bytes();
                    return;
                case 5:
                    need(4), data_.remove_prefix(4);
                    return;
                default:
                    broken();
            }
        }

    private:
        void need(std::uint64_t n) const {
            if (n > data_.size()) broken();
        }
        [[noreturn]] void broken() const {
            fail(origin_,
                 ": not a SentencePiece model (malformed protobuf; Llama-3's tokenizer.model is a tiktoken file: use "
                 "its tokenizer.json)");
        }
        std::string_view data_;
        const std::string& origin_;
    };

    explicit SentencePiece(std::string origin) : origin_(std::move(origin)) {}

    SentencePiece(std::string_view bytes, std::string origin) : origin_(std::move(origin)) {
        Wire model(bytes, origin_);
        std::string_view trainer, normalizer;
        while (!model.done()) {
            const auto [field, wire] = model.key();
            if (field == 1 && wire == 2)
                pieces_.push_back(read_piece(model.bytes()));
            else if (field == 2 && wire == 2)
                trainer = model.bytes();
            else if (field == 3 && wire == 2)
                normalizer = model.bytes();
            else
                model.skip(wire);
        }
        require(!pieces_.empty(), origin_, ": not a SentencePiece model (no pieces)");
        read_trainer(trainer);
        read_normalizer(normalizer);
        index();
    }

    // The pieces, checked and indexed, however they were read.
    void index() {
        byte_ids_.fill(-1);
        for (std::int64_t id = 0; id < vocab_size(); ++id) {
            const Piece& p = pieces_[id];
            const bool normal = p.type == Type::normal || p.type == Type::user_defined || p.type == Type::unused;
            require(!p.text.empty(), origin_, ": piece ", id, " is empty");
            require((normal ? normal_ : reserved_).emplace(p.text, id).second, origin_, ": piece \"", p.text,
                    "\" is defined twice");
            if (p.type == Type::user_defined) user_defined_.push_back(p.text);
            if (p.type == Type::unknown) unk_ = id;
            if (p.type == Type::byte) {
                const int b = byte_value(p.text);
                require(b >= 0, origin_, ": byte piece \"", p.text, "\" is not <0xHH>");
                byte_ids_[b] = id;
            }
        }
        require(unk_ >= 0, origin_, ": the model defines no <unk> piece");
        if (byte_fallback_)
            for (int b = 0; b < 256; ++b)
                require(byte_ids_[b] >= 0, origin_, ": byte_fallback is set but byte piece ", b, " is missing");
        bos_ = control_id(bos_piece_);
        eos_ = control_id(eos_piece_);
    }

    Piece read_piece(std::string_view bytes) const {
        Wire w(bytes, origin_);
        Piece p;
        while (!w.done()) {
            const auto [field, wire] = w.key();
            if (field == 1 && wire == 2)
                p.text = w.bytes();
            else if (field == 2 && wire == 5)
                p.score = w.fixed32();
            else if (field == 3 && wire == 0)
                p.type = static_cast<Type>(w.varint());
            else
                w.skip(wire);
        }
        check(p);
        return p;
    }

    // TrainerSpec: model_type 3 (UNIGRAM = 1 by default, BPE = 2), treat_whitespace_as_suffix 24,
    // byte_fallback 35, unk_surface 44, bos_piece 46, eos_piece 47.
    void read_trainer(std::string_view bytes) {
        Wire w(bytes, origin_);
        std::uint64_t model_type = 1;
        bool suffix = false;
        while (!w.done()) {
            const auto [field, wire] = w.key();
            if (field == 3 && wire == 0)
                model_type = w.varint();
            else if (field == 24 && wire == 0)
                suffix = w.varint() != 0;
            else if (field == 35 && wire == 0)
                byte_fallback_ = w.varint() != 0;
            else if (field == 44 && wire == 2)
                unk_surface_ = w.bytes();
            else if (field == 46 && wire == 2)
                bos_piece_ = w.bytes();
            else if (field == 47 && wire == 2)
                eos_piece_ = w.bytes();
            else
                w.skip(wire);
        }
        static constexpr const char* kinds[] = {"?", "unigram", "bpe", "word", "char"};
        require(model_type == 2, origin_, ": a ", model_type <= 4 ? kinds[model_type] : "?",
                " SentencePiece model; only BPE models (Llama, Mistral) are supported");
        require(!suffix, origin_, ": treat_whitespace_as_suffix is not supported");
    }

    // NormalizerSpec: name 1, precompiled_charsmap 2, add_dummy_prefix 3, remove_extra_whitespaces 4,
    // escape_whitespaces 5 (the last three default to true).
    void read_normalizer(std::string_view bytes) {
        Wire w(bytes, origin_);
        std::string name = "identity";
        bool rules = false;
        while (!w.done()) {
            const auto [field, wire] = w.key();
            if (field == 1 && wire == 2)
                name = w.bytes();
            else if (field == 2 && wire == 2)
                rules = !w.bytes().empty();
            else if (field == 3 && wire == 0)
                add_dummy_prefix_ = w.varint() != 0;
            else if (field == 4 && wire == 0)
                remove_extra_whitespaces_ = w.varint() != 0;
            else if (field == 5 && wire == 0)
                escape_whitespaces_ = w.varint() != 0;
            else
                w.skip(wire);
        }
        require(!rules, origin_, ": normalization rule \"", name,
                "\" is not supported (only identity, as Llama and Mistral use)");
    }

    void check(const Piece& p) const {
        require(p.type >= Type::normal && p.type <= Type::byte, origin_, ": piece \"", p.text,
                "\" has an unknown type");
        require(!std::isnan(p.score), origin_, ": piece \"", p.text, "\" has no score (NaN)");
    }

    std::int64_t control_id(const std::string& piece) const {
        auto it = reserved_.find(piece);
        return it != reserved_.end() && pieces_[it->second].type == Type::control ? it->second : -1;
    }
    std::int64_t special(std::int64_t id, std::string_view what) const {
        require(id >= 0, origin_, ": the model defines no ", what, " token");
        return id;
    }
    std::int64_t id_of(std::string_view piece) const {
        if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
        if (auto it = normal_.find(piece); it != normal_.end()) return it->second;
        return unk_;
    }

    // "<0xHH>" -> HH, anything else -> -1.
    static int byte_value(std::string_view piece) {
        if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
        auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
        const int hi = hex(piece[3]), lo = hex(piece[4]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    // Length of the well-formed UTF-8 character at the start of s, 0 if malformed.
    static std::size_t utf8_length(std::string_view s) {
        const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
        const auto lead = b(0);
        std::size_t n;
        unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
        if (lead < 0x80) return 1;
        if (lead >= 0xC2 && lead <= 0xDF)
            n = 2;
        else if (lead >= 0xE0 && lead <= 0xEF)
            n = 3, lo = lead == 0xE0 ? 0xA0 : 0x80, hi = lead == 0xED ? 0x9F : 0xBF;
        else if (lead >= 0xF0 && lead <= 0xF4)
            n = 4, lo = lead == 0xF0 ? 0x90 : 0x80, hi = lead == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
        for (std::size_t i = 2; i < n; ++i)
            if ((b(i) & 0xC0) != 0x80) return 0;
        return n;
    }

    static void append_utf8(std::string& bytes, std::string& text) {
        for (std::string_view rest = bytes; !rest.empty();) {
            const auto n = utf8_length(rest);
            text += n ? rest.substr(0, n) : replacement;
            rest.remove_prefix(n ? n : 1);
        }
        bytes.clear();
    }

    // The next unit of text: a user-defined piece (longest), else one character, else one
    // malformed byte standing for U+FFFD. {what it becomes, how many input bytes it takes}.
    std::pair<std::string_view, std::size_t> next_unit(std::string_view text) const {
        std::size_t longest = 0;
        for (const auto& u : user_defined_)
            if (u.size() > longest && text.starts_with(u)) longest = u.size();
        if (longest) return {text.substr(0, longest), longest};
        const auto n = utf8_length(text);
        return n ? std::pair{text.substr(0, n), n} : std::pair{replacement, std::size_t{1}};
    }

    std::string normalize(std::string_view text) const {
        const std::string_view space = escape_whitespaces_ ? space_symbol : " ";
        if (remove_extra_whitespaces_)
            while (text.starts_with(' ')) text.remove_prefix(1);
        if (text.empty()) return {};
        std::string out;
        if (add_dummy_prefix_) out += space;
        bool after_space = remove_extra_whitespaces_;
        while (!text.empty()) {
            auto [unit, taken] = next_unit(text);
            while (after_space && unit.starts_with(' ')) unit.remove_prefix(1);
            if (!unit.empty()) {
                for (char c : unit)
                    if (c == ' ')
                        out += space;
                    else
                        out += c;
                after_space = unit.ends_with(' ');
            }
            text.remove_prefix(taken);
            if (!remove_extra_whitespaces_) after_space = false;
        }
        if (remove_extra_whitespaces_)
            while (out.ends_with(space)) out.erase(out.end() - static_cast<std::ptrdiff_t>(space.size()), out.end());
        return out;
    }

    // BPE over the normalised text; the symbols returned are views into it.
    std::vector<std::string_view> segment(const std::string& normalized) const {
        struct Symbol {
            std::size_t begin, size;
            int prev, next;
            bool frozen;  // a user-defined piece
        };
        struct Pair {
            float score;
            int left, right;
            std::size_t size;
        };
        std::vector<Symbol> symbols;
        for (std::string_view rest = normalized; !rest.empty();) {
            const auto [unit, taken] = next_unit(rest);
            const int i = static_cast<int>(symbols.size());
            symbols.push_back({normalized.size() - rest.size(), taken, i - 1, i + 1, user_defined(unit)});
            rest.remove_prefix(taken);
        }
        if (symbols.empty()) return {};
        symbols.back().next = -1;

        auto view = [&](const Symbol& s) { return std::string_view(normalized).substr(s.begin, s.size); };
        auto worse = [](const Pair& a, const Pair& b) {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        };
        std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
        std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_parts;
        auto consider = [&](int left, int right) {
            if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
            const auto merged =
                std::string_view(normalized).substr(symbols[left].begin, symbols[left].size + symbols[right].size);
            const auto it = normal_.find(merged);
            if (it == normal_.end()) return;
            agenda.push({pieces_[it->second].score, left, right, merged.size()});
            if (pieces_[it->second].type == Type::unused)
                unused_parts[merged] = {view(symbols[left]), view(symbols[right])};
        };
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) consider(i - 1, i);
        while (!agenda.empty()) {
            const Pair top = agenda.top();
            agenda.pop();
            Symbol &left = symbols[top.left], &right = symbols[top.right];
            if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;  // stale
            left.size += right.size;
            right.size = 0;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = top.left;
            consider(left.prev, top.left);
            consider(top.left, left.next);
        }

        std::vector<std::string_view> out;
        auto resegment = [&](auto& self, std::string_view w) -> void {
            const auto it = unused_parts.find(w);
            const auto id = id_of(w);
            if (it == unused_parts.end() || id == unk_ || pieces_[id].type != Type::unused) return out.push_back(w);
            self(self, it->second.first);
            self(self, it->second.second);
        };
        for (int i = 0; i >= 0; i = symbols[i].next) resegment(resegment, view(symbols[i]));
        return out;
    }

    bool user_defined(std::string_view unit) const {
        const auto it = normal_.find(unit);
        return it != normal_.end() && pieces_[it->second].type == Type::user_defined;
    }

    std::string origin_;
    std::vector<Piece> pieces_;
    Index normal_, reserved_;  // normal, user-defined and unused pieces; control, unknown and byte pieces
    std::vector<std::string> user_defined_;
    std::array<std::int64_t, 256> byte_ids_{};
    std::int64_t unk_ = -1, bos_ = -1, eos_ = -1;
    bool byte_fallback_ = false, add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
    std::string unk_surface_ = " \xE2\x81\x87 ", bos_piece_ = "<s>", eos_piece_ = "</s>";
};

}  // namespace inputrep
