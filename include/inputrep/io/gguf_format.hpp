#pragma once
// The GGUF container of llama.cpp (ggml's docs/gguf.md) without libtorch: the header, the typed
// metadata, where each tensor lies (checked against the file's size), and the block layouts of the
// tensor types inputrep dequantises. Kept apart so it can be fuzzed on its own.
//
//   file:    "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata count, the metadata,
//            the tensor infos, padding to `general.alignment` (u32, default 32), the data
//   string:  u64 length, then its bytes (no terminator)
//   metadata: key string, u32 value type, value; an array is u32 element type, u64 count, elements
//   tensor:  name string, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset into the data
//            (a multiple of the alignment)
// Everything is little-endian. dims[0] is the fastest-varying dimension, so a torch [rows, cols]
// weight has dims {cols, rows}, and quantisation blocks run along a row.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <inputrep/core/error.hpp>

namespace inputrep::gguf {

static_assert(std::endian::native == std::endian::little,
              "GGUF's numbers are little-endian and are read here as the host's own");

enum class ValueType : std::uint32_t { u8, i8, u16, i16, u32, i32, f32, boolean, string, array, u64, i64, f64 };

inline std::string_view name_of(ValueType t) {
    static constexpr std::string_view names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
    return names[static_cast<std::uint32_t>(t)];
}

// Bytes of one value of a fixed-size type; 0 for string and array.
inline std::uint64_t scalar_size(ValueType t) {
    static constexpr std::uint64_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sizes[static_cast<std::uint32_t>(t)];
}

// The ggml tensor types inputrep dequantises (ids from ggml.h's enum ggml_type).
enum class TensorType : std::uint32_t { f32 = 0, f16 = 1, q4_0 = 2, q8_0 = 8, q4_K = 12, q6_K = 14, bf16 = 30 };

struct TypeInfo {
    std::string_view name;
    std::uint64_t block;  // elements per block
    std::uint64_t bytes;  // bytes per block
};

inline TypeInfo info(TensorType t) {
    switch (t) {
        case TensorType::f32:
            return {"F32", 1, 4};
        case TensorType::f16:
            return {"F16", 1, 2};
        case TensorType::bf16:
            return {"BF16", 1, 2};
        case TensorType::q4_0:
            return {"Q4_0", 32, 18};
        case TensorType::q8_0:
            return {"Q8_0", 32, 34};
        case TensorType::q4_K:
            return {"Q4_K", 256, 144};
        case TensorType::q6_K:
            return {"Q6_K", 256, 210};
    }
    fail("unknown GGUF tensor type ", static_cast<std::uint32_t>(t));
}

// A type id as a tensor type inputrep reads, or an error that names what the file holds instead.
inline TensorType tensor_type(std::uint32_t id, std::string_view where) {
    switch (id) {
        case 0:
        case 1:
        case 2:
        case 8:
        case 12:
        case 14:
        case 30:
            return static_cast<TensorType>(id);
    }
    static const std::map<std::uint32_t, std::string_view> others{
        {3, "Q4_1"},   {6, "Q5_0"},     {7, "Q5_1"},    {9, "Q8_1"},     {10, "Q2_K"},  {11, "Q3_K"},   {13, "Q5_K"},
        {15, "Q8_K"},  {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},
        {22, "IQ2_S"}, {23, "IQ4_XS"},  {24, "I8"},     {25, "I16"},     {26, "I32"},   {27, "I64"},    {28, "F64"},
        {29, "IQ1_M"}, {34, "TQ1_0"},   {35, "TQ2_0"},  {39, "MXFP4"}};
    const auto it = others.find(id);
    fail(where, " has ", it != others.end() ? "ggml type " + std::string(it->second) : "unknown type id", " (", id,
         "); inputrep dequantises F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K");
}

// A metadata value as the file holds it: the scalar's bytes, or the array's elements, in the file.
struct Value {
    ValueType type = ValueType::u8;  // a scalar's type, or an array's element type
    bool array = false;
    std::uint64_t count = 1;  // elements
    std::span<const std::byte> bytes;
};

struct TensorInfo {
    std::string name;
    std::vector<std::uint64_t> dims;  // ggml order: the row first
    TensorType type = TensorType::f32;
    std::uint64_t offset = 0, bytes = 0;  // within the data section

    std::uint64_t numel() const {
        std::uint64_t n = 1;
        for (auto d : dims) n *= d;
        return n;
    }
    // torch's order: the row last.
    std::vector<std::int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

namespace detail {

template <class T>
T read(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// An element of an integer or bool type, if it fits int64.
inline std::optional<std::int64_t> integer_at(ValueType t, const std::byte* p) {
    switch (t) {
        case ValueType::u8:
        case ValueType::boolean:
            return read<std::uint8_t>(p);
        case ValueType::i8:
            return read<std::int8_t>(p);
        case ValueType::u16:
            return read<std::uint16_t>(p);
        case ValueType::i16:
            return read<std::int16_t>(p);
        case ValueType::u32:
            return read<std::uint32_t>(p);
        case ValueType::i32:
            return read<std::int32_t>(p);
        case ValueType::i64:
            return read<std::int64_t>(p);
        case ValueType::u64: {
            const auto v = read<std::uint64_t>(p);
            if (v > std::uint64_t(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
            return std::int64_t(v);
        }
        default:
            return std::nullopt;
    }
}

inline bool is_integer(ValueType t) {
    return t != ValueType::f32 && t != ValueType::f64 && t != ValueType::string && t != ValueType::array;
}

// a*b, failing instead of wrapping: crafted dims must not pass the size checks by overflow.
inline std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, std::string_view where) {
    if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b) fail(where, ": its size overflows 64 bits");
    return a * b;
}

// Reads the file front to back; every read is checked against what is left.
class Cursor {
public:
    Cursor(std::span<const std::byte> bytes, const std::string& where) : bytes_(bytes), where_(where) {}

    std::span<const std::byte> take(std::uint64_t n, std::string_view what) {
        require(n <= left(), where_, ": truncated: ", what, " at byte ", at_, " needs ", n, " bytes, the file has ",
                left(), " left");
        auto out = bytes_.subspan(at_, n);
        at_ += n;
        return out;
    }
    template <class T>
    T scalar(std::string_view what) {
        return read<T>(take(sizeof(T), what).data());
    }
    std::string_view string(std::string_view what) {
        const auto bytes = take(scalar<std::uint64_t>(what), what);
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }
    const std::string& where() const { return where_; }
    std::uint64_t at() const { return at_; }
    std::uint64_t left() const { return bytes_.size() - at_; }
    std::span<const std::byte> since(std::uint64_t begin) const { return bytes_.subspan(begin, at_ - begin); }

private:
    std::span<const std::byte> bytes_;
    const std::string& where_;
    std::uint64_t at_ = 0;
};

inline ValueType value_type(std::uint32_t id, std::string_view where) {
    require(id <= static_cast<std::uint32_t>(ValueType::f64), where, " has value type ", id,
            ", not one of GGUF's (0-12)");
    return static_cast<ValueType>(id);
}

inline Value read_value(Cursor& c, ValueType type, const std::string& what) {
    if (type == ValueType::string) {
        const auto s = c.string(what);
        return {type, false, 1, std::as_bytes(std::span(s.data(), s.size()))};
    }
    if (type != ValueType::array) return {type, false, 1, c.take(scalar_size(type), what)};
    const auto element = value_type(c.scalar<std::uint32_t>(what), c.where() + ": " + what + "'s elements");
    require(element != ValueType::array, c.where(), ": ", what, " is an array of arrays, which inputrep does not read");
    const auto count = c.scalar<std::uint64_t>(what);
    // The bound before the walk: a crafted count cannot make the loop below run past the file.
    const auto least = element == ValueType::string ? 8 : scalar_size(element);
    require(count <= c.left() / least, c.where(), ": ", what, " claims ", count, " elements of type ", name_of(element),
            ", more than the ", c.left(), " bytes left can hold (truncated or corrupt)");
    if (element != ValueType::string) return {element, true, count, c.take(count * least, what)};
    const auto begin = c.at();
    for (std::uint64_t i = 0; i < count; ++i) c.string(what);
    return {element, true, count, c.since(begin)};
}

}  // namespace detail

// The parsed header: metadata and tensor infos, and where the data section starts. Values are
// views of the file's bytes, valid while those are.
struct Header {
    std::string where;  // the file, for messages
    std::uint32_t version = 3;
    std::uint64_t alignment = 32, data_start = 0;
    std::map<std::string, Value, std::less<>> metadata;
    std::vector<TensorInfo> tensors;                        // in file order
    std::map<std::string, std::size_t, std::less<>> index;  // name -> position in tensors

    bool has(std::string_view key) const { return metadata.find(key) != metadata.end(); }

    std::optional<std::string> string(std::string_view key) const {
        const Value* v = scalar(key, "a string", ValueType::string);
        if (!v) return std::nullopt;
        return std::string(reinterpret_cast<const char*>(v->bytes.data()), v->bytes.size());
    }
    std::optional<std::int64_t> integer(std::string_view key) const {
        const Value* v = find(key);
        if (!v) return std::nullopt;
        require(!v->array && detail::is_integer(v->type) && v->type != ValueType::boolean, where, ": metadata \"", key,
                "\" is ", describe(*v), ", not an integer");
        const auto n = detail::integer_at(v->type, v->bytes.data());
        require(n.has_value(), where, ": metadata \"", key, "\" is larger than 2^63");
        return n;
    }
    std::optional<double> number(std::string_view key) const {
        const Value* v = find(key);
        if (!v) return std::nullopt;
        require(!v->array && v->type != ValueType::string && v->type != ValueType::boolean, where, ": metadata \"", key,
                "\" is ", describe(*v), ", not a number");
        return number_at(*v, 0);
    }
    std::optional<bool> boolean(std::string_view key) const {
        const Value* v = scalar(key, "a bool", ValueType::boolean);
        if (!v) return std::nullopt;
        return std::to_integer<int>(v->bytes[0]) != 0;
    }

    std::optional<std::vector<std::string>> strings(std::string_view key) const {
        const Value* v = array_of(key, "strings", ValueType::string);
        if (!v) return std::nullopt;
        std::vector<std::string> out;
        out.reserve(v->count);
        for (std::size_t at = 0; at < v->bytes.size();) {
            const auto n = detail::read<std::uint64_t>(v->bytes.data() + at);
            out.emplace_back(reinterpret_cast<const char*>(v->bytes.data() + at + 8), n);
            at += 8 + n;
        }
        return out;
    }
    std::optional<std::vector<double>> numbers(std::string_view key) const {
        const Value* v = find(key);
        if (!v) return std::nullopt;
        require(v->array && v->type != ValueType::string && v->type != ValueType::boolean, where, ": metadata \"", key,
                "\" is ", describe(*v), ", not an array of numbers");
        std::vector<double> out(v->count);
        for (std::uint64_t i = 0; i < v->count; ++i) out[i] = number_at(*v, i);
        return out;
    }
    std::optional<std::vector<std::int64_t>> integers(std::string_view key) const {
        const Value* v = find(key);
        if (!v) return std::nullopt;
        require(v->array && detail::is_integer(v->type), where, ": metadata \"", key, "\" is ", describe(*v),
                ", not an array of integers");
        std::vector<std::int64_t> out(v->count);
        for (std::uint64_t i = 0; i < v->count; ++i) {
            const auto n = detail::integer_at(v->type, v->bytes.data() + i * scalar_size(v->type));
            require(n.has_value(), where, ": metadata \"", key, "\" element ", i, " is larger than 2^63");
            out[i] = *n;
        }
        return out;
    }

    const TensorInfo* tensor(std::string_view name) const {
        const auto it = index.find(name);
        return it == index.end() ? nullptr : &tensors[it->second];
    }

private:
    const Value* find(std::string_view key) const {
        const auto it = metadata.find(key);
        return it == metadata.end() ? nullptr : &it->second;
    }
    const Value* scalar(std::string_view key, std::string_view what, ValueType type) const {
        const Value* v = find(key);
        require(!v || (!v->array && v->type == type), where, ": metadata \"", key, "\" is ", v ? describe(*v) : "",
                ", not ", what);
        return v;
    }
    const Value* array_of(std::string_view key, std::string_view what, ValueType type) const {
        const Value* v = find(key);
        require(!v || (v->array && v->type == type), where, ": metadata \"", key, "\" is ", v ? describe(*v) : "",
                ", not an array of ", what);
        return v;
    }
    static std::string describe(const Value& v) {
        return v.array ? "an array of " + std::to_string(v.count) + " " + std::string(name_of(v.type))
                       : "a " + std::string(name_of(v.type));
    }
    static double number_at(const Value& v, std::uint64_t i) {
        const std::byte* p = v.bytes.data() + i * scalar_size(v.type);
        if (v.type == ValueType::f32) return detail::read<float>(p);
        if (v.type == ValueType::f64) return detail::read<double>(p);
        if (v.type == ValueType::u64) return double(detail::read<std::uint64_t>(p));
        return double(*detail::integer_at(v.type, p));
    }
};

// `file` is the whole file; `where` names it in every message.
inline Header parse_header(std::span<const std::byte> file, const std::string& where) {
    detail::Cursor c(file, where);
    Header h;
    h.where = where;
    require(file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0, where,
            ": not a GGUF file (it does not start with \"GGUF\")");
    c.take(4, "the magic");
    h.version = c.scalar<std::uint32_t>("the version");
    require(h.version != 1, where, ": GGUF version 1 (32-bit counts) is not supported; convert it to version 3");
    require(h.version < 0x10000, where, ": GGUF version ", h.version,
            " reads as a big-endian file, which inputrep does not read");
    require(h.version == 2 || h.version == 3, where, ": GGUF version ", h.version,
            " is not supported (versions 2 and 3 are)");
    const auto tensor_count = c.scalar<std::uint64_t>("the tensor count");
    const auto kv_count = c.scalar<std::uint64_t>("the metadata count");
    // Each key-value takes at least 13 bytes (key length, value type, a one-byte value), each
    // tensor info at least 32 (name length, n_dims, one dim, type, offset).
    require(kv_count <= c.left() / 13, where, ": truncated or corrupt: the header claims ", kv_count,
            " metadata entries, more than the ", c.left(), " bytes left can hold");
    require(tensor_count <= (c.left() - 13 * kv_count) / 32, where, ": truncated or corrupt: the header claims ",
            tensor_count, " tensors, more than the ", c.left(), " bytes left can hold after the metadata");

    for (std::uint64_t i = 0; i < kv_count; ++i) {
        const std::string index = "metadata entry " + std::to_string(i);
        const std::string key(c.string(index + "'s key"));
        const std::string what = "metadata \"" + key + "\"";
        const auto type = detail::value_type(c.scalar<std::uint32_t>(what), where + ": " + what);
        Value v = detail::read_value(c, type, what);
        require(h.metadata.emplace(key, v).second, where, ": metadata \"", key, "\" appears twice");
    }
    if (h.has("general.alignment")) {
        const Value& a = h.metadata.find("general.alignment")->second;
        require(!a.array && a.type == ValueType::u32, where, ": general.alignment must be a u32");
        h.alignment = detail::read<std::uint32_t>(a.bytes.data());
        require(h.alignment > 0 && (h.alignment & (h.alignment - 1)) == 0, where, ": general.alignment ", h.alignment,
                " is not a power of two");
    }

    for (std::uint64_t i = 0; i < tensor_count; ++i) {
        TensorInfo t;
        t.name = c.string("the name of tensor " + std::to_string(i));
        const std::string what = "tensor \"" + t.name + "\"";
        const auto n_dims = c.scalar<std::uint32_t>(what);
        require(n_dims >= 1 && n_dims <= 4, where, ": ", what, " has ", n_dims, " dimensions; ggml's are 1 to 4");
        std::uint64_t numel = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            t.dims.push_back(c.scalar<std::uint64_t>(what));
            require(t.dims.back() <= std::uint64_t(std::numeric_limits<std::int64_t>::max()), where, ": ", what,
                    " has dimension ", t.dims.back(), ", past 2^63");
            numel = detail::checked_mul(numel, t.dims.back(), where + ": " + what);
        }
        t.type = tensor_type(c.scalar<std::uint32_t>(what), where + ": " + what);
        t.offset = c.scalar<std::uint64_t>(what);
        const auto type = info(t.type);
        require(t.dims[0] % type.block == 0, where, ": ", what, " has rows of ", t.dims[0],
                " elements, which do not split into ", type.name, " blocks of ", type.block);
        t.bytes = detail::checked_mul(numel / type.block, type.bytes, where + ": " + what);
        require(h.index.emplace(t.name, h.tensors.size()).second, where, ": tensor \"", t.name, "\" appears twice");
        h.tensors.push_back(std::move(t));
    }
    h.data_start = (c.at() + h.alignment - 1) / h.alignment * h.alignment;

    // Every tensor aligned, inside the file, and apart from every other.
    const std::uint64_t data = file.size() > h.data_start ? file.size() - h.data_start : 0;
    std::vector<const TensorInfo*> order;
    for (const auto& t : h.tensors) {
        require(t.offset % h.alignment == 0, where, ": tensor \"", t.name, "\" starts at offset ", t.offset,
                ", not a multiple of the alignment ", h.alignment);
        require(t.offset <= data && t.bytes <= data - t.offset, where, ": tensor \"", t.name, "\" (", t.bytes,
                " bytes at offset ", t.offset, ") reaches past the end of the file (", data,
                " bytes of data; truncated file or offset out of range)");
        order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    const TensorInfo* previous = nullptr;  // the last one holding bytes
    for (const TensorInfo* t : order) {
        if (t->bytes == 0) continue;
        if (previous && previous->offset + previous->bytes > t->offset)
            fail(where, ": tensors \"", previous->name, "\" and \"", t->name, "\" overlap");
        previous = t;
    }
    return h;
}

// IEEE half and bfloat16 to float, exactly.
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    if (exponent == 0) {  // zero or subnormal: mantissa · 2^-24
        const float f = std::ldexp(float(mantissa), -24);
        return sign ? -f : f;
    }
    const std::uint32_t bits =
        exponent == 31 ? sign | 0x7F800000u | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
    return std::bit_cast<float>(bits);
}
inline float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t(b) << 16); }

namespace detail {

inline float half_at(const std::uint8_t* p) {
    return half_to_float(read<std::uint16_t>(reinterpret_cast<const std::byte*>(p)));
}

// q8_0: f16 d, int8 q[32]; x = q·d.
inline void q8_0(const std::uint8_t* b, float* y) {
    const float d = half_at(b);
    for (int i = 0; i < 32; ++i) y[i] = float(static_cast<std::int8_t>(b[2 + i])) * d;
}

// q4_0: f16 d, 16 bytes of nibbles; the low nibbles are elements 0-15, the high ones 16-31; x = (q−8)·d.
inline void q4_0(const std::uint8_t* b, float* y) {
    const float d = half_at(b);
    for (int i = 0; i < 16; ++i) {
        y[i] = float((b[2 + i] & 0xF) - 8) * d;
        y[i + 16] = float((b[2 + i] >> 4) - 8) * d;
    }
}

// q4_K's 12 bytes hold 8 six-bit scales and 8 six-bit mins: sub-blocks 0-3 in the low six bits of
// bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 in the nibbles of bytes 8-11, their top two
// bits in the top two bits of bytes 0-7 (ggml's get_scale_min_k4).
inline std::pair<int, int> scale_min_k4(int j, const std::uint8_t* q) {
    if (j < 4) return {q[j] & 63, q[j + 4] & 63};
    return {(q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)};
}

// q4_K: 256 elements in 8 sub-blocks of 32: f16 d, f16 dmin, 12 bytes of scales and mins, 128 bytes
// of nibbles, each 32 of them holding two sub-blocks (low nibbles the first); x = d·sc·q − dmin·m.
inline void q4_K(const std::uint8_t* b, float* y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const std::uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
        const auto [sc0, m0] = scale_min_k4(j, scales);
        const auto [sc1, m1] = scale_min_k4(j + 1, scales);
        const float d0 = d * float(sc0), min0 = dmin * float(m0), d1 = d * float(sc1), min1 = dmin * float(m1);
        for (int l = 0; l < 32; ++l) {
            y[l] = d0 * float(q[l] & 0xF) - min0;
            y[l + 32] = d1 * float(q[l] >> 4) - min1;
        }
    }
}

// q6_K: 256 elements in 16 sub-blocks of 16: ql[128] the low four bits, qh[64] the high two,
// int8 scales[16], f16 d; x = d·scale·(q − 32). Each half of 128 elements takes 64 bytes of ql
// (elements l and l+64 share a byte, as do l+32 and l+96) and 32 of qh (one byte, four elements).
inline void q6_K(const std::uint8_t* b, float* y) {
    const std::uint8_t *ql = b, *qh = b + 128;
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
    const float d = half_at(b + 208);
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
        for (int l = 0; l < 32; ++l) {
            const int s = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * float(sc[s]) * float(q1);
            y[l + 32] = d * float(sc[s + 2]) * float(q2);
            y[l + 64] = d * float(sc[s + 4]) * float(q3);
            y[l + 96] = d * float(sc[s + 6]) * float(q4);
        }
    }
}

}  // namespace detail

// Whole blocks of `type` from `src` to f32 in `dst`: src holds n blocks, dst their n · block elements.
inline void dequantize(TensorType type, std::span<const std::byte> src, std::span<float> dst) {
    const auto t = info(type);
    require(src.size() % t.bytes == 0 && dst.size() == src.size() / t.bytes * t.block, "dequantize: ", src.size(),
            " bytes of ", t.name, " are not ", dst.size(), " elements");
    const auto* in = reinterpret_cast<const std::uint8_t*>(src.data());
    const std::uint64_t blocks = src.size() / t.bytes;
    auto each = [&](auto block) {
        for (std::uint64_t i = 0; i < blocks; ++i) block(in + i * t.bytes, dst.data() + i * t.block);
    };
    switch (type) {
        case TensorType::f32:
            return each([](const std::uint8_t* b, float* y) { std::memcpy(y, b, 4); });
        case TensorType::f16:
            return each([](const std::uint8_t* b, float* y) { *y = detail::half_at(b); });
        case TensorType::bf16:
            return each([](const std::uint8_t* b, float* y) {
                *y = bf16_to_float(detail::read<std::uint16_t>(reinterpret_cast<const std::byte*>(b)));
            });
        case TensorType::q8_0:
            return each(detail::q8_0);
        case TensorType::q4_0:
            return each(detail::q4_0);
        case TensorType::q4_K:
            return each(detail::q4_K);
        case TensorType::q6_K:
            return each(detail::q6_K);
    }
}

}  // namespace inputrep::gguf
