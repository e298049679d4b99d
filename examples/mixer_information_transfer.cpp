// Seed §"Mixer Information Transfer" and §"Model Invertibility": untrained masked mixers of width
// 64, one block, flat and expanded (claim 82 is the expanded one), all outputs against outputs 1..
// only (token 0 then travels through the triangular mixing alone).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Mask>
Result run(const std::string& name, const Mixer& mixer, const Tokenizer& tok) {
    Result r = Experiment<Mixer, Blocks<0, 1>, L1, Adam<>, Mask>{mixer}.with_tokenizer(tok).run(
        tok.encode("Mario, the Idea, versus Mario, the Man"));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/10 exact)\n";
    return r;
}

int main() {
    bool holds = true;
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // The seed's context of 512 positions: the token-mixing weights' scale, U(±1/√T), depends on it.
    for (std::string mixing : {"flat", "expanded"}) {
        auto config = config_with<Mixer>(
            "hidden_size=64,num_hidden_layers=1,context_length=512,vocab_size=50257,token_mixing=\"" + mixing + "\"");
        auto mixer = untrained<Mixer>(config, {}, 0, Blocks<0, 1>{});
        const Result all = run<AllTokens>(mixing + ", all outputs", mixer, tok);
        const Result after_first = run<Tokens<1, End>>(mixing + ", outputs 1..", mixer, tok);
        // The seed's finding (claims 80, 82): every token from all outputs; from outputs 1.. every
        // token but the first, which no output of its own pins down.
        holds =
            holds && all.exact() && after_first.exact_tokens() == 9 && after_first.ids()[0] != after_first.target()[0];
    }
    std::cout << "all outputs exact, outputs 1.. all but the first: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
