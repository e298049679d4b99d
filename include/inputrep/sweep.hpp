#pragma once
// Sweeps: a grid of inversion runs described by a JSON spec, run row by row into a results file of
// one JSON line per row, resumable, shardable and merged afterwards, then summarised as Markdown
// tables and an HTML page with plots. The program that runs a row (the CLI's `invert`) is the
// caller's: this header holds what does not depend on it, and needs neither libtorch nor MPI.
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
//
// A sweep folder holds the results of one spec: DIR/spec.json records it, DIR/.lock is the folder's
// lock (core/file.hpp): the sweeps writing it (one per shard) share it, a merge holds it alone.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
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
#include <inputrep/core/hash.hpp>
#include <inputrep/core/json.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/report/page.hpp>
#include <inputrep/report/plot.hpp>

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

// Which rows this process runs: row i belongs to shard i mod count.
struct Shard {
    std::size_t index = 0, count = 1;
    bool owns(const Row& row) const { return row.index % count == index; }
    // One results file per shard, so shards never write to one file.
    std::string file_name() const {
        return count == 1 ? "results.jsonl" : fmt::format("results.{}-of-{}.jsonl", index, count);
    }
};

// "I/N" with 0 ≤ I < N.
inline Shard parse_shard(std::string_view text) {
    const auto parts = text::split(text, '/');
    require(parts.size() == 2, "--shard: \"", text, "\" is not I/N");
    const Shard s{text::to_number<std::size_t>(parts[0], "--shard"), text::to_number<std::size_t>(parts[1], "--shard")};
    require(s.count >= 1 && s.index < s.count, "--shard: ", text, " needs 0 <= I < N");
    return s;
}

// A Slurm job array (SLURM_ARRAY_TASK_ID from SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT) or the
// tasks of one srun (SLURM_PROCID of SLURM_NTASKS); nothing outside Slurm.
inline std::optional<Shard> shard_from_env(const std::function<const char*(const char*)>& env = [](const char* n) {
    return std::getenv(n);
}) {
    auto number = [&](const char* name) -> std::optional<std::size_t> {
        const char* v = env(name);
        if (!v) return std::nullopt;
        return text::to_number<std::size_t>(v, name);
    };
    if (auto id = number("SLURM_ARRAY_TASK_ID"), count = number("SLURM_ARRAY_TASK_COUNT"); id && count) {
        const Shard s{*id - number("SLURM_ARRAY_TASK_MIN").value_or(0), *count};
        require(s.index < s.count, "SLURM_ARRAY_TASK_ID ", *id, " lies outside the ", *count, " tasks of the array");
        return s;
    }
    if (auto id = number("SLURM_PROCID"), count = number("SLURM_NTASKS"); id && count && *count > 1) {
        require(*id < *count, "SLURM_PROCID ", *id, " is not below SLURM_NTASKS ", *count);
        return Shard{*id, *count};
    }
    return std::nullopt;
}

namespace detail {

// The complete lines of a results file and where they end; a last line without its newline (the
// writer was killed mid-write) is `torn` and not returned.
struct Lines {
    std::vector<Json> lines;
    std::size_t complete_bytes = 0;
    bool torn = false;
};

// A number a results line may lack: exact search has no shifted distance (absent; files written
// before said null).
inline void require_number_if_present(const Json& object, std::string_view key, const std::string& where) {
    if (!object.contains(key) || object.at(key).is_null()) return;
    json_field<double>(object, key, where);
}

// The fields the summaries read, each of the type they read it as.
inline void check_line(const Json& line, const std::string& where) {
    const auto key = json_field<std::string>(line, "key", where);
    require(key.size() == 16 && key.find_first_not_of("0123456789abcdef") == std::string::npos, where,
            ": \"key\" is \"", key, "\", not 16 hex digits");
    json_field<std::size_t>(line, "row", where);
    require(json_field<Json>(line, "config", where).is_object(), where, ": \"config\" is not an object");
    for (const char* text : {"version", "commit"})  // the provenance line prints them
        if (line.contains(text)) json_field<std::string>(line, text, where);
    const auto results = json_field<Json>(line, "results", where);
    require(results.is_array() && !results.empty(), where, ": \"results\" is not a non-empty list of results");
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto at = where + ": result " + std::to_string(i);
        const auto& r = results[i];
        for (const char* list : {"target", "ids"}) {
            const auto ids = json_field<Json>(r, list, at);
            require(ids.is_array(), at, ": \"", list, "\" is not a list of token ids");
            for (const auto& id : ids)
                require(id.is_number_integer(), at, ": \"", list, "\" holds ", json_detail::short_dump(id),
                        ", not a token id");
        }
        require(!r.at("target").empty(), at, ": \"target\" is empty");
        json_field<bool>(r, "exact", at);
        if (r.contains("decoded")) json_field<std::string>(r, "decoded", at);
        json_field<double>(r, "exact_tokens", at);
        json_field<double>(r, "distance", at);
        require_number_if_present(r, "shifted_distance", at);
        if (r.contains("candidates_checked")) json_field<double>(r, "candidates_checked", at);
    }
}

inline Lines parse_lines(const std::string& bytes, const std::filesystem::path& path) {
    Lines out;
    std::size_t at = 0, number = 1;
    for (std::size_t end; (end = bytes.find('\n', at)) != std::string::npos; at = end + 1, ++number) {
        const auto where = path.string() + ":" + std::to_string(number);
        try {
            out.lines.push_back(parse_json(std::string_view(bytes).substr(at, end - at), where));
        } catch (const Error& e) {
            fail(e.what(), "; was the file written by two sweeps at once?");
        }
        check_line(out.lines.back(), where);
    }
    out.complete_bytes = at;
    out.torn = at < bytes.size();
    return out;
}

}  // namespace detail

// The results file of a sweep, opened for appending: lines already there are read (their keys are
// the rows not to run again); a torn last line is cut off so that its row runs again. Each line
// goes out in one write() followed by fsync, so a kill leaves at most one torn line. An exclusive
// lock keeps a second sweep from writing the same file, and the folder's lock, shared, a merge
// from replacing it meanwhile.
class ResultsFile {
public:
    explicit ResultsFile(std::filesystem::path path)
        : path_(std::move(path)),
          folder_(path_.has_parent_path() ? path_.parent_path() : ".", FolderLock::shared, "a sweep") {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        require(fd_ >= 0, "cannot open ", path_.string(), ": ", std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd_);
            fail(path_.string(), " is being written by another sweep");
        }
        auto read = detail::parse_lines(read_file(path_, "results file"), path_);
        if (read.torn) {
            require(::ftruncate(fd_, static_cast<off_t>(read.complete_bytes)) == 0, "cannot cut the torn last line of ",
                    path_.string(), ": ", std::strerror(errno));
            torn_ = true;
        }
        for (auto& line : read.lines) keys_.insert(line["key"].get<std::string>());
        lines_ = std::move(read.lines);
    }
    ResultsFile(const ResultsFile&) = delete;
    ResultsFile& operator=(const ResultsFile&) = delete;
    ~ResultsFile() { ::close(fd_); }

    bool has(const std::string& key) const { return keys_.contains(key); }
    bool dropped_torn_line() const { return torn_; }
    const std::vector<Json>& lines() const { return lines_; }
    const std::filesystem::path& path() const { return path_; }

    void append(const Json& line) {
        const std::string text = line.dump() + "\n";
        const auto written = ::write(fd_, text.data(), text.size());
        require(written == static_cast<ssize_t>(text.size()), "writing ", path_.string(),
                " failed: ", std::strerror(errno));
        require(::fsync(fd_) == 0, "fsync of ", path_.string(), " failed: ", std::strerror(errno));
        keys_.insert(line["key"].get<std::string>());
        lines_.push_back(line);
    }

private:
    std::filesystem::path path_;
    FolderLock folder_;
    int fd_ = -1;
    bool torn_ = false;
    std::set<std::string> keys_;
    std::vector<Json> lines_;
};

// results.jsonl, or a shard's results.I-of-N.jsonl.
inline bool is_results_file(const std::string& name) {
    return name.starts_with("results.") && name.ends_with(".jsonl");
}

// Every results file of `dirs` (results.jsonl and the shards' results.I-of-N.jsonl), read only:
// torn last lines are left out, a row found twice counts once, in the order of the spec's rows.
inline std::vector<Json> read_results(const std::vector<std::filesystem::path>& dirs) {
    std::vector<Json> out;
    std::set<std::string> seen;
    for (const auto& dir : dirs) {
        require(std::filesystem::is_directory(dir), dir.string(), " is not a sweep folder");
        std::vector<std::filesystem::path> files;
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            const auto name = entry.path().filename().string();
            if (is_results_file(name)) files.push_back(entry.path());
        }
        std::ranges::sort(files);
        for (const auto& file : files)
            for (auto& line : detail::parse_lines(read_file(file, "results file"), file).lines)
                if (seen.insert(line["key"].get<std::string>()).second) out.push_back(std::move(line));
    }
    std::ranges::stable_sort(out, {}, [](const Json& l) { return l.value("row", std::size_t{0}); });
    return out;
}

// Replaces `dir`/results.jsonl by `lines` at once (the one writer: beside, fsync, rename).
inline void write_results(const std::filesystem::path& dir, const std::vector<Json>& lines) {
    write_file(dir / "results.jsonl", [&](std::ostream& out) {
        for (const auto& line : lines) out << line.dump() << '\n';
    });
}

// Claims `dir` for the spec `record` (spec_record) while its lock is held: a folder already holding
// another spec's results is refused (its tables would mix two grids), a new one records the spec.
inline void claim_folder(const std::filesystem::path& dir, const Json& record) {
    const auto file = dir / "spec.json";
    if (std::filesystem::exists(file)) {
        require(parse_json(read_file(file, "sweep record"), file.string()) == record, dir.string(),
                " holds the results of another spec (", file.string(),
                " is not this one); give another --out, or remove ", dir.string(), " to start over");
        return;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        require(!(is_results_file(name) && entry.file_size() > 0), dir.string(),
                " holds results but no spec.json (written by an older inputrep?), so they may be another spec's: give "
                "another --out");
    }
    write_file(file, record.dump(2) + "\n");
}

// `sources` merged into `into`/results.jsonl (each row once, in the spec's order), holding every
// folder's lock alone: no sweep writes any of them meanwhile. Each source must hold results of
// one and the same spec. The rows merged.
inline std::size_t merge(const std::vector<std::filesystem::path>& sources, const std::filesystem::path& into) {
    std::vector<std::filesystem::path> dirs;
    for (const auto& d : sources) {
        const auto canonical = std::filesystem::weakly_canonical(d);
        if (std::ranges::find(dirs, canonical) == dirs.end()) dirs.push_back(canonical);
    }
    std::filesystem::create_directories(into);
    const auto target = std::filesystem::weakly_canonical(into);
    std::vector<std::unique_ptr<FolderLock>> locks;
    for (const auto& d : dirs) locks.push_back(std::make_unique<FolderLock>(d, FolderLock::exclusive, "sweep --merge"));
    if (std::ranges::find(dirs, target) == dirs.end())
        locks.push_back(std::make_unique<FolderLock>(target, FolderLock::exclusive, "sweep --merge"));
    std::optional<Json> record;
    std::filesystem::path first;
    auto same_spec = [&](const std::filesystem::path& dir) {
        const auto file = dir / "spec.json";
        require(std::filesystem::exists(file), dir.string(),
                ": no spec.json, so which spec its rows belong to is unknown (not a sweep folder "
                "of this inputrep?); nothing merged");
        const auto r = parse_json(read_file(file, "sweep record"), file.string());
        if (!record) record = r, first = dir;
        require(*record == r, dir.string(), " and ", first.string(),
                " hold results of different specs (their spec.json differ); nothing merged");
    };
    for (const auto& d : dirs) {
        same_spec(d);
        require(!read_results({d}).empty(), d.string(),
                " holds no results (no complete line in its results files); nothing merged");
    }
    const bool into_has_results = std::filesystem::exists(target / "spec.json") || !read_results({target}).empty();
    if (into_has_results) same_spec(target), dirs.push_back(target);
    const auto lines = read_results(dirs);
    write_results(target, lines);
    if (!std::filesystem::exists(target / "spec.json")) write_file(target / "spec.json", record->dump(2) + "\n");
    return lines.size();
}

// ---- Summaries --------------------------------------------------------------------------------

// The positions a row's token mask leaves out of the comparison ("tokens:B:E" or "last" in its
// "mask" axis; none for "all" or a neuron mask alone): the tokens only cross-token mixing carries.
inline std::vector<bool> masked_positions(const Json& config, std::size_t length) {
    std::vector<bool> masked(length, false);
    if (!config.contains("mask") || !config["mask"].is_string()) return masked;
    const auto mask = config["mask"].get<std::string>();  // split's views point into it
    for (auto part : text::split(mask, ',')) {
        if (part == "last") {
            for (std::size_t p = 0; p + 1 < length; ++p) masked[p] = true;
        } else if (part.starts_with("tokens:")) {
            const auto bounds = text::split(part.substr(7), ':');
            const auto begin = text::to_number<std::size_t>(bounds.front(), "mask");
            const auto end =
                bounds.size() < 2 || bounds[1] == "end" ? length : text::to_number<std::size_t>(bounds[1], "mask");
            for (std::size_t p = 0; p < length; ++p) masked[p] = p < begin || p >= end;
        }
    }
    return masked;
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
