// The inputrep program's commands for Mixer (one translation unit per family keeps the build parallel).
#include "family.hpp"

INPUTREP_CLI_FAMILY(Mixer)
