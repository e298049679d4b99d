// Mistakes a static experiment must reject at compile time, each with a readable message. Every case
// must fail on its own: check.cmake compiles this file once and looks in the compiler's output for the
// message each `expect` line names (GCC reports every failed static_assert, not only the first).
#include <inputrep/inputrep.hpp>
using namespace inputrep;

// slice_past_depth: GPT-2 small has 12 blocks, so Blocks<0, 13> reaches past its last one.
// expect slice_past_depth: the slice ends past the model's last block.*|slice_fits_model<13, 12>
int slice_past_depth() {
    using GPT2Small = Layers<GPT2, 12>;
    using Exp = Experiment<GPT2Small, Blocks<0, 13>, L1, Adam<>, AllTokens, EmbeddingSpace>;
    Exp exp{untrained<GPT2Small>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return static_cast<int>(exp.model().depth());
}

// tokens_reversed: Tokens<5, 2> would compare no output position.
// expect tokens_reversed: Tokens<B, E>: E is exclusive
int tokens_reversed() {
    Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Tokens<5, 2>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}

// blocks_empty: Blocks<3, 3> holds no block (E is exclusive).
// expect blocks_empty: Blocks<B, E>: E is exclusive
int blocks_empty() {
    Experiment<GPT2, Blocks<3, 3>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}

// start_on_temporary: the Session would refer to the Experiment destroyed at the end of the statement.
// expect start_on_temporary: Experiment::start\(\) on a temporary
void start_on_temporary() {
    auto model = untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{});
    auto session = Experiment<GPT2>{model}.start({{1, 2, 3}});
    session.step();
}

// sequential_last_token: Sequential<...> compares one output position per phase, a token mask another.
// expect sequential_last_token: Sequential<...> compares one output position per phase
int sequential_last_token() {
    Experiment<GPT2, Blocks<0, 1>, L1, Sequential<>, Mask<Neurons<0, 8>, LastToken>> exp{
        untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}

// exact_bidirectional: exact inversion fixes the prefix and searches the next token, which only
// works when an output cannot see later tokens.
// expect exact_bidirectional: Exact<...> searches left to right, which needs a causal slice
int exact_bidirectional() {
    Experiment<GPT2, Bidirectional<Blocks<0, 1>>, L1, Exact<>> exp{
        untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}

// not_a_ranker: Exact<Rank> checks candidates in the order a ranker gives; a type without first() gives none.
// expect not_a_ranker: Exact<Rank>: Rank must be a ranker
struct Unranked {
    static constexpr std::string_view name = "unranked";
};
int not_a_ranker() {
    Experiment<GPT2, Blocks<0, 1>, L1, Exact<Unranked>> exp{untrained<GPT2>(GPT2Config{}, {}, 0, Blocks<0, 1>{})};
    return exp.model().depth();
}

int main() {}
