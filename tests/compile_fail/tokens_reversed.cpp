// Must not compile: Tokens<5, 2> would compare no output position.
#include <inputrep/inputrep.hpp>
using namespace inputrep;
int main() {
    Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Tokens<5, 2>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}
