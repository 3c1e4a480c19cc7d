#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/special_tokens.h"

namespace minnow {

int32_t Vocab::find(std::string_view s) const {
  auto it = to_id.find(s);
  return it == to_id.end() ? -1 : it->second;
}

int32_t Vocab::merge(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).push_back('\0');
  key.append(right);
  auto it = merge_rank.find(key);
  return it == merge_rank.end() ? -1 : it->second;
}

namespace {

const GgufValue& require_array(const GgufFile& f, const char* key, GgufValueType elem) {
  const GgufValue* v = f.find(key);
  if (!v) throw Error(std::string("missing metadata key ") + key);
  if (v->type() != GgufValueType::ARRAY || (v->array_size() > 0 && v->array_type() != elem))
    throw Error(std::string("metadata key ") + key + " must be an array of " + std::string(gguf_type_name(elem)));
  return *v;
}

uint32_t attr_from_type(int64_t t) {
  switch (t) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}

}  // namespace

Vocab Vocab::from_gguf(const GgufFile& f) {
  Vocab v;
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model) throw Error("missing metadata key tokenizer.ggml.model");
  v.model = std::string(*model);
  if (v.model == "llama") {
    v.type = VocabType::SPM;
  } else if (v.model == "gpt2") {
    v.type = VocabType::BPE;
  } else {
    throw Error("unsupported tokenizer model '" + v.model + "' (supported: llama, gpt2)");
  }
  v.pre = std::string(f.get_string("tokenizer.ggml.pre").value_or("default"));
  v.name = std::string(f.get_string("general.name").value_or(""));
  v.arch = std::string(f.get_string("general.architecture").value_or(""));
  for (char& c : v.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

  // Token texts, scores, types.
  const GgufValue& toks = require_array(f, "tokenizer.ggml.tokens", GgufValueType::STRING);
  const size_t n = toks.array_size();
  if (n == 0) throw Error("tokenizer.ggml.tokens is empty");
  if (n > 0x7fffffff) throw Error("tokenizer.ggml.tokens has too many entries");
  v.text.resize(n);
  v.score.assign(n, 0.0f);
  v.attr.assign(n, kAttrNormal);
  for (size_t i = 0; i < n; ++i) {
    v.text[i] = std::string(toks.at(i).as_string());
    if (v.text[i].empty()) v.text[i] = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp names them
  }
  if (const GgufValue* s = f.find("tokenizer.ggml.scores")) {
    if (s->type() != GgufValueType::ARRAY || s->array_size() != n)
      throw Error("tokenizer.ggml.scores must be an array of " + std::to_string(n) + " numbers");
    for (size_t i = 0; i < n; ++i) v.score[i] = static_cast<float>(s->at(i).as_float());
  }
  if (const GgufValue* t = f.find("tokenizer.ggml.token_type")) {
    if (t->type() != GgufValueType::ARRAY || t->array_size() != n)
      throw Error("tokenizer.ggml.token_type must be an array of " + std::to_string(n) + " integers");
    for (size_t i = 0; i < n; ++i) v.attr[i] = attr_from_type(t->at(i).as_int());
  }
  v.to_id.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) v.to_id[v.text[i]] = static_cast<int32_t>(i);

  // Model-type defaults (llama.cpp's).
  if (v.type == VocabType::SPM) {
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_bos = true, v.add_eos = false, v.add_space_prefix = true;
  } else {
    v.bos = 11, v.eos = 11;
    v.add_bos = false, v.add_eos = false, v.add_space_prefix = false;
    const PreTokenizerSpec* spec = find_pretokenizer(v.pre);
    if (!spec) throw Error("unsupported pre-tokenizer '" + v.pre + "' (tokenizer.ggml.pre)");
    v.add_bos = spec->add_bos;
    v.ignore_merges = spec->ignore_merges;
    const GgufValue* merges = f.find("tokenizer.ggml.merges");
    if (!merges) throw Error("missing metadata key tokenizer.ggml.merges");
    if (merges->type() != GgufValueType::ARRAY || (merges->array_size() > 0 && merges->array_type() != GgufValueType::STRING))
      throw Error("tokenizer.ggml.merges must be an array of strings");
    const size_t nm = merges->array_size();
    v.merge_rank.reserve(nm * 2);
    for (size_t i = 0; i < nm; ++i) {
      std::string_view m = merges->at(i).as_string();
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      std::string key;
      if (sp != std::string_view::npos) {
        key.append(m.substr(0, sp)).push_back('\0');
        key.append(m.substr(sp + 1));
      } else {
        key.push_back('\0');  // malformed merge: llama.cpp records it with empty halves
      }
      v.merge_rank.emplace(std::move(key), static_cast<int32_t>(i));
    }
  }
  for (int32_t* id : {&v.bos, &v.eos, &v.unk})
    if (*id >= static_cast<int32_t>(n)) *id = -1;

  // Special ids from metadata (out-of-range ids keep the default, as llama.cpp does).
  const std::pair<const char*, int32_t*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},        {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.eot_token_id", &v.eot},        {"tokenizer.ggml.eom_token_id", &v.eom},
      {"tokenizer.ggml.unknown_token_id", &v.unk},    {"tokenizer.ggml.seperator_token_id", &v.sep},
      {"tokenizer.ggml.padding_token_id", &v.pad},    {"tokenizer.ggml.fim_pre_token_id", &v.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &v.fim_suf}, {"tokenizer.ggml.fim_mid_token_id", &v.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &v.fim_pad}, {"tokenizer.ggml.fim_rep_token_id", &v.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &v.fim_sep}, {"tokenizer.ggml.prefix_token_id", &v.fim_pre},
      {"tokenizer.ggml.suffix_token_id", &v.fim_suf},  {"tokenizer.ggml.middle_token_id", &v.fim_mid},
  };
  for (const auto& [key, dst] : ids) {
    auto val = f.get_int(key);
    if (val && *val >= 0 && *val < static_cast<int64_t>(n)) *dst = static_cast<int32_t>(*val);
  }
  if (auto b = f.get_bool("tokenizer.ggml.add_bos_token")) v.add_bos = *b;
  if (auto b = f.get_bool("tokenizer.ggml.add_eos_token")) v.add_eos = *b;
  if (auto b = f.get_bool("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;

  apply_special_token_rules(v);
  return v;
}

}  // namespace minnow
