# Template-engine robustness tooling (issue 18): the Jinja engine alone as a small library (cheap to build
# under sanitizers), its libFuzzer target, the jinja gtests under -DMINNOW_ASAN=ON without building all of
# minnow_core, and the ctest entry that fuzzes it for a bounded time.
file(GLOB MINNOW_JINJA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/chat/jinja*.cpp)
add_library(minnow_jinja_only STATIC EXCLUDE_FROM_ALL ${MINNOW_JINJA_SOURCES} ${CMAKE_SOURCE_DIR}/src/chat/chat_template.cpp)
target_include_directories(minnow_jinja_only PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR})
target_compile_options(minnow_jinja_only PRIVATE ${MINNOW_WARN})
target_link_libraries(minnow_jinja_only PUBLIC minnow_gguf_only nlohmann_json::nlohmann_json PkgConfig::UTF8PROC)

if(MINNOW_ASAN)
  find_package(GTest REQUIRED)
  foreach(name test_jinja test_jinja_budget)
    add_executable(${name}_asan ${CMAKE_SOURCE_DIR}/tests/unit/${name}.cpp)
    target_compile_options(${name}_asan PRIVATE ${MINNOW_WARN})
    target_link_libraries(${name}_asan PRIVATE minnow_jinja_only GTest::gtest GTest::gtest_main)
    add_test(NAME ${name}_asan COMMAND ${name}_asan)
  endforeach()
endif()

if(MINNOW_FUZZ)
  target_compile_options(minnow_jinja_only PRIVATE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_executable(jinja_fuzz ${CMAKE_SOURCE_DIR}/fuzz/jinja_fuzz.cpp)
  target_compile_options(jinja_fuzz PRIVATE ${MINNOW_WARN} -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
  target_link_options(jinja_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(jinja_fuzz PRIVATE minnow_jinja_only)
endif()

if(MINNOW_TESTS AND NOT MINNOW_FUZZ AND NOT MINNOW_ASAN)
  add_test(NAME jinja_fuzz
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/asan/run_jinja_fuzz.sh ${CMAKE_BINARY_DIR}/jinja-fuzz)
  set_tests_properties(jinja_fuzz PROPERTIES
    ENVIRONMENT "MINNOW_SHARED_DIR=${MINNOW_SHARED_DIR};MINNOW_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    SKIP_RETURN_CODE 77 TIMEOUT 900 RUN_SERIAL TRUE)
endif()
