// Recovering prompts from a slice's outputs: invert, bandwidth.
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iostream>

#include "commands.hpp"

namespace cli {

namespace {

// --lr START[:END]: a linear decay from START in (0, 1000] to END in [0, 1000].
std::pair<double, double> parse_rates(std::string_view text) {
    const auto parts = text::split(text, ':');
    require(parts.size() <= 2, "\"", text, "\" is not START[:END]");
    const double start = text::to_number<double>(parts.front(), "START"),
                 end = text::to_number<double>(parts.back(), "END");
    require(start > 0 && start <= 1000, "the starting rate must lie in (0, 1000], got ", start);
    require(end >= 0 && end <= 1000, "the final rate must lie in [0, 1000], got ", end);
    return {start, end};
}

// What invert and bandwidth share: the slice, the metric and the optimisation loop.
struct PolicyOptions {
    BlockRange blocks{0, 1};
    std::string slice;
    AnyMetric metric{L1{}};
    std::optional<std::pair<double, double>> rates;
    RunOptions run;

    RunOptions options(const ModelOptions& o) const {
        auto r = run;
        if (rates) std::tie(r.lr_start, r.lr_end) = *rates;
        r.seed = o.seed;
        return r;
    }
};

std::shared_ptr<PolicyOptions> add_policy_options(CLI::App& app) {
    auto o = std::make_shared<PolicyOptions>();
    add_parsed(app, "--blocks", o->blocks, parse_block_range, "slice B:E, blocks B..E-1 (default 0:1)")
        ->type_name("B:E");
    app.add_option(
           "--slice", o->slice,
           "modifiers, comma-separated: bidirectional, no-residual, no-norm, attention (attention sub-layers alone), "
           "attention:I (block I's alone), concat:E1:E2:... (outputs after blocks B..E1-1, B..E2-1, ... joined)")
        ->check(parsed_by([](std::string_view s) {
            return parse_slice({0, 1}, s);
        }));
    add_parsed(app, "--metric", o->metric, AnyMetric::parse,
               "l1 (default), l2, cosine (1-|cos|), signed-cosine or combined:ALPHA:BETA");
    add_number(app, "--steps", o->run.steps, 1, 1'000'000, "optimisation steps (default: the family's)");
    add_parsed(
        app, "--lr", o->rates, parse_rates,
        "learning rate START[:END], START in (0, 1000] decaying linearly to END in [0, 1000] (default: the family's)")
        ->type_name("START:END");
    add_number(app, "--init-scale", o->run.init_scale, 1e-6, 1e3,
               "sigma of the N(mu, sigma) initial input (default: the family's)");
    add_number(app, "--init-mean", o->run.init_mean, -1e3, 1e3,
               "mu of the N(mu, sigma) initial input (default 0, as the author's code; the seed's text says 0.5 with "
               "--init-scale 0.05)");
    return o;
}

std::vector<std::string> read_lines(const std::string& path) {
    require(!fs::is_directory(path), "--batch ", path, " is a folder, not a file of prompts");
    std::ifstream in(path);
    require(in.good(), "--batch: cannot read ", path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    require(!lines.empty(), "--batch ", path, " holds no prompts (one per line)");
    return lines;
}

// --pad-to N[:ID]: every prompt right-padded to N tokens with ID, by default the tokenizer's
// <|endoftext|>. The seed's trainers padded each text to the context, and its inversions compared
// the padding's outputs too: in a causal slice every one of them reads the prompt.
struct Padding {
    std::int64_t length = 0;
    std::optional<std::int64_t> id;
};

Padding parse_padding(std::string_view text) {
    const auto parts = text::split(text, ':');
    require(parts.size() <= 2, "\"", text, "\" is not N[:ID]");
    Padding out{text::to_number<std::int64_t>(parts.front(), "N")};
    require(out.length >= 1, "the padded length must be at least 1, got ", out.length);
    if (parts.size() == 2) out.id = text::to_number<std::int64_t>(parts.back(), "ID");
    return out;
}

void pad(std::vector<std::vector<std::int64_t>>& prompts, const Padding& padding, const Tokenizer& tokenizer) {
    std::int64_t id = 0;
    if (padding.id) {
        id = *padding.id;
    } else {
        const auto eot = tokenizer.encode("<|endoftext|>");
        if (eot.size() != 1)
            throw UsageError(
                "--pad-to: this tokenizer has no <|endoftext|> token; give the padding id as --pad-to N:ID");
        id = eot.front();
    }
    if (id < 0 || id >= tokenizer.vocab_size())
        throw UsageError("--pad-to: the padding id " + std::to_string(id) + " is outside the vocabulary (" +
                         std::to_string(tokenizer.vocab_size()) + " tokens)");
    for (auto& ids : prompts) {
        if (static_cast<std::int64_t>(ids.size()) > padding.length)
            throw UsageError("--pad-to " + std::to_string(padding.length) + ": a prompt already has " +
                             std::to_string(ids.size()) + " tokens");
        ids.resize(padding.length, id);
    }
}

// What only exact search reads: the tolerance, whether to check every token, the candidates tried
// at a position with no compared output.
struct ExactOptions {
    std::optional<double> tolerance;
    bool verify_all = false;
    std::optional<std::int64_t> joint_budget;
    std::string prior;
};

// Whether the search orders candidates by the inverted model's own next-token distribution.
bool self_prior(const InvertOptimizer& optimizer) {
    const auto* exact = std::get_if<AnyExact>(&optimizer);
    const auto* gradient = exact ? std::get_if<Exact<GradientRank>>(exact) : nullptr;
    return gradient && gradient->rank.self_prior;
}

// Every check of the invert command line that needs no model; the tokenizer is read here.
InvertRun prepare_invert(const ModelOptions& o, const PolicyOptions& policy, const PromptOptions& p,
                         const std::vector<std::string>& batches, const std::string& decode, const std::string& hook,
                         const ExactOptions& exact, const std::optional<Padding>& padding, InvertRequest q) {
    const bool searching = std::holds_alternative<AnyExact>(q.optimizer);
    if (!q.target && !q.target_hook.empty())
        throw UsageError("--target-hook names a tensor of --target FILE: give --target too");
    if ((exact.tolerance || exact.verify_all || exact.joint_budget || !exact.prior.empty()) && !searching)
        throw UsageError("--tolerance, --verify-all, --joint-budget and --prior are exact search's: --optimizer exact");
    if (!exact.prior.empty()) {
        if (!std::holds_alternative<Exact<GradientRank>>(std::get<AnyExact>(q.optimizer)) || self_prior(q.optimizer))
            throw UsageError("--prior MODEL orders the gradient rank's candidates: use --optimizer exact");
        q.prior = o;
        q.prior->model = exact.prior, q.prior->untrained.clear();
    } else if (q.plain_exact && o.untrained.empty()) {
        // The order that checks fewest candidates on trained models (docs/exact.md): the model's own
        // prior merged in. Untrained weights have no prior worth its forward.
        std::get<Exact<GradientRank>>(std::get<AnyExact>(q.optimizer)).rank.self_prior = true;
    }
    if (q.target && (!p.prompts.empty() || !p.ids.empty() || !batches.empty()))
        throw UsageError("give either --target FILE (captured outputs, no prompt) or prompts, not both");
    if (!q.target && p.prompts.empty() && p.ids.empty() && batches.empty())
        throw UsageError(
            "give --prompt TEXT (or --ids I,J,... or --batch FILE, or --target FILE with --optimizer exact)");
    if (auto* search = std::get_if<AnyExact>(&q.optimizer))
        std::visit(
            [&](auto& op) {
                op.tolerance = exact.tolerance, op.verify_all = exact.verify_all;
                op.joint_budget = exact.joint_budget.value_or(op.joint_budget);
            },
            *search);
    if (decode == "direct-pinv" && !std::holds_alternative<VocabularySpace>(q.space))
        throw UsageError(
            "--decode direct-pinv decodes a vocabulary vector x through (x·W)·W⁺: use it with --space vocabulary");
    if (searching && !std::holds_alternative<EmbeddingSpace>(q.space))
        throw UsageError("exact search checks tokens through their embeddings: use --space embedding");
    if (!hook.empty() && !policy.slice.empty())
        throw UsageError("--hook ends the slice at a hook point: it does not combine with --slice");
    try {
        q.slice = hook.empty() ? parse_slice(policy.blocks, policy.slice)
                               : SliceSpec::up_to(parse_hooks(hook), policy.blocks.begin);
    } catch (const Error& e) {
        throw UsageError(std::string(hook.empty() ? "--slice: " : "--hook: ") + e.what());
    }
    q.plain_blocks = policy.slice.empty() && hook.empty();
    if (q.no_context) {
        const auto* continuous = std::get_if<AnyOrSequentialOptimizer>(&q.optimizer);
        if (!continuous || !std::holds_alternative<Sequential<AnyOptimizer>>(*continuous))
            throw UsageError("--no-context optimises one position at a time: use --optimizer sequential[:adam|gd]");
        if (!q.plain_blocks || !std::holds_alternative<EmbeddingSpace>(q.space))
            throw UsageError(
                "--no-context compares a block's outputs: a plain --blocks B:E slice (no --slice or "
                "--hook) and --space embedding");
        if (q.target) throw UsageError("--no-context optimises against a prompt's outputs: give prompts, not --target");
        if (q.mask.selects_tokens())
            throw UsageError("--no-context compares one output position at a time: use a mask without a token range");
    }
    if (q.target && q.target_hook.empty()) {
        if (q.slice.parts.size() > 1) throw UsageError("--target with a concat slice: give --target-hook NAME");
        q.target_hook = hook.empty() ? hook_name(q.slice.parts.front().end - 1, Hook::resid_post) : hook;
    }
    q.metric = policy.metric;
    q.options = policy.options(o);
    q.tokenizer = tokenizer_for(o);
    auto encode = [&](std::string_view text) { return q.tokenizer->encode(text); };
    q.decoder = parse_decoder(decode, encode);
    for (auto& text : p.prompts) q.prompts.push_back(encode(text));
    for (auto& file : batches)
        for (auto& text : read_lines(file)) q.prompts.push_back(encode(text));
    for (auto& ids : p.ids) q.prompts.push_back(parse_ids(ids));
    if (padding) {
        if (q.target) throw UsageError("--pad-to pads prompts: --target inverts captured outputs as they are");
        pad(q.prompts, *padding, *q.tokenizer);
        q.padded_to = padding->length;
    }
    // A token mask that reaches past a prompt compares outputs that are not there.
    for (const auto& ids : q.prompts) {
        try {
            q.mask.check(static_cast<std::int64_t>(ids.size()));
        } catch (const Error& e) {
            throw UsageError(std::string("--mask: ") + e.what());
        }
    }
    if (!q.json && isatty(STDERR_FILENO))
        q.options.progress = [](int step, int steps) { std::cerr << "\rstep " << step << "/" << steps << std::flush; };
    return {o, std::move(q)};
}

template <class Body>
void with_invert_model(const InvertRun& run, Body&& body) {
    // The prior from the model itself runs all of it, to the logits.
    const Needs needs = self_prior(run.request.optimizer) ? Needs{{0, dynamic_depth}, true, true}
                                                          : Needs{run.request.slice.range(), true, false};
    with_model(run.model, needs, run.request.tokenizer->vocab_size(), body);
}

void bandwidth(const ModelOptions& o, const PolicyOptions& policy, const PromptOptions& p, BandwidthRequest q) {
    if (!policy.slice.empty()) throw UsageError("bandwidth sweeps whole blocks: --slice is not supported here");
    const auto tok = tokenizer_if_asked(o, p);
    q.prompt = one_prompt(p, tok);
    q.blocks = policy.blocks, q.metric = policy.metric, q.options.run = policy.options(o);
    if (!q.json && isatty(STDERR_FILENO))
        q.options.progress = [](std::int64_t k, double f) { std::cerr << "k=" << k << ": " << f << " exact\n"; };
    with_model(o, Needs{{0, q.blocks.end}, true, false}, tok ? std::optional(tok->vocab_size()) : std::nullopt,
               [&](const auto& model) { run_bandwidth(model, q); });
}

// The invert command, handing its checked command line to `sink`.
void add_invert(CLI::App& app, std::function<void(InvertRun)> sink) {
    auto sub = app.add_subcommand(
        "invert", "Recover prompts from a slice's outputs (--model DIR | --untrained FAMILY) --prompt TEXT [options]");
    auto o = add_model_options(*sub);
    auto policy = add_policy_options(*sub);
    auto p = add_prompt_options(*sub, true, "text to recover");
    auto q = std::make_shared<InvertRequest>();
    auto batches = std::make_shared<std::vector<std::string>>();
    auto decode = std::make_shared<std::string>("pinv");
    sub->add_option("--batch", *batches, "a file of prompts, one per line, all in one batch")
        ->type_name("FILE")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    add_parsed(
        *sub, "--mask", q->mask, AnyMask::parse,
        "compared outputs: all (default), last, tokens:B:E, neurons:B:E, or a token and a neuron mask joined by ','");
    add_parsed(
        *sub, "--optimizer", q->optimizer,
        [q](std::string_view s) {
            q->plain_exact = s == "exact";
            return parse_invert_optimizer(s);
        },
        "adam (default), gd (plain gradient descent), sequential[:adam|gd] (one position at a time), "
        "exact[:gradient|:prior|:exhaustive] (token-by-token search verified against the outputs; :prior also orders "
        "candidates by the model's own next-token distribution and needs the whole model; plain exact is :prior for "
        "a model read from a file, :gradient for an untrained one; docs/exact.md)");
    auto padding = std::make_shared<std::optional<Padding>>();
    add_parsed(
        *sub, "--pad-to", *padding, parse_padding,
        "right-pad every prompt to N tokens with ID (default: <|endoftext|>), as the seed padded texts to the context")
        ->type_name("N[:ID]");
    auto exact = std::make_shared<ExactOptions>();
    add_number(*sub, "--tolerance", exact->tolerance, 1e-12, 1.0,
               "exact search: the relative error that verifies a token, in [1e-12, 1] (default: the dtype's, f32 3e-5, "
               "bf16 0.15)");
    sub->add_flag("--verify-all", exact->verify_all,
                  "exact search: check every allowed token at every position (uniqueness proven)");
    add_number(*sub, "--joint-budget", exact->joint_budget, std::int64_t{0}, std::numeric_limits<std::int64_t>::max(),
               "exact search: candidates tried at a position with no compared output, each paired with the next "
               "position's (default 0: all allowed up to 4,096, else 64)");
    sub->add_option(
           "--prior", exact->prior,
           "exact search: also order candidates by this model's next-token distribution (a model folder, .bin or "
           ".gguf with the same tokenizer, e.g. a smaller one)")
        ->type_name("MODEL");
    add_parsed(
        *sub, "--target", q->target, [](std::string_view s) { return fs::path(s); },
        "captured outputs to invert, no prompt: a .safetensors of hook points (hidden --save); with a continuous "
        "method there is no shifted distance")
        ->type_name("FILE");
    add_parsed(
        *sub, "--target-hook", q->target_hook,
        [](std::string_view s) {
            require(!s.empty(),
                    "give the name of a tensor of --target, e.g. blocks.0.hook_resid_post (leave the option out for "
                    "the slice's last hook point)");
            return std::string(s);
        },
        "the tensors of --target to invert, comma-separated (default: --hook's, else the slice's last hook point)")
        ->type_name("NAME[,NAME...]");
    auto hook = std::make_shared<std::string>();
    sub->add_option(
           "--hook", *hook,
           "end the slice at this hook point, e.g. blocks.3.hook_resid_mid or blocks.3.attn.hook_k (from block "
           "B of --blocks); several, comma-separated, are compared side by side")
        ->type_name("NAME[,NAME...]")
        ->check(parsed_by([](std::string_view s) { return parse_hooks(s); }));
    add_parsed(*sub, "--space", q->space, parse_space,
               "embedding (default: optimise the block-0 input), vocabulary (optimise a vocabulary-sized vector; "
               "target one-hot x 10) or vocabulary:pinv-target (target E(a)·W⁺)");
    sub->add_option("--decode", *decode,
                    "pinv (default), nearest, normed (cosine after removing mean and scale, as a layer norm: for an "
                    "uncompared position), direct-pinv ((x·W)·W⁺ of a vocabulary vector: --space vocabulary), or "
                    "restricted:TEXT (only the tokens of TEXT)")
        ->check(parsed_by([](std::string_view s) {
            return parse_decoder(s, [](std::string_view) { return std::vector<std::int64_t>{}; });
        }));
    add_number(*sub, "--restarts", policy->run.restarts, 1, 1000,
               "random restarts per prompt in one batch, best kept (default 1)");
    add_number(*sub, "--top-k", policy->run.top_k, 1, 1000, "decoded lines (default 5)");
    sub->add_flag("--early-stop", policy->run.early_stop, "stop once every prompt is closer than its shifted input");
    sub->add_flag("--no-context", q->no_context,
                  "with --optimizer sequential: optimise each position alone, a one-token input against the "
                  "prompt's output there (which saw the tokens before it), as the seed author's script did");
    add_parsed(
        *sub, "--report", q->report, [](std::string_view s) { return output_file("--report", s); },
        "write an HTML report to this file: the distance per step, or a search's verdicts")
        ->type_name("FILE");
    add_parsed(
        *sub, "--csv", q->csv, [](std::string_view s) { return output_folder("--csv", s); },
        "write traces.csv (prompt,restart,step,distance) and top_k.csv (prompt,k,position,id,score,target) into this "
        "folder; an exact search writes positions.csv "
        "(prompt,position,id,target,verdict,compared,error,margin,checked)")
        ->type_name("DIR");
    sub->add_flag("--stats", q->stats, "add loop steps per second and peak resident memory");
    sub->add_flag("--json", q->json, "print one JSON object");
    sub->callback([=] { sink(prepare_invert(*o, *policy, *p, *batches, *decode, *hook, *exact, *padding, *q)); });
}

}  // namespace

InvertRun parse_invert(const std::vector<std::string>& args) {
    CLI::App app;
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    std::optional<InvertRun> run;
    add_invert(app, [&](InvertRun r) { run = std::move(r); });
    std::vector<std::string> reversed{args.rbegin(), args.rend()};  // CLI11 takes its arguments last first
    reversed.push_back("invert");
    app.parse(reversed);
    return std::move(*run);
}

Outcomes run_inversion(const InvertRun& run) {
    Outcomes results;
    with_invert_model(run, [&](const auto& model) { results = invert_results(model, run.request); });
    return results;
}

void register_invert(CLI::App& app) {
    add_invert(app, [](const InvertRun& run) {
        with_invert_model(run, [&](const auto& model) { run_invert(model, run.request); });
    });
    {
        auto sub = app.add_subcommand("bandwidth",
                                      "The smallest number of output dimensions that recover a prompt "
                                      "(--model DIR | --untrained FAMILY) --prompt TEXT [--blocks B:E]");
        auto o = add_model_options(*sub);
        auto policy = add_policy_options(*sub);
        auto p = add_prompt_options(*sub, false, "text to recover");
        auto q = std::make_shared<BandwidthRequest>();
        add_parsed(*sub, "--optimizer", q->optimizer, AnyOptimizer::parse,
                   "adam (default) or gd (plain gradient descent)");
        add_parsed(
            *sub, "--report", q->report, [](std::string_view s) { return output_file("--report", s); },
            "write an HTML report with the bandwidth curve to this file")
            ->type_name("FILE");
        sub->add_flag("--json", q->json, "print one JSON object");
        sub->callback([=] { bandwidth(*o, *policy, *p, *q); });
    }
}

}  // namespace cli
