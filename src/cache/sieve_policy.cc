// SIEVE (Zhang, Yang, Yue, Vigfusson, Rashmi: "SIEVE is simpler than LRU",
// NSDI 2024), size-aware.
//
//   head (new) [k9 k8 k7 ... k2 k1] tail (old)
//                         ^hand, moves toward the head, wraps to the tail
//
// - New keys enter at the head; a hit sets the key's visited bit (no move).
// - Victim: starting at the hand (the tail when it has none), a visited key has
//   its bit cleared and the hand passes on; the first unvisited key is the
//   victim and the hand stays on it. Evict removes it and leaves the hand on
//   the next newer key, so the sweep continues where it stopped: survivors
//   keep their place (no reinsertion), which is what separates SIEVE from
//   CLOCK and lets new keys be evicted quickly while old popular keys stay.
// - A refused (pinned) key is passed over like a visited one but keeps its bit.
//   One full sweep clears every bit, a second offers every key: 2*size()+1
//   probes bound one Victim call.
#include "cache/policy_list.h"

namespace objstore::cache_internal {
namespace {

class SievePolicy final : public SingleListPolicy {
 public:
  explicit SievePolicy(uint64_t capacity) : SingleListPolicy(capacity) {}

  std::string name() const override { return "sieve"; }

  void Insert(const std::string& key, uint64_t size) override {
    if (PolicyNode* n = nodes_.Find(key)) {
      list_.Resize(n, size);
      ++stats_.updates;
      n->freq = 1;
      return;
    }
    ++stats_.inserts;
    list_.PushHead(nodes_.Create(key, size));
  }

  bool Access(const std::string& key) override {
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    ++stats_.hits;
    n->freq = 1;
    return true;
  }

  std::vector<PolicyEntryState> SaveState() const override {
    std::vector<PolicyEntryState> out;
    out.reserve(list_.size());
    for (PolicyNode* n = list_.tail(); n != nullptr; n = n->newer) {
      out.push_back(
          {n->key, n->size, n == hand_ ? PolicyQueue::kHand : PolicyQueue::kMain, n->freq});
    }
    return out;
  }

  // Foreign queues: all but the ghost are folded into the list in the order
  // given; any nonzero freq becomes the visited bit.
  Status RestoreState(const std::vector<PolicyEntryState>& state) override {
    return RestoreList(state, [this](const PolicyEntryState& e, PolicyNode* n) {
      n->freq = e.freq > 0 ? 1 : 0;
      if (e.queue == PolicyQueue::kHand) hand_ = n;
    });
  }

 protected:
  std::optional<std::string> FindVictim(const EvictablePredicate& evictable) override {
    PolicyNode* n = hand_ != nullptr ? hand_ : list_.tail();
    for (size_t probes = 2 * list_.size() + 1; probes > 0 && n != nullptr; --probes) {
      if (n->freq == 0) {
        if (evictable(n->key)) {
          hand_ = n;
          return n->key;
        }
        ++stats_.refusals;
      } else {
        n->freq = 0;
        ++stats_.reinsertions;
      }
      n = n->newer != nullptr ? n->newer : list_.tail();
    }
    hand_ = n;
    return std::nullopt;
  }

 private:
  void BeforeRemove(PolicyNode* n) override {
    if (hand_ == n) hand_ = n->newer;  // nullptr: wrap to the tail next time
  }
  void Clear() override {
    SingleListPolicy::Clear();
    hand_ = nullptr;
  }

  PolicyNode* hand_ = nullptr;
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewSievePolicy(uint64_t capacity) {
  return std::make_unique<SievePolicy>(capacity);
}

}  // namespace objstore::cache_internal
