// Seed §"Is the trained word to token embedding to blame": the same blocks behind an untrained token
// embedding, direct representation. Pass a GPT-2 folder for trained blocks.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    GPT2 blocks =
        argc > 1 ? load<GPT2>(argv[1], {}, Blocks<0, 1>{}) : untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    auto model = with_untrained_embedding(blocks, /*seed=*/1);
    using Exp = Experiment<WithEmbedding<GPT2>, Blocks<0, 1>, L1, GradientDescent<Linear<0.01, 0.001>>, AllTokens,
                           VocabularySpace>;
    RunOptions options;
    options.init_scale = 1.0;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("This is a prompt sentence"), options);
    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
}
