# Compiles one translation unit (syntax only) and checks the outcome.
#   -DCOMPILER=... -DFLAGS="a|b|c" -DSOURCE=file.cpp -DEXPECT=pass|fail
# With EXPECT=fail the compile must fail AND its diagnostics must match every
# "// expect-error: REGEX" line of SOURCE; with EXPECT=pass it must succeed.
# Only the diagnostic lines count ("file:line:col: error|note|warning: ..."), never the
# source lines the compiler echoes under them: a regex that matched the echoed failing line
# would pass whatever the error was (a typo, say).
string(REPLACE "|" ";" flags "${FLAGS}")
execute_process(
  COMMAND "${COMPILER}" ${flags} -fsyntax-only "${SOURCE}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)

if(EXPECT STREQUAL "pass")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to compile, but it failed:\n${out}")
  endif()
  message(STATUS "compiled as expected: ${SOURCE}")
  return()
endif()

file(STRINGS "${SOURCE}" expectations REGEX "^// expect-error: ")
if(NOT expectations)
  message(FATAL_ERROR "${SOURCE} has no '// expect-error: REGEX' line")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "expected ${SOURCE} to fail to compile, but it compiled")
endif()
string(REGEX MATCHALL "[^\n]*:[0-9]+:[0-9]+: (fatal error|error|note|warning): [^\n]*" diagnostic_lines "${out}")
string(JOIN "\n" diagnostics ${diagnostic_lines})
foreach(line IN LISTS expectations)
  string(REGEX REPLACE "^// expect-error: " "" regex "${line}")
  if(NOT diagnostics MATCHES "${regex}")
    message(FATAL_ERROR "the compile failed, but no diagnostic matches /${regex}/:\n${out}")
  endif()
  message(STATUS "failed as expected, matching /${regex}/")
endforeach()
