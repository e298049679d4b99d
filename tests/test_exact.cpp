// Exact inversion (Exact<Rank>): token-by-token search verified against the slice's output, on the
// trained stories260K and on untrained models, with its honest failure modes (ambiguity, no match,
// undetermined positions) and inversion from captured outputs with no prompt.
#include <boost/test/unit_test.hpp>

#include <inputrep/inputrep.hpp>

#include "cli_run.hpp"
#include "common.hpp"

using namespace inputrep;
using testing::says;

namespace {

const Llama& stories260K() {
    static const Llama m = load<Llama>(testing::shared("models/stories260K/hf"));
    return m;
}

// Prompts the model itself would write: sampled at temperature 1 from BOS (id 1), seeded.
std::vector<std::vector<std::int64_t>> sampled_prompts(const Llama& model, int count, int length, std::uint64_t seed) {
    c10::InferenceMode no_autograd;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor ids = at::ones({count, 1}, at::kLong);
    for (int t = 1; t < length; ++t) {
        at::Tensor x = model.embed(ids);
        const auto ctx = model.context(t, true);
        for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
        at::Tensor next = at::multinomial(at::softmax(model.unembed(x).select(1, t - 1), -1), 1, false, gen);
        ids = at::cat({ids, next}, 1);
    }
    std::vector<std::vector<std::int64_t>> out;
    for (int p = 0; p < count; ++p)
        out.emplace_back(ids[p].data_ptr<std::int64_t>(), ids[p].data_ptr<std::int64_t>() + length);
    return out;
}

std::vector<std::vector<std::int64_t>> random_prompts(int count, int length, std::int64_t vocab, std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor ids = at::randint(vocab, {count, length}, gen, at::kLong);
    std::vector<std::vector<std::int64_t>> out;
    for (int p = 0; p < count; ++p)
        out.emplace_back(ids[p].data_ptr<std::int64_t>(), ids[p].data_ptr<std::int64_t>() + length);
    return out;
}

template <class Exp>
void expect_all_verified_and_exact(const Exp& exp, const std::vector<std::vector<std::int64_t>>& prompts,
                                   const char* what) {
    auto results = exp.run(prompts);
    std::size_t exact = 0;
    for (auto& r : results) {
        BOOST_TEST_INFO(what);
        BOOST_TEST(r.verification().verified());
        BOOST_TEST(r.exact());
        exact += r.exact();
    }
    BOOST_TEST_MESSAGE(what << ": " << exact << "/" << results.size() << " prompts exact, "
                            << results.front().verification().candidates_checked()
                            << " candidates checked for the first");
    // A search's summary holds what a search has, and nothing of a gradient run's.
    const Summary s = summarize(results);
    BOOST_TEST(s.exact_prompts == double(exact) / double(results.size()));
    BOOST_TEST(s.verified.value_or(-1) == 1.0);
    BOOST_TEST(s.candidates_checked_mean.value_or(0) >= double(prompts.front().size()));
    BOOST_TEST(!s.distance_ratio_mean.has_value());
    BOOST_TEST(!s.closer_than_shifted.has_value());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(exact)

BOOST_AUTO_TEST_CASE(stories260K_every_block_and_block_0_recover_sampled_and_random_prompts) {
    auto prompts = sampled_prompts(stories260K(), 3, 20, 0);
    for (auto& p : random_prompts(2, 20, 512, 1)) prompts.push_back(p);
    expect_all_verified_and_exact(Experiment<Llama, Blocks<0, 5>, L1, Exact<>>{stories260K()}, prompts,
                                  "stories260K 5 blocks, gradient rank");
    expect_all_verified_and_exact(Experiment<Llama, Blocks<0, 1>, L1, Exact<>>{stories260K()}, prompts,
                                  "stories260K block 0, gradient rank");
}

BOOST_AUTO_TEST_CASE(guided_and_exhaustive_ranking_agree) {
    const auto prompts = sampled_prompts(stories260K(), 2, 12, 3);
    auto guided = Experiment<Llama, Blocks<0, 5>, L1, Exact<GradientRank>>{stories260K()}.run(prompts);
    auto exhaustive = Experiment<Llama, Blocks<0, 5>, L1, Exact<Exhaustive>>{stories260K()}.run(prompts);
    for (std::size_t p = 0; p < prompts.size(); ++p) {
        BOOST_TEST(guided[p].ids() == exhaustive[p].ids());
        BOOST_TEST(exhaustive[p].exact());
        // The guided rank checks fewer candidates than the whole vocabulary at every position.
        BOOST_TEST(guided[p].verification().candidates_checked() < exhaustive[p].verification().candidates_checked());
    }
}

// Each token's typical output (its mean over random contexts) is nearer the target than its
// embedding through 5 blocks of the trained stories260K: calibrated, the search checks fewer
// candidates for the same verified ids, one at a time or with the prompts searched together.
BOOST_AUTO_TEST_CASE(typical_outputs_rank_the_true_token_nearer_than_embeddings) {
    auto prompts = sampled_prompts(stories260K(), 3, 20, 5);
    for (auto& p : random_prompts(3, 20, 512, 6)) prompts.push_back(p);
    Exact<GradientRank> uncalibrated;
    uncalibrated.rank.calibration = 0;
    const auto plain =
        Experiment<Llama, Blocks<0, 5>, L1, Exact<GradientRank>>{stories260K(), {}, {}, uncalibrated}.run(prompts);
    const Experiment<Llama, Blocks<0, 5>, L1, Exact<GradientRank>> calibrated{stories260K()};
    const auto together = calibrated.run(prompts);
    std::int64_t checked_plain = 0, checked_calibrated = 0;
    for (std::size_t p = 0; p < prompts.size(); ++p) {
        const auto alone = calibrated.run(prompts[p]);
        BOOST_TEST(plain[p].exact());
        BOOST_TEST(together[p].exact());
        BOOST_TEST(alone.exact());
        BOOST_TEST(together[p].verification().verified());
        checked_plain += plain[p].verification().candidates_checked();
        checked_calibrated += together[p].verification().candidates_checked();
    }
    BOOST_TEST_MESSAGE("stories260K, 5 blocks: " << checked_plain << " candidates uncalibrated, " << checked_calibrated
                                                 << " calibrated");
    BOOST_TEST(checked_calibrated < checked_plain);
}

// Through 12 blocks of an untrained GPT-2 small (d 768) the tokens nearest the target are far from
// the true one (mean rank 2,727 of 50,257 measured); the gradient's first-order order finds it in
// the batch after the first (docs/exact.md): at most 8 + 10 candidates per position, of 4,096.
BOOST_AUTO_TEST_CASE(the_gradient_order_finds_what_the_nearest_tokens_miss) {
    const auto model = untrained<GPT2>(
        config_with<GPT2>("n_layer=12,n_embd=768,n_head=12,n_positions=32,vocab_size=4096"), {}, 0, Blocks<0, 12>{});
    const auto prompts = random_prompts(2, 8, 4096, 7);
    // Uncalibrated: typical outputs would cost a forward pass of 8 × 4,096 tokens through 12 blocks of d 768.
    const Exact<GradientRank> search{.rank = {.calibration = 0}};
    const auto results = Experiment<GPT2, Blocks<0, 12>, L1, Exact<GradientRank>>{model, {}, {}, search}.run(prompts);
    for (const auto& r : results) {
        const auto& v = r.verification();
        BOOST_TEST(r.exact());
        BOOST_TEST(v.verified());
        BOOST_TEST_MESSAGE("GPT-2 d 768, 12 blocks: " << double(v.candidates_checked()) / double(v.positions.size())
                                                      << " candidates per position");
        BOOST_TEST(v.candidates_checked() <= 18 * std::int64_t(v.positions.size()));
    }
}

BOOST_AUTO_TEST_CASE(verify_all_proves_uniqueness_and_reports_the_margin) {
    const auto prompts = sampled_prompts(stories260K(), 1, 8, 5);
    Exact<Exhaustive> policy;
    policy.verify_all = true;
    auto r = Experiment<Llama, Blocks<0, 5>, L1, Exact<Exhaustive>>{stories260K(), {}, {}, policy}.run(prompts).front();
    const auto& v = r.verification();
    BOOST_TEST(r.exact());
    for (auto& p : v.positions) {
        BOOST_TEST(p.checked == 512);  // every token of the vocabulary
        BOOST_TEST(p.margin > v.tolerance);
        BOOST_TEST(p.error <= v.tolerance);
    }
}

// Two tokens with the same embedding row give the same output wherever they stand: the search must
// say so, not pick one.
BOOST_AUTO_TEST_CASE(two_tokens_with_identical_embeddings_are_reported_ambiguous) {
    auto model = untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=64,n_head=4,vocab_size=300,n_positions=32"), {}, 0,
                                 Blocks<0, 1>{});
    {
        at::NoGradGuard no_grad;
        model.token_embedding()[17].copy_(model.token_embedding()[42]);
    }
    const std::vector<std::int64_t> prompt{5, 42, 100, 7};
    Exact<Exhaustive> policy;
    policy.verify_all = true;
    auto r = Experiment<GPT2, Blocks<0, 1>, L1, Exact<Exhaustive>>{model, {}, {}, policy}.run(prompt);
    const auto& v = r.verification();
    BOOST_TEST(!v.verified());
    BOOST_TEST((v.where(Verdict::ambiguous) == std::vector<std::int64_t>{1}));
    std::vector<std::int64_t> within;
    for (auto& c : v.positions[1].candidates)
        if (c.error <= v.tolerance) within.push_back(c.id);
    std::sort(within.begin(), within.end());
    BOOST_TEST((within == std::vector<std::int64_t>{17, 42}));
    for (int t : {0, 2, 3}) BOOST_TEST(v.positions[t].verdict == Verdict::verified);
}

// bf16's noise through 5 trained blocks (up to 0.10) reaches the distance between tokens, so
// verdicts there are often ambiguous: the default tolerance must still accept the true token
// everywhere, and a wrong pick must never come out as verified.
BOOST_AUTO_TEST_CASE(bf16_verifies_with_its_own_tolerance_on_the_cpu) {
    const auto model = load<Llama>(testing::shared("models/stories260K/hf"), {.dtype = at::kBFloat16});
    const auto prompts = sampled_prompts(stories260K(), 2, 12, 7);
    Exact<Exhaustive> policy;
    policy.verify_all = true;
    policy.max_batch = 512;
    auto results = Experiment<Llama, Blocks<0, 5>, L1, Exact<Exhaustive>>{model, {}, {}, policy}.run(prompts);
    for (std::size_t p = 0; p < prompts.size(); ++p) {
        const auto& r = results[p];
        const auto& v = r.verification();
        BOOST_TEST(v.tolerance == default_tolerance(at::kBFloat16));
        BOOST_TEST_MESSAGE("bf16, 5 blocks: " << r.exact_tokens() << "/12 exact, ambiguous at "
                                              << v.where(Verdict::ambiguous).size() << " positions, unmatched at "
                                              << v.where(Verdict::unmatched).size());
        BOOST_TEST(v.where(Verdict::unmatched).empty());
        for (std::size_t t = 0; t < prompts[p].size(); ++t) {
            const auto& pc = v.positions[t];
            const bool true_within = std::any_of(pc.candidates.begin(), pc.candidates.end(), [&](const Candidate& c) {
                return c.id == prompts[p][t] && c.error <= v.tolerance;
            });
            BOOST_TEST_INFO("position " << t);
            BOOST_TEST(true_within);
            if (r.ids()[t] != prompts[p][t]) BOOST_TEST(pc.verdict == Verdict::ambiguous);
        }
    }
    // Through one block the true token's noise (≤ 1.0e-2) is a tenth of the default: a tolerance set to
    // 1.5e-2 verifies more positions, and a wrong pick is still never called verified.
    policy.tolerance = 1.5e-2;
    auto one = Experiment<Llama, Blocks<0, 1>, L1, Exact<Exhaustive>>{model, {}, {}, policy}.run(prompts.front());
    const auto& v = one.verification();
    BOOST_TEST_MESSAGE("bf16, 1 block, tolerance 1.5e-2: " << one.exact_tokens() << "/12 exact, "
                                                           << v.where(Verdict::verified).size() << " verified");
    BOOST_TEST(v.where(Verdict::unmatched).empty());
    for (std::size_t t = 0; t < 12; ++t)
        if (one.ids()[t] != prompts.front()[t]) BOOST_TEST(v.positions[t].verdict == Verdict::ambiguous);
}

BOOST_AUTO_TEST_CASE(a_restricted_vocabulary_only_ever_yields_allowed_tokens) {
    const auto prompt = sampled_prompts(stories260K(), 1, 10, 11).front();
    std::vector<std::int64_t> allowed(prompt.begin(), prompt.begin() + 5);  // the last five tokens may be outside
    for (std::int64_t id = 300; id < 340; ++id) allowed.push_back(id);
    using Exp = Experiment<Llama, Blocks<0, 5>, L1, Exact<Exhaustive>, AllTokens, EmbeddingSpace, Restricted<>>;
    auto r = Exp{stories260K(), {}, {}, {}, {}, {}, Restricted<>{allowed}}.run(prompt);
    for (auto id : r.ids())
        BOOST_TEST((std::find(allowed.begin(), allowed.end(), id) != allowed.end()), "token " << id);
    const auto& v = r.verification();
    for (std::size_t t = 0; t < prompt.size(); ++t) {
        const bool reachable = std::find(allowed.begin(), allowed.end(), prompt[t]) != allowed.end() &&
                               std::all_of(prompt.begin(), prompt.begin() + t, [&](auto id) {
                                   return std::find(allowed.begin(), allowed.end(), id) != allowed.end();
                               });
        if (reachable) BOOST_TEST(v.positions[t].verdict == Verdict::verified);
        if (std::find(allowed.begin(), allowed.end(), prompt[t]) == allowed.end())
            BOOST_TEST(v.positions[t].verdict == Verdict::unmatched);
    }
}

// The seed's row 82: an untrained d = 64 mixer compared on outputs [:, 1:, :] decoded "Cario" for
// "Mario": the first token has no output of its own. Exact search finds it through position 1,
// which mixes it in, and says how: verified through the next position, or undetermined.
BOOST_AUTO_TEST_CASE(mixer_first_token_without_its_own_output_is_found_through_the_next) {
    for (auto mixing : {"flat", "expanded"}) {
        auto model = untrained<Mixer>(
            config_with<Mixer>(
                std::string("hidden_size=64,num_hidden_layers=1,context_length=16,vocab_size=512,token_mixing=") +
                mixing),
            {}, 0, Blocks<0, 1>{});
        const std::vector<std::int64_t> prompt{44, 300, 12, 7, 401, 99, 5, 250, 18};
        auto r = Experiment<Mixer, Blocks<0, 1>, L1, Exact<>, Tokens<1>>{model}.run(prompt);
        const auto& first = r.verification().positions[0];
        BOOST_TEST_MESSAGE(mixing << " mixer, Tokens<1, End>: position 0 " << to_string(first.verdict) << " ("
                                  << first.checked << " candidates checked), " << r.exact_tokens() << "/9 exact");
        BOOST_TEST(!first.compared);
        BOOST_TEST((first.verdict == Verdict::verified) == (r.ids()[0] == prompt[0]));
        // Position 1's candidates ordered with position 0 held at the mean embedding: its true
        // token is in the first batch, so the pairs end in their first round (every u × 8 v).
        BOOST_TEST(first.checked == 512 * Exact<>{}.batch);
        for (std::size_t t = 1; t < prompt.size(); ++t) BOOST_TEST(r.ids()[t] == prompt[t]);
    }
}

BOOST_AUTO_TEST_CASE(captured_outputs_alone_recover_the_prompt) {
    const auto prompts = sampled_prompts(stories260K(), 2, 16, 13);
    Experiment<Llama, Blocks<0, 5>, L1, Exact<>> exp{stories260K()};
    at::Tensor captured;
    {
        c10::InferenceMode no_autograd;
        ActivationCache cache;
        stories260K().run_with_cache(at::tensor(prompts[0], at::kLong).unsqueeze(0), cache);
        captured = cache["blocks.4.hook_resid_post"][0].clone();
    }
    auto r = exp.run_from_target(captured).front();
    BOOST_TEST(r.ids() == prompts[0]);
    BOOST_TEST(r.verification().verified());
    BOOST_TEST(!r.exact());  // no prompt was given, so there is nothing to call it exact against
    // Stored coarser than the model computes: the tolerance widens by the rounding, every token is
    // checked, and no wrong token is ever verified.
    for (auto dtype : {at::kHalf, at::kBFloat16}) {
        const auto coarse = exp.run_from_target(captured.to(dtype)).front();
        const auto& v = coarse.verification();
        BOOST_TEST(v.tolerance >= unit_roundoff(dtype));
        for (std::size_t t = 0; t < prompts[0].size(); ++t) {
            BOOST_TEST_INFO(c10::toString(dtype) << " position " << t);
            BOOST_TEST(v.positions[t].checked == 512);
            if (v.positions[t].verdict == Verdict::verified) BOOST_TEST(coarse.ids()[t] == prompts[0][t]);
        }
        std::size_t right = 0;
        for (std::size_t t = 0; t < prompts[0].size(); ++t) right += coarse.ids()[t] == prompts[0][t];
        BOOST_TEST_MESSAGE("stored as " << c10::toString(dtype) << ": " << right << " of " << prompts[0].size()
                                        << " tokens right, verified: " << v.verified());
    }
    BOOST_CHECK_EXCEPTION(exp.run_from_target(captured.narrow(1, 0, 32)), Error, says("features per position"));
    BOOST_CHECK_EXCEPTION(exp.run_from_target(at::zeros({3, 4, 5, 6})), Error, says("[tokens, features]"));
}

// A leaked KV cache: keys alone, values alone, or both, at the first, a middle and the last block,
// recover sampled and random-id prompts exactly, every position verified.
BOOST_AUTO_TEST_CASE(keys_or_values_alone_recover_the_prompt) {
    auto prompts = sampled_prompts(stories260K(), 3, 20, 19);
    for (auto& p : random_prompts(2, 20, 512, 20)) prompts.push_back(p);
    for (auto hooks : {"blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.2.attn.hook_k", "blocks.4.attn.hook_v",
                       "blocks.4.attn.hook_k,blocks.4.attn.hook_v"})
        expect_all_verified_and_exact(
            Experiment<Llama, SliceSpec, L1, Exact<>>{stories260K(), SliceSpec::up_to(parse_hooks(hooks))}, prompts,
            hooks);
}

// The prior order (the model's own next-token distribution at the recovered prefix, merged with the
// others) checks fewer candidates on prompts the model writes; random ids stay exact.
BOOST_AUTO_TEST_CASE(the_prior_checks_fewer_candidates_on_text_the_model_writes) {
    using Exp = Experiment<Llama, Blocks<0, 5>, L1, Exact<GradientRank>>;
    auto checked = [&](const Exact<GradientRank>& search, const std::vector<std::vector<std::int64_t>>& prompts) {
        std::int64_t n = 0;
        for (auto& r : Exp{stories260K(), {}, {}, search}.run(prompts)) {
            BOOST_TEST(r.exact());
            BOOST_TEST(r.verification().verified());
            n += r.verification().candidates_checked();
        }
        return n;
    };
    const auto sampled = sampled_prompts(stories260K(), 6, 20, 23);
    const Exact<GradientRank> with_prior{.rank = {.self_prior = true}};
    const auto plain = checked({}, sampled), prior = checked(with_prior, sampled);
    BOOST_TEST_MESSAGE("stories260K 5 blocks, sampled: " << plain << " candidates checked, " << prior
                                                         << " with the prior");
    BOOST_TEST(prior < plain);
    checked(with_prior, random_prompts(3, 20, 512, 24));
    const Exact<GradientRank> other_vocabulary{.rank = {.prior = [](const at::Tensor& p) {
                                                   return at::zeros({p.size(0), 7});
                                               }}};
    BOOST_CHECK_EXCEPTION(Exp(stories260K(), {}, {}, other_vocabulary).run(sampled.front()), Error,
                          says("the inverted model's vocabulary"));
}

// Verification compares a candidate's output computed in a batch, after a shared prefix, with a
// target the full forward computed alone: per family and dtype the largest difference between the
// two stays under the search's tolerance (the numbers are in docs/exact.md).
template <class M>
void check_batch_invariance(std::string_view overrides, at::ScalarType dtype) {
    c10::InferenceMode no_autograd;
    const auto config = config_with<M>(overrides);
    const auto model = untrained<M>(config, {at::kCPU, dtype}, 3, Needs{{0, 2}, true, false});
    const at::Tensor prefix = at::arange(1, 7, at::kLong).view({1, -1}), candidates = at::arange(64, at::kLong);
    Incremental<M> inc(model, Blocks<0, 2>{});
    inc.append(prefix);
    const at::Tensor batched = inc.extend(candidates).select(1, 0);
    double alone = 0, full = 0;
    for (std::int64_t i = 0; i < 64; i += 9) {
        const at::Tensor c = candidates.narrow(0, i, 1), row = batched.narrow(0, i, 1);
        const at::Tensor ids = at::cat({prefix, c.view({1, 1})}, 1);
        alone =
            std::max(alone, inputrep::detail::relative_error(row, inc.extend(c).select(1, 0)).template item<double>());
        const at::Tensor forward = apply_slice(Blocks<0, 2>{}, model, model.embed(ids), model.context(7, true));
        full = std::max(full, inputrep::detail::relative_error(row, forward.select(1, 6)).item<double>());
    }
    BOOST_TEST_MESSAGE(M::family << " " << c10::toString(dtype) << ": a batch of 64 against one alone " << alone
                                 << ", against the full forward " << full);
    BOOST_TEST(full <= default_tolerance(dtype), M::family << " " << c10::toString(dtype));
    BOOST_TEST(alone <= default_tolerance(dtype), M::family << " " << c10::toString(dtype));
}

BOOST_AUTO_TEST_CASE(a_candidate_checked_in_a_batch_matches_the_full_forward_alone) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        check_batch_invariance<GPT2>("n_layer=2,n_embd=64,n_head=4,vocab_size=100,n_positions=16", dtype);
        check_batch_invariance<Llama>(
            "hidden_size=64,intermediate_size=96,num_hidden_layers=2,num_attention_heads=4,num_key_value_heads=2,"
            "vocab_size=100,max_position_embeddings=16",
            dtype);
        check_batch_invariance<GPTJ>("n_layer=2,n_embd=64,n_head=4,rotary_dim=8,vocab_size=100,n_positions=16", dtype);
        check_batch_invariance<Mixer>("hidden_size=64,num_hidden_layers=2,context_length=9,vocab_size=100", dtype);
    }
}

// Captured in PyTorch (benchmarks/python/capture.py: an independent Llama reading the same HF
// folder), the keys, the values and the residual stream invert exactly.
BOOST_AUTO_TEST_CASE(a_capture_made_in_pytorch_inverts_exactly) {
    BOOST_REQUIRE_MESSAGE(
        std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0,
        "Debian's python3-torch is missing: scripts/setup installs it (apt-get install python3-torch)");
    const auto model = testing::shared("models/stories260K/hf").string();
    const auto script = std::filesystem::path(__FILE__).parent_path().parent_path() / "benchmarks/python/capture.py";
    const auto prompt = sampled_prompts(stories260K(), 1, 20, 29).front();
    std::string ids;
    for (auto id : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const auto file = (std::filesystem::temp_directory_path() / "inputrep_pytorch_capture.safetensors").string();
    const auto command =
        "/usr/bin/python3 '" + script.string() + "' --model '" + model + "' --ids " + ids + " --out '" + file + "'";
    BOOST_REQUIRE_MESSAGE(std::system(command.c_str()) == 0, command);
    for (auto hook : {"blocks.0.attn.hook_k", "blocks.4.attn.hook_v", "blocks.4.hook_resid_post"}) {
        auto r = testing::cli_json("invert --model '" + model + "' " + testing::vocab() + " --optimizer exact --hook " +
                                   hook + " --target '" + file + "'");
        BOOST_TEST(r["ids"].get<std::vector<std::int64_t>>() == prompt, hook);
        BOOST_TEST(r["verified"].get<bool>(), hook);
    }
    std::filesystem::remove(file);
}

// The real use, through the program: capture the hidden states once (hidden --save), then recover
// the ids from that file alone.
BOOST_AUTO_TEST_CASE(the_program_inverts_a_saved_capture_without_the_prompt) {
    const auto model = testing::shared("models/stories260K/hf").string();
    const auto prompt = sampled_prompts(stories260K(), 1, 16, 17).front();
    std::string ids;
    for (auto id : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const auto file = (std::filesystem::temp_directory_path() / "inputrep_exact_capture.safetensors").string();
    auto saved = testing::run_cli("hidden --model '" + model + "' " + testing::vocab() + " --ids " + ids + " --save '" +
                                  file + "'");
    BOOST_REQUIRE_MESSAGE(saved.status == 0, saved.out);
    const SafetensorsFile capture(file);
    BOOST_TEST(capture.has("blocks.4.hook_resid_post"));
    BOOST_TEST(capture.has("blocks.2.hook_resid_mid"));

    auto from_file = testing::cli_json("invert --model '" + model + "' " + testing::vocab() +
                                       " --optimizer exact --blocks 0:5 --target '" + file + "'");
    BOOST_TEST(from_file["ids"].get<std::vector<std::int64_t>>() == prompt);
    BOOST_TEST(from_file["verified"].get<bool>());
    BOOST_TEST(from_file["ambiguous"].empty());
    // A slice that ends inside a block reads that hook point from the same file.
    auto mid =
        testing::cli_json("invert --model '" + model + "' " + testing::vocab() +
                          " --optimizer exact:exhaustive --hook blocks.2.hook_resid_mid --target '" + file + "'");
    BOOST_TEST(mid["ids"].get<std::vector<std::int64_t>>() == prompt);

    // Keys and values saved per head ([tokens, heads, d_head]) are read as the slice's output.
    saved = testing::run_cli("hidden --model '" + model + "' " + testing::vocab() + " --ids " + ids + " --save '" +
                             file + ".kv' --hooks 'blocks.3.attn.hook_[kv]'");
    BOOST_REQUIRE_MESSAGE(saved.status == 0, saved.out);
    for (auto hook : {"blocks.3.attn.hook_v", "blocks.3.attn.hook_k,blocks.3.attn.hook_v"}) {
        auto kv = testing::cli_json("invert --model '" + model + "' " + testing::vocab() +
                                    " --optimizer exact --hook " + hook + " --target '" + file + ".kv'");
        BOOST_TEST(kv["ids"].get<std::vector<std::int64_t>>() == prompt, hook);
        BOOST_TEST(kv["verified"].get<bool>(), hook);
    }
    std::filesystem::remove(file + ".kv");
    saved = testing::run_cli("hidden --model '" + model + "' " + testing::vocab() + " --ids " + ids + " --save '" +
                             file + ".kv2' --hooks 'blocks.1.attn.hook_v'");
    BOOST_REQUIRE_MESSAGE(saved.status == 0, saved.out);
    // The prior: the model's own (its whole forward), or another model's with the same tokenizer.
    for (auto prior : {std::string(" --optimizer exact:prior"), " --optimizer exact --prior '" + model + "'"}) {
        auto r = testing::cli_json("invert --model '" + model + "' " + testing::vocab() + " --blocks 0:2 --target '" +
                                   file + "' --target-hook blocks.1.hook_resid_post" + prior);
        BOOST_TEST(r["ids"].get<std::vector<std::int64_t>>() == prompt, prior);
    }
    BOOST_TEST(testing::one_line_error(
        testing::run_cli("invert --model '" + model + "' " + testing::vocab() + " --ids 1,2 --prior '" + model + "'")));

    auto with_prompt = testing::cli_json("invert --model '" + model + "' " + testing::vocab() +
                                         " --optimizer exact --blocks 0:5 --ids " + ids);
    BOOST_TEST(with_prompt["exact"].get<bool>());
    BOOST_TEST(with_prompt["positions"].size() == prompt.size());
    // A search has no trace, decoder scores or shifted input: absent, not null.
    for (const char* field : {"trace", "top_k", "top_k_scores", "shifted_distance", "restart"})
        BOOST_TEST(!with_prompt.contains(field), field);
    // Plain exact is the prior's order for a model read from a file (the searches are deterministic,
    // so the candidates checked tell the orders apart).
    auto checked = [&](const std::string& args) {
        return testing::cli_json("invert " + args + " " + testing::vocab() + " --ids " + ids)["candidates_checked"]
            .get<std::int64_t>();
    };
    const auto file_model = "--model '" + model + "' --blocks 0:5 --optimizer exact";
    BOOST_TEST(with_prompt["candidates_checked"].get<std::int64_t>() == checked(file_model + ":prior"));
    BOOST_TEST(with_prompt["candidates_checked"].get<std::int64_t>() != checked(file_model + ":gradient"));

    // A continuous method from the same file starts where it starts from the prompt, so it ends
    // there too; with no prompt it reports no shifted distance and no target.
    const auto adam = " --optimizer adam --steps 30 --blocks 0:2 --hook blocks.1.attn.hook_v";
    auto from_capture =
        testing::cli_json("invert --model '" + model + "' " + testing::vocab() + adam + " --target '" + file + ".kv2'");
    auto from_prompt = testing::cli_json("invert --model '" + model + "' " + testing::vocab() + adam + " --ids " + ids);
    BOOST_TEST(from_capture["ids"] == from_prompt["ids"]);
    BOOST_TEST(std::abs(from_capture["distance"].get<double>() - from_prompt["distance"].get<double>()) <=
               1e-5 * from_prompt["distance"].get<double>());
    BOOST_TEST(from_capture["trace"].front().get<double>() > from_capture["distance"].get<double>());
    BOOST_TEST(!from_capture.contains("shifted_distance"));
    BOOST_TEST(from_prompt.contains("shifted_distance"));
    BOOST_TEST(from_capture["target"].empty());
    std::filesystem::remove(file + ".kv2");

    // Mistakes: the wrong hook for the slice's width, a tolerance without exact search.
    auto wrong =
        testing::run_cli("invert --model '" + model + "' " + testing::vocab() + " --optimizer exact --target '" + file +
                         "' --target-hook hook_embed --slice concat:1:2");
    BOOST_TEST(wrong.status != 0);
    auto missing =
        testing::run_cli("invert --model '" + model + "' " + testing::vocab() + " --optimizer exact --target '" + file +
                         "' --target-hook blocks.9.hook_resid_post");
    BOOST_TEST(missing.status == 1);
    BOOST_TEST(missing.out.find("holds no tensor") != std::string::npos, missing.out);
    BOOST_TEST(testing::one_line_error(
        testing::run_cli("invert --untrained gpt2:n_layer=1,n_embd=64,n_head=4 --ids 1,2 --tolerance 1e-4")));
    std::filesystem::remove(file);
}

BOOST_AUTO_TEST_SUITE_END()
