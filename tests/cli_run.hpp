#pragma once
// Running the inputrep program as a user runs it, for the cli and cli_reliability suites.
//
// A command line without shell syntax runs in a forked child of the test process, which calls the
// program's own main (cli::main, program.hpp) with stdout and stderr on a pipe and exits with its
// code: a process of its own, as a user's is, minus the second a new process takes to load libtorch
// (0.8 s of the 1.0 s a typical run took; 216 runs made the cli, cli_reliability and reliability
// suites). Commands after shell commands (`before`), with redirections or pipes, and any run when
// INPUTREP_CLI is set in the environment (another build of the program, e.g. an older one, to see a
// regression test fail there) go through the shell and the executable, as before.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wordexp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <inputrep/io/hf_config.hpp>

#include "common.hpp"
#include "program.hpp"

namespace testing {

struct Run {
    int status;  // the exit code, or -1 when the program died of a signal
    std::string out;
};

// The program's main in a forked child, stdout and stderr folded into one pipe; nullopt when `args`
// needs a shell (wordexp refuses |, &, ;, <, >, parentheses and braces unquoted; $(...) is not run),
// or when this process runs other threads (an OpenMP pool of libtorch's when the tests run outside
// CTest without OMP_NUM_THREADS=1), which a forked child would not have and could wait for.
inline std::optional<Run> run_cli_forked(const std::string& args) {
    const auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task"), {});
    if (threads != 1) return std::nullopt;
    wordexp_t words{};
    if (::wordexp(args.c_str(), &words, WRDE_NOCMD | WRDE_UNDEF) != 0) return std::nullopt;
    std::vector<std::string> argv_text{"inputrep"};
    for (std::size_t i = 0; i < words.we_wordc; ++i) argv_text.emplace_back(words.we_wordv[i]);
    ::wordfree(&words);
    std::cout.flush(), std::cerr.flush(), std::fflush(nullptr);  // nothing of ours is written twice
    int fds[2];
    BOOST_REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
        // Signals as a new process has them (Boost.Test catches them in the parent), the pipe as
        // stdout and stderr.
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGPIPE, SIGALRM, SIGTERM}) ::signal(sig, SIG_DFL);
        ::dup2(fds[1], STDOUT_FILENO), ::dup2(fds[1], STDERR_FILENO), ::close(fds[0]), ::close(fds[1]);
        std::vector<char*> argv;
        for (auto& a : argv_text) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int code = cli::main(static_cast<int>(argv_text.size()), argv.data());
        std::cout.flush(), std::cerr.flush(), std::fflush(nullptr);
        ::_exit(code);  // not the test process's atexit handlers
    }
    ::close(fds[1]);
    std::string out;
    std::array<char, 4096> buf;
    for (ssize_t n; (n = ::read(fds[0], buf.data(), buf.size())) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        BOOST_REQUIRE(n > 0);
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) BOOST_REQUIRE(errno == EINTR);
    return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs the CLI with `args` (shell-quoted by the caller) after the shell commands `before`; stderr
// is folded into out.
inline Run run_cli(const std::string& args, const std::string& before = "") {
    const char* program = std::getenv("INPUTREP_CLI");
    if (!program && before.empty())
        if (auto forked = run_cli_forked(args)) return *forked;
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
