#pragma once
// Text <-> token ids, driven by GGUF metadata, matching llama.cpp's tokenizer:
//  - SentencePiece ("llama"): score-ordered pair merging, <0xNN> byte fallback, dummy-prefix space;
//  - byte-level BPE ("gpt2"): pre-tokenizer regexes chosen by tokenizer.ggml.pre, merge ranks;
//  - special tokens (control / user-defined) recognised in the text, add-BOS/EOS flags from metadata.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace minnow {

class GgufFile;
class PreTokenizer;

class Tokenizer {
 public:
  // Throws Error on missing or malformed tokenizer metadata, or an unsupported model / pre-tokenizer.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);
  explicit Tokenizer(Vocab vocab);
  ~Tokenizer();

  // add_special: prepend BOS / append EOS as the metadata says (add_bos() / add_eos()).
  // parse_special: control-token texts in `text` become their ids; otherwise they are plain text. User-defined
  // tokens are always recognised, except those llama.cpp also makes control by their text (special_tokens.h:
  // e.g. phi-3's "</s>"). Invalid UTF-8 never throws.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // BPE: the pre-tokenizer's pieces of text (invalid UTF-8 first replaced by U+FFFD; encoded surrogates are kept,
  // as llama.cpp keeps them), before merging.
  // SentencePiece has no pre-tokenizer: the whole text is one piece.
  std::vector<std::string> pre_split(std::string_view text) const;

  // The bytes a token renders to; control/unknown/user-defined tokens render as their text.
  // Throws Error for an id outside [0, n_vocab).
  std::string token_to_piece(int32_t id) const;
  // render_special = false: control and unknown tokens render as nothing (llama.cpp's special=false).
  std::string token_to_piece(int32_t id, bool render_special) const;
  // Concatenated pieces: raw bytes, possibly invalid UTF-8 (see utf8::sanitize / StreamDecoder).
  // No leading-space stripping: for SentencePiece, decode(encode(s)) is " " + s (the dummy prefix).
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids, true); }
  std::string decode(const std::vector<int32_t>& ids, bool render_special) const;

  int32_t n_vocab() const { return vocab_.n_vocab(); }
  int32_t bos() const { return vocab_.bos; }  // -1 when absent
  int32_t eos() const { return vocab_.eos; }
  int32_t eot() const { return vocab_.eot; }
  bool add_bos() const { return vocab_.add_bos && vocab_.bos >= 0; }
  bool add_eos() const { return vocab_.add_eos && vocab_.eos >= 0; }
  bool is_eog(int32_t id) const { return vocab_.eog.count(id) > 0; }
  bool is_control(int32_t id) const { return in_range(id) && (vocab_.attr[id] & kAttrControl); }
  uint32_t attr(int32_t id) const { return in_range(id) ? vocab_.attr[id] : 0; }
  const std::string& token_text(int32_t id) const;  // as stored in the vocabulary; throws if out of range
  std::optional<int32_t> find(std::string_view token_text) const;
  const Vocab& vocab() const { return vocab_; }

 private:
  bool in_range(int32_t id) const { return id >= 0 && id < vocab_.n_vocab(); }
  void encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  Vocab vocab_;
  std::unique_ptr<PreTokenizer> pre_;  // BPE only
  std::vector<std::string> pieces_;    // [n_vocab] token_to_piece cache
};

// Streaming detokenizer: returns text as soon as it is complete UTF-8. Bytes of an incomplete sequence
// are held back until it completes; bytes that cannot start or continue a valid sequence become U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);  // valid UTF-8 ready to print (may be empty)
  std::string push_bytes(std::string_view bytes);
  std::string flush();           // whatever is held back, invalid bytes as U+FFFD
 private:
  const Tokenizer& tok_;
  std::string pending_;
};

}  // namespace minnow
