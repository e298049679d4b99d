#pragma once
// The inputrep program as a function: main.cpp calls it, and the tests call it in a forked child
// (tests/cli_run.hpp), which runs what a user's process runs, without loading libtorch again.
namespace cli {

// Parses argv, runs the command and returns the exit code (0 success, 2 a mistake in the command
// line, 1 bad input or a failed run), having said why on stderr.
int main(int argc, char** argv);

}  // namespace cli
