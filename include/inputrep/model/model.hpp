#pragma once
// What every model family provides, and the pieces families share: which blocks to materialise,
// a static depth for compile-time slice checks, seeded initialisation and the activation cache.
#include <fnmatch.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <inputrep/core/device.hpp>
#include <inputrep/core/hash.hpp>
#include <inputrep/core/schedule.hpp>
#include <inputrep/core/text.hpp>

namespace inputrep {

// Blocks [begin, end) of a model.
struct BlockRange {
    int begin = 0, end = 0;
    constexpr bool contains(int i) const { return begin <= i && i < end; }
    constexpr bool operator==(const BlockRange&) const = default;
};

// What a caller will run, so a loader reads nothing else: the blocks, the token embedding (for
// targets and decoding), the final norm and unembedding (for logits).
struct Needs {
    BlockRange blocks;
    bool embedding = true;
    bool head = false;
};

inline constexpr int dynamic_depth = -1;

// How each block of a slice runs: the seed's ablations. attention_residual = false drops the "+ x"
// around attention; norms = false drops the block's normalisations; mlp = false drops the MLP
// sub-layer (with all three off, a block is its attention sub-layer alone).
struct BlockVariant {
    bool attention_residual = true;
    bool norms = true;
    bool mlp = true;
    constexpr bool operator==(const BlockVariant&) const = default;
};

// Layers<GPT2, 12>: a family whose depth is known at compile time, so `Blocks<0, 13>` on it is a
// compile error rather than a run-time one. Loading checks the file agrees.
template <class Family, int N>
struct Layers : Family {
    static_assert(N > 0, "Layers<Family, N>: a model needs at least one block");
    static constexpr int static_depth = N;
    using base = Family;
    Layers() = default;
    Layers(Family f) : Family(std::move(f)) {
        require(Family::depth() == N, Family::family, " model has ", Family::depth(),
                " blocks, but its type says Layers<", Family::family, ", ", N, ">");
    }
};

template <class M>
constexpr int static_depth_of() {
    if constexpr (requires { M::static_depth; })
        return M::static_depth;
    else
        return dynamic_depth;
}

// Named activations of one forward pass, in the order they were produced. Names follow
// TransformerLens: hook_embed, hook_pos_embed, blocks.N.hook_resid_pre, blocks.N.hook_resid_post, ...
// and inside attention blocks.N.attn.hook_q, hook_k, hook_v ([B, T, heads, d_head], q and k after
// rotary, as a KV cache holds them; k and v have the key/value heads), hook_pattern ([B, heads,
// query, key]) and hook_z ([B, T, heads, d_head], before the output projection). A cache records
// the names it wants: by default every point but those inside attention, which it records only
// when asked (they are per head and take the unfused path).
class ActivationCache {
public:
    using Filter = std::function<bool(std::string_view)>;
    ActivationCache() = default;
    explicit ActivationCache(Filter wants) : wants_(std::move(wants)) {}

    bool wants(std::string_view name) const {
        return wants_ ? wants_(name) : name.find(".attn.") == std::string_view::npos;
    }
    void add(std::string name, at::Tensor value) {
        if (wants(name)) entries_.emplace_back(std::move(name), std::move(value));
    }
    const at::Tensor& operator[](std::string_view name) const {
        for (auto& [n, t] : entries_)
            if (n == name) return t;
        fail("no hook point \"", name, "\" in the cache");
    }
    const std::vector<std::pair<std::string, at::Tensor>>& entries() const { return entries_; }

private:
    Filter wants_;
    std::vector<std::pair<std::string, at::Tensor>> entries_;
};

// A cache filter from shell-style patterns, comma-separated: "blocks.*.attn.hook_k,blocks.3.hook_resid_post".
inline ActivationCache::Filter hook_patterns(std::string_view patterns) {
    std::vector<std::string> globs;
    for (auto p : text::split(patterns, ',')) {
        require(!p.empty(), "hook patterns \"", patterns,
                "\": an empty pattern (expected NAME or glob, comma-separated)");
        globs.emplace_back(p);
    }
    return [globs](std::string_view name) {
        const std::string n(name);
        return std::ranges::any_of(globs,
                                   [&](const std::string& g) { return ::fnmatch(g.c_str(), n.c_str(), 0) == 0; });
    };
}

// The contract between model families and the experiment machinery. Context carries what every
// block call of one sequence length shares (masks, rotary tables), built once per run.
template <class M>
concept LanguageModel = requires(const M& m, const at::Tensor& t, int i, const typename M::Context& ctx) {
    typename M::Config;
    { M::family } -> std::convertible_to<std::string_view>;
    { m.depth() } -> std::convertible_to<int>;
    { m.context_length() } -> std::convertible_to<std::int64_t>;
    { m.context(std::int64_t{}, true, BlockVariant{}) } -> std::same_as<typename M::Context>;
    { m.embed(t) } -> std::same_as<at::Tensor>;                         // ids [B, T] -> block-0 input [B, T, d]
    { m.position_offset(std::int64_t{}) } -> std::same_as<at::Tensor>;  // what embed adds beyond W_E
    { m.token_embedding() } -> std::convertible_to<at::Tensor>;         // W_E [V, d]
    { m.block(i, t, ctx) } -> std::same_as<at::Tensor>;
    { m.unembed(t) } -> std::same_as<at::Tensor>;  // final norm + head -> logits
    { m.placement() } -> std::same_as<Placement>;
    { M::defaults() } -> std::same_as<InversionDefaults>;
};

// The family a model type belongs to: GPT2 for both GPT2 and Layers<GPT2, 12>.
template <class M>
struct family_of {
    using type = M;
};
template <class F, int N>
struct family_of<Layers<F, N>> {
    using type = F;
};
template <class M>
using family_of_t = typename family_of<M>::type;

// A family that can run a block recording a Tape, then return the gradient with respect to the
// block's input from it — the chain rule written out, no autograd graph, no weight gradients.
template <class M>
concept InputGradientModel = requires(const M& m, const at::Tensor& t, const typename M::Context& ctx,
                                      typename M::Tape& tape) {
    { m.block(0, t, ctx, tape) } -> std::same_as<at::Tensor>;
    { m.block_input_grad(0, t, ctx, tape) } -> std::same_as<at::Tensor>;
};

template <class M>
struct tape_of {
    using type = std::monostate;
};
template <InputGradientModel M>
struct tape_of<M> {
    using type = typename M::Tape;
};
template <class M>
using tape_of_t = typename tape_of<M>::type;

namespace init {

// Seeds are per tensor name, so block 7 gets the same weights whether blocks 0-6 are built or not.
inline std::uint64_t tensor_seed(std::uint64_t seed, std::string_view name) {
    return fnv1a(name, fnv1a_short_basis ^ (seed * 0x9E3779B97F4A7C15ull));
}

// N(0, std) drawn in f32 on the CPU, then placed: the same seed gives the same model on every device.
inline at::Tensor normal(at::IntArrayRef shape, double std, std::uint64_t seed, std::string_view name,
                         const Placement& p) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(tensor_seed(seed, name));
    auto t = at::empty(shape, at::kFloat);
    t.normal_(0.0, std, gen);
    return t.to(p.device, p.resolved().dtype);
}

// U(-bound, bound), PyTorch's default for Linear/Conv weights and biases (bound = 1/sqrt(fan_in)).
inline at::Tensor uniform(at::IntArrayRef shape, double bound, std::uint64_t seed, std::string_view name,
                          const Placement& p) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(tensor_seed(seed, name));
    auto t = at::empty(shape, at::kFloat);
    t.uniform_(-bound, bound, gen);
    return t.to(p.device, p.resolved().dtype);
}

inline at::Tensor constant(at::IntArrayRef shape, double value, const Placement& p) {
    return at::full(shape, value, p.options());
}

}  // namespace init

}  // namespace inputrep
