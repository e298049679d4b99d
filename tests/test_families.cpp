// GPT-J and the masked mixer; saving any family to safetensors and loading it back; what a slice
// of a sharded checkpoint costs.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <fstream>
#include <set>

#include <inputrep/inputrep.hpp>
#include <inputrep/io/save_safetensors.hpp>
#include <inputrep/model/gptj.hpp>
#include <inputrep/model/mixer.hpp>

#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;

namespace {

std::uint64_t tensor_bytes(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    std::uint64_t n = 0;
    for (auto& [_, t] : tensors) n += t.numel() * t.element_size();
    return n;
}

std::set<std::string> shard_files(const std::filesystem::path& folder) {
    const auto index = read_json(folder / "model.safetensors.index.json");
    std::set<std::string> files;
    for (auto& [_, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
    return files;
}

at::Tensor random_ids(std::int64_t vocab, std::int64_t length, std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(vocab, {2, length}, gen, at::kLong);
}

// A small untrained model of family M, saved in at least 3 shards and loaded back: the same config,
// the same tensors under the same names, bitwise the same logits.
template <class M>
void round_trip(std::string_view overrides, std::int64_t length) {
    BOOST_TEST_CONTEXT(M::family << " " << overrides) {
        const auto config = config_with<M>(overrides);
        const auto model = untrained<M>(config, {}, 11, Needs{{0, config.layers()}, true, true});
        const auto dir = testing::temp_dir(std::string(M::family) + "-round-trip");
        const auto tensors = model.named_tensors();
        save_safetensors(model, dir, {.max_shard_bytes = tensor_bytes(tensors) / 4 + 1});
        BOOST_TEST(shard_files(dir).size() >= 3u);
        BOOST_TEST(!std::filesystem::exists(dir / "model.safetensors"));

        const auto loaded = load<M>(dir);
        BOOST_TEST(loaded.config().to_json() == config.to_json());
        const auto back = loaded.named_tensors();
        BOOST_REQUIRE_EQUAL(back.size(), tensors.size());
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            BOOST_TEST_INFO(tensors[i].first);
            BOOST_TEST(back[i].first == tensors[i].first);
            BOOST_TEST(at::equal(back[i].second, tensors[i].second));
        }
        const auto ids = random_ids(config.vocab_size, length, 5);
        ActivationCache a, b;
        const auto expected = model.run_with_cache(ids, a), got = loaded.run_with_cache(ids, b);
        BOOST_TEST(expected.size(-1) == config.vocab_size);
        BOOST_TEST(at::equal(got, expected));
        std::filesystem::remove_all(dir);
    }
}

// Resident memory of this process in bytes.
std::int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

const char* mixer_small = "hidden_size=32,num_hidden_layers=2,context_length=12,vocab_size=50";

}  // namespace

BOOST_AUTO_TEST_SUITE(families)

// One line per family: a new family joins by adding its own.
BOOST_AUTO_TEST_CASE(every_family_survives_a_sharded_save_bitwise) {
    round_trip<GPT2>("n_layer=3,n_embd=32,n_head=4,vocab_size=100,n_positions=16", 9);
    round_trip<GPTJ>("n_layer=3,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16", 9);
    round_trip<Llama>(
        "hidden_size=32,intermediate_size=48,num_hidden_layers=3,num_attention_heads=4,num_key_value_heads=2,"
        "vocab_size=100,max_position_embeddings=16",
        9);
    round_trip<Llama>(
        "model_type=\"mistral\",sliding_window=3,hidden_size=32,intermediate_size=48,num_hidden_layers=3,"
        "num_attention_heads=4,num_key_value_heads=2,vocab_size=100,max_position_embeddings=16",
        9);
    round_trip<Mixer>(std::string(mixer_small) + ",token_mixing=flat", 12);
    round_trip<Mixer>(std::string(mixer_small) + ",token_mixing=expanded,expansion_factor=2", 12);
    round_trip<Mixer>(std::string(mixer_small) + ",parallel_convolutions=2,tie_word_embeddings=true", 12);
}

BOOST_AUTO_TEST_CASE(a_second_save_replaces_the_first) {
    const auto config = config_with<GPT2>("n_layer=2,n_embd=16,n_head=2,vocab_size=40,n_positions=8");
    const auto model = untrained<GPT2>(config, {}, 1, Needs{{0, 2}, true, true});
    const auto dir = testing::temp_dir("resave");
    save_safetensors(model, dir, {.max_shard_bytes = 4096});
    const auto shards = shard_files(dir);
    BOOST_TEST(shards.size() >= 2u);
    save_safetensors(model, dir);
    BOOST_TEST(!std::filesystem::exists(dir / "model.safetensors.index.json"));
    for (auto& shard : shards) BOOST_TEST(!std::filesystem::exists(dir / shard));
    std::set<std::string> files;
    for (auto& f : std::filesystem::directory_iterator(dir)) files.insert(f.path().filename().string());
    BOOST_TEST((files == std::set<std::string>{"config.json", "model.safetensors"}));  // no temporary left behind
    auto ckpt = Checkpoint::open(dir);
    BOOST_TEST(ckpt.names().size() == model.named_tensors().size());
    std::filesystem::remove_all(dir);
}

// Blocks<0, 1> of an 8-block checkpoint (one shard per block or so) reads block 0 and the embeddings,
// and costs about their bytes in memory, not the checkpoint's.
BOOST_AUTO_TEST_CASE(a_slice_of_a_sharded_checkpoint_reads_only_its_tensors) {
    const auto config = config_with<GPT2>("n_layer=8,n_embd=256,n_head=4,vocab_size=1000,n_positions=256");
    const auto dir = testing::temp_dir("lazy");
    std::uint64_t checkpoint_bytes = 0;
    {
        const auto model = untrained<GPT2>(config, {}, 2, Needs{{0, 8}, true, true});
        const auto d = config.n_embd;
        const std::uint64_t block_bytes = 4 * (12 * d * d + 13 * d);
        checkpoint_bytes = tensor_bytes(model.named_tensors());
        save_safetensors(model, dir, {.max_shard_bytes = block_bytes});
    }
    BOOST_TEST(shard_files(dir).size() >= 8u);

    const auto before = resident_bytes();
    auto ckpt = Checkpoint::open(dir);
    const auto model = GPT2::load(config, ckpt, {}, Needs{{0, 1}, true, false});
    std::set<std::string> expected{"wte.weight", "wpe.weight"};
    for (auto name : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                      "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias"})
        expected.insert("h.0." + std::string(name));
    BOOST_TEST(ckpt.loaded() == expected);

    double checksum = 0;
    const auto loaded = model.named_tensors();
    for (auto& [_, t] : loaded) checksum += t.sum().item<double>();  // every page of every tensor read
    const auto growth = resident_bytes() - before;
    const auto bytes = tensor_bytes(loaded);
    BOOST_TEST_MESSAGE("lazy slice: loaded " << bytes << " of " << checkpoint_bytes
                                             << " checkpoint bytes; resident memory grew by " << growth << " ("
                                             << double(growth) / double(bytes) << "x; checksum " << checksum << ")");
    BOOST_TEST(std::isfinite(checksum));
    BOOST_TEST(double(growth) < 1.5 * double(bytes));
    std::filesystem::remove_all(dir);
}

// Changing the tokens after position k leaves every output up to k bitwise unchanged, for each kind
// of token mixing; the outputs after k do change.
BOOST_AUTO_TEST_CASE(mixer_outputs_ignore_later_tokens) {
    for (std::string mixing :
         {"token_mixing=flat", "token_mixing=expanded,expansion_factor=2", "token_mixing=expanded,expansion_factor=0.5",
          "token_mixing=flat,parallel_convolutions=2"}) {
        BOOST_TEST_CONTEXT(mixing) {
            const auto config = config_with<Mixer>(std::string(mixer_small) + "," + mixing);
            const auto m = untrained<Mixer>(config, {}, 4, Needs{{0, 2}, true, true});
            auto ids = random_ids(config.vocab_size, 12, 1);
            auto changed = ids.clone();
            changed.narrow(1, 6, 6).add_(1).remainder_(config.vocab_size);
            ActivationCache a, b;
            const auto x = m.run_with_cache(ids, a), y = m.run_with_cache(changed, b);
            BOOST_TEST(at::equal(x.narrow(1, 0, 6), y.narrow(1, 0, 6)));
            for (int i = 6; i < 12; ++i) BOOST_TEST(!at::allclose(x.select(1, i), y.select(1, i)));
            // A shorter input is the longer one with its tail dropped: it runs on the triangle's corner.
            ActivationCache c;
            BOOST_TEST(at::allclose(m.run_with_cache(ids.narrow(1, 0, 6), c), x.narrow(1, 0, 6), 1e-5, 1e-6));
        }
    }
}

// The triangle is applied in the forward pass: the stored weight keeps its upper triangle, and no
// gradient reaches it.
BOOST_AUTO_TEST_CASE(mixer_gradients_never_reach_the_upper_triangle) {
    const auto config = config_with<Mixer>(std::string(mixer_small) + ",token_mixing=expanded,expansion_factor=2");
    const auto m = untrained<Mixer>(config, {}, 4, Needs{{0, 2}, true, true});
    at::Tensor w;
    for (auto& [name, t] : m.named_tensors())
        if (name == "mixerblocks.0.conv.0.weight") w = t;
    BOOST_REQUIRE(w.defined());
    BOOST_TEST(w.sizes() == (std::vector<std::int64_t>{24, 12, 1}));
    w.requires_grad_(true);
    ActivationCache cache;
    m.run_with_cache(random_ids(config.vocab_size, 12, 2), cache).sum().backward();
    auto grad = w.grad().squeeze(-1), weight = w.detach().squeeze(-1);
    BOOST_TEST(at::equal(grad.triu(1), at::zeros_like(grad)));
    BOOST_TEST(grad.tril().abs().gt(0).sum().item<std::int64_t>() > 0);
    BOOST_TEST(weight.triu(1).abs().gt(0).sum().item<std::int64_t>() > 0);
    w.requires_grad_(false);
}

// A prompt's input gradient does not depend on what else is in its batch. It did for the expanded
// mixer (libtorch 1.13's matrix-times-batch product and GELU's backward: garbage, up to 1e24), so
// its batched inversions diverged while each prompt alone converged.
BOOST_AUTO_TEST_CASE(mixer_gradient_is_the_same_in_a_batch) {
    for (std::string mixing : {"token_mixing=flat", "token_mixing=expanded,expansion_factor=2",
                               "token_mixing=flat,parallel_convolutions=2"}) {
        BOOST_TEST_CONTEXT(mixing) {
            const auto config = config_with<Mixer>(std::string(mixer_small) + "," + mixing);
            const auto m = untrained<Mixer>(config, {}, 4, Needs{{0, 1}, true, false});
            const auto ctx = m.context(5, true);
            const auto batch = at::randn({3, 5, 32}).requires_grad_();
            const auto grad = torch::autograd::grad({m.block(0, batch, ctx).abs().sum()}, {batch})[0];
            for (std::int64_t b = 0; b < 3; ++b) {
                const auto alone = batch.detach().narrow(0, b, 1).clone().requires_grad_();
                const auto expected = torch::autograd::grad({m.block(0, alone, ctx).abs().sum()}, {alone})[0];
                BOOST_TEST(at::allclose(grad.narrow(0, b, 1), expected, 1e-5, 1e-6));
            }
        }
    }
}

// The seed's ablations with token mixing in attention's place: alone, it is tril(W)·x + c.
BOOST_AUTO_TEST_CASE(mixer_block_variants) {
    const auto config = config_with<Mixer>(mixer_small);
    const auto m = untrained<Mixer>(config, {}, 6, Needs{{0, 1}, true, false});
    at::Tensor w, c;
    for (auto& [name, t] : m.named_tensors()) {
        if (name == "mixerblocks.0.conv.weight") w = t.squeeze(-1);
        if (name == "mixerblocks.0.conv.bias") c = t.unsqueeze(-1);
    }
    BOOST_REQUIRE(w.defined() && c.defined());
    const auto x = at::randn({2, 12, 32});
    const auto alone = m.block(0, x, m.context(12, true, {false, false, false}));
    BOOST_TEST(at::allclose(alone, at::matmul(w.tril(), x) + c, 1e-5, 1e-6));
    const auto whole = m.block(0, x, m.context(12, true)),
               bare = m.block(0, x, m.context(12, true, {true, false, true}));
    BOOST_TEST(!at::allclose(whole, bare));
}

BOOST_AUTO_TEST_CASE(mixer_rejects_what_it_cannot_run) {
    const auto config = config_with<Mixer>(mixer_small);
    const auto m = untrained<Mixer>(config, {}, 4, Needs{{0, 1}, true, false});
    BOOST_CHECK_EXCEPTION(m.embed(random_ids(50, 13, 0)), Error, says("13 tokens exceed the context_length of 12"));
    BOOST_CHECK_EXCEPTION(m.context(12, false), Error, says("causal by construction"));
    BOOST_CHECK_EXCEPTION(m.block(0, at::zeros({1, 6, 32}), m.context(12, true)), Error,
                          says("6 tokens but the context was built for 12"));
    BOOST_CHECK_EXCEPTION(config_with<Mixer>("token_mixing=diagonal"), Error,
                          says("token_mixing must be \"flat\" or \"expanded\""));
    BOOST_CHECK_EXCEPTION(m.unembed(at::zeros({1, 2, 32})), Error, says("lm_head was not loaded"));
    BOOST_TEST(!m.position_offset(12).defined());
}

BOOST_AUTO_TEST_CASE(gptj_attention_is_causal) {
    const auto config = config_with<GPTJ>("n_layer=2,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16");
    const auto m = untrained<GPTJ>(config, {}, 3, Needs{{0, 2}, true, true});
    auto ids = random_ids(config.vocab_size, 8, 3), changed = ids.clone();
    changed.narrow(1, 5, 3).add_(1).remainder_(config.vocab_size);
    ActivationCache a, b;
    const auto x = m.run_with_cache(ids, a), y = m.run_with_cache(changed, b);
    BOOST_TEST(at::allclose(x.narrow(1, 0, 5), y.narrow(1, 0, 5), 1e-6, 1e-7));
    for (int i = 5; i < 8; ++i) BOOST_TEST(!at::allclose(x.select(1, i), y.select(1, i)));
}

// Attention and MLP both read ln_1(x) of the block's input: the MLP's output at a position does not
// depend on other positions, and there is no residual stream between the two.
BOOST_AUTO_TEST_CASE(gptj_runs_attention_and_mlp_in_parallel) {
    const auto config = config_with<GPTJ>("n_layer=1,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16");
    const auto m = untrained<GPTJ>(config, {}, 3, Needs{{0, 1}, true, true});
    auto ids = random_ids(config.vocab_size, 6, 4), changed = ids.clone();
    changed[0][0] = (changed[0][0].item<std::int64_t>() + 1) % config.vocab_size;
    ActivationCache a, b;
    m.run_with_cache(ids, a);
    m.run_with_cache(changed, b);
    BOOST_TEST(at::equal(a["blocks.0.hook_mlp_out"].narrow(1, 1, 5), b["blocks.0.hook_mlp_out"].narrow(1, 1, 5)));
    BOOST_TEST(!at::allclose(a["blocks.0.hook_attn_out"].narrow(1, 1, 5), b["blocks.0.hook_attn_out"].narrow(1, 1, 5)));
    BOOST_TEST(at::allclose(a["blocks.0.hook_resid_post"],
                            a["blocks.0.hook_resid_pre"] + a["blocks.0.hook_attn_out"] + a["blocks.0.hook_mlp_out"]));
    BOOST_CHECK_EXCEPTION(a["blocks.0.hook_resid_mid"], Error, says("no hook point"));
    BOOST_TEST(!m.position_offset(6).defined());
}

// GPT-J's one residual carries x past both sub-layers; without the MLP the block is x + attention.
BOOST_AUTO_TEST_CASE(gptj_block_variants) {
    const auto config = config_with<GPTJ>("n_layer=1,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16");
    const auto m = untrained<GPTJ>(config, {}, 3, Needs{{0, 1}, true, true});
    const auto ids = random_ids(config.vocab_size, 6, 8);
    ActivationCache cache;
    m.run_with_cache(ids, cache);
    const auto x = cache["blocks.0.hook_resid_pre"], whole = cache["blocks.0.hook_resid_post"];
    BOOST_TEST(
        at::allclose(m.block(0, x, m.context(6, true, {true, true, false})), x + cache["blocks.0.hook_attn_out"]));
    BOOST_TEST(at::allclose(m.block(0, x, m.context(6, true, {false, true, true})), whole - x, 1e-5, 1e-6));
    BOOST_TEST(!at::allclose(m.block(0, x, m.context(6, true, {true, false, true})), whole));
}

// The rotation by hand: at position p, dims (2j, 2j+1) with 2j < rotary_dim turn by p·10000^(-2j/rotary_dim).
BOOST_AUTO_TEST_CASE(gptj_rotates_adjacent_pairs_of_the_first_rotary_dims) {
    const auto config = config_with<GPTJ>("n_layer=1,n_embd=32,n_head=2,rotary_dim=8,vocab_size=10,n_positions=16");
    const auto m = untrained<GPTJ>(config, {}, 0, Needs{{0, 1}, true, false});
    const std::int64_t T = 5, hd = 16, rd = 8;
    const auto ctx = m.context(T, true);
    const auto x = at::randn({1, 2, T, hd}, at::kDouble).to(at::kFloat);
    const auto y = ctx.rotary(x);
    BOOST_TEST(at::equal(y.narrow(-1, rd, hd - rd), x.narrow(-1, rd, hd - rd)));
    auto xa = x.accessor<float, 4>(), ya = y.accessor<float, 4>();
    double worst = 0;
    for (int h = 0; h < 2; ++h)
        for (int p = 0; p < T; ++p)
            for (int j = 0; j < rd / 2; ++j) {
                const double angle = p * std::pow(10000.0, -2.0 * j / rd), c = std::cos(angle), s = std::sin(angle);
                const double a = xa[0][h][p][2 * j], b = xa[0][h][p][2 * j + 1];
                worst = std::max({worst, std::abs(ya[0][h][p][2 * j] - (a * c - b * s)),
                                  std::abs(ya[0][h][p][2 * j + 1] - (b * c + a * s))});
            }
    BOOST_TEST(worst < 1e-5);
}

// The same weights with the whole head rotated: position 0 (angle 0) is unchanged, later ones differ.
BOOST_AUTO_TEST_CASE(gptj_rotary_dim_changes_only_positions_after_the_first) {
    const char* shape = "n_layer=1,n_embd=32,n_head=2,vocab_size=100,n_positions=16,";
    const auto part =
        untrained<GPTJ>(config_with<GPTJ>(std::string(shape) + "rotary_dim=4"), {}, 9, Needs{{0, 1}, true, true});
    const auto whole =
        untrained<GPTJ>(config_with<GPTJ>(std::string(shape) + "rotary_dim=16"), {}, 9, Needs{{0, 1}, true, true});
    const auto ids = random_ids(100, 6, 7);
    ActivationCache a, b;
    const auto x = part.run_with_cache(ids, a), y = whole.run_with_cache(ids, b);
    BOOST_TEST(at::allclose(x.select(1, 0), y.select(1, 0), 1e-5, 1e-6));
    for (int i = 1; i < 6; ++i) BOOST_TEST(!at::allclose(x.select(1, i), y.select(1, i)));
}

BOOST_AUTO_TEST_CASE(broken_folders_and_unwritable_paths_are_clear_errors) {
    const auto dir = testing::temp_dir("broken");
    {  // a shard the index names is gone
        const auto config =
            config_with<GPTJ>("n_layer=3,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16");
        const auto m = untrained<GPTJ>(config, {}, 1, Needs{{0, 3}, true, true});
        save_safetensors(m, dir / "gptj", {.max_shard_bytes = tensor_bytes(m.named_tensors()) / 4 + 1});
        const auto shards = shard_files(dir / "gptj");
        const auto gone = *std::next(shards.begin());
        std::filesystem::remove(dir / "gptj" / gone);
        BOOST_CHECK_EXCEPTION(load<GPTJ>(dir / "gptj"), Error, says("shard " + gone));
    }
    {  // the config says 16 positions, the weights were saved for 12
        const auto m = untrained<Mixer>(config_with<Mixer>(mixer_small), {}, 1, Needs{{0, 2}, true, true});
        save_safetensors(m, dir / "mixer");
        auto json = read_config(dir / "mixer");
        json["context_length"] = 16;
        std::ofstream(dir / "mixer" / "config.json") << json.dump();
        BOOST_CHECK_EXCEPTION(
            load<Mixer>(dir / "mixer"), Error,
            says("tensor \"mixerblocks.0.conv.weight\" has shape [12, 12, 1] but the config implies [16, 16, 1]"));
    }
    {  // a folder below a file, a file in a folder that does not exist
        testing::write_file(dir / "a-file", "x");
        const auto m = untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=16,n_head=2,vocab_size=40,n_positions=8"),
                                       {}, 1, Needs{{0, 1}, true, true});
        BOOST_CHECK_EXCEPTION(save_safetensors(m, dir / "a-file" / "model"), Error, says("cannot create the folder"));
        BOOST_CHECK_EXCEPTION(write_safetensors(dir / "nowhere" / "model.safetensors", m.named_tensors()), Error,
                              says("nowhere/model.safetensors: cannot write"));
        BOOST_CHECK_EXCEPTION(
            write_safetensors(dir / "twice.safetensors", {{"a", at::zeros({2})}, {"a", at::zeros({2}, at::kDouble)}}),
            Error, says("tensor \"a\" is given twice"));
        BOOST_TEST(!std::filesystem::exists(dir / "twice.safetensors"));
    }
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
