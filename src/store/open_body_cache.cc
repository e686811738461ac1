#include "store/open_body_cache.h"

#include <functional>

namespace objstore {

OpenBodyCache::OpenBodyCache(size_t capacity) : per_shard_((capacity + kShards - 1) / kShards) {}

OpenBodyCache::Shard& OpenBodyCache::ShardFor(std::string_view key) {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

OpenBodyCache::Lookup OpenBodyCache::Get(const std::string& key, HlcTimestamp version) {
  if (per_shard_ == 0) return {};
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end() || it->second->version != version) return {SharedBody(), s.removals};
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return {it->second->body, 0};
}

SharedBody OpenBodyCache::Insert(const std::string& key, HlcTimestamp version, SharedBody body,
                                 uint64_t ticket) {
  if (per_shard_ == 0) return body;
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  if (s.removals != ticket) return body;  // a removal may have raced this open
  if (auto it = s.index.find(key); it != s.index.end()) {
    if (it->second->version >= version) return body;
    const auto older = it->second;
    s.index.erase(it);
    s.lru.erase(older);
  }
  s.lru.push_front(Entry{key, version, body});
  s.index.emplace(s.lru.front().key, s.lru.begin());
  if (s.lru.size() > per_shard_) {
    s.index.erase(s.lru.back().key);
    s.lru.pop_back();
  }
  return body;
}

void OpenBodyCache::Invalidate(const std::string& key, HlcTimestamp version) {
  Shard& s = ShardFor(key);
  std::lock_guard lock(s.mu);
  ++s.removals;
  auto it = s.index.find(key);
  if (it == s.index.end() || it->second->version != version) return;
  auto entry = it->second;
  s.index.erase(it);
  s.lru.erase(entry);
}

void OpenBodyCache::Clear() {
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    ++s.removals;
    s.index.clear();
    s.lru.clear();
  }
}

size_t OpenBodyCache::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.lru.size();
  }
  return n;
}

}  // namespace objstore
