#pragma once
// Which rows of a sweep this process runs: --shard I/N, or the shard a Slurm job array or srun gives
// it (the program's MPI mode hands rows out itself).
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <inputrep/core/error.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/sweep/spec.hpp>

namespace inputrep::sweep {

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
}  // namespace inputrep::sweep
