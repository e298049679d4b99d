// inputrep — the command line over the library: `inputrep COMMAND --help` for each command.
#include <malloc.h>

#include "program.hpp"

int main(int argc, char** argv) {
    // glibc raises its mmap threshold to the largest block freed (up to 32 MiB), after which a
    // model's 16-32 MiB tensors and the band temporaries of 8-bit products come from the heap and
    // leave holes it cannot give back: 0.4 GB more peak memory on a 7B-shaped model in int8
    // (docs/quantization.md). A fixed 1 MiB threshold maps every large tensor and unmaps it when freed.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    return cli::main(argc, argv);
}
