// Training: autograd through the families' blocks, bitwise resume, the checkpoint folder as a
// model folder for the rest of the program, and every bad input refused with nothing half-written.
// Corpus: Debian's fortunes (scripts/setup), tokenizers trained by Debian's spm_train.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/test/unit_test.hpp>

#include <inputrep/inputrep.hpp>
#include <inputrep/train/train.hpp>

#include "common.hpp"

namespace fs = std::filesystem;
using namespace inputrep;
using testing::says;
using testing::slurp;
namespace training = inputrep::train;  // the suite below is namespace `train`

namespace {

// One fortune file (24 KB, ~300 documents): small enough for seconds, real text.
fs::path fortunes() {
    const fs::path f = "/usr/share/games/fortunes/fortunes";
    require(fs::exists(f), f.string(),
            ": missing; the fortunes corpus comes with scripts/setup (Debian package fortunes)");
    return f;
}

struct Scratch {
    fs::path dir = fs::temp_directory_path() / ("inputrep-train-" + std::to_string(::getpid()));
    Scratch() { fs::remove_all(dir), fs::create_directories(dir); }
    ~Scratch() { fs::remove_all(dir); }
    // Nothing but `keep` in the folder: no staging folder or half checkpoint left behind.
    std::vector<std::string> entries() const {
        std::vector<std::string> names;
        for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
};

training::TrainOptions tiny(const fs::path& out) {
    training::TrainOptions o;
    o.steps = 8, o.batch = 4, o.context = 32, o.warmup = 2, o.eval_every = 4, o.eval_contexts = 8, o.out = out;
    return o;
}

GPT2Config tiny_gpt2() { return config_with<GPT2>("n_embd=16,n_layer=1,n_head=2,vocab_size=400"); }
LlamaConfig tiny_llama() {
    return config_with<Llama>(
        "hidden_size=16,intermediate_size=32,num_hidden_layers=2,num_attention_heads=2,vocab_size=400");
}
GPTJConfig tiny_gptj() { return config_with<GPTJ>("n_embd=16,n_layer=1,n_head=2,rotary_dim=4,vocab_size=400"); }
MixerConfig tiny_mixer() {
    return config_with<Mixer>("hidden_size=16,num_hidden_layers=2,context_length=12,vocab_size=50");
}

// The loss's derivative along a random direction of every parameter at once, by autograd and by
// central differences in f64; and the forward with a graph (ATen) equals the one without (the
// fused CPU kernels where they apply).
template <class F>
void check_gradients(const typename F::Config& config, std::size_t expected_parameters) {
    const Needs all{{0, config.layers()}, true, true};
    auto ids = at::randint(config.vocab_size, {2, 13}, at::make_generator<at::CPUGeneratorImpl>(7), at::kLong);
    {
        auto m32 = F::untrained(config, {}, 3, all);
        at::Tensor fused;
        {
            at::NoGradGuard no_grad;
            fused = training::logits_of(m32, ids.narrow(1, 0, 12));
        }
        for (at::Tensor& p : training::parameters_of(m32)) p.requires_grad_(true);
        auto graph = training::logits_of(m32, ids.narrow(1, 0, 12));
        BOOST_TEST(graph.requires_grad());
        BOOST_TEST(at::allclose(graph.detach(), fused, 1e-4, 1e-5),
                   F::family << ": the forward with a graph differs from the fused one");
    }
    auto m = F::untrained(config, {at::kCPU, at::kDouble}, 3, all);
    const std::vector<at::Tensor> params = training::parameters_of(m);
    BOOST_TEST(params.size() == expected_parameters);
    for (auto& p : params) p.requires_grad_(true);
    auto loss = [&]() -> at::Tensor { return training::summed_loss(m, ids).first; };
    loss().backward();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    std::vector<at::Tensor> direction;
    double analytic = 0;
    for (auto& p : params) {
        BOOST_TEST_REQUIRE(p.grad().defined(),
                           F::family << ": a parameter of shape " << p.sizes() << " got no gradient");
        BOOST_TEST(p.grad().abs().sum().item<double>() > 0,
                   F::family << ": a parameter of shape " << p.sizes() << " got a zero gradient");
        direction.push_back(at::empty_like(p).normal_(0, 1, gen));
        analytic += (p.grad() * direction.back()).sum().item<double>();
    }
    const double eps = 1e-4;  // Llama's RMSNorm computes in f32 even here: not smaller
    auto shifted = [&](double s) {
        at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(direction[i], s);
        const double v = loss().template item<double>();
        for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(direction[i], s);
        return v;
    };
    const double numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
    BOOST_TEST(std::abs(numeric - analytic) <= 1e-3 * std::abs(analytic),
               F::family << ": autograd " << analytic << ", differences " << numeric);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(train)

// The Brown corpus as scripts/setup unpacks it: 500 texts, each one document of prose, its tags
// gone and its words spaced as the edited text was; text that merely holds slashes is not Brown.
BOOST_AUTO_TEST_CASE(brown_texts_are_read_as_prose_without_their_tags) {
    const char* env = std::getenv("INPUTREP_DATA");
    const auto files = training::brown_corpus(fs::path(env ? env : INPUTREP_DATA_DIR) / "brown");
    BOOST_REQUIRE_EQUAL(files.size(), 500u);
    BOOST_TEST(files.front().filename() == "ca01");
    const auto docs = training::read_documents(files.front());
    BOOST_REQUIRE_EQUAL(docs.size(), 1u);
    const std::string first =
        "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced \"no "
        "evidence\" that any irregularities took place.\nThe jury further said in term-end presentments that the City "
        "Executive Committee, which had over-all charge of the election, \"deserves the praise and thanks of the City "
        "of "
        "Atlanta\" for the manner in which the election was conducted.\n";
    BOOST_TEST(docs[0].text.substr(0, first.size()) == first);
    BOOST_TEST(docs[0].text.find("/at ") == std::string::npos);
    const auto corpus = training::read_corpus(files, 0.05);
    BOOST_TEST(corpus.train.size() + corpus.held_out.size() == 500u);
    BOOST_TEST(corpus.held_out.size() >= 10u);
    const auto plain = training::documents_of("notes.txt", "use and/or either/or as you like\n\na second paragraph\n");
    BOOST_TEST(plain.size() == 2u);
    BOOST_TEST(plain[0].text == "use and/or either/or as you like");
}

// Every tensor the forward computes with gets the gradient the finite differences measure
// (Llama: its stacked q|k|v and gate|up, which the named q/k/v/gate/up weights are views of): every
// family of the list, as `train --family` offers each.
BOOST_AUTO_TEST_CASE(autograd_through_every_family_matches_finite_differences) {
    check_gradients<GPT2>(tiny_gpt2(), 2 + 12 + 2);
    check_gradients<Llama>(tiny_llama(), 1 + 2 * 6 + 2);
    check_gradients<GPTJ>(tiny_gptj(), 1 + 8 + 2 + 2);  // q|k|v stacked; lm_head with its bias
    check_gradients<Mixer>(tiny_mixer(), 1 + 2 * 10 + 1);
    auto expanded = tiny_mixer();
    expanded.expanded = true, expanded.expansion_factor = 2, expanded.parallel_convolutions = 2;
    check_gradients<Mixer>(expanded, 1 + 2 * (8 + 2 * 4) + 1);
}

// An interrupted run resumed from its checkpoint gives the uninterrupted run's losses, gradient
// norms and final weights bit for bit; the folder loads and runs through the command line.
BOOST_AUTO_TEST_CASE(resuming_reproduces_the_uninterrupted_run_bitwise) {
    Scratch s;
    auto whole = tiny(s.dir / "whole");
    const auto a = training::train<Llama>(tiny_llama(), {fortunes()}, whole);
    BOOST_TEST_REQUIRE(a.log.size() == 8u);
    BOOST_TEST(a.log.back().loss < a.log.front().loss,
               "eight steps did not lower the loss: " << a.log.front().loss << " → " << a.log.back().loss);

    auto part = tiny(s.dir / "part");
    part.until = 3;
    const auto b1 = training::train<Llama>(tiny_llama(), {fortunes()}, part);
    BOOST_TEST(b1.log.size() == 3u);
    BOOST_TEST(read_json(s.dir / "part" / "trainer_state.json").at("step") == 3);
    part.until = 0, part.resume = true;
    const auto b = training::train<Llama>(tiny_llama(), {fortunes()}, part);
    BOOST_TEST_REQUIRE(b.log.size() == 8u);
    for (std::size_t i = 0; i < 8; ++i) {
        BOOST_TEST(a.log[i].loss == b.log[i].loss,
                   "step " << i + 1 << ": " << a.log[i].loss << " vs " << b.log[i].loss);
        BOOST_TEST(a.log[i].grad_norm == b.log[i].grad_norm);
    }
    BOOST_TEST(slurp(s.dir / "whole" / "model.safetensors") == slurp(s.dir / "part" / "model.safetensors"));
    BOOST_TEST(slurp(s.dir / "whole" / "optimizer.safetensors") == slurp(s.dir / "part" / "optimizer.safetensors"));
    BOOST_TEST((s.entries() == std::vector<std::string>{"part", "whole"}));

    // The checkpoint is a model folder: load<F>, the CLI's hidden and generate, and eval.
    const auto m = load<Llama>(s.dir / "whole");
    BOOST_TEST(m.vocab_size() == 400);
    const auto tok = Tokenizer::from_folder(s.dir / "whole");
    const auto ids = generate(m, {1, 50}, 5);
    BOOST_TEST(ids.size() == 7u);
    const std::string cli = INPUTREP_CLI, folder = (s.dir / "whole").string();
    auto run = [&](const std::string& args) {
        const auto out = s.dir / "cli.txt";
        const int status = std::system((cli + " " + args + " > '" + out.string() + "' 2>&1").c_str());
        auto text = slurp(out);
        fs::remove(out);
        BOOST_TEST(status == 0, args << " failed: " << text);
        return text;
    };
    const auto hidden =
        Json::parse(run("hidden --model '" + folder + "' --vocab '" + folder + "' --prompt 'A fortune' --json"));
    const auto prompt = tok.encode("A fortune");
    BOOST_TEST(hidden["tokens"].get<std::vector<std::int64_t>>() == prompt);
    BOOST_TEST_REQUIRE(hidden.contains("blocks.1.hook_resid_post"));  // the output of the last of the 2 blocks
    {
        at::NoGradGuard no_grad;
        const auto T = std::int64_t(prompt.size());
        auto x = m.embed(at::tensor(prompt, at::kLong).view({1, T}));
        for (int i = 0; i < m.depth(); ++i) x = m.block(i, x, m.context(T, true));
        const auto cli_states =
            at::tensor(hidden["blocks.1.hook_resid_post"].get<std::vector<std::vector<double>>>().back(), at::kDouble);
        BOOST_TEST(at::allclose(cli_states, x[0][T - 1].to(at::kDouble), 1e-5, 1e-6));
    }
    const auto generated = run("generate --model '" + folder + "' --ids 1,50 --steps 5");
    std::ostringstream expected;
    for (auto id : ids) expected << id << " ";
    BOOST_TEST(generated.find(expected.str()) != std::string::npos, generated << " vs " << expected.str());
    auto evaluation = Json::parse(run("eval --model '" + folder + "' --corpus " + fortunes().string() + " --json"));
    BOOST_TEST(std::abs(evaluation["cross_entropy"].get<double>() -
                        training::evaluate<Llama>(s.dir / "whole", {fortunes()}).cross_entropy) < 1e-9);
    BOOST_TEST(evaluation["bigram_cross_entropy"].get<double>() > 0);
}

// Each bad input: a clear error, and the scratch folder holds exactly what it held before.
BOOST_AUTO_TEST_CASE(bad_input_is_refused_and_nothing_is_written_half) {
    Scratch s;
    const auto empty = s.dir / "empty.txt";
    std::ofstream(empty).close();
    const auto out = s.dir / "m";
    const auto before = s.entries();
    BOOST_CHECK_EXCEPTION(training::train<GPT2>(tiny_gpt2(), {empty}, tiny(out)), Error, says("the corpus is empty"));
    BOOST_TEST(s.entries() == before);
    auto long_context = tiny(out);
    long_context.context = 100000;
    BOOST_CHECK_EXCEPTION(training::train<GPT2>(tiny_gpt2(), {fortunes()}, long_context), Error,
                          says("shorter than one context of 100000"));
    BOOST_TEST(s.entries() == before);
    auto huge_vocab = config_with<GPT2>("n_embd=16,n_layer=1,n_head=2,vocab_size=100000");
    BOOST_CHECK_EXCEPTION(training::train<GPT2>(huge_vocab, {fortunes()}, tiny(out)), Error,
                          says("cannot make a vocabulary of 100000"));
    BOOST_TEST(s.entries() == before);
    BOOST_CHECK_EXCEPTION(training::train<GPT2>(tiny_gpt2(), {fortunes()}, tiny(empty / "m")), Error,
                          says("cannot write the output folder"));
    BOOST_TEST(s.entries() == before);

    // A checkpoint, then a resume with another shape: refused, the checkpoint untouched.
    auto first = tiny(out);
    first.steps = 2;
    training::train<GPT2>(tiny_gpt2(), {fortunes()}, first);
    const auto weights = slurp(out / "model.safetensors"), state = slurp(out / "trainer_state.json");
    const auto with_model = s.entries();
    first.resume = true;
    BOOST_CHECK_EXCEPTION(
        training::train<GPT2>(config_with<GPT2>("n_embd=32,n_layer=1,n_head=2,vocab_size=400"), {fortunes()}, first),
        Error, says("was trained with a different config"));
    BOOST_TEST(s.entries() == with_model);
    BOOST_TEST(slurp(out / "model.safetensors") == weights);
    BOOST_TEST(slurp(out / "trainer_state.json") == state);

    // A rate that blows the weights up: the loss turns NaN at step 2, the step-1 checkpoint stays.
    const auto diverging_out = s.dir / "diverging";
    auto diverging = tiny(diverging_out);
    diverging.lr = 1e30, diverging.warmup = 0, diverging.checkpoint_every = 1;
    BOOST_CHECK_EXCEPTION(training::train<GPT2>(tiny_gpt2(), {fortunes()}, diverging), Error,
                          says("at step 2; stopped there. The last good checkpoint (step 1) is kept"));
    BOOST_TEST(read_json(diverging_out / "trainer_state.json").at("step") == 1);
    BOOST_TEST(load<GPT2>(diverging_out).depth() == 1);
    auto after = with_model;
    after.push_back("diverging");
    std::sort(after.begin(), after.end());
    BOOST_TEST(s.entries() == after);
}

BOOST_AUTO_TEST_SUITE_END()
