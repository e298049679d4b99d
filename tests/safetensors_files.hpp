#pragma once
// Small safetensors files written byte by byte, valid or broken on purpose, for the reader's tests.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <inputrep/io/safetensors_format.hpp>

namespace testing {

struct RawTensor {
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::vector<unsigned char> bytes;
};

// A float tensor [n] holding 0, 1, 2, ...
inline RawTensor f32_tensor(std::string name, int n) {
    RawTensor t{std::move(name), "F32", {n}, std::vector<unsigned char>(4 * n)};
    for (int i = 0; i < n; ++i) {
        float v = float(i);
        std::memcpy(t.bytes.data() + 4 * i, &v, 4);
    }
    return t;
}

// The header entries for tensors laid back to back.
inline std::vector<inputrep::safetensors::Entry> layout(const std::vector<RawTensor>& tensors) {
    std::vector<inputrep::safetensors::Entry> entries;
    std::uint64_t offset = 0;
    for (auto& t : tensors) {
        entries.push_back({t.name, t.dtype, t.shape, offset, offset + t.bytes.size()});
        offset += t.bytes.size();
    }
    return entries;
}

inline std::string file_bytes(const std::string& header, const std::vector<RawTensor>& tensors) {
    std::string out(8, '\0');
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
    out += header;
    for (auto& t : tensors) out.append(t.bytes.begin(), t.bytes.end());
    return out;
}

inline std::string valid_file(const std::vector<RawTensor>& tensors) {
    return file_bytes(inputrep::safetensors::make_header(layout(tensors), {{"format", "pt"}}), tensors);
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::filesystem::path temp_dir(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("inputrep-test-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace testing
