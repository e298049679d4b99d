#pragma once
// What built this program, for the provenance of its results (a sweep's lines): the project's
// version and the git commit CMake found when it configured the build ("unknown" outside a git
// checkout). build_info.cpp is generated from build_info.cpp.in.
namespace cli::build_info {

extern const char* const version;
extern const char* const commit;

}  // namespace cli::build_info
