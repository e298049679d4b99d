#pragma once
// llama2.c checkpoints (Karpathy's run.c): a small header, then every weight as raw f32, grouped
// by kind across layers. The tensors are served under Hugging Face Llama names so the Llama model
// reads them exactly as it reads a safetensors folder.
//
//   v0 (run.c, legacy export): 7 int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//      seq_len (vocab < 0: the classifier is not shared with the embedding); then embedding,
//      attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final norm, two legacy RoPE tables
//      [seq_len, head_size/2] (unused), classifier if unshared.
//   v1 (export.py): 256-byte header: uint32 "ak42", int32 version 1, the 7 int32, uint8 shared
//      classifier; then attention norms, ffn norms, final norm, embedding, wq, wk, wv, wo, w1, w2,
//      w3, classifier if unshared.
// w1 is the gate (SiLU) projection, w3 the up projection and w2 the down projection. q and k rows
// are in Meta's interleaved RoPE layout and are permuted to HF's rotate-half layout on load.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <inputrep/core/device.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/mapped_file.hpp>
#include <inputrep/io/safetensors.hpp>

namespace inputrep {

struct Llama2cHeader {
    int version = 0;  // 0: run.c's legacy layout, 1: export.py's "ak42" layout
    std::int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
    bool shared_classifier = true;
    std::size_t bytes = 0;  // of the header itself

    std::int64_t head_size() const { return dim / n_heads; }
};

class Llama2cCheckpoint {
public:
    static Llama2cCheckpoint open(const std::filesystem::path& path) {
        Llama2cCheckpoint c;
        c.path_ = path;
        c.file_ = MappedFile::open(path);
        c.header_ = read_header(*c.file_, path.string());
        c.lay_out();
        return c;
    }

    const Llama2cHeader& header() const { return header_; }

    // The Hugging Face config.json this file amounts to; run.c fixes eps and θ.
    Json config() const {
        return {{"model_type", "llama"},
                {"architectures", {"LlamaForCausalLM"}},
                {"hidden_size", header_.dim},
                {"intermediate_size", header_.hidden_dim},
                {"num_hidden_layers", header_.n_layers},
                {"num_attention_heads", header_.n_heads},
                {"num_key_value_heads", header_.n_kv_heads},
                {"vocab_size", header_.vocab_size},
                {"max_position_embeddings", header_.seq_len},
                {"rms_norm_eps", 1e-5},
                {"rope_theta", 10000.0},
                {"tie_word_embeddings", header_.shared_classifier},
                {"hidden_act", "silu"},
                {"bos_token_id", 1},
                {"eos_token_id", 2}};
    }

    bool has(const std::string& name) const { return entries_.contains(name); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (auto& [name, _] : entries_) out.push_back(name);
        return out;
    }

    // The tensor aliasing the mapping (a private copy-on-write page), or a permuted copy for q/k.
    at::Tensor load(const std::string& name, const Placement& placement) const {
        auto it = entries_.find(name);
        if (it == entries_.end()) fail(path_.string(), ": no tensor \"", name, "\" in this llama2.c checkpoint");
        const Entry& e = it->second;
        auto keep = file_;
        at::Tensor t = at::from_blob(file_->bytes().data() + e.offset, e.shape, [keep](void*) {}, at::TensorOptions().dtype(at::kFloat));
        if (e.rotary_heads > 0) t = interleaved_to_rotate_half(t, e.rotary_heads);
        {
            std::lock_guard lock(state_->mutex);
            state_->loaded.insert(name);
        }
        const auto target = placement.resolved();
        return t.to(target.device, target.dtype);
    }

    at::Tensor load(const std::string& name, const Placement& placement, at::IntArrayRef expected) const {
        return with_shape(load(name, placement), expected, path_.string(), name);
    }

    std::set<std::string> loaded() const {
        std::lock_guard lock(state_->mutex);
        return state_->loaded;
    }

private:
    struct Entry {
        std::size_t offset = 0;
        std::vector<std::int64_t> shape;
        std::int64_t rotary_heads = 0;  // > 0: q or k, whose rows are permuted per head
    };

    // Meta rotates adjacent pairs (2i, 2i+1) of a head, HF pairs i with i + hd/2: listing each
    // head's even rows, then its odd rows, turns one into the other (convert_llama_weights_to_hf).
    static at::Tensor interleaved_to_rotate_half(const at::Tensor& w, std::int64_t heads) {
        const auto rows = w.size(0), cols = w.size(1);
        return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
    }

    static Llama2cHeader read_header(const MappedFile& file, const std::string& where) {
        const auto bytes = file.bytes();
        auto int_at = [&](std::size_t offset) {
            std::int32_t v;
            std::memcpy(&v, bytes.data() + offset, 4);
            return std::int64_t(v);
        };
        require(!bytes.empty(), where, ": empty file, not a llama2.c checkpoint");
        require(!(bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0), where,
                ": a PyTorch zip checkpoint, not a llama2.c one (convert it to safetensors)");
        Llama2cHeader h;
        std::size_t ints = 0;
        std::uint32_t magic = 0;
        if (bytes.size() >= 4) std::memcpy(&magic, bytes.data(), 4);
        if (magic == 0x616b3432u) {  // "ak42"
            require(bytes.size() >= 256, where, ": ", bytes.size(), " bytes are too few for a llama2.c v1 header (256)");
            h.version = static_cast<int>(int_at(4));
            require(h.version == 1, where, ": llama2.c export version ", h.version,
                    " is not supported (only the f32 formats: legacy v0 and v1; v2 is runq.c's int8 format)");
            ints = 8;
            h.bytes = 256;
        } else {
            h.bytes = 28;
            require(bytes.size() >= h.bytes, where, ": ", bytes.size(), " bytes are too few for a llama2.c header (28)");
        }
        h.dim = int_at(ints), h.hidden_dim = int_at(ints + 4), h.n_layers = int_at(ints + 8), h.n_heads = int_at(ints + 12);
        h.n_kv_heads = int_at(ints + 16), h.vocab_size = int_at(ints + 20), h.seq_len = int_at(ints + 24);
        if (h.version == 1) {
            h.shared_classifier = std::to_integer<int>(bytes[ints + 28]) != 0;
        } else {
            h.shared_classifier = h.vocab_size > 0;
            h.vocab_size = std::abs(h.vocab_size);
        }
        require(h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 && h.vocab_size > 0 && h.seq_len > 0,
                where, ": not a llama2.c checkpoint (header dim ", h.dim, ", hidden_dim ", h.hidden_dim, ", n_layers ", h.n_layers,
                ", n_heads ", h.n_heads, ", n_kv_heads ", h.n_kv_heads, ", vocab_size ", h.vocab_size, ", seq_len ", h.seq_len,
                " must all be positive)");
        require(h.dim % h.n_heads == 0 && h.head_size() % 2 == 0 && h.n_heads % h.n_kv_heads == 0, where,
                ": header has dim ", h.dim, ", ", h.n_heads, " heads and ", h.n_kv_heads,
                " kv heads: dim must split into heads of even size and heads into kv groups");
        return h;
    }

    // Walk the file in storage order, naming each tensor; the total must be the file's size.
    void lay_out() {
        const auto& h = header_;
        const auto d = h.dim, hs = h.head_size(), q = h.n_heads * hs, kv = h.n_kv_heads * hs;
        struct Group {
            std::string name;  // per layer: the part after "model.layers.N."; empty: skipped
            std::vector<std::int64_t> shape;
            bool per_layer;
            std::int64_t rotary_heads = 0;
        };
        const Group embed{"model.embed_tokens.weight", {h.vocab_size, d}, false};
        const Group attn_norm{"input_layernorm.weight", {d}, true}, ffn_norm{"post_attention_layernorm.weight", {d}, true};
        const Group wq{"self_attn.q_proj.weight", {q, d}, true, h.n_heads}, wk{"self_attn.k_proj.weight", {kv, d}, true, h.n_kv_heads};
        const Group wv{"self_attn.v_proj.weight", {kv, d}, true}, wo{"self_attn.o_proj.weight", {d, q}, true};
        const Group w1{"mlp.gate_proj.weight", {h.hidden_dim, d}, true}, w2{"mlp.down_proj.weight", {d, h.hidden_dim}, true};
        const Group w3{"mlp.up_proj.weight", {h.hidden_dim, d}, true};
        const Group final_norm{"model.norm.weight", {d}, false}, rope_table{"", {h.seq_len, hs / 2}, false};
        const Group classifier{"lm_head.weight", {h.vocab_size, d}, false};
        std::vector<Group> order = h.version == 0
            ? std::vector<Group>{embed, attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3, final_norm, rope_table, rope_table}
            : std::vector<Group>{attn_norm, ffn_norm, final_norm, embed, wq, wk, wv, wo, w1, w2, w3};
        if (!h.shared_classifier) order.push_back(classifier);

        // 128 bits: a corrupt header's sizes (int32 products over every layer) cannot wrap around.
        unsigned __int128 offset = h.bytes;
        auto place = [&](const std::string& name, const Group& g) {
            unsigned __int128 n = sizeof(float);
            for (auto s : g.shape) n *= static_cast<std::uint64_t>(s);
            if (!name.empty()) entries_[name] = Entry{static_cast<std::size_t>(offset), g.shape, g.rotary_heads};
            offset += n;
        };
        for (const auto& g : order) {
            if (!g.per_layer) place(g.name, g);
            else
                for (std::int64_t i = 0; i < h.n_layers; ++i) place("model.layers." + std::to_string(i) + "." + g.name, g);
        }
        const bool fits = offset <= std::numeric_limits<std::uint64_t>::max();
        require(offset == file_->size(), path_.string(), ": the llama2.c v", h.version, " header (dim ", h.dim, ", hidden_dim ", h.hidden_dim,
                ", ", h.n_layers, " layers, ", h.n_heads, " heads, ", h.n_kv_heads, " kv heads, vocab ", h.vocab_size,
                h.shared_classifier ? " shared" : " unshared", ", seq_len ", h.seq_len, ") implies ",
                fits ? std::to_string(static_cast<std::uint64_t>(offset)) : std::string("over 2^64"), " bytes but the file has ", file_->size());
    }

    struct State {
        std::mutex mutex;
        std::set<std::string> loaded;
    };
    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    Llama2cHeader header_;
    std::map<std::string, Entry> entries_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace inputrep
