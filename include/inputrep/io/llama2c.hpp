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
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <inputrep/core/device.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/mapped_file.hpp>
#include <inputrep/io/llama2c_format.hpp>
#include <inputrep/io/safetensors.hpp>

namespace inputrep {

class Llama2cCheckpoint {
public:
    static Llama2cCheckpoint open(const std::filesystem::path& path) {
        Llama2cCheckpoint c;
        c.path_ = path;
        c.file_ = MappedFile::open(path);
        c.header_ = llama2c::read_header(c.file_->bytes(), path.string());
        c.entries_ = llama2c::lay_out(c.header_, c.file_->size(), path.string());
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
        const llama2c::Place& e = it->second;
        auto keep = file_;
        at::Tensor t = at::from_blob(
            file_->bytes().data() + e.offset, e.shape, [keep](void*) {}, at::TensorOptions().dtype(at::kFloat));
        if (e.rotary_heads > 0) t = interleaved_to_rotate_half(t, e.rotary_heads);
        loaded_.add(name);
        const auto target = placement.resolved();
        return t.to(target.device, target.dtype);
    }

    at::Tensor load(const std::string& name, const Placement& placement, at::IntArrayRef expected) const {
        return with_shape(load(name, placement), expected, path_.string(), name);
    }

    std::set<std::string> loaded() const { return loaded_.names(); }

    // Meta rotates adjacent pairs (2i, 2i+1) of a head, HF pairs i with i + hd/2: listing each
    // head's even rows, then its odd rows, turns one into the other (convert_llama_weights_to_hf).
    // GGUF files hold q and k in Meta's order too.
    static at::Tensor interleaved_to_rotate_half(const at::Tensor& w, std::int64_t heads) {
        const auto rows = w.size(0), cols = w.size(1);
        return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
    }

private:
    std::filesystem::path path_;
    std::shared_ptr<MappedFile> file_;
    Llama2cHeader header_;
    std::map<std::string, llama2c::Place> entries_;
    LoadedNames loaded_;
};

}  // namespace inputrep
