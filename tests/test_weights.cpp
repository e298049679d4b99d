// 8-bit weights (model/weight.hpp): int8 rows and scales, LLM.int8's product against one written out
// element by element, its dependence on the batch, the input gradient through the dequantised weight,
// the memory estimate against what a model holds, and the real models' logits against f32.
#include <boost/test/unit_test.hpp>

#include <cmath>

#include <inputrep/inputrep.hpp>

#include "common.hpp"

using namespace inputrep;

namespace {

at::Tensor gaussian_matrix(at::IntArrayRef shape, std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(shape, gen, at::kFloat);
}

Weight held_as(const at::Tensor& w, Weights how, Weight::Layout layout = Weight::linear) {
    Weight h(layout);
    h.hold(w, how);
    return h;
}

// A model's logits with its linear weights held as `how` asks.
template <class M>
at::Tensor logits_8bit(const std::filesystem::path& path, Weights how, const at::Tensor& ids) {
    ActivationCache nothing([](std::string_view) { return false; });
    return load<M>(path, Placement{at::kCPU, at::kFloat, how}).run_with_cache(ids, nothing);
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
    return (got - want).norm().item<double>() / want.norm().item<double>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(weights)

// q = round(127·w/a) per output channel: every weight within half a step a/254 of its own, a zero
// row stays zero, and the bytes are one per weight plus a scale per channel.
BOOST_AUTO_TEST_CASE(int8_holds_each_weight_within_half_a_step_of_its_channel) {
    auto w = gaussian_matrix({7, 33}, 1);
    w[3].zero_();
    const auto h = held_as(w, Weights::int8);
    const auto step = w.abs().amax(1, true) / 254;
    BOOST_TEST(h.quantised());
    BOOST_TEST(((h.values() - w).abs() <= step + 1e-7).all().item<bool>());
    BOOST_TEST(!at::equal(h.values(), w));
    BOOST_TEST(h.values()[3].abs().sum().item<double>() == 0);
    BOOST_TEST(h.bytes() == 7u * 33u + 4u * 7u);
    // GPT-2's Conv1D stores [in, out]: its channels are the columns.
    const auto c = held_as(w.t().contiguous(), Weights::int8, Weight::conv1d);
    BOOST_TEST(at::equal(c.values(), h.values().t()));
    BOOST_TEST(c.size(0) == 33);
    BOOST_TEST(c.bytes() == h.bytes());
    // Stacked weights (Llama's q|k|v) are their parts' rows in order.
    const auto stacked = Weight::cat({h, held_as(w.narrow(0, 0, 2), Weights::int8)});
    BOOST_TEST(at::equal(stacked.values(), at::cat({h.values(), h.values().narrow(0, 0, 2)}, 0)));
    BOOST_TEST(at::equal(stacked.narrow(7, 2).values(), h.values().narrow(0, 0, 2)));
}

// The product LLM.int8 defines, written out element by element in double: columns with any |x| >= 6
// in the batch multiply the dequantised weight; the rest are quantised per row by the absmax of the
// row's values under 6 and multiplied as integers.
BOOST_AUTO_TEST_CASE(llm_int8_multiplies_as_bitsandbytes_defines_it) {
    auto x = gaussian_matrix({3, 16}, 2);
    x[1][5] = 9.0;
    x[2][11] = -7.5;
    const auto w = gaussian_matrix({5, 16}, 3);
    const auto h = held_as(w, Weights::llm_int8);
    const auto y = h(x);
    const auto wq = held_as(w, Weights::int8).values().to(at::kDouble);
    const auto aw = w.abs().amax(1).to(at::kDouble);
    auto X = x.to(at::kDouble);
    auto want = at::zeros({3, 5}, at::kDouble);
    for (int t = 0; t < 3; ++t) {
        double ax = 0;
        for (int c = 0; c < 16; ++c)
            if (std::abs(X[t][c].item<double>()) < 6) ax = std::max(ax, std::abs(X[t][c].item<double>()));
        for (int o = 0; o < 5; ++o) {
            double s = 0;
            for (int c = 0; c < 16; ++c) {
                const double xv = X[t][c].item<double>(), wv = wq[o][c].item<double>();
                if (c == 5 || c == 11)
                    s += xv * wv;
                else
                    s += std::round(127 * xv / ax) * ax / 127 * std::round(127 * wv / aw[o].item<double>()) *
                         aw[o].item<double>() / 127;
            }
            want[t][o] = s;
        }
    }
    BOOST_TEST_MESSAGE("llm.int8 against the written-out product: max error "
                       << (y.to(at::kDouble) - want).abs().max().item<double>());
    BOOST_TEST(at::allclose(y.to(at::kDouble), want, 1e-4, 1e-4));
}

// Outlier columns are chosen over all rows of a call, so a row's LLM.int8 output changes with its
// neighbours (bitsandbytes' known property); weight-only int8 gives a row the same output alone or
// in any batch.
BOOST_AUTO_TEST_CASE(llm_int8_depends_on_the_batch_and_int8_does_not) {
    auto x = gaussian_matrix({2, 64}, 4);
    x[1][7] = 8.0;  // an outlier in the second row only
    const auto w = gaussian_matrix({16, 64}, 5);
    const auto llm = held_as(w, Weights::llm_int8), int8 = held_as(w, Weights::int8);
    const auto alone = llm(x.narrow(0, 0, 1)), beside = llm(x).narrow(0, 0, 1);
    const double change = relative_error(beside, alone);
    BOOST_TEST_MESSAGE("llm.int8: row 0's output changes by " << change << " (relative) beside an outlier row");
    BOOST_TEST(change > 1e-4);
    BOOST_TEST(at::allclose(int8(x.narrow(0, 0, 1)), int8(x).narrow(0, 0, 1), 1e-6, 1e-6));
}

// The input gradient is dy·W through the dequantised weight, under autograd and written out, for
// every layout, dense and 8-bit.
BOOST_AUTO_TEST_CASE(the_input_gradient_goes_through_the_dequantised_weight) {
    const auto w = gaussian_matrix({12, 20}, 6);
    auto x = gaussian_matrix({4, 20}, 7);
    x[2][3] = 7.0;
    const auto dy = gaussian_matrix({4, 12}, 8);
    for (auto how : {Weights::dense, Weights::int8, Weights::llm_int8})
        for (auto layout : {Weight::linear, Weight::conv1d}) {
            const auto h = held_as(layout == Weight::conv1d ? w.t().contiguous() : w, how, layout);
            const auto deq = layout == Weight::conv1d ? h.values().t() : h.values();
            auto leaf = x.clone().requires_grad_(true);
            const auto y = h(leaf);
            const auto g = torch::autograd::grad({y}, {leaf}, {dy})[0];
            BOOST_TEST_INFO("weights " << int(how) << " layout " << int(layout));
            BOOST_TEST(at::allclose(g, at::mm(dy, deq), 1e-5, 1e-5));
            BOOST_TEST(at::allclose(h.input_grad(dy), at::mm(dy, deq), 1e-5, 1e-5));
        }
}

// The estimate walks the same tensor list: it is what an 8-bit model holds, plus one block's stack.
BOOST_AUTO_TEST_CASE(the_memory_estimate_is_what_an_8_bit_model_holds) {
    const Placement p{at::kCPU, at::kFloat, Weights::int8};
    const Needs all{{0, 2}, true, true};
    auto l = config_with<Llama>(
        "hidden_size=32,intermediate_size=48,num_hidden_layers=2,num_attention_heads=4,num_key_value_heads=2,"
        "vocab_size=100,max_position_embeddings=16");
    BOOST_TEST(Llama::estimated_bytes(l, all, at::kFloat, Weights::int8) ==
               untrained<Llama>(l, p, 0, all).held_bytes() + std::uint64_t(Llama::stacked_per_block(l)));
    auto g = config_with<GPT2>("n_layer=2,n_embd=32,n_head=4,vocab_size=100,n_positions=16");
    BOOST_TEST(GPT2::estimated_bytes(g, all, at::kFloat, Weights::int8) == untrained<GPT2>(g, p, 0, all).held_bytes());
    auto x = config_with<Mixer>("hidden_size=32,num_hidden_layers=2,context_length=9,vocab_size=100");
    BOOST_TEST(Mixer::estimated_bytes(x, all, at::kFloat, Weights::int8) ==
               untrained<Mixer>(x, p, 0, all).held_bytes());
    // A Llama-7B-shaped block: 202.4 M weights, 0.81 GB in f32, 0.40 GB in bf16, 0.20 GB in int8.
    auto seven = config_with<Llama>("hidden_size=4096,intermediate_size=11008,num_hidden_layers=32");
    const Needs block{{0, 1}, false, false};
    const auto f32 = Llama::estimated_bytes(seven, block), bf16 = Llama::estimated_bytes(seven, block, at::kBFloat16),
               int8 = Llama::estimated_bytes(seven, block, at::kBFloat16, Weights::int8);
    BOOST_TEST(double(int8) / double(bf16) == 0.5, boost::test_tools::tolerance(0.01));
    BOOST_TEST(double(bf16) / double(f32) == 0.5, boost::test_tools::tolerance(0.01));
}

// A Llama-2-70B-shaped model's plan is the arithmetic: 855.6 M weights a block (q and o 8192², k and
// v 1024 × 8192, gate, up and down 28672 × 8192), two bytes each in bf16, one in int8 plus a scale per
// output channel; the deepest slice with the embedding is what fits beside it.
BOOST_AUTO_TEST_CASE(a_70b_plan_is_the_arithmetic) {
    const auto c = config_with<Llama>(
        "hidden_size=8192,intermediate_size=28672,num_hidden_layers=80,num_attention_heads=64,"
        "num_key_value_heads=8,vocab_size=32000");
    const std::uint64_t weights = 2 * 8192ull * 8192 + 2 * 1024ull * 8192 + 3 * 28672ull * 8192, norms = 2 * 8192;
    const std::uint64_t channels = 8192 + 1024 + 1024 + 8192 + 28672 + 28672 + 8192;  // q k v o gate up down
    auto block = [&](at::ScalarType dtype, Weights how) {
        return Llama::estimated_bytes(c, {{0, 2}, false, false}, dtype, how) -
               Llama::estimated_bytes(c, {{0, 1}, false, false}, dtype, how);
    };
    BOOST_TEST(block(at::kFloat, Weights::dense) == 4 * (weights + norms));
    BOOST_TEST(block(at::kBFloat16, Weights::dense) == 2 * (weights + norms));
    BOOST_TEST(block(at::kBFloat16, Weights::int8) == weights + 4 * channels + 2 * norms);
    const std::uint64_t embedding = 2 * 32000ull * 8192;
    for (std::uint64_t budget : {24'000'000'000ull, 80'000'000'000ull})
        for (auto how : {Weights::dense, Weights::int8}) {
            const int end = Llama::deepest_fitting(c, {{0, 80}, true, false}, at::kBFloat16, how, budget);
            const auto per_block = block(at::kBFloat16, how),
                       stack = Llama::estimated_bytes(c, {{0, 1}, false, false}, at::kBFloat16, how) - per_block;
            BOOST_TEST_MESSAGE("70B-shaped, " << (how == Weights::int8 ? "int8" : "bf16") << ": blocks 0:" << end
                                              << " fit in " << budget / 1e9 << " GB");
            BOOST_TEST(end == std::min<std::uint64_t>(80, (budget - embedding - stack) / per_block));
        }
}

// stories260K (llama2.c file) and the tiny GPT-2 folder (Conv1D weights) in 8 bits: logits near f32's,
// not equal to them. stories260K's 64-wide rows lose 0.84% of each weight matrix's norm to int8, and
// its five blocks grow that to about 11% of the logits' (1.1% after block 0, 8% after block 4:
// docs/quantization.md).
BOOST_AUTO_TEST_CASE(real_models_in_8_bits_stay_close_to_f32) {
    const auto ids = at::tensor({1, 403, 407, 261, 378, 301, 289, 429}, at::kLong).unsqueeze(0);
    const auto stories = testing::shared("models/stories260K/stories260K.bin");
    const auto gpt2 = testing::shared("models/gpt2-tiny-random");
    const auto gpt2_ids = at::tensor({464, 2068, 7586, 21831, 18045, 625}, at::kLong).unsqueeze(0);
    for (auto how : {Weights::int8, Weights::llm_int8}) {
        const double e_llama =
            relative_error(logits_8bit<Llama>(stories, how, ids), logits_8bit<Llama>(stories, Weights::dense, ids));
        const double e_gpt2 =
            relative_error(logits_8bit<GPT2>(gpt2, how, gpt2_ids), logits_8bit<GPT2>(gpt2, Weights::dense, gpt2_ids));
        BOOST_TEST_MESSAGE((how == Weights::int8 ? "int8" : "llm.int8")
                           << ": logits' relative error stories260K " << e_llama << ", gpt2-tiny-random " << e_gpt2);
        BOOST_TEST(e_llama > 0);
        BOOST_TEST(e_llama < 0.2);
        BOOST_TEST(e_gpt2 > 0);
        BOOST_TEST(e_gpt2 < 0.05);
    }
}

BOOST_AUTO_TEST_SUITE_END()
