#pragma once
// 64-bit FNV-1a: the one hash behind row keys, run identities, the held-out split and the seeds of
// untrained tensors. Not cryptographic: it tells apart files and configs that differ by accident,
// not by design.
#include <cstdint>
#include <string>
#include <string_view>

namespace inputrep {

inline constexpr std::uint64_t fnv1a_basis = 14695981039346656037ull;
// FNV's basis one digit short: a slip kept on purpose, since the held-out split of every committed
// model and the weights of every untrained model are drawn from hashes that start from it.
inline constexpr std::uint64_t fnv1a_short_basis = 1469598103934665603ull;

// Streaming: fnv1a(b, fnv1a(a)) == fnv1a(a + b).
inline std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = fnv1a_basis) {
    for (const unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
}

// As 16 hex digits, the form files and results lines store.
inline std::string hex16(std::uint64_t h) {
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) out[i] = "0123456789abcdef"[h & 15];
    return out;
}

inline std::string fnv1a_hex(std::string_view bytes) { return hex16(fnv1a(bytes)); }

}  // namespace inputrep
