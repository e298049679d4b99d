// The family skeleton (model/family.hpp): every family's hook points against its own forward pass,
// slices that end at a hook point, the worked example family of docs/extending.md, config checks,
// memory estimates, token-id checks and trainable parameters.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <fstream>

#include <inputrep/inputrep.hpp>

#include "attn_only.hpp"
#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;

namespace {

at::Tensor random_ids(std::int64_t vocab, std::int64_t length, std::uint64_t seed, std::int64_t batch = 2) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(vocab, {batch, length}, gen, at::kLong);
}

bool close(const at::Tensor& a, const at::Tensor& b) {
    return a.sizes() == b.sizes() && at::allclose(a, b, 1e-5, 1e-5);
}

// What a family's blocks hold: GPT-J's parallel block has no resid_mid, the attention-only example
// neither resid_mid nor mlp_out.
struct Shape {
    bool resid_mid = true, mlp_out = true, pos_embed = false, final_norm = true;
};

std::vector<Hook> block_hooks(const Shape& s) {
    std::vector<Hook> h{Hook::resid_pre, Hook::attn_out};
    if (s.resid_mid) h.push_back(Hook::resid_mid);
    if (s.mlp_out) h.push_back(Hook::mlp_out);
    h.push_back(Hook::resid_post);
    return h;
}

// Every hook point of run_with_cache against the family's block calls: the names in the order
// produced; the embedding; resid_post of block i = blocks 0..i applied to the embedding;
// attn_out = the attention sub-layer run alone (its norm, no residual, no MLP); resid_mid =
// resid_pre + attn_out and resid_post = resid_mid + mlp_out; ln_final.hook_normalized is what the
// head turns into the logits, and is normalised; a slice ending at each point gives its entry.
template <class M>
void check_hooks(const M& m, const at::Tensor& ids, const Shape& s) {
    at::NoGradGuard no_grad;
    ActivationCache cache;
    const auto logits = m.run_with_cache(ids, cache);

    std::vector<std::string> expected{"hook_embed"};
    if (s.pos_embed) expected.push_back("hook_pos_embed");
    for (int i = 0; i < m.depth(); ++i)
        for (auto h : block_hooks(s)) expected.push_back(hook_name(i, h));
    if (s.final_norm) expected.push_back("ln_final.hook_normalized");
    std::vector<std::string> names;
    for (auto& [name, _] : cache.entries()) names.push_back(name);
    BOOST_TEST(names == expected, boost::test_tools::per_element());

    const auto T = ids.size(1);
    const auto ctx = m.context(T, true), attention_alone = m.context(T, true, {false, true, false});
    auto x = m.embed(ids);
    const auto embedded = s.pos_embed ? cache["hook_embed"] + cache["hook_pos_embed"] : cache["hook_embed"];
    BOOST_TEST(close(embedded, x));
    for (int i = 0; i < m.depth(); ++i) {
        BOOST_TEST_CONTEXT("block " << i) {
            auto at = [&](Hook h) { return cache[hook_name(i, h)]; };
            BOOST_TEST(close(at(Hook::resid_pre), x));
            BOOST_TEST(close(at(Hook::attn_out), m.block(i, x, attention_alone)));
            x = m.block(i, x, ctx);
            BOOST_TEST(close(at(Hook::resid_post), x));
            const auto mlp = s.mlp_out ? at(Hook::mlp_out) : at::zeros_like(x);
            if (s.resid_mid) {
                BOOST_TEST(close(at(Hook::resid_mid), at(Hook::resid_pre) + at(Hook::attn_out)));
                BOOST_TEST(close(at(Hook::resid_post), at(Hook::resid_mid) + mlp));
            } else {
                BOOST_TEST(close(at(Hook::resid_post), at(Hook::resid_pre) + at(Hook::attn_out) + mlp));
                BOOST_CHECK_EXCEPTION(apply_slice(SliceSpec::up_to({i, Hook::resid_mid}), m, m.embed(ids), ctx), Error,
                                      says("has no"));
            }
            for (auto h : block_hooks(s)) {
                if (i == 0 && h == Hook::resid_pre) continue;  // the embedding: a slice without blocks
                BOOST_TEST_INFO(hook_name(i, h));
                BOOST_TEST(
                    close(apply_slice(SliceSpec::up_to(parse_hook(hook_name(i, h))), m, m.embed(ids), ctx), at(h)));
            }
        }
    }
    BOOST_TEST(close(logits, m.unembed(x)));
    if (s.final_norm) {
        const auto h = cache["ln_final.hook_normalized"];
        BOOST_TEST(close(logits, m.head(h)));
        BOOST_TEST(!close(h, x));
    }
}

const char* gpt2_small = "n_layer=3,n_embd=32,n_head=4,vocab_size=100,n_positions=16";
const char* llama_gqa =
    "hidden_size=32,intermediate_size=48,num_hidden_layers=3,num_attention_heads=4,num_key_value_heads=2,vocab_size="
    "100,"
    "max_position_embeddings=16";
const char* mistral =
    "model_type=\"mistral\",sliding_window=3,hidden_size=32,intermediate_size=48,num_hidden_layers=3,"
    "num_attention_heads=4,num_key_value_heads=1,vocab_size=100,max_position_embeddings=16";
const char* gptj_small = "n_layer=3,n_embd=32,n_head=4,rotary_dim=4,vocab_size=100,n_positions=16";
const char* mixer_flat = "hidden_size=32,num_hidden_layers=3,context_length=9,vocab_size=100";
const char* mixer_expanded =
    "hidden_size=32,num_hidden_layers=3,context_length=9,vocab_size=100,token_mixing=expanded,expansion_factor=2,"
    "parallel_convolutions=2";

template <class M>
M everything(std::string_view overrides, std::uint64_t seed = 3) {
    const auto c = config_with<M>(overrides);
    return untrained<M>(c, {}, seed, Needs{{0, c.layers()}, true, true});
}

std::int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

std::uint64_t tensor_bytes(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    std::uint64_t n = 0;
    for (auto& [_, t] : tensors) n += t.numel() * t.element_size();
    return n;
}

// A slice ending inside attention outputs the cache entry with its heads side by side, both from
// the full forward and position by position (the incremental forward a KV-cache inversion runs):
// a prefix appended in two pieces, then candidates after each prompt's prefix.
template <class M>
void check_slice_inside_attention(const M& m, const at::Tensor& ids, HookPoint point, const at::Tensor& entry) {
    const auto B = ids.size(0), T = ids.size(1);
    const auto slice = SliceSpec::up_to(point);
    const auto full = apply_slice(slice, m, m.embed(ids), m.context(T, true, slice.variant()));
    BOOST_TEST(close(full, entry.flatten(2)));
    Incremental<M> inc(m, slice);
    const auto head = inc.append(ids.narrow(1, 0, T - 3));
    const auto tail = inc.append(ids.narrow(1, T - 3, 2));
    BOOST_TEST(close(at::cat({head, tail}, 1), full.narrow(1, 0, T - 1)));
    const auto owners = at::arange(B, at::kLong).repeat_interleave(2);
    const auto candidates = at::stack({ids.select(1, T - 1), ids.select(1, 0)}, 1).reshape({-1});
    const auto next = inc.extend(candidates, owners);
    BOOST_TEST(close(next.view({B, 2, -1}).select(1, 0), full.select(1, T - 1)));
}

// The points inside attention against each other and the block: the pattern is a causal softmax
// of q·kᵀ/√d_head plus the model's mask (rows sum to 1); z is the pattern times v, each query head
// reading its key/value head (grouped-query heads: h / group); z through the output projection
// `project` is attn_out. Asked for with "*", every other point is as the default cache has it, which
// holds nothing inside attention.
template <class M, class Project>
void check_attention_hooks(const M& m, const at::Tensor& ids, Project project) {
    at::NoGradGuard no_grad;
    ActivationCache plain, all(hook_patterns("*"));
    m.run_with_cache(ids, plain);
    m.run_with_cache(ids, all);
    for (const auto& [name, value] : plain.entries()) {
        BOOST_TEST(name.find(".attn.") == std::string::npos, name);
        BOOST_TEST(close(all[name], value), name);
    }
    const auto B = ids.size(0), T = ids.size(1);
    const auto mask = m.context(T, true, {}).mask;
    for (int i = 0; i < m.depth(); ++i) {
        BOOST_TEST_CONTEXT("block " << i) {
            auto at_ = [&](std::string_view n) {
                return all["blocks." + std::to_string(i) + ".attn." + std::string(n)];
            };
            const auto q = at_("hook_q"), k = at_("hook_k"), v = at_("hook_v"), pattern = at_("hook_pattern"),
                       z = at_("hook_z");
            const auto H = q.size(2), KV = k.size(2), hd = q.size(3), group = H / KV;
            BOOST_TEST((q.sizes() == at::IntArrayRef{B, T, H, hd} && k.sizes() == at::IntArrayRef{B, T, KV, hd} &&
                        v.sizes() == k.sizes() && pattern.sizes() == at::IntArrayRef{B, H, T, T} &&
                        z.sizes() == q.sizes()));
            const auto kq = k.repeat_interleave(group, 2), vq = v.repeat_interleave(group, 2);  // per query head
            auto scores = at::einsum("bthd,bshd->bhts", {q, kq}) / std::sqrt(double(hd));
            if (mask.defined()) scores = scores + mask;
            BOOST_TEST(close(at::softmax(scores, -1), pattern));
            BOOST_TEST(close(pattern.sum(-1), at::ones({B, H, T})));
            BOOST_TEST(pattern.triu(1).abs().max().template item<double>() == 0.0);
            BOOST_TEST(close(at::einsum("bhts,bshd->bthd", {pattern, vq}), z));
            BOOST_TEST(close(project(z.flatten(2), i), all[hook_name(i, Hook::attn_out)]));
            for (auto h : {Hook::attn_q, Hook::attn_k, Hook::attn_v, Hook::attn_z})
                BOOST_TEST_CONTEXT(hook_name(i, h)) check_slice_inside_attention(m, ids, {i, h}, all[hook_name(i, h)]);
        }
    }
}

// A weight by the end of its Hugging Face name.
template <class M>
at::Tensor weight(const M& m, const std::string& suffix) {
    for (const auto& [name, t] : m.named_tensors())
        if (name.ends_with(suffix)) return t;
    BOOST_FAIL("no tensor named ..." + suffix);
    return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hooks)

BOOST_AUTO_TEST_CASE(every_hook_point_of_every_family_matches_its_forward_pass) {
    const auto ids = random_ids(100, 9, 1);
    BOOST_TEST_CONTEXT("gpt2") check_hooks(everything<GPT2>(gpt2_small), ids, {.pos_embed = true});
    BOOST_TEST_CONTEXT("llama gqa") check_hooks(everything<Llama>(llama_gqa), ids, {});
    BOOST_TEST_CONTEXT("mistral") check_hooks(everything<Llama>(mistral), ids, {});
    BOOST_TEST_CONTEXT("gptj") check_hooks(everything<GPTJ>(gptj_small), ids, {.resid_mid = false});
    BOOST_TEST_CONTEXT("mixer flat") check_hooks(everything<Mixer>(mixer_flat), ids, {.final_norm = false});
    BOOST_TEST_CONTEXT("mixer expanded") check_hooks(everything<Mixer>(mixer_expanded), ids, {.final_norm = false});
    BOOST_TEST_CONTEXT("attn-only example")
    check_hooks(everything<example::AttnOnly>("n_layers=3,d_model=32"), ids,
                {.resid_mid = false, .mlp_out = false, .pos_embed = true});
}

BOOST_AUTO_TEST_CASE(the_points_inside_attention_are_what_attention_computes) {
    const auto ids = random_ids(100, 9, 3);
    auto linear = [](auto& m, std::string proj) {
        return
            [&m, proj](const at::Tensor& z, int i) { return at::linear(z, weight(m, "." + std::to_string(i) + proj)); };
    };
    const auto gpt2 = everything<GPT2>(gpt2_small);
    BOOST_TEST_CONTEXT("gpt2")
    check_attention_hooks(gpt2, ids, [&](const at::Tensor& z, int i) {
        const auto n = "." + std::to_string(i) + ".attn.c_proj.";
        return at::addmm(weight(gpt2, n + "bias"), z.flatten(0, 1), weight(gpt2, n + "weight"))
            .view({z.size(0), z.size(1), -1});
    });
    const auto llama = everything<Llama>(llama_gqa), window = everything<Llama>(mistral);
    BOOST_TEST_CONTEXT("llama gqa") check_attention_hooks(llama, ids, linear(llama, ".self_attn.o_proj.weight"));
    BOOST_TEST_CONTEXT("mistral window 3")
    check_attention_hooks(window, ids, linear(window, ".self_attn.o_proj.weight"));
    const auto gptj = everything<GPTJ>(gptj_small);
    BOOST_TEST_CONTEXT("gptj") check_attention_hooks(gptj, ids, linear(gptj, ".attn.out_proj.weight"));
    BOOST_CHECK_EXCEPTION(hook_patterns("blocks.0.attn.hook_k,"), Error, says("an empty pattern"));
    // Two points side by side, as invert --hook K,V compares them; a family without attention says so.
    ActivationCache kv(hook_patterns("blocks.1.attn.hook_[kv]"));
    llama.run_with_cache(ids, kv);
    const auto both = SliceSpec::up_to(parse_hooks("blocks.1.attn.hook_k,blocks.1.attn.hook_v"));
    BOOST_TEST((both.range() == BlockRange{0, 2}));
    BOOST_TEST(close(apply_slice(both, llama, llama.embed(ids), llama.context(9, true)),
                     at::cat({kv["blocks.1.attn.hook_k"].flatten(2), kv["blocks.1.attn.hook_v"].flatten(2)}, -1)));
    const auto mixer = everything<Mixer>(mixer_flat);
    BOOST_CHECK_EXCEPTION(apply_slice(SliceSpec::up_to(parse_hook("blocks.0.attn.hook_k")), mixer, mixer.embed(ids),
                                      mixer.context(9, true)),
                          Error, says("mixer has no blocks.0.attn.hook_k"));
    static_assert(UpTo<"blocks.2.attn.hook_v">::end == HookPoint{2, Hook::attn_v});
    BOOST_CHECK_EXCEPTION(parse_hook("blocks.0.attn.hook_pattern"), Error, says("not one output per position"));
}

// UpTo<"..."> parses its name at compile time; its output is the cache entry, and at resid_post
// (or the next block's resid_pre) it is exactly a Blocks<0, E> slice.
BOOST_AUTO_TEST_CASE(up_to_a_hook_point_is_that_cache_entry) {
    const auto m = everything<GPT2>(gpt2_small);
    const auto ids = random_ids(100, 7, 2);
    ActivationCache cache;
    m.run_with_cache(ids, cache);
    const auto x = m.embed(ids);
    const auto ctx = m.context(7, true);
    BOOST_TEST(at::equal(apply_slice(UpTo<"blocks.1.hook_resid_mid">{}, m, x, ctx), cache["blocks.1.hook_resid_mid"]));
    BOOST_TEST(at::equal(apply_slice(UpTo<"blocks.2.hook_attn_out">{}, m, x, ctx), cache["blocks.2.hook_attn_out"]));
    BOOST_TEST(at::equal(apply_slice(UpTo<"blocks.0.hook_mlp_out">{}, m, x, ctx), cache["blocks.0.hook_mlp_out"]));
    BOOST_TEST(
        at::equal(apply_slice(UpTo<"blocks.1.hook_resid_post">{}, m, x, ctx), apply_slice(Blocks<0, 2>{}, m, x, ctx)));
    BOOST_TEST(
        at::equal(apply_slice(UpTo<"blocks.2.hook_resid_pre">{}, m, x, ctx), apply_slice(Blocks<0, 2>{}, m, x, ctx)));
    // From a later block: the input is block 1's.
    const auto x1 = cache["blocks.1.hook_resid_pre"];
    BOOST_TEST(
        at::equal(apply_slice(UpTo<"blocks.2.hook_resid_mid", 1>{}, m, x1, ctx), cache["blocks.2.hook_resid_mid"]));
    static_assert(UpTo<"blocks.3.hook_resid_mid">{}.range() == BlockRange{0, 4});
    static_assert(UpTo<"blocks.3.hook_resid_pre">{}.range() == BlockRange{0, 3});
    static_assert(UpTo<"blocks.11.hook_resid_post">::static_end == 12);
    static_assert(parse_hook_point("blocks.12.hook_mlp_out").point == HookPoint{12, Hook::mlp_out});
    static_assert(parse_hook_point("blocks.x.hook_mlp_out").error != nullptr);
}

BOOST_AUTO_TEST_CASE(bad_hook_names_are_clear_errors) {
    BOOST_TEST(parse_hook("blocks.3.hook_resid_mid").block == 3);
    BOOST_CHECK_EXCEPTION(parse_hook("blocks.3.hook_resid_middle"), Error,
                          says("hook \"blocks.3.hook_resid_middle\": unknown hook point"));
    BOOST_CHECK_EXCEPTION(parse_hook("blocks..hook_attn_out"), Error, says("with a block number N"));
    BOOST_CHECK_EXCEPTION(parse_hook("hook_embed"), Error, says("a slice ends at a block's hook point"));
    BOOST_CHECK_EXCEPTION(parse_hook("blocks.0.hook_resid_pre"), Error, says("the embedding itself"));
    BOOST_CHECK_EXCEPTION(parse_hook("blocks.99999999.hook_attn_out"), Error, says("too large"));
    // Past the model's depth: a run-time error from the model (the static one is slice_fits_model's).
    const auto m = everything<GPT2>(gpt2_small);
    BOOST_CHECK_EXCEPTION(apply_slice(SliceSpec::up_to(parse_hook("blocks.5.hook_attn_out")), m,
                                      m.embed(random_ids(100, 4, 0)), m.context(4, true)),
                          Error, says("block 3 does not exist"));
}

// A slice that ends inside a block is inverted like any other (through autograd, as it is not a
// plain chain of whole blocks): untrained GPT-2 and Llama at width 64 recover the prompt exactly.
BOOST_AUTO_TEST_CASE(a_slice_ending_at_resid_mid_recovers_the_prompt) {
    const std::vector<std::int64_t> prompt{17, 4, 311, 92, 7, 250};
    {
        const auto c = config_with<GPT2>("n_layer=2,n_embd=64,n_head=4,vocab_size=400,n_positions=16");
        Experiment<GPT2, UpTo<"blocks.1.hook_resid_mid">> e(
            untrained<GPT2>(c, {}, 0, UpTo<"blocks.1.hook_resid_mid">{}));
        const auto r = e.run(prompt);
        BOOST_TEST_MESSAGE("gpt2 to blocks.1.hook_resid_mid: " << r.exact_tokens() << "/6, distance " << r.distance());
        BOOST_TEST(r.ids() == prompt, boost::test_tools::per_element());
    }
    {
        const auto c = config_with<Llama>(
            "hidden_size=64,intermediate_size=128,num_hidden_layers=2,num_attention_heads=4,vocab_size=400");
        Experiment<Llama, SliceSpec> e(untrained<Llama>(c, {}, 0, Needs{{0, 2}, true, false}),
                                       SliceSpec::up_to(parse_hook("blocks.1.hook_resid_mid")));
        const auto r = e.run(prompt);
        BOOST_TEST_MESSAGE("llama to blocks.1.hook_resid_mid: " << r.exact_tokens() << "/6, distance " << r.distance());
        BOOST_TEST(r.ids() == prompt, boost::test_tools::per_element());
    }
}

// The worked example of docs/extending.md: a family in one header saves, loads back and inverts.
BOOST_AUTO_TEST_CASE(the_example_family_round_trips_and_inverts) {
    using example::AttnOnly;
    const auto m = everything<AttnOnly>("d_vocab=300", 5);
    const auto named = m.named_tensors();
    BOOST_TEST(named.size() == 2 + 2 * 6 + 3u);
    BOOST_TEST(named.front().first == "embed.W_E");
    BOOST_TEST(m.named_tensors().back().first == "unembed.W_U");
    const auto dir = testing::temp_dir("attn-only");
    save_safetensors(m, dir);
    const auto back = AttnOnly::load(dir, {}, Needs{{0, 2}, true, true});
    const auto ids = random_ids(300, 8, 4);
    ActivationCache a, b;
    BOOST_TEST(at::equal(m.run_with_cache(ids, a), back.run_with_cache(ids, b)));
    std::filesystem::remove_all(dir);

    const std::vector<std::int64_t> prompt{3, 141, 59, 265, 35};
    Experiment<AttnOnly, UpTo<"blocks.1.hook_attn_out">> e(
        untrained<AttnOnly>(config_with<AttnOnly>("d_vocab=300"), {}, 5, UpTo<"blocks.1.hook_attn_out">{}));
    BOOST_TEST(e.run(prompt).ids() == prompt, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(docs_extending_quotes_the_example_family_verbatim) {
    const auto tests = std::filesystem::path(__FILE__).parent_path();
    auto read = [](const std::filesystem::path& p) {
        std::ifstream in(p);
        BOOST_REQUIRE_MESSAGE(in, "cannot read " << p);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const auto doc = read(tests.parent_path() / "docs/extending.md"), code = read(tests / "attn_only.hpp");
    BOOST_TEST(doc.find("```cpp\n" + code + "```") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(configs_are_validated_per_family) {
    auto rejects = [](auto make, std::string message) { BOOST_CHECK_EXCEPTION(make(), Error, says(message)); };
    rejects([] { return config_with<Llama>("num_key_value_heads=0"); }, "num_key_value_heads must be positive (got 0)");
    rejects([] { return config_with<Llama>("num_key_value_heads=3"); },
            "must be a multiple of num_key_value_heads (3)");
    rejects([] { return config_with<Llama>("num_attention_heads=3"); },
            "must be a multiple of num_attention_heads (3)");
    rejects([] { return config_with<Llama>("head_dim=0"); }, "head_dim must be positive (got 0)");
    rejects([] { return config_with<Llama>("hidden_size=-8"); }, "hidden_size must be positive (got -8)");
    rejects([] { return config_with<Llama>("num_hidden_layers=0"); }, "num_hidden_layers must be positive");
    rejects([] { return config_with<Llama>("rms_norm_eps=0"); }, "rms_norm_eps must be positive");
    rejects([] { return config_with<GPT2>("n_head=5"); }, "n_embd (768) must be a multiple of n_head (5)");
    rejects([] { return config_with<GPT2>("n_head=0"); }, "n_head must be positive");
    rejects([] { return config_with<GPT2>("n_inner=0"); }, "n_inner must be positive (got 0)");
    rejects([] { return config_with<GPT2>("vocab_size=0"); }, "vocab_size must be positive");
    rejects([] { return config_with<GPTJ>("rotary_dim=0"); }, "rotary_dim must be positive (got 0)");
    rejects([] { return config_with<GPTJ>("n_head=3"); }, "must be a multiple of n_head (3)");
    rejects([] { return config_with<GPTJ>("n_positions=-1"); }, "n_positions must be positive");
    rejects([] { return config_with<Mixer>("hidden_size=0"); }, "hidden_size must be positive");
    rejects([] { return config_with<Mixer>("parallel_convolutions=0"); }, "parallel_convolutions must be positive");
    rejects([] { return config_with<Mixer>("token_mixing=expanded,expansion_factor=0"); },
            "expansion_factor must be positive");
    // Absent or null still means "derive it".
    BOOST_TEST(config_with<Llama>("num_key_value_heads=null").kv_heads() == 8);
    BOOST_TEST(config_with<GPT2>("n_inner=null").inner() == 4 * 768);
}

// The estimate walks the same tensor list the loaders fill: it is the bytes an untrained model
// holds (Llama and GPT-J: plus one block's stacked q|k|v (and gate|up) while they are built).
BOOST_AUTO_TEST_CASE(memory_estimates_are_the_bytes_a_model_holds) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        const Placement p{at::kCPU, dtype};
        const auto n = c10::elementSize(dtype);
        auto check = [&](const auto& m, std::uint64_t estimate, std::uint64_t extra = 0) {
            BOOST_TEST(estimate == tensor_bytes(m.named_tensors()) + extra);
        };
        auto g = config_with<GPT2>(gpt2_small);
        check(untrained<GPT2>(g, p, 0, Needs{{1, 3}, true, true}),
              GPT2::estimated_bytes(g, Needs{{1, 3}, true, true}, dtype));
        auto j = config_with<GPTJ>(gptj_small);
        check(untrained<GPTJ>(j, p, 0, Needs{{0, 3}, true, false}),
              GPTJ::estimated_bytes(j, Needs{{0, 3}, true, false}, dtype), 3 * 32 * 32 * n);
        auto x = config_with<Mixer>(mixer_expanded);
        check(untrained<Mixer>(x, p, 0, Needs{{0, 2}, true, true}),
              Mixer::estimated_bytes(x, Needs{{0, 2}, true, true}, dtype));
        auto l = config_with<Llama>(llama_gqa);
        check(untrained<Llama>(l, p, 0, Needs{{0, 3}, true, true}),
              Llama::estimated_bytes(l, Needs{{0, 3}, true, true}, dtype), (32 * 32 + 2 * 16 * 32 + 2 * 48 * 32) * n);
    }
}

// A 70B-shaped Llama is refused before anything is allocated, with the sizes in the message.
BOOST_AUTO_TEST_CASE(a_model_larger_than_memory_is_refused_before_allocating) {
    const auto before = resident_bytes();
    const auto c = config_with<Llama>(
        "hidden_size=8192,intermediate_size=28672,num_hidden_layers=80,num_attention_heads=64,"
        "num_key_value_heads=8,vocab_size=128256");
    const auto bytes = Llama::estimated_bytes(c, Needs{{0, 80}, true, true});
    BOOST_TEST(bytes > 280e9);  // 70.6 billion f32 parameters
    BOOST_TEST(bytes < 285e9);
    BOOST_CHECK_EXCEPTION(check_memory(bytes, false, 24'000'000'000ull), Error,
                          says("the model needs about 284.4 GB of memory but 24 GB are available"));
    BOOST_CHECK_EXCEPTION(check_memory(bytes, false), Error, says("GB are available (MemAvailable in /proc/meminfo)"));
    BOOST_CHECK_NO_THROW(check_memory(bytes, true));
    BOOST_CHECK_NO_THROW(
        check_memory(Llama::estimated_bytes(c, Needs{{0, 1}, false, false}, at::kBFloat16), false, 24'000'000'000ull));
    BOOST_TEST(resident_bytes() - before < 64 << 20);
}

// One check and one message for ids outside the vocabulary, on every path into a model.
BOOST_AUTO_TEST_CASE(token_ids_outside_the_vocabulary_are_refused) {
    const auto m = everything<GPT2>(gpt2_small);
    const auto says_outside = [](std::int64_t id) {
        return says("token id " + std::to_string(id) + " is outside the vocabulary of 100");
    };
    BOOST_CHECK_EXCEPTION(m.embed(at::tensor({1, 99999999}, at::kLong).view({1, 2})), Error, says_outside(99999999));
    BOOST_CHECK_EXCEPTION(m.embed(at::tensor({-5, 2}, at::kLong).view({1, 2})), Error, says_outside(-5));
    ActivationCache cache;
    BOOST_CHECK_EXCEPTION(m.run_with_cache(at::tensor({100}, at::kLong).view({1, 1}), cache), Error, says_outside(100));
    BOOST_CHECK_EXCEPTION(generate(m, {1, 99999999}, 2), Error, says_outside(99999999));
    const auto l = everything<Llama>(llama_gqa);
    BOOST_CHECK_EXCEPTION(generate(l, {-5}, 1), Error, says_outside(-5));
}

// parameters(): what the forward pass computes with, each once, so a trainer can step them; every
// one gets a gradient from a loss on the logits, and named_tensors() sees the stepped values.
BOOST_AUTO_TEST_CASE(parameters_are_what_the_forward_pass_computes_with) {
    auto check = [](const auto& m, std::int64_t T, std::size_t count) {
        const auto params = m.parameters();
        BOOST_TEST(params.size() == count);
        for (auto& p : params) p.requires_grad_(true);
        ActivationCache cache;
        const auto logits = m.run_with_cache(random_ids(m.vocab_size(), T, 6), cache);
        // A seeded weighting: a run that fails fails again the same way.
        (logits * at::randn(logits.sizes(), at::make_generator<at::CPUGeneratorImpl>(7))).sum().backward();
        for (std::size_t i = 0; i < params.size(); ++i) {
            BOOST_TEST_INFO("parameter " << i << " " << params[i].sizes());
            BOOST_REQUIRE(params[i].grad().defined());
            BOOST_TEST(params[i].grad().abs().sum().template item<double>() > 0);
        }
        at::NoGradGuard no_grad;
        for (auto& p : params) p.sub_(p.grad(), 0.1).requires_grad_(false);
    };
    BOOST_TEST_CONTEXT("gpt2") check(everything<GPT2>(gpt2_small), 9, 2 + 3 * 12 + 2);
    BOOST_TEST_CONTEXT("gptj") check(everything<GPTJ>(gptj_small), 9, 1 + 3 * 8 + 4);
    BOOST_TEST_CONTEXT("mixer") check(everything<Mixer>(mixer_expanded), 9, 1 + 3 * (2 + 2 * 4 + 6) + 1);
    const auto l = everything<Llama>(llama_gqa);
    BOOST_TEST_CONTEXT("llama") check(l, 9, 1 + 3 * 6 + 2);
    // The stacked q|k|v was stepped in place: the named q_proj view shows the new values.
    at::Tensor q;
    for (auto& [name, t] : l.named_tensors())
        if (name == "model.layers.0.self_attn.q_proj.weight") q = t;
    const auto params = l.parameters();
    BOOST_TEST(at::equal(q, params[2].narrow(0, 0, 32)));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// The incremental forward against the full forward pass of the same slice: the prefix's outputs,
// a batch of candidates at the next position (the true token among them), then one position at a
// time to the end.
template <class M, class S>
void check_incremental(const M& m, const S& slice, const std::string& what) {
    at::NoGradGuard no_grad;
    const std::int64_t T = 7, P = 4, N = 5;
    const at::Tensor ids = random_ids(m.vocab_size(), T, 11, 1);
    const std::vector<std::int64_t> v(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + T);
    const auto full = apply_slice(slice, m, m.embed(ids), m.context(T, true, slice.variant()));
    BOOST_TEST_CONTEXT(what) {
        Incremental<M> inc(m, slice);
        BOOST_TEST(close(inc.append(std::span(v).first(P)), full.narrow(1, 0, P)));
        auto candidates = random_ids(m.vocab_size(), N, 12, 1).view({N});
        candidates[0] = v[P];
        const auto outputs = inc.extend(candidates);
        auto batch = ids.narrow(1, 0, P + 1).repeat({N, 1});
        batch.select(1, P).copy_(candidates);
        const auto expected =
            apply_slice(slice, m, m.embed(batch), m.context(P + 1, true, slice.variant())).narrow(1, P, 1);
        BOOST_TEST(close(outputs, expected));
        BOOST_TEST(close(outputs.narrow(0, 0, 1), full.narrow(1, P, 1)));
        for (std::int64_t t = P; t < T; ++t) BOOST_TEST(close(inc.append({v[t]}), full.narrow(1, t, 1)));
        BOOST_TEST(inc.length() == T);

        // Two prefixes held together (prompts searched as one batch): each candidate after its owner's
        // prefix, in equal runs per prefix and in any order, equals the full forward of its sequence.
        const at::Tensor other = random_ids(m.vocab_size(), T, 13, 1);
        const at::Tensor both = at::cat({ids, other}).narrow(1, 0, P);
        Incremental<M> two(m, slice);
        BOOST_TEST(close(two.append(both), apply_slice(slice, m, m.embed(both), m.context(P, true, slice.variant()))));
        for (const std::vector<std::int64_t>& owners :
             {std::vector<std::int64_t>{0, 0, 1, 1}, std::vector<std::int64_t>{1, 0, 0, 1, 1}}) {
            const auto n = static_cast<std::int64_t>(owners.size());
            const at::Tensor cands = random_ids(m.vocab_size(), n, 14, 1).view({n}),
                             own = at::tensor(owners, at::kLong);
            at::Tensor seqs = both.index_select(0, own);
            seqs = at::cat({seqs, cands.view({n, 1})}, 1);
            const auto want =
                apply_slice(slice, m, m.embed(seqs), m.context(P + 1, true, slice.variant())).narrow(1, P, 1);
            BOOST_TEST(close(two.extend(cands, own), want));
            BOOST_TEST(close(two.select(own).extend(cands, at::arange(n, at::kLong)), want));
        }
        BOOST_CHECK_EXCEPTION(two.extend(candidates), Error, says("needs its owner"));
    }
}

template <class M>
void check_incremental_slices(const M& m, const std::string& family, const Shape& s = {}) {
    check_incremental(m, Blocks<0, 3>{}, family + " Blocks<0, 3>");
    check_incremental(m, Blocks<1, 3>{}, family + " Blocks<1, 3>");
    check_incremental(m, NoResidual<Blocks<0, 2>>{}, family + " NoResidual");
    check_incremental(m, NoNorm<Blocks<0, 2>>{}, family + " NoNorm");
    check_incremental(m, Attention<1>{}, family + " Attention<1>");
    check_incremental(m, Concat<Blocks<0, 1>, Blocks<1, 3>>{}, family + " Concat");
    check_incremental(m, UpTo<"blocks.2.hook_attn_out">{}, family + " UpTo attn_out");
    if (s.resid_mid) check_incremental(m, UpTo<"blocks.1.hook_resid_mid">{}, family + " UpTo resid_mid");
    if (s.mlp_out) check_incremental(m, UpTo<"blocks.1.hook_mlp_out", 1>{}, family + " UpTo mlp_out from block 1");
    check_incremental(m, SliceSpec{{{0, 1}, {0, 3}}}, family + " SliceSpec");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hooks)

BOOST_AUTO_TEST_CASE(the_incremental_forward_equals_the_full_forward) {
    check_incremental_slices(everything<GPT2>(gpt2_small), "gpt2");
    check_incremental_slices(everything<Llama>(llama_gqa), "llama gqa");
    check_incremental_slices(everything<Llama>(mistral), "mistral window 3");
    check_incremental_slices(everything<GPTJ>(gptj_small), "gptj", {.resid_mid = false});
    check_incremental_slices(everything<Mixer>(mixer_flat), "mixer flat");
    check_incremental_slices(everything<Mixer>(mixer_expanded), "mixer expanded ×2, 2 mixers");
    check_incremental_slices(
        everything<Mixer>("hidden_size=32,num_hidden_layers=3,context_length=9,vocab_size=100,token_mixing=expanded,"
                          "expansion_factor=0.5"),
        "mixer expanded ×0.5");
    check_incremental_slices(everything<example::AttnOnly>("n_layers=3,d_model=32"), "attn-only",
                             {.resid_mid = false, .mlp_out = false});
}

BOOST_AUTO_TEST_CASE(the_incremental_forward_refuses_what_it_cannot_do) {
    const auto m = everything<GPT2>(gpt2_small);
    BOOST_CHECK_EXCEPTION(Incremental<GPT2>(m, SliceSpec{.is_causal = false}), Error, says("needs a causal slice"));
    Incremental<GPT2> inc(m, Blocks<0, 2>{});
    BOOST_CHECK_EXCEPTION(inc.append(std::vector<std::int64_t>(17, 1)), Error,
                          says("0 prefix tokens and 17 new ones exceed the model's context of 16"));
    BOOST_CHECK_EXCEPTION(inc.extend(at::tensor({3, 100}, at::kLong)), Error,
                          says("token id 100 is outside the vocabulary of 100"));
}

// generate() runs on the incremental forward: the same tokens as recomputing the whole sequence.
BOOST_AUTO_TEST_CASE(generate_equals_greedy_decoding_by_full_forward_passes) {
    auto greedy = [](const auto& m, std::vector<std::int64_t> ids, int steps) {
        at::NoGradGuard no_grad;
        for (int s = 0; s < steps; ++s) {
            ActivationCache cache;
            const auto logits = m.run_with_cache(at::tensor(ids, at::kLong).view({1, -1}), cache);
            ids.push_back(logits.select(1, logits.size(1) - 1).argmax(-1).template item<std::int64_t>());
        }
        return ids;
    };
    const auto g = everything<GPT2>(gpt2_small);
    BOOST_TEST(generate(g, {5, 6}, 8) == greedy(g, {5, 6}, 8), boost::test_tools::per_element());
    const auto l = everything<Llama>(mistral);
    BOOST_TEST(generate(l, {5}, 9) == greedy(l, {5}, 9), boost::test_tools::per_element());
    const auto x = everything<Mixer>(mixer_expanded);
    BOOST_TEST(generate(x, {1, 2, 3}, 6) == greedy(x, {1, 2, 3}, 6), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
