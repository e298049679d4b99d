// The command-line program, run as a user runs it.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <inputrep/inputrep.hpp>

#include "cli_run.hpp"

using namespace inputrep;
using namespace testing;

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(tokenize_matches_the_reference_tokenizer) {
    auto ref = read_json(testing::shared("reference/gpt2_tokenizer.json"));
    for (auto& entry : ref) {
        auto text = entry["text"].get<std::string>();
        if (text.find('\'') != std::string::npos) continue;  // keep the shell quoting trivial
        auto out = cli_json("tokenize " + vocab() + " '" + text + "'");
        BOOST_TEST(out["ids"] == entry["ids"]);
    }
}

BOOST_AUTO_TEST_CASE(hidden_reproduces_the_reference_layout) {
    auto folder = testing::shared("models/gpt2-tiny-random");
    auto ref = read_json(folder / "reference.json");
    std::string ids;
    for (auto& id : ref["tokens"]) {
        if (!ids.empty()) ids += ',';
        ids += std::to_string(id.get<int>());
    }
    auto out = cli_json("hidden --model '" + folder.string() + "' --ids " + ids + " --logits");
    BOOST_TEST(out["tokens"] == ref["tokens"]);
    // The cache keyed by hook name, as TransformerLens's run_with_cache: reference state 0 is block
    // 0's input, state l the output of block l-1.
    for (auto hook :
         {"hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.hook_attn_out",
          "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post", "ln_final.hook_normalized"})
        BOOST_TEST(out.contains(hook), hook);
    double worst = 0;
    for (std::size_t l = 0; l < ref["hidden_states"].size(); ++l) {
        const auto key =
            l == 0 ? std::string("blocks.0.hook_resid_pre") : "blocks." + std::to_string(l - 1) + ".hook_resid_post";
        for (std::size_t t = 0; t < ref["tokens"].size(); ++t)
            for (std::size_t d = 0; d < 64; ++d)
                worst = std::max(worst,
                                 std::abs(out[key][t][d].get<double>() - ref["hidden_states"][l][t][d].get<double>()));
    }
    BOOST_TEST(worst < 1e-4);
    BOOST_TEST(out["logits"][0].size() == 50257u);
    BOOST_TEST(std::abs(out["logits"][2][5].get<double>() - ref["logits_first8"][2][5].get<double>()) < 1e-4);
}

BOOST_AUTO_TEST_CASE(invert_small_untrained_model) {
    auto out = cli_json("invert --untrained gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32 " + vocab() +
                        " --prompt 'The sky is blue.' --steps 300 --stats");
    for (auto key : {"ids", "top_k", "decoded", "exact", "distance", "shifted_distance", "trace", "steps_per_second",
                     "peak_rss_bytes"})
        BOOST_TEST(out.contains(key), key);
    BOOST_TEST(out["top_k"].size() == 5u);
    BOOST_TEST(out["trace"].size() == 301u);
    BOOST_TEST(out["exact"].get<bool>() == (out["ids"] == out["target"]));
    BOOST_TEST(out["distance"].get<double>() < out["trace"][0].get<double>());
}

BOOST_AUTO_TEST_CASE(invalid_options_exit_2_with_one_line) {
    for (auto args :
         {"invert --untrained gpt2 --prompt x --metric manhattan", "invert --untrained gpt2 --prompt x --blocks 3:1",
          "invert --untrained gpt2 --prompt x --steps many", "invert --untrained gpt2 --prompt x --bogus",
          "invert --prompt x", "hidden --untrained gpt2", "tokenize", "frobnicate",
          "invert --untrained gpt2 --prompt x --mask tokens:4:2"}) {
        auto r = run_cli(args);
        BOOST_TEST_INFO(args << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

// `memory` plans without allocating: a 70B-shaped Llama's bf16 and int8 rows, the deepest slice per budget.
BOOST_AUTO_TEST_CASE(memory_plans_a_70b_shaped_model) {
    auto out = cli_json(
        "memory --untrained llama:hidden_size=8192,intermediate_size=28672,num_hidden_layers=80,num_attention_heads=64,"
        "num_key_value_heads=8,vocab_size=32000 --budget 24,80 --json");
    BOOST_TEST(out["blocks"] == 80);
    const auto& plans = out["plans"];
    BOOST_TEST(plans.size() == 3u);
    BOOST_TEST(plans[1]["weights"] == "bf16");
    BOOST_TEST(plans[1]["block_bytes"] == 2 * 855654400ull);  // 855,638,016 weights + two norms of 8,192
    BOOST_TEST(plans[1]["deepest_slice_end"] == Json({13, 45}));
    BOOST_TEST(plans[2]["weights"] == "int8");
    BOOST_TEST(plans[2]["deepest_slice_end"] == Json({26, 80}));
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error) {
    auto tiny = " --untrained gpt2:n_layer=1,n_embd=32,n_head=4,n_positions=4 " + vocab();
    auto r = run_cli("invert" + tiny + " --prompt 'The sky is blue and wide.' --steps 2");
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.find("longer than the model's context of 4") != std::string::npos, r.out);
    r = run_cli("invert" + tiny + " --prompt '' --steps 2");
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.find("empty prompt") != std::string::npos, r.out);
    r = run_cli("invert" + tiny + " --prompt 'sky' --blocks 0:3");
    BOOST_TEST(r.out.find("has 1 blocks") != std::string::npos, r.out);
    r = run_cli("hidden --model /nonexistent --ids 1");
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.find("/nonexistent") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(invert_takes_every_policy_axis) {
    const std::string tiny =
        "invert --untrained gpt2:n_layer=2,n_embd=64,n_head=4,n_positions=32 " + vocab() + " --steps 60";
    auto dir = std::filesystem::temp_directory_path() / ("inputrep-cli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto report = (dir / "run.html").string();
    for (std::string extra :
         {"--space vocabulary --init-scale 1", "--decode nearest", "--metric combined:0.5:1 --optimizer gd",
          "--slice no-norm,bidirectional --mask tokens:1:end,neurons:0:32", "--slice attention:1",
          "--blocks 0:1 --slice concat:1:2", "--optimizer sequential:adam --restarts 2", "--early-stop"}) {
        auto out = cli_json(tiny + " --prompt 'The sky is blue.' " + extra);
        BOOST_TEST_INFO(extra);
        BOOST_TEST(out["trace"].size() >= 2u);
        BOOST_TEST(out["distance"].get<double>() < out["trace"][0].get<double>());
    }
    auto allowed = testing::gpt2_tokenizer().encode("red blue sky");
    auto out = cli_json(tiny + " --prompt 'The sky is blue.' --decode 'restricted:red blue sky' --top-k 2");
    for (auto& line : out["top_k"])
        for (auto& id : line)
            BOOST_TEST((std::find(allowed.begin(), allowed.end(), id.get<std::int64_t>()) != allowed.end()));
    auto batch = dir / "prompts.txt";
    std::ofstream(batch) << "The sky is blue.\nThis is a prompt sentence\nMario, the Idea\n";
    out = cli_json(tiny + " --batch '" + batch.string() + "' --report '" + report + "'");
    BOOST_TEST(out["results"].size() == 3u);
    std::ifstream page(report);
    std::string html((std::istreambuf_iterator<char>(page)), {});
    BOOST_TEST(html.find("<svg") != std::string::npos);
    BOOST_TEST(std::count(html.begin(), html.end(), '\n') > 1);
    std::filesystem::remove_all(dir);
}

// The seed author's conventions as options: wpe[0] at every position, a start with a mean, and the
// direct method decoded through (x·W)·W⁺.
BOOST_AUTO_TEST_CASE(invert_takes_the_author_s_conventions) {
    const std::string tiny = "invert --untrained gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32 " + vocab() +
                             " --prompt 'The sky is blue.'";
    // wpe[0] everywhere is a different target (the shifted distance is the target's), still recovered:
    // decoding subtracts what was added.
    const auto plain = cli_json(tiny + " --steps 300"), legacy = cli_json(tiny + " --steps 300 --legacy-positions");
    BOOST_TEST(plain["shifted_distance"].get<double>() != legacy["shifted_distance"].get<double>());
    BOOST_TEST(legacy["exact"].get<bool>(), legacy["decoded"]);
    // The same noise moved by the mean: the distance before the first step differs.
    const auto centred = cli_json(tiny + " --steps 1 --init-scale 0.05"),
               shifted = cli_json(tiny + " --steps 1 --init-scale 0.05 --init-mean 0.5");
    BOOST_TEST(centred["trace"][0].get<double>() < shifted["trace"][0].get<double>());
    // The direct method: the model sees x only through x·W, so argmax(x) keeps the N(0, 1) start
    // while (x·W)·W⁺ finds the prompt.
    const std::string direct = tiny + " --space vocabulary --init-scale 1 --steps 200";
    const auto argmax = cli_json(direct), projected = cli_json(direct + " --decode direct-pinv");
    BOOST_TEST(projected["exact"].get<bool>(), projected["decoded"]);
    BOOST_TEST(argmax["exact_tokens"].get<int>() == 0, argmax["decoded"]);
    BOOST_TEST(
        cli_json(tiny + " --space vocabulary:pinv-target --decode direct-pinv --steps 200")["exact"].get<bool>());
    // The seed's padding to the context: the prompt's 5 tokens then <|endoftext|> (50256) to 8, every
    // position inverted and compared.
    const auto padded = cli_json(tiny + " --steps 1 --pad-to 8"),
               padded_with = cli_json(tiny + " --steps 1 --pad-to 8:13");
    BOOST_TEST(padded["target"].size() == 8u);
    BOOST_TEST(padded["target"][7].get<int>() == 50256);
    BOOST_TEST(padded_with["target"][5].get<int>() == 13);
    BOOST_TEST(padded["target"][4] == padded_with["target"][4]);
    // The author's sequential script: each position alone, a one-token input against the output that saw
    // the tokens before it. Position 0 has no context either way, and comes back as in context.
    const auto alone = cli_json(tiny + " --optimizer sequential --no-context --steps 300"),
               in_context = cli_json(tiny + " --optimizer sequential --steps 300");
    BOOST_TEST(alone["target"] == in_context["target"]);
    BOOST_TEST(alone["top_k"][0].size() == 5u);
    BOOST_TEST(alone["top_k"][0][0] == alone["target"][0], alone["decoded"]);
    BOOST_TEST(in_context["top_k"][0][0] == in_context["target"][0], in_context["decoded"]);
    BOOST_TEST(!alone.contains("shifted_distance"), "no shifted input of its own");
    BOOST_TEST(std::isfinite(alone["distance"].get<double>()));
    for (auto args : {" --decode direct-pinv", " --space vocabulary:one-hot", " --init-mean nan", " --pad-to 4",
                      " --pad-to 8:60000", " --pad-to 0", " --no-context",
                      " --optimizer sequential --no-context --mask tokens:1:end",
                      " --optimizer sequential --no-context --slice bidirectional"}) {
        const auto r = run_cli(tiny + args);
        BOOST_TEST_INFO(args << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
    const auto r = run_cli("invert --untrained llama:hidden_size=32,num_attention_heads=4,num_hidden_layers=1 " +
                           vocab() + " --prompt sky --legacy-positions");
    BOOST_TEST(one_line_error(r), r.out);
    BOOST_TEST(r.out.find("--legacy-positions is GPT-2's") != std::string::npos, r.out);
}

// hidden --hooks: the keys a KV cache holds, [tokens, key/value heads, d_head] per block, and nothing
// else; the default output has no point inside attention; a pattern that matches nothing is an error.
BOOST_AUTO_TEST_CASE(hidden_outputs_the_points_inside_attention_when_asked) {
    const std::string llama =
        "hidden --untrained llama:hidden_size=32,num_attention_heads=4,num_key_value_heads=2,num_hidden_layers=2 "
        "--ids 1,2,3";
    auto out = cli_json(llama + " --hooks 'blocks.*.attn.hook_k'");
    BOOST_TEST(out.size() == 3u, out.dump().substr(0, 200));  // tokens and two blocks' keys
    BOOST_TEST(out["blocks.1.attn.hook_k"].size() == 3u);
    BOOST_TEST(out["blocks.1.attn.hook_k"][2].size() == 2u);
    BOOST_TEST(out["blocks.1.attn.hook_k"][2][1].size() == 8u);
    out = cli_json(llama + " --hooks 'blocks.0.attn.hook_pattern,blocks.0.hook_attn_out'");
    BOOST_TEST(out["blocks.0.attn.hook_pattern"].size() == 4u);  // heads, then query × key
    BOOST_TEST(out["blocks.0.attn.hook_pattern"][3][2].size() == 3u);
    BOOST_TEST(out.contains("blocks.0.hook_attn_out"));
    out = cli_json(llama);
    for (const auto& [name, value] : out.items()) BOOST_TEST(name.find(".attn.") == std::string::npos, name);
    auto r = run_cli(llama + " --hooks 'blocks.9.*'");
    BOOST_TEST(r.status == 1, r.out);
    BOOST_TEST(r.out.find("matches no hook point") != std::string::npos, r.out);
    r = run_cli(llama + " --hooks ','");
    BOOST_TEST(one_line_error(r), r.out);
}

BOOST_AUTO_TEST_CASE(attribute_and_bandwidth) {
    const std::string tiny = " --untrained gpt2:n_layer=1,n_embd=64,n_head=4,n_positions=32 " + vocab();
    auto out = cli_json("attribute" + tiny + " --prompt 'The wipers on the bus go swish swish' --method occlusion");
    BOOST_TEST(out["scores"].size() == 11u);
    BOOST_TEST(*std::max_element(out["scores"].begin(), out["scores"].end()) == 1.0);
    out = cli_json("bandwidth" + tiny + " --prompt 'The sky is blue.' --steps 150");
    BOOST_TEST(out["d_model"] == 64);
    BOOST_TEST(out["k"].get<int>() <= 64);
    BOOST_TEST(out["curve"].size() >= 8u);
    for (auto args : {"attribute --untrained gpt2 --prompt x --method shapley",
                      "bandwidth --untrained gpt2 --prompt x --slice no-norm", "attribute --untrained gpt2"}) {
        auto r = run_cli(args);
        BOOST_TEST_INFO(args << " -> " << r.out);
        BOOST_TEST(one_line_error(r));
    }
}

// llama2.c's own C forward pass wrote the reference: the CLI reproduces its greedy continuation
// from both files of stories260K.
BOOST_AUTO_TEST_CASE(generate_reproduces_llama2c_from_both_loaders) {
    auto ref = read_json(testing::shared("reference/stories260K_logits.json"));
    auto greedy = ref["greedy_from_bos"].get<std::vector<std::int64_t>>();
    const int steps = 20;
    for (auto model :
         {testing::shared("models/stories260K/stories260K.bin"), testing::shared("models/stories260K/hf")}) {
        auto out = cli_json("generate --model '" + model.string() + "' --ids 1 --steps " + std::to_string(steps));
        BOOST_TEST_INFO(model);
        BOOST_TEST(out["ids"].get<std::vector<std::int64_t>>() ==
                   std::vector<std::int64_t>(greedy.begin(), greedy.begin() + steps + 1));
    }
    auto r = run_cli("generate --untrained llama --ids 1 --steps 0");
    BOOST_TEST(one_line_error(r));
    r = run_cli("hidden --untrained falcon --ids 1");
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.find("unknown model_type \"falcon\"") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(every_subcommand_has_help) {
    for (auto cmd : {"tokenize", "hidden", "generate", "invert", "attribute", "bandwidth"}) {
        auto r = run_cli(std::string(cmd) + " --help");
        BOOST_TEST(r.status == 0);
        BOOST_TEST(r.out.find("usage: inputrep " + std::string(cmd)) != std::string::npos);
    }
}

// --csv: the run's arrays as two long-format files a notebook reads as they are.
BOOST_AUTO_TEST_CASE(invert_writes_its_traces_and_top_k_as_csv) {
    const auto dir = std::filesystem::temp_directory_path() / "inputrep_cli_csv";
    std::filesystem::remove_all(dir);
    auto out = cli_json("invert --untrained gpt2:n_layer=1,n_embd=64,n_head=4 " + vocab() +
                        " --prompt 'The sky is blue.' --steps 20 --restarts 2 "
                        "--top-k 3 --csv '" +
                        dir.string() + "'");
    auto lines = [](const std::filesystem::path& f) {
        std::ifstream in(f);
        std::vector<std::string> all;
        for (std::string line; std::getline(in, line);) all.push_back(line);
        return all;
    };
    const auto traces = lines(dir / "traces.csv"), top_k = lines(dir / "top_k.csv");
    BOOST_REQUIRE(!traces.empty() && !top_k.empty());
    BOOST_TEST(traces.front() == "prompt,restart,step,distance");
    BOOST_TEST(traces.size() == 1 + 2 * 21u);  // 2 restarts × (20 steps + the final distance)
    BOOST_TEST(top_k.front() == "prompt,k,position,id,score,target");
    BOOST_TEST(top_k.size() == 1 + 3 * out["ids"].size());
    std::filesystem::remove_all(dir);
}

// --weights-seed fixes an untrained model while --seed moves the start alone: the seed's explanation
// of a draw by "the optimiser's start" needs both held apart (--seed alone sets both).
BOOST_AUTO_TEST_CASE(weights_seed_holds_the_model_while_seed_moves_the_start) {
    const std::string model = " --untrained gpt2:n_layer=1,n_embd=32,n_head=4,n_positions=8 " + vocab();
    auto hidden = [&](const std::string& seeds) {
        return cli_json("hidden" + model + " --ids 464,6766,318 " + seeds)["blocks.0.hook_resid_post"];
    };
    BOOST_TEST(hidden("--seed 0 --weights-seed 5") == hidden("--seed 1 --weights-seed 5"));
    BOOST_TEST(hidden("--seed 5") == hidden("--seed 1 --weights-seed 5"));
    BOOST_TEST(hidden("--seed 0") != hidden("--seed 1"));
    auto trace = [&](const std::string& seeds) {
        return cli_json("invert" + model + " --prompt 'The sky' --steps 3 " + seeds)["trace"];
    };
    BOOST_TEST(trace("--seed 0 --weights-seed 5") != trace("--seed 1 --weights-seed 5"));
    BOOST_TEST(one_line_error(run_cli("hidden --model '" + testing::shared("models/gpt2-tiny-random").string() +
                                      "' --ids 1 --weights-seed 2")));
}

BOOST_AUTO_TEST_SUITE_END()
