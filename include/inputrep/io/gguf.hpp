#pragma once
// GGUF files (llama.cpp), memory-mapped and read lazily like a safetensors checkpoint: a tensor is
// read only when a slice loads it, dequantised to f32 (load) or kept in its quantised blocks
// (blocks, for a block's matrices), and served under its Hugging Face name in Hugging Face's
// layout, so the families read it as they read a folder.
//   llama: token_embd -> model.embed_tokens, output_norm -> model.norm, output -> lm_head (absent:
//          tied), and per block blk.N. -> model.layers.N.: attn_norm -> input_layernorm, attn_q,
//          attn_k, attn_v, attn_output -> self_attn.q_proj, k_proj, v_proj, o_proj, ffn_norm ->
//          post_attention_layernorm, ffn_gate, ffn_up, ffn_down -> mlp.gate_proj, up_proj, down_proj.
//          llama.cpp's converter permutes q and k rows into Meta's interleaved rotary order, as
//          llama2.c's are; they are permuted back to rotate-half here.
//   gpt2:  token_embd -> wte, position_embd -> wpe, output_norm -> ln_f, output -> lm_head, and per
//          block blk.N. -> h.N.: attn_norm -> ln_1, attn_qkv -> attn.c_attn, attn_output ->
//          attn.c_proj, ffn_norm -> ln_2, ffn_up -> mlp.c_fc, ffn_down -> mlp.c_proj. llama.cpp stores
//          the Conv1D weights as [out, in]; Hugging Face's GPT-2 holds [in, out], so they are transposed.
// Tensors of other names (another architecture's extras) are not served.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/Parallel.h>

#include <inputrep/core/device.hpp>
#include <inputrep/io/gguf_format.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/llama2c.hpp>
#include <inputrep/io/mapped_file.hpp>
#include <inputrep/io/safetensors.hpp>

namespace inputrep {

// A quantised matrix as a GGUF file stores it: [out, bytes per row] of `type`'s blocks, rows of `in` weights.
struct GgufBlocks {
    at::Tensor rows;
    gguf::TensorType type;
    std::int64_t in = 0;
};

class GgufFile {
public:
    static GgufFile open(const std::filesystem::path& path) {
        GgufFile g;
        g.path_ = path;
        g.file_ = MappedFile::open(path);
        g.header_ = gguf::parse_header(g.file_->bytes(), path.string());
        g.architecture_ = g.header_.string("general.architecture").value_or("");
        require(g.architecture_ == "llama" || g.architecture_ == "gpt2", path.string(), ": general.architecture is \"",
                g.architecture_, "\"; inputrep reads llama (Llama, Mistral) and gpt2 GGUF files");
        require(!g.header_.tensor("rope_freqs.weight"), path.string(),
                ": rope_freqs.weight (Llama 3.1's rescaled rotary frequencies) is not supported");
        require(g.header_.integer("llama.expert_count").value_or(0) == 0, path.string(),
                ": a mixture of experts, which inputrep's Llama is not");
        g.name_tensors();
        return g;
    }

    const gguf::Header& header() const { return header_; }
    const std::string& architecture() const { return architecture_; }

    // The Hugging Face config.json the metadata amounts to.
    Json config() const {
        const auto vocab = shape_of("token_embd.weight").at(0);
        const bool tied = !header_.tensor("output.weight");
        if (architecture_ == "gpt2") {
            const auto d = integer("gpt2.embedding_length"), inner = integer("gpt2.feed_forward_length");
            return {{"model_type", "gpt2"},
                    {"architectures", {"GPT2LMHeadModel"}},
                    {"vocab_size", vocab},
                    {"n_positions", integer("gpt2.context_length")},
                    {"n_embd", d},
                    {"n_layer", integer("gpt2.block_count")},
                    {"n_head", integer("gpt2.attention.head_count")},
                    {"n_inner", inner == 4 * d ? Json(nullptr) : Json(inner)},
                    {"layer_norm_epsilon", number("gpt2.attention.layer_norm_epsilon")},
                    {"activation_function", "gelu_new"},
                    {"tie_word_embeddings", tied}};
        }
        const auto d = integer("llama.embedding_length"), heads = integer("llama.attention.head_count");
        require(heads > 0, path_.string(), ": llama.attention.head_count is ", heads);
        const auto head_dim = header_.integer("llama.attention.key_length").value_or(d / heads);
        require(header_.integer("llama.attention.value_length").value_or(head_dim) == head_dim, path_.string(),
                ": keys and values of different lengths are not supported");
        require(header_.integer("llama.rope.dimension_count").value_or(head_dim) == head_dim, path_.string(),
                ": rotary over part of a head (llama.rope.dimension_count < the head's ", head_dim,
                ") is not supported");
        const auto scaling = header_.string("llama.rope.scaling.type").value_or("none");
        require(scaling == "none", path_.string(), ": rope scaling \"", scaling, "\" is not supported");
        Json j{{"model_type", "llama"},
               {"architectures", {"LlamaForCausalLM"}},
               {"hidden_size", d},
               {"intermediate_size", integer("llama.feed_forward_length")},
               {"num_hidden_layers", integer("llama.block_count")},
               {"num_attention_heads", heads},
               {"num_key_value_heads", header_.integer("llama.attention.head_count_kv").value_or(heads)},
               {"vocab_size", vocab},
               {"max_position_embeddings", integer("llama.context_length")},
               {"rms_norm_eps", number("llama.attention.layer_norm_rms_epsilon")},
               {"rope_theta", header_.number("llama.rope.freq_base").value_or(10000.0)},
               {"tie_word_embeddings", tied},
               {"hidden_act", "silu"}};
        if (head_dim * heads != d) j["head_dim"] = head_dim;
        for (auto [key, name] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                 std::pair{"tokenizer.ggml.eos_token_id", "eos_token_id"}})
            if (auto id = header_.integer(key)) j[name] = *id;
        return j;
    }

    bool has(const std::string& name) const { return entries_.contains(name); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (auto& [name, _] : entries_) out.push_back(name);
        return out;
    }

    // The tensor as Hugging Face lays it out, in f32 (F32 tensors alias the mapping, a private
    // copy-on-write page), converted to `placement`.
    at::Tensor load(const std::string& name, const Placement& placement) const {
        const Entry& e = *entry(name);
        const gguf::TensorInfo& info = header_.tensors[e.tensor];
        at::Tensor t = stored(info);
        if (e.layout != Layout::as_stored) {
            require(t.dim() == 2, path_.string(), ": tensor \"", info.name, "\" has ", t.dim(),
                    " dimensions, not the 2 of a matrix");
            if (e.layout == Layout::transposed) t = t.t().contiguous();
        }
        if (e.layout == Layout::rotary) {
            require(t.size(0) % (2 * e.heads) == 0, path_.string(), ": tensor \"", info.name, "\" has ", t.size(0),
                    " rows, which do not split into ", e.heads, " heads of pairs");
            t = Llama2cCheckpoint::interleaved_to_rotate_half(t, e.heads);
        }
        loaded_.add(name);
        const auto target = placement.resolved();
        return t.to(target.device, target.dtype);
    }

    at::Tensor load(const std::string& name, const Placement& placement, at::IntArrayRef expected) const {
        return with_shape(load(name, placement), expected, path_.string(), name);
    }

    // A quantised matrix kept in its blocks (a copy in Hugging Face's row order; the file's pages are
    // let go), checked against the shape Hugging Face gives it; nothing for a float tensor.
    std::optional<GgufBlocks> blocks(const std::string& name, at::IntArrayRef expected) const {
        const auto* e = entry(name);
        const gguf::TensorInfo& info = header_.tensors[e->tensor];
        const auto type = gguf::info(info.type);
        if (type.block == 1 || info.dims.size() != 2) return std::nullopt;
        const auto out = std::int64_t(info.dims[1]), in = std::int64_t(info.dims[0]);
        const std::vector<std::int64_t> hf =
            e->layout == Layout::transposed ? std::vector{in, out} : std::vector{out, in};
        require(expected.vec() == hf, path_.string(), ": tensor \"", name, "\" is ", shape_string(hf), ", expected ",
                shape_string(expected));
        const std::span<const std::byte> stored(file_->bytes().data() + header_.data_start + info.offset, info.bytes);
        at::Tensor rows = at::empty({out, std::int64_t(info.bytes) / out}, at::kByte);
        std::memcpy(rows.data_ptr(), stored.data(), stored.size());
        file_->release(stored);
        if (e->layout == Layout::rotary) rows = Llama2cCheckpoint::interleaved_to_rotate_half(rows, e->heads);
        loaded_.add(name);
        return GgufBlocks{rows, info.type, in};
    }
    // The bytes blocks() would hold for `name`, or nothing for a float tensor.
    std::optional<std::uint64_t> block_bytes(const std::string& name) const {
        const auto it = entries_.find(name);
        if (it == entries_.end()) return std::nullopt;
        const gguf::TensorInfo& info = header_.tensors[it->second.tensor];
        if (gguf::info(info.type).block == 1) return std::nullopt;
        return info.bytes;
    }

    std::set<std::string> loaded() const { return loaded_.names(); }

private:
    enum class Layout { as_stored, rotary, transposed };
    struct Entry {
        std::size_t tensor;  // in header_.tensors
        Layout layout = Layout::as_stored;
        std::int64_t heads = 0;  // rotary: the heads whose rows are permuted
    };

    const Entry* entry(const std::string& name) const {
        const auto it = entries_.find(name);
        if (it == entries_.end()) fail(path_.string(), ": no tensor \"", name, "\" in this GGUF file");
        return &it->second;
    }

    void name_tensors() {
        struct Rename {
            std::string_view gguf, hf;
            Layout layout = Layout::as_stored;
        };
        const bool llama = architecture_ == "llama";
        const std::vector<Rename> whole = llama
                                              ? std::vector<Rename>{{"token_embd.weight", "model.embed_tokens.weight"},
                                                                    {"output_norm.weight", "model.norm.weight"},
                                                                    {"output.weight", "lm_head.weight"}}
                                              : std::vector<Rename>{{"token_embd.weight", "wte.weight"},
                                                                    {"position_embd.weight", "wpe.weight"},
                                                                    {"output_norm.weight", "ln_f.weight"},
                                                                    {"output_norm.bias", "ln_f.bias"},
                                                                    {"output.weight", "lm_head.weight"}};
        const std::vector<Rename> per_block =
            llama ? std::vector<Rename>{{"attn_norm.weight", "input_layernorm.weight"},
                                        {"attn_q.weight", "self_attn.q_proj.weight", Layout::rotary},
                                        {"attn_k.weight", "self_attn.k_proj.weight", Layout::rotary},
                                        {"attn_v.weight", "self_attn.v_proj.weight"},
                                        {"attn_output.weight", "self_attn.o_proj.weight"},
                                        {"ffn_norm.weight", "post_attention_layernorm.weight"},
                                        {"ffn_gate.weight", "mlp.gate_proj.weight"},
                                        {"ffn_up.weight", "mlp.up_proj.weight"},
                                        {"ffn_down.weight", "mlp.down_proj.weight"}}
                  : std::vector<Rename>{{"attn_norm.weight", "ln_1.weight"},
                                        {"attn_norm.bias", "ln_1.bias"},
                                        {"attn_qkv.weight", "attn.c_attn.weight", Layout::transposed},
                                        {"attn_qkv.bias", "attn.c_attn.bias"},
                                        {"attn_output.weight", "attn.c_proj.weight", Layout::transposed},
                                        {"attn_output.bias", "attn.c_proj.bias"},
                                        {"ffn_norm.weight", "ln_2.weight"},
                                        {"ffn_norm.bias", "ln_2.bias"},
                                        {"ffn_up.weight", "mlp.c_fc.weight", Layout::transposed},
                                        {"ffn_up.bias", "mlp.c_fc.bias"},
                                        {"ffn_down.weight", "mlp.c_proj.weight", Layout::transposed},
                                        {"ffn_down.bias", "mlp.c_proj.bias"}};
        auto rename = [](const std::vector<Rename>& table, std::string_view name) {
            const auto it = std::find_if(table.begin(), table.end(), [&](const Rename& r) { return r.gguf == name; });
            return it == table.end() ? nullptr : &*it;
        };
        for (std::size_t i = 0; i < header_.tensors.size(); ++i) {
            const std::string_view name = header_.tensors[i].name;
            std::string prefix, block;
            std::string_view part = name;
            if (name.starts_with("blk.")) {  // blk.N.part
                const auto dot = name.find('.', 4);
                if (dot == name.npos || dot == 4 || name.find_first_not_of("0123456789", 4) != dot) continue;
                block = std::string(name.substr(4, dot - 4));
                prefix = (llama ? "model.layers." : "h.") + block + ".";
                part = name.substr(dot + 1);
            }
            const Rename* r = rename(block.empty() ? whole : per_block, part);
            if (!r) continue;
            Entry e{i, r->layout};
            if (r->layout == Layout::rotary)
                e.heads = part.starts_with("attn_q") ? integer("llama.attention.head_count")
                                                     : header_.integer("llama.attention.head_count_kv")
                                                           .value_or(integer("llama.attention.head_count"));
            require(e.layout != Layout::rotary || e.heads > 0, path_.string(), ": ", name,
                    " needs a positive head count");
            entries_.emplace(prefix + std::string(r->hf), e);
        }
    }

    // The tensor as the file holds it, in torch's order: the float types as they are (aliasing the
    // mapping where aligned), the quantised ones dequantised to f32.
    at::Tensor stored(const gguf::TensorInfo& t) const {
        std::byte* data = file_->bytes().data() + header_.data_start + t.offset;
        const auto shape = t.shape();
        const auto type = gguf::info(t.type);
        if (type.block == 1) {
            const auto dtype = t.type == gguf::TensorType::f32   ? at::kFloat
                               : t.type == gguf::TensorType::f16 ? at::kHalf
                                                                 : at::kBFloat16;
            if (reinterpret_cast<std::uintptr_t>(data) % type.bytes == 0) {
                auto keep = file_;
                return at::from_blob(
                    data, shape, [keep](void*) {}, at::TensorOptions().dtype(dtype));
            }
            at::Tensor copy = at::empty(shape, at::TensorOptions().dtype(dtype));
            std::memcpy(copy.data_ptr(), data, t.bytes);
            return copy;
        }
        at::Tensor out = at::empty(shape, at::kFloat);
        float* y = out.data_ptr<float>();
        at::parallel_for(0, std::int64_t(t.bytes / type.bytes), 1024, [&](std::int64_t begin, std::int64_t end) {
            gguf::dequantize(t.type, std::span<const std::byte>(data + begin * type.bytes, (end - begin) * type.bytes),
                             std::span<float>(y + begin * type.block, (end - begin) * type.block));
        });
        file_->release({data, t.bytes});
        return out;
    }

    std::vector<std::int64_t> shape_of(const std::string& name) const {
        const auto* t = header_.tensor(name);
        require(t, path_.string(), ": no tensor \"", name, "\"");
        return {t->dims.rbegin(), t->dims.rend()};
    }
    std::int64_t integer(const std::string& key) const {
        const auto v = header_.integer(key);
        require(v.has_value(), path_.string(), ": no metadata \"", key, "\" (llama.cpp's converter writes it)");
        return *v;
    }
    double number(const std::string& key) const {
        const auto v = header_.number(key);
        require(v.has_value(), path_.string(), ": no metadata \"", key, "\" (llama.cpp's converter writes it)");
        return *v;
    }

    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    gguf::Header header_;
    std::string architecture_;
    std::map<std::string, Entry> entries_;
    LoadedNames loaded_;
};

}  // namespace inputrep
