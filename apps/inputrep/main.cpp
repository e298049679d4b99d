// inputrep — the command line over the library: `inputrep COMMAND --help` for each command.
#include "program.hpp"

int main(int argc, char** argv) { return cli::main(argc, argv); }
