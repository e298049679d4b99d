// Checkpoint reading and the GPT-2 forward pass against an independent implementation.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include <inputrep/inputrep.hpp>

#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;
using testing::slurp;

namespace {

at::Tensor json_tensor(const Json& j) {
    std::vector<float> flat;
    std::vector<std::int64_t> shape;
    const Json* level = &j;
    while (level->is_array()) {
        shape.push_back(static_cast<std::int64_t>(level->size()));
        level = &(*level)[0];
    }
    std::function<void(const Json&)> walk = [&](const Json& v) {
        if (v.is_array())
            for (auto& e : v) walk(e);
        else
            flat.push_back(v.get<float>());
    };
    walk(j);
    return at::tensor(flat).view(shape);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(models)

// reference.json: hidden_states[0] the embedding output, hidden_states[i] block i-1's output, all
// before ln_f; logits_first8 the first 8 vocabulary logits at each position; argmax over all.
BOOST_AUTO_TEST_CASE(gpt2_matches_the_independent_reference) {
    auto folder = testing::shared("models/gpt2-tiny-random");
    auto ref = read_json(folder / "reference.json");
    auto model = load<GPT2>(folder);
    auto ids = at::tensor(ref["tokens"].get<std::vector<std::int64_t>>(), at::kLong).unsqueeze(0);
    ActivationCache cache;
    auto logits = model.run_with_cache(ids, cache);
    const auto& hs = ref["hidden_states"];
    BOOST_REQUIRE_EQUAL(hs.size(), std::size_t(model.depth() + 1));
    for (int i = 0; i <= model.depth(); ++i) {
        auto mine =
            i == 0 ? cache["blocks.0.hook_resid_pre"] : cache["blocks." + std::to_string(i - 1) + ".hook_resid_post"];
        auto diff = (mine[0] - json_tensor(hs[i])).abs().max().item<double>();
        BOOST_TEST_INFO("hidden state " << i);
        BOOST_TEST(diff < 1e-4);
    }
    auto first8 = json_tensor(ref["logits_first8"]);
    BOOST_TEST((logits[0].narrow(1, 0, 8) - first8).abs().max().item<double>() < 1e-4);
    auto argmax = logits[0].argmax(-1);
    auto expected = ref["argmax"].get<std::vector<std::int64_t>>();
    for (std::size_t t = 0; t < expected.size(); ++t) BOOST_TEST(argmax[t].item<std::int64_t>() == expected[t]);
}

BOOST_AUTO_TEST_CASE(a_slice_loads_only_its_blocks) {
    auto folder = testing::shared("models/gpt2-tiny-random");
    auto ckpt = Checkpoint::open(folder);
    auto config = GPT2Config::from_json(read_config(folder));
    auto model = GPT2::load(config, ckpt, {}, Needs{{1, 2}, true, false});
    for (auto& name : ckpt.loaded()) {
        BOOST_TEST_INFO(name);
        BOOST_TEST(
            (name.find(".h.1.") != std::string::npos || name.ends_with("wte.weight") || name.ends_with("wpe.weight")));
    }
    BOOST_TEST(ckpt.loaded().size() == 14u);  // 12 tensors of block 1, wte, wpe
    BOOST_CHECK_EXCEPTION(model.block(0, at::zeros({1, 2, 64}), model.context(2, true)), Error,
                          says("block 0 was not loaded"));
}

BOOST_AUTO_TEST_CASE(untrained_gpt2_is_seeded_and_independent_of_the_blocks_built) {
    auto config = config_with<GPT2>("n_layer=3,n_embd=32,n_head=4,vocab_size=100,n_positions=16");
    auto a = untrained<GPT2>(config, {}, 7, Needs{{0, 3}, true, true});
    auto b = untrained<GPT2>(config, {}, 7, Needs{{2, 3}, true, false});
    auto c = untrained<GPT2>(config, {}, 8, Needs{{2, 3}, true, false});
    auto x = at::randn({1, 4, 32});
    auto ctx = a.context(4, true);
    BOOST_TEST(at::equal(a.block(2, x, ctx), b.block(2, x, ctx)));
    BOOST_TEST(!at::equal(a.block(2, x, ctx), c.block(2, x, ctx)));
    // HF's scheme: N(0, 0.02) embeddings, residual projections scaled by 1/sqrt(2·n_layer).
    BOOST_TEST(std::abs(a.token_embedding().std().item<double>() - 0.02) < 0.002);
}

// The hand-written input gradient must be autograd's, to rounding: every family that has one,
// causal and bidirectional, with grouped-query attention and a sliding window for Llama. In f32 the
// tape and gradient go through the fused CPU kernels; in f64 through the ATen expressions that
// serve CUDA and bf16.
inline std::string got_dtype(const at::Tensor& t) { return std::string(c10::toString(t.scalar_type())); }

template <class M>
void check_input_gradient(const M& m, std::int64_t d, const std::string& what, double tolerance = 1e-5,
                          std::int64_t tokens = 6) {
    const auto options = m.placement().options();
    for (bool causal : {true, false}) {
        auto ctx = m.context(tokens, causal);
        auto x = at::randn({2, tokens, d}, options).requires_grad_(true);
        auto dy = at::randn({2, tokens, d}, options);
        at::Tensor y_graph = m.block(0, x, ctx);  // the ATen path, recorded by autograd
        at::Tensor expected = torch::autograd::grad({y_graph}, {x}, {dy})[0];
        at::NoGradGuard no_grad;  // outside a graph: the fused CPU kernels where the family has them
        typename M::Tape tape;
        at::Tensor y = m.block(0, x.detach(), ctx, tape);
        BOOST_TEST(at::allclose(y, m.block(0, x.detach(), ctx)));
        BOOST_TEST(got_dtype(y) == got_dtype(x));
        BOOST_TEST((y - y_graph).abs().max().item<double>() < tolerance * (1 + y_graph.abs().max().item<double>()));
        at::Tensor got = m.block_input_grad(0, dy, ctx, tape);
        BOOST_TEST_INFO(what << (causal ? " causal" : " bidirectional"));
        BOOST_TEST(got_dtype(got) == got_dtype(x));
        BOOST_TEST((got - expected).abs().max().item<double>() < tolerance * (1 + expected.abs().max().item<double>()));
    }
}

BOOST_AUTO_TEST_CASE(written_out_input_gradients_match_autograd) {
    auto config = config_with<GPT2>("n_layer=1,n_embd=32,n_head=4,vocab_size=100,n_positions=16");
    for (auto dtype : {at::kFloat, at::kDouble}) {
        const Placement placement{at::kCPU, dtype};
        const std::string type = dtype == at::kFloat ? " f32" : " f64";
        for (bool tanh : {false, true}) {
            config.gelu_tanh = tanh;
            check_input_gradient(untrained<GPT2>(config, placement, 5, Blocks<0, 1>{}), 32,
                                 (tanh ? "gpt2 gelu_new" : "gpt2 gelu") + type);
        }
        for (std::string extra : {"", ",model_type=\"mistral\",sliding_window=3"}) {
            auto llama = config_with<Llama>(
                "hidden_size=32,intermediate_size=48,num_hidden_layers=1,num_attention_heads=4,"
                "num_key_value_heads=2,vocab_size=100,max_position_embeddings=16" +
                extra);
            check_input_gradient(untrained<Llama>(llama, placement, 5, Blocks<0, 1>{}), 32, "llama" + extra + type);
        }
    }
    // 8-bit weights: the written-out gradient and autograd both go through the dequantised weight.
    for (auto how : {Weights::int8, Weights::llm_int8}) {
        const Placement eight{at::kCPU, at::kFloat, how};
        check_input_gradient(untrained<GPT2>(config, eight, 5, Blocks<0, 1>{}), 32, "gpt2 8-bit");
        check_input_gradient(
            untrained<Llama>(config_with<Llama>("hidden_size=32,intermediate_size=48,num_hidden_layers=1,"
                                                "num_attention_heads=4,num_key_value_heads=2,vocab_size=100"),
                             eight, 5, Blocks<0, 1>{}),
            32, "llama 8-bit");
    }
    // Long prompts take ATen's attention (cpu::attention_applies) between fused norms and MLPs.
    auto long_llama = config_with<Llama>(
        "hidden_size=32,intermediate_size=48,num_hidden_layers=1,num_attention_heads=4,"
        "num_key_value_heads=2,vocab_size=100,max_position_embeddings=64");
    check_input_gradient(untrained<Llama>(long_llama, {}, 5, Blocks<0, 1>{}), 32, "llama 40 tokens", 1e-5, 40);
    check_input_gradient(
        untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=32,n_head=4,vocab_size=100,n_positions=64"), {}, 5,
                        Blocks<0, 1>{}),
        32, "gpt2 40 tokens", 1e-5, 40);
    // bf16 takes the ATen path and must stay in bf16 from block to block (RMSNorm computes in f32).
    const Placement bf16{at::kCPU, at::kBFloat16};
    check_input_gradient(untrained<GPT2>(config, bf16, 5, Blocks<0, 1>{}), 32, "gpt2 bf16", 5e-2);
    auto llama = config_with<Llama>(
        "hidden_size=32,intermediate_size=48,num_hidden_layers=1,num_attention_heads=4,"
        "num_key_value_heads=2,vocab_size=100,max_position_embeddings=16");
    check_input_gradient(untrained<Llama>(llama, bf16, 5, Blocks<0, 1>{}), 32, "llama bf16", 5e-2);
}

BOOST_AUTO_TEST_CASE(causal_attention_ignores_later_tokens) {
    auto config = config_with<GPT2>("n_layer=1,n_embd=32,n_head=4,vocab_size=100,n_positions=16");
    auto m = untrained<GPT2>(config, {}, 1, Blocks<0, 1>{});
    auto x = at::randn({1, 6, 32});
    auto y = x.clone();
    y[0][5] += 1.0;
    auto ctx = m.context(6, true);
    auto ox = m.block(0, x, ctx), oy = m.block(0, y, ctx);
    BOOST_TEST(at::allclose(ox.narrow(1, 0, 5), oy.narrow(1, 0, 5)));
    BOOST_TEST(!at::allclose(ox.narrow(1, 5, 1), oy.narrow(1, 5, 1)));
}

BOOST_AUTO_TEST_CASE(missing_tensor_and_wrong_shape) {
    auto dir = testing::temp_dir("missing");
    std::filesystem::copy_file(testing::shared("models/gpt2-tiny-random/config.json"), dir / "config.json");
    testing::write_file(dir / "model.safetensors", testing::valid_file({testing::f32_tensor("wte.weight", 4)}));
    BOOST_CHECK_EXCEPTION(load<GPT2>(dir), Error, says("has shape [4] but the config implies [50257, 64]"));
    auto ckpt = Checkpoint::open(dir);
    BOOST_CHECK_EXCEPTION(ckpt.load("h.0.ln_1.weight", {}), Error, says("missing tensor \"h.0.ln_1.weight\""));
    BOOST_CHECK_EXCEPTION(Checkpoint::open(dir / "nothing"), Error, says("no such checkpoint"));
    // An untied head missing from the file is an error, not a silent fallback to the embedding.
    auto untied = untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=32,n_head=4,vocab_size=100,n_positions=16"), {},
                                  0, Needs{{0, 1}, true, true});
    std::filesystem::remove_all(dir);
    save_safetensors(untied, dir);
    auto json = read_config(dir);
    json["tie_word_embeddings"] = false;
    std::ofstream(dir / "config.json") << json.dump();
    BOOST_CHECK_EXCEPTION(load<GPT2>(dir), Error, says("missing tensor \"lm_head.weight\""));
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(reading_never_modifies_the_file) {
    auto dir = testing::temp_dir("readonly");
    auto bytes = testing::valid_file({testing::f32_tensor("a", 16)});
    testing::write_file(dir / "model.safetensors", bytes);
    {
        auto t = Checkpoint::open(dir / "model.safetensors").load("a", {});
        BOOST_TEST(t[3].item<float>() == 3.0f);
        t.mul_(2);  // an in-place change lands in a private copy of the page
        BOOST_TEST(t[3].item<float>() == 6.0f);
    }
    BOOST_TEST(slurp(dir / "model.safetensors") == bytes);
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(truncated_checkpoint_is_a_clear_error) {
    auto dir = testing::temp_dir("truncated");
    auto bytes = testing::valid_file({testing::f32_tensor("a", 16)});
    testing::write_file(dir / "model.safetensors", bytes.substr(0, bytes.size() - 10));
    BOOST_CHECK_EXCEPTION(Checkpoint::open(dir), Error, says("truncated file"));
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
