// GgufFile on the real reference files. Expected values are what PyPI's `gguf` package (GGUFReader)
// reports for these files; tests/py/test_gguf_info.py compares every key and tensor the same way.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"
#include "gguf/gguf_file.h"

using namespace minnow;

static std::string shared_dir() {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return e && *e ? e : MINNOW_SHARED_DIR;
}

static std::string tiny_model() { return shared_dir() + "/models/tiny-llama-q4km.gguf"; }

TEST(GgufReader, TinyLlamaHeaderAndMetadata) {
  if (!std::filesystem::exists(tiny_model())) GTEST_SKIP() << "no " << tiny_model();
  auto f = GgufFile::open(tiny_model());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->metadata().size(), 25u);  // gguf reports 28 fields, 3 of them the header's
  EXPECT_EQ(f->tensors().size(), 39u);
  EXPECT_EQ(f->data_offset(), 726688u);
  EXPECT_EQ(f->require_string("general.architecture"), "llama");
  EXPECT_EQ(f->require_int("llama.block_count"), 4);
  EXPECT_EQ(f->require_int("llama.embedding_length"), 256);
  EXPECT_EQ(f->require_float("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f->require_string("tokenizer.ggml.model"), "llama");
  EXPECT_FALSE(f->get_int("general.alignment").has_value());
  EXPECT_THROW(f->require_int("no.such.key"), Error);
  EXPECT_THROW(f->get_int("general.architecture"), Error);  // a string, not an integer

  const GgufValue* toks = f->find("tokenizer.ggml.tokens");
  ASSERT_NE(toks, nullptr);
  EXPECT_EQ(toks->type(), GgufValueType::ARRAY);
  EXPECT_EQ(toks->array_type(), GgufValueType::STRING);
  EXPECT_EQ(toks->array_size(), 32000u);
  EXPECT_EQ(toks->at(1).as_string(), "<s>");
  EXPECT_EQ(toks->at(2).as_string(), "</s>");
  EXPECT_THROW(toks->at(32000), Error);
}

TEST(GgufReader, TinyLlamaTensorDirectory) {
  if (!std::filesystem::exists(tiny_model())) GTEST_SKIP() << "no " << tiny_model();
  auto f = GgufFile::open(tiny_model());
  const GgufTensorInfo* out = f->find_tensor("output.weight");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->type, GgmlType::Q6_K);
  EXPECT_EQ(out->n_dims, 2u);
  EXPECT_EQ(out->ne[0], 256);
  EXPECT_EQ(out->ne[1], 32000);
  EXPECT_EQ(out->ne[2], 1);
  EXPECT_EQ(out->nbytes, 6720000u);
  EXPECT_EQ(out->data, f->data_section() + out->offset);
  EXPECT_EQ(f->data_offset() + out->offset, 726688u);

  const GgufTensorInfo* norm = f->find_tensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, GgmlType::F32);
  EXPECT_EQ(norm->n_dims, 1u);
  EXPECT_EQ(norm->ne[0], 256);
  EXPECT_EQ(norm->nbytes, 1024u);
  EXPECT_EQ(f->data_offset() + norm->offset, 7446688u);

  const GgufTensorInfo* down = f->find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->type, GgmlType::Q4_K);
  EXPECT_EQ(down->ne[0], 768);
  EXPECT_EQ(down->ne[1], 256);
  EXPECT_EQ(down->nbytes, 110592u);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);

  for (auto& t : f->tensors()) {
    EXPECT_EQ(t.offset % f->alignment(), 0u) << t.name;
    EXPECT_LE(f->data_offset() + t.offset + t.nbytes, f->file_size()) << t.name;
  }
}

TEST(GgufReader, VocabFilesHaveNoTensors) {
  const char* names[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "deepseek-coder"};
  int opened = 0;
  for (const char* n : names) {
    std::string path = shared_dir() + "/vocab/ggml-vocab-" + n + ".gguf";
    if (!std::filesystem::exists(path)) continue;
    auto f = GgufFile::open(path);
    ++opened;
    EXPECT_EQ(f->tensors().size(), 0u) << path;
    EXPECT_TRUE(f->version() == 2 || f->version() == 3) << path;
    const GgufValue* toks = f->find("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr) << path;
    EXPECT_GT(toks->array_size(), 1000u) << path;
    EXPECT_TRUE(f->get_string("tokenizer.ggml.model").has_value()) << path;
  }
  if (opened == 0) GTEST_SKIP() << "no vocab files under " << shared_dir();
}

TEST(GgufReader, LlamaSpmScoresAndTypes) {
  std::string path = shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->file_size(), 723869u);
  EXPECT_EQ(f->require_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f->require_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f->get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f->get_bool("tokenizer.ggml.add_eos_token"), false);
  const GgufValue* scores = f->find("tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(scores->array_type(), GgufValueType::FLOAT32);
  EXPECT_EQ(scores->array_size(), 32000u);
  ASSERT_NE(scores->array_raw(), nullptr);
  float s5;
  std::memcpy(&s5, scores->array_raw() + 500 * 4, 4);
  EXPECT_EQ(static_cast<double>(s5), scores->at(500).as_float());
  const GgufValue* types = f->find("tokenizer.ggml.token_type");
  ASSERT_NE(types, nullptr);
  EXPECT_EQ(types->array_type(), GgufValueType::INT32);
  EXPECT_EQ(types->at(0).as_int(), 2);  // <unk>: UNKNOWN
  EXPECT_EQ(types->at(1).as_int(), 3);  // <s>: CONTROL
  EXPECT_EQ(types->at(3).as_int(), 6);  // <0x00>: BYTE
}

TEST(GgufReader, RejectsMissingAndNonRegularFiles) {
  EXPECT_THROW(GgufFile::open("/nonexistent/file.gguf"), Error);
  EXPECT_THROW(GgufFile::open("/tmp"), Error);
  auto empty = std::filesystem::temp_directory_path() / "minnow_test_empty.gguf";
  { std::ofstream(empty).flush(); }
  try {
    GgufFile::open(empty.string());
    ADD_FAILURE() << "empty file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
  std::filesystem::remove(empty);
}
