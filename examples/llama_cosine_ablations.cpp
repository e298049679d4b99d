// Seed §"Cosine loss optimization and model training": on an untrained Llama block, 1 − |cos φ|
// is minimised for one token but not for several; the seed takes the block apart (no norms, no
// residual around attention, attention alone) to find out why.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Slice>
bool minimised(const char* name, const Llama& llama, const std::vector<std::int64_t>& ids) {
    Result r = Experiment<Llama, Slice, Cosine>{llama}.run(ids);
    std::cout << name << ", " << ids.size() << " tokens: cos distance " << r.distance() << " vs shifted "
              << r.shifted_distance() << ", " << r.exact_tokens() << " exact\n";
    return r.distance() < r.shifted_distance();
}

int main(int argc, char** argv) {
    // Llama-7B's block (4096 wide) by default; a width as the argument for a quicker look.
    LlamaConfig config;
    if (argc > 1) {
        const int width = std::stoi(argv[1]);
        config = config_with<Llama>("hidden_size=" + std::to_string(width) +
                                    ",intermediate_size=" + std::to_string(width * 11008 / 4096));
    }
    auto llama = untrained<Llama>(config, {}, 0, Blocks<0, 1>{});
    bool whole = true;
    for (std::vector<std::int64_t> ids : {std::vector<std::int64_t>{1000}, {1000, 2000, 3000, 4000, 5000}}) {
        whole = minimised<Bidirectional<Blocks<0, 1>>>("whole block", llama, ids) && whole;
        minimised<Bidirectional<NoNorm<Blocks<0, 1>>>>("no norms", llama, ids);
        minimised<Bidirectional<NoResidual<Blocks<0, 1>>>>("no attention residual", llama, ids);
        minimised<Bidirectional<Attention<0>>>("attention alone", llama, ids);
    }
    // The seed minimised the cosine through the whole block for one token only; from the embedding
    // scale under Adam it is minimised for five as well (docs/reproduction.md, claim 48).
    std::cout << "whole block, one and five tokens, below the shifted distance: " << (whole ? "holds" : "does not hold")
              << "\n";
    return whole ? 0 : 1;
}
