// The program on the inputs a new user tries (issue 10): no crash, hang or silent garbage. Each
// case failed on the program before its fix (INPUTREP_CLI=old-build runs them there).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <fstream>
#include <regex>

#include <inputrep/inputrep.hpp>

#include "cli_run.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using namespace testing;
namespace fs = std::filesystem;

namespace {

const std::string tiny = " --untrained gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32 ";

bool says(const Run& r, const std::string& part) { return r.out.find(part) != std::string::npos; }

// gpt2-tiny-random with one NaN in block 1's attention bias, as a model folder on disk.
fs::path model_with_a_nan() {
    const auto source = shared("models/gpt2-tiny-random");
    const auto dir = temp_dir("cli-nan");
    fs::copy_file(source / "config.json", dir / "config.json");
    auto checkpoint = Checkpoint::open(source);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto& name : checkpoint.names()) tensors.emplace_back(name, checkpoint.load(name, {}).clone());
    auto bias = std::ranges::find(tensors, std::string("transformer.h.1.attn.c_attn.bias"),
                                  &std::pair<std::string, at::Tensor>::first);
    BOOST_REQUIRE(bias != tensors.end());
    bias->second[3] = std::nan("");
    write_safetensors(dir / "model.safetensors", tensors);
    return dir;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli_reliability)

BOOST_AUTO_TEST_CASE(a_tokenizer_error_is_a_message_in_every_command) {
    for (std::string command : {"invert", "attribute", "bandwidth"}) {
        auto r = run_cli(command + tiny + "--ids 1,2 --vocab /nonexistent");
        BOOST_TEST_INFO(command << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, "/nonexistent"));
    }
}

// A vocab.json with an id of 10^9 asks for ~40 GB; under a 3 GB address-space limit that is a
// std::bad_alloc, which main() reports as one line (it was "terminate called", exit 134).
BOOST_AUTO_TEST_CASE(a_standard_exception_is_a_message) {
    const auto dir = temp_dir("cli-bad-alloc");
    std::ofstream(dir / "vocab.json") << R"({"a": 1000000000, "b": 1})";
    std::ofstream(dir / "merges.txt") << "#version: 0.2\n";
    auto r = run_cli("tokenize --vocab '" + dir.string() + "' ab", "ulimit -v 3000000; ");
    BOOST_TEST_INFO(r.out);
    BOOST_TEST(one_line_error(r, 1));
    BOOST_TEST(!says(r, "terminate"));
    fs::remove_all(dir);
}

// Each numeric option has a range, checked as the command line is parsed: these hung (restarts,
// threads), overflowed into the wrong message (top-k) or were accepted (lr, init-scale, seed).
BOOST_AUTO_TEST_CASE(numbers_outside_their_range_exit_2) {
    for (std::string bad :
         {"--restarts 1000000000", "--threads 100000", "--top-k 1e12", "--lr nan:nan", "--lr -0.1", "--lr 0.1:inf",
          "--init-scale 0", "--init-scale nan", "--steps 0", "--steps 1e9", "--seed -1", "--top-k 0", "--threads 0"}) {
        auto r = run_cli("invert" + tiny + vocab() + " --prompt x " + bad, "timeout 60 ");  // these hung
        BOOST_TEST_INFO(bad << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
    auto r = run_cli("generate" + tiny + "--ids 1 --steps -3");
    BOOST_TEST(one_line_error(r), r.out);
    const auto help = run_cli("invert --help").out;
    for (auto [flag, range] : {std::pair{"--restarts N ", "[1, 1000]"},
                               {"--threads N ", "[1, 256]"},
                               {"--top-k N ", "[1, 1000]"},
                               {"--steps N ", "[1, 1000000]"},
                               {"--init-scale N ", "[1e-06, 1000]"}}) {
        const auto at = help.find(flag);
        BOOST_TEST_REQUIRE(at != std::string::npos, flag << " is not in invert --help");
        BOOST_TEST(help.substr(at, help.find('\n', at) - at).find(range) != std::string::npos, flag << range);
    }
}

BOOST_AUTO_TEST_CASE(a_bad_device_or_dtype_exits_2) {
    for (std::string bad : {"--device bogus", "--device cuda:x", "--dtype f8"}) {
        auto r = run_cli("hidden" + tiny + "--ids 1 " + bad);
        BOOST_TEST_INFO(bad << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

// The names the error lists are the names the program accepts, and --help lists the same.
BOOST_AUTO_TEST_CASE(attribute_accepts_every_method_it_lists) {
    auto r = run_cli("attribute" + tiny + vocab() + " --prompt x --method foo");
    BOOST_TEST(one_line_error(r), r.out);
    std::smatch listed;
    BOOST_REQUIRE_MESSAGE(std::regex_search(r.out, listed, std::regex(R"(expected (\w+), (\w+) or (\w+))")), r.out);
    const auto help = run_cli("attribute --help").out;
    const auto at = help.find("  --method ");
    const auto method = help.substr(at, help.find('\n', at) - at);  // the line that documents --method
    for (std::size_t i = 1; i < listed.size(); ++i) {
        auto out = cli_json("attribute" + tiny + vocab() + " --prompt 'The sky is' --method " + listed[i].str());
        BOOST_TEST(out["scores"].size() == 3u);
        BOOST_TEST(method.find(listed[i].str()) != std::string::npos, method << " lacks " << listed[i].str());
    }
}

// Every command holds the ids to the library's contract, before running anything.
BOOST_AUTO_TEST_CASE(ids_outside_the_vocabulary_are_named) {
    for (std::string command : {"hidden", "generate", "invert", "attribute", "bandwidth"})
        for (std::string id : {"99999999", "-5"}) {
            auto r = run_cli(command + tiny + vocab() + " --ids 1," + id);
            BOOST_TEST_INFO(command << " --ids 1," << id << " -> " << r.out);
            BOOST_TEST(one_line_error(r, 1));
            BOOST_TEST(says(r, "token id " + id + " is outside the vocabulary of 50257"));
        }
}

// A folder that ships only SentencePiece's tokenizer.model is tokenised with it, not with GPT-2's.
BOOST_AUTO_TEST_CASE(a_model_folder_uses_its_own_sentencepiece_tokenizer) {
    const auto dir = temp_dir("cli-spm");
    for (auto file : {"config.json", "model.safetensors"})
        fs::copy_file(shared("models/stories260K/hf") / file, dir / file);
    std::ofstream corpus(dir / "corpus.txt");
    for (int i = 0; i < 300; ++i)
        corpus << "the cat sat on the mat number " << i << ". Lily ran to the big red house.\n";
    corpus.close();
    auto shell = [&](const std::string& command) {
        const int status = std::system((command + " > '" + (dir / "log.txt").string() + "' 2>&1").c_str());
        BOOST_REQUIRE_MESSAGE(
            status == 0,
            "`" << command << "` failed; SentencePiece's tools come with scripts/setup (apt package sentencepiece)");
    };
    shell("spm_train --input='" + (dir / "corpus.txt").string() + "' --model_prefix='" + (dir / "tokenizer").string() +
          "' --model_type=bpe --vocab_size=200 --normalization_rule_name=identity");
    const std::string text = "the cat ran to the mat";
    std::ofstream(dir / "text.txt") << text << "\n";
    shell("spm_encode --model='" + (dir / "tokenizer.model").string() + "' --output_format=id --input='" +
          (dir / "text.txt").string() + "' --output='" + (dir / "ids.txt").string() + "'");
    std::ifstream in(dir / "ids.txt");
    std::vector<std::int64_t> expected{std::istream_iterator<std::int64_t>(in), {}};
    BOOST_REQUIRE(!expected.empty());
    auto out = cli_json("hidden --model '" + dir.string() + "' --prompt '" + text + "'");
    BOOST_TEST(out["tokens"].get<std::vector<std::int64_t>>() == expected, out["tokens"].dump());
    fs::remove_all(dir);
}

// The untrained mixer's vocabulary follows the tokenizer the command reads, so the documented
// defaults work together.
BOOST_AUTO_TEST_CASE(untrained_defaults_work_together) {
    auto out = cli_json("invert --untrained mixer:hidden_size=32,num_hidden_layers=1 " + vocab() +
                        " --prompt 'The sky is blue.' --steps 3");
    BOOST_TEST(out["ids"].size() == 5u);
    auto r = run_cli("hidden --untrained mixer:hidden_size=32,num_hidden_layers=1 --ids 4095");
    BOOST_TEST(r.status == 0, r.out);  // no tokenizer read: the family's own 4096 tokens
}

BOOST_AUTO_TEST_CASE(a_nan_in_the_weights_is_an_error_naming_where) {
    const auto dir = model_with_a_nan();
    auto r = run_cli("hidden --model '" + dir.string() + "' --ids 1,2,3 --json");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "blocks.1.hook_"), r.out);
    BOOST_TEST(says(r, "non-finite"));
    r = run_cli("generate --model '" + dir.string() + "' --ids 1,2,3 --steps 3");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "step 1: blocks.1.hook_"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_batch_without_prompts_is_an_error) {
    const auto dir = temp_dir("cli-batch");
    std::ofstream(dir / "blank.txt") << "\n\n";
    for (std::string batch :
         {std::string("/dev/null"), dir.string(), (dir / "blank.txt").string(), (dir / "missing.txt").string()}) {
        auto r = run_cli("invert" + tiny + vocab() + " --steps 2 --batch '" + batch + "'");
        BOOST_TEST_INFO(batch << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, batch));
    }
    fs::remove_all(dir);
}

// The same command prints the same bytes: timings only with --stats, and no result depends on the
// number of threads.
BOOST_AUTO_TEST_CASE(json_is_byte_identical_across_runs_and_threads) {
    const std::string model = " --model '" + shared("models/gpt2-tiny-random").string() + "' " + vocab();
    for (std::string command :
         {"hidden" + model + " --ids 464,6766,318,4171,13 --logits", "generate" + model + " --ids 464,6766 --steps 8",
          "invert" + model + " --prompt 'The sky is blue.' --steps 40 --restarts 2",
          "attribute" + model + " --prompt 'The sky is blue.'"}) {
        auto first = run_cli(command + " --json --threads 1");
        BOOST_TEST_INFO(command << " -> " << first.out.substr(0, 300));
        BOOST_REQUIRE_EQUAL(first.status, 0);
        BOOST_TEST(!says(first, "steps_per_second"));
        BOOST_TEST(run_cli(command + " --json --threads 1").out == first.out);
        BOOST_TEST(run_cli(command + " --json --threads 2").out == first.out);
    }
}

// A 70B-shaped Llama on this machine: refused from its estimated bytes before any tensor is
// allocated (it used to grow to 16 GB and be killed without a word), unless the user insists; the
// message names the slice that would fit.
BOOST_AUTO_TEST_CASE(a_model_that_cannot_fit_is_refused_before_it_is_built) {
    const auto r = run_cli(
        "hidden --untrained llama:hidden_size=8192,intermediate_size=28672,num_hidden_layers=80,num_attention_heads=64,"
        "num_key_value_heads=8,vocab_size=128256 --ids 1,2");
    BOOST_TEST(r.status == 1, r.out);
    BOOST_TEST(says(r, "GB of memory"), r.out);
    BOOST_TEST(says(r, "would fit (invert --blocks 0:"), r.out);  // the deepest slice that fits, from block 0
    BOOST_TEST(says(r, "--ignore-memory-check"), r.out);
    BOOST_TEST(one_line_error(r, 1), r.out);
}

BOOST_AUTO_TEST_SUITE_END()
