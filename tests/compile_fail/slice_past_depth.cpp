// Must not compile: GPT-2 small has 12 blocks, so Blocks<0, 13> reaches past its last one.
#include <inputrep/inputrep.hpp>
using namespace inputrep;
using GPT2Small = Layers<GPT2, 12>;
int main() {
    using Exp = Experiment<GPT2Small, Blocks<0, 13>, L1, Adam<>, AllTokens, EmbeddingSpace>;
    Exp exp{untrained<GPT2Small>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return static_cast<int>(exp.model().depth());
}
