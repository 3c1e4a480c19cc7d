// Tokenizer tests: llama.cpp's vocab test vectors (every ../shared/vocab/*.inp with its .gguf), the golden
// prompts of tiny-llama, SmolLM2 and Gemma 3 round trips and hand-checked cases, llama.cpp's special-token
// rules, random-text round trips on every vocabulary, streaming decode of random ids, and the fast merge loops
// against plain O(n^2) reference implementations. Missing reference data fails the test (never a skip).
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
#include "tokenizer/special_tokens.h"
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

// Reference data must be there: a missing file fails the test with the path and where it comes from.
#define REQUIRE_DATA(path)                                                                            \
  ASSERT_TRUE(fs::exists(path)) << "missing reference data: " << (path)                              \
                                << " (../shared is described in its README; models in the cache come " \
                                   "from scripts/fetch_model.sh and scripts/fetch_gemma.sh)"

std::string gemma_path() { return model_cache() + "/gemma-3-270m-q4_k_m.gguf"; }

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
  REQUIRE_DATA(base + ".inp");
  REQUIRE_DATA(base);
  REQUIRE_DATA(base + ".out");
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
  REQUIRE_DATA(model);
  REQUIRE_DATA(golden);
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
    REQUIRE_DATA(path_);
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
    REQUIRE_DATA(path_);
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

// llama.cpp's rule: a user-defined token is parsed from plain text unless its text marks it as special (an
// end-of-generation, EOT/EOM or FIM text), which makes it a control token too. Phi-3's "</s>" is user-defined
// in the file and is such a text: plain "</s>" stays text; with parse_special it is the token, spaces after it
// dropped (Phi-3's rstrip).
TEST(Tokenizer, PhiThreeCloseTagIsTextUnlessParsingSpecial) {
  const std::string path = shared_dir() + "/vocab/ggml-vocab-phi-3.gguf";
  REQUIRE_DATA(path);
  const Tokenizer& t = load(path);
  const int32_t close = *t.find("</s>");
  ASSERT_EQ(close, 2);
  EXPECT_TRUE(t.attr(close) & kAttrUserDefined);
  EXPECT_TRUE(t.is_control(close));
  EXPECT_TRUE(t.is_eog(close));

  const auto plain = t.encode("x</s>   y", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), close), 0);
  std::vector<int32_t> whole;  // one SentencePiece pass over the whole text, "</s>" included
  spm_encode(t.vocab(), "\xE2\x96\x81x</s>\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81y", whole);
  EXPECT_EQ(plain, whole);
  EXPECT_EQ(t.decode(plain), " x</s>   y");

  const auto special = t.encode("x</s>   y", false, true);
  EXPECT_EQ(std::count(special.begin(), special.end(), close), 1);
  EXPECT_EQ(special, t.encode("x</s>y", false, true));
  // Control tokens are never matched in plain text either.
  const auto user = t.encode("<|user|>hi", false, false);
  EXPECT_EQ(std::count(user.begin(), user.end(), *t.find("<|user|>")), 0);
  EXPECT_EQ(t.encode("<|user|>  hi", false, true).front(), *t.find("<|user|>"));
}

// The same rule on a hand-made vocabulary, for every kind of token llama.cpp treats by its text.
TEST(Tokenizer, UserDefinedTokensParsedFromPlainTextUnlessSpecialText) {
  Vocab v;
  v.type = VocabType::SPM;
  v.model = "llama";
  v.pre = "default";
  const std::vector<std::pair<std::string, uint32_t>> tokens = {
      {"<unk>", kAttrUnknown},        {"<s>", kAttrControl},          {"</s>", kAttrUserDefined},
      {"<tag>", kAttrUserDefined},    {"<|im_end|>", kAttrUserDefined}, {"<|fim_prefix|>", kAttrUserDefined},
      {"<|channel|>", kAttrControl},  {"\xE2\x96\x81", kAttrNormal},  {"a", kAttrNormal},
      {"b", kAttrNormal},             {"<", kAttrNormal},             {">", kAttrNormal},
      {"/", kAttrNormal},             {"s", kAttrNormal},             {"|", kAttrNormal},
  };
  for (const auto& [text, attr] : tokens) {
    v.to_id[text] = v.n_vocab();
    v.text.push_back(text);
    v.score.push_back(0.0f);
    v.attr.push_back(attr);
  }
  v.unk = 0, v.bos = 1, v.eos = -1;
  v.add_space_prefix = false;
  apply_special_token_rules(v);
  const Tokenizer t(std::move(v));
  const int32_t a = *t.find("a"), b = *t.find("b");
  auto has = [](const std::vector<int32_t>& ids, int32_t id) { return std::count(ids.begin(), ids.end(), id) > 0; };
  // An ordinary user-defined token: always parsed.
  EXPECT_EQ(t.encode("a<tag>b", false, false), (std::vector<int32_t>{a, 3, b}));
  // User-defined with an end-of-generation / FIM text: control too, parsed only with parse_special.
  for (int32_t id : {2, 4, 5}) {
    const std::string text = "a" + t.token_text(id) + "b";
    EXPECT_FALSE(has(t.encode(text, false, false), id)) << t.token_text(id);
    EXPECT_EQ(t.encode(text, false, true), (std::vector<int32_t>{a, id, b})) << t.token_text(id);
    EXPECT_TRUE(t.attr(id) & kAttrUserDefined) << t.token_text(id);
    EXPECT_EQ(t.decode({id}, false), "") << t.token_text(id);
  }
  EXPECT_TRUE(t.is_eog(2) && t.is_eog(4) && !t.is_eog(3) && !t.is_eog(5));
  EXPECT_EQ(t.vocab().fim_pre, 5);
  // gpt-oss's <|channel|> is always user-defined (parsed from plain text), whatever the file says.
  EXPECT_EQ(t.encode("a<|channel|>b", false, false), (std::vector<int32_t>{a, 6, b}));
  // Control and unknown tokens: only with parse_special.
  EXPECT_FALSE(has(t.encode("a<s>b", false, false), 1));
  EXPECT_EQ(t.encode("a<unk>b", false, true), (std::vector<int32_t>{a, 0, b}));
  EXPECT_EQ(t.encode("a<s>b", false, true), (std::vector<int32_t>{a, 1, b}));
}

// ---- random ids: decoding never crashes; streaming gives valid UTF-8 ---------------------------------

TEST(Tokenizer, RandomIdsStreamToValidUtf8) {
  std::vector<std::string> paths = {shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf",
                                    shared_dir() + "/vocab/ggml-vocab-gpt-2.gguf"};
  for (const auto& p : paths) {
    REQUIRE_DATA(p);
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
}

TEST(Tokenizer, StreamDecoderHoldsSplitSequences) {
  const std::string path = shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  REQUIRE_DATA(path);
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
    REQUIRE_DATA(p);
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
  REQUIRE_DATA(path);
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
    REQUIRE_DATA(path);
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
  for (const auto& c : cases) {
    const std::string path = shared_dir() + "/vocab/ggml-vocab-" + c.name + ".gguf";
    REQUIRE_DATA(path);
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
  REQUIRE_DATA(phi);
  const Tokenizer& t = load(phi);
  const int32_t end = *t.find("<|end|>");
  EXPECT_TRUE(t.is_eog(end));
  EXPECT_TRUE(t.is_control(end));
  EXPECT_FALSE(t.is_eog(*t.find("<|user|>")));
  EXPECT_EQ(t.decode({end}, false), "");
  EXPECT_EQ(t.decode({end}, true), "<|end|>");
}

// ---- pre-tokenizers that differ only in their regex (llama-bpe vs qwen2) -------------------------------

TEST(Tokenizer, DigitGroupingFollowsThePreTokenizer) {
  const std::string llama3 = shared_dir() + "/vocab/ggml-vocab-llama-bpe.gguf";
  const std::string qwen2 = shared_dir() + "/vocab/ggml-vocab-qwen2.gguf";
  REQUIRE_DATA(llama3);
  REQUIRE_DATA(qwen2);
  // Llama 3 groups digits by three (from the left), Qwen2 splits every digit; neither lets a letter join them.
  EXPECT_EQ(load(llama3).pre_split("x1234567"), (std::vector<std::string>{"x", "123", "456", "7"}));
  EXPECT_EQ(load(qwen2).pre_split("x1234567"),
            (std::vector<std::string>{"x", "1", "2", "3", "4", "5", "6", "7"}));
  const Tokenizer& q = load(qwen2);
  std::vector<int32_t> digits;
  for (char c : std::string("2024")) digits.push_back(*q.find(std::string(1, c)));
  EXPECT_EQ(q.encode("2024", false, false), digits);
  // Both: contractions case-insensitive, one non-letter may lead a word, newlines gathered with spaces before.
  for (const std::string& path : {llama3, qwen2}) {
    EXPECT_EQ(load(path).pre_split("I'LLx go"), (std::vector<std::string>{"I", "'LL", "x", " go"})) << path;
    EXPECT_EQ(load(path).pre_split("$word  \n\nx"), (std::vector<std::string>{"$word", "  \n\n", "x"})) << path;
  }
}

// ---- random text: round trip and consistency on every vocabulary ------------------------------------

namespace {

std::string random_unicode_text(std::mt19937& rng) {
  static const std::vector<std::string> alphabet = {
      "a", "Z", "e", "the", " quick", "Hello", "WORLD", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "\r", "0", "7",
      "42", "1234567", "3.14", ".", ",", "!", "?", "'s", "'LL", "'re", "-", "_", "(", ")", "[", "]", "{", "}", "<",
      ">", "/", "|", "$", "+", "=", "^", "~", "`", "\"", "#", "@", "%", "&", "*", "é", "ß", "ñ", "Ω", "ж", "日本",
      "語", "한국", "ع", "עב", "हिन्दी", "ไทย", "🦙", "😀", "👍🏽", "👨\u200d👩\u200d👧", "\u0301", "\u00a0", "\u2003",
      "\u3000", "\u200b", "\ufeff", "\u2581", "Ġ", "½", "²", "Ⅻ", "…", "—", "“", "”", "€", "©", "\x01", "\x7f"};
  std::string s;
  const int n = static_cast<int>(rng() % 24);
  for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
  return s;
}

std::string spaces_for_u2581(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Every vocabulary with llama.cpp vectors, plus the real Gemma 3 (262k SentencePiece).
std::vector<std::string> all_vocab_paths() {
  std::vector<std::string> paths;
  for (const std::string& name : vector_names()) paths.push_back(shared_dir() + "/vocab/" + name + ".gguf");
  paths.push_back(gemma_path());
  return paths;
}

}  // namespace

TEST(Tokenizer, RandomTextRoundTripsOnEveryVocabulary) {
  const unsigned seed = 20261206;
  std::printf("seed %u\n", seed);
  for (const std::string& path : all_vocab_paths()) {
    REQUIRE_DATA(path);
    const Tokenizer& t = load(path);
    const bool spm = t.vocab().type == VocabType::SPM;
    const std::string prefix = spm && t.vocab().add_space_prefix ? " " : "";
    std::mt19937 rng(seed);
    for (int iter = 0; iter < 150; ++iter) {
      const std::string s = random_unicode_text(rng);
      const auto ids = t.encode(s, false, false);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.n_vocab()) << path;
      // Round trip: the text comes back (SentencePiece: after its dummy prefix, and with a literal U+2581,
      // its space symbol, read back as a space).
      const std::string want = s.empty() ? "" : spm ? spaces_for_u2581(prefix + s) : s;
      EXPECT_EQ(t.decode(ids), want) << path << " '" << s << "'";
      // No control token comes out of plain text, and BOS/EOS are only added on request.
      for (int32_t id : ids) EXPECT_FALSE(t.is_control(id)) << path << " '" << s << "' id " << id;
      std::vector<int32_t> with = ids;
      if (t.add_bos()) with.insert(with.begin(), t.bos());
      if (t.add_eos()) with.push_back(t.eos());
      EXPECT_EQ(t.encode(s, true, false), with) << path;
      // Text without any special-token text tokenizes the same whether or not specials are parsed.
      EXPECT_EQ(t.encode(s, false, true), ids) << path << " '" << s << "'";
      // BPE: the ids are the concatenation of each pre-tokenizer piece's ids.
      if (!spm) {
        std::vector<int32_t> joined;
        for (const std::string& piece : t.pre_split(s)) {
          const auto part = t.encode(piece, false, false);
          joined.insert(joined.end(), part.begin(), part.end());
        }
        EXPECT_EQ(joined, ids) << path << " '" << s << "'";
      }
    }
  }
}

// ---- Gemma 3 (262k SentencePiece, no dummy prefix, user-defined whitespace tokens) -------------------

class Gemma3 : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_DATA(gemma_path()); }
  const Tokenizer& tok() { return load(gemma_path()); }
};

TEST_F(Gemma3, MetadataAndSpecialTokens) {
  const Tokenizer& t = tok();
  EXPECT_EQ(t.n_vocab(), 262144);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.token_text(t.bos()), "<bos>");
  EXPECT_EQ(t.token_text(t.eos()), "<eos>");
  EXPECT_FALSE(t.vocab().add_space_prefix);
  const int32_t eot = *t.find("<end_of_turn>");
  EXPECT_TRUE(t.is_eog(eot) && t.is_eog(t.eos()) && t.is_control(eot));
  EXPECT_FALSE(t.is_eog(*t.find("<start_of_turn>")));
  // Control tokens only with parse_special; no space is added after them (no dummy prefix).
  const auto plain = t.encode("<start_of_turn>user", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), *t.find("<start_of_turn>")), 0);
  const auto special = t.encode("<start_of_turn>user", false, true);
  ASSERT_EQ(special.size(), 2u);
  EXPECT_EQ(special[0], *t.find("<start_of_turn>"));
  EXPECT_EQ(special[1], *t.find("user"));
}

TEST_F(Gemma3, UserDefinedWhitespaceRunsAreParsedFromPlainText) {
  const Tokenizer& t = tok();
  // "\n\n" and runs of spaces are user-defined tokens: split out before SentencePiece, longest first.
  const int32_t nn = *t.find("\n\n"), sp4 = *t.find("    ");
  EXPECT_TRUE(t.attr(nn) & kAttrUserDefined);
  const auto ids = t.encode("a\n\nb", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], nn);
  const auto code = t.encode("if x:\n    return", false, false);
  EXPECT_EQ(std::count(code.begin(), code.end(), sp4), 1);
  EXPECT_EQ(t.decode(code), "if x:\n    return");
  // Spaces inside words become U+2581 pieces ("Hello world" is two tokens, the second with its space).
  EXPECT_EQ(t.encode("Hello world", false, false),
            (std::vector<int32_t>{*t.find("Hello"), *t.find("\xE2\x96\x81world")}));
}

// llama.cpp decodes UTF-8-encoded surrogates (ED A0..BF xx, invalid UTF-8) to code points and keeps their bytes;
// other invalid bytes become U+FFFD. Found by scripts/tokenizer_diff.sh.
TEST(Tokenizer, BpeKeepsEncodedSurrogatesLikeLlamaCpp) {
  for (const char* name : {"deepseek-coder", "llama-bpe", "qwen2", "gpt-2"}) {
    const std::string path = shared_dir() + "/vocab/ggml-vocab-" + name + ".gguf";
    REQUIRE_DATA(path);
    const Tokenizer& t = load(path);
    const std::string surrogate = "a\xED\xBB\x88" "b-\xED\xA0\x80\xE1\xA0\x8E";
    EXPECT_EQ(t.decode(t.encode(surrogate, false, false)), surrogate) << name;
    EXPECT_EQ(t.decode(t.encode("a\xFF" "b", false, false)), "a\xEF\xBF\xBD" "b") << name;
    EXPECT_EQ(t.decode(t.encode("\xF4\x90\x80\x80", false, false)), "\xEF\xBF\xBD") << name;  // > U+10FFFF
  }
}
