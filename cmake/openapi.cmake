# openapi.cmake — writes OUT, Grove's whole OpenAPI document: DOCS/openapi.yaml
# (the platform's routes and the shared components; `paths:` is its last
# top-level key) followed by the paths of every app's fragment,
# DOCS/<app>.yaml, in name order (the lines after each fragment's `paths:`).
# Run at every build (cmake -P); OUT is rewritten only when it changed.
file(READ "${DOCS}/openapi.yaml" doc)
file(GLOB fragments "${DOCS}/*.yaml")
list(REMOVE_ITEM fragments "${DOCS}/openapi.yaml")
list(SORT fragments)
foreach(f ${fragments})
  file(READ "${f}" text)
  string(FIND "${text}" "\npaths:\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${f}: an app's fragment holds `paths:` and nothing else at the top")
  endif()
  math(EXPR at "${at} + 8")
  string(SUBSTRING "${text}" ${at} -1 paths)
  string(APPEND doc "${paths}")
endforeach()
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL doc)
  file(WRITE "${OUT}" "${doc}")
endif()
