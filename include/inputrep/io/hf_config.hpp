#pragma once
// Hugging Face config.json: read, query with defaults, and override with key=value pairs as the
// CLI's --untrained FAMILY:key=value,... names them.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/core/error.hpp>
#include <inputrep/core/text.hpp>

namespace inputrep {

using Json = nlohmann::json;

inline Json read_json(const std::filesystem::path& file) {
    std::ifstream in(file);
    require(in.good(), file.string(), ": cannot open");
    try {
        return Json::parse(in);
    } catch (const Json::exception& e) {
        fail(file.string(), ": not valid JSON (", e.what(), ")");
    }
}

// The config.json of a model folder (or of the folder holding a checkpoint file).
inline Json read_config(const std::filesystem::path& model) {
    require(std::filesystem::exists(model), model.string(), ": no such model folder or file");
    auto folder = std::filesystem::is_directory(model) ? model : model.parent_path();
    auto file = folder / "config.json";
    require(std::filesystem::exists(file), folder.string(), ": no config.json (a Hugging Face model folder needs one)");
    auto json = read_json(file);
    require(json.is_object(), file.string(), ": not a JSON object");
    return json;
}

// config[key] if present and not null, else `fallback`; a value of the wrong type is an error.
// An integer key takes a JSON integer, or a number with an integral value, that fits T: JSON's
// numbers are doubles to many writers (4096.0), but 1e87 or 2.5 must not be converted (the
// conversion of an out-of-range double is undefined behaviour, found by fuzz/config_llama).
template <class T>
T config_value(const Json& config, std::string_view key, const T& fallback) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return fallback;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        using limits = std::numeric_limits<T>;
        bool fits = false;
        if (it->is_number_unsigned())
            fits = std::in_range<T>(it->get<std::uint64_t>());
        else if (it->is_number_integer())
            fits = std::in_range<T>(it->get<std::int64_t>());
        else if (it->is_number_float()) {
            const double v = it->get<double>();
            // max + 1 is a power of two, exact as a double even where max itself is not (2^63 − 1).
            fits = std::trunc(v) == v && v >= static_cast<double>(limits::min()) &&
                   v < static_cast<double>(limits::max()) + 1.0;
            if (fits) return static_cast<T>(v);
        }
        require(fits || !it->is_number(), "config key \"", key, "\" is ", it->dump(), ", not an integer in [",
                limits::min(), ", ", limits::max(), "]");
    }
    try {
        return it->get<T>();
    } catch (const Json::exception&) {
        fail("config key \"", key, "\" has the wrong type (", it->dump(), ")");
    }
}

template <class T>
T config_required(const Json& config, std::string_view key) {
    auto it = config.find(key);
    require(it != config.end() && !it->is_null(), "config.json lacks the required key \"", key, "\"");
    return config_value<T>(config, key, T{});
}

// "n_layer=1,n_embd=64" as key, value pairs; values are JSON where they parse as JSON, strings otherwise.
inline std::vector<std::pair<std::string, Json>> parse_overrides(std::string_view overrides) {
    std::vector<std::pair<std::string, Json>> out;
    for (auto item : overrides.empty() ? std::vector<std::string_view>{} : text::split(overrides, ',')) {
        const auto [name, after] = text::split_once(item, '=');
        require(after && !name.empty(), "config override \"", item, "\" is not key=value");
        std::string key(name), value(*after);
        auto parsed = Json::parse(value, nullptr, false);
        out.emplace_back(std::move(key), parsed.is_discarded() ? Json(value) : parsed);
    }
    return out;
}

// The overrides onto a family's full config (its to_json): a key it does not hold is no key of the
// family, and is refused with the keys it has, never ignored (n_embd=0 on the mixer, whose width
// is hidden_size, would train the default width).
inline void apply_overrides(Json& config, std::string_view overrides) {
    for (auto& [key, value] : parse_overrides(overrides)) {
        if (!config.contains(key)) {
            std::string known;
            for (const auto& [k, v] : config.items())
                if (k != "architectures" && k != "model_type") known += (known.empty() ? "" : ", ") + k;
            fail("unknown config key \"", key, "\" for ",
                 config_value<std::string>(config, "model_type", "this family"), " (its keys: ", known, ")");
        }
        config[key] = std::move(value);
    }
}

}  // namespace inputrep
