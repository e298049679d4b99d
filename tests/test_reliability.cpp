// Nothing lost, nothing silent (issue 24): the newer input paths (hidden --save, --target, train,
// eval, sweep --merge) on the bad inputs a new user tries. Each case is named after the defect it
// checks and failed on the program before its fix (INPUTREP_CLI=old-build runs them there).
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include <boost/test/unit_test.hpp>

#include <inputrep/inputrep.hpp>

#include "cli_run.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using namespace testing;
namespace fs = std::filesystem;

namespace reliability_checks {

const std::string tiny = " --untrained gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32 ";

bool says(const Run& r, const std::string& part) { return r.out.find(part) != std::string::npos; }

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// One fortune file (24 KB, ~300 documents): a real corpus that trains in seconds.
fs::path fortunes() {
    const fs::path f = "/usr/share/games/fortunes/fortunes";
    require(fs::exists(f), f.string(),
            ": missing; the fortunes corpus comes with scripts/setup (Debian package fortunes)");
    return f;
}

// A Llama small enough to train a few steps in about a second, into `out`.
std::string tiny_training(const fs::path& out, const fs::path& corpus, const std::string& extra = "") {
    return "train --family llama --config "
           "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2 --vocab-size 512 "
           "--context 16 --batch 2 --steps 4 --warmup 1 --eval-every 0 --eval-contexts 4 --corpus " +
           q(corpus) + " --out " + q(out) + " " + extra;
}

// Every results line of a folder by key, counted.
std::map<std::string, int> keys_in(const fs::path& dir) {
    std::map<std::string, int> count;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        if (!name.starts_with("results.") || !name.ends_with(".jsonl")) continue;
        std::ifstream in(entry.path());
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) ++count[Json::parse(line)["key"].get<std::string>()];
    }
    return count;
}

std::size_t complete_lines(const fs::path& file) {
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) n += !line.empty();
    return n;
}

// A spec of `rows` rows on a tiny untrained GPT-2, each a few hundred milliseconds.
fs::path spec_file(const fs::path& dir, int rows, const std::string& name = "spec.json", int steps = 60) {
    Json seeds = Json::array();
    for (int s = 0; s < rows; ++s) seeds.push_back(s);
    const Json spec{{"untrained", "gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32"},
                    {"vocab", gpt2_vocab_dir().string()},
                    {"prompts", {"The sky is blue."}},
                    {"steps", steps},
                    {"seeds", seeds}};
    std::ofstream(dir / name) << spec.dump();
    return dir / name;
}

// gpt2-tiny-random with every weight times `scale`, or with a NaN in one bias, as a model folder.
fs::path changed_model(const std::string& name, double scale, bool nan) {
    const auto source = shared("models/gpt2-tiny-random");
    const auto dir = temp_dir(name);
    fs::copy_file(source / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    auto checkpoint = Checkpoint::open(source);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto& n : checkpoint.names()) tensors.emplace_back(n, checkpoint.load(n, {}).clone() * scale);
    if (nan) tensors.front().second.view(-1)[0] = std::nan("");
    write_safetensors(dir / "model.safetensors", tensors);
    return dir;
}

}  // namespace reliability_checks

using namespace reliability_checks;

BOOST_AUTO_TEST_SUITE(reliability)

// ---- Outputs never replace what is not theirs ----------------------------------------------------

// As root, `--save /dev/full` replaced the device with a regular file. Here a FIFO and a character
// device (a copy of /dev/null made with mknod) in a temporary folder: refused, each node untouched.
BOOST_AUTO_TEST_CASE(hidden_save_over_a_fifo_or_a_device_is_refused) {
    const auto dir = temp_dir("save-nodes");
    const auto fifo = dir / "fifo", device = dir / "null";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
    BOOST_REQUIRE_MESSAGE(::mknod(device.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0,
                          "mknod needs root (the tests run as root, as CI does)");
    for (auto [node, kind] : {std::pair{fifo, "a FIFO"}, std::pair{device, "a character device"}}) {
        auto r = run_cli("hidden" + tiny + "--ids 1,2,3 --save " + q(node));
        BOOST_TEST_INFO(node << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
        BOOST_TEST(says(r, kind));
        struct stat st {};
        BOOST_REQUIRE(::stat(node.c_str(), &st) == 0);
        BOOST_TEST((node == fifo ? S_ISFIFO(st.st_mode) : S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)));
    }
    fs::remove_all(dir);
}

// --report, --html, --csv and --save on a folder or a FIFO: refused before the model is built.
BOOST_AUTO_TEST_CASE(every_output_option_refuses_what_is_not_a_file) {
    const auto dir = temp_dir("outputs");
    BOOST_REQUIRE(::mkfifo((dir / "fifo").c_str(), 0644) == 0);
    for (std::string command :
         {"invert" + tiny + vocab() + " --prompt x --steps 2 --report ",
          "bandwidth" + tiny + vocab() + " --prompt x --report ", "attribute" + tiny + vocab() + " --prompt x --html ",
          "hidden" + tiny + "--ids 1 --save "}) {
        for (const auto& target : {dir, dir / "fifo"}) {
            auto r = run_cli(command + q(target));
            BOOST_TEST_INFO(command << target << " -> " << r.out);
            BOOST_TEST(one_line_error(r));
        }
    }
    auto r = run_cli("invert" + tiny + vocab() + " --prompt x --steps 2 --csv " + q(dir / "fifo"));
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(fs::is_fifo(dir / "fifo"));
    fs::remove_all(dir);
}

// stdout on a full device was lost with exit 0; stderr is checked the same way.
BOOST_AUTO_TEST_CASE(stdout_or_stderr_on_a_full_device_is_an_error) {
    const std::string cli = std::getenv("INPUTREP_CLI") ? std::getenv("INPUTREP_CLI") : INPUTREP_CLI;
    FILE* pipe = ::popen(("'" + cli + "' tokenize " + vocab() + " 'The sky is blue.' 2>&1 >/dev/full").c_str(), "r");
    BOOST_REQUIRE(pipe);
    std::string err;
    for (int c; (c = std::fgetc(pipe)) != EOF;) err += char(c);
    const int status = ::pclose(pipe);
    BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 1), err);
    BOOST_TEST(err.find("stdout") != std::string::npos, err);
    // train reports its progress on stderr: a full device there is a failed run as well.
    const auto dir = temp_dir("full-stderr");
    const int trained =
        std::system(("'" + cli + "' " + tiny_training(dir / "m", fortunes()) + " > /dev/null 2> /dev/full").c_str());
    BOOST_TEST((WIFEXITED(trained) && WEXITSTATUS(trained) == 1));
    fs::remove_all(dir);
}

// ---- One lock per results folder -----------------------------------------------------------------

// `sweep --merge` renamed a new results.jsonl over the one a running sweep appended to: the sweep
// lost its later rows. Now the merge is refused while the sweep writes, the sweep is refused while
// the folder is locked, and a merge afterwards holds every row exactly once.
BOOST_AUTO_TEST_CASE(merge_while_a_sweep_writes_loses_no_row) {
    const auto dir = temp_dir("merge-race");
    const auto spec = spec_file(dir, 12, "spec.json", 1000);  // rows of about a second: merges meet a running sweep
    const auto out = dir / "run";
    const std::string cli = std::getenv("INPUTREP_CLI") ? std::getenv("INPUTREP_CLI") : INPUTREP_CLI;
    const std::string sweep = "'" + cli + "' sweep " + q(spec) + " --out " + q(out) + " > " + q(dir / "sweep.log") +
                              " 2>&1; echo $? > " + q(dir / "sweep.status");
    BOOST_REQUIRE(std::system(("(" + sweep + ") &").c_str()) == 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while ((!fs::exists(out / "results.jsonl") || complete_lines(out / "results.jsonl") < 1) &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    BOOST_REQUIRE_MESSAGE(complete_lines(out / "results.jsonl") >= 1, "the sweep wrote no row in 120 s");
    int refused = 0, tries = 0;
    while (!fs::exists(dir / "sweep.status")) {
        auto r = run_cli("sweep --merge " + q(out));
        ++tries;
        if (r.status == 1 && says(r, "in use"))
            ++refused;
        else
            BOOST_TEST(keys_in(out).size() == 12u,
                       "a merge ran while the sweep wrote: " << r.out);  // only once it is done
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    BOOST_TEST(refused >= 1, "no merge was refused in " << tries << " tries");
    BOOST_TEST(slurp(dir / "sweep.status") == "0\n", slurp(dir / "sweep.log"));
    auto r = run_cli("sweep --merge " + q(out));
    BOOST_TEST(r.status == 0, r.out);
    const auto keys = keys_in(out);
    BOOST_TEST(keys.size() == 12u);
    for (const auto& [key, n] : keys) BOOST_TEST(n == 1, key << " appears " << n << " times");
    BOOST_TEST(complete_lines(out / "results.jsonl") == 12u);

    // The other way round: a folder whose lock is held (as a merge holds it) takes no sweep.
    BOOST_REQUIRE(std::system(("flock -x " + q(out / ".lock") + " -c 'sleep 3' &").c_str()) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    r = run_cli("sweep " + q(spec) + " --out " + q(out));
    BOOST_TEST(r.status == 1, r.out);
    BOOST_TEST(says(r, "in use"), r.out);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(merge_refuses_folders_of_different_specs_or_no_results) {
    const auto dir = temp_dir("merge-specs");
    const auto a = dir / "a", b = dir / "b", empty = dir / "empty";
    BOOST_REQUIRE_EQUAL(run_cli("sweep " + q(spec_file(dir, 1, "one.json", 2)) + " --out " + q(a)).status, 0);
    BOOST_REQUIRE_EQUAL(run_cli("sweep " + q(spec_file(dir, 2, "two.json", 2)) + " --out " + q(b)).status, 0);
    auto r = run_cli("sweep --merge " + q(a) + " " + q(b) + " --out " + q(dir / "merged"));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "different specs"), r.out);
    BOOST_TEST(!fs::exists(dir / "merged" / "results.jsonl"));
    // A folder with a 0-byte results file: nothing to merge.
    fs::create_directories(empty);
    std::ofstream(empty / "results.jsonl").close();
    fs::copy_file(a / "spec.json", empty / "spec.json");
    r = run_cli("sweep --merge " + q(a) + " " + q(empty));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "holds no results"), r.out);
    // The same spec again into a folder of another: refused.
    r = run_cli("sweep " + q(dir / "two.json") + " --out " + q(a));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "another spec"), r.out);
    fs::remove_all(dir);
}

// ---- Bounded before allocating -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_spec_of_fifty_million_rows_is_refused_before_expansion) {
    const auto dir = temp_dir("spec-big");
    Json axis = Json::array();
    for (int i = 0; i < 100; ++i) axis.push_back(i);
    Json spec{{"untrained", "gpt2"},
              {"prompts", {"x"}},
              {"seeds", axis},
              {"steps", axis},
              {"top-k", axis},
              {"restarts", {1, 2, 3, 4, 5}},
              {"init-scale", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}};
    std::ofstream(dir / "big.json") << spec.dump();
    auto r = run_cli("sweep " + q(dir / "big.json") + " --out " + q(dir / "run"), "ulimit -v 4000000; ");
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(says(r, "100000 rows"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_spec_nested_100000_levels_deep_is_refused) {
    const auto dir = temp_dir("spec-deep");
    std::ofstream(dir / "deep.json") << "{\"rows\": " << std::string(100000, '[') << std::string(100000, ']') << "}";
    auto r = run_cli("sweep " + q(dir / "deep.json") + " --out " + q(dir / "run"));
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(says(r, "nested deeper than 64"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(train_threads_100000_is_refused) {
    for (std::string command :
         {"train --family gpt2 --steps 1 --out x --threads 100000", "eval --model . --threads 100000"}) {
        auto r = run_cli(command);
        BOOST_TEST(one_line_error(r), command << " -> " << r.out);
        BOOST_TEST(says(r, "[1, 256]"), r.out);
    }
}

// train built a million layers until the allocator or the OOM killer stopped it.
BOOST_AUTO_TEST_CASE(train_runs_the_memory_check) {
    const auto dir = temp_dir("train-memory");
    auto r =
        run_cli(tiny_training(dir / "m", fortunes()) + " --config n_embd=64,n_layer=1000000,n_head=4 --family gpt2",
                "ulimit -v 8000000; ");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "GB of memory"), r.out);
    BOOST_TEST(says(r, "--ignore-memory-check"), r.out);
    BOOST_TEST(!fs::exists(dir / "m"));
    fs::remove_all(dir);
}

// ---- A resume is the same run --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(train_resume_with_another_corpus_is_refused) {
    const auto dir = temp_dir("resume-corpus");
    const auto model = dir / "m";
    BOOST_REQUIRE_EQUAL(run_cli(tiny_training(model, fortunes(), "--until 2")).status, 0);
    // The same documents with one more: another corpus.
    fs::copy_file(fortunes(), dir / "other");
    std::ofstream(dir / "other", std::ios::app) << "%\nOne more fortune.\n";
    auto r = run_cli(tiny_training(model, dir / "other", "--resume"));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "different corpus"), r.out);
    r = run_cli(tiny_training(model, fortunes(), "--resume"));
    BOOST_TEST(r.status == 0, r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(trainer_state_json_that_no_run_could_write_is_refused) {
    const auto dir = temp_dir("resume-state");
    const auto model = dir / "m";
    BOOST_REQUIRE_EQUAL(run_cli(tiny_training(model, fortunes(), "--until 2")).status, 0);
    const auto good = slurp(model / "trainer_state.json");
    const Json state = Json::parse(good);
    for (auto [field, value, message] : {std::tuple{"step", Json(-1), "outside the run's 0 to 4 steps"},
                                         {"step", Json(9), "outside the run's 0 to 4 steps"},
                                         {"adam_steps", Json(1), "AdamW took 1 steps"},
                                         {"step", Json("two"), "\"step\" is \"two\", not an integer"}}) {
        Json bad = state;
        bad[field] = value;
        std::ofstream(model / "trainer_state.json") << bad.dump(2);
        auto r = run_cli(tiny_training(model, fortunes(), "--resume"));
        BOOST_TEST_INFO(field << " = " << value.dump() << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, message));
        BOOST_TEST(says(r, "trainer_state.json"));
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_corrupt_log_jsonl_does_not_block_a_resume) {
    const auto dir = temp_dir("resume-log");
    const auto model = dir / "m";
    BOOST_REQUIRE_EQUAL(run_cli(tiny_training(model, fortunes(), "--until 2")).status, 0);
    std::ofstream(model / "log.jsonl", std::ios::app) << "{\"step\": \n\x01garbage\n";
    auto r = run_cli(tiny_training(model, fortunes(), "--resume"));
    BOOST_TEST(r.status == 0, r.out);
    BOOST_TEST(says(r, "log.jsonl:3"), r.out);  // the warning names the line
    std::size_t lines = 0;
    std::ifstream in(model / "log.jsonl");
    for (std::string line; std::getline(in, line);) BOOST_TEST(Json::parse(line)["step"].get<int>() == int(++lines));
    BOOST_TEST(lines == 4u);
    fs::remove_all(dir);
}

// ---- Every key read or refused -------------------------------------------------------------------

// mixer:n_embd=0 trained the default width: the mixer's width is hidden_size.
BOOST_AUTO_TEST_CASE(unknown_config_keys_are_refused) {
    auto r = run_cli("hidden --untrained mixer:n_embd=0 --ids 1,2");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "unknown config key \"n_embd\" for mixer"), r.out);
    BOOST_TEST(says(r, "hidden_size"), r.out);
    const auto dir = temp_dir("train-keys");
    r = run_cli(tiny_training(dir / "m", fortunes()) + " --config hidden_size=16,n_layer=2");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "unknown config key \"n_layer\" for llama"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(non_utf8_and_binary_corpora_are_refused) {
    const auto dir = temp_dir("corpus-bytes");
    std::ofstream(dir / "latin1.txt") << "caf\xe9 au lait\n\nand more text\n";
    std::ofstream(dir / "binary.txt") << std::string("text\0more", 9);
    for (auto [file, message] :
         {std::pair{"latin1.txt", "byte 3 is not UTF-8"}, std::pair{"binary.txt", "byte 4 is NUL"}}) {
        auto r = run_cli(tiny_training(dir / "m", dir / file));
        BOOST_TEST_INFO(file << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, (dir / file).string() + ": " + message));
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(sweep_axes_report_csv_and_help_are_refused) {
    const auto dir = temp_dir("spec-axes");
    for (std::string axis : {"report", "csv", "help"}) {
        Json spec{{"untrained", "gpt2:n_layer=1,n_embd=64,n_head=4"}, {"prompts", {"x"}}, {"steps", 2}};
        spec[axis] = axis == "help" ? Json(true) : Json((dir / "out").string());
        std::ofstream(dir / "spec.json") << spec.dump();
        auto r = run_cli("sweep " + q(dir / "spec.json") + " --out " + q(dir / "run"));
        BOOST_TEST_INFO(axis << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
        BOOST_TEST(says(r, "\"" + axis + "\" is not an axis"));
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(results_lines_with_a_negative_row_or_no_list_of_results_are_refused) {
    const auto dir = temp_dir("results-lines");
    BOOST_REQUIRE_EQUAL(run_cli("sweep " + q(spec_file(dir, 1, "spec.json", 2)) + " --out " + q(dir / "run")).status,
                        0);
    const Json line = Json::parse(slurp(dir / "run" / "results.jsonl"));
    for (auto [field, value, message] :
         {std::tuple{"row", Json(-1), "results.jsonl:1: \"row\" is -1, not an integer >= 0"},
          {"results", Json("none"), "results.jsonl:1: \"results\" is not a non-empty list"},
          {"key", Json(7), "results.jsonl:1: \"key\" is 7, not a text"},
          {"version", Json(7), "results.jsonl:1: \"version\" is 7, not a text"}}) {
        Json bad = line;
        bad[field] = value;
        std::ofstream(dir / "run" / "results.jsonl") << bad.dump() << "\n";
        auto r = run_cli("sweep --summarize " + q(dir / "run"));
        BOOST_TEST_INFO(field << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, message));
    }
    fs::remove_all(dir);
}

// ---- Finite or refused ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(targets_holding_nan_inf_or_integers_are_refused) {
    const auto dir = temp_dir("targets");
    const auto good = dir / "good.safetensors";
    BOOST_REQUIRE_EQUAL(run_cli("hidden" + tiny + "--ids 1,2,3 --save " + q(good)).status, 0);
    const auto hook = "blocks.0.hook_resid_post";
    const at::Tensor t = SafetensorsFile(good).load(hook, {});
    auto with = [&](const std::string& name, at::Tensor value) {
        write_safetensors(dir / name, {{hook, value}});
        return dir / name;
    };
    auto nan = t.clone(), inf = t.clone();
    nan[1][5] = std::nan("");
    inf[2][0] = std::numeric_limits<float>::infinity();
    for (auto [file, message] : {std::pair{with("nan.safetensors", nan), "holds NaN or inf (first at index [1,5])"},
                                 {with("inf.safetensors", inf), "holds NaN or inf (first at index [2,0])"},
                                 {with("ints.safetensors", t.to(at::kLong)), "holds I64 values"}}) {
        auto r = run_cli("invert" + tiny + vocab() + " --optimizer exact --target " + q(file));
        BOOST_TEST_INFO(file << " -> " << r.out);
        BOOST_TEST(one_line_error(r, 1));
        BOOST_TEST(says(r, message));
    }
    BOOST_TEST(run_cli("invert" + tiny + vocab() + " --optimizer exact --target " + q(good)).status == 0);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(eval_on_nan_weights_is_refused_naming_the_weight) {
    const auto dir = temp_dir("eval-nan");
    const auto model = dir / "m";
    BOOST_REQUIRE_EQUAL(run_cli(tiny_training(model, fortunes())).status, 0);
    auto checkpoint = Checkpoint::open(model);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto& n : checkpoint.names()) tensors.emplace_back(n, checkpoint.load(n, {}).clone());
    tensors.back().second.fill_(std::nan(""));
    const auto name = tensors.back().first;
    write_safetensors(model / "model.safetensors", tensors);
    auto r = run_cli("eval --model " + q(model) + " --corpus " + q(fortunes()));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "the weight " + name + " holds NaN or inf"), r.out);
    fs::remove_all(dir);
}

// Finite weights 10^8 times too large gave `null` scores and exit 0 under exact search (the
// gradient methods already stop with "diverged"): now an error naming the first hook point that
// overflows, from the blocks the slice loaded.
BOOST_AUTO_TEST_CASE(huge_weights_give_an_error_not_null_scores) {
    const auto dir = changed_model("huge-weights", 1e8, false);
    auto r = run_cli("invert --model " + q(dir) + " " + vocab() + " --prompt 'The sky' --optimizer exact --json");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(!says(r, "null"), r.out);
    BOOST_TEST(says(r, "invert: blocks.0.hook_"), r.out);
    BOOST_TEST(says(r, "non-finite"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(a_mask_past_the_prompt_is_refused) {
    for (std::string mask : {"tokens:0:99", "tokens:7:end", "tokens:3x:5"}) {
        auto r = run_cli("invert" + tiny + vocab() + " --prompt 'The sky is blue.' --steps 2 --mask " + mask);
        BOOST_TEST_INFO(mask << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

BOOST_AUTO_TEST_CASE(an_empty_target_hook_is_refused) {
    auto r = run_cli("invert" + tiny + vocab() + " --optimizer exact --target /dev/null --target-hook ''");
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(says(r, "--target-hook"), r.out);
}

// ---- Messages that name the input ----------------------------------------------------------------

// A ~50-line libtorch dump before.
BOOST_AUTO_TEST_CASE(a_cuda_device_on_a_cpu_build_is_one_line) {
    for (const std::string& command : std::vector<std::string>{
             "hidden" + tiny + "--ids 1 --device cuda:7", "eval --model . --device cuda", "eval --model . --device tpu",
             "train --family gpt2 --steps 1 --out x --device cuda:7"}) {
        auto r = run_cli(command);
        BOOST_TEST_INFO(command << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

// CLI11's PositiveNumber said "Value 0 not in range 0 to 1.797693e+308".
BOOST_AUTO_TEST_CASE(ranges_say_must_be_greater_than_zero) {
    auto r = run_cli("train --family gpt2 --steps 1 --out x --lr 0");
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(says(r, "--lr must be > 0"), r.out);
    const auto help = run_cli("train --help").out + run_cli("eval --help").out;
    BOOST_TEST(help.find("1.79769") == std::string::npos, help);
    BOOST_TEST(help.find("--held-out N") != std::string::npos);
    BOOST_TEST(help.find("(0, 1)") != std::string::npos, help);
    r = run_cli("train --family gpt2 --steps 1 --out x --held-out 0");
    BOOST_TEST(one_line_error(r), r.out);  // help said [0, 1]; 0 failed later with exit 1
}

BOOST_AUTO_TEST_CASE(bad_metric_and_decoder_values_are_refused_as_options) {
    for (std::string option : {"--metric combined:nan:1", "--metric combined:1:2:3", "--decode restricted:"}) {
        auto r = run_cli("invert" + tiny + vocab() + " --prompt x --steps 2 " + option);
        BOOST_TEST_INFO(option << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

BOOST_AUTO_TEST_CASE(quick_with_steps_1e30_is_refused) {
    const auto dir = temp_dir("quick-steps");
    for (auto steps : {Json(1e30), Json("many")}) {
        std::ofstream(dir / "spec.json") << Json{
            {"untrained", "gpt2:n_layer=1,n_embd=64,n_head=4"},
            {"prompts", {"x"}},
            {"steps", steps}}.dump();
        auto r = run_cli("sweep " + q(dir / "spec.json") + " --quick --out " + q(dir / "run"));
        BOOST_TEST_INFO(steps.dump() << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
        BOOST_TEST(says(r, "\"steps\""));
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(misleading_messages_name_what_is_wrong) {
    const auto dir = temp_dir("messages");
    // --corpus /dev/null said "no such file".
    auto r = run_cli(tiny_training(dir / "m", "/dev/null"));
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "/dev/null: not a corpus file (it is a character device)"), r.out);
    // train --out FILE.
    std::ofstream(dir / "file").close();
    r = run_cli(tiny_training(dir / "file", fortunes()));
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(says(r, "is a file, not a folder"), r.out);
    // A folder without a tokenizer: the message lists every file looked for.
    fs::create_directories(dir / "no-tokenizer");
    r = run_cli("tokenize --vocab " + q(dir / "no-tokenizer") + " x");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "tokenizer.model"), r.out);
    // --pad-to past the context.
    r = run_cli("invert" + tiny + vocab() + " --prompt x --steps 2 --pad-to 40");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "--pad-to 40"), r.out);
    // spm_train's own reason is relayed.
    r = run_cli(tiny_training(dir / "m", fortunes()) + " --vocab-size 200000");
    BOOST_TEST(one_line_error(r, 1), r.out);
    BOOST_TEST(says(r, "spm_train"), r.out);
    BOOST_TEST(says(r, "Vocabulary size"), r.out);
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
