// Seed §"Indirect input representation via cosine similarity": 1 − |cos φ| against L1 and the
// α·cos + β·L1 combination, same prompt, same budget, plain gradient descent as the author ran it.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Metric>
std::int64_t run(const char* name, const GPT2& model, const Tokenizer& tok) {
    Experiment<GPT2, Blocks<0, 1>, Metric, GradientDescent<>> exp{model};
    Result r = exp.with_tokenizer(tok).run(tok.encode("The sky is blue."));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/5 exact)\n";
    return r.exact_tokens();
}

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 1>{});
    const auto l1 = run<L1>("L1", model, tok);
    const auto cosine = run<Cosine>("1 - |cos|", model, tok);
    const auto combined = run<Combined<1.0, 0.01>>("cos + 0.01 L1", model, tok);
    // The seed's direction: neither the cosine nor the combination recovers more than L1. (Under this
    // start and step all three can recover the prompt at GPT-2 small's width; the seed's "nonsense"
    // needs the author's: docs/reproduction.md, claims 18 and 19.)
    const bool holds = l1 == 5 && cosine <= l1 && combined <= l1;
    std::cout << "L1 exact, the others no better: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
