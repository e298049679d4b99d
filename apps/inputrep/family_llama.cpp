// The inputrep program's commands for Llama and Mistral (one translation unit per family keeps the build parallel).
#include "commands.hpp"

namespace cli {
INPUTREP_CLI_DEFINE(Llama)
}
