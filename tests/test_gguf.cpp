// GGUF files (llama.cpp's format) written by an independent writer (benchmarks/python/gguf_write.py:
// the container by hand, the blocks quantised in PyTorch) from stories260K, an untrained Llama wide
// enough for K-quants, the committed Brown Llama and the tiny GPT-2: logits against run.c's and
// against the dequantised weights read as a Hugging Face folder, the tokenizer from the metadata, what
// a slice reads, inversion of a capture through the program, and broken files.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <inputrep/inputrep.hpp>
#include <inputrep/io/gguf.hpp>
#include <inputrep/tokenizer/sentencepiece.hpp>

#include "cli_run.hpp"
#include "common.hpp"
#include "safetensors_files.hpp"

using namespace inputrep;

namespace gguf_tests {

namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;

// The suite's files, removed when the process ends (the forked runs of the program end with _exit).
const fs::path& scratch() {
    static const struct Scratch {
        fs::path dir = testing::temp_dir("gguf");
        ~Scratch() {
            std::error_code ignored;
            fs::remove_all(dir, ignored);
        }
    } scratch;
    return scratch.dir;
}

struct Written {
    fs::path gguf, dequantised;  // the file, and its weights as a Hugging Face folder
};

// The writer's output for `model` in `type`, written once per process; `extra` adds its options.
Written written(const fs::path& model, const std::string& type, const std::string& extra = "") {
    static std::map<std::string, Written> done;
    const auto name = model.filename().string() + "-" + type + (extra.empty() ? "" : "-tokenizer");
    if (auto it = done.find(name); it != done.end()) return it->second;
    static const bool torch = std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0;
    BOOST_REQUIRE_MESSAGE(
        torch, "Debian's python3-torch is missing: scripts/setup installs it (apt-get install python3-torch)");
    const Written w{scratch() / (name + ".gguf"), scratch() / (name + "-hf")};
    const auto log = scratch() / (name + ".log");
    const auto command = "/usr/bin/python3 '" +
                         (fs::path(INPUTREP_SOURCE_DIR) / "benchmarks/python/gguf_write.py").string() + "' --model '" +
                         model.string() + "' --type " + type + " --out '" + w.gguf.string() + "' --dequantised-out '" +
                         w.dequantised.string() + "' " + extra + " 2> '" + log.string() + "'";
    BOOST_REQUIRE_MESSAGE(std::system(command.c_str()) == 0, command << " failed: " << testing::slurp(log));
    return done.emplace(name, w).first->second;
}

fs::path stories_bin() { return testing::shared("models/stories260K/stories260K.bin"); }
fs::path gpt2_folder() { return testing::shared("models/gpt2-tiny-random"); }

// The tiny GPT-2 in F32 with GPT-2's BPE as its tokenizer metadata.
Written gpt2_f32() { return written(gpt2_folder(), "f32", "--bpe '" + testing::gpt2_vocab_dir().string() + "'"); }

// run.c's logits for a token sequence and its greedy continuation of BOS (reference/).
struct RunC {
    Ids tokens, greedy;
    at::Tensor logits;  // [T, V]
};
const RunC& run_c() {
    static const RunC ref = [] {
        auto json = read_json(testing::shared("reference/stories260K_logits.json"));
        RunC r{json.at("tokens").get<Ids>(), json.at("greedy_from_bos").get<Ids>(), {}};
        std::vector<at::Tensor> rows;
        for (const auto& row : json.at("logits")) rows.push_back(at::tensor(row.get<std::vector<float>>()));
        r.logits = at::stack(rows);
        return r;
    }();
    return ref;
}

// An untrained Llama 256 wide, as a Hugging Face folder: rows long enough for K-quants.
fs::path wide_llama() {
    const auto wide = scratch() / "wide-llama";
    if (!fs::exists(wide / "model.safetensors")) {
        const auto config = config_with<Llama>(
            "hidden_size=256,intermediate_size=512,num_hidden_layers=2,num_attention_heads=4,num_key_value_heads=2,"
            "vocab_size=300,max_position_embeddings=64");
        save_safetensors(untrained<Llama>(config, {}, 3, Needs{{0, 2}, true, true}), wide);
    }
    return wide;
}

template <class M>
at::Tensor logits(const M& model, const Ids& ids) {
    at::NoGradGuard no_grad;
    ActivationCache cache;
    return model.run_with_cache(at::tensor(ids, at::kLong).unsqueeze(0), cache)[0];
}

double largest_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The file's tensors are the dequantised folder's (to f32 rounding, were the compiler to fuse a
// multiply-add), and the model read from it gives that folder's logits to 1e-4. Returns the largest
// logit difference.
template <class M>
double check_against_dequantised(const Written& w, const Ids& ids) {
    const auto file = GgufFile::open(w.gguf);
    const auto folder = Checkpoint::open(w.dequantised);
    BOOST_TEST(file.names() == folder.names(), boost::test_tools::per_element());
    for (const auto& name : folder.names()) {
        const auto expected = folder.load(name, {});
        BOOST_TEST_INFO(w.gguf.filename().string() << ": " << name);
        BOOST_TEST(largest_difference(file.load(name, {}), expected) <= 1e-6 * expected.abs().max().item<double>());
    }
    const double d = largest_difference(logits(load<M>(w.gguf), ids), logits(load<M>(w.dequantised), ids));
    BOOST_TEST_INFO(w.gguf.filename().string());
    BOOST_TEST(d < 1e-4);
    return d;
}

std::string type_of(const fs::path& gguf, const std::string& tensor) {
    const auto file = GgufFile::open(gguf);
    return std::string(inputrep::gguf::info(file.header().tensor(tensor)->type).name);
}

// Hand-made GGUF bytes for the broken files: the header, then what each case appends.
struct Bytes {
    std::string s;
    Bytes(std::uint64_t tensors, std::uint64_t entries, std::uint32_t version = 3) {
        s = "GGUF";
        u32(version).u64(tensors).u64(entries);
    }
    Bytes& u32(std::uint32_t v) { return s.append(reinterpret_cast<const char*>(&v), 4), *this; }
    Bytes& u64(std::uint64_t v) { return s.append(reinterpret_cast<const char*>(&v), 8), *this; }
    Bytes& str(std::string_view t) { return u64(t.size()), s.append(t), *this; }
    Bytes& text(std::string_view key, std::string_view value) { return str(key).u32(8).str(value); }
    Bytes& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset) {
        str(name).u32(std::uint32_t(dims.size()));
        for (auto d : dims) u64(d);
        return u32(type).u64(offset);
    }
    Bytes& data(std::size_t n) { return s.append((32 - s.size() % 32) % 32 + n, '\0'), *this; }
};

// Opening the file fails with a message that names it and says `part`.
void refused(const std::string& bytes, const std::string& part, const std::string& name = "broken.gguf") {
    const auto path = scratch() / name;
    testing::write_file(path, bytes);
    try {
        GgufFile::open(path);
        BOOST_ERROR("a file that should say \"" << part << "\" was accepted");
    } catch (const Error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find(path.string()) != std::string::npos, what);
        BOOST_TEST(what.find(part) != std::string::npos, what << " (expected \"" << part << "\")");
    }
}

}  // namespace gguf_tests

using namespace gguf_tests;

BOOST_AUTO_TEST_SUITE(gguf)

// stories260K written as F32 from the llama2.c file, whose q and k rows are already in llama.cpp's
// order, gives run.c's logits and greedy ids; written from the Hugging Face folder (rotate-half rows
// permuted as llama.cpp's converter does) it holds the same tensors.
BOOST_AUTO_TEST_CASE(stories260K_f32_matches_run_c) {
    const auto& ref = run_c();
    const auto file = written(stories_bin(), "f32").gguf;
    const auto model = load<Llama>(file);
    const auto out = logits(model, ref.tokens);
    BOOST_TEST_REQUIRE(out.sizes() == ref.logits.sizes());
    const double d = largest_difference(out, ref.logits);
    BOOST_TEST(d < 1e-4);
    BOOST_TEST_MESSAGE("stories260K F32 GGUF against run.c: largest logit difference " << d);
    BOOST_TEST(generate(model, {ref.greedy.front()}, int(ref.greedy.size() - 1)) == ref.greedy,
               boost::test_tools::per_element());

    const auto from_bin = GgufFile::open(file);
    const auto from_folder = GgufFile::open(written(testing::shared("models/stories260K/hf"), "f32").gguf);
    BOOST_TEST(from_bin.names() == from_folder.names(), boost::test_tools::per_element());
    for (const auto& name : from_bin.names()) {
        BOOST_TEST_INFO(name);
        BOOST_TEST(at::equal(from_bin.load(name, {}), from_folder.load(name, {})));
    }
}

// Each type gives the logits of the weights it dequantises to. stories260K's rows (64 and 172
// wide) are too short for K-quants (they would fall back to Q8_0 and F16), so an untrained Llama
// 256 wide checks those.
BOOST_AUTO_TEST_CASE(every_type_gives_the_logits_of_its_dequantised_weights) {
    const auto& ids = run_c().tokens;
    for (const std::string type : {"f16", "bf16", "q8_0", "q4_0"}) {
        const auto w = written(stories_bin(), type);
        const double d = check_against_dequantised<Llama>(w, ids);
        // What the type itself costs, for the record: the distance from run.c's f32 logits.
        const double quantisation = largest_difference(logits(load<Llama>(w.gguf), ids), run_c().logits);
        BOOST_TEST_MESSAGE("stories260K " << type << ": largest logit difference " << d << " (from run.c's f32 logits "
                                          << quantisation << ")");
    }
    BOOST_TEST(type_of(written(stories_bin(), "q8_0").gguf, "blk.0.ffn_up.weight") == "Q8_0");

    const auto wide = wide_llama();
    for (const std::string type : {"q4_K", "q6_K"}) {
        const auto w = written(wide, type);
        std::string name = type;  // ggml's name: q4_K -> Q4_K
        std::transform(name.begin(), name.end(), name.begin(), [](char c) { return std::toupper(c); });
        for (const auto* tensor :
             {"token_embd.weight", "output.weight", "blk.1.attn_k.weight", "blk.1.ffn_down.weight"})
            BOOST_TEST(type_of(w.gguf, tensor) == name, tensor);
        const double d = check_against_dequantised<Llama>(w, {1, 17, 200, 5, 299});
        BOOST_TEST_MESSAGE("untrained Llama 256 wide " << type << ": largest logit difference " << d);
    }

    // GPT-2: the Conv1D weights come back transposed, the biases and position embedding are read.
    const Ids prompt{464, 6766, 318, 4171, 13};
    const double d =
        largest_difference(logits(load<GPT2>(gpt2_f32().gguf), prompt), logits(load<GPT2>(gpt2_folder()), prompt));
    BOOST_TEST(d < 1e-4);
    BOOST_TEST_MESSAGE("gpt2-tiny-random F32 GGUF against its folder: largest logit difference " << d);
    const double q8 = check_against_dequantised<GPT2>(written(gpt2_folder(), "q8_0"), prompt);
    BOOST_TEST_MESSAGE("gpt2-tiny-random q8_0: largest logit difference " << q8);
}

// A quantised matrix stays in the blocks the file stores (the products dequantise a band at a time,
// and the case above shows their logits are the dequantised weights'): a Q4_K model holds what its
// file's blocks take, which is what the memory estimate reads from the file; asked for int8, it holds int8.
BOOST_AUTO_TEST_CASE(quantised_matrices_stay_in_their_blocks) {
    const auto w = written(wide_llama(), "q4_K");
    const auto file = GgufFile::open(w.gguf);
    const auto config = LlamaConfig::from_json(file.config());
    const Needs all{{0, 2}, true, true};
    const auto packed = Llama::load(config, file, {}, all).held_bytes();
    const auto dense = load<Llama>(w.dequantised).held_bytes();
    const auto estimate = Llama::estimated_bytes(config, all, at::kFloat, Weights::dense,
                                                 [&](const std::string& name) { return file.block_bytes(name); });
    BOOST_TEST(packed == estimate - 4 * std::uint64_t(Llama::stacked_per_block(config)));
    BOOST_TEST_MESSAGE("untrained Llama 256 wide, Q4_K: holds " << packed << " bytes against " << dense
                                                                << " dequantised (embedding and head in f32 in both)");
    BOOST_TEST(double(packed) < 0.3 * double(dense));
    const auto int8 = Llama::load(config, file, Placement{at::kCPU, at::kFloat, Weights::int8}, all).held_bytes();
    BOOST_TEST(int8 == Llama::estimated_bytes(config, all, at::kFloat, Weights::int8) -
                           std::uint64_t(Llama::stacked_per_block(config)));
}

BOOST_AUTO_TEST_CASE(a_slice_dequantises_only_its_blocks) {
    const auto file = GgufFile::open(written(stories_bin(), "q8_0").gguf);
    Llama::load(LlamaConfig::from_json(file.config()), file, {}, Needs{{1, 2}, true, false});
    const auto loaded = file.loaded();
    BOOST_TEST(loaded.size() == 10u);  // 9 tensors of block 1 and the embedding
    for (const auto& name : loaded) {
        BOOST_TEST_INFO(name);
        BOOST_TEST((name.starts_with("model.layers.1.") || name == "model.embed_tokens.weight"));
    }
    // A slice through the path, as the program loads it.
    const auto slice = load<Llama>(written(stories_bin(), "q8_0").gguf, {}, Blocks<0, 1>{});
    BOOST_CHECK_EXCEPTION(slice.unembed(at::zeros({1, 2, 64})), Error, testing::says("model.norm was not loaded"));
}

// The tokenizer in the metadata: the Brown Llama's SentencePiece model, the GPT-2 BPE.
BOOST_AUTO_TEST_CASE(the_tokenizer_comes_from_the_metadata) {
    const auto brown = fs::path(INPUTREP_SOURCE_DIR) / "models/llama-brown";
    const auto w = written(brown, "q4_K", "--tokenizer '" + (brown / "tokenizer.model").string() + "'");
    const auto from_gguf = Tokenizer::from_gguf(w.gguf);
    BOOST_TEST_REQUIRE(from_gguf.has_value());
    const auto sp = SentencePiece::from_file(brown / "tokenizer.model");
    BOOST_TEST(from_gguf->vocab_size() == sp.vocab_size());
    for (const std::string text :
         {"The jury said it did find that the city's election was conducted.", "  two  spaces,\ttabs\nand new lines  ",
          "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x99\x82 <s>", ""}) {
        BOOST_TEST_INFO(text);
        const auto ids = from_gguf->encode(text);
        BOOST_TEST(ids == sp.encode(text), boost::test_tools::per_element());
        BOOST_TEST(from_gguf->decode(ids) == sp.decode(ids));
    }
    // Only ffn_down's rows (512) split into K-quant blocks in this model: Q4_K there, Q8_0 elsewhere.
    BOOST_TEST(type_of(w.gguf, "blk.0.ffn_down.weight") == "Q4_K");
    BOOST_TEST(type_of(w.gguf, "blk.0.attn_q.weight") == "Q8_0");
    const double d = check_against_dequantised<Llama>(w, sp.encode("The jury said it did find"));
    BOOST_TEST_MESSAGE("llama-brown q4_K: largest logit difference " << d);

    const auto bpe = Tokenizer::from_gguf(gpt2_f32().gguf);
    BOOST_TEST_REQUIRE(bpe.has_value());
    for (const auto& entry : read_json(testing::shared("reference/gpt2_tokenizer.json"))) {
        const auto text = entry.at("text").get<std::string>();
        BOOST_TEST_INFO(text);
        BOOST_TEST(bpe->encode(text) == entry.at("ids").get<Ids>(), boost::test_tools::per_element());
        BOOST_TEST(bpe->decode(entry.at("ids").get<Ids>()) == text);
    }
    BOOST_TEST(!Tokenizer::from_gguf(written(stories_bin(), "f32").gguf).has_value());

    // The program reads it without --vocab, and picks the family from general.architecture.
    const auto brown_run = testing::cli_json("hidden --model '" + w.gguf.string() + "' --prompt 'The jury said'");
    BOOST_TEST(brown_run["tokens"].get<Ids>() == sp.encode("The jury said"), boost::test_tools::per_element());
    const auto hidden =
        testing::cli_json("hidden --model '" + gpt2_f32().gguf.string() + "' --prompt 'The sky is blue.'");
    BOOST_TEST(hidden["tokens"].get<Ids>() == Ids({464, 6766, 318, 4171, 13}), boost::test_tools::per_element());
}

// Captured from the Q8_0 file with `hidden --save`, the prompt comes back from the capture alone.
BOOST_AUTO_TEST_CASE(the_program_inverts_a_capture_of_the_gguf_model) {
    const auto model = written(stories_bin(), "q8_0").gguf.string();
    const Ids prompt(run_c().greedy.begin(), run_c().greedy.begin() + 16);
    std::string ids;
    for (auto id : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const auto capture = (scratch() / "capture.safetensors").string();
    const auto saved = testing::run_cli("hidden --model '" + model + "' " + testing::vocab() + " --ids " + ids +
                                        " --save '" + capture + "'");
    BOOST_REQUIRE_MESSAGE(saved.status == 0, saved.out);
    const auto r = testing::cli_json("invert --model '" + model + "' " + testing::vocab() +
                                     " --optimizer exact --blocks 0:5 --target '" + capture + "'");
    BOOST_TEST(r["ids"].get<Ids>() == prompt, boost::test_tools::per_element());
    BOOST_TEST(r["verified"].get<bool>());
}

// Every broken file gets an error that names it: truncated anywhere, a wrong magic or version,
// counts the file cannot hold, unknown types, tensors out of place, impossible sizes.
BOOST_AUTO_TEST_CASE(broken_files_are_refused_with_their_name) {
    const std::string valid = testing::slurp(written(stories_bin(), "f32").gguf);
    const auto header = inputrep::gguf::parse_header(std::as_bytes(std::span(valid.data(), valid.size())), "valid");
    for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{6}, std::size_t{12}, std::size_t{22},
                            std::size_t{40}, std::size_t{300}, header.data_start - 60}) {
        BOOST_TEST_INFO("cut at " << cut);
        refused(valid.substr(0, cut), cut < 4 ? "not a GGUF file" : "truncated");
    }
    refused(valid.substr(0, header.data_start + 1000), "reaches past the end of the file");
    std::uint64_t end = 0;  // of the last tensor's bytes
    for (const auto& t : header.tensors) end = std::max(end, header.data_start + t.offset + t.bytes);
    refused(valid.substr(0, end - 1), "reaches past the end of the file");
    auto patched = [&](std::size_t at, std::uint64_t value, std::size_t width) {
        auto bytes = valid;
        std::memcpy(bytes.data() + at, &value, width);
        return bytes;
    };
    refused(patched(0, 0x46554747 + 1, 4), "not a GGUF file");
    refused(patched(4, 1, 4), "version 1");
    refused(patched(4, 0x03000000, 4), "big-endian");
    refused(patched(4, 4, 4), "version 4");
    refused(patched(8, std::uint64_t{1} << 60, 8), "tensors, more than");
    refused(patched(16, std::uint64_t{1} << 60, 8), "metadata entries, more than");

    const auto arch = [](Bytes b) {
        b.text("general.architecture", "llama");
        return b;
    };
    refused(Bytes(0, 1).str("k").u32(13).u32(0).s, "value type 13");
    refused(Bytes(0, 1).str("k").u32(8).u64(1000).s, "truncated");
    refused(Bytes(0, 1).str("k").u32(9).u32(9).u64(1).s, "array of arrays");
    refused(Bytes(0, 1).str("k").u32(9).u32(4).u64(std::uint64_t{1} << 61).s, "elements of type u32, more than");
    refused(Bytes(0, 2).text("k", "a").text("k", "b").s, "appears twice");
    refused(Bytes(0, 1).str("general.alignment").u32(4).u32(48).s, "not a power of two");
    refused(arch(Bytes(1, 1)).tensor("t", {32}, 99, 0).data(128).s, "unknown type id (99)");
    refused(arch(Bytes(1, 1)).tensor("t", {256}, 13, 0).data(176).s, "ggml type Q5_K (13)");
    refused(arch(Bytes(1, 1)).tensor("t", {32}, 0, 4096).data(128).s, "reaches past the end of the file");
    refused(arch(Bytes(1, 1)).tensor("t", {8}, 0, 16).data(128).s, "not a multiple of the alignment 32");
    refused(arch(Bytes(2, 1)).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).data(128).s, "overlap");
    refused(arch(Bytes(2, 1)).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).data(64).s, "appears twice");
    refused(arch(Bytes(1, 1)).tensor("t", {std::uint64_t{1} << 40, std::uint64_t{1} << 40}, 0, 0).data(64).s,
            "overflows 64 bits");
    refused(arch(Bytes(1, 1)).tensor("t", {1, 1, 1, 1, 1}, 0, 0).data(64).s, "5 dimensions");
    refused(arch(Bytes(1, 1)).tensor("t", {10}, 8, 0).data(64).s, "do not split into Q8_0 blocks of 32");
    refused(Bytes(0, 1).text("general.architecture", "gptj").s, "general.architecture is \"gptj\"");
    // Parsed, but the model it describes is incomplete.
    const auto path = scratch() / "no_metadata.gguf";
    testing::write_file(path, arch(Bytes(1, 1)).tensor("token_embd.weight", {8, 4}, 0, 0).data(128).s);
    BOOST_CHECK_EXCEPTION(GgufFile::open(path).config(), Error,
                          testing::says(path.string() + ": no metadata \"llama.embedding_length\""));
}

BOOST_AUTO_TEST_SUITE_END()
