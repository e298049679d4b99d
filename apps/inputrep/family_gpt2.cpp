// The inputrep program's commands for GPT-2 (one translation unit per family keeps the build parallel).
#include "family.hpp"

INPUTREP_CLI_FAMILY(GPT2)
