#pragma once
// The llama2.c checkpoint layout (see llama2c.hpp) without libtorch: the header, and where each
// tensor lies, checked against the file's size. Kept apart so it can be fuzzed on its own.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <inputrep/core/error.hpp>

namespace inputrep {

struct Llama2cHeader {
    int version = 0;  // 0: run.c's legacy layout, 1: export.py's "ak42" layout
    std::int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
    bool shared_classifier = true;
    std::size_t bytes = 0;  // of the header itself

    std::int64_t head_size() const { return dim / n_heads; }
};

namespace llama2c {

// One tensor of the file: f32, row-major, at `offset`.
struct Place {
    std::size_t offset = 0;
    std::vector<std::int64_t> shape;
    std::int64_t rotary_heads = 0;  // > 0: q or k, whose rows are permuted per head
};

inline Llama2cHeader read_header(std::span<const std::byte> bytes, const std::string& where) {
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
        h.vocab_size = std::abs(h.vocab_size);  // int32 read into int64: |INT32_MIN| fits
    }
    require(h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 && h.vocab_size > 0 &&
                h.seq_len > 0,
            where, ": not a llama2.c checkpoint (header dim ", h.dim, ", hidden_dim ", h.hidden_dim, ", n_layers ",
            h.n_layers, ", n_heads ", h.n_heads, ", n_kv_heads ", h.n_kv_heads, ", vocab_size ", h.vocab_size,
            ", seq_len ", h.seq_len, " must all be positive)");
    require(h.dim % h.n_heads == 0 && h.head_size() % 2 == 0 && h.n_heads % h.n_kv_heads == 0, where,
            ": header has dim ", h.dim, ", ", h.n_heads, " heads and ", h.n_kv_heads,
            " kv heads: dim must split into heads of even size and heads into kv groups");
    return h;
}

// Walk the file in storage order, naming each tensor under its Hugging Face Llama name; the total
// must be the file's size. The total is checked before any name is made, so a header claiming
// 2^31 layers fails at once instead of listing billions of tensors.
inline std::map<std::string, Place> lay_out(const Llama2cHeader& h, std::size_t file_size, const std::string& where) {
    const auto d = h.dim, hs = h.head_size(), q = h.n_heads * hs, kv = h.n_kv_heads * hs;
    struct Group {
        std::string name;  // per layer: the part after "model.layers.N."; empty: skipped
        std::vector<std::int64_t> shape;
        bool per_layer;
        std::int64_t rotary_heads = 0;
    };
    const Group embed{"model.embed_tokens.weight", {h.vocab_size, d}, false};
    const Group attn_norm{"input_layernorm.weight", {d}, true}, ffn_norm{"post_attention_layernorm.weight", {d}, true};
    const Group wq{"self_attn.q_proj.weight", {q, d}, true, h.n_heads},
        wk{"self_attn.k_proj.weight", {kv, d}, true, h.n_kv_heads};
    const Group wv{"self_attn.v_proj.weight", {kv, d}, true}, wo{"self_attn.o_proj.weight", {d, q}, true};
    const Group w1{"mlp.gate_proj.weight", {h.hidden_dim, d}, true},
        w2{"mlp.down_proj.weight", {d, h.hidden_dim}, true};
    const Group w3{"mlp.up_proj.weight", {h.hidden_dim, d}, true};
    const Group final_norm{"model.norm.weight", {d}, false}, rope_table{"", {h.seq_len, hs / 2}, false};
    const Group classifier{"lm_head.weight", {h.vocab_size, d}, false};
    std::vector<Group> order =
        h.version == 0 ? std::vector<Group>{embed, attn_norm, wq, wk,         wv,         wo,        ffn_norm,
                                            w1,    w2,        w3, final_norm, rope_table, rope_table}
                       : std::vector<Group>{attn_norm, ffn_norm, final_norm, embed, wq, wk, wv, wo, w1, w2, w3};
    if (!h.shared_classifier) order.push_back(classifier);

    // 128 bits: a corrupt header's sizes (int32 products over every layer) cannot wrap around.
    auto bytes_of = [](const Group& g) {
        unsigned __int128 n = sizeof(float);
        for (auto s : g.shape) n *= static_cast<std::uint64_t>(s);
        return n;
    };
    unsigned __int128 total = h.bytes;
    for (const auto& g : order) total += bytes_of(g) * static_cast<std::uint64_t>(g.per_layer ? h.n_layers : 1);
    const bool fits = total <= std::numeric_limits<std::uint64_t>::max();
    require(total == file_size, where, ": the llama2.c v", h.version, " header (dim ", h.dim, ", hidden_dim ",
            h.hidden_dim, ", ", h.n_layers, " layers, ", h.n_heads, " heads, ", h.n_kv_heads, " kv heads, vocab ",
            h.vocab_size, h.shared_classifier ? " shared" : " unshared", ", seq_len ", h.seq_len, ") implies ",
            fits ? std::to_string(static_cast<std::uint64_t>(total)) : std::string("over 2^64"),
            " bytes but the file has ", file_size);

    std::map<std::string, Place> places;
    std::size_t offset = h.bytes;
    auto place = [&](const std::string& name, const Group& g) {
        if (!name.empty()) places[name] = Place{offset, g.shape, g.rotary_heads};
        offset += static_cast<std::size_t>(bytes_of(g));
    };
    for (const auto& g : order) {
        if (!g.per_layer)
            place(g.name, g);
        else
            for (std::int64_t i = 0; i < h.n_layers; ++i) place("model.layers." + std::to_string(i) + "." + g.name, g);
    }
    return places;
}

}  // namespace llama2c
}  // namespace inputrep
