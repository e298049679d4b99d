#pragma once
// The memory a model may take: what the machine has available, and the refusal before anything is
// allocated (the bytes come from a family's estimated_bytes, which walks its tensor list).
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include <inputrep/core/error.hpp>

namespace inputrep {

// MemAvailable from /proc/meminfo, or nothing where the file is not there.
inline std::optional<std::uint64_t> available_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024;
    return std::nullopt;
}

// Refuses a model whose tensors would not fit in the memory available, before anything is allocated.
// `bytes` from Family::estimated_bytes; `override_check` lets a user try anyway (e.g. swap).
inline void check_memory(std::uint64_t bytes, bool override_check,
                         std::optional<std::uint64_t> available = available_memory_bytes()) {
    if (override_check || !available) return;
    auto gb = [](std::uint64_t b) { return std::round(double(b) / 1e8) / 10; };
    require(
        bytes <= *available, "the model needs about ", gb(bytes), " GB of memory but ", gb(*available),
        " GB are available (MemAvailable in /proc/meminfo); use a smaller slice or dtype or 8-bit weights, or override "
        "the memory check to try anyway");
}

}  // namespace inputrep
