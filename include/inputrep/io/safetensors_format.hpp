#pragma once
// The safetensors container, as the reference reader (huggingface/safetensors, tensor.rs) defines it:
//   [u64 little-endian N][N bytes of JSON header][data buffer]
// Offsets in the header are relative to the start of the data buffer. This file parses and
// validates a header without libtorch, so it can be fuzzed and built under sanitizers on its own.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>

namespace inputrep::safetensors {

// The reference reader's bound: a header larger than this is treated as an attack, not a file.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

// Every dtype string of the format; only some map to tensors libtorch can hold (see safetensors.hpp).
inline std::size_t itemsize(std::string_view dtype) {
    static const std::map<std::string_view, std::size_t> sizes{
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
    auto it = sizes.find(dtype);
    if (it == sizes.end()) fail("unknown dtype \"", dtype, "\"");
    return it->second;
}

struct Entry {
    std::string name;
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t begin = 0, end = 0;  // byte range within the data buffer, end one past

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

struct Header {
    std::map<std::string, Entry> tensors;
    std::map<std::string, std::string> metadata;
    std::uint64_t data_start = 0;  // file offset of the data buffer: 8 + N
};

inline std::uint64_t read_u64_le(std::span<const std::byte> bytes) {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[i]);
    return n;
}

namespace detail {
// a*b, failing instead of wrapping: a crafted shape must not pass the size check by overflow.
inline std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, std::string_view context) {
    if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b) fail(context, ": tensor size overflows");
    return a * b;
}
}  // namespace detail

// `file` is the whole file (or at least its first 8 + N bytes); `file_size` its true size.
// `context` names the file in error messages.
inline Header parse_header(std::span<const std::byte> file, std::uint64_t file_size, std::string_view context) {
    const std::string ctx(context);
    require(file_size >= 8, ctx, ": truncated safetensors file (", file_size,
            " bytes, the 8-byte header length is missing)");
    const std::uint64_t n = read_u64_le(file.first(8));
    require(n <= max_header_bytes, ctx, ": header length ", n, " exceeds the limit of ", max_header_bytes, " bytes");
    require(n <= file_size - 8, ctx, ": header length ", n, " is larger than the file (", file_size, " bytes)");
    require(file.size() >= 8 + n, ctx, ": header bytes not available");

    const auto* text = reinterpret_cast<const char*>(file.data() + 8);
    // Duplicate names are invalid in the format, but a JSON object would silently keep the last one.
    std::vector<std::string> keys;
    auto collect_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (depth == 1 && event == nlohmann::json::parse_event_t::key) keys.push_back(parsed.get<std::string>());
        return true;
    };
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(text, text + n, collect_keys);
    } catch (const nlohmann::json::exception& e) {
        fail(ctx, ": header is not valid JSON (", e.what(), ")");
    }
    require(json.is_object(), ctx, ": header is not a JSON object");
    std::sort(keys.begin(), keys.end());
    if (auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end())
        fail(ctx, ": tensor \"", *dup, "\" appears twice in the header");

    Header header;
    header.data_start = 8 + n;
    for (auto& [name, value] : json.items()) {
        if (name == "__metadata__") {
            require(value.is_object(), ctx, ": __metadata__ must be an object of strings");
            for (auto& [k, v] : value.items()) {
                require(v.is_string(), ctx, ": __metadata__ value for \"", k, "\" is not a string");
                header.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        const std::string where = ctx + ": tensor \"" + name + "\"";
        require(
            value.is_object() && value.contains("dtype") && value.contains("shape") && value.contains("data_offsets"),
            where, " needs dtype, shape and data_offsets");
        Entry e;
        e.name = name;
        require(value["dtype"].is_string(), where, ": dtype is not a string");
        e.dtype = value["dtype"].get<std::string>();
        std::size_t item = 0;
        try {
            item = itemsize(e.dtype);
        } catch (const Error& err) {
            fail(where, ": ", err.what());
        }
        const auto& shape = value["shape"];
        require(shape.is_array(), where, ": shape is not a list");
        std::uint64_t bytes = item;
        for (const auto& d : shape) {
            require(d.is_number_unsigned(), where, ": shape entries must be non-negative integers");
            e.shape.push_back(d.get<std::int64_t>());
            bytes = detail::checked_mul(bytes, d.get<std::uint64_t>(), where);
        }
        const auto& offsets = value["data_offsets"];
        require(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                    offsets[1].is_number_unsigned(),
                where, ": data_offsets must be two non-negative integers");
        e.begin = offsets[0].get<std::uint64_t>();
        e.end = offsets[1].get<std::uint64_t>();
        require(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
        require(e.end - e.begin == bytes, where, ": data_offsets span ", e.end - e.begin, " bytes but dtype ", e.dtype,
                " and its shape need ", bytes);
        header.tensors.emplace(name, std::move(e));
    }

    // The data buffer must be tiled exactly: no gaps, no overlaps, nothing past the end.
    std::vector<const Entry*> order;
    for (auto& [_, e] : header.tensors) order.push_back(&e);
    std::sort(order.begin(), order.end(),
              [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
    const std::uint64_t buffer = file_size - header.data_start;
    std::uint64_t expected = 0;
    for (const Entry* e : order) {
        require(e->begin == expected, ctx, ": tensor \"", e->name, "\" starts at byte ", e->begin,
                " of the data buffer, expected ", expected,
                e->begin < expected ? " (it overlaps the previous tensor)" : " (gap before it)");
        expected = e->end;
    }
    require(expected <= buffer, ctx, ": data_offsets reach byte ", expected, " but the data buffer holds only ", buffer,
            " bytes (truncated file or out-of-range offsets)");
    require(expected == buffer, ctx, ": ", buffer - expected, " trailing bytes after the last tensor");
    return header;
}

// A sharded checkpoint's model.safetensors.index.json: tensor name -> its shard, a file in the
// index's folder. Shard names are plain file names: an index that names "/etc/passwd" or "../x"
// would have the loader read outside the folder. (A shard that is a symbolic link is followed, as
// model.safetensors is: the Hugging Face cache links every file to its blob, and whoever controls
// the folder's links controls the folder anyway; the index, a small text file, is what travels.)
inline std::map<std::string, std::filesystem::path> read_index(const std::filesystem::path& index) {
    const std::string ctx = index.string();
    const std::string text = read_file(index, "shard index");
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(ctx, ": not valid JSON (", e.what(), ")");
    }
    require(json.is_object() && json.contains("weight_map") && json["weight_map"].is_object(), ctx, ": no weight_map");
    const auto folder = index.parent_path();
    std::map<std::string, std::filesystem::path> shards;
    for (const auto& [name, shard] : json["weight_map"].items()) {
        require(shard.is_string(), ctx, ": weight_map entry for \"", name, "\" is not a file name");
        const auto file = shard.get<std::string>();
        require(!file.empty() && file != "." && file != ".." &&
                    file.find_first_of(std::string_view("/\\\0", 3)) == file.npos,
                ctx, ": shard ", shard.dump(), " (holding \"", name,
                "\") is not a plain file name in the index's folder");
        const auto path = folder / file;
        std::error_code unreadable;  // a name too long for the file system is a missing shard, not an exception
        require(std::filesystem::is_regular_file(path, unreadable), ctx, ": shard ", file, " (holding \"", name,
                "\") is missing from ", folder.string());
        shards.emplace(name, path);
    }
    return shards;
}

// The header a writer produces for `entries` laid out back to back in the given order; padded with
// spaces to a multiple of 8 so every tensor stays aligned to its element size.
inline std::string make_header(const std::vector<Entry>& entries, const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json json;
    if (!metadata.empty()) json["__metadata__"] = metadata;
    for (const auto& e : entries)
        json[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
    std::string text = json.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

}  // namespace inputrep::safetensors
