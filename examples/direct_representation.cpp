// Seed §"Direct Input Representation": optimise a vocabulary-sized vector x; the block sees x·W_E.
// The target is one-hot × 10. Logs how far x moved from its start (the seed's runs barely moved).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});

    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<Linear<0.01, 0.001>>, AllTokens, VocabularySpace>;
    RunOptions options;  // the author's: 500 steps from N(0, 1)
    options.init_scale = 1.0;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("This is a prompt sentence"), options);
    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
    std::cout << "distance " << r.distance() << " vs shifted " << r.shifted_distance() << " (first step "
              << r.trace()(0) << ")\n";
}
