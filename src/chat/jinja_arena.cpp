#include "chat/jinja_arena.h"

#include <algorithm>
#include <unordered_map>

namespace minnow::jinja {

namespace {
thread_local RenderArena* t_arena = nullptr;
}  // namespace

RenderArena::RenderArena() : outer_(t_arena) { t_arena = this; }

RenderArena::~RenderArena() {
  t_arena = outer_;
  // Empty every container still alive; the emptied contents are destroyed only after all are emptied, so no
  // destructor runs into a half-cleared structure.
  std::vector<Value> graveyard;
  for (auto& w : lists_)
    if (auto c = w.lock()) {
      for (auto& v : c->items) graveyard.push_back(std::move(v));
      c->items.clear();
    }
  for (auto& w : dicts_)
    if (auto c = w.lock()) {
      for (auto& kv : c->items) {
        graveyard.push_back(std::move(kv.first));
        graveyard.push_back(std::move(kv.second));
      }
      c->items.clear();
    }
}

template <class T>
void RenderArena::keep(std::vector<std::weak_ptr<T>>& v, const std::shared_ptr<T>& c) {
  v.push_back(c);
  if (lists_.size() + dicts_.size() >= compact_at_) {
    auto expired = [](const auto& w) { return w.expired(); };
    lists_.erase(std::remove_if(lists_.begin(), lists_.end(), expired), lists_.end());
    dicts_.erase(std::remove_if(dicts_.begin(), dicts_.end(), expired), dicts_.end());
    compact_at_ = std::max<size_t>(1024, 2 * (lists_.size() + dicts_.size()));
  }
}

void RenderArena::record(const std::shared_ptr<ListData>& c) {
  if (t_arena) t_arena->keep(t_arena->lists_, c);
}
void RenderArena::record(const std::shared_ptr<DictData>& c) {
  if (t_arena) t_arena->keep(t_arena->dicts_, c);
}

namespace {
struct Copier {
  std::unordered_map<const void*, Value> done;  // original container -> its copy

  Value copy(const Value& v) {
    if (v.is_list()) {
      auto it = done.find(v.list.get());
      if (it != done.end()) return it->second;
      Value c = Value::new_list({}, v.list->tuple);
      done.emplace(v.list.get(), c);
      c.list->items.reserve(v.list->items.size());
      for (const auto& x : v.list->items) c.list->items.push_back(copy(x));
      return c;
    }
    if (v.is_dict()) {
      auto it = done.find(v.dict.get());
      if (it != done.end()) return it->second;
      Value c = v.dict->is_namespace ? Value::new_namespace() : Value::new_dict();
      done.emplace(v.dict.get(), c);
      c.dict->items.reserve(v.dict->items.size());
      for (const auto& kv : v.dict->items) c.dict->items.emplace_back(copy(kv.first), copy(kv.second));
      return c;
    }
    return v;
  }
};
}  // namespace

Value deep_copy(const Value& v) { return Copier{}.copy(v); }

}  // namespace minnow::jinja
