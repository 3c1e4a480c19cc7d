// Tokenizer tests: llama.cpp's vocab test vectors (every ../shared/vocab/*.inp with its .gguf), the golden
// prompts of tiny-llama, SmolLM2 round trips and hand-checked cases, special tokens, streaming decode of
// random ids, and the fast merge loops against plain O(n^2) reference implementations.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fs = std::filesystem;
using namespace minnow;

namespace {

std::string shared_dir() {
  const char* e = std::getenv("MINNOW_SHARED_DIR");
  return e && *e ? e : MINNOW_SHARED_DIR;
}

std::string model_cache() {
  const char* e = std::getenv("MINNOW_MODEL_CACHE");
  if (e && *e) return e;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/minnow";
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loads a tokenizer once per path (vocabularies are large).
const Tokenizer& load(const std::string& path) {
  static std::map<std::string, std::pair<std::unique_ptr<GgufFile>, std::unique_ptr<Tokenizer>>> cache;
  auto it = cache.find(path);
  if (it == cache.end()) {
    auto f = GgufFile::open(path);
    auto t = Tokenizer::from_gguf(*f);
    it = cache.emplace(path, std::make_pair(std::move(f), std::move(t))).first;
  }
  return *it->second.second;
}

bool valid_utf8(const std::string& s) {  // independent check through utf8proc
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

std::vector<std::string> vector_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(shared_dir() + "/vocab", ec)) {
    const std::string n = e.path().filename().string();
    const std::string suffix = ".gguf.inp";
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      names.push_back(n.substr(0, n.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) names.push_back("none-found");
  return names;
}

}  // namespace

// ---- llama.cpp test vectors ---------------------------------------------------------------------------

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchLlamaCpp) {
  const std::string base = shared_dir() + "/vocab/" + GetParam() + ".gguf";
  if (!fs::exists(base + ".inp")) GTEST_SKIP() << "no vocab test vectors under " << shared_dir();
  if (!fs::exists(base)) GTEST_SKIP() << "no vocabulary file for " << GetParam() << " (vectors only)";
  const Tokenizer& tok = load(base);

  std::string raw = read_all(base + ".inp");
  const std::string delim = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos; (pos = raw.find(delim)) != std::string::npos;) {
    inputs.push_back(raw.substr(0, pos));
    raw.erase(0, pos + delim.size());
  }
  std::vector<std::vector<int32_t>> expected;
  std::istringstream out(read_all(base + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (long v; ls >> v;) ids.push_back(static_cast<int32_t>(v));
    expected.push_back(ids);
  }
  ASSERT_EQ(inputs.size(), expected.size()) << "malformed vector files";
  ASSERT_GT(inputs.size(), 10u);
  int passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = tok.encode(inputs[i], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, expected[i]) << "input #" << i << ": '" << inputs[i] << "'";
    passed += got == expected[i];
  }
  std::printf("%s: %d/%zu vectors pass\n", GetParam().c_str(), passed, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(All, VocabVectors, ::testing::ValuesIn(vector_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// ---- tiny-llama golden prompts (BOS included) -------------------------------------------------------

TEST(Tokenizer, GoldenPromptsTinyLlama) {
  const std::string model = shared_dir() + "/models/tiny-llama-q4km.gguf";
  const std::string golden = shared_dir() + "/golden/tiny-llama-q4km.jsonl";
  if (!fs::exists(model) || !fs::exists(golden)) GTEST_SKIP() << "no tiny-llama model/golden";
  const Tokenizer& tok = load(model);
  std::ifstream in(golden);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const auto want = j.at("prompt_tokens").get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(j.at("prompt").get<std::string>(), j.at("add_bos").get<bool>(), false), want);
    ++n;
  }
  EXPECT_GT(n, 0);
}

// ---- SmolLM2 (pre-tokenizer "smollm") ---------------------------------------------------------------

class SmolLM2 : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = model_cache() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!fs::exists(path_)) GTEST_SKIP() << "SmolLM2 not in " << model_cache();
  }
  const Tokenizer& tok() { return load(path_); }
  std::string path_;
};

TEST_F(SmolLM2, RoundTrip) {
  const std::vector<std::string> texts = {
      "Hello world",
      "The capital of France is Paris.",
      "  leading spaces, trailing   ",
      "\n\n\tTabs\tand\nnewlines\r\n",
      "def f(x):\n    return x ** 2  # square\n",
      "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
      "3.14159 1234567890 1,000,000 -42 0x1F",
      "Ünïcödé: naïve café, Straße, Ελληνικά, русский, 日本語, 한국어, עברית, العربية",
      "Emoji 🦙🚀😶‍🌫️ and symbols ©®™ ∑∫√",
      "It's, they're, I'll, we've, he'd, I'm, 'quoted'",
      "<|im_start|>user not parsed as special<|im_end|>",
      std::string("nul\0byte", 8),
      "              many spaces",
      "a\u00a0non-breaking\u2003em\u3000ideographic",
  };
  for (const auto& s : texts) {
    const auto ids = tok().encode(s, false, false);
    EXPECT_EQ(tok().decode(ids), s) << "'" << s << "'";
  }
}

TEST_F(SmolLM2, HandCheckedCases) {
  const Tokenizer& t = tok();
  // No BOS for this model (tokenizer.ggml.add_bos_token = false); EOS is <|im_end|>.
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.encode("Hello", true, false), t.encode("Hello", false, false));
  EXPECT_EQ(t.token_text(t.eos()), "<|im_end|>");
  EXPECT_TRUE(t.is_eog(t.eos()));
  EXPECT_TRUE(t.is_eog(*t.find("<|endoftext|>")));
  EXPECT_FALSE(t.is_eog(*t.find("Hello")));
  // Common words are single tokens; a leading space is part of the token ("Ġ" in byte-level form).
  const int32_t hello = *t.find("Hello"), sp_world = *t.find("\xC4\xA0world");
  EXPECT_EQ(t.encode("Hello world", false, false), (std::vector<int32_t>{hello, sp_world}));
  // smollm splits every digit on its own.
  std::vector<int32_t> digits;
  for (char c : std::string("2024")) digits.push_back(*t.find(std::string(1, c)));
  EXPECT_EQ(t.encode("2024", false, false), digits);
  // Special tokens: ids only with parse_special.
  const int32_t im_start = *t.find("<|im_start|>"), im_end = *t.find("<|im_end|>");
  const auto with = t.encode("<|im_start|>user\nHi<|im_end|>", false, true);
  ASSERT_GE(with.size(), 3u);
  EXPECT_EQ(with.front(), im_start);
  EXPECT_EQ(with.back(), im_end);
  EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end() - 1), t.encode("user\nHi", false, false));
  const auto without = t.encode("<|im_start|>user", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), im_start), 0);
  EXPECT_EQ(t.decode(without), "<|im_start|>user");
  EXPECT_TRUE(t.is_control(im_start));
  EXPECT_EQ(t.token_to_piece(im_start), "<|im_start|>");
}

TEST_F(SmolLM2, RandomTextRoundTrip) {
  std::mt19937 rng(1234);
  const std::vector<std::string> alphabet = {"a", "b", "e", " ", "  ", "\n", "\t", "1", "23", ".", ",", "'s",
                                             "é", "ß", "日", "本", "🦙", "\u2581", "Ġ", "<", "|", ">", "\r\n"};
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) s += alphabet[rng() % alphabet.size()];
    EXPECT_EQ(tok().decode(tok().encode(s, false, false)), s) << "'" << s << "'";
  }
}

// ---- SentencePiece specifics (llama-spm vocabulary) -------------------------------------------------

class LlamaSpm : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
    if (!fs::exists(path_)) GTEST_SKIP() << "no llama-spm vocabulary";
  }
  const Tokenizer& tok() { return load(path_); }
  std::string path_;
};

TEST_F(LlamaSpm, BosSpacePrefixAndDecode) {
  const Tokenizer& t = tok();
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  const auto ids = t.encode("Hello world", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  // The dummy prefix makes the first word carry a space: decoding gives it back.
  EXPECT_EQ(t.decode(std::vector<int32_t>(ids.begin() + 1, ids.end())), " Hello world");
  EXPECT_TRUE(t.encode("", false, false).empty());
  EXPECT_EQ(t.encode("", true, false), std::vector<int32_t>{1});
  // Byte fallback: a character missing from the vocabulary becomes its UTF-8 bytes.
  const auto llama = t.encode("🦙", false, false);
  std::string bytes;
  for (int32_t id : llama) bytes += t.token_to_piece(id);
  EXPECT_EQ(bytes, " 🦙");
  // parse_special: "<s>" only becomes BOS when asked; after a special token the text gets a space.
  EXPECT_EQ(t.encode("<s>hi", false, true), (std::vector<int32_t>{1, t.encode("hi", false, false)[0]}));
  EXPECT_NE(t.encode("<s>", false, false), std::vector<int32_t>{1});
}

TEST(Tokenizer, PhiThreeStripsSpacesAfterUserDefined) {
  const std::string path = shared_dir() + "/vocab/ggml-vocab-phi-3.gguf";
  if (!fs::exists(path)) GTEST_SKIP();
  const Tokenizer& t = load(path);
  // "</s>" is user-defined there: recognised even without parse_special, and spaces after it dropped.
  const auto a = t.encode("x</s>   y", false, false);
  const auto b = t.encode("x</s>y", false, false);
  EXPECT_EQ(a, b);
  EXPECT_NE(std::find(a.begin(), a.end(), 2), a.end());
}

// ---- random ids: decoding never crashes; streaming gives valid UTF-8 ---------------------------------

TEST(Tokenizer, RandomIdsStreamToValidUtf8) {
  std::vector<std::string> paths = {shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf",
                                    shared_dir() + "/vocab/ggml-vocab-gpt-2.gguf"};
  int used = 0;
  for (const auto& p : paths) {
    if (!fs::exists(p)) continue;
    ++used;
    const Tokenizer& t = load(p);
    std::mt19937 rng(99);
    for (int iter = 0; iter < 200; ++iter) {
      std::vector<int32_t> ids;
      const int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) {
        // Bias towards byte tokens (SPM ids 3..258; GPT-2 low ids) so sequences get split and broken.
        ids.push_back(static_cast<int32_t>(rng() % 2 ? 3 + rng() % 256 : rng() % t.n_vocab()));
      }
      const std::string raw = t.decode(ids);
      StreamDecoder sd(t);
      std::string streamed;
      for (int32_t id : ids) {
        const std::string part = sd.push(id);
        EXPECT_TRUE(valid_utf8(part));
        streamed += part;
      }
      streamed += sd.flush();
      EXPECT_TRUE(valid_utf8(streamed));
      EXPECT_EQ(streamed, utf8::sanitize(raw));
      if (valid_utf8(raw)) {
        EXPECT_EQ(streamed, raw);
      }
    }
    EXPECT_THROW(t.decode({t.n_vocab()}), Error);
    EXPECT_THROW(t.token_to_piece(-1), Error);
  }
  if (!used) GTEST_SKIP();
}

TEST(Tokenizer, StreamDecoderHoldsSplitSequences) {
  const std::string path = shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(path)) GTEST_SKIP();
  const Tokenizer& t = load(path);
  StreamDecoder sd(t);
  // U+1F999 (🦙) is F0 9F A6 99: pushed one byte at a time, nothing comes out until the last.
  EXPECT_EQ(sd.push_bytes("\xF0"), "");
  EXPECT_EQ(sd.push_bytes("\x9F\xA6"), "");
  EXPECT_EQ(sd.push_bytes("\x99!"), "\xF0\x9F\xA6\x99!");
  // A lead byte followed by a non-continuation: U+FFFD then the next character.
  EXPECT_EQ(sd.push_bytes("\xE2"), "");
  EXPECT_EQ(sd.push_bytes("A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(sd.push_bytes("\xC3"), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.flush(), "");
}

TEST(Tokenizer, InvalidUtf8InputNeverThrows) {
  std::vector<std::string> paths = {shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf",
                                    shared_dir() + "/vocab/ggml-vocab-gpt-2.gguf",
                                    shared_dir() + "/vocab/ggml-vocab-deepseek-coder.gguf"};
  std::mt19937 rng(7);
  for (const auto& p : paths) {
    if (!fs::exists(p)) continue;
    const Tokenizer& t = load(p);
    for (int iter = 0; iter < 200; ++iter) {
      std::string s;
      const int n = static_cast<int>(rng() % 24);
      for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(rng() % 256));
      std::vector<int32_t> ids;
      EXPECT_NO_THROW(ids = t.encode(s, true, true));
      for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < t.n_vocab());
    }
  }
}

// ---- fast merge loops vs. plain references ------------------------------------------------------------

namespace {

// Reference SPM: split into UTF-8 characters; while some adjacent pair concatenates to a token, merge
// the one with the highest score (leftmost on ties). Leftover non-tokens become byte tokens.
std::vector<int32_t> spm_reference(const Vocab& v, const std::string& text) {
  std::vector<std::string> sym;
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::min(utf8::seq_len(static_cast<uint8_t>(text[i])), text.size() - i);
    sym.push_back(text.substr(i, len));
    i += len;
  }
  for (;;) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const int32_t id = v.find(sym[i] + sym[i + 1]);
      if (id >= 0 && (best < 0 || v.score[id] > best_score)) best = static_cast<int>(i), best_score = v.score[id];
    }
    if (best < 0) break;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const auto& s : sym) {
    const int32_t id = v.find(s);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (unsigned char c : s) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", c);
      out.push_back(v.find(buf));
    }
  }
  return out;
}

// Reference BPE: merge the adjacent pair of lowest rank (leftmost on ties) until none is ranked.
std::vector<int32_t> bpe_reference(const Vocab& v, const std::string& word) {
  std::vector<std::string> sym;
  for (size_t i = 0; i < word.size();) {
    const size_t len = std::min(utf8::seq_len(static_cast<uint8_t>(word[i])), word.size() - i);
    sym.push_back(word.substr(i, len));
    i += len;
  }
  for (;;) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const int r = v.merge(sym[i], sym[i + 1]);
      if (r >= 0 && (best < 0 || r < best_rank)) best = static_cast<int>(i), best_rank = r;
    }
    if (best < 0) break;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const auto& s : sym) {
    const int32_t id = v.find(s);
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (char c : s) {
        if (v.find(std::string(1, c)) >= 0) out.push_back(v.find(std::string(1, c)));
      }
    }
  }
  return out;
}

// Random text built from pieces of random vocabulary tokens, so that many merges apply.
std::string random_text(const Vocab& v, std::mt19937& rng, int max_tokens) {
  std::string s;
  const int n = 1 + static_cast<int>(rng() % max_tokens);
  for (int i = 0; i < n; ++i) {
    const std::string& t = v.text[rng() % v.text.size()];
    if (v.attr[&t - v.text.data()] & kAttrNormal) s += t.substr(0, 1 + rng() % std::max<size_t>(t.size(), 1));
  }
  return s;
}

}  // namespace

TEST(Tokenizer, SpmMergeMatchesReference) {
  const std::string path = shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(path)) GTEST_SKIP();
  const Vocab& v = load(path).vocab();
  std::mt19937 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    const std::string s = random_text(v, rng, 1 + iter % 17);
    std::vector<int32_t> fast;
    spm_encode(v, s, fast);
    EXPECT_EQ(fast, spm_reference(v, s)) << "'" << s << "'";
  }
}

TEST(Tokenizer, BpeMergeMatchesReference) {
  for (const char* name : {"gpt-2", "starcoder", "deepseek-coder"}) {
    const std::string path = shared_dir() + "/vocab/ggml-vocab-" + name + ".gguf";
    if (!fs::exists(path)) continue;
    const Vocab& v = load(path).vocab();
    std::mt19937 rng(43);
    for (int iter = 0; iter < 300; ++iter) {
      const std::string w = random_text(v, rng, 1 + iter % 13);
      if (!valid_utf8(w)) continue;
      std::vector<int32_t> fast;
      bpe_encode_word(v, w, fast);
      EXPECT_EQ(fast, bpe_reference(v, w)) << name << ": '" << w << "'";
    }
  }
}

TEST(Tokenizer, ByteLevelMapIsABijection) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string enc = byte_level::encode(all);
  EXPECT_TRUE(valid_utf8(enc));
  EXPECT_EQ(byte_level::decode(enc), all);
  EXPECT_EQ(byte_level::encode(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(byte_level::encode("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(byte_level::encode("A"), "A");
}

// ---- metadata defaults (../shared/README.md: BOS unless GPT-2-style BPE without add_bos_token) ---------

TEST(Tokenizer, SpecialIdsAndBosDefaults) {
  struct Case {
    const char* name;
    bool add_bos;
    int32_t bos, eos;
  };
  const Case cases[] = {
      {"llama-spm", true, 1, 2},
      {"phi-3", true, 1, 32000},
      {"gpt-2", false, 50256, 50256},     // no add_bos_token key: GPT-2-style BPE adds none
      {"starcoder", false, 0, 0},         // same
      {"deepseek-coder", true, 32013, 32014},  // add_bos_token = true in the file
  };
  int used = 0;
  for (const auto& c : cases) {
    const std::string path = shared_dir() + "/vocab/ggml-vocab-" + c.name + ".gguf";
    if (!fs::exists(path)) continue;
    ++used;
    const Tokenizer& t = load(path);
    EXPECT_EQ(t.add_bos(), c.add_bos) << c.name;
    EXPECT_EQ(t.bos(), c.bos) << c.name;
    EXPECT_EQ(t.eos(), c.eos) << c.name;
    EXPECT_TRUE(t.is_eog(c.eos)) << c.name;
    const auto ids = t.encode("Hi", true, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front() == c.bos, c.add_bos) << c.name;
  }
  // Phi-3: <|end|> ends a turn (recognised by its text), and is a control token.
  const std::string phi = shared_dir() + "/vocab/ggml-vocab-phi-3.gguf";
  if (fs::exists(phi)) {
    const Tokenizer& t = load(phi);
    const int32_t end = *t.find("<|end|>");
    EXPECT_TRUE(t.is_eog(end));
    EXPECT_TRUE(t.is_control(end));
    EXPECT_FALSE(t.is_eog(*t.find("<|user|>")));
    EXPECT_EQ(t.decode({end}, false), "");
    EXPECT_EQ(t.decode({end}, true), "<|end|>");
  }
  if (!used) GTEST_SKIP();
}
