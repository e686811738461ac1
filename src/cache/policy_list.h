// Building blocks shared by the eviction policies (internal to src/cache/).
//
// - PolicyNode: one key; owned by a NodeMap, linked into exactly one NodeList.
// - NodeList: an intrusive doubly linked list with a byte count. `head` is the
//   newest end (where keys are inserted), `tail` the oldest (where eviction
//   looks). Every operation is O(1); nodes never move in memory, so the map can
//   key on a view of the node's own string (one copy of each key).
// - NodeMap: key -> node, the owner of the nodes.
//
// Thread safety: none; see eviction_policy.h.
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/eviction_policy.h"

namespace objstore::cache_internal {

struct PolicyNode {
  std::string key;
  uint64_t size = 0;
  PolicyNode* newer = nullptr;  // toward head
  PolicyNode* older = nullptr;  // toward tail
  PolicyQueue queue = PolicyQueue::kMain;
  uint8_t freq = 0;
};

class NodeList {
 public:
  NodeList() = default;
  NodeList(const NodeList&) = delete;
  NodeList& operator=(const NodeList&) = delete;

  PolicyNode* head() const { return head_; }
  PolicyNode* tail() const { return tail_; }
  bool empty() const { return head_ == nullptr; }
  uint64_t bytes() const { return bytes_; }
  size_t size() const { return count_; }

  void PushHead(PolicyNode* n) {
    n->older = head_;
    n->newer = nullptr;
    if (head_ != nullptr) head_->newer = n;
    head_ = n;
    if (tail_ == nullptr) tail_ = n;
    bytes_ += n->size;
    ++count_;
  }
  void Unlink(PolicyNode* n) {
    (n->newer != nullptr ? n->newer->older : head_) = n->older;
    (n->older != nullptr ? n->older->newer : tail_) = n->newer;
    n->newer = n->older = nullptr;
    assert(bytes_ >= n->size && count_ > 0);
    bytes_ -= n->size;
    --count_;
  }
  void MoveToHead(PolicyNode* n) {
    if (head_ == n) return;
    Unlink(n);
    PushHead(n);
  }
  // For a node in this list whose size changes.
  void Resize(PolicyNode* n, uint64_t new_size) {
    bytes_ = bytes_ - n->size + new_size;
    n->size = new_size;
  }
  void Clear() {
    head_ = tail_ = nullptr;
    bytes_ = 0;
    count_ = 0;
  }

 private:
  PolicyNode* head_ = nullptr;
  PolicyNode* tail_ = nullptr;
  uint64_t bytes_ = 0;
  size_t count_ = 0;
};

class NodeMap {
 public:
  PolicyNode* Find(std::string_view key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second.get();
  }
  // Creates a node; nullptr when the key exists.
  PolicyNode* Create(const std::string& key, uint64_t size) {
    auto node = std::make_unique<PolicyNode>();
    node->key = key;
    node->size = size;
    PolicyNode* raw = node.get();
    auto [it, inserted] = map_.try_emplace(std::string_view(raw->key), std::move(node));
    return inserted ? raw : nullptr;
  }
  void Destroy(PolicyNode* n) { map_.erase(std::string_view(n->key)); }
  // Hands a node (unlinked from any list) to `other` without reallocating it or
  // its key: s3fifo moves keys between its tracked and ghost maps on every miss.
  void MoveTo(PolicyNode* n, NodeMap& other) {
    other.map_.insert(map_.extract(std::string_view(n->key)));
  }
  size_t size() const { return map_.size(); }
  void Clear() { map_.clear(); }

 private:
  std::unordered_map<std::string_view, std::unique_ptr<PolicyNode>> map_;
};

// The parts LRU/FIFO and SIEVE share: one list of tracked keys with its map,
// their accounting, removal and the folding of any saved state into the list.
// Subclasses decide hits, victims and what a saved entry adds (freq, hand).
class SingleListPolicy : public EvictionPolicy {
 public:
  explicit SingleListPolicy(uint64_t capacity) : capacity_(capacity) {}
  uint64_t capacity() const override { return capacity_; }
  uint64_t bytes() const override { return list_.bytes(); }
  size_t size() const override { return list_.size(); }
  PolicyStats stats() const override { return stats_; }
  bool Contains(const std::string& key) const override { return nodes_.Find(key) != nullptr; }
  bool Erase(const std::string& key) override {
    if (!Remove(key)) return false;
    ++stats_.erases;
    return true;
  }
  bool Evict(const std::string& key) override {
    if (!Remove(key)) return false;
    ++stats_.evictions;
    return true;
  }

 protected:
  // Called before `n` leaves the list (SIEVE moves its hand off it).
  virtual void BeforeRemove(PolicyNode* n) {}
  // Forgets every key and the counters.
  virtual void Clear() {
    list_.Clear();
    nodes_.Clear();
    stats_ = {};
  }
  // Every queue but the ghost folded into the list in the order given (an
  // s3fifo state lists small before main: its small keys come out older);
  // `adopt` sets what the entry carries beyond key and size.
  Status RestoreList(const std::vector<PolicyEntryState>& state,
                     const std::function<void(const PolicyEntryState&, PolicyNode*)>& adopt) {
    Clear();
    for (const PolicyEntryState& e : state) {
      if (e.queue == PolicyQueue::kGhost) continue;
      PolicyNode* n = nodes_.Create(e.key, e.size);
      if (n == nullptr) {
        Clear();
        return Status::Invalid("policy state lists key twice: " + e.key);
      }
      adopt(e, n);
      list_.PushHead(n);
    }
    return Status::Ok();
  }

  NodeMap nodes_;
  NodeList list_;
  PolicyStats stats_;

 private:
  bool Remove(const std::string& key) {
    PolicyNode* n = nodes_.Find(key);
    if (n == nullptr) return false;
    BeforeRemove(n);
    list_.Unlink(n);
    nodes_.Destroy(n);
    return true;
  }

  const uint64_t capacity_;
};

// Constructors for the factory (eviction_policy.cc).
std::unique_ptr<EvictionPolicy> NewLruPolicy(uint64_t capacity, bool promote_on_hit);
std::unique_ptr<EvictionPolicy> NewS3FifoPolicy(uint64_t capacity);
std::unique_ptr<EvictionPolicy> NewSievePolicy(uint64_t capacity);

}  // namespace objstore::cache_internal
