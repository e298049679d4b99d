# The dependencies of inputrep::inputrep, found the same way in the build tree and by
# find_package(inputrep) from an install prefix.
include(CMakeFindDependencyMacro)

# libtorch straight from a pip wheel's torch/ folder (include/, lib/), without TorchConfig.cmake:
# INPUTREP_TORCH_WHEEL_DIR (a CMake variable or an environment variable). TorchConfig of a CUDA
# wheel needs the CUDA toolkit (nvcc, FindCUDA) to configure although nothing here compiles CUDA;
# scripts/gpu-check falls back to this when that configure fails. The target is the one TorchConfig
# makes: `torch`, with TORCH_LIBRARIES, TORCH_CXX_FLAGS and, for a CUDA wheel, TORCH_CUDA_LIBRARIES.
if(NOT INPUTREP_TORCH_WHEEL_DIR AND DEFINED ENV{INPUTREP_TORCH_WHEEL_DIR})
  set(INPUTREP_TORCH_WHEEL_DIR "$ENV{INPUTREP_TORCH_WHEEL_DIR}")
endif()
if(NOT TARGET torch AND INPUTREP_TORCH_WHEEL_DIR)
  set(_inputrep_torch_lib "${INPUTREP_TORCH_WHEEL_DIR}/lib")
  foreach(_name torch torch_cpu c10)
    if(NOT EXISTS "${_inputrep_torch_lib}/lib${_name}.so")
      message(FATAL_ERROR "INPUTREP_TORCH_WHEEL_DIR=${INPUTREP_TORCH_WHEEL_DIR}: no lib/lib${_name}.so (expected a pip wheel's torch/ folder)")
    endif()
  endforeach()
  # The wheel's C++ ABI, as TorchConfig would set it (torch._C._GLIBCXX_USE_CXX11_ABI).
  if(NOT DEFINED INPUTREP_TORCH_CXX11_ABI AND DEFINED ENV{INPUTREP_TORCH_CXX11_ABI})
    set(INPUTREP_TORCH_CXX11_ABI "$ENV{INPUTREP_TORCH_CXX11_ABI}")
  elseif(NOT DEFINED INPUTREP_TORCH_CXX11_ABI)
    set(INPUTREP_TORCH_CXX11_ABI 1)
  endif()
  add_library(torch SHARED IMPORTED GLOBAL)
  set_target_properties(torch PROPERTIES
    IMPORTED_LOCATION "${_inputrep_torch_lib}/libtorch.so"
    INTERFACE_INCLUDE_DIRECTORIES "${INPUTREP_TORCH_WHEEL_DIR}/include;${INPUTREP_TORCH_WHEEL_DIR}/include/torch/csrc/api/include"
    INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${INPUTREP_TORCH_CXX11_ABI}")
  set(_inputrep_torch_link "${_inputrep_torch_lib}/libtorch_cpu.so;${_inputrep_torch_lib}/libc10.so")
  set(TORCH_CUDA_LIBRARIES "")
  if(EXISTS "${_inputrep_torch_lib}/libtorch_cuda.so")
    # Nothing here calls into torch_cuda, but loading it registers the CUDA kernels: keep it needed
    # (Ubuntu links --as-needed by default). Its CUDA libraries resolve through its own RUNPATH at
    # run time; at link time they may not be found beside it, hence --allow-shlib-undefined.
    set(TORCH_CUDA_LIBRARIES "${_inputrep_torch_lib}/libtorch_cuda.so;${_inputrep_torch_lib}/libc10_cuda.so")
    list(APPEND _inputrep_torch_link
      "-Wl,--no-as-needed,${_inputrep_torch_lib}/libtorch_cuda.so,${_inputrep_torch_lib}/libc10_cuda.so,--as-needed"
      "-Wl,--allow-shlib-undefined")
  endif()
  set_target_properties(torch PROPERTIES INTERFACE_LINK_LIBRARIES "${_inputrep_torch_link}")
  set(TORCH_LIBRARIES torch)
  set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${INPUTREP_TORCH_CXX11_ABI}")
  set(Torch_FOUND TRUE)
  message(STATUS "inputrep: libtorch taken directly from ${INPUTREP_TORCH_WHEEL_DIR} (ABI ${INPUTREP_TORCH_CXX11_ABI}, CUDA: ${TORCH_CUDA_LIBRARIES})")
endif()
if(NOT TARGET torch)
  find_dependency(Torch)
endif()
find_dependency(xtensor)
find_dependency(range-v3)
find_dependency(nlohmann_json)
# {fmt} formats the reports. Used header-only (fmt::fmt-header-only, FMT_HEADER_ONLY) as the
# library itself is: a consumer or a machine the headers are carried to (scripts/gpu-check) needs
# no libfmt.so at run time, and the few TUs that write reports pay about a second for it.
find_dependency(fmt 9)
if(NOT TARGET PkgConfig::inputrep_PCRE2)
  # GPT-2's pre-tokeniser needs \p{L}/\p{N} and a lookahead: PCRE2, not std::regex. pkg-config
  # where there is one (Debian); otherwise, or when it does not know libpcre2-8 (a machine without
  # PCRE2's development files, given a prefix of copied ones on CMAKE_PREFIX_PATH: scripts/gpu-check),
  # pcre2.h and libpcre2-8 found directly. Either way the target has the same name.
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(inputrep_PCRE2 QUIET IMPORTED_TARGET GLOBAL libpcre2-8)
  endif()
  if(NOT TARGET PkgConfig::inputrep_PCRE2)
    find_path(INPUTREP_PCRE2_INCLUDE_DIR pcre2.h)
    find_library(INPUTREP_PCRE2_LIBRARY NAMES pcre2-8)
    if(NOT INPUTREP_PCRE2_INCLUDE_DIR OR NOT INPUTREP_PCRE2_LIBRARY)
      set(inputrep_FOUND FALSE)
      set(inputrep_NOT_FOUND_MESSAGE "PCRE2 (libpcre2-8 and pcre2.h) not found: install libpcre2-dev, or put a prefix holding include/pcre2.h and lib/libpcre2-8.* on CMAKE_PREFIX_PATH")
      if(NOT CMAKE_FIND_PACKAGE_NAME STREQUAL "inputrep")  # the build tree itself, not find_package(inputrep)
        message(FATAL_ERROR "${inputrep_NOT_FOUND_MESSAGE}")
      endif()
      return()
    endif()
    add_library(PkgConfig::inputrep_PCRE2 INTERFACE IMPORTED GLOBAL)
    set_target_properties(PkgConfig::inputrep_PCRE2 PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${INPUTREP_PCRE2_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${INPUTREP_PCRE2_LIBRARY}")
  endif()
endif()
