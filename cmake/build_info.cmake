# Writes the program's build_info.cpp with the commit the sources are at now (git describe --dirty),
# run at every build rather than at configure time: a table made by this build names the commit
# that has the options its rows use. The file is rewritten only when the text changes, so a build
# at the same commit recompiles nothing.
#   cmake -DSOURCE_DIR=... -DINPUT=build_info.cpp.in -DOUTPUT=build_info.cpp -DPROJECT_VERSION=... -P build_info.cmake
execute_process(COMMAND git describe --always --dirty --abbrev=12 WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE INPUTREP_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE git_status ERROR_QUIET)
if(NOT git_status EQUAL 0 OR INPUTREP_GIT_COMMIT STREQUAL "")
  set(INPUTREP_GIT_COMMIT unknown)
endif()
configure_file(${INPUT} ${OUTPUT} @ONLY)  # leaves the file untouched when its text is the same
