# Compiles one translation unit (syntax only) and checks the outcome.
#   -DCOMPILER=... -DFLAGS="a|b|c" -DSOURCE=file.cpp -DEXPECT=pass|fail
# With EXPECT=fail the compile must fail AND its output must match every
# "// expect-error: REGEX" line of SOURCE; with EXPECT=pass it must succeed.
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
foreach(line IN LISTS expectations)
  string(REGEX REPLACE "^// expect-error: " "" regex "${line}")
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "the compile failed, but not with /${regex}/:\n${out}")
  endif()
  message(STATUS "failed as expected, matching /${regex}/")
endforeach()
