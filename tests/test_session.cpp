// The optimisation loop's parts: masks write their own gradient back (a gathering mask included),
// the two gradient engines agree, Sequential's focus, the runtime mask check, and a run's results
// as xtensor arrays and CSV files.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <inputrep/inputrep.hpp>

#include "common.hpp"

using namespace inputrep;
using testing::gpt2_tokenizer;
using testing::says;

namespace {

const GPT2& gpt2_tiny() {
    static const GPT2 m = untrained<GPT2>(config_with<GPT2>("n_layer=2,n_embd=64,n_head=4,n_positions=64"), {}, 0,
                                          Needs{{0, 2}, true, false});
    return m;
}
const Llama& llama_tiny() {
    static const Llama m =
        untrained<Llama>(config_with<Llama>("hidden_size=64,intermediate_size=128,num_hidden_layers=2,num_attention_"
                                            "heads=4,num_key_value_heads=2,vocab_size=512"),
                         {}, 0, Needs{{0, 2}, true, false});
    return m;
}

// ∂(Σ g·mask(out))/∂out by autograd, the reference each mask's backward must equal.
template <class M>
at::Tensor autograd_mask_grad(const M& mask, const at::Tensor& out, const at::Tensor& g) {
    auto x = out.detach().clone().requires_grad_(true);
    return torch::autograd::grad({mask(x)}, {x}, {g})[0];
}

template <class M>
void check_mask_backward(const M& mask, const char* name) {
    auto out = at::randn({2, 6, 8}, at::kDouble);
    auto part = mask(out);
    auto g = at::randn(part.sizes(), at::kDouble);
    BOOST_TEST_INFO(name);
    BOOST_TEST(at::allclose(mask.backward(g, out), autograd_mask_grad(mask, out, g)));
}

// Distance gradients of both engines for one slice, mask and input.
template <class Model, class Compared>
std::pair<DistanceGradient, DistanceGradient> both_engines(const Model& model, const Compared& compared,
                                                           std::int64_t T) {
    const Blocks<0, 2> slice;
    auto ctx = model.context(T, true);
    auto ids = at::randint(0, 500, {3, T}, at::kLong);
    at::Tensor target;
    {
        at::NoGradGuard no_grad;
        target = compared(apply_slice(slice, model, model.embed(ids), ctx));
    }
    auto x = model.embed(ids).detach() + 0.02 * at::randn({3, T, model.d_model()});
    std::vector<typename Model::Tape> tapes;
    auto written = written_out_gradient(model, EmbeddingSpace{}, slice, ctx, tapes, L1{}, compared, x, target);
    auto x_grad = x.clone().requires_grad_(true);
    auto reference = autograd_gradient(model, EmbeddingSpace{}, slice, ctx, L1{}, compared, x_grad, target);
    return {written, reference};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(session)

BOOST_AUTO_TEST_CASE(every_mask_writes_its_gradient_back_as_autograd_does) {
    check_mask_backward(AllTokens{}, "AllTokens");
    check_mask_backward(Tokens<1>{}, "Tokens<1>");
    check_mask_backward(Tokens<2, 4>{}, "Tokens<2, 4>");
    check_mask_backward(LastToken{}, "LastToken");
    check_mask_backward(Neurons<3, 7>{}, "Neurons<3, 7>");
    check_mask_backward(Positions{{4, 0, 4}}, "Positions{4, 0, 4}");  // gathered, one position twice
    check_mask_backward(Mask<Tokens<1>, Neurons<0, 5>>{}, "Mask<Tokens<1>, Neurons<0, 5>>");
    check_mask_backward(Mask<Positions, Neurons<2, 6>>{Positions{{5, 1}}, {}}, "Mask<Positions, Neurons<2, 6>>");
    check_mask_backward(AnyMask::parse("last,neurons:1:3"), "AnyMask last,neurons:1:3");
}

// A mask that copies (index_select) rather than views: before masks wrote their own gradient back,
// the written-out engine scattered into the copy and the input gradient was silently zero.
BOOST_AUTO_TEST_CASE(a_gathering_mask_gets_its_gradient_through_the_written_out_engine) {
    const Positions gather{{5, 2, 3}};
    for (auto [written, reference] : {both_engines(gpt2_tiny(), gather, 7), both_engines(llama_tiny(), gather, 7)}) {
        BOOST_TEST(at::allclose(written.distance, reference.distance, 1e-4, 1e-4));
        BOOST_TEST(written.gradient.abs().sum().item<double>() > 0);
        BOOST_TEST(at::allclose(written.gradient, reference.gradient, 1e-3, 1e-4),
                   "max |Δ| " << (written.gradient - reference.gradient).abs().max().item<double>());
        // Positions after the last gathered one cannot move a causal slice's compared outputs.
        BOOST_TEST(written.gradient.narrow(1, 6, 1).abs().max().item<double>() < 1e-6);
    }
    // The same positions gathered or as a contiguous view: the same gradient.
    at::manual_seed(1);
    auto gathered = both_engines(gpt2_tiny(), Positions{{1, 2, 3, 4, 5}}, 6).first;
    at::manual_seed(1);
    auto viewed = both_engines(gpt2_tiny(), Tokens<1>{}, 6).first;
    BOOST_TEST(at::allclose(gathered.gradient, viewed.gradient, 1e-5, 1e-6));
}

BOOST_AUTO_TEST_CASE(an_experiment_with_a_gathering_mask_recovers_the_prompt) {
    Experiment<GPT2, Blocks<0, 1>, L1, Adam<>, Positions> exp{gpt2_tiny(), {}, {}, {}, Positions{{0, 1, 2, 3, 4}}};
    auto ids = gpt2_tokenizer().encode("The sky is blue.");
    auto r = exp.run(ids);
    BOOST_TEST_MESSAGE("Positions{0..4}: " << r.exact_tokens() << "/5 exact, distance " << r.distance());
    BOOST_TEST(r.exact());
}

BOOST_AUTO_TEST_CASE(sequential_focus_splits_the_steps_into_one_phase_per_position) {
    // 10 steps over 3 positions: phases of 4, the last one cut to 2.
    for (int done = 0; done < 10; ++done) {
        const Focus f = Sequential<>::focus(done, 10, 3);
        BOOST_TEST(f.position == done / 4);
        BOOST_TEST(f.step == done % 4);
        BOOST_TEST(f.steps == (done < 8 ? 4 : 2));
    }
    const Focus all = focus_of<Adam<>>(7, 10, 3);
    BOOST_TEST((all.position == -1 && all.step == 7 && all.steps == 10));
}

// The static check rejects Sequential<...> with LastToken; the runtime mask must be rejected too
// (before the fix, check(1) let "last" through because one position is also the last).
BOOST_AUTO_TEST_CASE(sequential_rejects_a_runtime_token_mask) {
    auto ids = gpt2_tokenizer().encode("The sky is blue.");
    for (auto mask : {"last", "tokens:1:end", "tokens:0:2,neurons:0:8"}) {
        Experiment<GPT2, Blocks<0, 1>, L1, Sequential<AnyOptimizer>, AnyMask> exp{
            gpt2_tiny(), {}, {}, {AnyOptimizer::parse("adam")}, AnyMask::parse(mask)};
        BOOST_TEST_INFO(mask);
        BOOST_CHECK_EXCEPTION(exp.run(ids), Error, says("one output position at a time"));
    }
    Experiment<GPT2, Blocks<0, 1>, L1, Sequential<AnyOptimizer>, AnyMask> neurons{
        gpt2_tiny(), {}, {}, {AnyOptimizer::parse("adam")}, AnyMask::parse("neurons:0:32")};
    RunOptions o;
    o.steps = 10;
    BOOST_TEST(neurons.run(ids, o).trace().size() == 11u);
}

BOOST_AUTO_TEST_CASE(results_are_arrays_of_prompts_restarts_and_steps) {
    Experiment<GPT2, Blocks<0, 1>> exp{gpt2_tiny()};
    exp.with_tokenizer(gpt2_tokenizer());
    RunOptions o;
    o.steps = 30, o.restarts = 3, o.top_k = 4;
    const std::vector<std::vector<std::int64_t>> prompts{gpt2_tokenizer().encode("The sky is blue."),
                                                         gpt2_tokenizer().encode("Hello"),
                                                         gpt2_tokenizer().encode("A red car.")};
    auto results = exp.run(prompts, o);
    BOOST_REQUIRE(results.size() == 3u);
    for (std::size_t p = 0; p < results.size(); ++p) {
        const auto& r = results[p];
        BOOST_TEST(r.target() == prompts[p]);  // results come back in the order of the prompts
        BOOST_TEST((r.traces().shape() == std::array<std::size_t, 2>{3, 31}));
        BOOST_TEST((r.top_k_ids().shape() == std::array<std::size_t, 2>{4, prompts[p].size()}));
        BOOST_TEST(r.distance() == xt::amin(r.restart_distances())());
        BOOST_TEST(r.trace()(30) == r.distance());
        // The k-th line's scores never exceed the (k−1)-th's at any position.
        BOOST_TEST(xt::all(xt::view(r.top_k_scores(), xt::range(0, 3), xt::all()) >=
                           xt::view(r.top_k_scores(), xt::range(1, 4), xt::all())));
        BOOST_TEST(r.top_k(4).size() == 4u);
    }
    auto all = traces(results);
    BOOST_TEST((all.shape() == std::array<std::size_t, 3>{3, 3, 31}));
    BOOST_TEST(all(1, 2, 30) == results[1].traces()(2, 30));

    const Summary s = summarize(results);
    BOOST_TEST(s.prompts == 3u);
    double exact = 0;
    for (auto& r : results) exact += r.exact();
    BOOST_TEST(s.exact_prompts == exact / 3);
    BOOST_TEST((s.exact_token_rate_mean >= 0 && s.exact_token_rate_mean <= 1));

    const auto dir = std::filesystem::temp_directory_path() / "inputrep_session_csv";
    std::filesystem::remove_all(dir);
    write_csv(dir, results);
    auto lines = [](const std::filesystem::path& f) {
        std::ifstream in(f);
        std::size_t n = 0;
        for (std::string line; std::getline(in, line);) n += !line.empty();
        return n;
    };
    BOOST_TEST(lines(dir / "traces.csv") == 1 + 3 * 3 * 31u);
    std::size_t tokens = 0;
    for (auto& p : prompts) tokens += p.size();
    BOOST_TEST(lines(dir / "top_k.csv") == 1 + 4 * tokens);
    std::ifstream in(dir / "traces.csv");
    std::string header, first;
    std::getline(in, header), std::getline(in, first);
    BOOST_TEST(header == "prompt,restart,step,distance");
    BOOST_TEST(first.starts_with("0,0,0,"));

    // From captured outputs there is no prompt: the summary has no shifted input to compare with,
    // and top_k.csv's target column says -1 (it read past an empty target).
    at::Tensor captured;
    {
        c10::InferenceMode no_autograd;
        captured = gpt2_tiny().block(0, gpt2_tiny().embed(at::tensor(prompts[0], at::kLong).unsqueeze(0)),
                                     gpt2_tiny().context(static_cast<std::int64_t>(prompts[0].size()), true));
    }
    RunOptions few;
    few.steps = 5;
    const auto blind = exp.run_from_target(captured, few);
    BOOST_TEST(!summarize(blind).distance_ratio_mean.has_value());
    std::filesystem::remove_all(dir);
    write_csv(dir, blind);
    std::ifstream top_k(dir / "top_k.csv");
    std::getline(top_k, header), std::getline(top_k, first);
    BOOST_TEST(first.ends_with(",-1"), first);
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
