#pragma once
// Any tokenizer the library reads, behind one value type. Tokenisation happens outside the
// optimisation loop, so a virtual call here costs nothing that matters.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <inputrep/io/gguf_format.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/mapped_file.hpp>
#include <inputrep/tokenizer/gguf.hpp>
#include <inputrep/tokenizer/gpt2_bpe.hpp>
#include <inputrep/tokenizer/llama2c.hpp>
#include <inputrep/tokenizer/sentencepiece.hpp>

namespace inputrep {

class Tokenizer {
public:
    template <class T>
    requires requires(const T& t, std::string_view s, std::span<const std::int64_t> ids) {
        { t.encode(s) } -> std::same_as<std::vector<std::int64_t>>;
        { t.decode(ids) } -> std::same_as<std::string>;
        { t.vocab_size() } -> std::convertible_to<std::int64_t>;
    }
    Tokenizer(T tokenizer) : self_(std::make_shared<Impl<T>>(std::move(tokenizer))) {}

    // A model folder's own tokenizer files, or a vocabulary folder: tokenizer.model (SentencePiece,
    // Llama 1/2, Mistral; Llama 3 ships a tiktoken file under that name, so tokenizer.json then),
    // tokenizer.bin (llama2.c; its size from config.json when there is one, else counted from the
    // file), else byte-level BPE (vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.json).
    static Tokenizer from_folder(const std::filesystem::path& dir) {
        require(std::filesystem::is_directory(dir), dir.string(), ": no such tokenizer folder");
        require(exists_in(dir), "no tokenizer in ", dir.string(),
                ": looked for tokenizer.model (SentencePiece), tokenizer.bin (llama2.c), "
                "tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe");
        if (std::filesystem::exists(dir / "tokenizer.model")) {
            try {
                return SentencePiece::from_file(dir / "tokenizer.model");
            } catch (const Error&) {
                if (!std::filesystem::exists(dir / "tokenizer.json")) throw;
            }
        }
        if (std::filesystem::exists(dir / "tokenizer.bin")) {
            std::optional<std::int64_t> vocab_size;
            if (std::filesystem::exists(dir / "config.json"))
                vocab_size = config_required<std::int64_t>(read_config(dir), "vocab_size");
            return Llama2cTokenizer::from_file(dir / "tokenizer.bin", vocab_size);
        }
        return Gpt2Bpe::from_folder(dir);
    }

    // The tokenizer in a GGUF file's metadata (tokenizer/gguf.hpp); nothing when it holds none.
    static std::optional<Tokenizer> from_gguf(const std::filesystem::path& file) {
        const auto mapped = MappedFile::open(file);
        const auto header = gguf::parse_header(mapped->bytes(), file.string());
        const auto model = header.string("tokenizer.ggml.model");
        if (!model) return std::nullopt;
        if (*model == "llama") return gguf::sentencepiece(header);
        if (*model == "gpt2") return gguf::byte_level_bpe(header);
        fail(file.string(), ": tokenizer.ggml.model is \"", *model,
             "\", not one inputrep builds (llama, gpt2): pass --vocab DIR");
    }

    // Whether `dir` holds tokenizer files from_folder reads (it may still find them malformed):
    // what a program asks before choosing between a model folder's own tokenizer and a default.
    static bool exists_in(const std::filesystem::path& dir) {
        namespace fs = std::filesystem;
        std::error_code unreadable;  // a path the file system refuses holds no tokenizer
        auto has = [&](const char* name) { return fs::is_regular_file(dir / name, unreadable); };
        return fs::is_directory(dir, unreadable) &&
               (has("tokenizer.model") || has("tokenizer.bin") || has("tokenizer.json") ||
                (has("vocab.json") && has("merges.txt")) || (has("encoder.json") && has("vocab.bpe")));
    }

    std::vector<std::int64_t> encode(std::string_view text) const { return self_->encode(text); }
    std::string decode(std::span<const std::int64_t> ids) const { return self_->decode(ids); }
    std::int64_t vocab_size() const { return self_->vocab_size(); }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual std::vector<std::int64_t> encode(std::string_view) const = 0;
        virtual std::string decode(std::span<const std::int64_t>) const = 0;
        virtual std::int64_t vocab_size() const = 0;
    };
    template <class T>
    struct Impl final : Interface {
        explicit Impl(T t) : tokenizer(std::move(t)) {}
        std::vector<std::int64_t> encode(std::string_view s) const override { return tokenizer.encode(s); }
        std::string decode(std::span<const std::int64_t> ids) const override { return tokenizer.decode(ids); }
        std::int64_t vocab_size() const override { return tokenizer.vocab_size(); }
        T tokenizer;
    };
    std::shared_ptr<const Interface> self_;
};

}  // namespace inputrep
