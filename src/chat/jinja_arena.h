#pragma once
// Lists and dicts are shared references (jinja_value.h), so a template can tie them into a cycle
// (`l.append(l)`, `d.update({'a': d})`) that no reference count ever frees. While a RenderArena lives on a
// thread, every list and dict made there is recorded; when it ends, those still alive are emptied, which breaks
// their cycles and frees them. Template::render holds one for the whole render and gives the template a deep copy
// of its context, so nothing made during a render is reachable from outside it afterwards.
#include <memory>
#include <vector>

#include "chat/jinja_value.h"

namespace minnow::jinja {

class RenderArena {
 public:
  RenderArena();
  ~RenderArena();
  RenderArena(const RenderArena&) = delete;
  RenderArena& operator=(const RenderArena&) = delete;

  // Called by Value::new_list / new_dict: records c in this thread's innermost arena, if any.
  static void record(const std::shared_ptr<ListData>& c);
  static void record(const std::shared_ptr<DictData>& c);

 private:
  template <class T>
  void keep(std::vector<std::weak_ptr<T>>& v, const std::shared_ptr<T>& c);

  std::vector<std::weak_ptr<ListData>> lists_;
  std::vector<std::weak_ptr<DictData>> dicts_;
  size_t compact_at_ = 1024;  // drop the expired records when this many are held (amortised O(1))
  RenderArena* outer_;
};

// A copy with new lists and dicts throughout; structure shared inside v (and cycles) stays shared in the copy.
// Strings, numbers and callables are copied as values / shared as they are.
Value deep_copy(const Value& v);

}  // namespace minnow::jinja
