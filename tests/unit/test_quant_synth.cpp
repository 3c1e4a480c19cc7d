// tools/synth_model: a 1-2 layer model is written, opened with GgufFile, its shapes, types, metadata and
// weight statistics checked; the same seed gives the same bytes whatever the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf_file.h"
#include "quant/quant_ref.h"

using namespace minnow;
namespace fs = std::filesystem;

namespace {

const std::string kVocab = std::string(MINNOW_SHARED_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("minnow_synth_" + std::to_string(::getpid()) + "_" + name)).string();
}

int synth(const std::string& args) {
  const std::string cmd = std::string(MINNOW_BIN_DIR) + "/synth_model " + args + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

std::vector<char> bytes_of(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void expect_shape(const GgufFile& f, const std::string& name, std::vector<int64_t> ne, GgmlType type) {
  const GgufTensorInfo* t = f.find_tensor(name);
  ASSERT_NE(t, nullptr) << name;
  ASSERT_EQ(t->n_dims, ne.size()) << name;
  for (size_t d = 0; d < ne.size(); ++d) EXPECT_EQ(t->ne[d], ne[d]) << name << " dim " << d;
  EXPECT_EQ(t->type, type) << name;
}

}  // namespace

class Synth : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(MINNOW_BIN_DIR) + "/synth_model")) GTEST_SKIP() << "synth_model not built";
    if (!fs::exists(kVocab)) GTEST_SKIP() << kVocab << " absent";
  }
};

TEST_F(Synth, SmolLM2ShapeTwoLayers) {
  const std::string out = tmp_path("a.gguf");
  ASSERT_EQ(synth("--preset smollm2-135m --layers 2 --type Q4_K_M -t 3 --seed 7 --vocab " + kVocab + " -o " + out), 0);
  auto f = GgufFile::open(out);
  EXPECT_EQ(f->require_string("general.architecture"), "llama");
  EXPECT_EQ(f->require_int("llama.block_count"), 2);
  EXPECT_EQ(f->require_int("llama.embedding_length"), 576);
  EXPECT_EQ(f->require_int("llama.feed_forward_length"), 1536);
  EXPECT_EQ(f->require_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f->require_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f->require_int("llama.rope.dimension_count"), 64);
  EXPECT_DOUBLE_EQ(f->require_float("llama.rope.freq_base"), 100000.0);
  EXPECT_NEAR(f->require_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_EQ(f->require_int("general.file_type"), 15);
  // Tokenizer copied whole; the vocab size comes from it (32000 here, not SmolLM2's 49152).
  auto vocab = GgufFile::open(kVocab);
  for (auto& [k, v] : vocab->metadata()) {
    if (k.rfind("tokenizer.", 0) != 0) continue;
    const GgufValue* w = f->find(k);
    ASSERT_NE(w, nullptr) << k;
    EXPECT_EQ(w->display(1000000), v.display(1000000)) << k;
  }
  const int64_t nv = static_cast<int64_t>(f->find("tokenizer.ggml.tokens")->array_size());
  EXPECT_EQ(nv, 32000);
  // Tied output; 576-wide rows fall back from K-quants as llama.cpp does.
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  expect_shape(*f, "token_embd.weight", {576, nv}, GgmlType::Q8_0);
  expect_shape(*f, "output_norm.weight", {576}, GgmlType::F32);
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect_shape(*f, b + "attn_norm.weight", {576}, GgmlType::F32);
    expect_shape(*f, b + "ffn_norm.weight", {576}, GgmlType::F32);
    expect_shape(*f, b + "attn_q.weight", {576, 576}, GgmlType::Q5_0);
    expect_shape(*f, b + "attn_k.weight", {576, 192}, GgmlType::Q5_0);
    // llama.cpp's use_more_bits(l, 2) holds for layer 1 only: Q6_K there (Q8_0 as the 576-wide fallback).
    expect_shape(*f, b + "attn_v.weight", {576, 192}, l == 1 ? GgmlType::Q8_0 : GgmlType::Q5_0);
    expect_shape(*f, b + "attn_output.weight", {576, 576}, GgmlType::Q5_0);
    expect_shape(*f, b + "ffn_gate.weight", {576, 1536}, GgmlType::Q5_0);
    expect_shape(*f, b + "ffn_up.weight", {576, 1536}, GgmlType::Q5_0);
    expect_shape(*f, b + "ffn_down.weight", {1536, 576}, l == 1 ? GgmlType::Q6_K : GgmlType::Q4_K);
  }
  EXPECT_EQ(f->tensors().size(), 2u + 2u * 9u);
  // Norms are ones; matrices are gaussian with std 0.02 and mean 0.
  std::vector<float> norm(576);
  dequantize_row_ref(GgmlType::F32, f->find_tensor("blk.1.ffn_norm.weight")->data, norm.data(), 576);
  for (float v : norm) ASSERT_EQ(v, 1.0f);
  const GgufTensorInfo* q = f->find_tensor("blk.0.ffn_down.weight");
  std::vector<float> w(static_cast<size_t>(q->n_elements()));
  const size_t rb = row_bytes(q->type, q->ne[0]);
  for (int64_t r = 0; r < q->ne[1]; ++r) dequantize_row_ref(q->type, q->data + r * rb, w.data() + r * q->ne[0], q->ne[0]);
  double s = 0, s2 = 0;
  for (float v : w) {
    s += v;
    s2 += static_cast<double>(v) * v;
  }
  const double mean = s / static_cast<double>(w.size()), sd = std::sqrt(s2 / static_cast<double>(w.size()) - mean * mean);
  EXPECT_NEAR(sd, 0.02, 0.001);
  EXPECT_NEAR(mean, 0.0, 0.0005);
  fs::remove(out);
}

TEST_F(Synth, DeterministicAcrossThreadCountsAndSeedsDiffer) {
  const std::string a = tmp_path("d1.gguf"), b = tmp_path("d2.gguf"), c = tmp_path("d3.gguf");
  const std::string common = " --preset smollm2-135m --layers 1 --type Q4_0 --vocab " + kVocab;
  ASSERT_EQ(synth(common + " --seed 5 -t 1 -o " + a), 0);
  ASSERT_EQ(synth(common + " --seed 5 -t 4 -o " + b), 0);
  ASSERT_EQ(synth(common + " --seed 6 -t 4 -o " + c), 0);
  EXPECT_TRUE(bytes_of(a) == bytes_of(b));
  EXPECT_FALSE(bytes_of(a) == bytes_of(c));
  fs::remove(a);
  fs::remove(b);
  fs::remove(c);
}

TEST_F(Synth, TinyLlamaPresetHasSeparateOutput) {
  const std::string out = tmp_path("t.gguf");
  ASSERT_EQ(synth("--preset tinyllama-1.1b --layers 1 --type Q8_0 -t 4 --vocab " + kVocab + " -o " + out), 0);
  auto f = GgufFile::open(out);
  EXPECT_EQ(f->require_int("llama.attention.head_count"), 32);
  EXPECT_EQ(f->require_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f->require_int("llama.context_length"), 2048);
  expect_shape(*f, "output.weight", {2048, 32000}, GgmlType::Q8_0);
  expect_shape(*f, "blk.0.attn_k.weight", {2048, 256}, GgmlType::Q8_0);
  expect_shape(*f, "blk.0.ffn_down.weight", {5632, 2048}, GgmlType::Q8_0);
  fs::remove(out);
}

TEST_F(Synth, BadArgumentsFailCleanly) {
  EXPECT_NE(synth("--preset nope --vocab " + kVocab + " -o " + tmp_path("x.gguf")), 0);
  EXPECT_NE(synth("--preset smollm2-135m --vocab /nonexistent.gguf -o " + tmp_path("x.gguf")), 0);
  EXPECT_NE(synth("--preset smollm2-135m --type Q9_9 --vocab " + kVocab + " -o " + tmp_path("x.gguf")), 0);
  EXPECT_NE(synth("--preset smollm2-135m --layers 0 --vocab " + kVocab + " -o " + tmp_path("x.gguf")), 0);
  EXPECT_NE(synth("--preset smollm2-135m --llama3-rope --vocab " + kVocab + " -o " + tmp_path("x.gguf")), 0);
  EXPECT_FALSE(fs::exists(tmp_path("x.gguf")));
}
