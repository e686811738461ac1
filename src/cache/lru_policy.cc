// LRU and FIFO: one list of keys, newest at the head, victims from the tail.
//
// LRU moves a key to the head on every hit; FIFO does not (insertion order
// only). LRU is the baseline every other policy is measured against: it is what
// most caches ship, and its weakness is the one S3-FIFO addresses: a burst of
// keys requested once (a scan, a crawler) pushes every hot key out.
//
// A refused victim (pinned body) is moved to the head: it is in use right now,
// which is the best evidence of recency there is, and it keeps repeated Victim
// calls O(1) instead of rescanning the same pinned tail.
#include "cache/policy_list.h"

namespace objstore::cache_internal {
namespace {

class LruPolicy final : public SingleListPolicy {
 public:
  LruPolicy(uint64_t capacity, bool promote_on_hit)
      : SingleListPolicy(capacity), promote_on_hit_(promote_on_hit) {}

  std::string name() const override { return promote_on_hit_ ? "lru" : "fifo"; }

  void Insert(const std::string& key, uint64_t size) override {
    if (PolicyNode* n = nodes_.Find(key)) {
      list_.Resize(n, size);
      ++stats_.updates;
      Touch(n);
      return;
    }
    PolicyNode* n = nodes_.Create(key, size);
    list_.PushHead(n);
    ++stats_.inserts;
  }

  bool Access(const std::string& key) override {
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    ++stats_.hits;
    Touch(n);
    return true;
  }

  std::vector<PolicyEntryState> SaveState() const override {
    std::vector<PolicyEntryState> out;
    out.reserve(list_.size());
    for (PolicyNode* n = list_.tail(); n != nullptr; n = n->newer) {
      out.push_back({n->key, n->size, PolicyQueue::kMain, 0});
    }
    return out;
  }

  Status RestoreState(const std::vector<PolicyEntryState>& state) override {
    return RestoreList(state, [](const PolicyEntryState&, PolicyNode*) {});
  }

 protected:
  std::optional<std::string> FindVictim(const EvictablePredicate& evictable) override {
    // Each refusal moves a key from tail to head, so after size() refusals every
    // key has been offered once.
    for (size_t probes = list_.size(); probes > 0; --probes) {
      PolicyNode* n = list_.tail();
      if (evictable(n->key)) return n->key;
      ++stats_.refusals;
      list_.MoveToHead(n);
    }
    return std::nullopt;
  }

 private:
  void Touch(PolicyNode* n) {
    if (promote_on_hit_) list_.MoveToHead(n);
  }
  const bool promote_on_hit_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewLruPolicy(uint64_t capacity, bool promote_on_hit) {
  return std::make_unique<LruPolicy>(capacity, promote_on_hit);
}

}  // namespace objstore::cache_internal
