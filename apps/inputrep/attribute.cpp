// Which prompt tokens a next-token prediction rests on: attribute.
#include "commands.hpp"

namespace cli {

namespace {

AttributionTarget parse_target(std::string_view s) {
    if (s == "logit-sum") return AttributionTarget::logit_sum;
    if (s == "predicted") return AttributionTarget::predicted_logit;
    fail("unknown target \"", s, "\" (expected logit-sum or predicted)");
}

void attribute(const ModelOptions& o, const PromptOptions& p, AttributeRequest q) {
    require_one_prompt(p);
    q.tokenizer = tokenizer_for(o);
    q.ids = one_prompt(p, q.tokenizer);
    with_model(o, Needs{{0, -1}, true, true}, q.tokenizer->vocab_size(),
               [&](const auto& model) { run_attribute(model, q); });
}

}  // namespace

void register_attribute(CLI::App& app) {
    auto sub = app.add_subcommand("attribute",
                                  "Which prompt tokens the next-token prediction rests on "
                                  "(--model DIR | --untrained FAMILY) --prompt TEXT [--method M] [--html FILE]");
    auto o = add_model_options(*sub);
    auto p = add_prompt_options(*sub, false, "text whose next-token prediction is attributed");
    auto q = std::make_shared<AttributeRequest>();
    add_parsed(*sub, "--method", q->method, parse_attribution_method,
               "gradient (gradient x input), occlusion or combined (default: combined)");
    add_parsed(*sub, "--target", q->options.target, parse_target,
               "what the gradient explains: logit-sum (default, the seed's) or predicted");
    add_number(*sub, "--position", q->options.position, std::int64_t{0}, std::int64_t{1} << 40,
               "attribute the prediction made at this position (default: the last)");
    add_number(*sub, "--neutral", q->options.neutral_id, std::int64_t{0}, std::int64_t{1} << 40,
               "token id that replaces an occluded token (default: the family's end-of-text)");
    add_parsed(
        *sub, "--html", q->html, [](std::string_view s) { return output_file("--html", s); },
        "write the coloured HTML report to this file")
        ->type_name("FILE");
    sub->add_flag("--json", q->json, "print one JSON object");
    sub->callback([=] { attribute(*o, *p, *q); });
}

}  // namespace cli
