#pragma once
// Checkpoints in safetensors form: one file, or a sharded folder with model.safetensors.index.json.
// Tensors are read on demand, so a slice of a large model touches only the bytes of its blocks.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/device.hpp>
#include <inputrep/core/text.hpp>
#include <inputrep/io/mapped_file.hpp>
#include <inputrep/io/safetensors_format.hpp>

namespace inputrep {

inline at::ScalarType torch_dtype(std::string_view dtype, std::string_view context) {
    static const std::map<std::string_view, at::ScalarType> types{
        {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"F64", at::kDouble}, {"I64", at::kLong},
        {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},       {"U8", at::kByte},    {"BOOL", at::kBool}};
    auto it = types.find(dtype);
    if (it == types.end()) fail(context, ": dtype ", dtype, " has no libtorch equivalent");
    return it->second;
}

inline std::string shape_string(at::IntArrayRef shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A loaded tensor checked against the shape the model's config implies.
inline at::Tensor with_shape(at::Tensor t, at::IntArrayRef expected, const std::string& where,
                             const std::string& name) {
    require(t.sizes() == expected, where, ": tensor \"", name, "\" has shape ", shape_string(t.sizes()),
            " but the config implies ", shape_string(expected));
    return t;
}

// The tensor names a reader has served (which blocks a slice really read), kept by all its copies.
class LoadedNames {
public:
    void add(const std::string& name) const {
        std::lock_guard lock(state_->mutex);
        state_->names.insert(name);
    }
    std::set<std::string> names() const {
        std::lock_guard lock(state_->mutex);
        return state_->names;
    }

private:
    struct State {
        std::mutex mutex;
        std::set<std::string> names;
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::filesystem::path& path) : path_(path), file_(MappedFile::open(path)) {
        header_ = safetensors::parse_header(file_->bytes(), file_->size(), path.string());
    }

    const std::filesystem::path& path() const { return path_; }
    const safetensors::Header& header() const { return header_; }
    bool has(const std::string& name) const { return header_.tensors.contains(name); }

    const safetensors::Entry& entry(const std::string& name) const {
        auto it = header_.tensors.find(name);
        if (it == header_.tensors.end()) fail(path_.string(), ": missing tensor \"", name, "\"");
        return it->second;
    }

    // The tensor as stored, aliasing the mapping when its bytes are aligned (the file stays mapped
    // while any such tensor lives), then converted to `placement`.
    at::Tensor load(const std::string& name, const Placement& placement) const {
        const auto& e = entry(name);
        const auto type = torch_dtype(e.dtype, path_.string() + ": tensor \"" + name + "\"");
        std::byte* data = file_->bytes().data() + header_.data_start + e.begin;
        const auto item = safetensors::itemsize(e.dtype);
        at::Tensor raw;
        if (reinterpret_cast<std::uintptr_t>(data) % item == 0) {
            auto keep = file_;
            raw = at::from_blob(
                data, e.shape, [keep](void*) {}, at::TensorOptions().dtype(type));
        } else {
            raw = at::empty(e.shape, at::TensorOptions().dtype(type));
            std::memcpy(raw.data_ptr(), data, e.end - e.begin);
        }
        auto target = placement.resolved();
        return raw.to(target.device, target.dtype);
    }

private:
    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    safetensors::Header header_;
};

// A captured output (what `hidden --save` writes, what `invert --target` compares with): stored as
// floating point and finite, else an error naming the file and the tensor. Integers would be
// converted without a word, and NaN compares with nothing, so exact search would verify nothing.
inline at::Tensor load_captured(const SafetensorsFile& file, const std::string& name, const Placement& placement) {
    const auto& path = file.path().string();
    require(file.has(name), path, " holds no tensor \"", name, "\" (give --target-hook NAME)");
    const auto& dtype = file.entry(name).dtype;
    require(dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64", path, ": tensor \"", name,
            "\" holds ", dtype, " values; a captured output is floating point (F32, F16 or BF16)");
    const at::Tensor t = file.load(name, placement);
    require(t.numel() > 0, path, ": tensor \"", name, "\" is empty");
    const auto finite = at::isfinite(t);
    if (!finite.all().item<bool>()) {
        const auto first = finite.logical_not().nonzero()[0].to(at::kCPU).contiguous();
        std::string index;
        for (std::int64_t i = 0; i < first.numel(); ++i)
            index += (i ? "," : "") + std::to_string(first[i].item<std::int64_t>());
        fail(path, ": tensor \"", name, "\" holds NaN or inf (first at index [", index,
             "]); exact search needs finite outputs to compare with");
    }
    return t;
}

// The captured outputs `names` (comma-separated) as one [prompts, tokens, features], in their stored dtype: [tokens,
// features] is one prompt; a point inside attention (blocks.N.attn.hook_k), saved per head
// [(prompts,) tokens, heads, hd], has its heads side by side; several points are joined along
// features in the order named (what a slice up to those hook points outputs).
inline at::Tensor load_captured_outputs(const SafetensorsFile& file, std::string_view names,
                                        const Placement& placement) {
    std::vector<at::Tensor> parts;
    for (auto name : text::split(names, ',')) {
        // In the dtype it was stored in (through f64, exactly): its precision is part of it.
        at::Tensor t = load_captured(file, std::string(name), {placement.device, at::kDouble})
                           .to(torch_dtype(file.entry(std::string(name)).dtype, file.path().string()));
        const bool per_head = name.find(".attn.hook_") != std::string_view::npos;
        require(t.dim() == (per_head ? 3 : 2) || t.dim() == (per_head ? 4 : 3), file.path().string(), ": tensor \"",
                name, "\" is ", t.sizes(), "; a captured output is [(prompts,) tokens, ",
                per_head ? "heads, d_head]" : "features]");
        if (per_head) t = t.flatten(-2);
        if (t.dim() == 2) t = t.unsqueeze(0);
        require(parts.empty() || (t.size(0) == parts[0].size(0) && t.size(1) == parts[0].size(1)), file.path().string(),
                ": tensor \"", name, "\" holds ", t.size(0), " prompts of ", t.size(1),
                " tokens, unlike the first one named (", parts.empty() ? 0 : parts[0].size(0), " of ",
                parts.empty() ? 0 : parts[0].size(1), ")");
        parts.push_back(t);
    }
    return parts.size() == 1 ? parts.front() : at::cat(parts, -1);
}

// A Hugging Face folder's weights (model.safetensors, or an index and its shards) or one
// .safetensors file. Shards open when one of their tensors is first asked for; the names of
// every tensor materialised are recorded so tests and users can see what a slice cost.
class Checkpoint {
public:
    static Checkpoint open(const std::filesystem::path& path) {
        Checkpoint c;
        if (std::filesystem::is_regular_file(path)) {
            c.root_ = path.parent_path();
            c.add_file(path);
            return c;
        }
        require(std::filesystem::is_directory(path), path.string(), ": no such checkpoint file or folder");
        c.root_ = path;
        const auto single = path / "model.safetensors";
        const auto index = path / "model.safetensors.index.json";
        if (std::filesystem::exists(index)) {
            c.where_ = safetensors::read_index(index);
        } else if (std::filesystem::exists(single)) {
            c.add_file(single);
        } else {
            fail(path.string(), ": neither model.safetensors nor model.safetensors.index.json found");
        }
        return c;
    }

    const std::filesystem::path& root() const { return root_; }
    bool has(const std::string& name) const { return where_.contains(name); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (auto& [name, _] : where_) out.push_back(name);
        return out;
    }

    at::Tensor load(const std::string& name, const Placement& placement) const {
        auto it = where_.find(name);
        if (it == where_.end()) fail(root_.string(), ": missing tensor \"", name, "\"");
        auto t = shard(it->second).load(name, placement);
        loaded_.add(name);
        return t;
    }

    at::Tensor load(const std::string& name, const Placement& placement, at::IntArrayRef expected) const {
        return with_shape(load(name, placement), expected, root_.string(), name);
    }

    std::set<std::string> loaded() const { return loaded_.names(); }

private:
    void add_file(const std::filesystem::path& file) {
        auto& f = shard(file);
        for (auto& [name, _] : f.header().tensors) where_[name] = file;
    }
    const SafetensorsFile& shard(const std::filesystem::path& file) const {
        std::lock_guard lock(state_->mutex);
        auto& slot = state_->open[file];
        if (!slot) slot = std::make_shared<SafetensorsFile>(file);
        return *slot;
    }

    struct State {
        std::mutex mutex;
        std::map<std::filesystem::path, std::shared_ptr<SafetensorsFile>> open;
    };
    std::filesystem::path root_;
    std::map<std::string, std::filesystem::path> where_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
    LoadedNames loaded_;
};

}  // namespace inputrep
