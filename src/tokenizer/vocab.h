#pragma once
// The vocabulary as llama.cpp loads it from GGUF metadata: token texts, scores, attributes, BPE merge
// ranks, special token ids, and the add-BOS/EOS / space-prefix flags with llama.cpp's defaults.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace minnow {

class GgufFile;

// Token attributes (llama.cpp's llama_token_attr bits).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
  kAttrSingleWord = 1u << 9,
};

enum class VocabType { SPM, BPE };

struct StringHash {  // lets string-keyed maps be searched with a string_view, without a copy
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  VocabType type = VocabType::SPM;
  std::string model;  // tokenizer.ggml.model
  std::string pre;    // tokenizer.ggml.pre ("default" when absent)
  std::string name;   // general.name, lower-cased
  std::string arch;   // general.architecture

  std::vector<std::string> text;  // [n_vocab] token texts as stored
  std::vector<float> score;       // [n_vocab] (0 when the file has none)
  std::vector<uint32_t> attr;     // [n_vocab] TokenAttr bits
  StringMap to_id;       // text -> id (a later duplicate wins)
  StringMap merge_rank;  // left + '\0' + right -> rank (BPE; the first of duplicates wins)

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1;
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, ignore_merges = false;
  std::unordered_set<int32_t> eog;      // end-of-generation ids
  std::vector<int32_t> special_by_len;  // control / user-defined / unknown ids, longest text first

  int32_t n_vocab() const { return static_cast<int32_t>(text.size()); }
  int32_t find(std::string_view s) const;                        // -1 when absent
  int32_t merge(std::string_view left, std::string_view right) const;  // rank, -1 when no merge

  // Throws Error on missing or malformed tokenizer metadata, or an unsupported model/pre-tokenizer.
  static Vocab from_gguf(const GgufFile& f);
};

}  // namespace minnow
