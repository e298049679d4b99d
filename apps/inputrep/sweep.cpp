// Grids of inversions: sweep SPEC (every row checked as `invert` checks its command line, then run in
// this process into DIR/results.jsonl, resumably), across MPI ranks or Slurm shards, --merge and
// --summarize. The spec, the results file, shards and summaries are the library's (sweep/); this
// file runs rows and hands them out.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <set>

#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>

#include <inputrep/sweep/shard.hpp>
#include <inputrep/sweep/spec.hpp>
#include <inputrep/sweep/summary.hpp>

#ifdef INPUTREP_MPI
// The C API only: mpi.h would otherwise pull in Open MPI's (or MPICH's) C++ bindings, a library of their own.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include "build_info.hpp"
#include "commands.hpp"

namespace cli {

namespace {

namespace sw = inputrep::sweep;

struct SweepOptions {
    std::string spec, out, shard, summarize, doc;
    std::vector<std::string> merge;
    bool quick = false;
};

// A row and its invert command line, parsed.
struct PlannedRow {
    sw::Row row;
    InvertRun run;
};

// The keys of `config` whose options the message names ("--metric: ...", "--hook ... --slice"), with
// their values, so a mistake points at the spec's axes; the whole row when it names none.
std::string blame(const sw::Json& config, std::string_view message) {
    std::string keys;
    for (const auto& [k, v] : config.items())
        if (k != "prompts" && k != "ids" && message.find("--" + k) != std::string_view::npos)
            keys += fmt::format("{}\"{}\": {}", keys.empty() ? "" : ", ", k, v.dump());
    return keys.empty() ? "row " + config.dump() : keys;
}

// --quick: the first row only, with at most 10 steps: a smoke run of a spec. A "steps" that is not
// an integer is left as it is, for invert's parser to refuse with the rest of the row.
void keep_quick_slice(std::vector<sw::Row>& rows) {
    rows.resize(1);
    auto& config = rows.front().config;
    if (!config.contains("steps"))
        config["steps"] = 10;
    else if (config["steps"].is_number_integer() &&
             (config["steps"].is_number_unsigned() || config["steps"].get<std::int64_t>() > 10))
        config["steps"] = 10;
    rows.front().key = sw::row_key(config);
}

// What a sweep runs: its rows, parsed, and the record of its spec (DIR/spec.json).
struct Plan {
    std::vector<PlannedRow> rows;
    sw::Json record;
};

// Every row parsed as `invert` parses its command line, before any row runs.
Plan plan(const SweepOptions& o) {
    std::vector<sw::Row> rows;
    sw::Json spec;
    try {
        spec = sw::read_spec(o.spec);
        rows = sw::expand(spec);
    } catch (const sw::SpecError& e) {
        throw UsageError(e.what());
    }
    if (o.quick) keep_quick_slice(rows);
    std::vector<PlannedRow> planned;
    for (auto& row : rows) {
        const auto args = sw::invert_args(row.config);
        try {
            auto run = parse_invert(args);
            run.request.options.progress = nullptr;
            planned.push_back({std::move(row), std::move(run)});
        } catch (const CLI::ExtrasError& e) {
            for (const auto& [k, v] : row.config.items())
                if (std::string_view(e.what()).find("--" + k) != std::string_view::npos)
                    throw UsageError(fmt::format("spec: unknown axis \"{}\" (invert has no option --{})", k, k));
            throw UsageError(fmt::format("spec: {}: {}", blame(row.config, e.what()), e.what()));
        } catch (const CLI::ParseError& e) {
            throw UsageError(fmt::format("spec: {}: {}", blame(row.config, e.what()), e.what()));
        } catch (const UsageError& e) {
            throw UsageError(fmt::format("spec: {}: {}", blame(row.config, e.what()), e.what()));
        }
    }
    return {std::move(planned), sw::spec_record(spec, o.quick)};
}

// The rank's place on its node under mpirun or srun, when there is one.
std::optional<int> local_rank() {
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
        if (const char* v = std::getenv(name)) return text::to_number<int>(v, name);
    return std::nullopt;
}

// A row that asks for "cuda" runs on its rank's own GPU (cuda:LOCAL_RANK, modulo the GPUs this
// process sees), so the ranks on one node share its GPUs instead of all taking the first.
void place(PlannedRow& p) {
    if (p.row.config.value("device", sw::Json("")) != "cuda") return;
    const int gpus = at::detail::getCUDAHooks().getNumGPUs();
    if (const auto local = local_rank(); local && gpus > 0)
        p.run.model.placement.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(*local % gpus));
}

sw::Json run_row(PlannedRow& p) {
    place(p);
    const auto start = std::chrono::steady_clock::now();
    const auto results = run_inversion(p.run);
    sw::Json outcomes = sw::Json::array();
    std::visit(
        [&](const auto& rs) {
            for (const auto& r : rs) outcomes.push_back(describe_outcome(r));
        },
        results);
    sw::Json line{{"key", p.row.key},
                  {"row", p.row.index},
                  {"config", p.row.config},
                  {"results", outcomes},
                  {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
                  {"device", p.run.model.placement.device.str()},
                  {"version", build_info::version},
                  {"commit", build_info::commit}};
    if (!p.row.claims.is_null()) line["claims"] = p.row.claims;
    return line;
}

void report_progress(std::size_t done, std::size_t total, const sw::Json& line) {
    if (isatty(STDERR_FILENO))
        std::cerr << fmt::format("sweep: {}/{} rows, row {} took {:.1f} s\n", done, total,
                                 line["row"].get<std::size_t>(), line["seconds"].get<double>());
}

// The rows the folder holds in any of its results files (the merged results.jsonl and every
// shard's), read once this process's own file has cut a torn last line: a folder resumes under
// another sharding, or none, without running a row again.
std::set<std::string> rows_held(const fs::path& out) {
    std::set<std::string> keys;
    for (const auto& line : sw::read_results({out})) keys.insert(line["key"].get<std::string>());
    return keys;
}

// This process runs the rows of its shard that the folder does not hold yet.
void run_shard(std::vector<PlannedRow>& rows, const fs::path& out, sw::Shard shard, const sw::Json& record) {
    sw::ResultsFile file(out / shard.file_name());
    sw::claim_folder(out, record);
    const auto held = rows_held(out);
    std::vector<PlannedRow*> todo;
    std::size_t present = 0;
    for (auto& p : rows)
        if (shard.owns(p.row)) held.contains(p.row.key) ? void(++present) : todo.push_back(&p);
    for (std::size_t i = 0; i < todo.size(); ++i) {
        const auto line = run_row(*todo[i]);
        file.append(line);
        report_progress(i + 1, todo.size(), line);
    }
    std::cout << fmt::format("sweep: {} rows run, {} already in {}{}\n", todo.size(), present, out.string(),
                             file.dropped_torn_line() ? " (a torn last line was dropped and its row run again)" : "");
}

// The number of processes mpirun or srun started, from their environment (1 outside them).
int launched_processes() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
        if (const char* v = std::getenv(name)) return text::to_number<int>(v, name);
    return 1;
}

#ifdef INPUTREP_MPI

enum Tag : int { ready = 1, work, stop, result, failed };

// MPI for the length of one sweep.
struct MpiSession {
    int rank = 0, size = 1;
    MpiSession() {
        MPI_Init(nullptr, nullptr);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    ~MpiSession() { MPI_Finalize(); }
};

std::string receive_text(MPI_Status& status) {
    MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &status);
    int n = 0;
    MPI_Get_count(&status, MPI_CHAR, &n);
    std::string text(static_cast<std::size_t>(n), '\0');
    MPI_Recv(text.data(), n, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return text;
}

// Rank 0 hands out one row at a time to whichever worker asks (runs differ a hundredfold in cost)
// and is the only writer of the results file. After a failure it hands out nothing more, collects
// what is running, stops every worker and reports the failure.
void coordinate(std::vector<PlannedRow>& rows, const fs::path& out, int workers, const sw::Json& record) {
    std::optional<sw::ResultsFile> file;
    std::vector<long long> todo;
    std::string error;
    try {
        file.emplace(out / "results.jsonl");
        sw::claim_folder(out, record);
        const auto held = rows_held(out);
        for (const auto& p : rows)
            if (!held.contains(p.row.key)) todo.push_back(static_cast<long long>(p.row.index));
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::size_t next = 0, done = 0;
    for (int active = workers; active > 0;) {
        MPI_Status status;
        const auto text = receive_text(status);
        if (status.MPI_TAG == result) {
            try {
                const auto line = sw::Json::parse(text);
                file->append(line);
                report_progress(++done, todo.size(), line);
            } catch (const std::exception& e) {
                if (error.empty()) error = e.what();
            }
        } else if (status.MPI_TAG == failed && error.empty()) {
            error = fmt::format("rank {}: {}", status.MPI_SOURCE, text);
        }
        if (error.empty() && next < todo.size()) {
            MPI_Send(&todo[next++], 1, MPI_LONG_LONG, status.MPI_SOURCE, work, MPI_COMM_WORLD);
        } else {
            MPI_Send(nullptr, 0, MPI_LONG_LONG, status.MPI_SOURCE, stop, MPI_COMM_WORLD);
            --active;
        }
    }
    if (!error.empty()) throw Error(error);
    std::cout << fmt::format("sweep: {} rows run by {} workers, {} already in {}{}\n", done, workers,
                             rows.size() - todo.size(), out.string(),
                             file->dropped_torn_line() ? " (a torn last line was dropped and its row run again)" : "");
}

void work_for_rank_0(std::vector<PlannedRow>& rows) {
    MPI_Send(nullptr, 0, MPI_CHAR, 0, ready, MPI_COMM_WORLD);
    for (;;) {
        long long index = 0;
        MPI_Status status;
        MPI_Recv(&index, 1, MPI_LONG_LONG, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &status);
        if (status.MPI_TAG == stop) return;
        std::string text;
        int tag = result;
        try {
            text = run_row(rows.at(static_cast<std::size_t>(index))).dump();
        } catch (const std::exception& e) {
            text = fmt::format("row {} ({}): {}", index, rows.at(static_cast<std::size_t>(index)).row.config.dump(),
                               e.what());
            tag = failed;
        }
        MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, 0, tag, MPI_COMM_WORLD);
    }
}

#endif

void sweep(const SweepOptions& o) {
    const int processes = launched_processes();
    if (!o.spec.empty() && o.out.empty()) throw UsageError("give --out DIR, the folder of results.jsonl");
    if (o.quick && o.spec.empty()) throw UsageError("--quick runs a spec: give SPEC");
    if (!o.doc.empty() && o.summarize.empty()) throw UsageError("--doc updates a document from --summarize DIR");
    if (int(!o.spec.empty()) + int(!o.merge.empty()) + int(!o.summarize.empty()) != 1)
        throw UsageError("give one of SPEC --out DIR, --merge DIR... [--out DIR], --summarize DIR");
    if (!o.merge.empty()) {
        const fs::path into = o.out.empty() ? fs::path(o.merge.front()) : fs::path(o.out);
        const auto rows = sw::merge(std::vector<fs::path>(o.merge.begin(), o.merge.end()), into);
        std::cout << fmt::format("sweep: merged {} rows into {}\n", rows, (into / "results.jsonl").string());
        return;
    }
    if (!o.summarize.empty()) {
        const fs::path dir = o.summarize;
        sw::write_summaries(dir);
        if (!o.doc.empty())
            sw::write_section(o.doc, fs::absolute(dir).lexically_normal().filename().string(), sw::read_results({dir}));
        std::cout << fmt::format("sweep: wrote {} and {}\n", (dir / "summary.md").string(),
                                 (dir / "summary.html").string());
        return;
    }
    auto [rows, record] = plan(o);
    try {
        check_output_folder(o.out, "--out");
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    fs::create_directories(o.out);
#ifdef INPUTREP_MPI
    if (processes > 1) {
        if (!o.shard.empty())
            throw UsageError("--shard splits a sweep without MPI; under mpirun rank 0 hands out the rows");
        MpiSession mpi;
        require(mpi.size > 1, "mpirun started ", processes, " processes but MPI sees ", mpi.size);
        if (mpi.rank == 0)
            coordinate(rows, o.out, mpi.size - 1, record);
        else
            work_for_rank_0(rows);
        return;
    }
#else
    if (processes > 1)
        throw UsageError(fmt::format(
            "this inputrep was built without MPI, so each of the {} processes mpirun started would run every "
            "row: build it with libopenmpi-dev installed, or give each process --shard I/{}",
            processes, processes));
#endif
    sw::Shard shard;
    try {
        if (!o.shard.empty())
            shard = sw::parse_shard(o.shard);
        else if (auto from_env = sw::shard_from_env())
            shard = *from_env;
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    run_shard(rows, o.out, shard, record);
}

}  // namespace

void register_sweep(CLI::App& app) {
    auto sub = app.add_subcommand("sweep",
                                  "Run a grid of inversions from a JSON spec into DIR/results.jsonl, resumably "
                                  "(SPEC --out DIR | --merge DIR... | --summarize DIR); docs/sweeps.md");
    auto o = std::make_shared<SweepOptions>();
    sub->add_option("spec", o->spec,
                    "JSON spec: a list of values per invert option, plus prompts, ids, seeds, rows, claims")
        ->type_name("SPEC")
        ->check(CLI::ExistingFile);
    sub->add_option("--out", o->out,
                    "the sweep's folder (results.jsonl); with --merge, where the merged results.jsonl goes")
        ->type_name("DIR");
    sub->add_option(
           "--shard", o->shard,
           "run rows I, I+N, I+2N, ... into results.I-of-N.jsonl (default: from Slurm's environment, else 0/1)")
        ->type_name("I/N")
        ->check(parsed_by(sw::parse_shard));
    sub->add_flag("--quick", o->quick, "a smoke run: the spec's first row only, with at most 10 steps");
    sub->add_option("--merge", o->merge,
                    "merge the results files of these sweep folders into the first's results.jsonl (or --out's)")
        ->type_name("DIR...")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->check(CLI::ExistingDirectory);
    sub->add_option("--summarize", o->summarize,
                    "write summary.md and summary.html (tables over seeds, plots) for this sweep folder")
        ->type_name("DIR")
        ->check(CLI::ExistingDirectory);
    sub->add_option("--doc", o->doc,
                    "with --summarize: replace the table between <!-- sweep:NAME --> and <!-- /sweep:NAME --> in this "
                    "Markdown file, NAME being the sweep folder's name")
        ->type_name("FILE")
        ->check(CLI::ExistingFile);
    sub->callback([o] { sweep(*o); });
}

}  // namespace cli
