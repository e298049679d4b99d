// Attribution: gradient×input against finite differences, occlusion against one forward pass per
// occluded prompt, exact zeros where causality forbids any influence, and the HTML page rendered
// by a real browser.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <inputrep/attribution/attribution.hpp>
#include <inputrep/attribution/html.hpp>
#include <inputrep/model/families.hpp>
#include <inputrep/model/load.hpp>

#include "common.hpp"
#include "html_check.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;
using testing::slurp;

namespace {

// The model and prompt under test. The checks below are templates over the model type, so moving
// them to another family changes only these lines.
using Model = GPT2;
const std::string model_folder = "models/gpt2-tiny-random";
// The seed's example, "The wipers on the bus go swish swish", in GPT-2 ids.
const std::vector<std::int64_t> prompt = {464, 14763, 364, 319, 262, 1323, 467, 1509, 680, 1509, 680};

Model subject(at::ScalarType dtype = at::kFloat) {
    return load<Model>(testing::shared(model_folder), {.dtype = dtype});
}

constexpr AttributionMethod all_methods[] = {AttributionMethod::gradient_x_input, AttributionMethod::occlusion,
                                             AttributionMethod::combined};

// Logits [B, V] at position p of block-0 inputs x [B, T, d], every block then the head.
template <class M>
at::Tensor logits_at(const M& model, at::Tensor x, std::int64_t p) {
    const auto ctx = model.context(x.size(1), true);
    for (int i = 0; i < model.depth(); ++i) x = model.block(i, x, ctx);
    return model.unembed(x.narrow(1, p, 1)).squeeze(1);
}

template <class M>
at::Tensor last_logits(const M& model, const at::Tensor& x) {
    return logits_at(model, x, x.size(1) - 1);
}

at::Tensor as_tensor(const std::vector<std::int64_t>& ids) { return at::tensor(ids, at::kLong); }

template <class M>
void check_every_method_scores_every_token(const M& model, const std::vector<std::int64_t>& ids) {
    const auto own_prediction =
        last_logits(model, model.embed(as_tensor(ids).unsqueeze(0)))[0].argmax().template item<std::int64_t>();
    for (auto method : all_methods) {
        BOOST_TEST_CONTEXT(method_name(method)) {
            const auto r = attribute(model, ids, method);
            BOOST_TEST(r.ids == ids);
            BOOST_TEST(r.raw.size() == ids.size());
            BOOST_TEST(r.normalised.size() == ids.size());
            BOOST_TEST(xt::all(xt::isfinite(r.raw)));
            BOOST_TEST(xt::amin(r.raw)() >= 0.0f);
            BOOST_TEST(xt::amax(r.normalised)() == 1.0f);
            BOOST_TEST(xt::allclose(r.normalised * xt::amax(r.raw)(), r.raw));
            BOOST_TEST(r.position == std::int64_t(ids.size()) - 1);
            BOOST_TEST(r.predicted == own_prediction);
        }
    }
    // Combined is the mean of the other two, each normalised first: not occlusion twice (the seed's slip).
    const auto g = attribute(model, ids, AttributionMethod::gradient_x_input);
    const auto o = attribute(model, ids, AttributionMethod::occlusion);
    const auto c = attribute(model, ids, AttributionMethod::combined);
    BOOST_TEST(xt::allclose(c.raw, 0.5f * (g.normalised + o.normalised)));
    BOOST_TEST(!xt::allclose(c.normalised, o.normalised));
}

// The prediction made at position p cannot see tokens after p through a causal model, so both
// methods give them exactly 0, and the tokens up to p score as in the prompt cut after p.
template <class M>
void check_later_tokens_score_exactly_zero(const M& model, const std::vector<std::int64_t>& ids, std::int64_t p) {
    const std::vector<std::int64_t> cut(ids.begin(), ids.begin() + p + 1);
    for (auto method : {AttributionMethod::gradient_x_input, AttributionMethod::occlusion}) {
        BOOST_TEST_CONTEXT(method_name(method)) {
            const auto r = attribute(model, ids, method, {.position = p});
            BOOST_TEST(r.position == p);
            for (std::size_t t = p + 1; t < ids.size(); ++t) {
                BOOST_TEST_INFO("token " << t);
                BOOST_TEST(r.raw(t) == 0.0f);
            }
            BOOST_TEST(xt::amax(r.normalised)() == 1.0f);
            const auto alone = attribute(model, cut, method);
            BOOST_TEST(xt::all(xt::equal(xt::view(r.raw, xt::range(0, p + 1)), alone.raw)));
            BOOST_TEST(r.predicted == alone.predicted);
        }
    }
}

// Occlusion batched into one forward pass equals one full-length forward pass per occluded
// prompt, the tokens after the prediction included (there, within rounding of zero).
template <class M>
void check_occlusion_against_separate_passes(const M& model, const std::vector<std::int64_t>& ids, std::int64_t neutral,
                                             std::int64_t p) {
    at::NoGradGuard no_grad;
    const auto r = attribute(model, ids, AttributionMethod::occlusion, {.neutral_id = neutral, .position = p});
    const double top = xt::amax(r.raw)();
    const auto base = logits_at(model, model.embed(as_tensor(ids).unsqueeze(0)), p)[0];
    for (std::size_t t = 0; t < ids.size(); ++t) {
        auto occluded = ids;
        occluded[t] = neutral;
        const auto logits = logits_at(model, model.embed(as_tensor(occluded).unsqueeze(0)), p)[0];
        const double expected = (logits - base).abs().sum().template item<double>();
        BOOST_TEST_INFO("position " << p << ", token " << t);
        BOOST_TEST(std::abs(r.raw(t) - expected) <= 1e-4 * expected + 1e-6 * top);
    }
}

// gradient×input's raw score of token t is Σ_k |∂s/∂a_{t,k} · W_E[ids[t], k]|; each derivative here
// comes from central differences of the whole forward pass, in double precision.
template <class M>
void check_gradient_against_finite_differences(const M& model, const std::vector<std::int64_t>& ids) {
    const double h = 1e-4;
    const auto T = std::int64_t(ids.size());
    const at::Tensor a = model.embed(as_tensor(ids).unsqueeze(0));                // [1, T, d]
    const at::Tensor e = at::embedding(model.token_embedding(), as_tensor(ids));  // [T, d]
    const auto d = a.size(2);
    for (auto target : {AttributionTarget::logit_sum, AttributionTarget::predicted_logit}) {
        const auto r = attribute(model, ids, AttributionMethod::gradient_x_input, {.target = target});
        for (std::int64_t t = 0; t < T; ++t) {
            // Rows 2k and 2k+1 move coordinate (t, k) by +h and -h.
            at::Tensor x = a.repeat({2 * d, 1, 1});
            for (std::int64_t k = 0; k < d; ++k) {
                x[2 * k][t][k] += h;
                x[2 * k + 1][t][k] -= h;
            }
            const at::Tensor logits = last_logits(model, x);
            const at::Tensor s =
                (target == AttributionTarget::logit_sum ? logits.sum(-1) : logits.select(1, r.predicted)).view({d, 2});
            const at::Tensor grad = (s.select(1, 0) - s.select(1, 1)) / (2 * h);
            const double expected = (grad * e[t]).abs().sum().template item<double>();
            BOOST_TEST_INFO("target " << int(target) << ", token " << t);
            BOOST_TEST(std::abs(r.raw(t) - expected) <= 1e-4 * expected + 1e-7);
        }
    }
}

std::size_t count(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
    return n;
}

std::filesystem::path chromium() {
    const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin";
    std::istringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');)
        if (!dir.empty() && std::filesystem::exists(std::filesystem::path(dir) / "chromium"))
            return std::filesystem::path(dir) / "chromium";
    fail("headless Chromium (chromium) is not on PATH: run scripts/setup, which installs Debian's chromium package");
}

// One headless Chromium run on `page` with a fresh profile; `mode` is --screenshot=... or --dump-dom.
// Returns what it printed on stdout.
std::string run_chromium(const std::filesystem::path& dir, const std::string& name, const std::string& mode,
                         const std::filesystem::path& page) {
    const auto profile = dir / (name + "-profile");
    const auto out = dir / (name + ".out"), err = dir / (name + ".err");
    const std::string command = "timeout 60 '" + chromium().string() +
                                "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                                " --disable-background-networking --disable-component-update --disable-sync"
                                " --user-data-dir='" +
                                profile.string() + "' " + mode + " 'file://" + page.string() + "' >'" + out.string() +
                                "' 2>'" + err.string() + "'";
    const int status = std::system(command.c_str());
    require(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "chromium ", mode, " failed (status ",
            status, ", 124 = timed out): ", slurp(err));
    return slurp(out);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attribution)

BOOST_AUTO_TEST_CASE(every_method_scores_every_token_with_max_one) {
    check_every_method_scores_every_token(subject(), prompt);
}

BOOST_AUTO_TEST_CASE(tokens_after_the_attributed_prediction_score_exactly_zero) {
    check_later_tokens_score_exactly_zero(subject(), prompt, 5);
}

// With no block before the head, the prediction is a function of the last token alone. The prompt
// is tripled so the occlusion batch spans several GEMM tiles, where equal rows, if they were run,
// would differ by rounding.
BOOST_AUTO_TEST_CASE(a_slice_of_no_blocks_sees_only_the_last_token) {
    const auto model = subject();
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 3; ++i) ids.insert(ids.end(), prompt.begin(), prompt.end());
    for (auto method : {AttributionMethod::gradient_x_input, AttributionMethod::occlusion}) {
        BOOST_TEST_CONTEXT(method_name(method)) {
            const auto r = attribute(model, ids, method, {.blocks = 0});
            BOOST_TEST(r.blocks == 0);
            BOOST_TEST(r.raw(ids.size() - 1) > 0.0f);
            BOOST_TEST(xt::sum(xt::view(r.raw, xt::range(0, ids.size() - 1)))() == 0.0f);
        }
    }
}

BOOST_AUTO_TEST_CASE(occlusion_equals_one_forward_pass_per_occluded_prompt) {
    const auto model = subject();
    const auto p = std::int64_t(prompt.size()) - 1;
    check_occlusion_against_separate_passes(model, prompt, family_of_t<Model>::neutral_token, p);
    check_occlusion_against_separate_passes(model, prompt, family_of_t<Model>::neutral_token, p - 4);
}

// The prompt repeats tokens 7 and 9; with that token as the neutral one, neither is occluded at all.
BOOST_AUTO_TEST_CASE(replacing_a_token_by_itself_scores_exactly_zero) {
    BOOST_REQUIRE(prompt[7] == prompt[9]);
    const auto r = attribute(subject(), prompt, AttributionMethod::occlusion, {.neutral_id = prompt[7]});
    for (std::size_t t = 0; t < prompt.size(); ++t) {
        BOOST_TEST_INFO("token " << t);
        BOOST_TEST((r.raw(t) == 0.0f) == (prompt[t] == prompt[7]));
    }
}

BOOST_AUTO_TEST_CASE(gradient_x_input_matches_finite_differences) {
    check_gradient_against_finite_differences(subject(at::kDouble), prompt);
}

// The same checks on a real trained model: stories260K (llama2.c's TinyStories Llama), through its
// llama2.c file, on the reference token sequence. Its neutral token is </s>.
BOOST_AUTO_TEST_CASE(stories260K_scores_every_token_and_later_tokens_score_zero) {
    const auto model = load<Llama>(testing::shared("models/stories260K/stories260K.bin"));
    const auto ids =
        read_json(testing::shared("reference/stories260K_logits.json"))["tokens"].get<std::vector<std::int64_t>>();
    check_every_method_scores_every_token(model, ids);
    check_later_tokens_score_exactly_zero(model, ids, 4);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_clear_errors) {
    const auto model = subject();
    const std::vector<std::int64_t> none;
    BOOST_CHECK_EXCEPTION(attribute(model, none, AttributionMethod::occlusion), Error, says("the prompt is empty"));
    BOOST_CHECK_EXCEPTION(attribute(model, prompt, AttributionMethod::occlusion, {.position = 11}), Error,
                          says("position 11 is outside the prompt of 11 tokens"));
    BOOST_CHECK_EXCEPTION(attribute(model, prompt, AttributionMethod::occlusion, {.blocks = 3}), Error,
                          says("blocks must be in [0, 2], not 3"));
    BOOST_CHECK_EXCEPTION(attribute(model, prompt, AttributionMethod::occlusion, {.neutral_id = -1}), Error,
                          says("the neutral token -1 is outside the vocabulary"));
    BOOST_CHECK_EXCEPTION(attribute(model, std::vector<std::int64_t>{1, 1 << 20}, AttributionMethod::gradient_x_input),
                          Error, says("token id 1048576 is outside the vocabulary"));
    BOOST_TEST(parse_attribution_method("gradient") == AttributionMethod::gradient_x_input);
    BOOST_TEST(parse_attribution_method("combined") == AttributionMethod::combined);
    BOOST_CHECK_EXCEPTION(parse_attribution_method("saliency"), Error, says("unknown attribution method \"saliency\""));
}

// The page itself, from hand-made scores: escaping, visible line breaks, the seed's colour map.
BOOST_AUTO_TEST_CASE(the_page_escapes_text_and_colours_low_to_high) {
    const auto tokenizer = Tokenizer::from_folder(testing::gpt2_vocab_dir());
    AttributionResult r;
    r.model = "gpt2";
    r.blocks = r.depth = 2;
    r.ids = tokenizer.encode("<i>a & b</i>\n\"c\"");
    const auto T = r.ids.size();
    r.position = std::int64_t(T) - 1;
    r.predicted = tokenizer.encode("<").front();
    r.raw = xt::linspace<float>(0.5f, 2.0f, T);
    r.normalised = r.raw / 2.0f;
    const auto page = attribution_html(r, tokenizer);
    BOOST_TEST(count(page, "class=\"token\"") == T);
    BOOST_TEST(page.find("<i>") == std::string::npos);
    BOOST_TEST(page.find("</i>") == std::string::npos);
    for (const char* escaped : {"&lt;", "&gt;", "&amp;", "&quot;"}) BOOST_TEST(page.find(escaped) != std::string::npos);
    BOOST_TEST(page.find("\u21b5\n") != std::string::npos);
    // Display scaling is min–max: the lowest token is #006e6e even though its score is 0.25.
    BOOST_TEST(count(page, "background-color: #006e6e") == 1u);
    BOOST_TEST(count(page, "background-color: #ff6e6e") == 1u);
    BOOST_TEST(page.find("data-score=\"0.250000\"") != std::string::npos);
    BOOST_TEST(page.find("Predicted next token: <b>&lt;</b>") != std::string::npos);
    BOOST_TEST(page.find("Attribution: occlusion") != std::string::npos);

    r.normalised = xt::ones<float>({T});  // all equal: no scaling, every token at full red
    BOOST_TEST(count(attribution_html(r, tokenizer), "background-color: #ff6e6e") == T);
    r.normalised = xt::ones<float>({T + 1});
    BOOST_CHECK_EXCEPTION(attribution_html(r, tokenizer), Error, says("scores for"));
}

// A long prompt: the page used to format its meta line into a 64-byte buffer, which cut its
// "</p>" off from 100 tokens on (issue 9). Read back by Python's parser: every element closed,
// every token's span there with its text, in order.
BOOST_AUTO_TEST_CASE(a_150_token_page_is_complete) {
    const auto tokenizer = Tokenizer::from_folder(testing::gpt2_vocab_dir());
    std::string text;
    while (tokenizer.encode(text).size() < 150) text += "Tom & Jerry <3 the bus that goes swish, swish; ";
    AttributionResult r;
    r.model = "gpt2";
    r.blocks = 1, r.depth = 2;
    r.ids = tokenizer.encode(text);
    r.ids.resize(150);
    r.position = 149;
    r.predicted = r.ids.front();
    r.raw = xt::linspace<float>(0.0f, 1.0f, 150);
    r.normalised = r.raw;
    const auto page = attribution_html(r, tokenizer);
    BOOST_TEST(page.find("the prediction after token 150 of 150</p>") != std::string::npos);
    BOOST_TEST(page.find("blocks 0&ndash;0 of 2") != std::string::npos);
    BOOST_TEST(page.ends_with("</body>\n</html>\n"));
    const auto spans = testing::html_token_texts(page);
    BOOST_TEST_REQUIRE(spans.size() == 150u);
    for (std::size_t t = 0; t < 150; ++t)
        BOOST_TEST_CONTEXT("token " << t) BOOST_TEST(spans[t] == tokenizer.decode(std::span(&r.ids[t], 1)));
}

BOOST_AUTO_TEST_CASE(the_page_renders_in_headless_chromium) {
    const auto tokenizer = Tokenizer::from_folder(testing::gpt2_vocab_dir());
    const auto ids = tokenizer.encode("The wipers on the bus go swish swish");
    const auto r = attribute(subject(), ids, AttributionMethod::combined);
    const auto dir = testing::temp_dir("attribution-html");
    const auto page = dir / "attribution.html";
    write_attribution_html(page, r, tokenizer);

    const auto png = dir / "attribution.png";
    run_chromium(dir, "screenshot", "--screenshot='" + png.string() + "' --window-size=800,300", page);
    BOOST_REQUIRE(std::filesystem::exists(png));
    BOOST_TEST(std::filesystem::file_size(png) > 1024u);
    BOOST_TEST(slurp(png).substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));

    const auto dom = run_chromium(dir, "dom", "--dump-dom", page);
    BOOST_TEST(count(dom, "class=\"token\"") == ids.size());
    BOOST_TEST(dom.find("Predicted next token:") != std::string::npos);
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
