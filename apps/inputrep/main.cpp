// inputrep — the command line over the library.
//
//   inputrep tokenize [--vocab DIR] TEXT
//   inputrep hidden   (--model DIR | --untrained FAMILY[:k=v,...]) (--ids I,J,... | --prompt TEXT) [--logits]
//   inputrep invert   (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [--prompt TEXT ...] [policy options]
//
// Every subcommand takes --json (one JSON object on stdout) and --help. Options are parsed into
// runtime policies (AnyMetric, AnyOptimizer, AnyMask, BlockSlice): one instantiation per model
// family rather than the product of every axis.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"

using namespace inputrep;
using namespace cli;

namespace {

const std::vector<Option> common_options{
    {"json", false, "print one JSON object"},
    {"help", false, "show this help"},
};
const std::vector<Option> model_options{
    {"model", true, "Hugging Face model folder (config.json + safetensors, sharded or not) or a llama2.c .bin file"},
    {"untrained", true, "untrained model FAMILY[:key=value,...] with config.json keys, e.g. gpt2:n_layer=1"},
    {"seed", true, "seed for untrained weights and the optimisation (default 0)"},
    {"device", true, "cpu (default), cuda or cuda:N"},
    {"dtype", true, "f32 (default), bf16 or f16 (f16 computes as f32 on the CPU)"},
    {"vocab", true, "tokenizer folder (default: the model folder's, else the data directory from scripts/setup)"},
    {"threads", true, "libtorch intra-op threads (default 1: more compete with OpenBLAS's own threads; docs/performance.md)"},
};

std::filesystem::path default_vocab() {
    const char* env = std::getenv("INPUTREP_DATA");
    return std::filesystem::path(env ? env : INPUTREP_DATA_DIR) / "gpt2";
}

bool has_tokenizer_files(const std::filesystem::path& dir) {
    for (auto f : {"vocab.json", "encoder.json", "tokenizer.json"})
        if (std::filesystem::exists(dir / f)) return true;
    return false;
}

Tokenizer tokenizer_for(const Args& args) {
    if (args.has("vocab")) return Tokenizer::from_folder(args.get("vocab"));
    if (args.has("model") && has_tokenizer_files(args.get("model"))) return Tokenizer::from_folder(args.get("model"));
    auto dir = default_vocab();
    require(std::filesystem::exists(dir), "no tokenizer: pass --vocab DIR, or run scripts/setup to fetch GPT-2's vocabulary into ",
            dir.string());
    return Tokenizer::from_folder(dir);
}

std::vector<std::int64_t> parse_ids(const std::string& text) {
    std::vector<std::int64_t> ids;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto comma = text.find(',', start);
        auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        try {
            std::size_t used = 0;
            ids.push_back(std::stoll(item, &used));
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::logic_error&) {
            throw UsageError("--ids expects comma-separated integers, got \"" + item + "\"");
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return ids;
}

Placement placement_of(const Args& args) {
    Placement p;
    if (args.has("device")) p.device = parse_device(args.get("device"));
    if (args.has("dtype")) p.dtype = parse_dtype(args.get("dtype"));
    return p;
}

// Calls `body(model)` with the model the options name, built with only what `needs` asks for.
template <class Body>
void with_model(const Args& args, Needs needs, Body&& body) {
    if (args.has("model") == args.has("untrained")) throw UsageError("give exactly one of --model DIR and --untrained FAMILY");
    const auto threads = args.number<int>("threads").value_or(1);
    if (threads < 1) throw UsageError("--threads must be at least 1");
    at::set_num_threads(threads);
    const auto placement = placement_of(args);
    const auto seed = args.number<std::uint64_t>("seed").value_or(0);
    std::string family, overrides;
    std::optional<Json> config;
    if (args.has("model")) {
        config = model_config(args.get("model"));
        family = config_value<std::string>(*config, "model_type", "");
    } else {
        auto spec = args.get("untrained");
        auto colon = spec.find(':');
        family = spec.substr(0, colon);
        if (colon != std::string::npos) overrides = spec.substr(colon + 1);
    }
    auto build = [&]<class M>() {
        if (config) {
            auto depth = M::Config::from_json(*config).layers();
            if (needs.blocks.end < 0) needs.blocks = {0, depth};
            require(needs.blocks.end <= depth, family, " model has ", depth, " blocks; --blocks asks for block ", needs.blocks.end - 1);
            return load<M>(args.get("model"), placement, needs);
        }
        auto cfg = config_with<M>(family == "mistral" && overrides.find("model_type") == std::string::npos
                                      ? "model_type=mistral" + (overrides.empty() ? "" : "," + overrides)
                                      : overrides);
        if (needs.blocks.end < 0) needs.blocks = {0, cfg.layers()};
        require(needs.blocks.end <= cfg.layers(), family, " model has ", cfg.layers(), " blocks; --blocks asks for block ", needs.blocks.end - 1);
        return untrained<M>(cfg, placement, seed, needs);
    };
    if (family == "gpt2") return body(build.template operator()<GPT2>());
    if (family == "llama" || family == "mistral") return body(build.template operator()<Llama>());
    if (family == "gptj") return body(build.template operator()<GPTJ>());
    if (family == "mixer") return body(build.template operator()<Mixer>());
    fail("unknown model_type \"", family, "\" (supported: gpt2, llama, mistral, gptj, mixer)");
}

BlockRange parse_blocks(const std::string& text) {
    auto colon = text.find(':');
    try {
        if (colon == std::string::npos) throw std::invalid_argument(text);
        BlockRange r{std::stoi(text.substr(0, colon)), std::stoi(text.substr(colon + 1))};
        if (r.begin < 0 || r.begin >= r.end) throw UsageError("--blocks B:E needs 0 <= B < E (E is exclusive), got " + text);
        return r;
    } catch (const std::logic_error&) {
        throw UsageError("--blocks expects B:E, got \"" + text + "\"");
    }
}

std::optional<std::pair<double, double>> parse_rates(const Args& args) {
    if (!args.has("lr")) return std::nullopt;
    auto text = args.get("lr");
    auto colon = text.find(':');
    try {
        double start = std::stod(text.substr(0, colon));
        double end = colon == std::string::npos ? start : std::stod(text.substr(colon + 1));
        return std::pair{start, end};
    } catch (const std::logic_error&) {
        throw UsageError("--lr expects START:END, got \"" + text + "\"");
    }
}

// Policy names are checked before any model is built, so a typo costs nothing.
template <class Policy>
Policy parse_policy(const std::string& option, const std::string& text) {
    try {
        return Policy::parse(text);
    } catch (const Error& e) {
        throw UsageError("--" + option + ": " + e.what());
    }
}

int tokenize(const std::vector<std::string>& argv) {
    auto spec = options_of({common_options, {{"vocab", true, "tokenizer folder (default: the data directory from scripts/setup)"}}});
    Args args(argv, spec);
    if (args.has("help")) return print_help("inputrep tokenize [--vocab DIR] [--json] TEXT", spec), 0;
    if (args.positional.size() != 1) throw UsageError("tokenize takes exactly one TEXT argument");
    auto tok = tokenizer_for(args);
    auto ids = tok.encode(args.positional[0]);
    if (args.has("json")) {
        std::cout << Json{{"ids", ids}}.dump() << "\n";
    } else {
        for (auto id : ids) std::cout << id << "\t" << Json(tok.decode(std::vector<std::int64_t>{id})).dump() << "\n";
    }
    return 0;
}

int hidden(const std::vector<std::string>& argv) {
    auto spec = options_of({common_options, model_options,
                            {{"ids", true, "token ids I,J,..."}, {"prompt", true, "text to tokenize instead of --ids"},
                             {"logits", false, "also output the logits (runs the final norm and head)"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep hidden (--model DIR | --untrained FAMILY[:k=v,...]) (--ids I,J,... | --prompt TEXT) [--logits] [--json]", spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (args.has("ids") == args.has("prompt")) throw UsageError("give exactly one of --ids and --prompt");
    auto ids = args.has("ids") ? parse_ids(args.get("ids")) : tokenizer_for(args).encode(args.get("prompt"));
    require(!ids.empty(), "empty prompt: no tokens to run");
    with_model(args, Needs{{0, -1}, true, args.has("logits")}, [&](const auto& model) {
        require(static_cast<std::int64_t>(ids.size()) <= model.context_length(), "prompt of ", ids.size(),
                " tokens is longer than the model's context of ", model.context_length(), " positions");
        at::NoGradGuard no_grad;
        auto input = at::tensor(ids, at::kLong).unsqueeze(0).to(model.placement().device);
        ActivationCache cache;
        auto logits = model.run_with_cache(input, cache);
        std::vector<at::Tensor> states{cache["blocks.0.hook_resid_pre"]};
        for (int i = 0; i < model.depth(); ++i) states.push_back(cache["blocks." + std::to_string(i) + ".hook_resid_post"]);
        auto to_json = [](const at::Tensor& t) {
            auto c = t.to(at::kCPU, at::kFloat).contiguous();
            Json rows = Json::array();
            for (std::int64_t i = 0; i < c.size(0); ++i) {
                auto row = c[i];
                rows.push_back(std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel()));
            }
            return rows;
        };
        if (args.has("json")) {
            Json out{{"tokens", ids}, {"hidden_states", Json::array()}};
            for (auto& s : states) out["hidden_states"].push_back(to_json(s[0]));
            if (logits.defined()) out["logits"] = to_json(logits[0]);
            std::cout << out.dump() << "\n";
        } else {
            for (const std::pair<std::string, at::Tensor>& hook : cache.entries())
                std::cout << hook.first << "\t" << shape_string(hook.second.sizes()) << "\tnorm " << hook.second.norm().item<double>() << "\n";
            if (logits.defined()) std::cout << "logits\t" << shape_string(logits.sizes()) << "\n";
        }
    });
    return 0;
}

const std::vector<Option> policy_options{
    {"blocks", true, "slice B:E, blocks B..E-1 (default 0:1)"},
    {"slice", true, "modifiers, comma-separated: bidirectional, no-residual, no-norm, attention (attention sub-layers alone), "
                    "attention:I (block I's alone), concat:E1:E2:... (outputs after blocks B..E1-1, B..E2-1, ... joined)"},
    {"metric", true, "l1 (default), l2, cosine (1-|cos|), signed-cosine or combined:ALPHA:BETA"},
    {"optimizer", true, "adam (default), gd (plain gradient descent), sequential[:adam|gd] (one position at a time)"},
    {"steps", true, "optimisation steps (default: the family's)"},
    {"lr", true, "learning rate START:END, decaying linearly (default: the family's)"},
    {"init-scale", true, "sigma of the N(0, sigma) initial input (default: the family's)"},
};

SliceSpec parse_slice(const Args& args, bool& plain) {
    SliceSpec spec;
    spec.parts = {args.has("blocks") ? parse_blocks(args.get("blocks")) : BlockRange{0, 1}};
    plain = !args.has("slice");
    std::string list = args.get("slice");
    for (std::size_t start = 0; start < list.size();) {
        auto comma = list.find(',', start);
        auto item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? list.size() : comma + 1;
        if (item == "bidirectional") spec.is_causal = false;
        else if (item == "no-residual") spec.block_variant.attention_residual = false;
        else if (item == "no-norm") spec.block_variant.norms = false;
        else if (item == "attention") spec.block_variant = {false, false, false};
        else if (item.starts_with("attention:")) {
            try {
                int i = std::stoi(item.substr(10));
                if (i < 0) throw std::invalid_argument(item);
                spec.parts = {{i, i + 1}}, spec.block_variant = {false, false, false};
            } catch (const std::logic_error&) {
                throw UsageError("--slice attention:I needs a block index, got \"" + item + "\"");
            }
        } else if (item.starts_with("concat:")) {
            const int begin = spec.parts.front().begin;
            spec.parts.clear();
            std::string ends = item.substr(7);
            for (std::size_t s = 0; s <= ends.size();) {
                auto colon = ends.find(':', s);
                auto e = ends.substr(s, colon == std::string::npos ? std::string::npos : colon - s);
                try {
                    int end = std::stoi(e);
                    if (end <= begin) throw std::invalid_argument(e);
                    spec.parts.push_back({begin, end});
                } catch (const std::logic_error&) {
                    throw UsageError("--slice concat:E1:E2:... needs block ends after " + std::to_string(begin) + ", got \"" + e + "\"");
                }
                if (colon == std::string::npos) break;
                s = colon + 1;
            }
        } else {
            throw UsageError("unknown --slice modifier \"" + item + "\"");
        }
    }
    return spec;
}

void parse_run_options(const Args& args, RunOptions& o) {
    o.steps = args.number<int>("steps").value_or(0);
    if (o.steps < 0 || (args.has("steps") && o.steps == 0)) throw UsageError("--steps must be positive");
    if (auto rates = parse_rates(args)) o.lr_start = rates->first, o.lr_end = rates->second;
    o.init_scale = args.number<double>("init-scale");
    if (o.init_scale && *o.init_scale <= 0) throw UsageError("--init-scale must be positive");
    o.seed = args.number<std::uint64_t>("seed").value_or(0);
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw UsageError("--batch: cannot read " + path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

int generate(const std::vector<std::string>& argv) {
    auto spec = options_of({common_options, model_options,
                            {{"ids", true, "prompt token ids I,J,..."}, {"prompt", true, "text to tokenize instead of --ids"},
                             {"steps", true, "tokens to generate (default 16)"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep generate (--model PATH | --untrained FAMILY[:k=v,...]) (--ids I,J,... | --prompt TEXT) [--steps N] [--json]", spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (args.has("ids") == args.has("prompt")) throw UsageError("give exactly one of --ids and --prompt");
    const int steps = args.number<int>("steps").value_or(16);
    if (steps < 1) throw UsageError("--steps must be positive");
    auto ids = args.has("ids") ? parse_ids(args.get("ids")) : tokenizer_for(args).encode(args.get("prompt"));
    require(!ids.empty(), "empty prompt: generation needs at least one token");
    with_model(args, Needs{{0, -1}, true, true}, [&](const auto& model) {
        auto out = inputrep::generate(model, ids, steps);
        if (args.has("json")) {
            std::cout << Json{{"ids", out}}.dump() << "\n";
        } else {
            for (auto id : out) std::cout << id << " ";
            std::cout << "\n";
        }
    });
    return 0;
}

int invert(const std::vector<std::string>& argv) {
    auto spec = options_of(
        {common_options, model_options, policy_options,
         {{"prompt", true, "text to recover (repeat for a batch of prompts)"},
          {"ids", true, "token ids I,J,... instead of --prompt (repeatable)"},
          {"batch", true, "a file of prompts, one per line, all in one batch"},
          {"mask", true, "compared outputs: all (default), last, tokens:B:E, neurons:B:E, or a token and a neuron mask joined by ','"},
          {"space", true, "embedding (default: optimise the block-0 input) or vocabulary (optimise a vocabulary-sized vector)"},
          {"decode", true, "pinv (default), nearest, or restricted:TEXT (only the tokens of TEXT)"},
          {"restarts", true, "random restarts per prompt in one batch, best kept (default 1)"},
          {"top-k", true, "decoded lines (default 5)"},
          {"early-stop", false, "stop once every prompt is closer than its shifted input"},
          {"report", true, "write an HTML report with the distance per step to this file"},
          {"stats", false, "add loop steps per second and peak resident memory"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep invert (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [options] [--json]", spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (!args.has("ids") && !args.has("prompt") && !args.has("batch")) throw UsageError("give --prompt TEXT (or --ids I,J,... or --batch FILE)");

    InvertRequest q{.tokenizer = tokenizer_for(args)};
    q.slice = parse_slice(args, q.plain_blocks);
    q.metric = parse_policy<AnyMetric>("metric", args.get("metric", "l1"));
    auto optimizer = args.get("optimizer", "adam");
    if (optimizer.starts_with("sequential")) {
        q.sequential = true;
        optimizer = optimizer == "sequential" ? "adam" : optimizer.substr(optimizer.find(':') + 1);
    }
    q.optimizer = parse_policy<AnyOptimizer>("optimizer", optimizer);
    q.mask = parse_policy<AnyMask>("mask", args.get("mask", "all"));
    auto space = args.get("space", "embedding");
    if (space != "embedding" && space != "vocabulary") throw UsageError("--space expects embedding or vocabulary, got \"" + space + "\"");
    q.vocabulary_space = space == "vocabulary";
    auto decode = args.get("decode", "pinv");
    if (decode == "pinv") q.decoder = {PseudoInverse{}};
    else if (decode == "nearest") q.decoder = {Nearest{}};
    else if (decode.starts_with("restricted:")) q.decoder = {Restricted<PseudoInverse>{q.tokenizer.encode(decode.substr(11))}};
    else throw UsageError("--decode expects pinv, nearest or restricted:TEXT, got \"" + decode + "\"");
    parse_run_options(args, q.options);
    q.options.restarts = args.number<int>("restarts").value_or(1);
    if (q.options.restarts < 1) throw UsageError("--restarts must be at least 1");
    q.options.top_k = args.number<int>("top-k").value_or(5);
    if (q.options.top_k < 1) throw UsageError("--top-k must be at least 1");
    q.options.early_stop = args.has("early-stop");
    q.json = args.has("json"), q.stats = args.has("stats");
    if (args.has("report")) q.report = args.get("report");
    if (!q.json && isatty(STDERR_FILENO))
        q.options.progress = [](int step, int steps) { std::cerr << "\rstep " << step << "/" << steps << std::flush; };

    for (auto& text : args.all("prompt")) q.prompts.push_back(q.tokenizer.encode(text));
    for (auto& file : args.all("batch"))
        for (auto& text : read_lines(file)) q.prompts.push_back(q.tokenizer.encode(text));
    for (auto& ids : args.all("ids")) q.prompts.push_back(parse_ids(ids));

    with_model(args, Needs{q.slice.range(), true, false}, [&](const auto& model) { run_invert(model, q); });
    return 0;
}

int attribute(const std::vector<std::string>& argv) {
    auto spec = options_of({common_options, model_options,
                            {{"prompt", true, "text whose next-token prediction is attributed"},
                             {"ids", true, "token ids I,J,... instead of --prompt"},
                             {"method", true, "gradxinput, occlusion or combined (default: combined)"},
                             {"target", true, "what the gradient explains: logit-sum (default, the seed's) or predicted"},
                             {"position", true, "attribute the prediction made at this position (default: the last)"},
                             {"neutral", true, "token id that replaces an occluded token (default: the family's end-of-text)"},
                             {"html", true, "write the coloured HTML report to this file"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep attribute (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [--method M] [--html FILE] [--json]",
                          spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (args.has("ids") == args.has("prompt")) throw UsageError("give exactly one of --prompt and --ids");
    AttributeRequest q{.tokenizer = tokenizer_for(args)};
    q.ids = args.has("ids") ? parse_ids(args.get("ids")) : q.tokenizer.encode(args.get("prompt"));
    auto method = args.get("method", "combined");
    if (method == "gradxinput") method = "gradient_x_input";
    try {
        q.method = parse_attribution_method(method);
    } catch (const Error& e) {
        throw UsageError(std::string("--method: ") + e.what());
    }
    auto target = args.get("target", "logit-sum");
    if (target != "logit-sum" && target != "predicted") throw UsageError("--target expects logit-sum or predicted");
    q.options.target = target == "predicted" ? AttributionTarget::predicted_logit : AttributionTarget::logit_sum;
    if (auto p = args.number<std::int64_t>("position")) q.options.position = *p;
    if (auto n = args.number<std::int64_t>("neutral")) q.options.neutral_id = *n;
    if (args.has("html")) q.html = args.get("html");
    q.json = args.has("json");
    with_model(args, Needs{{0, -1}, true, true}, [&](const auto& model) { run_attribute(model, q); });
    return 0;
}

int bandwidth(const std::vector<std::string>& argv) {
    auto spec = options_of({common_options, model_options, policy_options,
                            {{"prompt", true, "text to recover"},
                             {"ids", true, "token ids I,J,... instead of --prompt"},
                             {"report", true, "write an HTML report with the bandwidth curve to this file"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep bandwidth (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [--blocks B:E] [--json]", spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (args.has("ids") == args.has("prompt")) throw UsageError("give exactly one of --prompt and --ids");
    if (args.has("slice")) throw UsageError("bandwidth sweeps whole blocks: --slice is not supported here");
    BandwidthRequest q;
    auto tokenizer = tokenizer_for(args);
    q.prompt = args.has("ids") ? parse_ids(args.get("ids")) : tokenizer.encode(args.get("prompt"));
    q.blocks = args.has("blocks") ? parse_blocks(args.get("blocks")) : BlockRange{0, 1};
    q.metric = parse_policy<AnyMetric>("metric", args.get("metric", "l1"));
    q.optimizer = parse_policy<AnyOptimizer>("optimizer", args.get("optimizer", "adam"));
    parse_run_options(args, q.options.run);
    q.json = args.has("json");
    if (args.has("report")) q.report = args.get("report");
    if (!q.json && isatty(STDERR_FILENO))
        q.options.progress = [](std::int64_t k, double f) { std::cerr << "k=" << k << ": " << f << " exact\n"; };
    with_model(args, Needs{{0, q.blocks.end}, true, false}, [&](const auto& model) { run_bandwidth(model, q); });
    return 0;
}

}  // namespace

int train_main(int argc, char** argv);  // apps/inputrep/train.cpp; temporary until the CLI11 command line registers register_train

int main(int argc, char** argv) {
    const std::string usage = "usage: inputrep (tokenize | hidden | generate | invert | attribute | bandwidth) [options]; inputrep COMMAND --help";
    if (argc < 2) {
        std::cerr << usage << "\n";
        return 2;
    }
    const std::string command = argv[1];
    const std::vector<std::string> rest(argv + 2, argv + argc);
    try {
        if (command == "tokenize") return tokenize(rest);
        if (command == "hidden") return hidden(rest);
        if (command == "invert") return invert(rest);
        if (command == "generate") return generate(rest);
        if (command == "attribute") return attribute(rest);
        if (command == "bandwidth") return bandwidth(rest);
        if (command == "train" || command == "eval") return train_main(argc, argv);
        if (command == "--help" || command == "help") return std::cout << usage << "\n", 0;
        throw UsageError("unknown command \"" + command + "\"");
    } catch (const UsageError& e) {
        std::cerr << "inputrep " << command << ": " << e.what() << "\n";
        return 2;
    } catch (const Error& e) {
        std::cerr << "inputrep " << command << ": error: " << e.what() << "\n";
        return 1;
    } catch (const c10::Error& e) {
        std::cerr << "inputrep " << command << ": libtorch error: " << e.what_without_backtrace() << "\n";
        return 1;
    }
}
