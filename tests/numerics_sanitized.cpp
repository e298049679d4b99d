// The numerics under AddressSanitizer and UndefinedBehaviorSanitizer: the fused CPU kernels
// (kernels/cpu.hpp) and the written-out block input gradients of GPT-2 and Llama, on small shapes,
// against ATen and autograd. Only this file is instrumented (libtorch is not), which is the point:
// the kernels' own loops and indexing are what is checked. Its own executable, numerics_sanitized.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>

#include <inputrep/model/gpt2.hpp>
#include <inputrep/model/llama.hpp>
#include <inputrep/model/load.hpp>

using namespace inputrep;

namespace {

double max_error(const at::Tensor& got, const at::Tensor& expected) {
    return (got - expected).abs().max().item<double>() / (1 + expected.abs().max().item<double>());
}

// The block forward and its written-out input gradient, f32 outside a graph (the fused kernels),
// against the ATen forward differentiated by autograd; causal and bidirectional.
template <class M>
void check_block(const M& m, std::int64_t d, std::int64_t tokens, const std::string& what) {
    for (const bool causal : {true, false}) {
        BOOST_TEST_CONTEXT(what << ", " << tokens << " tokens, " << (causal ? "causal" : "bidirectional")) {
            const auto ctx = m.context(tokens, causal);
            const auto x = at::randn({2, tokens, d}).requires_grad_(true);
            const auto dy = at::randn({2, tokens, d});
            const at::Tensor y_graph = m.block(0, x, ctx);
            const at::Tensor expected = torch::autograd::grad({y_graph}, {x}, {dy})[0];
            at::NoGradGuard no_grad;
            typename M::Tape tape;
            const at::Tensor y = m.block(0, x.detach(), ctx, tape);
            BOOST_TEST(max_error(y, y_graph) < 1e-5);
            BOOST_TEST(max_error(m.block_input_grad(0, dy, ctx, tape), expected) < 1e-5);
        }
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(numerics_sanitized)

// 6 tokens take the fused attention; 40 take ATen's (T²·hd past 4096) between fused norms and MLPs.
BOOST_AUTO_TEST_CASE(written_out_gradients_match_autograd) {
    at::manual_seed(3);
    for (const char* act : {"gelu", "gelu_new"}) {
        const auto config = config_with<GPT2>(
            std::string("n_layer=1,n_embd=32,n_head=4,vocab_size=100,n_positions=64,activation_function=") + act);
        const auto gpt2 = untrained<GPT2>(config, {}, 5, Blocks<0, 1>{});
        for (const std::int64_t tokens : {1, 6, 40}) check_block(gpt2, 32, tokens, std::string("gpt2 ") + act);
    }
    for (const std::string extra : {"", ",model_type=\"mistral\",sliding_window=3"}) {
        const auto config = config_with<Llama>(
            "hidden_size=32,intermediate_size=48,num_hidden_layers=1,num_attention_heads=4,"
            "num_key_value_heads=2,vocab_size=100,max_position_embeddings=64" +
            extra);
        const auto llama = untrained<Llama>(config, {}, 5, Blocks<0, 1>{});
        for (const std::int64_t tokens : {1, 6, 40}) check_block(llama, 32, tokens, "llama" + extra);
    }
}

// The kernels the optimisation loop calls directly: the fused metric and Adam step.
BOOST_AUTO_TEST_CASE(metric_and_adam_kernels_match_aten) {
    at::manual_seed(4);
    const auto out = at::randn({3, 5, 7}), target = at::randn({3, 5, 7});
    const auto [value, grad] = cpu::metric(out, target, {.l1 = 0.5, .l2 = 2, .cosine = 1.5, .absolute = true});
    const auto o = out.clone().requires_grad_(true);
    const auto diff = (o - target).flatten(1);
    const auto cosine = at::cosine_similarity(o.flatten(1), target.flatten(1), 1);
    const auto reference = 0.5 * diff.abs().sum(1) + 2 * diff.norm(2, 1) + 1.5 * (1 - cosine.abs());
    const auto reference_grad = torch::autograd::grad({reference.sum()}, {o})[0];
    BOOST_TEST(max_error(value, reference.detach()) < 1e-5);
    BOOST_TEST(max_error(grad, reference_grad) < 1e-5);

    auto x = at::randn({37}), m = at::zeros({37}), v = at::zeros({37});
    auto xr = x.clone(), mr = m.clone(), vr = v.clone();
    for (int t = 1; t <= 3; ++t) {
        const auto g = at::randn({37});
        cpu::adam_step(x, g, m, v, 0.9, 0.999, 1e-8, 0.01, t);
        mr = 0.9 * mr + 0.1 * g, vr = 0.999 * vr + 0.001 * g * g;
        xr = xr - 0.01 / (1 - std::pow(0.9, t)) * mr / ((vr / (1 - std::pow(0.999, t))).sqrt() + 1e-8);
    }
    BOOST_TEST(max_error(x, xr) < 1e-5);
}

BOOST_AUTO_TEST_SUITE_END()
