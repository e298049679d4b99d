// Seed §"Sequential Input Representation": one position at a time. Phase p optimises token p alone
// against output position p, earlier tokens fixed (with their context, unlike the author's script).
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // GPT-2 small by default; config.json overrides (e.g. n_embd=128,n_head=2) for a smaller block.
    auto model = untrained<GPT2>(config_with<GPT2>(argc > 1 ? argv[1] : ""), {}, 0, Blocks<0, 1>{});
    using Exp = Experiment<GPT2, Blocks<0, 1>, L1, Sequential<Adam<>>>;
    RunOptions options;
    options.steps = 5 * 200;  // 200 per token
    Result r = Exp{model}.with_tokenizer(tok).run(tok.encode("The sky is blue."), options);
    for (const auto& line : r.top_k(5)) std::cout << line << "\n";
    std::cout << "exact: " << std::boolalpha << r.exact() << "\n";
    return r.exact() ? 0 : 1;
}
