// The fuzz targets that need libtorch: config.json (every family), corpora and target files.
// config.json: JSON -> the family's Config, whose checks are
// the only guard between a downloaded file and the sizes the model allocates. These headers pull
// in ATen, so this one file links libtorch (uninstrumented; only this file's code is checked).
// First, before anything includes ATen/core/List.h: libtorch 1.13's List.h moves a
// std::vector<IValue> while IValue is still incomplete, which clang in C++20 mode rejects where
// GCC does not (libstdc++ 12's vector is constexpr, so clang instantiates it eagerly;
// pytorch/pytorch#97689). Included from ivalue.h, List.h sees IValue complete.
#include <ATen/core/ivalue.h>

#include <string_view>

#include <inputrep/io/safetensors.hpp>
#include <inputrep/model/families.hpp>
#include <inputrep/train/corpus.hpp>

#include "scratch.hpp"
#include "targets.hpp"

namespace inputrep::fuzz {

// Every family of the list reads the same input: a family added to the list is fuzzed with the rest.
void config(const std::uint8_t* data, std::size_t size) {
    const auto json = Json::parse(text(data, size), nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) return;  // read_config rejects these before a family sees them
    Families::each([&]<class F>() {
        try {
            (void)F::Config::from_json(json);
        } catch (const Error&) {}
    });
}

void corpus(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path name = size > 0 && (data[0] & 1) ? "fuzz.ids" : "fuzz.txt";
    try {
        const auto docs = train::documents_of(name, std::string(text(data, size)));
        // What training then relies on: text documents are UTF-8 text, .ids documents hold ids.
        for (const auto& d : docs) {
            if (d.text.empty() && d.ids.empty()) std::abort();
            if (d.ids.empty() && !train::detail::not_text(d.text).empty()) std::abort();
        }
    } catch (const Error&) {}
}

void target_file(const std::uint8_t* data, std::size_t size) {
    try {
        const auto file = folder("target_file") / "target.safetensors";
        put(file, text(data, size));
        const SafetensorsFile f(file);
        for (const auto& [name, entry] : f.header().tensors) {
            const auto t = load_captured(f, name, {});
            if (!at::isfinite(t).all().item<bool>() || !at::isFloatingType(t.scalar_type())) std::abort();
        }
    } catch (const Error&) {}
}

}  // namespace inputrep::fuzz
