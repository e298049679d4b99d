// Must not compile: Blocks<3, 3> holds no block (E is exclusive).
#include <inputrep/inputrep.hpp>
using namespace inputrep;
int main() {
    Experiment<GPT2, Blocks<3, 3>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}
