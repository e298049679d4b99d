// Seed §"Mixer Information Transfer" and §"Model Invertibility": untrained masked mixers of width
// 64, one block, flat and expanded (claim 82 is the expanded one), all outputs against outputs 1..
// only (token 0 then travels through the triangular mixing alone).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Mask>
void run(const std::string& name, const Mixer& mixer, const Tokenizer& tok) {
    Result r = Experiment<Mixer, Blocks<0, 1>, L1, Adam<>, Mask>{mixer}.with_tokenizer(tok).run(
        tok.encode("Mario, the Idea, versus Mario, the Man"));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/10 exact)\n";
}

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // The seed's context of 512 positions: the token-mixing weights' scale, U(±1/√T), depends on it.
    for (std::string mixing : {"flat", "expanded"}) {
        auto config = config_with<Mixer>(
            "hidden_size=64,num_hidden_layers=1,context_length=512,vocab_size=50257,token_mixing=\"" + mixing + "\"");
        auto mixer = untrained<Mixer>(config, {}, 0, Blocks<0, 1>{});
        run<AllTokens>(mixing + ", all outputs", mixer, tok);
        run<Tokens<1, End>>(mixing + ", outputs 1..", mixer, tok);
    }
}
