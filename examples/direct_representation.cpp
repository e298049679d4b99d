// Seed §"Direct Input Representation": optimise a vocabulary-sized vector x; the block sees x·W_E.
// The target is one-hot × 10. Logs how far x moved from its start (the seed's runs barely moved).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 1>{});

    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<Linear<0.01, 0.001>>, AllTokens, VocabularySpace>;
    RunOptions options;  // the author's: 500 steps from N(0, 1)
    options.init_scale = 1.0;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("This is a prompt sentence"), options);
    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
    std::cout << "distance " << r.distance() << " vs shifted " << r.shifted_distance() << " (first step "
              << r.trace()(0) << ")\n";
    // The seed's finding: gibberish, although the distance falls below the shifted input's.
    const bool holds = r.exact_tokens() <= 1 && r.distance() < r.shifted_distance();
    std::cout << "gibberish below the shifted distance: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
