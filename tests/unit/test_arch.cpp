// The architecture layer: each architecture file maps its keys and tensors onto the canonical description
// (ModelFeatures, LayerSpec, LayerWeights) as ../shared/README.md documents the tiny golden models; the
// registry names unsupported architectures; a missing tensor is named and an unexpected one refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
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

std::string shared_model(const std::string& arch) {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return std::string(e && *e ? e : MINNOW_SHARED_DIR) + "/models/" + arch + "-tiny.gguf";
}

std::unique_ptr<Model> load_or_skip(const std::string& arch) {
  const std::string p = shared_model(arch);
  if (!std::filesystem::exists(p)) return nullptr;
  return Model::load(p);
}

// Rewrites a shared model with edits to metadata and/or tensors; returns the new path.
std::string rewrite(const std::string& arch, const std::function<void(GgufWriter&)>& edit_meta,
                    const std::function<bool(const GgufTensorInfo&, GgufWriter&)>& edit_tensor = nullptr) {
  auto f = GgufFile::open(shared_model(arch));
  GgufWriter w(f->alignment());
  for (const auto& [k, v] : f->metadata()) w.copy_value(k, v);
  edit_meta(w);
  for (const auto& t : f->tensors()) {
    if (edit_tensor && edit_tensor(t, w)) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    w.add_tensor(t.name, t.type, ne, t.data, t.nbytes);
  }
  const std::string p =
      (std::filesystem::temp_directory_path() / ("minnow_arch_" + std::to_string(::getpid()) + "_" + arch)).string();
  w.write(p);
  return p;
}

std::string load_error(const std::string& path) {
  std::string e;
  try {
    Model::load(path);
  } catch (const Error& err) {
    e = err.what();
  }
  std::filesystem::remove(path);
  return e;
}

#define SKIP_WITHOUT(m)                                   \
  if (!(m)) GTEST_SKIP() << "shared tiny models not found"

}  // namespace

TEST(Arch, Llama3LoadsRopeFreqs) {
  auto m = load_or_skip("llama3");
  SKIP_WITHOUT(m);
  const auto& p = m->params();
  EXPECT_EQ(p.features.rope, RopeStyle::Adjacent);
  EXPECT_TRUE(p.features.rope_freq_factors);
  ASSERT_NE(m->rope_freqs.data, nullptr);
  EXPECT_EQ(m->rope_freqs.ne[0], p.n_rot / 2);
  EXPECT_TRUE(m->output_tied);
  EXPECT_DOUBLE_EQ(p.layer[0].rope_freq_base, 500000.0);
}

TEST(Arch, Qwen2BiasesAndNeox) {
  auto m = load_or_skip("qwen2");
  SKIP_WITHOUT(m);
  const auto& p = m->params();
  EXPECT_EQ(p.features.rope, RopeStyle::NeoX);
  EXPECT_TRUE(p.features.qkv_bias);
  EXPECT_FALSE(p.features.o_bias);
  for (const auto& L : m->layers) {
    ASSERT_NE(L.bq.data, nullptr);
    EXPECT_EQ(L.bk.ne[0], p.k_dim());
    EXPECT_EQ(L.bo.data, nullptr);
  }
}

TEST(Arch, Qwen3HeadDimFromKeyLength) {
  auto m = load_or_skip("qwen3");
  SKIP_WITHOUT(m);
  const auto& p = m->params();
  EXPECT_EQ(p.head_dim_k, 64);  // n_embd / n_head would be 32
  EXPECT_EQ(p.q_dim(), 256);
  EXPECT_TRUE(p.features.qk_norm);
  EXPECT_EQ(m->layers[3].attn_q_norm.ne[0], 64);
  EXPECT_DOUBLE_EQ(p.features.attn_scale, 1.0 / 8.0);
}

TEST(Arch, Gemma3QuirksAndSlidingPattern) {
  auto m = load_or_skip("gemma3");
  SKIP_WITHOUT(m);
  const auto& p = m->params();
  const auto& f = p.features;
  EXPECT_EQ(f.act, GatedAct::GeluTanh);
  EXPECT_TRUE(f.qk_norm && f.post_attn_norm && f.post_ffn_norm);
  EXPECT_DOUBLE_EQ(f.embd_scale, std::sqrt(128.0));
  EXPECT_TRUE(m->output_tied);
  // pattern 4: layers 0-2 local (window 16, base 1e4), layer 3 global (base 1e6).
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(p.layer[static_cast<size_t>(l)].sliding_window, 16) << l;
    EXPECT_DOUBLE_EQ(p.layer[static_cast<size_t>(l)].rope_freq_base, 10000.0) << l;
  }
  EXPECT_EQ(p.layer[3].sliding_window, 0);
  EXPECT_DOUBLE_EQ(p.layer[3].rope_freq_base, 1e6);
  // Without the pattern key, llama.cpp's default of 6 applies: all 4 layers are local.
  const std::string q = rewrite("gemma3", [](GgufWriter& w) { w.remove("gemma3.attention.sliding_window_pattern"); });
  {
    auto g = Model::load(q);
    for (const auto& ls : g->params().layer) EXPECT_EQ(ls.sliding_window, 16);
  }
  std::filesystem::remove(q);
}

TEST(Arch, Phi3FusedTensorsBecomeViews) {
  auto m = load_or_skip("phi3");
  SKIP_WITHOUT(m);
  const auto& p = m->params();
  EXPECT_EQ(p.features.rope, RopeStyle::NeoX);
  for (const auto& L : m->layers) {
    EXPECT_EQ(L.attn_q.ne[1], p.q_dim());
    EXPECT_EQ(L.attn_k.data, L.attn_q.data + static_cast<size_t>(p.q_dim()) * L.attn_q.row_stride());
    EXPECT_EQ(L.attn_v.data, L.attn_k.data + static_cast<size_t>(p.k_dim()) * L.attn_k.row_stride());
    EXPECT_EQ(L.ffn_gate.ne[1], p.n_ff);
    EXPECT_EQ(L.ffn_up.data, L.ffn_gate.data + static_cast<size_t>(p.n_ff) * L.ffn_gate.row_stride());
  }
}

TEST(Arch, UnsupportedArchitectureNamesTheSupportedOnes) {
  if (!std::filesystem::exists(shared_model("qwen2"))) GTEST_SKIP();
  const std::string e = load_error(rewrite("qwen2", [](GgufWriter& w) { w.set_string("general.architecture", "mamba"); }));
  EXPECT_NE(e.find("unsupported architecture 'mamba'"), std::string::npos) << e;
  for (const char* a : {"llama", "qwen2", "qwen3", "gemma3", "phi3"}) EXPECT_NE(e.find(a), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(Arch, MissingTensorNamedUnexpectedRefused) {
  if (!std::filesystem::exists(shared_model("qwen2"))) GTEST_SKIP();
  std::string e = load_error(rewrite("qwen2", [](GgufWriter&) {}, [](const GgufTensorInfo& t, GgufWriter&) {
    return t.name == "blk.2.attn_v.bias";
  }));
  EXPECT_NE(e.find("missing tensor blk.2.attn_v.bias"), std::string::npos) << e;
  e = load_error(rewrite("gemma3", [](GgufWriter&) {}, [](const GgufTensorInfo& t, GgufWriter&) {
    return t.name == "blk.1.post_ffw_norm.weight";
  }));
  EXPECT_NE(e.find("blk.1.post_ffw_norm.weight"), std::string::npos) << e;
  // A bias on layer 3 only (layer 0 has none): an unexpected tensor.
  e = load_error(rewrite("qwen3", [](GgufWriter&) {}, [](const GgufTensorInfo& t, GgufWriter& w) {
    if (t.name == "blk.3.attn_norm.weight") {
      std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
      w.add_tensor("blk.3.attn_output.bias", t.type, ne, t.data, t.nbytes);
    }
    return false;
  }));
  EXPECT_NE(e.find("unexpected tensor blk.3.attn_output.bias"), std::string::npos) << e;
  // Phi-3's fused QKV of the wrong height.
  e = load_error(rewrite("phi3", [](GgufWriter& w) { w.set_u32("phi3.attention.head_count_kv", 4); }));
  EXPECT_NE(e.find("attn_qkv.weight"), std::string::npos) << e;
}

namespace {

// Logits of `tokens` fed to slot `seq` in chunks of the given sizes (cycled), every token's row wanted.
std::vector<float> feed(Backend& be, const std::vector<int32_t>& tokens, int seq, const std::vector<int>& chunks,
                        int32_t pos0 = 0) {
  std::vector<float> out;
  size_t i = 0, c = 0;
  while (i < tokens.size()) {
    Batch b;
    const size_t end = std::min(tokens.size(), i + static_cast<size_t>(chunks[c++ % chunks.size()]));
    for (; i < end; ++i) b.add(tokens[i], pos0 + static_cast<int32_t>(i), seq, true);
    be.forward(b, out);
  }
  return out;
}

std::vector<int32_t> some_tokens(size_t n, uint32_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((seed * 2654435761u + i * 40503u) % 31000u + 3));
  return t;
}

}  // namespace

// Issue 12's sliding-window memory: the gemma3 model's local layers (window 16) keep a ring of 16 + 64
// positions when n_ctx is larger; results must be bitwise those of a cache that keeps every position
// (n_ctx = 80: the ring would be as large as the context, so it is not used), at any chunking, including
// chunks longer than the window and the ring, with two slots in one batch, after seq_clear and on restarts.
TEST(Arch, SlidingWindowRingEqualsFullCacheBitwise) {
  auto m = load_or_skip("gemma3");
  SKIP_WITHOUT(m);
  BackendOptions full, ringo;
  full.n_ctx = 80;
  ringo.n_ctx = 4096;
  full.n_seq_max = ringo.n_seq_max = 2;
  full.n_threads = ringo.n_threads = 1;
  auto a = make_backend(*m, full, "cpu");
  auto b = make_backend(*m, ringo, "cpu");
  // f16 K and V rows of 64 values, 2 slots: 3 local layers keep 16 + 64 positions, the global one 4096.
  EXPECT_EQ(b->kv_cache_bytes(), size_t{2} * (64 + 64) * 2 * (3 * 80 + 4096));
  const auto toks = some_tokens(78, 7);
  const std::vector<float> ref = feed(*a, toks, 0, {78});
  for (const std::vector<int>& chunks : std::vector<std::vector<int>>{{78}, {1}, {5, 17, 1}, {33, 45}, {16, 16, 3}}) {
    b->seq_clear(0);
    const auto got = feed(*b, toks, 0, chunks);
    ASSERT_EQ(got, ref) << "chunks " << chunks[0];
  }
  // Two slots in one batch, interleaved, each as alone.
  const auto toks2 = some_tokens(60, 9);
  a->seq_clear(1);
  const auto ref2 = feed(*a, toks2, 1, {60});
  b->seq_clear(0);
  b->seq_clear(1);
  std::vector<float> mixed;
  for (size_t i = 0; i < 60; i += 20) {
    Batch bt;
    for (size_t j = i; j < i + 20; ++j) {
      bt.add(toks[j], static_cast<int32_t>(j), 0, true);
      bt.add(toks2[j], static_cast<int32_t>(j), 1, true);
    }
    b->forward(bt, mixed);
  }
  const int64_t nv = m->params().n_vocab;
  for (size_t j = 0; j < 60; ++j) {
    ASSERT_TRUE(std::equal(mixed.begin() + static_cast<std::ptrdiff_t>((2 * j) * nv),
                           mixed.begin() + static_cast<std::ptrdiff_t>((2 * j + 1) * nv),
                           ref.begin() + static_cast<std::ptrdiff_t>(j * nv))) << j;
    ASSERT_TRUE(std::equal(mixed.begin() + static_cast<std::ptrdiff_t>((2 * j + 1) * nv),
                           mixed.begin() + static_cast<std::ptrdiff_t>((2 * j + 2) * nv),
                           ref2.begin() + static_cast<std::ptrdiff_t>(j * nv))) << j;
  }
  // Restart slot 0 (length 60) at 50: within the ring's slack, same as the full cache.
  EXPECT_EQ(b->seq_min_restart(0), 0);  // 60 positions: the ring (80) still holds all
  const std::vector<int32_t> tail(toks.begin() + 50, toks.end());
  const auto got_tail = feed(*b, tail, 0, {7}, 50);
  ASSERT_TRUE(std::equal(got_tail.begin(), got_tail.end(), ref.begin() + static_cast<std::ptrdiff_t>(50 * nv)));
  // A long slot can no longer restart far back: one clear error, and restarting at 0 still works.
  const auto long_toks = some_tokens(300, 11);
  b->seq_clear(1);
  feed(*b, long_toks, 1, {128});
  const int32_t floor = b->seq_min_restart(1);
  EXPECT_EQ(floor, 300 - 80 + 16 - 1);
  Batch bad;
  bad.add(long_toks[10], 10, 1, true);
  std::vector<float> out;
  EXPECT_THROW(b->forward(bad, out), Error);
  Batch ok;
  ok.add(long_toks[floor], floor, 1, true);
  EXPECT_NO_THROW(b->forward(ok, out));
  b->seq_clear(1);
  EXPECT_EQ(b->seq_min_restart(1), 0);
}
