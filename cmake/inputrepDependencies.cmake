# The dependencies of inputrep::inputrep, found the same way in the build tree and by
# find_package(inputrep) from an install prefix.
include(CMakeFindDependencyMacro)
if(NOT TARGET torch)
  find_dependency(Torch)
endif()
find_dependency(xtensor)
find_dependency(range-v3)
find_dependency(nlohmann_json)
find_dependency(PkgConfig)
if(NOT TARGET PkgConfig::inputrep_PCRE2)
  # GPT-2's pre-tokeniser needs \p{L}/\p{N} and a lookahead: PCRE2, not std::regex.
  pkg_check_modules(inputrep_PCRE2 REQUIRED IMPORTED_TARGET GLOBAL libpcre2-8)
endif()
