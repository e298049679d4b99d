#pragma once
// GPT-2's byte-level BPE (Radford et al. 2019; OpenAI's encoder.py, Hugging Face's ByteLevel BPE).
//
// Text is UTF-8 bytes. Each byte is first renamed to a printable character (the "byte alphabet"),
// so the vocabulary and the merges are plain strings with no whitespace or control bytes in them.
// Text is cut into pieces by a regex (words with their leading space, digit runs, punctuation,
// whitespace), and inside each piece the learned merges are replayed in the order training
// learned them. Special tokens such as <|endoftext|> are cut out first and never merged.
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/view/transform.hpp>

#include <inputrep/core/error.hpp>

namespace inputrep {

namespace detail {

// GPT-2's pre-tokeniser: contractions, then letters / digits / other symbols each with at most one
// leading space, then whitespace. `\s+(?!\S)` leaves the last space of a run to the next word, so
// "a   b" becomes "a", "  ", " b" and a word keeps the same tokens wherever it stands.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Bytes that are printable Latin-1 stand for themselves; the other 68 (controls, space, DEL,
// NBSP, soft hyphen) are moved, in order, to U+0100... so every byte has a visible character.
struct ByteAlphabet {
    std::array<std::string, 256> symbol;  // byte -> its character, UTF-8 encoded
    std::array<int, 0x144> byte_of;       // code point -> byte, -1 for characters outside the alphabet
};

inline const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet table = [] {
        ByteAlphabet t;
        t.byte_of.fill(-1);
        char32_t moved = 0x100;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
            const char32_t c = printable ? char32_t(b) : moved++;
            t.byte_of[c] = b;
            // Every code point here is below U+0800: one or two UTF-8 bytes.
            t.symbol[b] =
                c < 0x80 ? std::string(1, char(c)) : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
        }
        return t;
    }();
    return table;
}

// One step of a UTF-8 reader at s[i]: {true, length} for a well-formed sequence, else {false, n}
// where n is the "maximal subpart" (Unicode 15, §3.9, U+FFFD substitution) that one U+FFFD
// replaces — the rule Python's bytes.decode(errors="replace") follows, so decoded text matches
// what a Python pipeline prints for a token that holds half a character.
inline std::pair<bool, std::size_t> utf8_step(std::string_view s, std::size_t i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return {true, 1};
    std::size_t continuation;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the next byte; the lead narrows the first
    if (b >= 0xC2 && b <= 0xDF) {
        continuation = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        continuation = 2;
        if (b == 0xE0) lo = 0xA0;  // overlong
        if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
        continuation = 3;
        if (b == 0xF0) lo = 0x90;  // overlong
        if (b == 0xF4) hi = 0x8F;  // beyond U+10FFFF
    } else {
        return {false, 1};
    }
    for (std::size_t n = 1; n <= continuation; ++n) {
        if (i + n >= s.size()) return {false, n};
        const auto c = static_cast<unsigned char>(s[i + n]);
        if (c < lo || c > hi) return {false, n};
        lo = 0x80, hi = 0xBF;
    }
    return {true, continuation + 1};
}

inline std::string to_valid_utf8(std::string_view bytes) {
    std::string text;
    text.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        const auto [valid, n] = utf8_step(bytes, i);
        text += valid ? bytes.substr(i, n) : std::string_view("\xEF\xBF\xBD");
        i += n;
    }
    return text;
}

// A vocabulary string back to the bytes it stands for. A token with a character outside the byte
// alphabet (an added token such as "<|im_start|>" in some files) is its own UTF-8, as in Hugging
// Face's ByteLevel decoder.
inline std::string token_bytes(std::string_view token) {
    const auto& alphabet = byte_alphabet();
    std::string bytes;
    for (std::size_t i = 0; i < token.size();) {
        const auto [valid, n] = utf8_step(token, i);
        if (!valid) return std::string(token);
        char32_t c = n == 1 ? char32_t(static_cast<unsigned char>(token[i]))
                            : char32_t(static_cast<unsigned char>(token[i]) & (0x7F >> n));
        for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(token[i + k]) & 0x3F);
        if (c >= alphabet.byte_of.size() || alphabet.byte_of[c] < 0) return std::string(token);
        bytes += char(alphabet.byte_of[c]);
        i += n;
    }
    return bytes;
}

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Pcre2CodeFree {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct Pcre2MatchFree {
    void operator()(pcre2_match_data* match) const { pcre2_match_data_free(match); }
};

inline std::string pcre2_message(int code) {
    std::array<PCRE2_UCHAR, 256> buffer{};
    pcre2_get_error_message(code, buffer.data(), buffer.size());
    return reinterpret_cast<const char*>(buffer.data());
}

inline std::shared_ptr<const pcre2_code> compile_regex(std::string_view pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    std::unique_ptr<pcre2_code, Pcre2CodeFree> code(pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr));
    if (!code)
        fail("pre-tokeniser regex /", pattern, "/ does not compile at offset ", offset, ": ", pcre2_message(error));
    return code;
}

// "A B" -> {"A", "B"}; nullopt unless it is two non-empty symbols around one space.
inline std::optional<std::pair<std::string, std::string>> split_merge(std::string_view line) {
    const std::size_t space = line.find(' ');
    if (space == line.npos || space == 0 || space + 1 == line.size() || line.find(' ', space + 1) != line.npos)
        return std::nullopt;
    return std::pair{std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

inline std::string read_text(const std::filesystem::path& path, std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    require(in.good(), "cannot open ", what, " ", path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return std::move(text).str();
}

inline nlohmann::json read_json(const std::filesystem::path& path, std::string_view what) {
    try {
        return nlohmann::json::parse(read_text(path, what));
    } catch (const nlohmann::json::parse_error& e) {
        fail("malformed JSON in ", what, " ", path.string(), ": ", e.what());
    }
}

}  // namespace detail

class Gpt2Bpe {
public:
    // OpenAI's encoder.json + vocab.bpe or Hugging Face's vocab.json + merges.txt: the same formats.
    static Gpt2Bpe from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
        Spec spec{.origin = vocab_json.string() + " + " + merges_txt.string()};
        spec.vocab = detail::read_json(vocab_json, "BPE vocabulary");
        const std::string text = detail::read_text(merges_txt, "BPE merges");
        std::size_t line_number = 0;
        for (std::size_t begin = 0; begin < text.size();) {
            std::size_t end = std::min(text.find('\n', begin), text.size());
            std::string_view line(text.data() + begin, end - begin);
            begin = end + 1;
            ++line_number;
            if (line.ends_with('\r')) line.remove_suffix(1);
            if (line.empty() || line.starts_with("#version")) continue;
            auto merge = detail::split_merge(line);
            require(merge.has_value(), merges_txt.string(), " line ", line_number,
                    ": a merge is two symbols separated by one space, got \"", line, "\"");
            spec.merges.push_back(std::move(*merge));
        }
        // The only special token GPT-2's files carry; Hugging Face's GPT2Tokenizer treats it so too.
        if (spec.vocab.is_object() && spec.vocab.contains("<|endoftext|>") &&
            spec.vocab["<|endoftext|>"].is_number_integer())
            spec.specials.emplace_back("<|endoftext|>", spec.vocab["<|endoftext|>"].get<std::int64_t>());
        return Gpt2Bpe(std::move(spec));
    }

    // A Hugging Face tokenizers file whose model is BPE over the byte alphabet.
    static Gpt2Bpe from_tokenizer_json(const std::filesystem::path& tokenizer_json) {
        const nlohmann::json file = detail::read_json(tokenizer_json, "tokenizer file");
        const std::string origin = tokenizer_json.string();
        try {
            const auto& model = file.at("model");
            const auto type = model.at("type").get<std::string>();
            require(type == "BPE", origin, ": model.type is \"", type, "\"; only BPE is supported here");
            for (const char* option : {"continuing_subword_prefix", "end_of_word_suffix"}) {
                const auto affix = model.value(option, nlohmann::json());
                require(affix.is_null() || affix == "", origin, ": model.", option, " is ", affix.dump(),
                        "; byte-level BPE has none");
            }
            const auto normalizer = file.value("normalizer", nlohmann::json());
            require(normalizer.is_null(), origin, ": normalizer ", normalizer.dump(),
                    " is set; byte-level BPE has none");
            Spec spec{.origin = origin,
                      .vocab = model.at("vocab"),
                      .ignore_merges = model.value("ignore_merges", false),
                      .pattern = pretokenizer_pattern(file.value("pre_tokenizer", nlohmann::json()), origin)};
            // Older files write a merge as "A B"; newer ones as ["A", "B"] so symbols may hold spaces.
            for (std::size_t i = 0; const auto& merge : model.at("merges")) {
                if (merge.is_string()) {
                    auto pair = detail::split_merge(merge.get<std::string>());
                    require(pair.has_value(), origin, ": model.merges[", i, "] = ", merge.dump(),
                            " is not two symbols separated by one space");
                    spec.merges.push_back(std::move(*pair));
                } else {
                    require(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
                            origin, ": model.merges[", i, "] = ", merge.dump(), " is not a pair of symbols");
                    spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
                }
                ++i;
            }
            for (const auto& added : file.value("added_tokens", nlohmann::json::array()))
                spec.specials.emplace_back(added.at("content").get<std::string>(), added.at("id").get<std::int64_t>());
            return Gpt2Bpe(std::move(spec));
        } catch (const nlohmann::json::exception& e) {
            fail(origin, ": not a tokenizer file this reader understands: ", e.what());
        }
    }

    // The vocabulary as lists, as a GGUF file's metadata holds it: token i has id i, a merge is "A B",
    // and `specials` (ids) are matched as whole strings before BPE, as GPT-2's <|endoftext|> is.
    static Gpt2Bpe from_lists(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                              const std::vector<std::int64_t>& specials, std::string origin) {
        Spec spec{.origin = std::move(origin), .vocab = nlohmann::json::object()};
        for (std::size_t id = 0; id < tokens.size(); ++id) {
            const auto [it, fresh] = spec.vocab.emplace(tokens[id], id);
            require(fresh, spec.origin, ": token \"", tokens[id], "\" has ids ", it.value().get<std::size_t>(), " and ",
                    id);
        }
        for (std::size_t i = 0; i < merges.size(); ++i) {
            auto pair = detail::split_merge(merges[i]);
            require(pair.has_value(), spec.origin, ": merge ", i, " (\"", merges[i],
                    "\") is not two symbols separated by one space");
            spec.merges.push_back(std::move(*pair));
        }
        for (const auto id : specials) {
            require(id >= 0 && std::size_t(id) < tokens.size(), spec.origin, ": special token id ", id,
                    " is outside the ", tokens.size(), " tokens");
            spec.specials.emplace_back(tokens[id], id);
        }
        return Gpt2Bpe(std::move(spec));
    }

    static Gpt2Bpe from_folder(const std::filesystem::path& dir) {
        namespace fs = std::filesystem;
        for (const auto& [vocab, merges] :
             {std::pair{"vocab.json", "merges.txt"}, std::pair{"encoder.json", "vocab.bpe"}})
            if (fs::exists(dir / vocab) && fs::exists(dir / merges)) return from_files(dir / vocab, dir / merges);
        if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json(dir / "tokenizer.json");
        fail("no GPT-2 BPE tokenizer in ", dir.string(), fs::is_directory(dir) ? "" : " (no such folder)",
             ": looked for vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.json");
    }

    std::vector<std::int64_t> encode(std::string_view text) const {
        // Checked once here so the regex can skip its own check on every match (which would make
        // encoding quadratic in the length of the text).
        for (std::size_t i = 0; i < text.size();) {
            const auto [valid, n] = detail::utf8_step(text, i);
            require(valid, "encode: text is not valid UTF-8 at byte ", i);
            i += n;
        }
        std::unique_ptr<pcre2_match_data, detail::Pcre2MatchFree> match(
            pcre2_match_data_create_from_pattern(pretokenizer_.get(), nullptr));
        std::vector<std::int64_t> ids;
        for (std::size_t at = 0;;) {
            const auto [special_at, special] = next_special(text, at);
            encode_ordinary(text.substr(at, special_at - at), match.get(), ids);
            if (!special) return ids;
            ids.push_back(special->id);
            at = special_at + special->content.size();
        }
    }

    std::string decode(std::span<const std::int64_t> ids) const {
        // A plain loop, not views::join: range-v3 0.12's join reads its inner range in a noexcept
        // function, so an unknown id would end the program instead of throwing.
        std::string bytes;
        for (const auto id : ids) bytes += bytes_of(id);
        return detail::to_valid_utf8(bytes);
    }

    std::string token(std::int64_t id) const { return decode(std::span(&id, 1)); }

    std::int64_t vocab_size() const { return std::int64_t(bytes_.size()); }

    std::optional<std::int64_t> id_of(std::string_view token_in_byte_alphabet) const {
        if (auto it = vocab_.find(token_in_byte_alphabet); it != vocab_.end()) return it->second;
        for (const auto& special : specials_)
            if (special.content == token_in_byte_alphabet) return special.id;
        return std::nullopt;
    }

private:
    struct Special {
        std::string content;
        std::int64_t id;
    };
    struct Merge {
        std::int64_t rank;    // position in the merges list: lower merges first
        std::int64_t merged;  // id of the two symbols joined
    };

    // What the file formats have in common, before it is checked and indexed.
    struct Spec {
        std::string origin{};
        nlohmann::json vocab{};
        std::vector<std::pair<std::string, std::string>> merges{};
        std::vector<std::pair<std::string, std::int64_t>> specials{};
        bool ignore_merges = false;
        std::string pattern{detail::gpt2_pattern};
    };

    explicit Gpt2Bpe(Spec spec) : origin_(std::move(spec.origin)), ignore_merges_(spec.ignore_merges) {
        require(spec.vocab.is_object(), origin_, ": the vocabulary is not a JSON object of token -> id");
        // Ids index a table, so an id is bounded by the file's own token count: a real vocabulary
        // numbers its tokens densely, and one that left more than half of its id space empty is
        // corrupt (an id of 10^9 in a 50k-token file would otherwise allocate 40 GB).
        const std::int64_t tokens = std::int64_t(spec.vocab.size() + spec.specials.size()), id_bound = 2 * tokens;
        auto check_id = [&](std::string_view what, std::string_view token, std::int64_t id) {
            require(id < id_bound, origin_, ": ", what, " \"", token, "\" has id ", id, ", but the file holds ", tokens,
                    " tokens: ids must be below ", id_bound, " (twice the token count)");
        };
        std::vector<const std::string*> owner;  // id -> its vocabulary string, to report duplicate ids
        for (const auto& [token, value] : spec.vocab.items()) {
            require(value.is_number_integer() && value.get<std::int64_t>() >= 0 &&
                        value.get<std::int64_t>() <= std::numeric_limits<std::int32_t>::max(),
                    origin_, ": token \"", token, "\" has id ", value.dump(), ", not an integer in [0, 2^31)");
            const auto id = value.get<std::int64_t>();
            check_id("token", token, id);
            const auto [it, fresh] = vocab_.emplace(token, id);
            if (std::size_t(id) >= bytes_.size()) bytes_.resize(id + 1), owner.resize(id + 1);
            require(!owner[id], origin_, ": id ", id, " is given to both \"", owner[id] ? *owner[id] : "", "\" and \"",
                    token, "\"");
            owner[id] = &it->first;
            bytes_[id] = detail::token_bytes(token);
        }
        // Every byte must be a symbol of its own, or some text could not be encoded at all.
        for (int b = 0; b < 256; ++b) {
            const auto& symbol = detail::byte_alphabet().symbol[b];
            const auto it = vocab_.find(symbol);
            require(it != vocab_.end(), origin_, ": not a byte-level vocabulary: byte ", b, " (\"", symbol,
                    "\") has no token");
            byte_token_[b] = it->second;
        }
        for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
            // Not a structured binding: clang before 16 (the fuzz build) cannot capture one in a lambda.
            const std::string &left = spec.merges[rank].first, &right = spec.merges[rank].second;
            auto id = [&](const std::string& symbol) {
                const auto it = vocab_.find(symbol);
                require(it != vocab_.end(), origin_, ": merges[", rank, "] (\"", left, "\" \"", right, "\"): \"",
                        symbol, "\" is not in the vocabulary");
                return it->second;
            };
            const auto left_id = id(left), right_id = id(right), merged_id = id(left + right);
            // A repeated pair takes its last rank, as in encoder.py's dict(zip(merges, range(...))).
            merges_.insert_or_assign(pair_key(left_id, right_id), Merge{std::int64_t(rank), merged_id});
        }
        for (auto& [content, id] : spec.specials) {
            require(!content.empty() && id >= 0 && id <= std::numeric_limits<std::int32_t>::max(), origin_,
                    ": special token \"", content, "\" with id ", id, " is empty or out of range");
            check_id("special token", content, id);
            if (std::size_t(id) >= bytes_.size()) bytes_.resize(id + 1);
            bytes_[id] = content;  // added tokens decode to their text, never through the byte alphabet
            specials_.push_back({std::move(content), id});
        }
        // At one position the longest special token wins ("<|endoftext|>" over a shorter prefix of it).
        std::ranges::stable_sort(specials_, std::ranges::greater{}, [](const Special& s) { return s.content.size(); });
        pretokenizer_ = detail::compile_regex(spec.pattern);
    }

    // The regex that cuts text before BPE. GPT-2 files name ByteLevel alone; Llama 3 and Qwen 2 put
    // their own Split regex ahead of a ByteLevel that no longer splits.
    static std::string pretokenizer_pattern(const nlohmann::json& pre, const std::string& origin) {
        auto byte_level = [](const nlohmann::json& p, bool splits) {
            return p.value("type", "") == "ByteLevel" && !p.value("add_prefix_space", false) &&
                   p.value("use_regex", true) == splits;
        };
        if (pre.is_null() || byte_level(pre, true)) return std::string(detail::gpt2_pattern);
        if (pre.value("type", "") == "Sequence") {
            const auto& steps = pre.at("pretokenizers");
            if (steps.size() == 2 && steps[0].value("type", "") == "Split" &&
                steps[0].value("behavior", "") == "Isolated" && !steps[0].value("invert", false) &&
                steps[0].at("pattern").contains("Regex") && byte_level(steps[1], false))
                return steps[0]["pattern"]["Regex"].get<std::string>();
        }
        fail(origin, ": unsupported pre_tokenizer ", pre.dump(),
             "; supported: ByteLevel without add_prefix_space, or Split(Regex, Isolated) then "
             "ByteLevel(use_regex=false)");
    }

    static std::uint64_t pair_key(std::int64_t left, std::int64_t right) {
        return (std::uint64_t(left) << 32) | std::uint64_t(right);
    }

    const std::string& bytes_of(std::int64_t id) const {
        require(id >= 0 && id < vocab_size() && bytes_[id], "decode: unknown token id ", id, " (vocabulary of ",
                origin_, " has ", vocab_size(), " ids)");
        return *bytes_[id];
    }

    // Earliest special token at or after `from`; {text.size(), nullptr} when there is none.
    std::pair<std::size_t, const Special*> next_special(std::string_view text, std::size_t from) const {
        std::pair<std::size_t, const Special*> first{text.size(), nullptr};
        for (const auto& special : specials_)
            if (const auto at = text.find(special.content, from); at < first.first) first = {at, &special};
        return first;
    }

    void encode_ordinary(std::string_view text, pcre2_match_data* match, std::vector<std::int64_t>& ids) const {
        const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
        for (std::size_t at = 0; at < text.size();) {
            const int found =
                pcre2_match(pretokenizer_.get(), subject, text.size(), at, PCRE2_NO_UTF_CHECK, match, nullptr);
            // Text the regex does not cover is a piece of its own (a Split "Isolated" keeps it too);
            // GPT-2's regex covers every character, so there it never happens.
            if (found == PCRE2_ERROR_NOMATCH) return bpe(text.substr(at), ids);
            if (found < 0) fail("encode: pre-tokeniser regex failed: ", detail::pcre2_message(found));
            const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match);
            require(span[1] > span[0], "encode: pre-tokeniser regex matched the empty string at byte ", span[0]);
            if (span[0] > at) bpe(text.substr(at, span[0] - at), ids);
            bpe(text.substr(span[0], span[1] - span[0]), ids);
            at = span[1];
        }
    }

    // One piece: start from its bytes and apply the lowest-ranked merge present, everywhere it
    // occurs, until no adjacent pair has a merge. Replaying merges in training order reproduces the
    // segmentation training would have made. Pieces are a word or a run of spaces, so the quadratic
    // scan is cheap and needs no cache.
    void bpe(std::string_view piece, std::vector<std::int64_t>& ids) const {
        if (ignore_merges_) {
            // Llama 3's rule: a piece that is itself a token is emitted whole, whatever the merges say.
            std::string whole;
            for (const char c : piece) whole += detail::byte_alphabet().symbol[static_cast<unsigned char>(c)];
            if (const auto it = vocab_.find(whole); it != vocab_.end()) return ids.push_back(it->second);
        }
        auto symbols =
            piece | ::ranges::views::transform([this](char c) { return byte_token_[static_cast<unsigned char>(c)]; }) |
            ::ranges::to<std::vector<std::int64_t>>();
        for (;;) {
            const Merge* best = nullptr;
            std::uint64_t best_pair = 0;
            for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
                const auto pair = pair_key(symbols[i], symbols[i + 1]);
                if (const auto it = merges_.find(pair); it != merges_.end() && (!best || it->second.rank < best->rank))
                    best = &it->second, best_pair = pair;
            }
            if (!best) break;
            // Left to right, so in "a a a" the first two merge and the third stays (as encoder.py).
            std::size_t out = 0;
            for (std::size_t in = 0; in < symbols.size(); ++out) {
                if (in + 1 < symbols.size() && pair_key(symbols[in], symbols[in + 1]) == best_pair) {
                    symbols[out] = best->merged;
                    in += 2;
                } else {
                    symbols[out] = symbols[in++];
                }
            }
            symbols.resize(out);
        }
        ids.insert(ids.end(), symbols.begin(), symbols.end());
    }

    std::string origin_;  // the file it came from, for messages
    std::unordered_map<std::string, std::int64_t, detail::StringHash, std::equal_to<>> vocab_;  // byte alphabet -> id
    std::unordered_map<std::uint64_t, Merge> merges_;  // (left id, right id) -> merge
    std::vector<std::optional<std::string>> bytes_;    // id -> the bytes it decodes to
    std::array<std::int64_t, 256> byte_token_{};       // byte -> id of its one-byte token
    std::vector<Special> specials_;                    // longest first
    bool ignore_merges_ = false;
    std::shared_ptr<const pcre2_code> pretokenizer_;  // compiled once, shared by copies
};

}  // namespace inputrep
