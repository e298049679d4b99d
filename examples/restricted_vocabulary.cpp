// Seed §"Restricted Vocabulary Input Representation": decode only the tokens of a sentence.
// The untrained block recovers the prompt from the slightly larger allowed vocabulary (seed: N=200).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 1>{});
    Restricted<> allowed{tok.encode("The sky is blue or red depending on the time of day.")};

    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<>, AllTokens, EmbeddingSpace, Restricted<>>;
    Exp exp{model, {}, {}, {}, {}, {}, allowed};
    RunOptions options;
    options.steps = 200;
    Result r = exp.with_tokenizer(tok).run(tok.encode("The sky is blue."), options);
    std::cout << r.decoded() << "\nexact: " << std::boolalpha << r.exact() << "\n";
    return r.exact() ? 0 : 1;
}
