// Looking at a tokenizer and a model's forward pass: tokenize, hidden, generate.
#include <iostream>

#include <fmt/format.h>

#include "commands.hpp"

namespace cli {

namespace {

// A tensor as nested arrays: [tokens, d] as rows, the per-head hooks one level deeper.
Json rows_of(const at::Tensor& t) {
    if (t.dim() == 1) {
        auto c = t.to(at::kCPU, at::kFloat).contiguous();
        return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    Json rows = Json::array();
    for (std::int64_t i = 0; i < t.size(0); ++i) rows.push_back(rows_of(t[i]));
    return rows;
}

void tokenize(const ModelOptions& o, const std::string& text, bool json) {
    auto tok = tokenizer_for(o);
    auto ids = tok.encode(text);
    if (json) return void(std::cout << Json{{"ids", ids}}.dump() << "\n");
    for (auto id : ids) std::cout << id << "\t" << Json(tok.decode(std::vector<std::int64_t>{id})).dump() << "\n";
}

void hidden(const ModelOptions& o, const PromptOptions& p, bool logits, bool json, const std::optional<fs::path>& save,
            const std::string& hooks) {
    const auto tok = tokenizer_if_asked(o, p);
    auto ids = one_prompt(p, tok);
    with_model(
        o, Needs{{0, -1}, true, logits}, tok ? std::optional(tok->vocab_size()) : std::nullopt, [&](const auto& model) {
            check_ids(model, ids);
            at::NoGradGuard no_grad;
            ActivationCache cache = hooks.empty() ? ActivationCache{} : ActivationCache{hook_patterns(hooks)};
            const at::Tensor out =
                model.run_with_cache(at::tensor(ids, at::kLong).unsqueeze(0).to(model.placement().device), cache);
            require(!cache.entries().empty(), "--hooks ", hooks, " matches no hook point of this model (`inputrep ",
                    "hidden --hooks '*'` lists them all)");
            require_finite(cache, "hidden");
            require(!out.defined() || at::isfinite(out).all().item<bool>(),
                    "hidden: the logits hold non-finite values (NaN or inf)");
            // The hook points [tokens, d] under their names: what `invert --target FILE` reads back.
            if (save) {
                std::vector<std::pair<std::string, at::Tensor>> tensors;
                for (const auto& [name, value] : cache.entries())
                    tensors.emplace_back(name, value[0].contiguous().to(at::kCPU));
                write_safetensors(*save, tensors);
            }
            if (json) {
                Json result{{"tokens", ids}};
                for (const auto& [name, value] : cache.entries()) result[name] = rows_of(value[0]);
                if (out.defined()) result["logits"] = rows_of(out[0]);
                return void(std::cout << result.dump() << "\n");
            }
            for (const std::pair<std::string, at::Tensor>& hook : cache.entries())
                std::cout << hook.first << "\t" << shape_string(hook.second.sizes()) << "\tnorm "
                          << hook.second.norm().item<double>() << "\n";
            if (out.defined()) std::cout << "logits\t" << shape_string(out.sizes()) << "\n";
        });
}

void generate(const ModelOptions& o, const PromptOptions& p, int steps, bool json) {
    const auto tok = tokenizer_if_asked(o, p);
    auto ids = one_prompt(p, tok);
    with_model(
        o, Needs{{0, -1}, true, true}, tok ? std::optional(tok->vocab_size()) : std::nullopt, [&](const auto& model) {
            check_ids(model, ids);
            auto out = inputrep::generate(model, ids, steps);
            // Greedy steps read the logits at the prompt's last position onwards; one causal pass over
            // the output sees the same values, and finds the first step that was not finite.
            at::NoGradGuard no_grad;
            ActivationCache cache;
            const auto n = static_cast<std::int64_t>(out.size()) - 1, first = static_cast<std::int64_t>(ids.size()) - 1;
            const at::Tensor logits = model.run_with_cache(
                at::tensor(out, at::kLong).narrow(0, 0, n).unsqueeze(0).to(model.placement().device), cache);
            const at::Tensor finite = at::isfinite(logits[0]).all(-1).to(at::kCPU);
            for (std::int64_t t = first; t < n; ++t) {
                if (finite[t].item<bool>()) continue;
                const auto step = "generate: step " + std::to_string(t - first + 1);
                require_finite(cache, step, t + 1);
                fail(step, ": the logits hold non-finite values (NaN or inf)");
            }
            if (json) return void(std::cout << Json{{"ids", out}}.dump() << "\n");
            for (auto id : out) std::cout << id << " ";
            std::cout << "\n";
        });
}

// What the model's tensors take with its weights held each way inputrep holds them, and the deepest
// slice from block 0 (with the token embedding, as inversion needs it) that fits each budget.
void memory(const ModelOptions& o, const std::vector<double>& budgets, bool json) {
    with_config(o, std::nullopt, [&]<class M>(const typename M::Config& cfg) {
        struct Format {
            const char* name;
            at::ScalarType dtype;  // of everything else: embeddings, norms, head
            Weights weights;
            const char* embeddings;
        };
        const Format formats[] = {{"f32", at::kFloat, Weights::dense, "f32"},
                                  {"bf16", at::kBFloat16, Weights::dense, "bf16"},
                                  {"int8", at::kBFloat16, Weights::int8, "bf16"}};
        const int depth = cfg.layers();
        auto gb = [](std::uint64_t b) { return fmt::format("{:.3f}", double(b) / 1e9); };
        Json rows = Json::array();
        for (const auto& f : formats) {
            auto bytes = [&](Needs n) { return M::estimated_bytes(cfg, n, f.dtype, f.weights); };
            // One block held: two blocks' estimate less one's (the stack built in passing counts in both).
            const auto block = bytes({{0, std::min(2, depth)}, false, false}) - bytes({{0, 1}, false, false});
            Json row{{"weights", f.name},
                     {"embeddings", f.embeddings},
                     {"block_bytes", depth > 1 ? block : bytes({{0, 1}, false, false})},
                     {"embedding_bytes", bytes({{0, 0}, true, false})},
                     {"head_bytes", bytes({{0, 0}, false, true})},
                     {"model_bytes", bytes({{0, depth}, true, true})}};
            row["deepest_slice_end"] = Json::array();  // per budget: blocks 0..E-1 fit
            for (double budget : budgets)
                row["deepest_slice_end"].push_back(M::deepest_fitting(cfg, Needs{{0, depth}, true, false}, f.dtype,
                                                                      f.weights, std::uint64_t(budget * 1e9)));
            rows.push_back(row);
        }
        if (json)
            return void(std::cout << Json{{"blocks", depth}, {"budgets_gb", budgets}, {"plans", rows}}.dump() << "\n");
        std::cout << "| weights | per block (GB) | embedding (GB) | final norm + head (GB) | whole model (GB) |";
        for (double budget : budgets) std::cout << " blocks that fit in " << budget << " GB |";
        std::cout << "\n|---|---|---|---|---|";
        for (std::size_t i = 0; i < budgets.size(); ++i) std::cout << "---|";
        std::cout << "\n";
        for (const auto& row : rows) {
            std::cout << "| " << row["weights"].get<std::string>() << " (" << row["embeddings"].get<std::string>()
                      << " embeddings) | " << gb(row["block_bytes"]) << " | " << gb(row["embedding_bytes"]) << " | "
                      << gb(row["head_bytes"]) << " | " << gb(row["model_bytes"]) << " |";
            for (int end : row["deepest_slice_end"])
                std::cout << " " << (end == 0 ? std::string("none") : "0:" + std::to_string(end)) << " |";
            std::cout << "\n";
        }
    });
}

}  // namespace

void register_inspect(CLI::App& app) {
    {
        auto sub = app.add_subcommand("tokenize", "The token ids of TEXT");
        auto o = std::make_shared<ModelOptions>();
        auto text = std::make_shared<std::string>();
        auto json = std::make_shared<bool>(false);
        sub->add_option("TEXT", *text, "text to tokenize")->required();
        sub->add_option("--vocab", o->vocab, "tokenizer folder (default: GPT-2's from scripts/setup)")
            ->type_name("DIR");
        sub->add_flag("--json", *json, "print one JSON object");
        sub->callback([=] { tokenize(*o, *text, *json); });
    }
    {
        auto sub = app.add_subcommand(
            "hidden",
            "The hidden states at every hook point (--model DIR | --untrained FAMILY) (--ids I,J,... | --prompt TEXT)");
        auto o = add_model_options(*sub);
        auto p = add_prompt_options(*sub, false, "text to tokenize instead of --ids");
        auto flags = std::make_shared<std::pair<bool, bool>>();
        sub->add_flag("--logits", flags->first, "also output the logits (runs the final norm and head)");
        sub->add_flag("--json", flags->second,
                      "print one JSON object: the tokens, each hook point's [tokens, d] under its name, the logits");
        auto save = std::make_shared<std::optional<fs::path>>();
        add_parsed(
            *sub, "--save", *save, [](std::string_view s) { return output_file("--save", s); },
            "write every hook point output under its name to this .safetensors file: [tokens, d] (what invert --target "
            "reads), [tokens, heads, d_head] or [heads, query, key] inside attention")
            ->type_name("FILE");
        auto hooks = std::make_shared<std::string>();
        sub->add_option("--hooks", *hooks,
                        "the hook points to output, by name or shell pattern, comma-separated (default: all but those "
                        "inside attention; blocks.*.attn.hook_k for the keys a KV cache holds)")
            ->type_name("PATTERNS")
            ->check([](const std::string& s) {
                try {
                    hook_patterns(s);
                    return std::string();
                } catch (const Error& e) {
                    return std::string(e.what());
                }
            });
        sub->callback([=] { hidden(*o, *p, flags->first, flags->second, *save, *hooks); });
    }
    {
        auto sub = app.add_subcommand("memory",
                                      "What a model's tensors take in f32, bf16 and int8, and the deepest slice that "
                                      "fits each budget, allocating nothing (--model PATH | --untrained FAMILY)");
        auto o = add_model_options(*sub);
        auto budgets = std::make_shared<std::vector<double>>(std::vector<double>{24, 80});
        auto json = std::make_shared<bool>(false);
        sub->add_option("--budget", *budgets, "memory budgets in GB, comma-separated (default 24,80)")
            ->delimiter(',')
            ->check(CLI::PositiveNumber);
        sub->add_flag("--json", *json, "print one JSON object");
        sub->callback([=] { memory(*o, *budgets, *json); });
    }
    {
        auto sub = app.add_subcommand(
            "generate", "Greedy continuation (--model PATH | --untrained FAMILY) (--ids I,J,... | --prompt TEXT)");
        auto o = add_model_options(*sub);
        auto p = add_prompt_options(*sub, false, "text to tokenize instead of --ids");
        auto steps = std::make_shared<int>(16);
        auto json = std::make_shared<bool>(false);
        add_number(*sub, "--steps", *steps, 1, 1 << 20,
                   "tokens to generate (default 16; prompt and new tokens must fit the context)");
        sub->add_flag("--json", *json, "print one JSON object");
        sub->callback([=] { generate(*o, *p, *steps, *json); });
    }
}

}  // namespace cli
