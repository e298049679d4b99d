// Seed §"Is the trained word to token embedding to blame": the same blocks behind an untrained token
// embedding, direct representation. Pass a GPT-2 folder for trained blocks, or config.json overrides
// (e.g. n_embd=128,n_head=2) for a smaller untrained one than GPT-2 small.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    const std::string given = argc > 1 ? argv[1] : "";
    GPT2 blocks = std::filesystem::is_directory(given)
                      ? load<GPT2>(given, {}, Blocks<0, 1>{})
                      : untrained<GPT2>(config_with<GPT2>(given), {}, 0, Blocks<0, 1>{});
    auto model = with_untrained_embedding(blocks, /*seed=*/1);
    using Exp = Experiment<WithEmbedding<GPT2>, Blocks<0, 1>, L1, GradientDescent<Linear<0.01, 0.001>>, AllTokens,
                           VocabularySpace>;
    RunOptions options;
    options.init_scale = 1.0;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("This is a prompt sentence"), options);
    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
    // The seed's finding: gibberish (an untrained embedding does not make the direct method work).
    const bool holds = r.exact_tokens() <= 1;
    std::cout << r.exact_tokens() << "/5 exact; gibberish: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
