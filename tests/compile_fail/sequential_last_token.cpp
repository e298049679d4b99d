// Must not compile: Sequential<...> compares one output position per phase, a token mask another.
#include <inputrep/inputrep.hpp>
using namespace inputrep;
int main() {
    Experiment<GPT2, Blocks<0, 1>, L1, Sequential<>, Mask<Neurons<0, 8>, LastToken>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}
