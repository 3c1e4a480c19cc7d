// GgufWriter round trips: write -> GgufFile::open gives back the same metadata, types, shapes and bytes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

using namespace minnow;

static std::string shared_dir() {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return e && *e ? e : MINNOW_SHARED_DIR;
}

static std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("minnow_" + std::to_string(::getpid()) + "_" + name)).string();
}

static std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

static void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  ASSERT_EQ(a.type(), b.type()) << key;
  switch (a.type()) {
    case GgufValueType::STRING: EXPECT_EQ(a.as_string(), b.as_string()) << key; break;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: EXPECT_EQ(a.as_float(), b.as_float()) << key; break;
    case GgufValueType::ARRAY:
      ASSERT_EQ(a.array_type(), b.array_type()) << key;
      ASSERT_EQ(a.array_size(), b.array_size()) << key;
      for (size_t i = 0; i < a.array_size(); ++i) expect_same_value(a.at(i), b.at(i), key + "[" + std::to_string(i) + "]");
      break;
    default: EXPECT_EQ(a.u_, b.u_) << key;
  }
}

TEST(GgufWriter, RoundTripsEveryKindOfValueAndTensor) {
  std::mt19937_64 rng(std::random_device{}());
  for (size_t alignment : {size_t{32}, size_t{1}, size_t{64}, size_t{4096}}) {
    GgufWriter w(alignment);
    uint32_t u32 = static_cast<uint32_t>(rng());
    int32_t i32 = static_cast<int32_t>(rng());
    uint64_t u64 = rng();
    float f32 = std::uniform_real_distribution<float>(-1e6f, 1e6f)(rng);
    w.set_u32("a.u32", u32);
    w.set_i32("a.i32", i32);
    w.set_u64("a.u64", u64);
    w.set_f32("a.f32", f32);
    w.set_bool("a.bool", true);
    w.set_string("a.str", std::string("h\xc3\xa9llo\nworld\0x", 13));
    w.set_string("a.empty", "");
    std::vector<std::string> strs = {"", "a", "<s>", std::string(1000, 'z')};
    w.set_array_string("a.strs", strs);
    std::vector<int32_t> ints(rng() % 1000 + 1);
    for (auto& x : ints) x = static_cast<int32_t>(rng());
    w.set_array_i32("a.ints", ints);
    std::vector<float> floats(rng() % 1000);  // possibly empty
    for (auto& x : floats) x = std::uniform_real_distribution<float>(-5, 5)(rng);
    w.set_array_f32("a.floats", floats);
    w.set_u32("a.replaced", 1);
    w.set_u32("a.replaced", 2);  // replaced in place, not duplicated
    w.set_u32("a.removed", 3);
    w.remove("a.removed");

    struct T { std::string name; GgmlType type; std::vector<int64_t> ne; std::vector<uint8_t> data; };
    std::vector<T> ts;
    ts.push_back({"f32.awkward", GgmlType::F32, {7, 3, 5}, {}});
    ts.push_back({"q4k", GgmlType::Q4_K, {512, 3}, {}});
    ts.push_back({"q8_0.4d", GgmlType::Q8_0, {64, 2, 3, 2}, {}});
    ts.push_back({"f16.row", GgmlType::F16, {13}, {}});
    ts.push_back({"q6k", GgmlType::Q6_K, {256, 1}, {}});
    for (auto& t : ts) {
      int64_t n = 1;
      for (int64_t d : t.ne) n *= d;
      t.data = random_bytes(rng, row_bytes(t.type, n));
      w.add_tensor(t.name, t.type, t.ne, t.data.data(), t.data.size());
    }

    std::string path = temp_path("roundtrip.gguf");
    w.write(path);
    auto f = GgufFile::open(path);
    std::filesystem::remove(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->require_int("a.u32"), static_cast<int64_t>(u32));
    EXPECT_EQ(f->require_int("a.i32"), i32);
    EXPECT_EQ(f->find("a.u64")->u_, u64);
    EXPECT_EQ(f->find("a.u64")->type(), GgufValueType::UINT64);
    EXPECT_EQ(f->require_float("a.f32"), static_cast<double>(f32));
    EXPECT_EQ(f->find("a.f32")->type(), GgufValueType::FLOAT32);
    EXPECT_EQ(f->get_bool("a.bool"), true);
    EXPECT_EQ(f->require_string("a.str"), std::string_view("h\xc3\xa9llo\nworld\0x", 13));
    EXPECT_EQ(f->require_string("a.empty"), "");
    EXPECT_EQ(f->require_int("a.replaced"), 2);
    EXPECT_EQ(f->find("a.removed"), nullptr);
    const GgufValue* s = f->find("a.strs");
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->array_size(), strs.size());
    for (size_t i = 0; i < strs.size(); ++i) EXPECT_EQ(s->at(i).as_string(), strs[i]);
    const GgufValue* iv = f->find("a.ints");
    ASSERT_EQ(iv->array_type(), GgufValueType::INT32);
    ASSERT_EQ(iv->array_size(), ints.size());
    for (size_t i = 0; i < ints.size(); ++i) EXPECT_EQ(iv->at(i).as_int(), ints[i]);
    const GgufValue* fv = f->find("a.floats");
    ASSERT_EQ(fv->array_size(), floats.size());
    for (size_t i = 0; i < floats.size(); ++i) EXPECT_EQ(fv->at(i).as_float(), static_cast<double>(floats[i]));

    ASSERT_EQ(f->tensors().size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      const GgufTensorInfo& g = f->tensors()[i];
      EXPECT_EQ(g.name, ts[i].name);
      EXPECT_EQ(g.type, ts[i].type);
      ASSERT_EQ(g.n_dims, ts[i].ne.size());
      for (size_t d = 0; d < 4; ++d) EXPECT_EQ(g.ne[d], d < ts[i].ne.size() ? ts[i].ne[d] : 1) << g.name;
      ASSERT_EQ(g.nbytes, ts[i].data.size());
      EXPECT_EQ(g.offset % alignment, 0u);
      EXPECT_EQ((f->data_offset() + g.offset) % alignment, 0u);
      EXPECT_EQ(std::memcmp(g.data, ts[i].data.data(), g.nbytes), 0) << g.name;
    }
  }
}

TEST(GgufWriter, CopyValueHandlesNestedArraysAndEveryScalarType) {
  std::mt19937_64 rng(std::random_device{}());
  GgufWriter w;
  const GgufValueType scalars[] = {GgufValueType::UINT8, GgufValueType::INT8, GgufValueType::UINT16,
                                   GgufValueType::INT16, GgufValueType::UINT32, GgufValueType::INT32,
                                   GgufValueType::UINT64, GgufValueType::INT64, GgufValueType::BOOL};
  std::vector<std::pair<std::string, GgufValue>> want;
  for (GgufValueType t : scalars) {
    GgufValue v;
    v.type_ = t;
    size_t sz = gguf_type_size(t);
    uint64_t raw = rng();
    if (t == GgufValueType::BOOL) raw &= 1;
    if (sz < 8) raw &= (uint64_t{1} << (8 * sz)) - 1;
    // Signed types are held sign-extended.
    bool is_signed = t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32;
    if (is_signed && sz < 8 && (raw >> (8 * sz - 1)) & 1) raw |= ~((uint64_t{1} << (8 * sz)) - 1);
    v.u_ = raw;
    want.emplace_back("s." + std::string(gguf_type_name(t)), v);
  }
  GgufValue f64;
  f64.type_ = GgufValueType::FLOAT64;
  f64.f_ = std::uniform_real_distribution<double>(-1e300, 1e300)(rng);
  want.emplace_back("s.f64", f64);

  // [[1,2],[],[3]] as u16, and an array of arrays of strings.
  GgufValue outer;
  outer.type_ = GgufValueType::ARRAY;
  outer.elem_type_ = GgufValueType::ARRAY;
  for (int n : {2, 0, 1}) {
    GgufValue inner;
    inner.type_ = GgufValueType::ARRAY;
    inner.elem_type_ = GgufValueType::UINT16;
    for (int i = 0; i < n; ++i) {
      GgufValue x;
      x.type_ = GgufValueType::UINT16;
      x.u_ = rng() & 0xffff;
      inner.items_.push_back(x);
    }
    outer.items_.push_back(inner);
  }
  want.emplace_back("n.u16", outer);
  std::string backing = "alpha beta";
  GgufValue sarr;
  sarr.type_ = GgufValueType::ARRAY;
  sarr.elem_type_ = GgufValueType::ARRAY;
  GgufValue sinner;
  sinner.type_ = GgufValueType::ARRAY;
  sinner.elem_type_ = GgufValueType::STRING;
  GgufValue a, b;
  a.type_ = b.type_ = GgufValueType::STRING;
  a.s_ = std::string_view(backing).substr(0, 5);
  b.s_ = std::string_view(backing).substr(6);
  sinner.items_ = {a, b};
  sarr.items_ = {sinner};
  want.emplace_back("n.str", sarr);

  for (auto& [k, v] : want) w.copy_value(k, v);
  auto f = GgufFile::open_memory(w.to_bytes());
  ASSERT_EQ(f->metadata().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(f->metadata()[i].first, want[i].first);
    expect_same_value(f->metadata()[i].second, want[i].second, want[i].first);
  }
  // Copying values read from a file into a second writer gives the same file image.
  GgufWriter w2;
  for (auto& [k, v] : f->metadata()) w2.copy_value(k, v);
  EXPECT_EQ(w2.to_bytes(), w.to_bytes());
}

TEST(GgufWriter, CopiesARealModelExactly) {
  std::string src = shared_dir() + "/models/tiny-llama-q4km.gguf";
  if (!std::filesystem::exists(src)) GTEST_SKIP() << "no " << src;
  auto f = GgufFile::open(src);
  GgufWriter w(f->alignment());
  for (auto& [k, v] : f->metadata()) w.copy_value(k, v);
  for (auto& t : f->tensors()) {
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    w.add_tensor(t.name, t.type, ne, t.data, t.nbytes);
  }
  std::string path = temp_path("copy.gguf");
  w.write(path);
  auto g = GgufFile::open(path);
  std::filesystem::remove(path);
  ASSERT_EQ(g->metadata().size(), f->metadata().size());
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    EXPECT_EQ(g->metadata()[i].first, f->metadata()[i].first);
    expect_same_value(g->metadata()[i].second, f->metadata()[i].second, f->metadata()[i].first);
  }
  ASSERT_EQ(g->tensors().size(), f->tensors().size());
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const auto& a = f->tensors()[i];
    const auto& b = g->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.n_dims, b.n_dims);
    for (int d = 0; d < 4; ++d) EXPECT_EQ(a.ne[d], b.ne[d]);
    ASSERT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
}

// llama.cpp / gguf-py wrote these files; re-encoding what we read must reproduce them byte for byte.
TEST(GgufWriter, ReencodesReferenceFilesByteForByte) {
  std::vector<std::string> files = {shared_dir() + "/models/tiny-llama-q4km.gguf"};
  for (const char* n : {"llama-spm", "phi-3", "gpt-2", "starcoder", "deepseek-coder"})
    files.push_back(shared_dir() + "/vocab/ggml-vocab-" + n + ".gguf");
  int checked = 0;
  for (auto& path : files) {
    if (!std::filesystem::exists(path)) continue;
    auto f = GgufFile::open(path);
    GgufWriter w(f->alignment());
    for (auto& [k, v] : f->metadata()) w.copy_value(k, v);
    for (auto& t : f->tensors()) w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.nbytes);
    std::vector<uint8_t> bytes = w.to_bytes();
    const uint8_t* orig = f->data_section() - f->data_offset();
    ASSERT_EQ(bytes.size(), f->file_size()) << path;
    size_t i = 0;
    while (i < bytes.size() && bytes[i] == orig[i]) ++i;
    EXPECT_EQ(i, bytes.size()) << path << ": first difference at byte " << i;
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no reference files";
}

TEST(GgufWriter, RejectsBadTensorsAndAlignment) {
  GgufWriter w;
  std::vector<uint8_t> buf(1024);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {}, buf.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {1, 1, 1, 1, 1}, buf.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {0}, buf.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {4}, buf.data(), 12), Error);   // wrong byte count
  EXPECT_THROW(w.add_tensor("x", GgmlType::Q4_0, {31}, buf.data(), 18), Error);  // not whole blocks
  w.add_tensor("x", GgmlType::F32, {4}, buf.data(), 16);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {4}, buf.data(), 16), Error);  // duplicate name
  EXPECT_THROW(GgufWriter(3).to_bytes(), Error);
  EXPECT_THROW(GgufWriter(0).to_bytes(), Error);
  EXPECT_THROW(w.write("/nonexistent-dir/x.gguf"), Error);
}

TEST(GgufWriter, WriteReplacesAtomically) {
  std::string path = temp_path("atomic.gguf");
  GgufWriter a;
  a.set_string("k", "first");
  a.write(path);
  GgufWriter b;
  b.set_string("k", "second");
  b.write(path);
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->require_string("k"), "second");
  std::filesystem::remove(path);
  for (auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    EXPECT_EQ(e.path().string().find(path + ".tmp"), std::string::npos) << "temp file left: " << e.path();
}
