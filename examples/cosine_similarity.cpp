// Seed §"Indirect input representation via cosine similarity": 1 − |cos φ| against L1 and the
// α·cos + β·L1 combination, same prompt, same budget, plain gradient descent as the author ran it.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Metric>
void run(const char* name, const GPT2& model, const Tokenizer& tok) {
    Experiment<GPT2, Blocks<0, 1>, Metric, GradientDescent<>> exp{model};
    Result r = exp.with_tokenizer(tok).run(tok.encode("The sky is blue."));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/5 exact)\n";
}

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    run<L1>("L1", model, tok);
    run<Cosine>("1 - |cos|", model, tok);
    run<Combined<1.0, 0.01>>("cos + 0.01 L1", model, tok);
}
