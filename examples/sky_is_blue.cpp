// The README demo: recover "The sky is blue." from the output of block 0 of an untrained
// GPT-2-small-shaped model, as a typed experiment.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    const std::string prompt = argc > 1 ? argv[1] : "The sky is blue.";
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");  // scripts/setup fills it
    auto model = untrained<GPT2>(GPT2Config{}, {}, /*seed=*/0, Blocks<0, 1>{});

    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, AllTokens, EmbeddingSpace>;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode(prompt));

    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
    std::cout << "distance " << r.distance() << " vs shifted " << r.shifted_distance() << "; exact: " << std::boolalpha
              << r.exact() << "\n";
    return r.exact() ? 0 : 1;
}
