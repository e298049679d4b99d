#pragma once
// A sweep's results: one JSON line per row in results.jsonl (or a shard's results.I-of-N.jsonl),
// appended as rows finish, read back with a torn last line left out, and merged across shards.
// A sweep folder holds the results of one spec: DIR/spec.json records it, DIR/.lock is the folder's
// lock (core/file.hpp): the sweeps writing it (one per shard) share it, a merge holds it alone.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/json.hpp>

namespace inputrep::sweep {

using Json = nlohmann::json;

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

// The results file of a sweep, opened for appending: a torn last line is cut off so that its row
// runs again (which rows the folder holds, read_results says). Each line goes out in one write()
// followed by fsync, so a kill leaves at most one torn line. An exclusive lock keeps a second sweep
// from writing the same file, and the folder's lock, shared, a merge from replacing it meanwhile.
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
        const auto read = detail::parse_lines(read_file(path_, "results file"), path_);
        if (read.torn) {
            require(::ftruncate(fd_, static_cast<off_t>(read.complete_bytes)) == 0, "cannot cut the torn last line of ",
                    path_.string(), ": ", std::strerror(errno));
            torn_ = true;
        }
    }
    ResultsFile(const ResultsFile&) = delete;
    ResultsFile& operator=(const ResultsFile&) = delete;
    ~ResultsFile() { ::close(fd_); }

    bool dropped_torn_line() const { return torn_; }
    const std::filesystem::path& path() const { return path_; }

    void append(const Json& line) {
        const std::string text = line.dump() + "\n";
        const auto written = ::write(fd_, text.data(), text.size());
        require(written == static_cast<ssize_t>(text.size()), "writing ", path_.string(),
                " failed: ", std::strerror(errno));
        require(::fsync(fd_) == 0, "fsync of ", path_.string(), " failed: ", std::strerror(errno));
    }

private:
    std::filesystem::path path_;
    FolderLock folder_;
    int fd_ = -1;
    bool torn_ = false;
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
}  // namespace inputrep::sweep
