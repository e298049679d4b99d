#pragma once
// The inputrep program's command table on CLI11. Each group of subcommands registers itself from
// its own file (register_NAME); main.cpp lists the groups. Options are turned into library
// policies as the command line is parsed, by the parser next to each policy, so a typo exits 2
// before any model is built.
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <inputrep/core/error.hpp>
#include <inputrep/core/file.hpp>
#include <inputrep/core/text.hpp>

namespace cli {

// A mistake in the command line found after parsing (two options that exclude each other): one
// line on stderr, exit code 2, as CLI11's own parse errors.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Which ends of a number's range belong to it.
enum class Ends { closed, open_low, open };

// `--flag N` stored into `into` (a T or an optional<T>), read by the library's number reader and
// checked against the range [lo, hi] (or (lo, hi], (lo, hi)) as the command line is parsed (NaN is
// outside every range, "1e12" is not an integer, "-1" is not unsigned); --help states the range.
template <class T, class Into>
CLI::Option* add_number(CLI::App& app, const std::string& flag, Into& into, T lo, T hi, const std::string& help,
                        Ends ends = Ends::closed) {
    const std::string range =
        fmt::format("{}{}, {}{}", ends == Ends::closed ? "[" : "(", lo, hi, ends == Ends::open ? ")" : "]");
    return app
        .add_option_function<std::string>(
            flag,
            [&into, lo, hi, flag, ends, range](const std::string& text) {
                try {
                    const T value = inputrep::text::to_number<T>(text, flag);
                    const bool low = ends == Ends::closed ? value >= lo : value > lo,
                               high = ends == Ends::open ? value < hi : value <= hi;
                    if (!low && ends != Ends::closed) inputrep::fail(flag, " must be > ", lo, " (got ", text, ")");
                    inputrep::require(low && high, flag, ": ", text, " is outside ", range);
                    into = value;
                } catch (const inputrep::Error& e) {
                    throw CLI::ValidationError(e.what());
                }
            },
            fmt::format("{} {}", help, range))
        ->type_name("N");
}

// `--flag TEXT` turned into a policy by the library's `parse` (text → value, inputrep::Error on a
// mistake, which becomes CLI11's exit-2 validation error naming the flag).
template <class Into, class Parse>
CLI::Option* add_parsed(CLI::App& app, const std::string& flag, Into& into, Parse parse, const std::string& help) {
    return app
        .add_option_function<std::string>(
            flag,
            [&into, parse, flag](const std::string& text) {
                try {
                    into = parse(text);
                } catch (const inputrep::Error& e) {
                    throw CLI::ValidationError(flag, e.what());
                }
            },
            help)
        ->type_name("TEXT");
}

// An output path, checked as the command line is parsed: something there that is not a regular file
// (a device, a FIFO, a folder) is refused before any work, never replaced (core/file.hpp).
inline std::filesystem::path output_file(std::string_view flag, std::string_view text) {
    std::filesystem::path path(text);
    inputrep::require(!text.empty(), flag, ": give a file name");
    inputrep::check_output(path, flag);
    return path;
}

// An output folder: something there that is not a folder is refused.
inline std::filesystem::path output_folder(std::string_view flag, std::string_view text) {
    std::filesystem::path path(text);
    inputrep::require(!text.empty(), flag, ": give a folder name");
    inputrep::check_output_folder(path, flag);
    return path;
}

// A check by a library parser, for an option kept as text until the command runs (what it means
// depends on other options): the parser's message is CLI11's exit-2 validation error.
template <class Parse>
CLI::Validator parsed_by(Parse parse) {
    return CLI::Validator(
        [parse](std::string& text) -> std::string {
            try {
                return parse(text), std::string();
            } catch (const inputrep::Error& e) {
                return e.what();
            }
        },
        "");
}

// The groups of subcommands, one file each.
void register_tokenize(CLI::App& app);   // tokenize.cpp: tokenize
void register_inspect(CLI::App& app);    // inspect.cpp: hidden, generate
void register_invert(CLI::App& app);     // invert.cpp: invert, bandwidth
void register_attribute(CLI::App& app);  // attribute.cpp: attribute
void register_train(CLI::App& app);      // train.cpp: train, eval
void register_sweep(CLI::App& app);      // sweep.cpp: sweep

}  // namespace cli
