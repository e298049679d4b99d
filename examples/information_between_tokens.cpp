// Seed §"Information between tokens": compare only outputs 1.. (Tokens<1, End>), so token 0 can be
// recovered only through what later positions read of it, and only the last output (LastToken).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Mask>
std::int64_t run(const char* name, const GPT2& model, const Tokenizer& tok) {
    Result r = Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Mask>{model}.with_tokenizer(tok).run(
        tok.encode("Mario, the Idea, versus Mario, the Man"));
    std::cout << name << ": " << r.decoded() << " (" << r.exact_tokens() << "/10 exact)\n";
    return r.exact_tokens();
}

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 1>{});
    const auto all = run<AllTokens>("all outputs", model, tok);
    const auto after_first = run<Tokens<1, End>>("outputs 1..", model, tok);
    const auto last = run<LastToken>("last output", model, tok);
    // The fewer outputs compared, the fewer tokens come back.
    const bool holds = all == 10 && after_first <= all && last < after_first;
    std::cout << "fewer outputs, fewer tokens: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
