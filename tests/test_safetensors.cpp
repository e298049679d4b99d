// The safetensors header parser on valid and broken files (no libtorch: also built under ASan+UBSan).
#include <boost/test/unit_test.hpp>

#include <array>
#include <cstring>
#include <filesystem>
#include <span>
#include <unistd.h>

#include <inputrep/io/llama2c_format.hpp>

#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;
using testing::f32_tensor;
using testing::file_bytes;
using testing::layout;
using testing::says;
using testing::valid_file;

namespace {

safetensors::Header parse(const std::string& bytes) {
    return safetensors::parse_header(std::as_bytes(std::span(bytes.data(), bytes.size())), bytes.size(),
                                     "test.safetensors");
}

// A llama2.c v0 header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len.
std::string llama2c_header(std::array<std::int32_t, 7> fields) {
    std::string bytes(sizeof fields, '\0');
    std::memcpy(bytes.data(), fields.data(), sizeof fields);
    return bytes;
}

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
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(entries, {}), tensors)), Error,
                          says("gap before it"));
    entries = layout(tensors);
    entries[0].end += 8;  // claims more bytes than its shape needs
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(entries, {}), tensors)), Error, says("need 16"));
    testing::RawTensor big{"big", "F32", {100}, std::vector<unsigned char>(16)};
    auto lying = layout({big});
    lying[0].end = 400;
    BOOST_CHECK_EXCEPTION(parse(file_bytes(safetensors::make_header(lying, {}), {big})), Error,
                          says("out-of-range offsets"));
}

BOOST_AUTO_TEST_CASE(unknown_dtype) {
    testing::RawTensor t{"a", "F7", {2}, std::vector<unsigned char>(8)};
    BOOST_CHECK_EXCEPTION(parse(valid_file({t})), Error, says("unknown dtype \"F7\""));
}

BOOST_AUTO_TEST_CASE(malformed_headers) {
    BOOST_CHECK_EXCEPTION(parse(file_bytes("{\"a\": [1,", {})), Error, says("not valid JSON"));
    BOOST_CHECK_EXCEPTION(parse(file_bytes("[1, 2]  ", {})), Error, says("not a JSON object"));
    auto t = f32_tensor("a", 2);
    std::string dup =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    BOOST_CHECK_EXCEPTION(parse(file_bytes(dup, {t})), Error, says("appears twice"));
    std::string overflow = R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
    BOOST_CHECK_EXCEPTION(parse(file_bytes(overflow, {t})), Error, says("overflows"));
}

// An index is a small text file that travels alone; it must not make the loader read outside its
// folder (issue 10: it opened /etc/passwd and ../../x).
BOOST_AUTO_TEST_CASE(shard_index_names_only_files_in_its_folder) {
    const auto dir = testing::temp_dir("shard-index");
    const auto index = dir / "model.safetensors.index.json";
    testing::write_file(dir / "model-00001-of-00001.safetensors", valid_file({f32_tensor("a", 3)}));
    testing::write_file(index, R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00001.safetensors"}})");
    const auto shards = safetensors::read_index(index);
    BOOST_TEST(shards.size() == 1u);
    BOOST_TEST(shards.at("a") == dir / "model-00001-of-00001.safetensors");
    std::filesystem::create_directories(dir / "sub");
    testing::write_file(dir / "sub" / "x.safetensors", valid_file({f32_tensor("a", 3)}));
    for (const std::string& shard :
         std::vector<std::string>{"/etc/passwd", "../../x", "..", ".", "", "sub/x.safetensors", "sub\\x.safetensors",
                                  std::string("a\0b", 3)}) {
        BOOST_TEST_CONTEXT("shard \"" << shard << "\"") {
            testing::write_file(index, nlohmann::json{{"weight_map", {{"a", shard}}}}.dump());
            BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error,
                                  says("is not a plain file name in the index's folder"));
        }
    }
    testing::write_file(index, R"({"weight_map": {"a": "absent.safetensors"}})");
    BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error,
                          says("shard absent.safetensors (holding \"a\") is missing"));
    // A name longer than the file system allows (fuzz/shard_index: std::filesystem threw, not Error).
    testing::write_file(index, nlohmann::json{{"weight_map", {{"a", std::string(300, 'c') + ".safetensors"}}}}.dump());
    BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error, says(".safetensors (holding \"a\") is missing"));
    testing::write_file(index, R"({"weight_map": {"a": 7}})");
    BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error, says("is not a file name"));
    testing::write_file(index, R"({"weight_map": )");
    BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error, says("not valid JSON"));
    testing::write_file(index, R"([1])");
    BOOST_CHECK_EXCEPTION(safetensors::read_index(index), Error, says("no weight_map"));
    std::filesystem::remove_all(dir);
}

// A header claiming 2^31 - 1 layers is checked against the file's size before any tensor is
// named: it used to list every layer's tensors first (billions of names: minutes and gigabytes).
BOOST_AUTO_TEST_CASE(llama2c_header_sizes_are_checked_before_the_layout) {
    const std::string big =
        llama2c_header({8, 16, std::numeric_limits<std::int32_t>::max(), 2, 2, 300, 16}) + std::string(64, '\0');
    const auto bytes = std::as_bytes(std::span(big.data(), big.size()));
    const auto h = llama2c::read_header(bytes, "big.bin");
    BOOST_TEST(h.n_layers == std::numeric_limits<std::int32_t>::max());
    BOOST_CHECK_EXCEPTION(llama2c::lay_out(h, big.size(), "big.bin"), Error, says("bytes but the file has 92"));

    // dim 2, hidden 2, 1 layer, 1 head, 1 kv head, vocab 3, seq_len 1: every tensor, shared classifier.
    const auto small = llama2c_header({2, 2, 1, 1, 1, 3, 1});
    const std::size_t floats = 3 * 2 + 2 + 4 * 4 + 2 + 3 * 4 + 2 + 2 * 1;
    const auto places =
        llama2c::lay_out(llama2c::read_header(std::as_bytes(std::span(small.data(), small.size())), "small.bin"),
                         small.size() + 4 * floats, "small.bin");
    BOOST_TEST(places.size() == 11u);
    BOOST_TEST(places.at("model.embed_tokens.weight").offset == 28u);
    BOOST_TEST(places.at("model.layers.0.input_layernorm.weight").offset == 28u + 4 * 6);
    BOOST_CHECK_EXCEPTION(llama2c::read_header(std::as_bytes(std::span(small.data(), 20)), "short.bin"), Error,
                          says("too few for a llama2.c header"));
}

BOOST_AUTO_TEST_SUITE_END()
