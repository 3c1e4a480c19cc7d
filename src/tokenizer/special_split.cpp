#include "tokenizer/special_split.h"

#include "tokenizer/vocab.h"

namespace minnow {

namespace {

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

std::vector<Fragment> split_special(const Vocab& v, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  std::vector<Fragment> next;
  for (int32_t id : v.special_by_len) {
    const uint32_t attr = v.attr[id];
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string_view tok = v.text[id];
    if (tok.empty()) continue;
    bool any = false;
    for (const Fragment& f : frags)
      if (f.token < 0 && f.text.find(tok) != std::string_view::npos) any = true;
    if (!any) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      size_t m = rest.find(tok);
      if (m == std::string_view::npos) {
        next.push_back(f);
        continue;
      }
      while (m != std::string_view::npos) {
        std::string_view left = rest.substr(0, m);
        if (attr & kAttrLstrip)
          while (!left.empty() && is_space(left.back())) left.remove_suffix(1);
        if (!left.empty()) next.push_back({-1, left});
        next.push_back({id, {}});
        rest = rest.substr(m + tok.size());
        if (attr & kAttrRstrip)
          while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
        m = rest.find(tok);
      }
      if (!rest.empty()) next.push_back({-1, rest});
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace minnow
