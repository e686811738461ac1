// S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi: "FIFO queues are all you need for
// cache eviction", SOSP 2023), size-aware.
//
//            insert (not in ghost)             insert (key in ghost)
//                  |                                  |
//                  v                                  v
//   small FIFO  [head ... tail] --freq>=1--> main FIFO [head ... tail] --freq>0: freq-1,
//   10% bytes              |                 90% bytes          |        back to head
//                          | freq==0                            | freq==0
//                          v                                    v
//                  ghost FIFO (keys only, main's bytes)     evicted, forgotten
//
// - freq counts hits since the key entered its queue's tail path, capped at 3
//   (two bits in the paper); a hit never moves anything, it bumps the counter.
// - Victim looks at small when small holds >= 10% of capacity (or main is
//   empty), else at main, exactly as the paper's eviction alternates; keys
//   promoted or reinserted on the way are moved, the first key that would
//   leave is returned and stays put until the caller confirms with Evict.
// - Evict of a small key records it in the ghost, so a key that comes back
//   soon after a "one-hit" eviction goes straight to main (the paper's
//   quick-demotion correction). Evict of a main key forgets it.
// - The ghost is a FIFO of (key, size) with a byte budget equal to main's: it
//   remembers about as much as main holds, in key bytes only.
// - Refused (pinned) keys: in small, moved to main as if hit (in use = hot);
//   in main, moved to the head without touching freq; once every main key has
//   been refused in a row, small is searched even below its share (else a
//   small key could hide behind a fully pinned main). Bound on one Victim call:
//   at most 3 passes over main clear the frequencies and a 4th refuses all of
//   it; each small key then costs 2 probes (move, refusal); the keys promoted
//   meanwhile need at most 4 more passes. That is under 10*size() probes, so
//   after 10*size()+1 every key has been offered at freq 0.
#include <algorithm>

#include "cache/policy_list.h"

namespace objstore::cache_internal {
namespace {

constexpr uint8_t kMaxFreq = 3;
// A small-queue key hit at least this often moves to main (the paper: "accessed
// again since insertion").
constexpr uint8_t kMoveToMainFreq = 1;

class S3FifoPolicy final : public EvictionPolicy {
 public:
  explicit S3FifoPolicy(uint64_t capacity)
      : capacity_(capacity),
        small_capacity_(std::max<uint64_t>(1, capacity / 10)),
        ghost_capacity_(capacity - std::min(capacity, small_capacity_)) {}

  std::string name() const override { return "s3fifo"; }
  uint64_t capacity() const override { return capacity_; }
  uint64_t bytes() const override { return small_.bytes() + main_.bytes(); }
  size_t size() const override { return small_.size() + main_.size(); }
  PolicyStats stats() const override { return stats_; }

  void Insert(const std::string& key, uint64_t size) override {
    if (PolicyNode* n = nodes_.Find(key)) {
      ListOf(n).Resize(n, size);
      ++stats_.updates;
      Hit(n);
      return;
    }
    ++stats_.inserts;
    if (PolicyNode* g = ghost_nodes_.Find(key)) {
      ++stats_.ghost_hits;
      ghost_.Unlink(g);
      ghost_nodes_.MoveTo(g, nodes_);
      g->size = size;
      g->freq = 0;
      g->queue = PolicyQueue::kMain;
      main_.PushHead(g);
    } else {
      PolicyNode* n = nodes_.Create(key, size);
      n->queue = PolicyQueue::kSmall;
      small_.PushHead(n);
    }
  }

  bool Access(const std::string& key) override {
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    ++stats_.hits;
    Hit(n);
    return true;
  }

  bool Contains(const std::string& key) const override { return nodes_.Find(key) != nullptr; }

  bool Erase(const std::string& key) override {
    if (PolicyNode* g = ghost_nodes_.Find(key)) DropGhost(g);
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    ++stats_.erases;
    ListOf(n).Unlink(n);
    nodes_.Destroy(n);
    return true;
  }

  bool Evict(const std::string& key) override {
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    ++stats_.evictions;
    ListOf(n).Unlink(n);
    if (n->queue == PolicyQueue::kMain || n->size > ghost_capacity_) {
      nodes_.Destroy(n);
      return true;
    }
    while (ghost_.bytes() + n->size > ghost_capacity_) DropGhost(ghost_.tail());
    nodes_.MoveTo(n, ghost_nodes_);
    n->queue = PolicyQueue::kGhost;
    n->freq = 0;
    ghost_.PushHead(n);
    return true;
  }

  std::vector<PolicyEntryState> SaveState() const override {
    std::vector<PolicyEntryState> out;
    out.reserve(ghost_.size() + small_.size() + main_.size());
    for (const NodeList* list : {&ghost_, &small_, &main_}) {
      for (PolicyNode* n = list->tail(); n != nullptr; n = n->newer) {
        out.push_back({n->key, n->size, n->queue, n->freq});
      }
    }
    return out;
  }

  // Foreign queues: sieve's hand is main. Frequencies are clamped to 0..3.
  Status RestoreState(const std::vector<PolicyEntryState>& state) override {
    ClearAll();
    for (const PolicyEntryState& e : state) {
      if (e.queue == PolicyQueue::kGhost) {
        if (nodes_.Find(e.key) == nullptr && ghost_nodes_.Find(e.key) == nullptr) {
          AddGhost(e.key, e.size);
        }
        continue;
      }
      PolicyNode* n = nodes_.Create(e.key, e.size);
      if (n == nullptr) {
        ClearAll();
        return Status::Invalid("policy state lists key twice: " + e.key);
      }
      if (PolicyNode* g = ghost_nodes_.Find(e.key)) DropGhost(g);
      n->freq = std::min(e.freq, kMaxFreq);
      n->queue = e.queue == PolicyQueue::kSmall ? PolicyQueue::kSmall : PolicyQueue::kMain;
      ListOf(n).PushHead(n);
    }
    stats_ = {};
    return Status::Ok();
  }

 protected:
  std::optional<std::string> FindVictim(const EvictablePredicate& evictable) override {
    // Consecutive refusals in main; when they cover all of main, every main key
    // is pinned and small is searched even below its 10% share.
    size_t main_refused = 0;
    for (size_t probes = 10 * size() + 1; probes > 0 && size() > 0; --probes) {
      if (!small_.empty() &&
          (small_.bytes() >= small_capacity_ || main_.empty() || main_refused >= main_.size())) {
        PolicyNode* n = small_.tail();
        if (n->freq >= kMoveToMainFreq) {
          ++stats_.promotions;
          MoveToMain(n);
        } else if (evictable(n->key)) {
          return n->key;
        } else {
          ++stats_.refusals;
          MoveToMain(n);
        }
      } else {
        PolicyNode* n = main_.tail();
        if (n->freq > 0) {
          ++stats_.reinsertions;
          --n->freq;
          main_refused = 0;
          main_.MoveToHead(n);
        } else if (evictable(n->key)) {
          return n->key;
        } else {
          ++stats_.refusals;
          ++main_refused;
          main_.MoveToHead(n);
        }
      }
    }
    return std::nullopt;
  }

 private:
  NodeList& ListOf(PolicyNode* n) { return n->queue == PolicyQueue::kSmall ? small_ : main_; }

  void Hit(PolicyNode* n) {
    if (n->freq < kMaxFreq) ++n->freq;
  }

  void MoveToMain(PolicyNode* n) {
    small_.Unlink(n);
    n->queue = PolicyQueue::kMain;
    main_.PushHead(n);
  }

  void AddGhost(const std::string& key, uint64_t size) {
    if (size > ghost_capacity_) return;
    if (PolicyNode* old = ghost_nodes_.Find(key)) DropGhost(old);
    while (ghost_.bytes() + size > ghost_capacity_) DropGhost(ghost_.tail());
    PolicyNode* g = ghost_nodes_.Create(key, size);
    g->queue = PolicyQueue::kGhost;
    ghost_.PushHead(g);
  }

  void DropGhost(PolicyNode* g) {
    ghost_.Unlink(g);
    ghost_nodes_.Destroy(g);
  }

  void ClearAll() {
    small_.Clear();
    main_.Clear();
    ghost_.Clear();
    nodes_.Clear();
    ghost_nodes_.Clear();
    stats_ = {};
  }

  const uint64_t capacity_;
  const uint64_t small_capacity_;
  const uint64_t ghost_capacity_;
  NodeMap nodes_;        // keys in small or main
  NodeMap ghost_nodes_;  // keys in ghost only (a key is never in both)
  NodeList small_;
  NodeList main_;
  NodeList ghost_;
  PolicyStats stats_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewS3FifoPolicy(uint64_t capacity) {
  return std::make_unique<S3FifoPolicy>(capacity);
}

}  // namespace objstore::cache_internal
