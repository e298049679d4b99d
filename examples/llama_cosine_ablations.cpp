// Seed §"Cosine loss optimization and model training": on an untrained Llama block, 1 − |cos φ|
// is minimised for one token but not for several; the seed takes the block apart (no norms, no
// residual around attention, attention alone) to find out why.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

template <class Slice>
void run(const char* name, const Llama& llama, const std::vector<std::int64_t>& ids) {
    Result r = Experiment<Llama, Slice, Cosine>{llama}.run(ids);
    std::cout << name << ", " << ids.size() << " tokens: cos distance " << r.distance() << " vs shifted "
              << r.shifted_distance() << ", " << r.exact_tokens() << " exact\n";
}

int main() {
    auto llama = untrained<Llama>(LlamaConfig{}, {}, 0, Blocks<0, 1>{});
    for (std::vector<std::int64_t> ids : {std::vector<std::int64_t>{1000}, {1000, 2000, 3000, 4000, 5000}}) {
        run<Bidirectional<Blocks<0, 1>>>("whole block", llama, ids);
        run<Bidirectional<NoNorm<Blocks<0, 1>>>>("no norms", llama, ids);
        run<Bidirectional<NoResidual<Blocks<0, 1>>>>("no attention residual", llama, ids);
        run<Bidirectional<Attention<0>>>("attention alone", llama, ids);
    }
}
