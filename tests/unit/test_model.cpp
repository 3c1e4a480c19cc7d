// Model loading (hyperparameters, shape/type checks, clear errors) and CPU backend properties:
// KV-cache consistency (incremental == batched), batch invariance across sequences, batch validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/backend_factory.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/model.h"

using namespace minnow;

namespace {

std::string tiny_path() {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return std::string(e && *e ? e : MINNOW_SHARED_DIR) + "/models/tiny-llama-q4km.gguf";
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("minnow_model_" + std::to_string(::getpid()) + "_" + name)).string();
}

// Rewrites the tiny model with an edit applied to metadata and/or tensors; returns the new path.
std::string rewrite(const std::string& name, const std::function<void(GgufWriter&)>& edit_meta,
                    const std::function<bool(const GgufTensorInfo&, GgufWriter&)>& edit_tensor = nullptr) {
  auto f = GgufFile::open(tiny_path());
  GgufWriter w(f->alignment());
  for (const auto& [k, v] : f->metadata()) w.copy_value(k, v);
  edit_meta(w);
  for (const auto& t : f->tensors()) {
    if (edit_tensor && edit_tensor(t, w)) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    w.add_tensor(t.name, t.type, ne, t.data, t.nbytes);
  }
  const std::string p = temp_path(name);
  w.write(p);
  return p;
}

std::string load_error(const std::string& path) {
  try {
    Model::load(path);
  } catch (const Error& e) {
    std::filesystem::remove(path);
    return e.what();
  }
  std::filesystem::remove(path);
  return "";
}

std::vector<int32_t> random_tokens(int n, int64_t n_vocab, uint64_t seed) {
  std::mt19937_64 r(seed);
  std::uniform_int_distribution<int32_t> D(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = D(r);
  return t;
}

}  // namespace

TEST(Model, LoadsTinyLlamaHyperparameters) {
  auto m = Model::load(tiny_path());
  const auto& p = m->params();
  // The values documented for this file in shared/README.md.
  EXPECT_EQ(p.n_layer, 4);
  EXPECT_EQ(p.n_embd, 256);
  EXPECT_EQ(p.n_head, 8);
  EXPECT_EQ(p.n_head_kv, 2);
  EXPECT_EQ(p.n_ff, 768);
  EXPECT_EQ(p.n_vocab, 32000);
  EXPECT_EQ(p.head_dim_k, 32);
  EXPECT_DOUBLE_EQ(p.rope_freq_base, 10000.0);
  EXPECT_NEAR(p.rms_eps, 1e-5, 1e-9);
  EXPECT_FALSE(m->output_tied);
  EXPECT_EQ(m->layers.size(), 4u);
  EXPECT_EQ(m->output.type, GgmlType::Q6_K);
  EXPECT_EQ(m->layers[0].attn_k.ne[1], 64);
}

TEST(Model, ClearErrors) {
  EXPECT_NE(load_error(rewrite("arch", [](GgufWriter& w) { w.set_string("general.architecture", "gpt2"); }))
                .find("unsupported architecture"),
            std::string::npos);
  {
    // With a changed architecture name the keys are looked up under the new prefix.
    std::string e = load_error(rewrite("nolayers", [](GgufWriter& w) { w.remove("llama.block_count"); }));
    EXPECT_NE(e.find("llama.block_count"), std::string::npos) << e;
  }
  {
    std::string e = load_error(rewrite("width", [](GgufWriter& w) { w.set_u32("llama.embedding_length", 512); }));
    EXPECT_NE(e.find("token_embd.weight"), std::string::npos) << e;
  }
  {
    std::string e = load_error(rewrite("kv", [](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 4); }));
    EXPECT_NE(e.find("attn_k.weight"), std::string::npos) << e;
  }
  {
    std::string e = load_error(rewrite("yarn", [](GgufWriter& w) {
      w.set_string("llama.rope.scaling.type", "yarn");
      w.set_f32("llama.rope.scaling.factor", 4.0f);
    }));
    EXPECT_NE(e.find("yarn"), std::string::npos) << e;
  }
  {
    std::string e = load_error(rewrite("missing", [](GgufWriter&) {},
                                       [](const GgufTensorInfo& t, GgufWriter&) { return t.name == "blk.2.ffn_up.weight"; }));
    EXPECT_NE(e.find("blk.2.ffn_up.weight"), std::string::npos) << e;
  }
}

TEST(Model, TiedOutputUsesEmbedding) {
  const std::string p = rewrite("tied", [](GgufWriter&) {},
                                [](const GgufTensorInfo& t, GgufWriter&) { return t.name == "output.weight"; });
  auto m = Model::load(p);
  EXPECT_TRUE(m->output_tied);
  EXPECT_EQ(m->output.data, m->token_embd.data);
  std::filesystem::remove(p);
}

TEST(Model, LinearRopeScalingReadsFactor) {
  const std::string p = rewrite("linear", [](GgufWriter& w) {
    w.set_string("llama.rope.scaling.type", "linear");
    w.set_f32("llama.rope.scaling.factor", 4.0f);
  });
  auto m = Model::load(p);
  EXPECT_DOUBLE_EQ(m->params().rope_freq_scale, 0.25);
  std::filesystem::remove(p);
}

TEST(Backend, IncrementalEqualsBatched) {
  auto m = Model::load(tiny_path());
  const int64_t nv = m->params().n_vocab;
  const auto toks = random_tokens(23, nv, std::random_device{}());
  BackendOptions o;
  o.n_ctx = 64;
  o.n_threads = 2;
  auto be = make_backend(*m, o, "cpu");
  Batch all;
  for (size_t i = 0; i < toks.size(); ++i) all.add(toks[i], static_cast<int32_t>(i), 0, true);
  std::vector<float> batched;
  be->forward(all, batched);
  ASSERT_EQ(batched.size(), toks.size() * static_cast<size_t>(nv));

  be->seq_clear(0);
  std::vector<float> inc;
  Batch prompt;  // first 9 tokens as one batch, then one at a time
  for (int i = 0; i < 9; ++i) prompt.add(toks[i], i, 0, i == 8);
  be->forward(prompt, inc);
  for (size_t i = 9; i < toks.size(); ++i) {
    Batch b;
    b.add(toks[i], static_cast<int32_t>(i), 0, true);
    be->forward(b, inc);
  }
  ASSERT_EQ(inc.size(), (toks.size() - 8) * static_cast<size_t>(nv));
  double maxdiff = 0;
  for (size_t r = 8; r < toks.size(); ++r)
    for (int64_t j = 0; j < nv; ++j)
      maxdiff = std::max(maxdiff, static_cast<double>(std::fabs(batched[r * nv + j] - inc[(r - 8) * nv + j])));
  std::printf("incremental vs batched: max |logit diff| = %g\n", maxdiff);
  EXPECT_LE(maxdiff, 1e-3);
}

TEST(Backend, TwoSequencesInOneBatchEqualEachAlone) {
  auto m = Model::load(tiny_path());
  const int64_t nv = m->params().n_vocab;
  const uint64_t seed = std::random_device{}();
  const auto a = random_tokens(11, nv, seed), b = random_tokens(6, nv, seed + 1);
  BackendOptions o;
  o.n_ctx = 32;
  o.n_seq_max = 2;
  o.n_threads = 2;
  auto be = make_backend(*m, o, "cpu");
  std::vector<float> la, lb, mixed;
  Batch ba, bb, bm;
  for (size_t i = 0; i < a.size(); ++i) ba.add(a[i], static_cast<int32_t>(i), 0, true);
  for (size_t i = 0; i < b.size(); ++i) bb.add(b[i], static_cast<int32_t>(i), 1, true);
  be->forward(ba, la);
  be->forward(bb, lb);
  be->seq_clear(0);
  be->seq_clear(1);
  // Interleave: b's tokens between a's.
  std::vector<std::pair<int, size_t>> order;  // (which, index)
  size_t ia = 0, ib = 0;
  while (ia < a.size() || ib < b.size()) {
    if (ia < a.size()) order.push_back({0, ia++});
    if (ia < a.size()) order.push_back({0, ia++});
    if (ib < b.size()) order.push_back({1, ib++});
  }
  for (auto [w, i] : order) bm.add(w == 0 ? a[i] : b[i], static_cast<int32_t>(i), w, true);
  be->forward(bm, mixed);
  for (size_t r = 0; r < order.size(); ++r) {
    auto [w, i] = order[r];
    const float* ref = (w == 0 ? la.data() : lb.data()) + i * nv;
    for (int64_t j = 0; j < nv; ++j) ASSERT_EQ(mixed[r * nv + j], ref[j]) << "row " << r << " id " << j;
  }
  // Continuing one sequence while the other is cleared and refilled does not disturb it.
  std::vector<float> cont1, cont2;
  Batch c;
  c.add(a[0], static_cast<int32_t>(a.size()), 0, true);
  be->forward(c, cont1);
  Batch c2;
  c2.add(a[0], static_cast<int32_t>(a.size()), 0, true);  // same position again: overwrite, same result
  be->seq_clear(1);
  Batch refill;
  refill.add(b[0], 0, 1, false);
  be->forward(refill, cont2);
  be->forward(c2, cont2);
  ASSERT_EQ(cont1.size(), cont2.size());
  for (int64_t j = 0; j < nv; ++j) ASSERT_EQ(cont1[j], cont2[j]);
}

TEST(Backend, RejectsBadBatches) {
  auto m = Model::load(tiny_path());
  BackendOptions o;
  o.n_ctx = 8;
  o.n_threads = 1;
  auto be = make_backend(*m, o, "cpu");
  std::vector<float> out;
  auto expect_error = [&](Batch b) { EXPECT_THROW(be->forward(b, out), Error); };
  Batch b1;
  b1.add(static_cast<int32_t>(m->params().n_vocab), 0, 0, true);
  expect_error(b1);
  Batch b2;
  b2.add(1, -1, 0, true);
  expect_error(b2);
  Batch b3;
  b3.add(1, 3, 0, true);  // gap: the slot is empty
  expect_error(b3);
  Batch b4;
  b4.add(1, 0, 1, true);  // only one slot
  expect_error(b4);
  Batch b5;
  for (int i = 0; i < 9; ++i) b5.add(1, i, 0, false);  // past n_ctx
  expect_error(b5);
  Batch b6;
  b6.add(1, 0, 0, false);
  b6.add(1, 0, 0, false);
  expect_error(b6);
  EXPECT_TRUE(out.empty());
  EXPECT_THROW(make_backend(*m, o, "tpu"), Error);
#ifndef MINNOW_HAVE_CUDA
  EXPECT_THROW(make_backend(*m, o, "cuda"), Error);
#endif
}

TEST(Model, ParamDefaultsAndRequiredKeys) {
  // Optional keys fall back to llama.cpp's defaults: head_count_kv = head_count, rope.dimension_count =
  // head size, rope.freq_base = 10000. Read from metadata only (no tensors involved).
  const std::string p = rewrite("defaults", [](GgufWriter& w) {
    w.remove("llama.attention.head_count_kv");
    w.remove("llama.rope.dimension_count");
    w.remove("llama.rope.freq_base");
    w.set_u32("llama.attention.head_count", 4);
  });
  {
    auto f = GgufFile::open(p);
    ModelParams lp = ModelParams::from_gguf(*f);
    EXPECT_EQ(lp.n_head, 4);
    EXPECT_EQ(lp.n_head_kv, 4);
    EXPECT_EQ(lp.head_dim_k, 64);
    EXPECT_EQ(lp.n_rot, 64);
    EXPECT_DOUBLE_EQ(lp.rope_freq_base, 10000.0);
  }
  std::filesystem::remove(p);
  for (const char* key : {"llama.attention.layer_norm_rms_epsilon", "llama.feed_forward_length",
                          "llama.context_length", "llama.embedding_length", "tokenizer.ggml.tokens"}) {
    const std::string q = rewrite("req", [&](GgufWriter& w) { w.remove(key); });
    std::string e = load_error(q);
    EXPECT_NE(e.find(key), std::string::npos) << key << ": " << e;
  }
  const std::string bad = rewrite("gqa", [](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 3); });
  EXPECT_NE(load_error(bad).find("head_count_kv"), std::string::npos);
}
