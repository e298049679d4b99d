// The Llama family against llama2.c's own forward pass (stories260K through both loaders), the
// parts stories260K does not exercise (sliding window, GQA equivalence, llama3 RoPE scaling,
// bidirectional context), the llama2.c and SentencePiece tokenizers, and bad input.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numbers>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <inputrep/inputrep.hpp>
#include <inputrep/io/llama2c.hpp>
#include <inputrep/model/llama.hpp>
#include <inputrep/search/generate.hpp>
#include <inputrep/tokenizer/llama2c.hpp>
#include <inputrep/tokenizer/sentencepiece.hpp>

#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;
using testing::slurp;
using Ids = std::vector<std::int64_t>;

namespace {

namespace fs = std::filesystem;

// logits[t] over the vocabulary for `tokens`, and the greedy continuation of BOS, both from
// llama2.c's run.c on stories260K.bin.
struct StoriesReference {
    Ids tokens, greedy;
    at::Tensor logits;  // [T, V]
};

const StoriesReference& stories_reference() {
    static const StoriesReference ref = [] {
        auto json = read_json(testing::shared("reference/stories260K_logits.json"));
        StoriesReference r{json.at("tokens").get<Ids>(), json.at("greedy_from_bos").get<Ids>(), {}};
        std::vector<at::Tensor> rows;
        for (const auto& row : json.at("logits")) rows.push_back(at::tensor(row.get<std::vector<float>>()));
        r.logits = at::stack(rows);
        return r;
    }();
    return ref;
}

void check_against_run_c(const Llama& model) {
    const auto& ref = stories_reference();
    ActivationCache cache;
    auto logits = model.run_with_cache(at::tensor(ref.tokens, at::kLong).unsqueeze(0), cache)[0];
    BOOST_TEST_REQUIRE(logits.sizes() == ref.logits.sizes());
    for (std::int64_t t = 0; t < logits.size(0); ++t) {
        BOOST_TEST_INFO("position " << t);
        BOOST_TEST((logits[t] - ref.logits[t]).abs().max().item<double>() < 1e-4);
    }
    // The hook points add up: resid_mid = resid_pre + attn_out, resid_post = resid_mid + mlp_out.
    for (int i = 0; i < model.depth(); ++i) {
        const auto n = "blocks." + std::to_string(i) + ".";
        BOOST_TEST(at::allclose(cache[n + "hook_resid_mid"], cache[n + "hook_resid_pre"] + cache[n + "hook_attn_out"]));
        BOOST_TEST(at::allclose(cache[n + "hook_resid_post"], cache[n + "hook_resid_mid"] + cache[n + "hook_mlp_out"]));
    }
    BOOST_TEST_REQUIRE(ref.greedy.size() > 1u);
    const auto greedy = generate(model, {ref.greedy.front()}, static_cast<int>(ref.greedy.size() - 1));
    BOOST_TEST(greedy == ref.greedy, boost::test_tools::per_element());
}

Needs everything(int depth) { return {{0, depth}, true, true}; }

// Tensors by name, the smallest TensorSource: lets a test build a model from edited weights.
struct TensorMap {
    std::map<std::string, at::Tensor> tensors;
    at::Tensor load(const std::string& name, const Placement&, at::IntArrayRef shape) const {
        const auto& t = tensors.at(name);
        require(t.sizes() == shape, name, ": shape mismatch");
        return t;
    }
};

LlamaConfig small(std::string overrides = "") {
    return config_with<Llama>(
        "num_hidden_layers=1,hidden_size=64,num_attention_heads=4,intermediate_size=128,vocab_size=100" +
        (overrides.empty() ? "" : "," + overrides));
}

// The largest |Δ| at each position of two [1, T, d] outputs.
std::vector<double> per_position_difference(const at::Tensor& a, const at::Tensor& b) {
    auto d = (a - b).abs().amax({0, 2});
    return {d.data_ptr<float>(), d.data_ptr<float>() + d.numel()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// SentencePiece's own command-line tools (Debian package `sentencepiece`) train the models and
// produce the reference ids: libsentencepiece itself cannot share a process with libtorch.
void shell(const std::string& command, const fs::path& log) {
    const int status = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
    BOOST_TEST_REQUIRE(
        status == 0,
        "`" << command << "` failed (exit status " << status << "): " << slurp(log)
            << "\nThe SentencePiece command-line tools come with scripts/setup (apt package sentencepiece).");
}

fs::path train_sentencepiece(const fs::path& dir, const std::string& name, const std::string& options) {
    const auto corpus = dir / "corpus.txt";
    if (!fs::exists(corpus)) {
        const std::vector<std::string> who{"the cat",   "the dog", "a bird",     "the old man",
                                           "my sister", "Lily",    "Tom and Ben"},
            did{"sat on", "looked at", "ran to", "jumped over", "was happy with"},
            what{"the mat", "the red house", "a tree", "the river", "the moon", "a big ball"};
        std::ofstream out(corpus);
        for (std::size_t i = 0; i < 500; ++i)
            out << who[i % who.size()] << ' ' << did[(i / 7) % did.size()] << ' ' << what[(i / 3) % what.size()]
                << ", number " << i << (i % 4 == 0 ? " [NUM] !" : ".") << '\n';
    }
    shell("spm_train --input='" + corpus.string() + "' --model_prefix='" + (dir / name).string() +
              "' --model_type=bpe " + options,
          dir / (name + ".train.log"));
    return dir / (name + ".model");
}

std::vector<Ids> spm_encode(const fs::path& model, const std::vector<std::string>& texts) {
    const auto in = model.parent_path() / "texts.txt", out = model.parent_path() / "ids.txt";
    {
        std::ofstream f(in, std::ios::binary);
        for (const auto& t : texts) f << t << '\n';
    }
    shell("spm_encode --model='" + model.string() + "' --output_format=id --input='" + in.string() + "' --output='" +
              out.string() + "'",
          model.parent_path() / "encode.log");
    std::vector<Ids> ids;
    std::ifstream f(out);
    for (std::string line; std::getline(f, line);) {
        std::istringstream s(line);
        ids.emplace_back(std::istream_iterator<std::int64_t>(s), std::istream_iterator<std::int64_t>());
    }
    return ids;
}

std::vector<std::string> spm_decode(const fs::path& model, const std::vector<Ids>& ids) {
    const auto in = model.parent_path() / "decode_in.txt", out = model.parent_path() / "decode_out.txt";
    {
        std::ofstream f(in);
        for (const auto& line : ids) {
            for (std::size_t i = 0; i < line.size(); ++i) f << (i ? " " : "") << line[i];
            f << '\n';
        }
    }
    shell("spm_decode --model='" + model.string() + "' --input_format=id --input='" + in.string() + "' --output='" +
              out.string() + "'",
          model.parent_path() / "decode.log");
    std::vector<std::string> texts;
    std::ifstream f(out, std::ios::binary);
    for (std::string line; std::getline(f, line);) texts.push_back(line);
    return texts;
}

// Seen and unseen words, characters outside the vocabulary, runs of spaces, a user-defined
// symbol, a malformed byte.
const std::vector<std::string> spm_texts{"the cat sat on the mat.",
                                         "my sister ran to the river, number 12.",
                                         "Tom and Ben was happy with a big ball [NUM] !",
                                         "zebras quantum xylophone",
                                         "über café €5 日本",
                                         "the  cat   sat",
                                         "  leading and trailing  ",
                                         "a\ttab",
                                         "[NUM][NUM]x[NUM]",
                                         "bad \xff byte",
                                         "?",
                                         ""};

void check_against_spm(const fs::path& model) {
    auto sp = SentencePiece::from_file(model);
    const auto reference = spm_encode(model, spm_texts);
    BOOST_TEST_REQUIRE(reference.size() == spm_texts.size());
    std::vector<Ids> ours;
    for (std::size_t i = 0; i < spm_texts.size(); ++i) {
        BOOST_TEST_INFO("text \"" << spm_texts[i] << "\"");
        ours.push_back(sp.encode(spm_texts[i]));
        BOOST_TEST(ours.back() == reference[i], boost::test_tools::per_element());
    }
    const auto decoded = spm_decode(model, reference);
    BOOST_TEST_REQUIRE(decoded.size() == reference.size());
    for (std::size_t i = 0; i < reference.size(); ++i) {
        BOOST_TEST_INFO("ids of \"" << spm_texts[i] << "\"");
        BOOST_TEST(sp.decode(reference[i]) == decoded[i]);
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(llama)

BOOST_AUTO_TEST_CASE(stories260K_llama2c_file_matches_run_c) {
    auto bin = testing::shared("models/stories260K/stories260K.bin");
    auto model = Llama::load(bin, {}, everything(5));
    BOOST_TEST(model.config().kv_heads() == 4);
    BOOST_TEST(model.config().tie_word_embeddings);
    check_against_run_c(model);
}

BOOST_AUTO_TEST_CASE(stories260K_hf_folder_matches_run_c) {
    check_against_run_c(load<Llama>(testing::shared("models/stories260K/hf")));
}

// The folder holds the same weights with q/k permuted to rotate-half: the llama2.c reader's
// permutation must reproduce it bit for bit.
BOOST_AUTO_TEST_CASE(both_loaders_give_the_same_tensors) {
    auto from_bin =
        Llama::load(testing::shared("models/stories260K/stories260K.bin"), {}, everything(5)).named_tensors();
    auto from_hf = load<Llama>(testing::shared("models/stories260K/hf")).named_tensors();
    BOOST_TEST_REQUIRE(from_bin.size() == from_hf.size());
    BOOST_TEST(from_bin.size() == 1u + 5 * 9 + 1);  // embedding, 5 blocks of 9, final norm; the head is tied
    for (std::size_t i = 0; i < from_bin.size(); ++i) {
        BOOST_TEST_INFO(from_bin[i].first);
        BOOST_TEST(from_bin[i].first == from_hf[i].first);
        BOOST_TEST(at::equal(from_bin[i].second, from_hf[i].second));
    }
}

// export.py's v1 layout, written here from the HF folder with q/k turned back into Meta's
// interleaved order, must read back as the same tensors.
BOOST_AUTO_TEST_CASE(llama2c_v1_file_reads_like_the_hf_folder) {
    auto hf = load<Llama>(testing::shared("models/stories260K/hf"));
    const auto named = hf.named_tensors();
    const std::map<std::string, at::Tensor> t(named.begin(), named.end());
    const auto& c = hf.config();
    std::string file(256, '\0');
    const std::int32_t header[] = {0x616b3432,
                                   1,
                                   std::int32_t(c.hidden_size),
                                   std::int32_t(c.intermediate_size),
                                   std::int32_t(c.num_hidden_layers),
                                   std::int32_t(c.num_attention_heads),
                                   std::int32_t(c.kv_heads()),
                                   std::int32_t(c.vocab_size),
                                   std::int32_t(c.max_position_embeddings)};
    std::memcpy(file.data(), header, sizeof header);
    file[sizeof header] = 1;  // shared classifier
    auto put = [&](const at::Tensor& x) {
        auto y = x.contiguous();
        file.append(static_cast<const char*>(y.data_ptr()), y.numel() * sizeof(float));
    };
    auto meta = [](const at::Tensor& w, std::int64_t heads) {  // rotate-half rows back to interleaved pairs
        return w.view({heads, 2, w.size(0) / heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes());
    };
    auto each_layer = [&](const std::string& suffix, auto&& f) {
        for (int i = 0; i < c.layers(); ++i) put(f(t.at("model.layers." + std::to_string(i) + "." + suffix)));
    };
    auto same = [](const at::Tensor& w) { return w; };
    each_layer("input_layernorm.weight", same);
    each_layer("post_attention_layernorm.weight", same);
    put(t.at("model.norm.weight"));
    put(t.at("model.embed_tokens.weight"));
    each_layer("self_attn.q_proj.weight", [&](const at::Tensor& w) { return meta(w, c.num_attention_heads); });
    each_layer("self_attn.k_proj.weight", [&](const at::Tensor& w) { return meta(w, c.kv_heads()); });
    for (auto suffix : {"self_attn.v_proj.weight", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
                        "mlp.down_proj.weight", "mlp.up_proj.weight"})
        each_layer(suffix, same);
    auto dir = testing::temp_dir("llama2c-v1");
    write_bytes(dir / "v1.bin", file);
    auto v1 = Llama::load(dir / "v1.bin", {}, everything(c.layers())).named_tensors();
    BOOST_TEST_REQUIRE(v1.size() == t.size());
    for (const auto& [name, x] : v1) {
        BOOST_TEST_INFO(name);
        BOOST_TEST(at::equal(x, t.at(name)));
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_slice_loads_only_its_blocks) {
    auto check = [](const std::set<std::string>& loaded) {
        BOOST_TEST(loaded.size() == 10u);  // 9 tensors of block 1 and the embedding
        for (const auto& name : loaded) {
            BOOST_TEST_INFO(name);
            BOOST_TEST((name.starts_with("model.layers.1.") || name == "model.embed_tokens.weight"));
        }
    };
    auto folder = testing::shared("models/stories260K/hf");
    auto ckpt = Checkpoint::open(folder);
    auto model = Llama::load(LlamaConfig::from_json(read_config(folder)), ckpt, {}, Needs{{1, 2}, true, false});
    check(ckpt.loaded());
    auto bin = Llama2cCheckpoint::open(testing::shared("models/stories260K/stories260K.bin"));
    Llama::load(LlamaConfig::from_json(bin.config()), bin, {}, Needs{{1, 2}, true, false});
    check(bin.loaded());
    BOOST_CHECK_EXCEPTION(model.block(0, at::zeros({1, 2, 64}), model.context(2, true)), Error,
                          says("block 0 was not loaded"));
    BOOST_CHECK_EXCEPTION(model.unembed(at::zeros({1, 2, 64})), Error, says("model.norm was not loaded"));
}

BOOST_AUTO_TEST_CASE(untrained_llama_is_seeded_and_independent_of_the_blocks_built) {
    auto config = config_with<Llama>(
        "num_hidden_layers=3,hidden_size=32,num_attention_heads=4,intermediate_size=64,vocab_size=100");
    auto a = untrained<Llama>(config, {}, 7, everything(3));
    auto b = untrained<Llama>(config, {}, 7, Needs{{2, 3}, true, false});
    auto c = untrained<Llama>(config, {}, 8, Needs{{2, 3}, true, false});
    auto x = at::randn({1, 5, 32});
    auto ctx = a.context(5, true);
    BOOST_TEST(at::equal(a.block(2, x, ctx), b.block(2, x, ctx)));
    BOOST_TEST(!at::equal(a.block(2, x, ctx), c.block(2, x, ctx)));
    const auto tensors = b.named_tensors();
    BOOST_TEST(tensors.size() == 10u);
    for (const auto& [name, t] : tensors) {
        BOOST_TEST_INFO(name);
        if (name.ends_with("norm.weight"))
            BOOST_TEST(at::equal(t, at::ones_like(t)));
        else
            BOOST_TEST(std::abs(t.std().item<double>() - 0.02) < 0.002);
    }
    // Untied by default: the head is its own tensor.
    BOOST_TEST(a.named_tensors().back().first == "lm_head.weight");
}

BOOST_AUTO_TEST_CASE(config_round_trips_and_reads_mistral_defaults) {
    auto config =
        small("num_key_value_heads=2,head_dim=32,rms_norm_eps=1e-5,rope_theta=500000,tie_word_embeddings=true");
    auto again = LlamaConfig::from_json(config.to_json());
    BOOST_TEST(again.to_json() == config.to_json());
    BOOST_TEST(again.kv_heads() == 2);
    BOOST_TEST(again.head_size() == 32);
    auto json = config.to_json();
    json["model_type"] = "mistral";
    json.erase("sliding_window");
    BOOST_TEST(LlamaConfig::from_json(json).sliding_window.value_or(0) == 4096);  // MistralConfig's default
    json["sliding_window"] = nullptr;
    BOOST_TEST(!LlamaConfig::from_json(json).sliding_window.has_value());
    BOOST_CHECK_EXCEPTION(small("sliding_window=3"), Error, says("sliding_window is a Mistral setting"));
    BOOST_CHECK_EXCEPTION(small("num_key_value_heads=3"), Error, says("must be a multiple of num_key_value_heads (3)"));
    BOOST_CHECK_EXCEPTION(small("model_type=gpt2"), Error, says("model_type \"gpt2\" is not a Llama-family model"));
}

// HF's rule: query q sees key k when q−W < k ≤ q. Positions below W see all their keys either way.
BOOST_AUTO_TEST_CASE(sliding_window_changes_exactly_the_positions_it_cuts) {
    const std::int64_t W = 3, T = 7;
    auto windowed = untrained<Llama>(small("model_type=mistral,sliding_window=3"), {}, 1, Blocks<0, 1>{});
    auto full = untrained<Llama>(small("model_type=mistral"), {}, 1, Blocks<0, 1>{});
    BOOST_TEST(!full.config().sliding_window.has_value());
    auto ctx = windowed.context(T, true);
    BOOST_TEST_REQUIRE(ctx.mask.defined());
    for (std::int64_t q = 0; q < T; ++q)
        for (std::int64_t k = 0; k < T; ++k) {
            BOOST_TEST_INFO("query " << q << ", key " << k);
            BOOST_TEST(std::isfinite(ctx.mask[q][k].item<float>()) == (q - W < k && k <= q));
        }
    auto x = at::randn({1, T, 64});
    auto diff = per_position_difference(windowed.block(0, x, ctx), full.block(0, x, full.context(T, true)));
    for (std::int64_t t = 0; t < T; ++t) {
        BOOST_TEST_INFO("position " << t);
        if (t < W)
            BOOST_TEST(diff[t] < 1e-6);
        else
            BOOST_TEST(diff[t] > 1e-4);
    }
}

// Bidirectional drops only the causal part: every later key is seen, the window still bounds how
// far back a query looks.
BOOST_AUTO_TEST_CASE(bidirectional_context_sees_later_tokens) {
    const std::int64_t T = 6;
    auto plain = untrained<Llama>(small(), {}, 2, Blocks<0, 1>{});
    BOOST_TEST(!plain.context(T, false).mask.defined());
    auto x = at::randn({1, T, 64});
    auto y = x.clone();
    y[0][T - 1] += 1.0;
    auto causal =
        per_position_difference(plain.block(0, x, plain.context(T, true)), plain.block(0, y, plain.context(T, true)));
    auto both =
        per_position_difference(plain.block(0, x, plain.context(T, false)), plain.block(0, y, plain.context(T, false)));
    BOOST_TEST(causal[0] == 0.0);
    BOOST_TEST(both[0] > 1e-4);

    auto windowed = untrained<Llama>(small("model_type=mistral,sliding_window=2"), {}, 2, Blocks<0, 1>{});
    auto z = x.clone();
    z[0][0] += 1.0;  // seen by queries 0 and 1 only
    auto ctx = windowed.context(T, false);
    auto diff = per_position_difference(windowed.block(0, x, ctx), windowed.block(0, z, ctx));
    for (std::int64_t t = 0; t < T; ++t) {
        BOOST_TEST_INFO("position " << t);
        if (t < 2)
            BOOST_TEST(diff[t] > 1e-4);
        else
            BOOST_TEST(diff[t] == 0.0);
    }
}

// The seed's ablations, chosen through the context: without the MLP a block stops at the
// residual stream after attention; without that residual too it is the attention sub-layer.
BOOST_AUTO_TEST_CASE(block_variants_stop_where_the_hook_points_are) {
    auto model = untrained<Llama>(small(), {}, 6, Needs{{0, 1}, true, false});
    auto ids = at::tensor(Ids{4, 8, 15, 16, 23, 42}, at::kLong).unsqueeze(0);
    ActivationCache cache;
    model.run_with_cache(ids, cache);
    const auto x = cache["blocks.0.hook_resid_pre"];
    auto run = [&](BlockVariant v) { return model.block(0, x, model.context(6, true, v)); };
    BOOST_TEST(at::allclose(run({.mlp = false}), cache["blocks.0.hook_resid_mid"]));
    BOOST_TEST(at::allclose(run({.attention_residual = false, .mlp = false}), cache["blocks.0.hook_attn_out"]));
    BOOST_TEST(at::allclose(run({}), cache["blocks.0.hook_resid_post"]));
    BOOST_TEST(!at::allclose(run({.norms = false}), cache["blocks.0.hook_resid_post"]));
}

// kv head j serves query heads j·g..j·g+g−1: the same model written as plain multi-head attention,
// each kv head repeated g times in place, gives the same outputs; repeated in the wrong order, not.
BOOST_AUTO_TEST_CASE(grouped_query_attention_equals_repeated_kv_heads) {
    const std::int64_t H = 8, KV = 2, g = H / KV, hd = 8, d = 64;
    auto gqa = untrained<Llama>(small("num_attention_heads=8,num_key_value_heads=2"), {}, 3, Needs{{0, 1}, true, true});
    auto build_mha = [&](bool interleave) {
        TensorMap map;
        for (auto [name, t] : gqa.named_tensors()) {
            if (name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight")) {
                BOOST_TEST_REQUIRE(t.sizes() == (at::IntArrayRef{KV * hd, d}));
                auto heads = t.view({KV, hd, d});
                t = (interleave ? heads.repeat_interleave(g, 0) : heads.repeat({g, 1, 1})).reshape({H * hd, d});
            }
            map.tensors[name] = t;
        }
        return Llama::load(small("num_attention_heads=8"), map, {}, Needs{{0, 1}, true, true});
    };
    auto ids = at::tensor(Ids{5, 17, 3, 99, 42, 8}, at::kLong).unsqueeze(0);
    ActivationCache a, b, c;
    auto reference = gqa.run_with_cache(ids, a);
    BOOST_TEST((build_mha(true).run_with_cache(ids, b) - reference).abs().max().item<double>() < 1e-5);
    BOOST_TEST((build_mha(false).run_with_cache(ids, c) - reference).abs().max().item<double>() > 1e-3);
}

BOOST_AUTO_TEST_CASE(llama3_rope_scaling_rewrites_the_frequencies) {
    // head size 16 and θ 5e5: wavelengths 2π·θ^(2i/16) fall below 8192/4, between, and above 8192/1.
    Json json = small("rope_theta=500000").to_json();
    auto plain_config = LlamaConfig::from_json(json);
    json["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
    auto scaled_config = LlamaConfig::from_json(json);
    const auto plain = plain_config.rope_frequencies(), scaled = scaled_config.rope_frequencies();
    BOOST_TEST_REQUIRE(scaled.size() == 8u);
    auto theta_power = [](int i) { return std::pow(500000.0, -2.0 * i / 16); };
    BOOST_TEST(plain[4] == theta_power(4), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(scaled[0] == theta_power(0), boost::test_tools::tolerance(1e-12));      // wavelength 2π: kept
    BOOST_TEST(scaled[7] == theta_power(7) / 8, boost::test_tools::tolerance(1e-12));  // wavelength 6e5: stretched
    const double wavelength = 2 * std::numbers::pi / theta_power(4);                   // 4443: blended
    const double s = (8192 / wavelength - 1) / (4 - 1);
    BOOST_TEST(scaled[4] == (1 - s) * theta_power(4) / 8 + s * theta_power(4), boost::test_tools::tolerance(1e-12));

    // A short original context moves the highest frequency too (wavelength 2π lies between 16/4
    // and 16/1), enough to show at a few positions. Position 0 is not rotated, so it cannot change.
    json["rope_scaling"]["original_max_position_embeddings"] = 16;
    auto a = untrained<Llama>(plain_config, {}, 4, Blocks<0, 1>{});
    auto b = untrained<Llama>(LlamaConfig::from_json(json), {}, 4, Blocks<0, 1>{});
    auto x = at::randn({1, 5, 64});
    auto diff = per_position_difference(a.block(0, x, a.context(5, true)), b.block(0, x, b.context(5, true)));
    BOOST_TEST(diff[0] == 0.0);
    for (std::size_t t = 1; t < diff.size(); ++t) {
        BOOST_TEST_INFO("position " << t);
        BOOST_TEST(diff[t] > 1e-5);
    }
}

BOOST_AUTO_TEST_CASE(unknown_rope_type_is_rejected) {
    Json json = small().to_json();
    json["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    BOOST_CHECK_EXCEPTION(LlamaConfig::from_json(json), Error, says("rope_scaling type \"yarn\" is not supported"));
    json["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};  // the older key
    BOOST_CHECK_EXCEPTION(LlamaConfig::from_json(json), Error, says("rope_scaling type \"linear\" is not supported"));
    json["rope_scaling"] = {{"rope_type", "default"}};
    BOOST_TEST(!LlamaConfig::from_json(json).rope_scaling.has_value());
}

BOOST_AUTO_TEST_CASE(llama2c_file_shorter_than_its_header_says) {
    auto dir = testing::temp_dir("llama2c-truncated");
    const auto bytes = slurp(testing::shared("models/stories260K/stories260K.bin"));
    write_bytes(dir / "short.bin", bytes.substr(0, bytes.size() - 4));
    BOOST_CHECK_EXCEPTION(Llama::load(dir / "short.bin", {}, everything(5)), Error,
                          says("implies " + std::to_string(bytes.size()) + " bytes but the file has " +
                               std::to_string(bytes.size() - 4)));
    write_bytes(dir / "zip.bin", std::string("PK\x03\x04", 4) + std::string(60, '\0'));
    BOOST_CHECK_EXCEPTION(Llama::load(dir / "zip.bin", {}, everything(5)), Error, says("a PyTorch zip checkpoint"));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(wrong_tensor_shape_in_a_folder_names_the_tensor) {
    auto dir = testing::temp_dir("llama-shape");
    fs::copy_file(testing::shared("models/stories260K/hf/model.safetensors"), dir / "model.safetensors");
    auto config = read_config(testing::shared("models/stories260K/hf"));
    config["intermediate_size"] = 170;
    std::ofstream(dir / "config.json") << config.dump();
    BOOST_CHECK_EXCEPTION(
        load<Llama>(dir), Error,
        says("tensor \"model.layers.0.mlp.gate_proj.weight\" has shape [172, 64] but the config implies [170, 64]"));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(generate_refuses_to_exceed_the_context) {
    auto model = untrained<Llama>(small("max_position_embeddings=8"), {}, 5, Needs{{0, 1}, true, true});
    BOOST_TEST(generate(model, {1, 2, 3}, 5).size() == 8u);
    BOOST_CHECK_EXCEPTION(generate(model, {1, 2, 3}, 6), Error,
                          says("3 prompt tokens and 6 new ones exceed the model's context of 8"));
    BOOST_CHECK_EXCEPTION(generate(model, {}, 1), Error, says("the prompt is empty"));
}

// A vocabulary built so every encoding follows by hand from run.c's rules.
BOOST_AUTO_TEST_CASE(llama2c_tokenizer_encodes_and_decodes_like_run_c) {
    auto dir = testing::temp_dir("llama2c-tokenizer");
    std::vector<std::pair<std::string, float>> vocab{{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        vocab.emplace_back(hex, 0.0f);
    }
    // Ids 259..269 in order.
    const std::int64_t space = 259, l = 262, e_acute = 264, he = 266, space_hell = 268, lo = 269;
    for (auto [piece, score] : std::vector<std::pair<std::string, float>>{{" ", -100},
                                                                          {"h", -100},
                                                                          {"e", -100},
                                                                          {"l", -100},
                                                                          {"o", -100},
                                                                          {"é", -100},
                                                                          {"ll", -1},
                                                                          {"he", -2},
                                                                          {"hell", -3},
                                                                          {" hell", -4},
                                                                          {"lo", -0.5}})
        vocab.emplace_back(piece, score);
    std::string file(4, '\0');
    std::int32_t max_length = 6;
    std::memcpy(file.data(), &max_length, 4);
    for (auto& [piece, score] : vocab) {
        std::int32_t n = static_cast<std::int32_t>(piece.size());
        file.append(reinterpret_cast<const char*>(&score), 4)
            .append(reinterpret_cast<const char*>(&n), 4)
            .append(piece);
    }
    write_bytes(dir / "tokenizer.bin", file);
    const auto V = static_cast<std::int64_t>(vocab.size());
    auto tok = Llama2cTokenizer::from_file(dir / "tokenizer.bin", V);
    BOOST_TEST(tok.vocab_size() == V);
    BOOST_TEST(tok.piece(space_hell) == " hell");

    // "hell": ll (−1) merges before he (−2), then hell, then " hell".
    BOOST_TEST(tok.encode("hell") == (Ids{space_hell}), boost::test_tools::per_element());
    // "hello": lo (−0.5) wins first and leaves l stranded: no further piece contains it.
    BOOST_TEST(tok.encode("hello") == (Ids{space, he, l, lo}), boost::test_tools::per_element());
    // é is one code point in the vocabulary; € (E2 82 AC) falls back to its bytes.
    BOOST_TEST(tok.encode("é€") == (Ids{space, e_acute, 0xE2 + 3, 0x82 + 3, 0xAC + 3}),
               boost::test_tools::per_element());
    BOOST_TEST(tok.encode("hell", true, true) == (Ids{1, space_hell, 2}), boost::test_tools::per_element());
    BOOST_TEST(tok.encode("").empty());
    BOOST_TEST(tok.encode("", true) == (Ids{1}), boost::test_tools::per_element());

    BOOST_TEST(tok.decode(Ids{space_hell}) == " hell");
    BOOST_TEST(tok.decode(Ids{1, space_hell, 2}) == "hell");  // the space after BOS goes, BOS/EOS print nothing
    BOOST_TEST(tok.decode(tok.encode("é€")) == " é€");
    BOOST_CHECK_EXCEPTION(tok.decode(Ids{V}), Error,
                          says("token id " + std::to_string(V) + " is outside the vocabulary"));

    Tokenizer erased = tok;
    BOOST_TEST(erased.encode("hello") == tok.encode("hello"), boost::test_tools::per_element());

    BOOST_CHECK_EXCEPTION(Llama2cTokenizer::from_file(dir / "tokenizer.bin", V + 1), Error,
                          says("ends inside token " + std::to_string(V)));
    BOOST_CHECK_EXCEPTION(Llama2cTokenizer::from_file(dir / "tokenizer.bin", V - 1), Error,
                          says("is vocab_size " + std::to_string(V - 1) + " right?"));
    BOOST_CHECK_EXCEPTION(Llama2cTokenizer::from_file(dir / "none.bin", V), Error, says("no such llama2.c tokenizer"));
    fs::remove_all(dir);
}

// Llama's settings: BPE, byte fallback, identity normalisation, spaces kept as they are.
BOOST_AUTO_TEST_CASE(sentencepiece_llama_style_model_matches_spm_encode) {
    auto dir = testing::temp_dir("sentencepiece-llama");
    const auto model = train_sentencepiece(dir, "llama",
                                           "--vocab_size=400 --byte_fallback=true --normalization_rule_name=identity "
                                           "--remove_extra_whitespaces=false --character_coverage=1.0");
    check_against_spm(model);

    auto sp = SentencePiece::from_file(model);
    BOOST_TEST(sp.vocab_size() == 400);
    BOOST_TEST(sp.piece(sp.bos_id()) == "<s>");
    BOOST_TEST(sp.piece(sp.eos_id()) == "</s>");
    const std::string text = "the cat sat on the mat.";
    const auto ids = sp.encode(text);
    BOOST_TEST(ids.front() != sp.bos_id());  // no BOS unless asked
    auto with = sp.encode(text, true, true);
    BOOST_TEST(with.front() == sp.bos_id());
    BOOST_TEST(with.back() == sp.eos_id());
    BOOST_TEST(Ids(with.begin() + 1, with.end() - 1) == ids, boost::test_tools::per_element());
    BOOST_TEST(sp.decode(with) == text);
    BOOST_TEST(sp.decode(sp.encode("über café €5")) == "über café €5");  // bytes of characters outside the vocabulary
    BOOST_CHECK_EXCEPTION(sp.decode(Ids{400}), Error, says("token id 400 is outside the vocabulary of 400"));

    Tokenizer erased = sp;
    BOOST_TEST(erased.encode(text) == ids, boost::test_tools::per_element());
    fs::remove_all(dir);
}

// SentencePiece's defaults otherwise: extra spaces removed, <unk> instead of bytes, plus a
// user-defined symbol that never merges.
BOOST_AUTO_TEST_CASE(sentencepiece_unk_and_user_symbols_match_spm_encode) {
    auto dir = testing::temp_dir("sentencepiece-unk");
    check_against_spm(train_sentencepiece(
        dir, "unk", "--vocab_size=200 --normalization_rule_name=identity --user_defined_symbols=[NUM]"));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(sentencepiece_bad_model_files) {
    auto dir = testing::temp_dir("sentencepiece-bad");
    BOOST_CHECK_EXCEPTION(SentencePiece::from_file(dir / "missing.model"), Error,
                          says("missing.model: no such SentencePiece model file"));
    write_bytes(dir / "garbage.model", "this is not a protobuf");
    BOOST_CHECK_EXCEPTION(SentencePiece::from_file(dir / "garbage.model"), Error,
                          says("garbage.model: not a SentencePiece model"));
    const auto unigram = train_sentencepiece(dir, "unigram", "--vocab_size=150 --model_type=unigram");
    BOOST_CHECK_EXCEPTION(SentencePiece::from_file(unigram), Error,
                          says("a unigram SentencePiece model; only BPE models"));
    const auto nfkc = train_sentencepiece(dir, "nfkc", "--vocab_size=150");
    BOOST_CHECK_EXCEPTION(SentencePiece::from_file(nfkc), Error,
                          says("normalization rule \"nmt_nfkc\" is not supported"));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
