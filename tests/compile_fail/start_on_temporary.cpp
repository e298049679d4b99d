// Must not compile: the Session would refer to the Experiment destroyed at the end of the statement.
#include <inputrep/inputrep.hpp>
using namespace inputrep;
int main() {
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    auto session = Experiment<GPT2>{model}.start({{1, 2, 3}});
    session.step();
}
