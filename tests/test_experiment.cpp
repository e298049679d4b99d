// End-to-end input representation on untrained GPT-2-small-shaped models with the library's defaults.
#include <boost/test/unit_test.hpp>

#include <inputrep/inputrep.hpp>

#include "common.hpp"

using namespace inputrep;
using testing::gpt2_tokenizer;
using testing::says;

namespace {

// GPT-2 small's shape (d = 768, 12 heads, 12 blocks), HF initialisation, seed 0; blocks built on demand.
const GPT2& gpt2_small(int blocks) {
    static std::map<int, GPT2> models;
    auto it = models.find(blocks);
    if (it == models.end())
        it = models.emplace(blocks, untrained<GPT2>(GPT2Config{}, {}, 0, Needs{{0, blocks}, true, false})).first;
    return it->second;
}

const std::vector<std::string> prompts{"The sky is blue.", "This is a prompt sentence",
                                       "Mario, the Idea, versus Mario, the Man",
                                       "The wipers on the bus go swish swish"};

}  // namespace

BOOST_AUTO_TEST_SUITE(experiment)

BOOST_AUTO_TEST_CASE(block_0_recovers_prompts_exactly_with_the_defaults) {
    Experiment<GPT2, Blocks<0, 1>> exp{gpt2_small(1)};
    exp.with_tokenizer(gpt2_tokenizer());
    std::vector<std::vector<std::int64_t>> ids;
    for (auto& p : prompts) ids.push_back(gpt2_tokenizer().encode(p));
    auto results = exp.run(ids);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto& r = results[i];
        BOOST_TEST_MESSAGE(prompts[i] << " -> " << r.decoded() << " | distance " << r.distance() << " shifted "
                                      << r.shifted_distance() << " | " << r.steps_per_second() << " steps/s");
        BOOST_TEST_INFO(prompts[i]);
        BOOST_TEST(r.target() == ids[i]);
        BOOST_TEST(r.exact());
        BOOST_TEST(r.decoded() == prompts[i]);
        BOOST_TEST(r.distance() < r.shifted_distance());
        BOOST_TEST(r.trace().size() == 501u);
        BOOST_TEST(r.trace()(500) < r.trace()(0));
    }
}

// The seed found no exact recovery through all 12 blocks with plain descent from N(0, 1). Adam from
// the embeddings' scale (the defaults) does recover this prompt exactly: measured, and asserted.
BOOST_AUTO_TEST_CASE(all_twelve_blocks_recover_the_prompt_with_the_defaults) {
    Experiment<Layers<GPT2, 12>, Blocks<0, 12>> exp{Layers<GPT2, 12>(gpt2_small(12))};
    exp.with_tokenizer(gpt2_tokenizer());
    auto r = exp.run(gpt2_tokenizer().encode("The sky is blue."));
    BOOST_TEST_MESSAGE("12 blocks: " << r.decoded() << " | " << r.exact_tokens() << "/5 exact | distance "
                                     << r.distance() << " shifted " << r.shifted_distance());
    BOOST_TEST(r.exact());
    BOOST_TEST(r.distance() < r.shifted_distance());
}

// Each metric's written-out gradient equals autograd's on its own forward: in f64 through the ATen
// expressions, and in f32 through the fused CPU loop (cpu::metric).
BOOST_AUTO_TEST_CASE(metric_gradients_match_autograd) {
    auto out = at::randn({3, 4, 5}, at::kDouble), target = at::randn({3, 4, 5}, at::kDouble);
    auto check = [&](const auto& metric, std::string_view name) {
        auto o = out.clone().requires_grad_(true);
        auto expected = torch::autograd::grad({metric(o, target).sum()}, {o})[0];
        auto [value, grad] = metric.value_and_grad(out, target);
        BOOST_TEST_INFO(name);
        BOOST_TEST(at::allclose(value, metric(out, target)));
        BOOST_TEST(at::allclose(grad, expected, 1e-9, 1e-12));
        auto [value32, grad32] = metric.value_and_grad(out.to(at::kFloat), target.to(at::kFloat));
        BOOST_TEST(at::allclose(value32.to(at::kDouble), value, 1e-5, 1e-6));
        BOOST_TEST(at::allclose(grad32.to(at::kDouble), expected, 1e-4, 1e-6));
    };
    check(L1{}, "l1");
    check(L2{}, "l2");
    check(Cosine{}, "cosine");
    check(SignedCosine{}, "signed-cosine");
    check(Combined<0.5, 2.0>{}, "combined");
    check(AnyMetric::parse("combined:0.3:0.7"), "any combined");
}

// Adam's fused f32 step (cpu::adam_step) against its ATen expressions, run in f64, over a few steps.
BOOST_AUTO_TEST_CASE(adam_fused_step_matches_the_aten_one) {
    auto x64 = at::randn({2, 3, 8}, at::kDouble), x32 = x64.to(at::kFloat);
    Adam<> adam;
    auto fused = adam.start(x32), reference = adam.start(x64);
    for (int t = 0; t < 4; ++t) {
        auto g = at::randn({2, 3, 8}, at::kDouble);
        reference.step(x64, g, 0.1);
        fused.step(x32, g.to(at::kFloat), 0.1);
    }
    BOOST_TEST(at::allclose(x32.to(at::kDouble), x64, 1e-5, 1e-6));
    BOOST_TEST(at::allclose(fused.v.to(at::kDouble), reference.v, 1e-5, 1e-7));
}

BOOST_AUTO_TEST_CASE(restarts_run_in_one_batch_and_keep_the_best) {
    auto small =
        untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=64,n_head=4,n_positions=32"), {}, 3, Blocks<0, 1>{});
    Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<>> exp{small};
    RunOptions o;
    o.steps = 50;
    o.restarts = 4;
    auto r = exp.run(gpt2_tokenizer().encode("The sky is blue."), o);
    BOOST_TEST(r.batch() == 4);
    BOOST_REQUIRE(r.restart_distances().size() == 4u);
    BOOST_TEST(r.distance() == *std::min_element(r.restart_distances().begin(), r.restart_distances().end()));
    BOOST_TEST(r.restart_distances()[0] != r.restart_distances()[1]);  // different random starts
}

BOOST_AUTO_TEST_CASE(bad_input_gets_a_clear_error) {
    auto config = config_with<GPT2>("n_layer=2,n_embd=32,n_head=4,n_positions=8");
    auto small = untrained<GPT2>(config, {}, 0, Blocks<0, 1>{});
    Experiment<GPT2, Blocks<0, 1>> exp{small};
    BOOST_CHECK_EXCEPTION(exp.run(std::vector<std::int64_t>{}), Error, says("empty prompt"));
    BOOST_CHECK_EXCEPTION(exp.run(std::vector<std::int64_t>(9, 11)), Error,
                          says("longer than the model's context of 8"));
    BOOST_CHECK_EXCEPTION(exp.run(std::vector<std::int64_t>{1, 50257}), Error, says("outside the vocabulary"));

    RunOptions diverge;
    diverge.steps = 5;
    diverge.lr_start = diverge.lr_end = std::numeric_limits<double>::infinity();
    Experiment<GPT2, Blocks<0, 1>, L1, GradientDescent<>> gd{small};
    BOOST_CHECK_EXCEPTION(gd.run(std::vector<std::int64_t>{1, 2, 3}, diverge), Error, says("NaN or infinite at step"));

    Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Tokens<4>> past_end{small};
    BOOST_CHECK_EXCEPTION(past_end.run(std::vector<std::int64_t>{1, 2, 3}), Error, says("prompt has only 3 tokens"));

    Experiment<GPT2, BlockSlice> too_deep{small, BlockSlice{{0, 3}}};
    BOOST_CHECK_EXCEPTION(too_deep.run(std::vector<std::int64_t>{1, 2}), Error, says("the model has only 2 blocks"));
    Experiment<GPT2, Blocks<1, 2>> unloaded{small};
    BOOST_CHECK_EXCEPTION(unloaded.run(std::vector<std::int64_t>{1, 2}), Error, says("block 1 was not loaded"));
}

BOOST_AUTO_TEST_SUITE_END()
