// Malformed GGUF images through GgufFile::open_memory / open, in-process: every one must be rejected with
// minnow::Error (never another exception type, never a crash), and every accepted one must be safe to walk.
// tests/py/test_gguf_malformed.py runs the file-based cases through `minnow info`; the ASan ctest entry
// runs both under AddressSanitizer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "common/error.h"
#include "fuzz/gguf_exercise.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

using namespace minnow;
using Bytes = std::vector<uint8_t>;

namespace {

std::string shared_dir() {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return e && *e ? e : MINNOW_SHARED_DIR;
}

uint32_t fresh_seed() {
  const char* e = std::getenv("MINNOW_GGUF_SEED");
  return e && *e ? static_cast<uint32_t>(std::strtoul(e, nullptr, 10)) : std::random_device{}();
}

// Little-endian byte builder for hand-made files.
struct B {
  Bytes b;
  B& u32(uint32_t v) { return raw(&v, 4); }
  B& u64(uint64_t v) { return raw(&v, 8); }
  B& u8(uint8_t v) { return raw(&v, 1); }
  B& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  B& raw(const void* p, size_t n) {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  B& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  B& pad(size_t a = 32) { return zeros((a - b.size() % a) % a); }
  B& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    raw("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  B& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
};

constexpr uint64_t kBig = uint64_t{1} << 63;
constexpr uint64_t kMax = ~uint64_t{0};
constexpr uint32_t kStr = 8, kArr = 9, kU8 = 0, kU32 = 4, kBool = 7;

// Result of opening an image: "ok", "error", or "other: <what>" for a wrong exception type.
std::string try_open(const Bytes& img, std::string* message = nullptr) {
  try {
    auto f = GgufFile::open_memory(img, "img");
    volatile uint64_t sink = exercise(*f);
    (void)sink;
    return "ok";
  } catch (const Error& e) {
    std::string m = e.what();
    if (message) *message = m;
    if (m.find('\n') != std::string::npos) return "other: multi-line message " + m;
    if (m.rfind("img: ", 0) != 0) return "other: message does not name the file: " + m;
    return "error";
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
}

// A small model-shaped file (the tiny model's metadata with short arrays, its tensor names and types
// with small shapes), so thousands of corrupted copies are cheap.
Bytes small_model(std::mt19937& rng) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_array_string("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
  w.set_array_f32("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
  w.set_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  struct T { const char* name; GgmlType type; std::vector<int64_t> ne; };
  const T ts[] = {{"token_embd.weight", GgmlType::Q4_K, {256, 2}}, {"output_norm.weight", GgmlType::F32, {7}},
                  {"blk.0.attn_q.weight", GgmlType::Q6_K, {256, 1}}, {"blk.0.ffn_up.weight", GgmlType::Q8_0, {64, 3}},
                  {"x.4d", GgmlType::F16, {3, 2, 1, 2}}};
  for (auto& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    Bytes data(row_bytes(t.type, n));
    for (auto& x : data) x = static_cast<uint8_t>(rng());
    w.add_tensor(t.name, t.type, t.ne, data.data(), data.size());
  }
  return w.to_bytes();
}

}  // namespace

TEST(GgufMalformed, HandmadeFilesAreRejected) {
  std::vector<std::pair<std::string, Bytes>> cases;
  auto add = [&](std::string name, const B& b) { cases.emplace_back(std::move(name), b.b); };
  add("empty", B{});
  {
    B h;
    h.header(0, 0).b.resize(23);
    add("short header", h);
  }
  add("bad magic", B{}.raw("GGML", 4).u32(3).u64(0).u64(0));
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u, 0xffffffffu}) add("version " + std::to_string(v), B{}.header(0, 0, v).zeros(8));
  add("tensor count 2^63", B{}.header(kBig, 0).zeros(64));
  add("tensor count max", B{}.header(kMax, 0).zeros(64));
  add("kv count 2^63", B{}.header(0, kBig).zeros(64));
  add("kv count one too many", B{}.header(0, 2).str("k").u32(kU8).u8(1));
  add("key length 2^63", B{}.header(0, 1).u64(kBig).zeros(32));
  add("key length max", B{}.header(0, 1).u64(kMax).zeros(32));
  add("value type 13", B{}.header(0, 1).str("k").u32(13).zeros(16));
  add("value type max", B{}.header(0, 1).str("k").u32(0xffffffffu).zeros(16));
  add("string length 2^63", B{}.header(0, 1).str("k").u32(kStr).u64(kBig).zeros(16));
  add("string length max", B{}.header(0, 1).str("k").u32(kStr).u64(kMax).zeros(16));
  for (uint32_t et : {kU8, kU32, kStr, kArr})
    for (uint64_t n : {kBig, kMax, uint64_t{1} << 40})
      add("array length " + std::to_string(n), B{}.header(0, 1).str("k").u32(kArr).u32(et).u64(n).zeros(32));
  add("array element type 13", B{}.header(0, 1).str("k").u32(kArr).u32(13).u64(1).zeros(16));
  {
    B b;
    b.header(0, 1).str("k").u32(kArr);
    for (int i = 0; i < 100; ++i) b.u32(kArr).u64(1);
    b.u32(kU8).u64(0);
    add("arrays nested 100 deep", b);
  }
  {
    uint64_t n = (uint64_t{1} << 23) + 1;  // over the reader's cap on array elements per file
    add("array elements over the cap", B{}.header(0, 1).str("k").u32(kArr).u32(kU8).u64(n).zeros(n));
  }
  add("bool 2", B{}.header(0, 1).str("k").u32(kBool).u8(2));
  add("duplicate key", B{}.header(0, 2).str("k").u32(kU8).u8(1).str("k").u32(kU8).u8(2));
  for (uint32_t al : {0u, 3u, 48u})
    add("alignment " + std::to_string(al),
        B{}.header(1, 1).str("general.alignment").u32(kU32).u32(al).tensor("a", {8}, 0, 0).pad().zeros(32));
  add("alignment string", B{}.header(0, 1).str("general.alignment").u32(kStr).str("32"));
  auto one = [&](std::string name, std::vector<uint64_t> ne, uint32_t type, uint64_t off, size_t data = 64) {
    add(name, B{}.header(1, 0).tensor("a", std::move(ne), type, off).pad().zeros(data));
  };
  one("n_dims 0", {}, 0, 0);
  one("n_dims 5", {1, 1, 1, 1, 8}, 0, 0);
  one("dim 0", {8, 0}, 0, 0);
  one("dim 2^63", {kBig}, 0, 0);
  one("dims overflow", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0);
  one("dims overflow 4d", {1 << 16, 1 << 16, 1 << 16, 1 << 16}, 0, 0);
  one("bytes overflow", {uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0);
  for (uint32_t t : {4u, 5u, 16u, 29u, 39u, 1000u, 0xffffffffu}) one("type " + std::to_string(t), {32}, t, 0, 256);
  one("row not whole blocks", {33, 2}, 2, 0, 256);
  one("offset misaligned", {8}, 0, 4);
  one("offset past end", {8}, 0, 1 << 20);
  one("offset 2^63", {8}, 0, kBig);
  one("offset wraps", {8}, 0, kMax - 31);
  one("data truncated", {32}, 0, 0, 127);
  add("overlap", B{}.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad().zeros(128));
  add("overlap same", B{}.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(128));
  add("duplicate tensor", B{}.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad().zeros(128));
  add("data section past end", B{}.header(1, 0).tensor("a", {1}, 0, 0));

  for (auto& [name, img] : cases) EXPECT_EQ(try_open(img), "error") << name;
  // And the builder makes valid files when asked to.
  EXPECT_EQ(try_open(B{}.header(1, 0).tensor("a", {8}, 0, 0).pad().zeros(32).b), "ok");
  EXPECT_EQ(try_open(B{}.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {32}, 2, 32).pad().zeros(32 + 18).b), "ok");
  EXPECT_EQ(try_open(B{}.header(0, 1).str("k").u32(kArr).u32(kArr).u64(1).u32(kU8).u64(2).u8(1).u8(2).b), "ok");
}

TEST(GgufMalformed, EveryTruncationIsRejected) {
  std::mt19937 rng(fresh_seed());
  Bytes img = small_model(rng);
  ASSERT_EQ(try_open(img), "ok");
  auto f = GgufFile::open_memory(img);
  size_t last_tensor_end = 0;
  for (auto& t : f->tensors()) last_tensor_end = std::max<size_t>(last_tensor_end, f->data_offset() + t.offset + t.nbytes);
  for (size_t n = 0; n < last_tensor_end; ++n) {
    Bytes cut(img.begin(), img.begin() + static_cast<std::ptrdiff_t>(n));
    ASSERT_EQ(try_open(cut), "error") << "truncated to " << n << " of " << img.size() << " bytes";
  }
}

TEST(GgufMalformed, RandomCorruptionsAreRejectedOrSafe) {
  uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  Bytes img = small_model(rng);
  size_t header_end = GgufFile::open_memory(img)->data_offset();
  int rejected = 0;
  const int kCases = 3000;
  for (int i = 0; i < kCases; ++i) {
    Bytes bad = img;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % header_end;
      switch (rng() % 3) {
        case 0: bad[at] = static_cast<uint8_t>(rng()); break;
        case 1: bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        default: bad[at] = (rng() & 1) ? 0xff : 0x00; break;
      }
    }
    std::string r = try_open(bad);
    ASSERT_TRUE(r == "ok" || r == "error") << r << " (seed " << seed << ", case " << i << ")";
    rejected += r == "error";
  }
  EXPECT_GT(rejected, kCases / 4) << "seed " << seed;
}

TEST(GgufMalformed, TinyLlamaTruncationsAndCorruptions) {
  std::string path = shared_dir() + "/models/tiny-llama-q4km.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto f = GgufFile::open(path);
  const uint8_t* base = f->data_section() - f->data_offset();
  Bytes img(base, base + f->file_size());
  uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  // Truncations: all within the first 64 bytes, then random points in the header and directory.
  for (int i = 0; i < 300; ++i) {
    size_t n = i < 64 ? static_cast<size_t>(i) : rng() % f->data_offset();
    Bytes cut(img.begin(), img.begin() + static_cast<std::ptrdiff_t>(n));
    ASSERT_EQ(try_open(cut), "error") << "truncated to " << n << " (seed " << seed << ")";
  }
  Bytes cut(img.begin(), img.end() - 1);
  EXPECT_EQ(try_open(cut), "error") << "last data byte missing";
  // Corruptions of the header region, in place (restored after each case).
  for (int i = 0; i < 100; ++i) {
    size_t at = rng() % f->data_offset();
    uint8_t old = img[at];
    img[at] = static_cast<uint8_t>(rng());
    std::string r = try_open(img);
    ASSERT_TRUE(r == "ok" || r == "error") << r << " (seed " << seed << ", byte " << at << ")";
    img[at] = old;
  }
}
