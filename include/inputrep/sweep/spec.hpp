#pragma once
// Sweeps (a grid of inversion runs described by a JSON spec, run row by row into a results file of
// one JSON line per row, resumable, shardable and merged afterwards, then summarised as Markdown
// tables and an HTML page with plots) in four parts: the spec and its rows (here), which process
// runs which rows (shard.hpp), the results file and its folder (results.hpp) and the summaries
// (summary.hpp). The program that runs a row (the CLI's `invert`) is the caller's: these headers
// hold what does not depend on it, and need neither libtorch nor MPI.
//
// A spec is an object of axes, each a list of values or one scalar:
//   {"untrained": "gpt2:n_layer=2", "blocks": ["0:1", "0:2"], "metric": ["l1", "cosine"],
//    "seeds": [0, 1, 2], "prompts": ["The sky is blue.", "Mario, the Idea"], "claims": [5, 6]}
// Every key but these is an option of `invert` without its dashes; the rows are the product of
// the axes. "prompts" (texts) and "ids" ("I,J,..." or [I, J, ...]) are the batch every row runs,
// not axes; "seeds" is the axis "seed"; "claims" annotates rows (kept in the results, not hashed);
// "rows" lists objects that are specs themselves, each over the spec's own axes, the results
// concatenated (a grid that is not one product). A spec may expand to at most `max_rows` rows,
// counted before any is made, and nest at most max_json_depth levels.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/hash.hpp>
#include <inputrep/core/json.hpp>
#include <inputrep/core/text.hpp>

namespace inputrep::sweep {

using Json = nlohmann::json;

// The most rows one spec may expand to: a grid beyond it is a typo in an axis, not a sweep one
// machine or cluster runs (10^5 rows of 1 s each are 28 hours).
inline constexpr std::size_t max_rows = 100'000;

// invert's options that write a run's own outputs: a sweep's rows write results.jsonl, and
// `sweep --summarize` the tables and plots, so these are not axes.
inline constexpr std::string_view not_axes[] = {"report", "csv", "json", "stats", "help", "out"};

// A mistake in the spec itself, found before any row runs (the CLI's exit 2).
struct SpecError : Error {
    using Error::Error;
};

template <class... Parts>
[[noreturn]] void spec_fail(const Parts&... parts) {
    try {
        fail("spec: ", parts...);
    } catch (const Error& e) {
        throw SpecError(e.what());
    }
}

struct Row {
    std::size_t index = 0;  // position in the spec's expansion: the order of a one-process run
    Json config;            // axis → one value, plus the prompt batch: everything that decides the run
    Json claims;            // annotations (null when none)
    std::string key;        // hash of `config`: a row already in the results is not run again
};

// 64-bit FNV-1a of the canonical dump (nlohmann's objects keep their keys sorted, so equal configs
// dump to equal bytes), as 16 hex digits.
inline std::string row_key(const Json& config) { return fnv1a_hex(config.dump()); }

namespace detail {

inline Json as_list(const std::string& key, const Json& value) {
    if (value.is_array()) {
        if (value.empty()) spec_fail("\"", key, "\" has no values, so the product of the axes is empty");
        return value;
    }
    return Json::array({value});
}

// The batch every row runs, as `invert` takes it: texts for --prompt, "I,J,..." for --ids.
inline Json prompt_batch(const std::string& key, const Json& value) {
    Json out = Json::array();
    if (key == "ids" && value.is_array() && !value.empty() && value.front().is_number_integer()) {
        std::string ids;  // one prompt given as [I, J, ...]
        for (const auto& id : value) ids += (ids.empty() ? "" : ",") + id.dump();
        return Json::array({ids});
    }
    for (const auto& v : as_list(key, value)) {
        if (v.is_string()) {
            out.push_back(v);
        } else if (key == "ids" && v.is_array()) {
            std::string ids;
            for (const auto& id : v) {
                if (!id.is_number_integer()) spec_fail("\"ids\": ", v.dump(), " is not a list of token ids");
                ids += (ids.empty() ? "" : ",") + id.dump();
            }
            out.push_back(ids);
        } else {
            spec_fail("\"", key, "\": ", v.dump(),
                      key == "ids" ? " is neither \"I,J,...\" nor [I, J, ...]" : " is not a text");
        }
    }
    return out;
}

// How many rows `spec` expands to, saturating at max_rows + 1: counted before any row is made.
inline std::size_t count_rows(const Json& spec) {
    if (!spec.is_object())
        spec_fail("a spec (and each entry of \"rows\") is a JSON object of axes, not ", json_detail::short_dump(spec));
    std::size_t n = 1;
    auto times = [&](std::size_t k) { n = k == 0 || n <= (max_rows + 1) / k ? n * k : max_rows + 1; };
    for (const auto& [k, v] : spec.items()) {
        if (std::ranges::find(not_axes, k) != std::end(not_axes))
            spec_fail(
                "\"", k,
                "\" is not an axis: a sweep writes each row's results to results.jsonl, and `sweep --summarize` the "
                "tables and plots");
        if (k == "rows" || k == "claims" || k == "prompts" || k == "ids") continue;
        times(v.is_array() ? v.size() : 1);
    }
    if (spec.contains("rows")) {
        const auto& list = spec["rows"];
        if (!list.is_array() || list.empty()) spec_fail("\"rows\" must be a non-empty list of objects");
        std::size_t sum = 0;
        for (const auto& sub : list) sum = std::min(sum + count_rows(sub), max_rows + 1);
        times(sum);
    }
    return std::min(n, max_rows + 1);
}

inline void expand_into(const Json& spec, const Json& inherited, const Json& inherited_claims, std::vector<Row>& rows) {
    if (!spec.is_object())
        spec_fail("a spec (and each entry of \"rows\") is a JSON object of axes, not ", json_detail::short_dump(spec));
    Json base = inherited, claims = spec.value("claims", inherited_claims);
    std::vector<std::pair<std::string, Json>> axes;
    for (const auto& [k, v] : spec.items()) {
        if (k == "rows" || k == "claims") continue;
        if (k == "prompts" || k == "ids") {
            base[k] = prompt_batch(k, v);
            continue;
        }
        const std::string axis = k == "seeds" ? "seed" : k;
        base.erase(axis);
        for (const auto& value : as_list(k, v))
            if (!value.is_string() && !value.is_number() && !value.is_boolean())
                spec_fail("\"", k, "\": ", json_detail::short_dump(value), " is not a text, a number or true/false");
        axes.emplace_back(axis, as_list(k, v));
    }
    if (spec.contains("rows")) {
        const auto& list = spec["rows"];
        if (!list.is_array() || list.empty()) spec_fail("\"rows\" must be a non-empty list of objects");
        // The spec's own axes first, then each explicit row over them.
        std::vector<Row> partial;
        Json without_rows = spec;
        without_rows.erase("rows");
        expand_into(without_rows, inherited, claims, partial);
        for (const auto& row : partial)
            for (const auto& sub : list) expand_into(sub, row.config, row.claims, rows);
        return;
    }
    // The product, the last axis (in key order) varying fastest.
    std::vector<std::size_t> at(axes.size(), 0);
    for (;;) {
        Row row{rows.size(), base, claims, {}};
        for (std::size_t a = 0; a < axes.size(); ++a) row.config[axes[a].first] = axes[a].second[at[a]];
        rows.push_back(std::move(row));
        std::size_t a = axes.size();
        while (a > 0 && ++at[a - 1] == axes[a - 1].second.size()) at[--a] = 0;
        if (a == 0) return;
    }
}

}  // namespace detail

// The rows of `spec`, each keyed; two rows with one config are one row.
inline std::vector<Row> expand(const Json& spec) {
    if (const auto n = detail::count_rows(spec); n > max_rows)
        spec_fail("the axes multiply to more than ", max_rows, " rows; split the sweep into specs of fewer rows");
    std::vector<Row> rows;
    detail::expand_into(spec, Json::object(), nullptr, rows);
    std::vector<Row> unique;
    std::set<std::string> seen;
    for (auto& row : rows) {
        row.key = row_key(row.config);
        if (seen.insert(row.key).second) row.index = unique.size(), unique.push_back(std::move(row));
    }
    return unique;
}

// A row as the arguments of `invert` after the command's name: --KEY VALUE per axis (true is a
// bare flag, false leaves it out), --prompt/--ids per prompt of the batch.
inline std::vector<std::string> invert_args(const Json& config) {
    std::vector<std::string> args;
    for (const auto& [k, v] : config.items()) {
        if (k == "prompts" || k == "ids") {
            for (const auto& p : v)
                args.push_back(k == "prompts" ? "--prompt" : "--ids"), args.push_back(p.get<std::string>());
        } else if (v.is_boolean()) {
            if (v.get<bool>()) args.push_back("--" + k);
        } else {
            args.push_back("--" + k), args.push_back(v.is_string() ? v.get<std::string>() : v.dump());
        }
    }
    return args;
}

inline Json read_spec(const std::filesystem::path& path) {
    try {
        return parse_json(read_file(path, "sweep spec"), path.string());
    } catch (const SpecError&) {
        throw;
    } catch (const Error& e) {
        spec_fail(e.what());
    }
}

// What DIR/spec.json records: the spec, and whether the rows were its --quick slice.
inline Json spec_record(const Json& spec, bool quick) { return {{"spec", spec}, {"quick", quick}}; }
}  // namespace inputrep::sweep
