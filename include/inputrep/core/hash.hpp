#pragma once
// 64-bit FNV-1a: the one hash behind row keys, run identities and the held-out split. Not
// cryptographic: it tells apart files and configs that differ by accident, not by design.
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace inputrep {

inline constexpr std::uint64_t fnv1a_basis = 14695981039346656037ull;

// Streaming: fnv1a(b, fnv1a(a)) == fnv1a(a + b).
inline std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = fnv1a_basis) {
    for (const unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
}

// As 16 hex digits, the form files and results lines store.
inline std::string fnv1a_hex(std::string_view bytes) { return fmt::format("{:016x}", fnv1a(bytes)); }

}  // namespace inputrep
