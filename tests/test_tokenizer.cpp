// GPT-2 byte-level BPE against ids produced by the reference tokenizer (../shared/reference), in
// every file format it reads, plus the edges: special tokens, half characters, and bad input.
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <inputrep/tokenizer/tokenizer.hpp>

#include "common.hpp"

namespace {

namespace fs = std::filesystem;
using inputrep::Gpt2Bpe;
using nlohmann::json;
using Ids = std::vector<std::int64_t>;

struct Example {
    std::string text;
    Ids ids;
};

std::vector<Example> reference_examples() {
    std::ifstream in(testing::shared("reference/gpt2_tokenizer.json"));
    std::vector<Example> examples;
    for (const auto& entry : json::parse(in))
        examples.push_back({entry.at("text").get<std::string>(), entry.at("ids").get<Ids>()});
    BOOST_TEST_REQUIRE(!examples.empty());
    return examples;
}

// Loaded once: every case that needs plain GPT-2 shares it.
const Gpt2Bpe& gpt2() {
    static const Gpt2Bpe tokenizer = Gpt2Bpe::from_folder(testing::gpt2_vocab_dir());
    return tokenizer;
}

// A fresh folder, removed with its contents when the case ends.
struct TempDir {
    fs::path path = fs::temp_directory_path() / ("inputrep_tokenizer_" + std::to_string(std::random_device{}()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::vector<std::pair<std::string, std::string>> gpt2_merges() {
    std::ifstream in(testing::gpt2_vocab_dir() / "vocab.bpe");
    std::vector<std::pair<std::string, std::string>> merges;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.starts_with("#version")) continue;
        const auto space = line.find(' ');
        merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
    return merges;
}

// GPT-2's encoder.json + vocab.bpe restated as a Hugging Face tokenizer.json, laid out as the Hub's
// gpt2/tokenizer.json is; `pair_merges` picks the newer [["A", "B"], ...] merge format.
json gpt2_tokenizer_json(bool pair_merges) {
    const json vocab = json::parse(std::ifstream(testing::gpt2_vocab_dir() / "encoder.json"));
    json merges = json::array();
    for (const auto& [left, right] : gpt2_merges())
        merges.push_back(pair_merges ? json::array({left, right}) : json(left + " " + right));
    return {{"version", "1.0"},
            {"added_tokens",
             {{{"id", vocab.at("<|endoftext|>")},
               {"content", "<|endoftext|>"},
               {"single_word", false},
               {"lstrip", false},
               {"rstrip", false},
               {"normalized", true},
               {"special", true}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer",
             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", ""},
              {"end_of_word_suffix", ""},
              {"fuse_unk", false},
              {"vocab", vocab},
              {"merges", merges}}}};
}

// A tokenizer.json whose vocabulary is the byte alphabet plus `extra`, with the given merges.
Gpt2Bpe tiny_tokenizer(const TempDir& dir, const std::vector<std::string>& extra, const json& merges,
                       bool ignore_merges) {
    json vocab = json::object();
    std::int64_t next_id = 0;
    for (const auto& symbol : inputrep::detail::byte_alphabet().symbol) vocab[symbol] = next_id++;
    for (const auto& token : extra) vocab[token] = next_id++;
    const json file = {
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges}}}};
    write(dir.path / "tokenizer.json", file.dump());
    return Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json");
}

Ids concat(std::initializer_list<Ids> parts) {
    Ids all;
    for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
    return all;
}

// For BOOST_CHECK_EXCEPTION: the message names every fragment (a path, a line, an id).
auto message_has(std::vector<std::string> fragments) {
    return [fragments = std::move(fragments)](const inputrep::Error& e) {
        const std::string message = e.what();
        for (const auto& fragment : fragments)
            if (message.find(fragment) == std::string::npos) {
                BOOST_TEST_MESSAGE("\"" << message << "\" does not mention \"" << fragment << "\"");
                return false;
            }
        return true;
    };
}

// A text encoded by `tokenizer` gives the reference ids, for every reference text and one that
// holds <|endoftext|> (which only a tokenizer that honours the special token keeps whole).
void check_matches_reference(const Gpt2Bpe& tokenizer) {
    for (const auto& [text, ids] : reference_examples()) {
        BOOST_TEST_CONTEXT("text \"" << text << "\"")
        BOOST_TEST(tokenizer.encode(text) == ids, boost::test_tools::per_element());
    }
    const std::string with_special = "end.<|endoftext|>Start";
    BOOST_TEST(tokenizer.encode(with_special) == gpt2().encode(with_special), boost::test_tools::per_element());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tokenizer)

BOOST_AUTO_TEST_CASE(reference_texts_encode_and_decode_exactly) {
    for (const auto& [text, ids] : reference_examples()) {
        BOOST_TEST_CONTEXT("text \"" << text << "\"") {
            BOOST_TEST(gpt2().encode(text) == ids, boost::test_tools::per_element());
            BOOST_TEST(gpt2().decode(ids) == text);
        }
    }
}

BOOST_AUTO_TEST_CASE(vocab_json_and_merges_txt_folder_matches) {
    TempDir dir;
    fs::copy_file(testing::gpt2_vocab_dir() / "encoder.json", dir.path / "vocab.json");
    fs::copy_file(testing::gpt2_vocab_dir() / "vocab.bpe", dir.path / "merges.txt");
    check_matches_reference(Gpt2Bpe::from_folder(dir.path));
}

BOOST_AUTO_TEST_CASE(tokenizer_json_with_string_merges_matches) {
    TempDir dir;
    write(dir.path / "tokenizer.json", gpt2_tokenizer_json(false).dump());
    check_matches_reference(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"));
}

BOOST_AUTO_TEST_CASE(tokenizer_json_with_pair_merges_matches) {
    TempDir dir;
    write(dir.path / "tokenizer.json", gpt2_tokenizer_json(true).dump());
    check_matches_reference(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"));
    // A folder holding only tokenizer.json falls through to it.
    check_matches_reference(Gpt2Bpe::from_folder(dir.path));
}

BOOST_AUTO_TEST_CASE(endoftext_is_one_token_inside_text) {
    const auto& tok = gpt2();
    const auto eot = tok.id_of("<|endoftext|>");
    BOOST_TEST_REQUIRE(eot.has_value());
    BOOST_TEST(*eot == 50256);
    BOOST_TEST(tok.vocab_size() == 50257);
    const std::string text = "The end.<|endoftext|> A new start";
    const Ids ids = tok.encode(text);
    BOOST_TEST(ids == concat({tok.encode("The end."), {50256}, tok.encode(" A new start")}),
               boost::test_tools::per_element());
    BOOST_TEST(tok.decode(ids) == text);
    BOOST_TEST(tok.token(50256) == "<|endoftext|>");
}

BOOST_AUTO_TEST_CASE(half_a_character_decodes_to_replacement_character) {
    const auto& tok = gpt2();
    const std::string replacement = "\uFFFD";
    // Byte 0xF0 (a 4-byte lead) is printable Latin-1, so its token is "\u00F0" itself.
    const auto lead = tok.id_of("\u00F0");
    BOOST_TEST_REQUIRE(lead.has_value());
    BOOST_TEST(tok.token(*lead) == replacement);

    // The emoji's four bytes as four one-byte tokens: any proper prefix is half a character and
    // decodes to one U+FFFD (as Python's errors="replace" does); all four give the emoji back.
    const std::string emoji = "\U0001F642";
    Ids bytes;
    for (const char c : emoji) {
        const auto id = tok.id_of(inputrep::detail::byte_alphabet().symbol[static_cast<unsigned char>(c)]);
        BOOST_TEST_REQUIRE(id.has_value());
        bytes.push_back(*id);
    }
    for (std::size_t k = 1; k < bytes.size(); ++k)
        BOOST_TEST(tok.decode(std::span(bytes).first(k)) == replacement, "first " << k << " bytes");
    BOOST_TEST(tok.decode(bytes) == emoji);

    // The reference texts split some character across tokens (GPT-2 cuts the curly quotes so):
    // each such token alone decodes with U+FFFD, and the whole text still decodes exactly.
    bool split_character = false;
    for (const auto& [text, ids] : reference_examples())
        for (const auto id : ids)
            if (tok.token(id).find(replacement) != std::string::npos) {
                split_character = true;
                BOOST_TEST(text.find(replacement) == std::string::npos);
                BOOST_TEST(tok.decode(ids) == text);
            }
    BOOST_TEST(split_character);

    // Unicode 15 §3.9, table 3-8: one U+FFFD per maximal ill-formed subpart, as Python replaces.
    BOOST_TEST(inputrep::detail::to_valid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") ==
               "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
}

BOOST_AUTO_TEST_CASE(ignore_merges_emits_whole_tokens) {
    // "ab" is reachable by the one merge, "abc" by none.
    TempDir dir;
    const auto merging = tiny_tokenizer(dir, {"ab", "abc"}, {"a b"}, false);
    const auto whole = tiny_tokenizer(dir, {"ab", "abc"}, {"a b"}, true);
    const auto ab = merging.id_of("ab"), abc = merging.id_of("abc"), c = merging.id_of("c");
    BOOST_TEST_REQUIRE((ab && abc && c));
    BOOST_TEST(merging.encode("abc") == (Ids{*ab, *c}), boost::test_tools::per_element());
    BOOST_TEST(whole.encode("abc") == (Ids{*abc}), boost::test_tools::per_element());
    BOOST_TEST(whole.encode("abcabc") == (Ids{*ab, *c, *ab, *c}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(repeated_merge_takes_its_last_rank) {
    // As encoder.py's dict and Hugging Face's map do: "b c" listed again after "a b" ranks below it.
    TempDir dir;
    const auto tokenizer = tiny_tokenizer(dir, {"ab", "bc"}, {"b c", "a b", "b c"}, false);
    const auto ab = tokenizer.id_of("ab"), c = tokenizer.id_of("c");
    BOOST_TEST_REQUIRE((ab && c));
    BOOST_TEST(tokenizer.encode("abc") == (Ids{*ab, *c}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(split_regex_from_tokenizer_json_is_used) {
    // Llama 3's pre-tokeniser: digits go in groups of at most three.
    json file = gpt2_tokenizer_json(false);
    file["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    TempDir dir;
    write(dir.path / "tokenizer.json", file.dump());
    const auto llama3_split = Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json");
    const auto& tok = gpt2();
    const Ids expected = concat({tok.encode("123"), tok.encode("456"), tok.encode("7")});
    BOOST_TEST(llama3_split.encode("1234567") == expected, boost::test_tools::per_element());
    BOOST_TEST(tok.encode("1234567") != expected);  // so the case tells the two regexes apart
}

BOOST_AUTO_TEST_CASE(missing_files_are_named) {
    TempDir dir;
    const auto absent = dir.path / "absent";
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_folder(absent), inputrep::Error,
                          message_has({absent.string(), "vocab.json", "encoder.json", "tokenizer.json"}));
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_folder(dir.path), inputrep::Error,
                          message_has({dir.path.string(), "merges.txt"}));
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_files(dir.path / "vocab.json", testing::gpt2_vocab_dir() / "vocab.bpe"),
                          inputrep::Error, message_has({(dir.path / "vocab.json").string()}));
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_files(testing::gpt2_vocab_dir() / "encoder.json", dir.path / "merges.txt"),
                          inputrep::Error, message_has({(dir.path / "merges.txt").string()}));
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({(dir.path / "tokenizer.json").string()}));
}

BOOST_AUTO_TEST_CASE(malformed_json_is_reported) {
    TempDir dir;
    write(dir.path / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {)");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({"malformed JSON", (dir.path / "tokenizer.json").string()}));
    write(dir.path / "vocab.json", R"({"a": 0,})");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_files(dir.path / "vocab.json", testing::gpt2_vocab_dir() / "vocab.bpe"),
                          inputrep::Error, message_has({"malformed JSON", (dir.path / "vocab.json").string()}));
    // Valid JSON of the wrong shape names the file too.
    write(dir.path / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": 3}})");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({(dir.path / "tokenizer.json").string()}));
}

BOOST_AUTO_TEST_CASE(malformed_merges_are_reported) {
    TempDir dir;
    const auto vocab = testing::gpt2_vocab_dir() / "encoder.json";
    const auto [left, right] = gpt2_merges().front();
    write(dir.path / "merges.txt", "#version: 0.2\n" + left + " " + right + "\n" + left + right + "\n");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_files(vocab, dir.path / "merges.txt"), inputrep::Error,
                          message_has({(dir.path / "merges.txt").string(), "line 3", left + right}));
    write(dir.path / "merges.txt", "#version: 0.2\n" + left + " qqzzqqzz\n");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_files(vocab, dir.path / "merges.txt"), inputrep::Error,
                          message_has({"\"qqzzqqzz\" is not in the vocabulary"}));

    json file = gpt2_tokenizer_json(false);
    file["model"]["merges"][1] = left + right;
    write(dir.path / "tokenizer.json", file.dump());
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({"merges[1]", left + right}));
    file["model"]["merges"][1] = json::array({left, right, right});
    write(dir.path / "tokenizer.json", file.dump());
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({"merges[1]", "not a pair"}));
}

BOOST_AUTO_TEST_CASE(bad_ids_text_and_regex_are_reported) {
    const auto& tok = gpt2();
    const Ids past_end{0, tok.vocab_size()};
    BOOST_CHECK_EXCEPTION(tok.decode(past_end), inputrep::Error,
                          message_has({"unknown token id " + std::to_string(tok.vocab_size())}));
    BOOST_CHECK_EXCEPTION(tok.token(-1), inputrep::Error, message_has({"unknown token id -1"}));
    BOOST_CHECK_EXCEPTION(tok.encode("ok \xC3("), inputrep::Error, message_has({"not valid UTF-8 at byte 3"}));

    json file = gpt2_tokenizer_json(false);
    file["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    TempDir dir;
    write(dir.path / "tokenizer.json", file.dump());
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({"(unclosed", "does not compile"}));
}

// An id far past the file's token count used to size the decode table: 10^9 asked for ~40 GB and
// ended the program with std::bad_alloc (issue 10).
BOOST_AUTO_TEST_CASE(ids_far_past_the_token_count_are_rejected) {
    TempDir dir;
    json vocab = json::object();
    std::int64_t next_id = 0;
    for (const auto& symbol : inputrep::detail::byte_alphabet().symbol) vocab[symbol] = next_id++;
    vocab["far"] = 1'000'000'000;
    write(dir.path / "vocab.json", vocab.dump());
    write(dir.path / "merges.txt", "#version: 0.2\n");
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_folder(dir.path), inputrep::Error,
                          message_has({"\"far\" has id 1000000000", "holds 257 tokens", "below 514"}));
    vocab["far"] = 513;  // the largest id the bound allows still loads
    write(dir.path / "vocab.json", vocab.dump());
    BOOST_TEST(Gpt2Bpe::from_folder(dir.path).vocab_size() == 514);
    const json file = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
                       {"added_tokens", {{{"id", 900'000'000}, {"content", "<big>"}}}}};
    write(dir.path / "tokenizer.json", file.dump());
    BOOST_CHECK_EXCEPTION(Gpt2Bpe::from_tokenizer_json(dir.path / "tokenizer.json"), inputrep::Error,
                          message_has({"special token \"<big>\" has id 900000000"}));
}

// A folder with only llama2.c's tokenizer.bin (no config.json to give the vocabulary size) is
// read with it: the file's tokens are counted.
BOOST_AUTO_TEST_CASE(a_folder_with_only_tokenizer_bin_uses_it) {
    TempDir dir;
    BOOST_TEST(!inputrep::Tokenizer::exists_in(dir.path));
    std::string file(4, '\0');
    auto piece = [&](const std::string& text, float score) {
        const auto n = static_cast<std::int32_t>(text.size());
        file.append(reinterpret_cast<const char*>(&score), 4).append(reinterpret_cast<const char*>(&n), 4).append(text);
    };
    for (const char* special : {"<unk>", "\n<s>\n", "\n</s>\n"}) piece(special, 0);
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        piece(hex, 0);
    }
    for (const char* text : {" ", "h", "i", "hi", " hi"}) piece(text, std::strlen(text));  // longer pieces score higher
    write(dir.path / "tokenizer.bin", file);
    BOOST_TEST(inputrep::Tokenizer::exists_in(dir.path));
    const auto tokenizer = inputrep::Tokenizer::from_folder(dir.path);
    BOOST_TEST(tokenizer.vocab_size() == 264);
    BOOST_TEST(tokenizer.encode("hi hi") == (Ids{263, 263}), boost::test_tools::per_element());
    BOOST_TEST(tokenizer.decode(Ids{263, 263}) == " hi hi");
    // With a config.json, its vocab_size must match the file.
    write(dir.path / "config.json", R"({"vocab_size": 300})");
    BOOST_CHECK_EXCEPTION(inputrep::Tokenizer::from_folder(dir.path), inputrep::Error,
                          message_has({"ends inside token 264 of 300"}));
    write(dir.path / "tokenizer.bin", file.substr(0, file.size() - 2));
    std::filesystem::remove(dir.path / "config.json");
    BOOST_CHECK_EXCEPTION(inputrep::Tokenizer::from_folder(dir.path), inputrep::Error,
                          message_has({"past the end of the file"}));
}

// A folder with only SentencePiece's tokenizer.model is read with it, not with a BPE default.
BOOST_AUTO_TEST_CASE(a_folder_with_only_tokenizer_model_uses_it) {
    TempDir dir;
    {
        std::ofstream corpus(dir.path / "corpus.txt");
        for (int i = 0; i < 300; ++i)
            corpus << "the cat sat on the mat number " << i << " and the dog ran to the tree\n";
    }
    const std::string command = "spm_train --input='" + (dir.path / "corpus.txt").string() + "' --model_prefix='" +
                                (dir.path / "tokenizer").string() +
                                "' --model_type=bpe --vocab_size=60 "
                                "--normalization_rule_name=identity > '" +
                                (dir.path / "train.log").string() + "' 2>&1";
    BOOST_TEST_REQUIRE(
        std::system(command.c_str()) == 0,
        "spm_train failed; the SentencePiece command-line tools come with scripts/setup (apt package sentencepiece)");
    std::filesystem::remove(dir.path / "tokenizer.vocab");
    std::filesystem::remove(dir.path / "corpus.txt");
    BOOST_TEST(inputrep::Tokenizer::exists_in(dir.path));
    const auto sentencepiece = inputrep::SentencePiece::from_file(dir.path / "tokenizer.model");
    const auto tokenizer = inputrep::Tokenizer::from_folder(dir.path);
    BOOST_TEST(tokenizer.vocab_size() == 60);
    const std::string text = "the cat ran to the mat";
    BOOST_TEST(tokenizer.encode(text) == sentencepiece.encode(text), boost::test_tools::per_element());
    BOOST_TEST(tokenizer.decode(tokenizer.encode(text)) == text);
}

BOOST_AUTO_TEST_CASE(exists_in_sees_every_bpe_layout) {
    BOOST_TEST(inputrep::Tokenizer::exists_in(testing::gpt2_vocab_dir()));
    BOOST_TEST(!inputrep::Tokenizer::exists_in(testing::gpt2_vocab_dir() / "absent"));
    TempDir dir;
    write(dir.path / "vocab.json", "{}");
    BOOST_TEST(!inputrep::Tokenizer::exists_in(dir.path));  // vocab.json without merges.txt
    write(dir.path / "merges.txt", "");
    BOOST_TEST(inputrep::Tokenizer::exists_in(dir.path));
}

BOOST_AUTO_TEST_SUITE_END()
