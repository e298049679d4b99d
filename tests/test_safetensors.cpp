// The safetensors header parser on valid and broken files (no libtorch: also built under ASan+UBSan).
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <span>
#include <unistd.h>

#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::says;
using testing::f32_tensor;
using testing::file_bytes;
using testing::layout;
using testing::valid_file;

namespace {

safetensors::Header parse(const std::string& bytes) {
    return safetensors::parse_header(std::as_bytes(std::span(bytes.data(), bytes.size())), bytes.size(), "test.safetensors");
}

// The exception's message contains `part`.

}  // namespace

BOOST_AUTO_TEST_SUITE(safetensors_format)

BOOST_AUTO_TEST_CASE(valid_file_parses_with_offsets_relative_to_the_data_buffer) {
    auto bytes = valid_file({f32_tensor("a", 3), f32_tensor("b", 5)});
    auto h = parse(bytes);
    BOOST_TEST(h.tensors.size() == 2u);
    BOOST_TEST(h.tensors.at("b").begin == 12u);
    BOOST_TEST(h.tensors.at("b").end == 32u);
    BOOST_TEST(h.metadata.at("format") == "pt");
    BOOST_TEST(h.data_start % 8 == 0u);  // the writer pads the header so tensors stay aligned
    float v;
    std::memcpy(&v, bytes.data() + h.data_start + h.tensors.at("b").begin + 4 * 4, 4);
    BOOST_TEST(v == 4.0f);
}

BOOST_AUTO_TEST_CASE(scalars_and_empty_tensors_are_legal) {
    testing::RawTensor scalar{"s", "F32", {}, std::vector<unsigned char>(4)};
    testing::RawTensor empty{"e", "F32", {0, 3}, {}};
    auto h = parse(valid_file({scalar, empty}));
    BOOST_TEST(h.tensors.at("s").numel() == 1);
    BOOST_TEST(h.tensors.at("e").numel() == 0);
}

BOOST_AUTO_TEST_CASE(truncated_file) {
    auto bytes = valid_file({f32_tensor("a", 3), f32_tensor("b", 5)});
    BOOST_CHECK_EXCEPTION(parse(bytes.substr(0, bytes.size() - 4)), Error, says("truncated"));
    BOOST_CHECK_EXCEPTION(parse(bytes.substr(0, 5)), Error, says("truncated safetensors file"));
}

BOOST_AUTO_TEST_CASE(header_length_larger_than_the_file) {
    auto bytes = valid_file({f32_tensor("a", 3)});
    std::uint64_t n = bytes.size() + 100;
    for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);
    BOOST_CHECK_EXCEPTION(parse(bytes), Error, says("is larger than the file"));
    n = safetensors::max_header_bytes + 1;
    for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);
    BOOST_CHECK_EXCEPTION(parse(bytes), Error, says("exceeds the limit"));
}

BOOST_AUTO_TEST_CASE(overlapping_offsets) {
    std::vector tensors{f32_tensor("a", 4), f32_tensor("b", 4)};
    auto entries = layout(tensors);
    entries[1].begin -= 4, entries[1].end -= 4;  // b starts inside a
    auto bytes = file_bytes(safetensors::make_header(entries, {}), tensors);
    BOOST_CHECK_EXCEPTION(parse(bytes), Error, says("overlaps"));
}

BOOST_AUTO_TEST_CASE(out_of_range_offsets) {
    std::vector tensors{f32_tensor("a", 4)};
    auto entries = layout(tensors);
    entries[0].begin += 16, entries[0].end += 16;
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(entries, {}), tensors)), Error, says("gap before it"));
    entries = layout(tensors);
    entries[0].end += 8;  // claims more bytes than its shape needs
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(entries, {}), tensors)), Error, says("need 16"));
    testing::RawTensor big{"big", "F32", {100}, std::vector<unsigned char>(16)};
    auto lying = layout({big});
    lying[0].end = 400;
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(lying, {}), {big})), Error, says("out-of-range offsets"));
}

BOOST_AUTO_TEST_CASE(unknown_dtype) {
    testing::RawTensor t{"a", "F7", {2}, std::vector<unsigned char>(8)};
    BOOST_CHECK_EXCEPTION(parse(valid_file({t})), Error, says("unknown dtype \"F7\""));
}

BOOST_AUTO_TEST_CASE(malformed_headers) {
    BOOST_CHECK_EXCEPTION(parse(file_bytes("{\"a\": [1,", {})), Error, says("not valid JSON"));
    BOOST_CHECK_EXCEPTION(parse(file_bytes("[1, 2]  ", {})), Error, says("not a JSON object"));
    auto t = f32_tensor("a", 2);
    std::string dup = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    BOOST_CHECK_EXCEPTION(parse(file_bytes(dup, {t})), Error, says("appears twice"));
    std::string overflow = R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
    BOOST_CHECK_EXCEPTION(parse(file_bytes(overflow, {t})), Error, says("overflows"));
}

BOOST_AUTO_TEST_SUITE_END()
