#pragma once
// Running the inputrep program as a user runs it, for the cli and cli_reliability suites.
// INPUTREP_CLI in the environment runs another build of the program (e.g. an older one, to see a
// regression test fail there).
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <boost/test/unit_test.hpp>

#include <inputrep/io/hf_config.hpp>

#include "common.hpp"

namespace testing {

struct Run {
    int status;  // the exit code, or -1 when the program died of a signal
    std::string out;
};

// Runs the CLI with `args` (shell-quoted by the caller) after the shell commands `before`; stderr
// is folded into out.
inline Run run_cli(const std::string& args, const std::string& before = "") {
    const char* program = std::getenv("INPUTREP_CLI");
    std::string command = before + "'" + (program ? program : INPUTREP_CLI) + "' " + args + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    BOOST_REQUIRE(pipe);
    std::string out;
    std::array<char, 4096> buf;
    while (auto n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline inputrep::Json cli_json(const std::string& args) {
    auto r = run_cli(args + " --json");
    BOOST_TEST_INFO(args << " -> " << r.out);
    BOOST_REQUIRE_EQUAL(r.status, 0);
    return inputrep::Json::parse(r.out);
}

inline std::string vocab() { return "--vocab '" + gpt2_vocab_dir().string() + "'"; }

// A mistake in the command line: exit 2 and one line.
inline bool one_line_error(const Run& r, int status = 2) {
    return r.status == status && std::count(r.out.begin(), r.out.end(), '\n') == 1;
}

}  // namespace testing
