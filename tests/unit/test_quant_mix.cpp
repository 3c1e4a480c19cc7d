// Per-tensor type choice of `minnow quantize`, checked against a file made by llama.cpp's llama-quantize
// (../shared/models/tiny-llama-q4km.gguf) and against llama.cpp's rules worked out by hand.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "quant/quant_mix.h"

using namespace minnow;

namespace {

// Type of one tensor under a target for a Llama model of n_layer layers (2-D, rows of ne0).
GgmlType pick(MixPlanner& p, const std::string& name, int64_t ne0 = 2048) {
  return p.choose(name, 2, ne0, GgmlType::F16);
}

std::string blk(int i, const char* what) { return "blk." + std::to_string(i) + "." + what + ".weight"; }

}  // namespace

TEST(QuantMix, MatchesLlamaQuantizeOnTheReferenceFile) {
  const std::string path = std::string(MINNOW_SHARED_DIR) + "/models/tiny-llama-q4km.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  auto f = GgufFile::open(path);
  MixModelInfo info{f->require_int("llama.block_count"), f->require_int("llama.attention.head_count"),
                    f->require_int("llama.attention.head_count_kv"), f->find_tensor("output.weight") != nullptr};
  MixPlanner planner(parse_quant_target("Q4_K_M"), info);
  int n = 0;
  for (const auto& t : f->tensors()) {
    // Pretend the input was F16 (F32 for 1-D): the choice must reproduce llama-quantize's.
    const GgmlType in = t.n_dims == 1 ? GgmlType::F32 : GgmlType::F16;
    EXPECT_EQ(planner.choose(t.name, t.n_dims, t.ne[0], in), t.type) << t.name;
    ++n;
  }
  EXPECT_GT(n, 30);
}

TEST(QuantMix, UseMoreBitsForTinyLlamasLayerCount) {
  // n=22: first eighth (0,1), last eighth (19,20,21), and every third layer from 2: 4, 7, 10, 13, 16.
  std::set<int64_t> want{0, 1, 4, 7, 10, 13, 16, 19, 20, 21}, got;
  for (int64_t i = 0; i < 22; ++i)
    if (use_more_bits(i, 22)) got.insert(i);
  EXPECT_EQ(got, want);
}

TEST(QuantMix, Q4_K_M_On22Layers) {
  MixPlanner p(parse_quant_target("q4_k_m"), MixModelInfo{22, 32, 4, true});
  EXPECT_EQ(pick(p, "token_embd.weight"), GgmlType::Q4_K);
  EXPECT_EQ(pick(p, "output.weight"), GgmlType::Q6_K);
  for (int i = 0; i < 22; ++i) {
    const bool more = i < 2 || i >= 19 || (i - 2) % 3 == 2;
    EXPECT_EQ(pick(p, blk(i, "attn_v")), more ? GgmlType::Q6_K : GgmlType::Q4_K) << i;
    EXPECT_EQ(pick(p, blk(i, "ffn_down"), 5632), more ? GgmlType::Q6_K : GgmlType::Q4_K) << i;
    EXPECT_EQ(pick(p, blk(i, "attn_q")), GgmlType::Q4_K);
    EXPECT_EQ(pick(p, blk(i, "ffn_up")), GgmlType::Q4_K);
    EXPECT_EQ(p.choose(blk(i, "attn_norm"), 1, 2048, GgmlType::F32), GgmlType::F32);
  }
  EXPECT_EQ(p.choose("output_norm.weight", 1, 2048, GgmlType::F32), GgmlType::F32);
}

TEST(QuantMix, OtherMixes) {
  {  // Q3_K_M, 32 layers: attn_v Q5_K in the first 2 layers else Q4_K; ffn_down Q5_K below n/16 else Q4_K;
     // attn_output Q4_K; the rest Q3_K.
    MixPlanner p(parse_quant_target("Q3_K"), MixModelInfo{32, 32, 8, true});
    EXPECT_EQ(pick(p, "token_embd.weight"), GgmlType::Q3_K);
    for (int i = 0; i < 32; ++i) {
      EXPECT_EQ(pick(p, blk(i, "attn_v")), i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << i;
      EXPECT_EQ(pick(p, blk(i, "ffn_down")), i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << i;
      EXPECT_EQ(pick(p, blk(i, "attn_output")), GgmlType::Q4_K);
      EXPECT_EQ(pick(p, blk(i, "ffn_gate")), GgmlType::Q3_K);
    }
  }
  {  // Q4_K_S, 16 layers: attn_v Q5_K in layers 0..3, ffn_down Q5_K in layers 0..1.
    MixPlanner p(parse_quant_target("Q4_K_S"), MixModelInfo{16, 32, 8, false});
    EXPECT_EQ(pick(p, "token_embd.weight"), GgmlType::Q6_K);  // tied: the embedding is the output
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(pick(p, blk(i, "attn_v")), i < 4 ? GgmlType::Q5_K : GgmlType::Q4_K) << i;
      EXPECT_EQ(pick(p, blk(i, "ffn_down"), 8192), i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << i;
    }
  }
  {  // Q2_K with GQA 8: attn_v Q4_K, ffn_down and attn_output Q3_K. With GQA 1: attn_v Q3_K.
    MixPlanner p(parse_quant_target("Q2_K"), MixModelInfo{8, 32, 4, true});
    EXPECT_EQ(pick(p, blk(3, "attn_v")), GgmlType::Q4_K);
    EXPECT_EQ(pick(p, blk(3, "ffn_down")), GgmlType::Q3_K);
    EXPECT_EQ(pick(p, blk(3, "attn_output")), GgmlType::Q3_K);
    EXPECT_EQ(pick(p, blk(3, "attn_k")), GgmlType::Q2_K);
    MixPlanner p1(parse_quant_target("Q2_K"), MixModelInfo{8, 8, 8, true});
    EXPECT_EQ(pick(p1, blk(3, "attn_v")), GgmlType::Q3_K);
  }
  {  // Legacy types: output.weight still gets Q6_K (Q8_0 stays Q8_0); everything else the type itself.
    MixPlanner p(parse_quant_target("Q4_0"), MixModelInfo{4, 8, 2, true});
    EXPECT_EQ(pick(p, "output.weight"), GgmlType::Q6_K);
    EXPECT_EQ(pick(p, blk(0, "attn_v")), GgmlType::Q4_0);
    EXPECT_EQ(pick(p, blk(0, "ffn_down")), GgmlType::Q4_0);
    MixPlanner p8(parse_quant_target("Q8_0"), MixModelInfo{4, 8, 2, true});
    EXPECT_EQ(pick(p8, "output.weight"), GgmlType::Q8_0);
  }
  {  // Float targets quantize nothing into blocks.
    MixPlanner p(parse_quant_target("F16"), MixModelInfo{4, 8, 2, true});
    EXPECT_EQ(p.choose("output.weight", 2, 100, GgmlType::F32), GgmlType::F16);
    EXPECT_EQ(p.choose("blk.0.attn_norm.weight", 1, 100, GgmlType::F32), GgmlType::F32);
  }
}

TEST(QuantMix, FallbacksForRowsNotMultipleOf256) {
  // SmolLM2-135M: 576-wide rows. Q4_K -> Q5_0, Q6_K -> Q8_0; the tied embedding (output) -> Q8_0.
  MixPlanner p(parse_quant_target("Q4_K_M"), MixModelInfo{30, 9, 3, false});
  EXPECT_EQ(pick(p, "token_embd.weight", 576), GgmlType::Q8_0);
  EXPECT_EQ(pick(p, blk(0, "attn_q"), 576), GgmlType::Q5_0);
  EXPECT_EQ(pick(p, blk(0, "attn_v"), 576), GgmlType::Q8_0);
  EXPECT_EQ(pick(p, blk(3, "attn_v"), 576), GgmlType::Q5_0);
  EXPECT_EQ(pick(p, blk(0, "ffn_down"), 1536), GgmlType::Q6_K);
  EXPECT_EQ(pick(p, blk(3, "ffn_down"), 1536), GgmlType::Q4_K);
  MixPlanner p5(parse_quant_target("Q5_K_S"), MixModelInfo{30, 9, 3, true});
  EXPECT_EQ(pick(p5, blk(3, "ffn_up"), 576), GgmlType::Q5_1);
  MixPlanner p3(parse_quant_target("Q3_K_S"), MixModelInfo{30, 9, 3, true});
  EXPECT_EQ(pick(p3, blk(3, "ffn_up"), 576), GgmlType::Q4_0);
  EXPECT_EQ(pick(p3, blk(3, "ffn_up"), 100), GgmlType::F16);  // not even a multiple of 32
  EXPECT_GT(p.fallbacks(), 0);
}

TEST(QuantMix, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_quant_target("Q4_K").name, "Q4_K_M");
  EXPECT_EQ(parse_quant_target("Q5_K").name, "Q5_K_M");
  EXPECT_EQ(parse_quant_target("Q3_K").name, "Q3_K_M");
  EXPECT_EQ(static_cast<int>(parse_quant_target("Q4_K_M").ftype), 15);
  EXPECT_EQ(static_cast<int>(parse_quant_target("Q8_0").ftype), 7);
  EXPECT_EQ(parse_quant_target("q6_k").default_type, GgmlType::Q6_K);
  EXPECT_THROW(parse_quant_target("Q7_K"), Error);
  EXPECT_THROW(parse_quant_target("IQ4_NL"), Error);
  EXPECT_THROW(parse_quant_target(""), Error);
}
