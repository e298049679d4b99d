// docs/extending.md's worked examples: their code is these headers, compiled and exercised here, and
// the document must quote each header verbatim, so the two cannot drift apart.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "extending/mask.hpp"
#include "extending/metric.hpp"
#include "extending/ranker.hpp"

#include "common.hpp"

using namespace inputrep;
using testing::gpt2_tokenizer;

namespace {

std::string read(const std::filesystem::path& p) {
    std::ifstream in(p);
    inputrep::require(in.good(), "cannot read ", p.string());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

const GPT2& gpt2_one_block() {
    static const GPT2 m = untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=64,n_head=4,n_positions=64"), {}, 0,
                                          Needs{{0, 1}, true, false});
    return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(extending)

BOOST_AUTO_TEST_CASE(the_document_quotes_every_example_verbatim) {
    const auto doc = read(std::filesystem::path(INPUTREP_SOURCE_DIR) / "docs/extending.md");
    for (auto name : {"metric.hpp", "mask.hpp", "ranker.hpp"}) {
        BOOST_TEST_INFO(name);
        BOOST_TEST(doc.find(read(std::filesystem::path(INPUTREP_SOURCE_DIR) / "tests/extending" / name)) !=
                   std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(huber_metric_gradient_and_inversion) {
    auto out = at::randn({2, 5, 8}, at::kDouble) * 2, target = at::randn({2, 5, 8}, at::kDouble);
    auto x = out.clone().requires_grad_(true);
    auto reference = torch::autograd::grad({Huber{}(x, target).sum()}, {x})[0];
    BOOST_TEST(at::allclose(Huber{}.value_and_grad(out, target).second, reference));

    Experiment<GPT2, Blocks<0, 1>, Huber> exp{gpt2_one_block()};
    auto r = exp.run(gpt2_tokenizer().encode("The sky is blue."));
    BOOST_TEST_MESSAGE("huber: " << r.exact_tokens() << "/5, distance " << r.distance() << " shifted "
                                 << r.shifted_distance());
    BOOST_TEST(r.exact());
}

BOOST_AUTO_TEST_CASE(even_positions_mask_gradient_and_inversion) {
    auto out = at::randn({2, 5, 8}, at::kDouble);
    auto x = out.clone().requires_grad_(true);
    auto g = at::randn({2, 3, 8}, at::kDouble);
    BOOST_TEST(
        at::allclose(EvenPositions{}.backward(g, out), torch::autograd::grad({EvenPositions{}(x)}, {x}, {g})[0]));

    // Odd positions are not compared, but a causal slice carries them into the even ones after them.
    Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, EvenPositions> exp{gpt2_one_block()};
    auto ids = gpt2_tokenizer().encode("The sky is blue.");
    auto r = exp.run(ids);
    BOOST_TEST_MESSAGE("even positions: " << r.exact_tokens() << "/5, distance " << r.distance());
    BOOST_TEST(r.ids()[0] == ids[0]);
    BOOST_TEST(r.ids()[2] == ids[2]);
    BOOST_TEST(r.ids()[4] == ids[4]);
    BOOST_TEST(r.distance() < r.shifted_distance());
}

// A ranker changes how many candidates the search checks, never what it accepts.
BOOST_AUTO_TEST_CASE(cosine_ranker_plugs_into_exact_search) {
    const auto ids = gpt2_tokenizer().encode("The sky is blue.");
    const auto cosine = Experiment<GPT2, Blocks<0, 1>, L1, Exact<CosineRank>>{gpt2_one_block()}.run(ids);
    const auto exhaustive = Experiment<GPT2, Blocks<0, 1>, L1, Exact<Exhaustive>>{gpt2_one_block()}.run(ids);
    BOOST_TEST_MESSAGE("cosine: " << cosine.candidates_checked() << " candidates checked, exhaustive "
                                  << exhaustive.candidates_checked());
    BOOST_TEST(cosine.exact());
    BOOST_TEST(cosine.verified());
    BOOST_TEST(exhaustive.exact());
    BOOST_TEST(cosine.candidates_checked() < exhaustive.candidates_checked());
}

BOOST_AUTO_TEST_SUITE_END()
