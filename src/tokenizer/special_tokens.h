#pragma once
// llama.cpp's text-based special-token rules, applied once the GGUF token types and special ids are loaded.
// They decide three things: which ids are EOT / EOM / FIM tokens when the metadata does not say, which ids end
// generation, and each token's attributes. The attributes in turn decide what is recognised in plain text
// (special_split.h): control and unknown tokens only with parse_special, user-defined tokens always (unless
// they are control too).
//
// The rule for plain text, as llama.cpp (d32676d) applies it: a token typed user-defined in the file is parsed
// from plain text unless its text marks it as special. Texts that name an end-of-generation token (such as
// "</s>", "<|endoftext|>", "<end_of_turn>") or an EOT / EOM / FIM token add the control attribute to that token
// (added, not replacing: the user-defined bit stays, so it still renders as its text), and control tokens are
// only recognised with parse_special. So with the phi-3 vocabulary, where "</s>" is user-defined, "</s>" in
// plain text is tokenized as text.
#include "tokenizer/vocab.h"

namespace minnow {

// Fills v.eot / v.eom / v.fim_* still unset, v.eog, v.special_by_len, and adjusts v.attr. Needs v.text, v.attr,
// v.to_id, v.name, v.pre and the special ids read from metadata.
void apply_special_token_rules(Vocab& v);

}  // namespace minnow
