# Robustness tooling. GGUF (issue 2, scope 1): a small library with only the GGUF reader, an in-process
# checker, an `info`-only minnow binary (cheap to rebuild under AddressSanitizer), the libFuzzer target.
# OpenAI request bodies (issue 18): the parsers alone, a corpus checker, a libFuzzer target. And the ctest
# entries that build and run them.
set(MINNOW_GGUF_ONLY_SOURCES
    ${CMAKE_SOURCE_DIR}/src/gguf/gguf_file.cpp ${CMAKE_SOURCE_DIR}/src/gguf/gguf_parser.cpp
    ${CMAKE_SOURCE_DIR}/src/gguf/gguf_value.cpp ${CMAKE_SOURCE_DIR}/src/gguf/gguf_writer.cpp
    ${CMAKE_SOURCE_DIR}/src/quant/ggml_type.cpp ${CMAKE_SOURCE_DIR}/src/common/args.cpp)
add_library(minnow_gguf_only STATIC ${MINNOW_GGUF_ONLY_SOURCES})
target_include_directories(minnow_gguf_only PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR})
target_compile_options(minnow_gguf_only PRIVATE ${MINNOW_WARN})
target_link_libraries(minnow_gguf_only PUBLIC nlohmann_json::nlohmann_json)

add_executable(gguf_check ${CMAKE_SOURCE_DIR}/fuzz/gguf_check.cpp)
target_compile_options(gguf_check PRIVATE ${MINNOW_WARN})
target_link_libraries(gguf_check PRIVATE minnow_gguf_only)

add_executable(minnow_info_only ${CMAKE_SOURCE_DIR}/app/main.cpp ${CMAKE_SOURCE_DIR}/app/cmd_info.cpp)
target_compile_options(minnow_info_only PRIVATE ${MINNOW_WARN})
target_link_libraries(minnow_info_only PRIVATE minnow_gguf_only)
set_target_properties(minnow_info_only PROPERTIES OUTPUT_NAME minnow-info)

# The OpenAI request parsers alone (issue 18): what the JSON request fuzzer and its corpus checker need.
add_library(minnow_openai_only STATIC ${CMAKE_SOURCE_DIR}/src/server/openai_api.cpp)
target_include_directories(minnow_openai_only PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR})
target_compile_options(minnow_openai_only PRIVATE ${MINNOW_WARN})
target_link_libraries(minnow_openai_only PUBLIC nlohmann_json::nlohmann_json)

# openai_request_check FILE...: each file as a request body through the parsers, in-process (see the header).
add_executable(openai_request_check ${CMAKE_SOURCE_DIR}/fuzz/openai_request_check.cpp)
target_compile_options(openai_request_check PRIVATE ${MINNOW_WARN})
target_link_libraries(openai_request_check PRIVATE minnow_openai_only)

# Under -DMINNOW_ASAN=ON, the in-process malformed-file gtest against the reader alone (no need to build
# all of minnow_core with sanitizers).
if(MINNOW_ASAN)
  find_package(GTest REQUIRED)
  add_executable(gguf_malformed_gtest ${CMAKE_SOURCE_DIR}/tests/unit/test_gguf_malformed.cpp)
  target_compile_options(gguf_malformed_gtest PRIVATE ${MINNOW_WARN})
  target_link_libraries(gguf_malformed_gtest PRIVATE minnow_gguf_only GTest::gtest GTest::gtest_main)
  target_compile_definitions(gguf_malformed_gtest PRIVATE MINNOW_SHARED_DIR="${MINNOW_SHARED_DIR}")
endif()

# The fuzzer needs clang: configure a build dir with CXX=clang++ -DMINNOW_FUZZ=ON, build gguf_fuzz.
option(MINNOW_FUZZ "Build the libFuzzer target gguf_fuzz (clang only)" OFF)
if(MINNOW_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MINNOW_FUZZ needs clang++ (CXX=clang++)")
  endif()
  target_compile_options(minnow_gguf_only PRIVATE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_executable(gguf_fuzz ${CMAKE_SOURCE_DIR}/fuzz/gguf_fuzz.cpp)
  target_compile_options(gguf_fuzz PRIVATE ${MINNOW_WARN} -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
  target_link_options(gguf_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(gguf_fuzz PRIVATE minnow_gguf_only)
  target_compile_options(minnow_openai_only PRIVATE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_executable(openai_request_fuzz ${CMAKE_SOURCE_DIR}/fuzz/openai_request_fuzz.cpp)
  target_compile_options(openai_request_fuzz PRIVATE ${MINNOW_WARN} -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
  target_link_options(openai_request_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(openai_request_fuzz PRIVATE minnow_openai_only)
endif()

find_package(Python3 COMPONENTS Interpreter)
if(MINNOW_TESTS AND NOT MINNOW_FUZZ AND NOT MINNOW_ASAN)
  # Each script configures its own build dir under this one and builds only the few targets it needs.
  add_test(NAME gguf_asan_malformed
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/asan/run_malformed_asan.sh ${CMAKE_BINARY_DIR}/gguf-asan)
  add_test(NAME gguf_fuzz
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/asan/run_fuzz.sh ${CMAKE_BINARY_DIR}/gguf-fuzz)
  add_test(NAME openai_request_fuzz
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/asan/run_openai_fuzz.sh ${CMAKE_BINARY_DIR}/gguf-fuzz)
  set_tests_properties(gguf_asan_malformed gguf_fuzz openai_request_fuzz PROPERTIES
    ENVIRONMENT "MINNOW_SHARED_DIR=${MINNOW_SHARED_DIR};MINNOW_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHON=${Python3_EXECUTABLE}"
    SKIP_RETURN_CODE 77 TIMEOUT 900 RUN_SERIAL TRUE)
endif()
