// The fuzz targets of the parsers that need no libtorch.
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <inputrep/io/gguf_format.hpp>
#include <inputrep/io/llama2c_format.hpp>
#include <inputrep/sweep/spec.hpp>
#include <inputrep/sweep/summary.hpp>
#include <inputrep/train/state.hpp>
#include <inputrep/io/safetensors_format.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

#include "scratch.hpp"
#include "targets.hpp"

namespace inputrep::fuzz {

namespace {

[[noreturn]] void broken(std::string_view what) {
    std::fprintf(stderr, "inputrep fuzz: %.*s\n", int(what.size()), what.data());
    std::abort();
}

// A tokenizer that loaded must keep its contract on any text: every id it encodes lies inside its
// vocabulary and decodes without error. (An id outside is silent garbage for the model.)
template <class T>
void exercise(const T& tokenizer) {
    static constexpr std::string_view sample =
        "Hello, world! It's 2024 \xe2\x80\x94  caf\xc3\xa9\n\t<|endoftext|> \xf0\x9f\x99\x82 x";
    const auto ids = tokenizer.encode(sample);
    for (const auto id : ids)
        if (id < 0 || id >= tokenizer.vocab_size()) broken("encode returned an id outside the vocabulary");
    try {
        (void)tokenizer.decode(ids);
    } catch (const Error& e) {
        broken(std::string("decode rejected what encode produced: ") + e.what());
    }
    // Every id of a small vocabulary decodes or is refused cleanly (a file may leave ids unused).
    for (std::int64_t id = 0; id < std::min<std::int64_t>(tokenizer.vocab_size(), 1024); ++id) try {
            (void)tokenizer.decode(std::span(&id, 1));
        } catch (const Error&) {}
}

template <class F>
void rejecting_cleanly(F&& parse) {
    try {
        parse();
    } catch (const Error&) {}
}

void bpe_pair(const std::uint8_t* data, std::size_t size, const char* folder_name, const char* vocab,
              const char* merges) {
    rejecting_cleanly([&] {
        const auto dir = folder(folder_name);
        const auto [vocab_text, merges_text] = split(text(data, size));
        put(dir / vocab, vocab_text);
        put(dir / merges, merges_text);
        exercise(Gpt2Bpe::from_folder(dir));
    });
}

}  // namespace

void safetensors(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto h = safetensors::parse_header(std::as_bytes(std::span(data, size)), size, "fuzz.safetensors");
        // What the loader then relies on: every tensor's bytes lie inside the file.
        for (const auto& [name, e] : h.tensors)
            if (h.data_start + e.end > size || e.begin > e.end) broken("an accepted tensor reaches past the file");
    });
}

void shard_index(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        static const auto dir = [] {
            auto d = folder("shard_index");
            put(d / "model-00001-of-00002.safetensors", "");
            put(d / "model-00002-of-00002.safetensors", "");
            return d;
        }();
        put(dir / "model.safetensors.index.json", text(data, size));
        for (const auto& [name, file] : safetensors::read_index(dir / "model.safetensors.index.json"))
            if (file.parent_path() != dir) broken("an accepted shard lies outside the index's folder");
    });
}

void llama2c_header(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto h = llama2c::read_header(std::as_bytes(std::span(data, size)), "fuzz.bin");
        for (const auto& [name, place] : llama2c::lay_out(h, size, "fuzz.bin")) {
            std::uint64_t bytes = 4;
            for (auto d : place.shape) bytes *= static_cast<std::uint64_t>(d);
            if (place.offset + bytes > size) broken("an accepted llama2.c tensor reaches past the file");
        }
    });
}

void gguf(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto bytes = std::as_bytes(std::span(data, size));
        const auto h = gguf::parse_header(bytes, "fuzz.gguf");
        // What the loader then relies on: every tensor lies inside the file, and its blocks decode
        // from its own bytes (ASan sees any read past them).
        for (const auto& t : h.tensors) {
            if (h.data_start + t.offset + t.bytes > size) broken("an accepted GGUF tensor reaches past the file");
            if (t.numel() > (1u << 20)) continue;
            std::vector<float> values(t.numel());
            gguf::dequantize(t.type, bytes.subspan(h.data_start + t.offset, t.bytes), values);
        }
        const auto model = h.string("tokenizer.ggml.model");
        if (model == "llama") exercise(gguf::sentencepiece(h));
        if (model == "gpt2") exercise(gguf::byte_level_bpe(h));
    });
}

void vocab_merges(const std::uint8_t* data, std::size_t size) {
    bpe_pair(data, size, "vocab_merges", "vocab.json", "merges.txt");
}

void encoder_bpe(const std::uint8_t* data, std::size_t size) {
    bpe_pair(data, size, "encoder_bpe", "encoder.json", "vocab.bpe");
}

void tokenizer_json(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto file = folder("tokenizer_json") / "tokenizer.json";
        put(file, text(data, size));
        exercise(Gpt2Bpe::from_tokenizer_json(file));
    });
}

void tokenizer_bin(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto file = folder("tokenizer_bin") / "tokenizer.bin";
        put(file, text(data, size));
        exercise(Llama2cTokenizer::from_file(file));
    });
}

void tokenizer_model(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto file = folder("tokenizer_model") / "tokenizer.model";
        put(file, text(data, size));
        exercise(SentencePiece::from_file(file));
    });
}

void sweep_spec(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto rows = sweep::expand(parse_json(text(data, size), "fuzz.json"));
        // What the runner then relies on: a bounded grid, keyed rows, each row a command line.
        if (rows.size() > sweep::max_rows) broken("a spec expanded past max_rows");
        for (const auto& row : rows) {
            if (row.key.size() != 16) broken("a row key is not 16 hex digits");
            (void)sweep::invert_args(row.config);
        }
    });
}

void results_lines(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto read = sweep::detail::parse_lines(std::string(text(data, size)), "fuzz/results.jsonl");
        if (!read.lines.empty()) (void)sweep::summary_markdown(read.lines, "fuzz");
    });
}

void trainer_state(const std::uint8_t* data, std::size_t size) {
    rejecting_cleanly([&] {
        const auto s = train::parse_trainer_state(text(data, size), "fuzz/trainer_state.json");
        if (s.step < 0 || s.adam_steps != s.step || s.tokenizer_vocab_size <= 0)
            broken("an impossible trainer state was accepted");
    });
}

}  // namespace inputrep::fuzz
