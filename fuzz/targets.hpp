#pragma once
// One function per parser that takes untrusted bytes. Each harness executable (harness.cpp,
// compiled once per target) hands libFuzzer's input to one of them; the parsers themselves are
// compiled once, in parsers.cpp and configs.cpp, so the fuzz build stays a few translation units.
//
// A target returns normally when the input is accepted or rejected with inputrep::Error (the
// library's one clear error). Anything else escapes: another exception, a crash, a leak, undefined
// behaviour, a huge allocation or a slow input, and libFuzzer reports it.
#include <cstddef>
#include <cstdint>

#define INPUTREP_FUZZ_TARGETS(X)                                                                       \
    X(safetensors)     /* a .safetensors file: header, dtypes, shapes, data ranges */                  \
    X(shard_index)     /* model.safetensors.index.json */                                              \
    X(llama2c_header)  /* a llama2.c checkpoint: header and layout against the file's size */          \
    X(gguf)            /* a GGUF file: header, tensor infos, their blocks, the metadata tokenizer */   \
    X(vocab_merges)    /* vocab.json NUL merges.txt (Hugging Face's GPT-2 files) */                    \
    X(encoder_bpe)     /* encoder.json NUL vocab.bpe (OpenAI's GPT-2 files) */                         \
    X(tokenizer_json)  /* a Hugging Face tokenizer.json (byte-level BPE) */                            \
    X(tokenizer_bin)   /* llama2.c's tokenizer.bin */                                                  \
    X(tokenizer_model) /* SentencePiece's tokenizer.model (protobuf) */                                \
    X(config)          /* config.json -> every family's Config (model/families.hpp) */                 \
    X(sweep_spec)      /* a sweep spec -> its rows and each row's invert arguments */                  \
    X(results_lines)   /* a sweep's results.jsonl -> its lines and the summary table */                \
    X(trainer_state)   /* trainer_state.json -> the state a resume continues from */                   \
    X(corpus)          /* a corpus file (text, or .ids when the first byte is odd) -> its documents */ \
    X(target_file)     /* a .safetensors target -> the captured output invert --target compares with */

namespace inputrep::fuzz {
#define INPUTREP_FUZZ_DECLARE(name) void name(const std::uint8_t* data, std::size_t size);
INPUTREP_FUZZ_TARGETS(INPUTREP_FUZZ_DECLARE)
#undef INPUTREP_FUZZ_DECLARE
}  // namespace inputrep::fuzz
