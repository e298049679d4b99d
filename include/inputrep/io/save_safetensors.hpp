#pragma once
// Writing Hugging Face model folders: config.json and the weights as model.safetensors, or as
// model-0000i-of-0000n.safetensors shards with model.safetensors.index.json. Every file goes
// through the one writer (core/file.hpp), so a failed save never leaves a partial file under a
// name a reader would trust, and never replaces what is not a regular file.
//   save_safetensors(model, "out/", {.max_shard_bytes = 2'000'000'000});
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/torch.hpp>
#include <inputrep/io/safetensors_format.hpp>

namespace inputrep {

struct SaveOptions {
    std::uint64_t max_shard_bytes = 0;  // 0: one model.safetensors; else shards of at most this much tensor data
};

inline std::string safetensors_dtype(at::ScalarType type) {
    switch (type) {
        case at::kFloat:
            return "F32";
        case at::kHalf:
            return "F16";
        case at::kBFloat16:
            return "BF16";
        case at::kDouble:
            return "F64";
        case at::kLong:
            return "I64";
        case at::kInt:
            return "I32";
        case at::kShort:
            return "I16";
        case at::kChar:
            return "I8";
        case at::kByte:
            return "U8";
        case at::kBool:
            return "BOOL";
        default:
            fail("safetensors: tensors of dtype ", at::toString(type), " cannot be written");
    }
}

namespace detail {

inline std::uint64_t tensor_bytes(const at::Tensor& t) {
    return static_cast<std::uint64_t>(t.numel()) * t.element_size();
}

}  // namespace detail

// One safetensors file. Tensors are laid out by element size, largest first, then by name, so each
// starts aligned to its element size; each is copied to the CPU only while it is written.
inline void write_safetensors(const std::filesystem::path& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    static_assert(std::endian::native == std::endian::little,
                  "safetensors is little-endian and the writer copies tensor bytes as they lie in memory");
    std::vector<const std::pair<std::string, at::Tensor>*> order;
    for (auto& entry : tensors) order.push_back(&entry);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
        auto sa = a->second.element_size(), sb = b->second.element_size();
        return sa != sb ? sa > sb : a->first < b->first;
    });
    std::vector<safetensors::Entry> entries;
    std::set<std::string> names;
    std::uint64_t offset = 0;
    for (auto* e : order) {
        require(e->second.defined(), path.string(), ": tensor \"", e->first, "\" is undefined");
        require(names.insert(e->first).second, path.string(), ": tensor \"", e->first, "\" is given twice");
        const auto bytes = detail::tensor_bytes(e->second);
        entries.push_back(
            {e->first, safetensors_dtype(e->second.scalar_type()), e->second.sizes().vec(), offset, offset + bytes});
        offset += bytes;
    }
    const std::string header = safetensors::make_header(entries, {{"format", "pt"}});
    write_file(path, [&](std::ostream& out) {
        char length[8];
        for (int i = 0; i < 8; ++i) length[i] = char((std::uint64_t(header.size()) >> (8 * i)) & 0xff);
        out.write(length, 8);
        out.write(header.data(), std::streamsize(header.size()));
        for (auto* e : order) {
            at::Tensor cpu = e->second.detach().to(at::kCPU).contiguous();
            out.write(static_cast<const char*>(cpu.data_ptr()), std::streamsize(detail::tensor_bytes(cpu)));
        }
    });
}

// config.json and the weights of every tensor the model holds (model.named_tensors()), as a folder
// load() reads back. Weight files of an earlier save that this one does not write are removed, so
// the folder never mixes two saves.
template <class M>
void save_safetensors(const M& model, const std::filesystem::path& folder, const SaveOptions& options = {}) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    require(!ec && std::filesystem::is_directory(folder), folder.string(), ": cannot create the folder (",
            ec ? ec.message() : "a file of that name exists", ")");

    const auto tensors = model.named_tensors();
    std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
    std::uint64_t shard_size = 0, total = 0;
    for (const auto& entry : tensors) {
        const auto bytes = detail::tensor_bytes(entry.second);
        if (options.max_shard_bytes > 0 && !shards.back().empty() && shard_size + bytes > options.max_shard_bytes) {
            shards.emplace_back();
            shard_size = 0;
        }
        shards.back().push_back(entry);
        shard_size += bytes;
        total += bytes;
    }

    write_file(folder / "config.json", [&](std::ostream& out) { out << model.config().to_json().dump(2) << '\n'; });
    std::set<std::string> written;
    if (shards.size() == 1) {
        write_safetensors(folder / "model.safetensors", shards.front());
        written.insert("model.safetensors");
    } else {
        nlohmann::ordered_json index{{"metadata", {{"total_size", total}}},
                                     {"weight_map", nlohmann::ordered_json::object()}};
        for (std::size_t i = 0; i < shards.size(); ++i) {
            char name[64];
            std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
            write_safetensors(folder / name, shards[i]);
            written.insert(name);
            for (auto& [tensor, _] : shards[i]) index["weight_map"][tensor] = name;
        }
        // Last: its presence is what makes a reader look for shards.
        write_file(folder / "model.safetensors.index.json", [&](std::ostream& out) { out << index.dump(2) << '\n'; });
        written.insert("model.safetensors.index.json");
    }
    auto is_weights = [](const std::string& name) {
        return name == "model.safetensors" || name == "model.safetensors.index.json" ||
               (name.starts_with("model-") && name.ends_with(".safetensors") && name.find("-of-") != std::string::npos);
    };
    for (const auto& file : std::filesystem::directory_iterator(folder)) {
        auto name = file.path().filename().string();
        if (is_weights(name) && !written.contains(name)) std::filesystem::remove(file.path());
    }
}

}  // namespace inputrep
