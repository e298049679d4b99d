// Seed §"Information between tokens": compare only outputs 1.. (Tokens<1, End>), so token 0 can be
// recovered only through what later positions read of it, and only the last output (LastToken).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Mask>
void run(const char* name, const GPT2& model, const Tokenizer& tok) {
    Result r = Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Mask>{model}.with_tokenizer(tok).run(
        tok.encode("Mario, the Idea, versus Mario, the Man"));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/10 exact)\n";
}

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    run<AllTokens>("all outputs", model, tok);
    run<Tokens<1, End>>("outputs 1..", model, tok);
    run<LastToken>("last output", model, tok);
}
