// Seed §"Big models exhibit accurate input representations": an untrained single Llama block of a
// given width (default 1024; the seed's "70B-shaped" block is 8192 wide and takes seconds per step
// here) and the trained stories260K, block 0, same prompt ids. 32 heads at every width, as the
// seed's block had: its config passed `num_heads`, which LlamaConfig ignores (default 32).
#include <cstdlib>
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    const std::string width = argc > 1 ? argv[1] : "1024";
    const std::vector<std::int64_t> ids{1, 400, 35, 81, 267, 300, 12};
    auto wide = untrained<Llama>(
        config_with<Llama>("hidden_size=" + width + ",intermediate_size=" + std::to_string(4 * std::stoi(width)) +
                           ",num_attention_heads=32,num_hidden_layers=1"),
        {}, 0, Blocks<0, 1>{});
    Result r = Experiment<Llama, Blocks<0, 1>>{wide}.run(ids);
    std::cout << "untrained, width " << width << ": " << r.exact_tokens() << "/7 exact, distance " << r.distance()
              << " vs shifted " << r.shifted_distance() << "\n";
    auto stories = load<Llama>(std::filesystem::path(INPUTREP_SHARED_DIR) / "models/stories260K/stories260K.bin", {},
                               Blocks<0, 1>{});
    const Result trained = Experiment<Llama, Blocks<0, 1>>{stories}.run(ids);
    std::cout << "stories260K (trained, width 64): " << trained.exact_tokens() << "/7 exact, distance "
              << trained.distance() << " vs shifted " << trained.shifted_distance() << "\n";
    // The seed's finding: the wide block gives the prompt back exactly, the narrow one does not.
    const bool holds = r.exact() && trained.exact_tokens() < r.exact_tokens();
    std::cout << "the wide block's input recovered, better than the narrow one's: "
              << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
