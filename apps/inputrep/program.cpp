// The inputrep program (program.hpp). Exit codes: 0 success, 2 a mistake in the command line (one
// line on stderr, before any model is built), 1 bad input or a failed run (one line on stderr naming
// what to fix).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>

#include <c10/util/Exception.h>

#include "cli.hpp"
#include "program.hpp"

int cli::main(int argc, char** argv) {
    CLI::App app{"inputrep: input representation for language models", "inputrep"};
    app.require_subcommand(1);
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.get_formatter()->label("Usage", "usage");
    for (auto group : {cli::register_inspect, cli::register_invert, cli::register_attribute, cli::register_train,
                       cli::register_sweep})
        group(app);

    const std::string command = argc > 1 ? argv[1] : "";
    auto error = [&](const std::string& kind, const std::string& message, int code) {
        std::cerr << "inputrep" << (command.empty() || command.starts_with('-') ? "" : " " + command) << ": " << kind
                  << message << "\n";
        return code;
    };
    try {
        app.parse(argc, argv);
        // What a command printed is its result: lost output (a full disk, a closed pipe) is a failure.
        std::cout.flush();
        if (!std::cout.good() || std::fflush(stdout) != 0 || std::ferror(stdout))
            return error("error: ", std::string("cannot write the output to stdout (") + std::strerror(errno) + ")", 1);
        // A warning that could not be written is lost too; there is nowhere left to say so.
        if (!std::cerr.good() || std::fflush(stderr) != 0 || std::ferror(stderr)) return 1;
        return 0;
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        if (!app.get_subcommands().empty() || command.starts_with('-')) return error("", e.what(), 2);
        std::string names;
        for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
            names += (names.empty() ? "" : ", ") + sub->get_name();
        return error(
            "",
            (command.empty() ? "give a command: " : "unknown command \"" + command + "\"; expected one of ") + names,
            2);
    } catch (const cli::UsageError& e) {
        return error("", e.what(), 2);
    } catch (const inputrep::Error& e) {
        return error("error: ", e.what(), 1);
    } catch (const c10::Error& e) {
        return error("libtorch error: ", e.what_without_backtrace(), 1);
    } catch (const std::bad_alloc&) {
        return error("error: ", "out of memory (std::bad_alloc)", 1);
    } catch (const std::exception& e) {
        return error("error: ", e.what(), 1);
    }
}
