// inputrep — the command line over the library.
//
//   inputrep tokenize [--vocab DIR] TEXT
//   inputrep hidden   (--model DIR | --untrained FAMILY[:k=v,...]) (--ids I,J,... | --prompt TEXT) [--logits]
//   inputrep invert   (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [--prompt TEXT ...] [policy options]
//
// Every subcommand takes --json (one JSON object on stdout) and --help. Options are parsed into
// runtime policies (AnyMetric, AnyOptimizer, AnyMask, BlockSlice): one instantiation per model
// family rather than the product of every axis.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

namespace {

// A mistake in the command line itself: one line on stderr, exit code 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Option {
    std::string name;
    bool takes_value;
    std::string help;
};

class Args {
public:
    Args(std::vector<std::string> argv, const std::vector<Option>& spec) {
        for (std::size_t i = 0; i < argv.size(); ++i) {
            const auto& a = argv[i];
            if (!a.starts_with("--") || a == "--") {
                positional.push_back(a);
                continue;
            }
            auto name = a.substr(2);
            std::optional<std::string> inline_value;
            if (auto eq = name.find('='); eq != std::string::npos) inline_value = name.substr(eq + 1), name = name.substr(0, eq);
            auto it = std::find_if(spec.begin(), spec.end(), [&](const Option& o) { return o.name == name; });
            if (it == spec.end()) throw UsageError("unknown option --" + name);
            if (!it->takes_value) {
                if (inline_value) throw UsageError("option --" + name + " takes no value");
                values[name].push_back("");
                continue;
            }
            if (inline_value) values[name].push_back(*inline_value);
            else if (i + 1 < argv.size()) values[name].push_back(argv[++i]);
            else throw UsageError("option --" + name + " needs a value");
        }
    }
    bool has(const std::string& name) const { return values.contains(name); }
    std::string get(const std::string& name, const std::string& fallback = "") const {
        auto it = values.find(name);
        return it == values.end() ? fallback : it->second.back();
    }
    std::vector<std::string> all(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? std::vector<std::string>{} : it->second;
    }
    template <class T>
    std::optional<T> number(const std::string& name) const {
        if (!has(name)) return std::nullopt;
        auto text = get(name);
        try {
            std::size_t used = 0;
            T v;
            if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
            else v = static_cast<T>(std::stoll(text, &used));
            if (used != text.size()) throw std::invalid_argument(text);
            return v;
        } catch (const std::logic_error&) {
            throw UsageError("option --" + name + " expects a number, got \"" + text + "\"");
        }
    }
    std::vector<std::string> positional;

private:
    std::map<std::string, std::vector<std::string>> values;
};

const std::vector<Option> common_options{
    {"json", false, "print one JSON object"},
    {"help", false, "show this help"},
};
const std::vector<Option> model_options{
    {"model", true, "Hugging Face model folder (config.json + safetensors)"},
    {"untrained", true, "untrained model FAMILY[:key=value,...] with config.json keys, e.g. gpt2:n_layer=1"},
    {"seed", true, "seed for untrained weights and the optimisation (default 0)"},
    {"device", true, "cpu (default), cuda or cuda:N"},
    {"dtype", true, "f32 (default), bf16 or f16 (f16 computes as f32 on the CPU)"},
    {"vocab", true, "tokenizer folder (default: the model folder's, else the data directory from scripts/setup)"},
};

std::vector<Option> options_of(std::initializer_list<std::vector<Option>> groups) {
    std::vector<Option> all;
    for (auto& g : groups) all.insert(all.end(), g.begin(), g.end());
    return all;
}

void print_help(const std::string& usage, const std::vector<Option>& spec) {
    std::cout << "usage: " << usage << "\n\noptions:\n";
    for (auto& o : spec) {
        auto flag = "--" + o.name + (o.takes_value ? " VALUE" : "");
        std::cout << "  " << flag << std::string(flag.size() < 22 ? 22 - flag.size() : 1, ' ') << o.help << "\n";
    }
}

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
    const auto placement = placement_of(args);
    const auto seed = args.number<std::uint64_t>("seed").value_or(0);
    std::string family, overrides;
    std::optional<Json> config;
    if (args.has("model")) {
        config = read_config(args.get("model"));
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
        auto cfg = config_with<M>(overrides);
        if (needs.blocks.end < 0) needs.blocks = {0, cfg.layers()};
        require(needs.blocks.end <= cfg.layers(), family, " model has ", cfg.layers(), " blocks; --blocks asks for block ", needs.blocks.end - 1);
        return untrained<M>(cfg, placement, seed, needs);
    };
    if (family == "gpt2") return body(build.template operator()<GPT2>());
    fail("unknown model_type \"", family, "\" (supported: gpt2)");
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

std::int64_t peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
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

int invert(const std::vector<std::string>& argv) {
    auto spec = options_of(
        {common_options, model_options,
         {{"prompt", true, "text to recover (repeat for a batch of prompts)"},
          {"ids", true, "token ids I,J,... instead of --prompt"},
          {"blocks", true, "slice B:E, blocks B..E-1 (default 0:1)"},
          {"metric", true, "l1 (default), l2, cosine (1-|cos|), signed-cosine or combined:ALPHA:BETA"},
          {"optimizer", true, "adam (default) or gd (plain gradient descent)"},
          {"steps", true, "optimisation steps (default: the family's)"},
          {"lr", true, "learning rate START:END, decaying linearly (default: the family's)"},
          {"init-scale", true, "sigma of the N(0, sigma) initial input (default: the family's)"},
          {"mask", true, "compared outputs: all (default), last or tokens:B:E"},
          {"restarts", true, "random restarts per prompt in one batch, best kept (default 1)"},
          {"top-k", true, "decoded lines (default 5)"},
          {"stats", false, "add loop steps per second and peak resident memory"}}});
    Args args(argv, spec);
    if (args.has("help"))
        return print_help("inputrep invert (--model DIR | --untrained FAMILY[:k=v,...]) --prompt TEXT [options] [--json]", spec), 0;
    if (!args.positional.empty()) throw UsageError("unexpected argument \"" + args.positional[0] + "\"");
    if (args.has("ids") == args.has("prompt")) throw UsageError("give --prompt TEXT (or --ids I,J,...)");

    const auto slice = BlockSlice{args.has("blocks") ? parse_blocks(args.get("blocks")) : BlockRange{0, 1}};
    const auto metric = parse_policy<AnyMetric>("metric", args.get("metric", "l1"));
    const auto optimizer = parse_policy<AnyOptimizer>("optimizer", args.get("optimizer", "adam"));
    const auto mask = parse_policy<AnyMask>("mask", args.get("mask", "all"));
    RunOptions options;
    options.steps = args.number<int>("steps").value_or(0);
    if (options.steps < 0 || (args.has("steps") && options.steps == 0)) throw UsageError("--steps must be positive");
    if (auto rates = parse_rates(args)) options.lr_start = rates->first, options.lr_end = rates->second;
    options.init_scale = args.number<double>("init-scale");
    if (options.init_scale && *options.init_scale <= 0) throw UsageError("--init-scale must be positive");
    options.seed = args.number<std::uint64_t>("seed").value_or(0);
    options.restarts = args.number<int>("restarts").value_or(1);
    if (options.restarts < 1) throw UsageError("--restarts must be at least 1");
    options.top_k = args.number<int>("top-k").value_or(5);
    if (options.top_k < 1) throw UsageError("--top-k must be at least 1");
    const bool json = args.has("json");
    if (!json && isatty(STDERR_FILENO))
        options.progress = [](int step, int steps) { std::cerr << "\rstep " << step << "/" << steps << std::flush; };

    auto tokenizer = tokenizer_for(args);
    std::vector<std::vector<std::int64_t>> prompts;
    for (auto& text : args.all("prompt")) prompts.push_back(tokenizer.encode(text));
    for (auto& ids : args.all("ids")) prompts.push_back(parse_ids(ids));

    with_model(args, Needs{slice.range(), true, false}, [&](const auto& model) {
        Experiment exp(model, slice, metric, optimizer, mask, EmbeddingSpace{}, PseudoInverse{});
        exp.with_tokenizer(tokenizer);
        auto results = exp.run(prompts, options);
        if (options.progress) std::cerr << "\n";
        auto describe = [&](const Result& r) {
            Json top_k = Json::array();
            for (auto& line : r.top_k_ids()) top_k.push_back(line);
            Json out{{"target", r.target()}, {"ids", r.ids()},
                     {"top_k", top_k},       {"top_k_text", r.top_k(r.top_k_ids().size())},
                     {"decoded", r.decoded()}, {"exact", r.exact()},
                     {"distance", r.distance()}, {"shifted_distance", r.shifted_distance()},
                     {"trace", std::vector<float>(r.trace().begin(), r.trace().end())},
                     {"steps_per_second", r.steps_per_second()}, {"restart", r.restart()}, {"batch", r.batch()}};
            if (args.has("stats")) out["peak_rss_bytes"] = peak_rss_bytes();
            return out;
        };
        if (json) {
            if (results.size() == 1) {
                std::cout << describe(results[0]).dump() << "\n";
            } else {
                Json all = Json::array();
                for (auto& r : results) all.push_back(describe(r));
                std::cout << Json{{"results", all}}.dump() << "\n";
            }
            return;
        }
        for (auto& r : results) {
            std::cout << "target:   " << Json(tokenizer.decode(r.target())).dump() << "\n";
            auto lines = r.top_k(r.top_k_ids().size());
            for (std::size_t k = 0; k < lines.size(); ++k) std::cout << "top-" << k + 1 << ":    " << Json(lines[k]).dump() << "\n";
            std::cout << "distance: " << r.distance() << " (shifted input: " << r.shifted_distance() << ", "
                      << (r.succeeded_in_distance() ? "closer" : "not closer") << ")\n"
                      << "exact:    " << (r.exact() ? "yes" : "no") << " (" << r.exact_tokens() << "/" << r.target().size() << " tokens)\n";
            if (args.has("stats"))
                std::cout << "speed:    " << r.steps_per_second() << " steps/s (batch " << r.batch() << "), peak RSS "
                          << peak_rss_bytes() / (1 << 20) << " MiB\n";
        }
    });
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string usage = "usage: inputrep (tokenize | hidden | invert) [options]; inputrep COMMAND --help";
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
