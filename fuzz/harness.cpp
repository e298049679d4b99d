// libFuzzer's entry point for one target, chosen at compile time (-DINPUTREP_FUZZ_TARGET=name).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    inputrep::fuzz::INPUTREP_FUZZ_TARGET(data, size);
    return 0;
}
