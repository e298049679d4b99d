// Seed §"Restricted Vocabulary Input Representation": decode only the tokens of a sentence.
// The untrained block recovers the prompt from the slightly larger allowed vocabulary (seed: N=200).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    Restricted<> allowed{tok.encode("The sky is blue or red depending on the time of day.")};

    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<>, AllTokens, EmbeddingSpace, Restricted<>>;
    Exp exp{model, {}, {}, {}, {}, {}, allowed};
    RunOptions options;
    options.steps = 200;
    Result r = exp.with_tokenizer(tok).run(tok.encode("The sky is blue."), options);
    std::cout << r.decoded() << "\nexact: " << std::boolalpha << r.exact() << "\n";
}
