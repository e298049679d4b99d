#pragma once
// What built this program, for the provenance of its results (a sweep's lines): the project's
// version and the git commit its sources were at when it was built ("-dirty" with uncommitted
// changes, "unknown" outside a git checkout). build_info.cpp is generated from build_info.cpp.in at
// every build (cmake/build_info.cmake).
namespace cli::build_info {

extern const char* const version;
extern const char* const commit;

}  // namespace cli::build_info
