#include "tokenizer/special_tokens.h"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

namespace minnow {

namespace {

using Texts = std::initializer_list<std::string_view>;

bool contains_any(std::string_view s, Texts parts) {
  for (std::string_view p : parts)
    if (s.find(p) != std::string_view::npos) return true;
  return false;
}

// DeepSeek's full-width bar and U+2581 spellings.
#define DS_BAR "\xef\xbd\x9c"
#define SP "\xe2\x96\x81"

// Texts that identify a special id when the metadata leaves it unset.
const Texts kEotTexts = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                         "<EOT>", "_<EOT>", "[EOT]", "<" DS_BAR "end" SP "of" SP "sentence" DS_BAR ">",
                         "<end_of_utterance>"};
const Texts kEomTexts = {"<|eom_id|>"};
const Texts kFimPreTexts = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" DS_BAR "fim" SP "begin" DS_BAR ">",
                            "<PRE>", SP "<PRE>", "<|code_prefix|>", "<|prefix|>"};
const Texts kFimSufTexts = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" DS_BAR "fim" SP "hole" DS_BAR ">",
                            "<SUF>", SP "<SUF>", "<|code_suffix|>", "<|suffix|>"};
const Texts kFimMidTexts = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" DS_BAR "fim" SP "end" DS_BAR ">",
                            "<MID>", SP "<MID>", "<|code_middle|>", "<|middle|>"};
const Texts kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const Texts kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const Texts kFimSepTexts = {"<|file_sep|>"};

// Texts of tokens that end generation, whatever the metadata says.
const Texts kEogTexts = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                         "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                         "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                         "<" DS_BAR "end" SP "of" SP "sentence" DS_BAR ">", "[e~["};

// gpt-oss (harmony) tokens that llama.cpp always renders: made user-defined, whatever the file says.
const Texts kAlwaysUserDefined = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

#undef DS_BAR
#undef SP

void mark_control(Vocab& v, int32_t id) { v.attr[id] |= kAttrControl; }

// The lowest id whose text is one of `texts`, or -1.
int32_t first_with_text(const Vocab& v, Texts texts) {
  int32_t best = -1;
  for (std::string_view t : texts) {
    const int32_t id = v.find(t);
    if (id >= 0 && (best < 0 || id < best)) best = id;
  }
  return best;
}

void detect_special_ids(Vocab& v) {
  const std::pair<int32_t*, Texts> rules[] = {
      {&v.eot, kEotTexts},         {&v.eom, kEomTexts},         {&v.fim_pre, kFimPreTexts},
      {&v.fim_suf, kFimSufTexts},  {&v.fim_mid, kFimMidTexts},  {&v.fim_pad, kFimPadTexts},
      {&v.fim_rep, kFimRepTexts},  {&v.fim_sep, kFimSepTexts},
  };
  for (const auto& [dst, texts] : rules) {
    if (*dst >= 0) continue;
    *dst = first_with_text(v, texts);
    if (*dst >= 0) mark_control(v, *dst);
  }
}

// Control tokens whose text says "unused" are unused.
void mark_unused(Vocab& v) {
  for (int32_t i = 0; i < v.n_vocab(); ++i)
    if ((v.attr[i] & kAttrControl) && v.text[i].find("unused") != std::string::npos) v.attr[i] |= kAttrUnused;
}

void collect_eog(Vocab& v) {
  v.eog.clear();
  for (int32_t id : {v.fim_pad, v.fim_rep, v.fim_sep})
    if (id >= 0) v.eog.insert(id);
  for (std::string_view t : kEogTexts) {
    const int32_t id = v.find(t);
    if (id < 0) continue;
    v.eog.insert(id);
    mark_control(v, id);
  }
  for (std::string_view t : kAlwaysUserDefined) {
    const int32_t id = v.find(t);
    if (id >= 0) v.attr[id] = kAttrUserDefined;
  }
  for (int32_t id : {v.eos, v.eot, v.eom})
    if (id >= 0) v.eog.insert(id);

  auto eog_with_text = [&](std::string_view t) {
    const int32_t id = v.find(t);
    return id >= 0 && v.eog.count(id) ? id : -1;
  };
  // Harmony-style vocabularies end a message with <|end|> but a turn with <|return|> / <|call|>: there <|end|>
  // is an ordinary (user-defined) token.
  const bool has_return = eog_with_text("<|return|>") >= 0;
  const bool has_call = eog_with_text("<|call|>") >= 0 || eog_with_text("<|calls|>") >= 0;
  const bool has_flush = eog_with_text("<|flush|>") >= 0;
  const int32_t end = eog_with_text("<|end|>");
  if (end >= 0 && has_call && (has_return || has_flush)) {
    v.eog.erase(end);
    v.attr[end] = kAttrUserDefined;
  }
  // Vocabularies with <|tool_response> use "</s>" as plain text.
  const int32_t s_close = eog_with_text("</s>");
  if (s_close >= 0 && eog_with_text("<|tool_response>") >= 0) {
    v.eog.erase(s_close);
    v.attr[s_close] = kAttrNormal;
  }
}

void collect_special_by_len(Vocab& v) {
  v.special_by_len.clear();
  for (int32_t i = 0; i < v.n_vocab(); ++i)
    if (v.attr[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) v.special_by_len.push_back(i);
  // Longest first; among equal lengths the lower id first, so the choice is deterministic.
  std::stable_sort(v.special_by_len.begin(), v.special_by_len.end(),
                   [&](int32_t a, int32_t b) { return v.text[a].size() > v.text[b].size(); });
}

// Attributes llama.cpp sets by model, pre-tokenizer or architecture name (they are not in GGUF files).
void per_model_attributes(Vocab& v) {
  auto set = [&](std::string_view text, uint32_t bit, bool on) {
    const int32_t id = v.find(text);
    if (id < 0) return;
    v.attr[id] = on ? (v.attr[id] | bit) : (v.attr[id] & ~bit);
  };
  if (contains_any(v.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(v.arch, {"nomic-bert-moe", "jina-bert-v3"})) {
    set("<mask>", kAttrLstrip, true);
  } else if (contains_any(v.name, {"phi-3", "phi3"})) {
    // Phi-3 drops the spaces after its special tokens, except after <unk>, <s> and <|endoftext|>.
    for (int32_t id : v.special_by_len) v.attr[id] |= kAttrRstrip;
    set("</s>", kAttrRstrip, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, kAttrRstrip, false);
  } else if (contains_any(v.name, {"modern-bert"})) {
    set("[MASK]", kAttrLstrip, true);
  }
}

}  // namespace

void apply_special_token_rules(Vocab& v) {
  detect_special_ids(v);
  mark_unused(v);
  collect_eog(v);
  collect_special_by_len(v);
  per_model_attributes(v);
}

}  // namespace minnow
