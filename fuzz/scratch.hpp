#pragma once
// Parsers that read files get the input written to a private folder first (in memory where
// /dev/shm exists); the folder goes when the process ends normally.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

#include <inputrep/core/error.hpp>

namespace inputrep::fuzz {

struct Scratch {
    std::filesystem::path dir;
    Scratch() {
        const std::filesystem::path shm = "/dev/shm";
        dir = (std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path()) /
              ("inputrep-fuzz-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
    }
    ~Scratch() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
};

// A folder of its own for each target, created on first use.
inline std::filesystem::path folder(std::string_view name) {
    static const Scratch scratch;
    auto dir = scratch.dir / name;
    std::filesystem::create_directories(dir);
    return dir;
}

inline void put(const std::filesystem::path& file, std::string_view bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    require(out.good(), file.string(), ": the fuzz harness cannot write its scratch file");
}

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Two files in one input, split at the first NUL (JSON and merges text hold none).
inline std::pair<std::string_view, std::string_view> split(std::string_view input) {
    const auto nul = input.find('\0');
    if (nul == input.npos) return {input, {}};
    return {input.substr(0, nul), input.substr(nul + 1)};
}

}  // namespace inputrep::fuzz
