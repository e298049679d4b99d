// Must not compile: exact inversion fixes the prefix and searches the next token, which only works
// when an output cannot see later tokens.
#include <inputrep/inputrep.hpp>
using namespace inputrep;
int main() {
    Experiment<GPT2, Bidirectional<Blocks<0, 1>>, L1, Exact<>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}
