// Seed §"Direct Input Representation" (multiple layers): the outputs after 1, 2 and 3 blocks
// compared together (the author's script applied block 0 three times).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 3>{});
    using Exp = Experiment<GPT2, Concat<Blocks<0, 1>, Blocks<0, 2>, Blocks<0, 3>>>;
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("This is a prompt sentence"));
    for (const auto& line : r.top_k(3)) std::cout << line << "\n";
    std::cout << "distance " << r.distance() << " vs shifted " << r.shifted_distance() << "; exact: " << std::boolalpha
              << r.exact() << "\n";
    // Every token back from the three outputs together: the concatenation cannot do better than that.
    return r.exact() ? 0 : 1;
}
