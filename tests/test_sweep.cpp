// Sweeps (include/inputrep/sweep/, `inputrep sweep`): the spec's rows, one process against
// mpirun and against shards merged, resuming after SIGKILL, bad specs, summaries.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <thread>

#include <inputrep/sweep/shard.hpp>
#include <inputrep/sweep/spec.hpp>
#include <inputrep/sweep/summary.hpp>

#include "cli_run.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using namespace testing;
namespace fs = std::filesystem;
namespace isw = inputrep::sweep;  // the suite is namespace sweep too

namespace {

// A two-block GPT-2 of width 32: a row takes a fraction of a second.
Json sweep_spec(Json axes) {
    Json spec{{"untrained", "gpt2:n_layer=2,n_embd=32,n_head=4,n_positions=32"},
              {"vocab", gpt2_vocab_dir().string()},
              {"steps", 20},
              {"ids", {"464,6766,318,4171,13", "40,1101,257,6152"}}};
    spec.update(axes);
    return spec;
}

fs::path sweep_write_spec(const fs::path& dir, const Json& spec) {
    const auto path = dir / "spec.json";
    std::ofstream(path) << spec.dump(2);
    return path;
}

std::string sweep_quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string sweep_program() {
    const char* program = std::getenv("INPUTREP_CLI");
    return program ? program : INPUTREP_CLI;
}

std::vector<Json> sweep_lines(const fs::path& file) {
    std::vector<Json> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
    return lines;
}

std::map<std::string, Json> sweep_by_key(const std::vector<Json>& lines) {
    std::map<std::string, Json> out;
    for (const auto& l : lines)
        BOOST_TEST(out.emplace(l["key"].get<std::string>(), l).second, "row " << l["key"] << " twice");
    return out;
}

// The same rows, prompt by prompt: the same recovered ids and distances equal to 1e-6.
void sweep_require_same_rows(const std::vector<Json>& a, const std::vector<Json>& b) {
    const auto x = sweep_by_key(a), y = sweep_by_key(b);
    BOOST_REQUIRE_EQUAL(x.size(), y.size());
    for (const auto& [key, line] : x) {
        BOOST_REQUIRE_MESSAGE(y.contains(key), "row " << key << " is missing");
        const auto &r = line["results"], &s = y.at(key)["results"];
        BOOST_REQUIRE_EQUAL(r.size(), s.size());
        for (std::size_t p = 0; p < r.size(); ++p) {
            BOOST_TEST(r[p]["ids"] == s[p]["ids"]);
            for (auto field : {"distance", "shifted_distance"}) {
                const double u = r[p][field].get<double>(), v = s[p][field].get<double>();
                BOOST_TEST(std::abs(u - v) <= 1e-6 * std::max(1.0, std::abs(u)),
                           key << " " << field << ": " << u << " vs " << v);
            }
        }
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sweep)

BOOST_AUTO_TEST_CASE(spec_expands_to_its_product_and_explicit_rows) {
    const auto rows = isw::expand(Json::parse(R"({"blocks": ["0:1", "0:2"], "metric": "l1", "seeds": [0, 1, 2],
        "prompts": ["a", "b"], "claims": [5]})"));
    BOOST_REQUIRE_EQUAL(rows.size(), 6u);
    BOOST_TEST(rows[1].config == Json::parse(R"({"blocks": "0:1", "metric": "l1", "seed": 1, "prompts": ["a", "b"]})"));
    BOOST_TEST(rows[5].claims == Json::parse("[5]"));
    BOOST_TEST(isw::invert_args(rows[0].config) ==
               (std::vector<std::string>{"--blocks", "0:1", "--metric", "l1", "--prompt", "a", "--prompt", "b",
                                         "--seed", "0"}));
    // Keys hash the config, not the claims: relabelling rows does not run them again.
    BOOST_TEST(rows[0].key == isw::row_key(rows[0].config));
    BOOST_TEST(rows[0].key != rows[1].key);
    const auto explicit_rows = isw::expand(
        Json::parse(R"({"steps": 5, "rows": [{"metric": "l1"}, {"metric": ["l2", "cosine"], "seeds": 3}]})"));
    BOOST_REQUIRE_EQUAL(explicit_rows.size(), 3u);
    BOOST_TEST(explicit_rows[2].config == Json::parse(R"({"metric": "cosine", "seed": 3, "steps": 5})"));
    BOOST_CHECK_EXCEPTION(isw::expand(Json::parse(R"({"metric": []})")), isw::SpecError,
                          says("\"metric\" has no values"));
    BOOST_CHECK_EXCEPTION(isw::expand(Json::parse(R"({"metric": [{"a": 1}]})")), isw::SpecError, says("\"metric\""));
}

BOOST_AUTO_TEST_CASE(plots_draw_depth_in_order) {
    std::vector<Json> lines;
    for (auto [blocks, exact] : {std::pair{"0:1", 2}, {"0:12", 0}, {"0:4", 1}})
        lines.push_back({{"key", blocks},
                         {"config", {{"blocks", blocks}}},
                         {"results",
                          {{{"target", {1, 2}},
                            {"ids", {exact > 0 ? 1 : 3, exact > 1 ? 2 : 3}},
                            {"exact_tokens", exact},
                            {"exact", exact == 2},
                            {"distance", 1.0},
                            {"shifted_distance", 2.0}}}}});
    const auto plots = isw::summary_plots(lines);
    BOOST_REQUIRE_EQUAL(plots.front().series.size(), 1u);
    BOOST_TEST(plots.front().series[0].x == (std::vector<double>{1, 4, 12}));
    BOOST_TEST(plots.front().series[0].y == (std::vector<double>{1, 0.5, 0}));
    BOOST_TEST(plots.front().x_label == "depth (blocks)");
}

// Word order and masked tokens: a permutation finds every token though few are in place, and a
// masked token counts only from the copies the compared positions leave ("Mario ... Mario").
BOOST_AUTO_TEST_CASE(summaries_count_tokens_found_in_any_order_and_the_masked_ones) {
    const std::vector<std::int64_t> target{7, 1, 2, 7};  // "Mario the idea Mario"
    const auto none = isw::masked_positions(Json{{"mask", "all"}}, 4),
               first = isw::masked_positions(Json{{"mask", "tokens:1:end"}}, 4);
    BOOST_TEST(none == (std::vector<bool>{false, false, false, false}));
    BOOST_TEST(first == (std::vector<bool>{true, false, false, false}));
    BOOST_TEST(isw::masked_positions(Json{{"mask", "last"}}, 4) == (std::vector<bool>{true, true, true, false}));
    BOOST_TEST(isw::masked_positions(Json{{"mask", "tokens:1:3,neurons:0:8"}}, 4) ==
               (std::vector<bool>{true, false, false, true}));
    auto permuted = isw::found_tokens(target, {1, 7, 7, 2}, first);
    BOOST_TEST(permuted.all == 1.0);
    BOOST_TEST(permuted.masked == 1.0);
    BOOST_TEST(permuted.masked_in_place == 0.0, "found, but not at its own position");
    auto once = isw::found_tokens(target, {1, 2, 7, 9}, first);  // one "Mario": the compared position's
    BOOST_TEST(once.all == 0.75);
    BOOST_TEST(once.masked == 0.0);
    BOOST_TEST(std::isnan(isw::found_tokens(target, target, none).masked));
    BOOST_TEST(std::isnan(isw::found_tokens(target, target, none).masked_in_place));
    BOOST_TEST(isw::found_tokens(target, target, first).masked_in_place == 1.0);
    BOOST_TEST(isw::found_tokens(target, target, first).masked == 1.0);
    // In place, though the compared last position, which lost its own "Mario", takes the only copy.
    BOOST_TEST(isw::found_tokens(target, {7, 1, 2, 2}, first).masked_in_place == 1.0);
    BOOST_TEST(isw::found_tokens(target, {7, 1, 2, 2}, first).masked == 0.0);

    Json line{{"key", "k"},
              {"config", {{"mask", "tokens:1:end"}, {"seed", 0}}},
              {"results",
               {{{"target", target},
                 {"ids", {1, 7, 7, 2}},
                 {"decoded", "the Mario Mario idea"},
                 {"exact_tokens", 0},
                 {"exact", false},
                 {"distance", 1.0},
                 {"shifted_distance", 2.0}}}}};
    const auto t = isw::summary_table({line});
    BOOST_REQUIRE_EQUAL(t.rows.size(), 1u);
    const auto column = [&](std::string_view name) {
        const auto it = std::ranges::find(t.header, name);
        BOOST_REQUIRE_MESSAGE(it != t.header.end(), name);
        return t.rows[0][std::size_t(it - t.header.begin())];
    };
    BOOST_TEST(column("exact-token rate") == "0.000 ± 0.000");
    BOOST_TEST(column("tokens found, any order") == "1.000 ± 0.000");
    BOOST_TEST(column("masked tokens found") == "1.000 ± 0.000");
    BOOST_TEST(column("masked tokens in place") == "0.000 ± 0.000");
    BOOST_TEST(column("distance") == "1.000 ± 0.000");
    BOOST_TEST(column("distance / shifted") == "0.500 ± 0.000");
    BOOST_TEST(column("top-1, first seed and prompt") == "\"the Mario Mario idea\"");
    line["config"]["mask"] = "all";
    const auto unmasked = isw::summary_table({line});
    const auto masked_column =
        std::size_t(std::ranges::find(unmasked.header, "masked tokens in place") - unmasked.header.begin());
    BOOST_TEST(unmasked.rows[0][masked_column] == "–", "nothing masked");
    BOOST_TEST(unmasked.rows[0][masked_column - 1] == "–", "nothing masked");
}

BOOST_AUTO_TEST_CASE(shards_come_from_the_option_or_slurm) {
    BOOST_TEST(isw::parse_shard("1/3").index == 1u);
    BOOST_CHECK_EXCEPTION(isw::parse_shard("3/3"), Error, says("0 <= I < N"));
    const std::map<std::string, std::string> array{{"SLURM_ARRAY_TASK_ID", "7"},
                                                   {"SLURM_ARRAY_TASK_MIN", "5"},
                                                   {"SLURM_ARRAY_TASK_COUNT", "4"},
                                                   {"SLURM_PROCID", "0"},
                                                   {"SLURM_NTASKS", "2"}};
    auto env = [&](const std::map<std::string, std::string>& vars) {
        return [&vars](const char* name) { return vars.contains(name) ? vars.at(name).c_str() : nullptr; };
    };
    const auto a = isw::shard_from_env(env(array));
    BOOST_REQUIRE(a);
    BOOST_TEST((a->index == 2 && a->count == 4));
    const std::map<std::string, std::string> tasks{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}};
    BOOST_TEST(isw::shard_from_env(env(tasks))->index == 1u);
    BOOST_TEST(!isw::shard_from_env(env({})));
    const isw::Shard second_of_two{1, 2};
    BOOST_TEST(second_of_two.file_name() == "results.1-of-2.jsonl");
}

BOOST_AUTO_TEST_CASE(one_process_mpirun_and_merged_shards_give_the_same_rows) {
    const auto dir = temp_dir("sweep-same");
    const auto spec = sweep_write_spec(
        dir, sweep_spec({{"blocks", {"0:1", "0:2"}}, {"metric", {"l1", "cosine"}}, {"seeds", {0, 1}}}));
    const auto one = run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "one"));
    BOOST_REQUIRE_MESSAGE(one.status == 0, one.out);
    const auto serial = sweep_lines(dir / "one/results.jsonl");
    BOOST_REQUIRE_EQUAL(serial.size(), 8u);
    for (const auto& line : serial) {
        for (auto field : {"config", "results", "seconds", "version", "commit", "device"})
            BOOST_TEST(line.contains(field), field);
        BOOST_TEST(line["results"][0]["exact_tokens"].get<int>() <= 5);
    }

    // `mpirun -n 2` of the program (built with MPI), as root where the tests run as root.
    const auto mpi = run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "mpi"),
                             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -n 2 --oversubscribe ");
    BOOST_REQUIRE_MESSAGE(mpi.status == 0,
                          "mpirun -n 2 needs Open MPI's mpirun (Debian's openmpi-bin) and a program built with "
                          "libopenmpi-dev (both from scripts/setup): "
                              << mpi.out);
    BOOST_TEST(mpi.out.find("8 rows run by 1 workers") != std::string::npos, mpi.out);
    BOOST_REQUIRE(fs::exists(dir / "mpi/results.jsonl"));
    sweep_require_same_rows(serial, sweep_lines(dir / "mpi/results.jsonl"));

    for (auto shard : {"0/2", "1/2"}) {
        const auto r =
            run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "shards") + " --shard " + shard);
        BOOST_REQUIRE_MESSAGE(r.status == 0, r.out);
    }
    BOOST_TEST(sweep_lines(dir / "shards/results.0-of-2.jsonl").size() == 4u);
    const auto merged =
        run_cli("sweep --merge " + sweep_quoted(dir / "shards") + " --out " + sweep_quoted(dir / "merged"));
    BOOST_REQUIRE_MESSAGE(merged.status == 0, merged.out);
    sweep_require_same_rows(serial, sweep_lines(dir / "merged/results.jsonl"));

    // A folder resumes under another split: a shard finds its rows in the merged results.jsonl, rank 0
    // finds them in the shards' files.
    const auto resharded =
        run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "one") + " --shard 1/2");
    BOOST_TEST(resharded.out.find("0 rows run, 4 already") != std::string::npos, resharded.out);
    const auto unsharded =
        run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "shards"),
                "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -n 2 --oversubscribe ");
    BOOST_TEST(unsharded.out.find("0 rows run by 1 workers, 8 already") != std::string::npos, unsharded.out);
}

BOOST_AUTO_TEST_CASE(a_killed_sweep_resumes_without_losing_or_duplicating_a_row) {
    const auto dir = temp_dir("sweep-kill");
    const auto spec_json = sweep_spec({{"metric", {"l1", "l2", "cosine"}}, {"seeds", {0, 1, 2}}, {"steps", 150}});
    const auto spec = sweep_write_spec(dir, spec_json);
    const auto results = dir / "out/results.jsonl";
    const std::string program = sweep_program();
    const pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {
        ::freopen("/dev/null", "w", stdout);
        ::execl(program.c_str(), program.c_str(), "sweep", spec.c_str(), "--out", (dir / "out").c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (slurp(results).find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    BOOST_REQUIRE(WIFSIGNALED(status));
    const auto before = slurp(results);
    const auto complete = before.substr(0, before.rfind('\n') + 1);
    const auto kept = sweep_lines(results).size();
    BOOST_TEST_MESSAGE("killed after " << kept << " of 9 rows");
    BOOST_REQUIRE(kept >= 1u);
    BOOST_REQUIRE_MESSAGE(kept < 9u, "the sweep finished before it was killed: nothing was interrupted");
    std::ofstream(results, std::ios::app) << R"({"key": "0123456789abcdef", "config": {"met)";  // a torn last line

    const auto again = run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "out"));
    BOOST_REQUIRE_MESSAGE(again.status == 0, again.out);
    BOOST_TEST(again.out.find("torn last line was dropped") != std::string::npos, again.out);
    const auto after = slurp(results);
    BOOST_TEST(after.starts_with(complete), "the rows written before the kill are kept as they were");
    const auto lines = sweep_lines(results);
    BOOST_TEST(lines.size() == 9u);
    std::set<std::string> expected;
    for (const auto& row : isw::expand(spec_json)) expected.insert(row.key);
    std::set<std::string> found;
    for (const auto& line : sweep_by_key(lines)) found.insert(line.first);
    BOOST_TEST(found == expected, "every row once, none lost");

    const auto third = run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "out"));
    BOOST_TEST(third.out.find("0 rows run, 9 already") != std::string::npos, third.out);
}

BOOST_AUTO_TEST_CASE(a_bad_spec_fails_before_any_row_runs_naming_the_key) {
    const auto dir = temp_dir("sweep-bad");
    const std::vector<std::pair<Json, std::vector<std::string>>> cases{
        {{{"metric", {"l1", "manhattan"}}}, {"\"metric\"", "manhattan"}},
        {{{"metric", "l1"}, {"bogus", {1, 2}}}, {"unknown axis \"bogus\""}},
        {{{"metric", "l1"}, {"blocks", Json::array()}}, {"\"blocks\"", "empty"}},
        {{{"steps", {20, 0}}}, {"\"steps\"", "0"}},
        {{{"optimizer", {"exact", "exact:bogus"}}}, {"\"optimizer\"", "exact:bogus"}},
        {{{"optimizer", "exact"}, {"space", {"embedding", "vocabulary"}}}, {"\"space\"", "vocabulary"}},
        {{{"hook", "blocks.0.hook_resid_mid"}, {"slice", {"", "no-norm"}}}, {"\"slice\"", "no-norm"}},
    };
    for (const auto& [axes, words] : cases) {
        const auto spec = sweep_write_spec(dir, sweep_spec(axes));
        const auto r = run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(dir / "out"));
        BOOST_TEST_INFO(axes.dump() << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
        for (const auto& word : words) BOOST_TEST(r.out.find(word) != std::string::npos, word);
        BOOST_TEST(!fs::exists(dir / "out/results.jsonl"), "no row ran");
    }
    std::ofstream(dir / "broken.json") << "{\"metric\": [";
    const auto r = run_cli("sweep " + sweep_quoted(dir / "broken.json") + " --out " + sweep_quoted(dir / "out"));
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(r.out.find("is not JSON") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(summaries_hold_the_means_over_seeds_and_a_plot) {
    const auto dir = temp_dir("sweep-summary");
    const auto spec = sweep_write_spec(
        dir, sweep_spec({{"blocks", {"0:1", "0:2"}}, {"seeds", {0, 1, 2}}, {"steps", 40}, {"claims", {5}}}));
    const auto out = dir / "depth";
    BOOST_REQUIRE_EQUAL(run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(out)).status, 0);
    std::ofstream(dir / "doc.md") << "before\n<!-- sweep:depth -->\nstale\n<!-- /sweep:depth -->\nafter\n";
    const auto r = run_cli("sweep --summarize " + sweep_quoted(out) + " --doc " + sweep_quoted(dir / "doc.md"));
    BOOST_REQUIRE_MESSAGE(r.status == 0, r.out);

    // The mean exact-token rate and distance ratio over seeds of each depth, from the rows themselves.
    std::map<std::string, std::vector<double>> rate, ratio;
    for (const auto& line : sweep_lines(out / "results.jsonl")) {
        double tokens = 0, distance = 0;
        for (const auto& p : line["results"])
            tokens += p["exact_tokens"].get<double>() / p["target"].size(),
                distance += p["distance"].get<double>() / p["shifted_distance"].get<double>();
        const auto blocks = line["config"]["blocks"].get<std::string>();
        rate[blocks].push_back(tokens / double(line["results"].size()));
        ratio[blocks].push_back(distance / double(line["results"].size()));
    }
    auto mean = [](const std::vector<double>& v) {
        return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    };
    const auto md = slurp(out / "summary.md");
    const std::regex table_row(
        R"(\| 5 \| (0:\d) \| 3 \| ([\d.]+) ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| ([\d.]+) ± [\d.]+ \|)");
    std::size_t matched = 0;
    for (auto it = std::sregex_iterator(md.begin(), md.end(), table_row); it != std::sregex_iterator();
         ++it, ++matched) {
        const auto blocks = (*it)[1].str();
        BOOST_TEST(std::abs(std::stod((*it)[2].str()) - mean(rate.at(blocks))) <= 5e-4, blocks << " exact-token rate");
        BOOST_TEST(std::abs(std::stod((*it)[3].str()) - mean(ratio.at(blocks))) <= 5e-4, blocks << " distance ratio");
    }
    BOOST_TEST(matched == 2u, md);
    const auto html = slurp(out / "summary.html");
    BOOST_TEST(html.find("<svg") != std::string::npos);
    BOOST_TEST(html.find("depth (blocks)") != std::string::npos);
    const auto doc = slurp(dir / "doc.md");
    BOOST_TEST(doc.find("stale") == std::string::npos, doc);
    BOOST_TEST((doc.starts_with("before\n<!-- sweep:depth -->\n") && doc.ends_with("<!-- /sweep:depth -->\nafter\n")),
               doc);
    BOOST_TEST(doc.find(md.substr(md.find("| claims"))) != std::string::npos, "the document holds the summary's table");
}

// Exact search and a gradient method in one sweep (it exited with "type must be number, but is
// null": exact search has no shifted input): both summarised, the exact rows with their exact rate
// and the candidates they checked, the gradient rows with "–" there and the exact ones with "–" for
// the distance ratio they lack.
BOOST_AUTO_TEST_CASE(summaries_show_exact_and_gradient_rows_side_by_side) {
    const auto dir = temp_dir("sweep-exact");
    const auto spec = sweep_write_spec(dir, sweep_spec({{"optimizer", {"exact", "adam"}}, {"seeds", {0, 1}}}));
    const auto out = dir / "mixed";
    BOOST_REQUIRE_EQUAL(run_cli("sweep " + sweep_quoted(spec) + " --out " + sweep_quoted(out)).status, 0);
    const auto r = run_cli("sweep --summarize " + sweep_quoted(out));
    BOOST_REQUIRE_MESSAGE(r.status == 0, r.out);
    double checked = 0, prompts = 0;
    for (const auto& line : sweep_lines(out / "results.jsonl"))
        if (line["config"]["optimizer"] == "exact")
            for (const auto& p : line["results"]) checked += p["candidates_checked"].get<double>(), ++prompts;
    BOOST_REQUIRE(prompts == 4);
    const auto md = slurp(out / "summary.md");
    BOOST_TEST(md.find("| candidates checked |") != std::string::npos, md);
    std::smatch exact, adam;
    BOOST_REQUIRE_MESSAGE(
        std::regex_search(
            md, exact,
            std::regex(
                R"(\| exact \| 2 \| ([\d.]+) ± [\d.]+ \| ([\d.]+) ± [\d.]+ \| [^|]+\| – \| [^|]+\| [^|]+\| [^|]+\| (\d+) \|)")),
        md);
    BOOST_TEST(std::stod(exact[1].str()) == 1.0, "exact search recovers every token of an untrained model");
    BOOST_TEST(std::abs(std::stod(exact[3].str()) - checked / prompts) <= 0.5);  // the mean, to the candidate
    BOOST_REQUIRE_MESSAGE(
        std::regex_search(
            md, adam,
            std::regex(
                R"(\| adam \| 2 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [^|]+\| [\d.]+ ± [\d.]+ \| [^|]+\| [^|]+\| [^|]+\| – \|)")),
        md);
}

BOOST_AUTO_TEST_SUITE_END()
