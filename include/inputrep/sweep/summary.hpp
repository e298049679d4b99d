#pragma once
// A sweep's summaries: from its results lines, the table both summaries show (a line per group of
// rows that differ only in their seed, mean ± sd over the seeds), as Markdown and as an HTML page
// with plots, and the generated sections of the documentation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xtensor.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/json.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/policy/mask_spec.hpp>
#include <inputrep/report/page.hpp>
#include <inputrep/report/plot.hpp>
#include <inputrep/sweep/results.hpp>

namespace inputrep::sweep {

using Json = nlohmann::json;

// The positions a row's token mask leaves out of the comparison ("tokens:B:E" or "last" in its
// "mask" axis; none for "all" or a neuron mask alone): the tokens only cross-token mixing carries.
inline std::vector<bool> masked_positions(const Json& config, std::size_t length) {
    if (!config.contains("mask") || !config["mask"].is_string()) return std::vector<bool>(length, false);
    return MaskSpec::parse(config["mask"].get<std::string>()).masked_positions(length);
}

// Tokens recovered in any order, as fractions: `all` of the target's tokens (a permutation of the
// prompt scores 1, where the exact-token rate does not), and `masked` of the masked positions'
// tokens, counted from the recovered copies the compared positions' tokens leave over (a prompt
// that repeats a word must show it twice); NaN when nothing is masked. The seed's word-order and
// "masked token found" claims are about these. `masked_in_place` is the strict reading of "found":
// the masked positions whose own token came back there (a stray copy elsewhere in a degenerate line
// does not count).
struct FoundTokens {
    double all = 0, masked = std::numeric_limits<double>::quiet_NaN(),
           masked_in_place = std::numeric_limits<double>::quiet_NaN();
};

inline FoundTokens found_tokens(const std::vector<std::int64_t>& target, const std::vector<std::int64_t>& recovered,
                                const std::vector<bool>& masked) {
    // Takes one recovered copy of each target token at the positions `which` selects; how many it found.
    auto take = [&](std::multiset<std::int64_t>& pool, auto which) {
        std::size_t found = 0;
        for (std::size_t p = 0; p < target.size(); ++p)
            if (which(p))
                if (auto it = pool.find(target[p]); it != pool.end()) pool.erase(it), ++found;
        return found;
    };
    FoundTokens f;
    std::multiset<std::int64_t> all(recovered.begin(), recovered.end());
    f.all = double(take(all, [](std::size_t) { return true; })) / double(target.size());
    const auto masked_count = std::ranges::count(masked, true);
    if (masked_count > 0) {
        std::multiset<std::int64_t> pool(recovered.begin(), recovered.end());
        take(pool, [&](std::size_t p) { return !masked[p]; });
        f.masked = double(take(pool, [&](std::size_t p) { return bool(masked[p]); })) / double(masked_count);
        std::size_t in_place = 0;
        for (std::size_t p = 0; p < target.size(); ++p)
            in_place += masked[p] && p < recovered.size() && recovered[p] == target[p];
        f.masked_in_place = double(in_place) / double(masked_count);
    }
    return f;
}

// What one row measured, over its prompts: the exact-token rate, the fraction of prompts recovered
// exactly, the final distance (the metric's own value, which the seed's loss thresholds are about)
// and that over the shifted input's (NaN for exact search, which has no shifted input), the tokens
// found in any order, the masked ones found and found in place, and the candidates exact search
// checked (NaN for a gradient method).
struct RowMetrics {
    double exact_token_rate = 0, exact_prompts = 0, distance = 0, distance_ratio = 0, tokens_found = 0,
           masked_found = std::numeric_limits<double>::quiet_NaN(),
           masked_in_place = std::numeric_limits<double>::quiet_NaN(),
           candidates_checked = std::numeric_limits<double>::quiet_NaN();
};

inline RowMetrics row_metrics(const Json& line) {
    const auto& results = line.at("results");
    require(!results.empty(), "results line ", line.value("key", "?"), " holds no prompts");
    RowMetrics m;
    double masked = 0, in_place = 0, candidates = 0;
    int masked_prompts = 0, searched = 0;
    for (const auto& r : results) {
        if (r.contains("candidates_checked")) candidates += r.at("candidates_checked").get<double>(), ++searched;
        const auto target = r.at("target").get<std::vector<std::int64_t>>();
        m.exact_token_rate += r.at("exact_tokens").get<double>() / double(target.size());
        m.exact_prompts += r.at("exact").get<bool>();
        auto number = [&](const char* key) {
            return !r.contains(key) || r.at(key).is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                           : r.at(key).get<double>();
        };
        m.distance += number("distance");
        m.distance_ratio += number("distance") / number("shifted_distance");
        const auto found = found_tokens(target, r.at("ids").get<std::vector<std::int64_t>>(),
                                        masked_positions(line.at("config"), target.size()));
        m.tokens_found += found.all;
        if (!std::isnan(found.masked)) masked += found.masked, in_place += found.masked_in_place, ++masked_prompts;
    }
    const double n = double(results.size());
    constexpr double none = std::numeric_limits<double>::quiet_NaN();
    return {m.exact_token_rate / n,
            m.exact_prompts / n,
            m.distance / n,
            m.distance_ratio / n,
            m.tokens_found / n,
            masked_prompts ? masked / masked_prompts : none,
            masked_prompts ? in_place / masked_prompts : none,
            searched ? candidates / searched : none};
}

// Rows that differ only in their seed, with the axes that tell groups apart.
struct Group {
    Json axes;  // the varying axes but the seed
    std::vector<RowMetrics> seeds;
    Json claims;
    std::string top1;  // the first row's top-1 decoding of its first prompt: word order, shown
};

struct Stat {
    double mean = 0, sd = 0;  // sd: the population standard deviation over seeds
};

inline Stat stat(const std::vector<RowMetrics>& rows, double RowMetrics::*field) {
    std::vector<double> v;
    for (const auto& r : rows) v.push_back(r.*field);
    const auto x = xt::adapt(v);
    return {xt::mean(x)(), xt::stddev(x)()};
}

// The axes whose value is not the same in every line (a missing axis counts as a value).
inline std::vector<std::string> varying_axes(const std::vector<Json>& lines) {
    std::map<std::string, std::set<std::string>> values;
    for (const auto& line : lines)
        for (const auto& [k, v] : line.at("config").items()) values[k];
    for (const auto& line : lines)
        for (auto& [k, seen] : values) seen.insert(line.at("config").contains(k) ? line.at("config")[k].dump() : "");
    std::vector<std::string> out;
    for (const auto& [k, seen] : values)
        if (seen.size() > 1 && k != "seed") out.push_back(k);
    return out;
}

inline std::vector<Group> groups(const std::vector<Json>& lines, const std::vector<std::string>& axes) {
    std::vector<Group> out;
    std::map<std::string, std::size_t> where;
    for (const auto& line : lines) {
        Json key = Json::object();
        for (const auto& a : axes) key[a] = line.at("config").value(a, Json());
        auto [it, fresh] = where.emplace(key.dump(), out.size());
        if (fresh)
            out.push_back({key, {}, line.value("claims", Json()), line.at("results").at(0).value("decoded", "")});
        out[it->second].seeds.push_back(row_metrics(line));
    }
    return out;
}

inline std::string cell(const Json& v) {
    if (v.is_null()) return "–";
    if (v.is_string()) return v.get<std::string>();
    if (v.is_array()) {
        std::string s;
        for (const auto& e : v) s += (s.empty() ? "" : "; ") + cell(e);
        return s;
    }
    return v.dump();
}

inline std::string cell(Stat s) { return std::isnan(s.mean) ? "–" : fmt::format("{:.3f} ± {:.3f}", s.mean, s.sd); }

// The table both summaries show: a line per group, the mean ± sd over its seeds.
struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

inline Table summary_table(const std::vector<Json>& lines) {
    require(!lines.empty(), "no results to summarise");
    const auto axes = varying_axes(lines);
    const auto gs = groups(lines, axes);
    const bool claims = std::ranges::any_of(gs, [](const Group& g) { return !g.claims.is_null(); });
    // Exact search's own column, where a row of it is in the table.
    const bool searched =
        std::ranges::any_of(gs, [](const Group& g) { return !std::isnan(g.seeds.front().candidates_checked); });
    Table t;
    if (claims) t.header.push_back("claims");
    t.header.insert(t.header.end(), axes.begin(), axes.end());
    for (const char* h :
         {"seeds", "exact-token rate", "exact prompts", "distance", "distance / shifted", "tokens found, any order",
          "masked tokens found", "masked tokens in place", "top-1, first seed and prompt"})
        t.header.push_back(h);
    if (searched) t.header.insert(t.header.end() - 1, "candidates checked");
    for (const auto& g : gs) {
        std::vector<std::string> row;
        if (claims) row.push_back(cell(g.claims));
        for (const auto& a : axes) row.push_back(cell(g.axes[a]));
        row.push_back(std::to_string(g.seeds.size()));
        for (auto field : {&RowMetrics::exact_token_rate, &RowMetrics::exact_prompts, &RowMetrics::distance,
                           &RowMetrics::distance_ratio, &RowMetrics::tokens_found, &RowMetrics::masked_found,
                           &RowMetrics::masked_in_place})
            row.push_back(cell(stat(g.seeds, field)));
        if (searched)
            row.push_back(std::isnan(g.seeds.front().candidates_checked)
                              ? "–"
                              : fmt::format("{:.0f}", stat(g.seeds, &RowMetrics::candidates_checked).mean));
        row.push_back(Json(g.top1).dump());
        t.rows.push_back(std::move(row));
    }
    return t;
}

// Markdown cells hold no '|' or newline.
inline std::string markdown_cell(std::string s) {
    std::string out;
    for (const char c : s) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out;
}

inline std::string markdown_table(const Table& t) {
    auto line = [](const std::vector<std::string>& cells) {
        std::string s = "|";
        for (const auto& c : cells) s += " " + markdown_cell(c) + " |";
        return s + "\n";
    };
    std::string out = line(t.header) + "|";
    for (std::size_t i = 0; i < t.header.size(); ++i) out += "---|";
    out += "\n";
    for (const auto& r : t.rows) out += line(r);
    return out;
}

// Where the rows came from: their count, the seeds, the program's version and commit.
inline std::string provenance(const std::vector<Json>& lines) {
    std::set<std::string> seeds, commits;
    for (const auto& l : lines) {
        seeds.insert(l.at("config").contains("seed") ? l.at("config")["seed"].dump() : "0");
        commits.insert(fmt::format("{} ({})", l.value("version", "?"), l.value("commit", "unknown")));
    }
    std::string s, c;
    for (const auto& v : seeds) s += (s.empty() ? "" : ", ") + v;
    for (const auto& v : commits) c += (c.empty() ? "" : ", ") + v;
    return fmt::format(
        "{} rows; seeds {}; inputrep {}. Mean ± standard deviation over seeds; each row's value is the mean over "
        "its prompts; distance is the metric's final value, distance / shifted < 1 means closer than the shifted "
        "input; tokens found counts the target's tokens anywhere in the top-1 line, masked tokens found those of "
        "the positions the mask leaves out, masked tokens in place those that came back at their own position.",
        lines.size(), s, c);
}

inline std::string summary_markdown(const std::vector<Json>& lines, std::string_view title) {
    return fmt::format("# {}\n\n{}\n\n{}", title, provenance(lines), markdown_table(summary_table(lines)));
}

// A slice's depth: the end of "blocks" (counted from the embedding; 1 when unset).
inline double depth(const Json& config) {
    if (!config.contains("blocks") || !config["blocks"].is_string()) return 1;
    const auto parts = text::split(config["blocks"].get<std::string>(), ':');
    return text::to_number<double>(parts.back(), "blocks");
}

// Exact-token rate and distance ratio against depth when "blocks" varies (one series per setting of
// the other axes), else against each group in turn.
inline std::vector<report::Plot> summary_plots(const std::vector<Json>& lines) {
    const auto axes = varying_axes(lines);
    const bool by_depth = std::ranges::find(axes, "blocks") != axes.end();
    std::vector<std::string> others;
    for (const auto& a : axes)
        if (a != "blocks") others.push_back(a);
    const auto gs = groups(lines, axes);
    report::Plot rate{
        "exact-token rate", by_depth ? "depth (blocks)" : "setting (table row)", "exact-token rate", {}, false};
    report::Plot ratio{"distance / shifted distance", rate.x_label, "distance / shifted", {}, true};
    std::map<std::string, std::size_t> series;
    for (std::size_t i = 0; i < gs.size(); ++i) {
        std::string name;
        for (const auto& a : others) name += (name.empty() ? "" : ", ") + a + "=" + cell(gs[i].axes[a]);
        if (!by_depth || name.empty()) name = by_depth ? "all" : "mean over seeds";
        auto [it, fresh] = series.emplace(name, rate.series.size());
        if (fresh) rate.series.push_back({name, {}, {}}), ratio.series.push_back({name, {}, {}});
        const double x = by_depth ? depth(gs[i].axes) : double(i + 1);
        rate.series[it->second].x.push_back(x),
            rate.series[it->second].y.push_back(stat(gs[i].seeds, &RowMetrics::exact_token_rate).mean);
        ratio.series[it->second].x.push_back(x),
            ratio.series[it->second].y.push_back(stat(gs[i].seeds, &RowMetrics::distance_ratio).mean);
    }
    // Rows come in the spec's order, which need not be by depth: a line is drawn in order of x.
    for (auto* plot : {&rate, &ratio})
        for (auto& s : plot->series) {
            std::vector<std::size_t> order(s.x.size());
            std::iota(order.begin(), order.end(), 0);
            std::ranges::sort(order, {}, [&](std::size_t i) { return s.x[i]; });
            report::Series sorted{s.name, {}, {}};
            for (auto i : order) sorted.x.push_back(s.x[i]), sorted.y.push_back(s.y[i]);
            s = std::move(sorted);
        }
    return {rate, ratio};
}

inline std::string summary_html(const std::vector<Json>& lines, std::string_view title) {
    const auto t = summary_table(lines);
    std::string body = fmt::format("<p>{}</p>\n<table>\n<tr>", report::escaped{provenance(lines)});
    for (const auto& h : t.header) body += fmt::format("<th>{}</th>", report::escaped{h});
    body += "</tr>\n";
    for (const auto& r : t.rows) {
        body += "<tr>";
        for (const auto& c : r) body += fmt::format("<td>{}</td>", report::escaped{c});
        body += "</tr>\n";
    }
    body += "</table>\n";
    for (const auto& plot : summary_plots(lines)) body += "<p>" + report::svg(plot) + "</p>\n";
    return report::page(title, body);
}

// summary.md and summary.html in `dir`, from every results file there.
inline void write_summaries(const std::filesystem::path& dir) {
    const FolderLock lock(dir, FolderLock::shared, "sweep --summarize");
    const auto lines = read_results({dir});
    const auto title = "Sweep " + std::filesystem::absolute(dir).lexically_normal().filename().string();
    write_file(dir / "summary.md", summary_markdown(lines, title));
    report::write(dir / "summary.html", summary_html(lines, title));
}

// `doc` with the text between "<!-- sweep:NAME -->" and "<!-- /sweep:NAME -->" replaced by `content`,
// so tables in the documentation are regenerated, never typed.
inline std::string replace_section(std::string_view doc, std::string_view name, std::string_view content) {
    const auto open = fmt::format("<!-- sweep:{} -->", name), close = fmt::format("<!-- /sweep:{} -->", name);
    const auto begin = doc.find(open), end = doc.find(close);
    require(begin != std::string_view::npos && end != std::string_view::npos && begin < end, "no section ", open,
            " ... ", close, " in the document");
    std::string body(content);
    if (!body.empty() && body.back() != '\n') body += '\n';
    return fmt::format("{}\n{}{}", doc.substr(0, begin + open.size()), body, doc.substr(end));
}

// The section NAME of the Markdown file `doc` set to the sweep's provenance and table.
inline void write_section(const std::filesystem::path& doc, std::string_view name, const std::vector<Json>& lines) {
    write_file(doc, replace_section(read_file(doc, "document"), name,
                                    provenance(lines) + "\n\n" + markdown_table(summary_table(lines))));
}
}  // namespace inputrep::sweep
