#pragma once
// Building models: from a Hugging Face folder or untrained from a config, materialising only what
// a slice needs.
//   auto m = load<GPT2>("gpt2-folder", {}, Blocks<0, 4>{});          // blocks 0-3 + embedding
//   auto u = untrained<GPT2>(GPT2Config{}, {}, /*seed*/ 0, Blocks<0, 1>{});
#include <filesystem>

#include <inputrep/io/gguf.hpp>
#include <inputrep/io/hf_config.hpp>
#include <inputrep/io/llama2c.hpp>
#include <inputrep/model/model.hpp>
#include <inputrep/model/slice.hpp>

namespace inputrep {

// The config.json a model path amounts to: a Hugging Face folder's, a llama2.c checkpoint's header,
// or a GGUF file's metadata.
inline Json model_config(const std::filesystem::path& path) {
    if (path.extension() == ".bin" && std::filesystem::is_regular_file(path))
        return Llama2cCheckpoint::open(path).config();
    if (path.extension() == ".gguf" && std::filesystem::is_regular_file(path)) return GgufFile::open(path).config();
    return read_config(path);
}

namespace detail {
template <class M, class Build>
M build(Build&& build) {
    if constexpr (static_depth_of<M>() == dynamic_depth)
        return build();
    else
        return M(build());
}
template <class M, Slice S>
Needs needs_of(const S& slice) {
    static_assert(
        static_depth_of<M>() == dynamic_depth || static_end_of<S>() == dynamic_depth ||
            static_end_of<S>() <= static_depth_of<M>(),
        "the slice ends past the model's last block: Blocks<B, E> needs E <= the depth N of Layers<Family, N>");
    return {slice.range(), true, false};
}
}  // namespace detail

// The family's config with "key=value,..." overrides (Hugging Face config.json keys).
template <class M>
typename family_of_t<M>::Config config_with(std::string_view overrides) {
    using Config = typename family_of_t<M>::Config;
    Json json = Config{}.to_json();
    apply_overrides(json, overrides);
    return Config::from_json(json);
}

template <class M>
M load(const std::filesystem::path& folder, const Placement& placement, const Needs& needs) {
    return detail::build<M>([&] { return family_of_t<M>::load(folder, placement, needs); });
}

template <class M, Slice S>
M load(const std::filesystem::path& folder, const Placement& placement, const S& slice) {
    return load<M>(folder, placement, detail::needs_of<M>(slice));
}

// Every block, the embedding and the head.
template <class M>
M load(const std::filesystem::path& folder, const Placement& placement = {}) {
    auto depth = family_of_t<M>::Config::from_json(model_config(folder)).layers();
    return load<M>(folder, placement, Needs{{0, depth}, true, true});
}

template <class M>
M untrained(const typename family_of_t<M>::Config& config, const Placement& placement, std::uint64_t seed,
            const Needs& needs) {
    return detail::build<M>([&] { return family_of_t<M>::untrained(config, placement, seed, needs); });
}

template <class M, Slice S>
M untrained(const typename family_of_t<M>::Config& config, const Placement& placement, std::uint64_t seed,
            const S& slice) {
    return untrained<M>(config, placement, seed, detail::needs_of<M>(slice));
}

}  // namespace inputrep
