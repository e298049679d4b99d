#pragma once
// Where the tests find their real assets. A missing asset fails the test with a message that says
// how to obtain it; nothing is skipped.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <inputrep/core/error.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

namespace testing {

inline std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("INPUTREP_SHARED")) return env;
    return INPUTREP_SHARED_DIR;  // set by tests/CMakeLists.txt: ../shared beside the checkout
}

// A file under ../shared (models/, reference/).
inline std::filesystem::path shared(const std::string& relative) {
    auto p = shared_dir() / relative;
    inputrep::require(std::filesystem::exists(p), "missing test asset ", p.string(),
                      ": the shared/ folder (models and reference data) must sit beside the "
                      "checkout, or INPUTREP_SHARED must point at it");
    return p;
}

// GPT-2's vocabulary as scripts/setup leaves it (encoder.json + vocab.bpe).
inline std::filesystem::path gpt2_vocab_dir() {
    const char* env = std::getenv("INPUTREP_DATA");
    auto p = std::filesystem::path(env ? env : INPUTREP_DATA_DIR) / "gpt2";
    inputrep::require(std::filesystem::exists(p / "encoder.json") && std::filesystem::exists(p / "vocab.bpe"),
                      "missing GPT-2 vocabulary in ", p.string(), ": run scripts/setup");
    return p;
}

inline const inputrep::Tokenizer& gpt2_tokenizer() {
    static const inputrep::Tokenizer tok = inputrep::Tokenizer::from_folder(gpt2_vocab_dir());
    return tok;
}

// A file's bytes.
inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// For BOOST_CHECK_EXCEPTION: the error's message contains `part`.
inline auto says(std::string part) {
    return [part](const inputrep::Error& e) { return std::string(e.what()).find(part) != std::string::npos; };
}

}  // namespace testing
