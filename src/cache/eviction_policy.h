// EvictionPolicy: which body to evict next when the node is over its byte budget.
//
// Contract
// - A policy tracks keys with a size in bytes and answers one question: which
//   key should go next (Victim). It never deletes anything itself; the caller
//   removes the body and then confirms with Evict(key). So a failed deletion
//   (I/O error) leaves the policy unchanged, and a body that must not go (a
//   level-0 body, a body not yet in the cold store, a body being read) is
//   refused through the predicate passed to Victim.
// - The caller keeps the budget: after Insert it loops
//     while (policy.bytes() > low_watermark) {
//       auto v = policy.Victim(evictable); if (!v) break;  // none may go now
//       remove body of *v; policy.Evict(*v);
//     }
//   capacity() only sizes the policy's internal queues (S3-FIFO's small queue
//   is 10% of it); bytes() may exceed it until the caller evicts.
// - Every operation is O(1) amortised. Victim is O(1) amortised too; its worst
//   case, when nearly every key is refused, is O(size()) probes, after which it
//   returns nullopt (it has offered every tracked key at least once).
// - Refused keys are treated as in use: LRU/FIFO move them to the recent end,
//   S3-FIFO moves them to its main queue, SIEVE's hand passes over them. So a
//   long-pinned body does not make every later Victim call rescan it.
// - State survives a restart: SaveState lists every tracked key (and S3-FIFO's
//   ghost keys) with its queue and frequency, oldest first within each queue;
//   RestoreState rebuilds exactly the same order, so the victims after a
//   restart are the victims before it. RestoreState accepts the state of any
//   other policy too (queues it does not have are folded into its own), so
//   changing --eviction keeps what is hot. EncodePolicyState gives a compact
//   blob for the journal.
//
// Policies ("s3fifo" is the default)
// - lru:    one list, a hit moves the key to the recent end. The baseline.
// - fifo:   one list, hits change nothing. A reference point only.
// - s3fifo: S3-FIFO (Yang et al., SOSP'23). Small FIFO (10% of capacity bytes, or
//           of the bytes tracked when fewer),
//           main, ghost FIFO of keys recently evicted from small (no
//           bodies; at most 2 per tracked key). New keys enter small; a key hit
//           while in small moves to main when it reaches small's tail (its hit
//           spent: freq 0), a key never hit leaves from small (one-hit wonders
//           never touch main); a key found in the ghost enters main directly.
//           Main is two FIFOs (our addition): keys enter its probation
//           segment and move to the protected one when hit in main; it evicts
//           from probation while that holds >= 10% of main's bytes. Either
//           segment reinserts a key whose frequency is > 0 into protected and
//           decrements it (frequency counts hits, capped at 7). Why the default: on web and
//           object traces most keys are requested once; S3-FIFO keeps them out
//           of main, and its hit path only bumps a counter (no list move, no
//           lock contention on a list head), unlike LRU. Its tuning for byte
//           miss ratio: s3fifo_policy.cc and docs/BENCHMARKS.md.
// - sieve:  SIEVE (Zhang et al., NSDI'24). One FIFO list with a visited bit and a
//           hand that moves from old to new, clearing visited bits and stopping
//           at the first unvisited key. Also a counter-only hit path.
// All queues are budgeted in bytes; sizes are the body sizes the caller gives.
//
// Thread safety: thread-compatible. No method is synchronised; the caller
// serialises all calls on one policy (one mutex around the policy, held for
// Victim + Evict of one key). Distinct policy objects are independent.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace objstore {

// Returns false for a key that must not be evicted now (pinned).
using EvictablePredicate = std::function<bool(const std::string& key)>;

// Counters since construction (or the last RestoreState). Counters a policy has
// no use for stay 0.
struct PolicyStats {
  uint64_t inserts = 0;       // Insert of a key not tracked
  uint64_t updates = 0;       // Insert of a tracked key (new size, counts as a hit)
  uint64_t hits = 0;          // Access of a tracked key
  uint64_t evictions = 0;     // Evict
  uint64_t erases = 0;        // Erase of a tracked key
  uint64_t refusals = 0;      // candidates the Victim predicate refused
  uint64_t ghost_hits = 0;    // s3fifo: Insert found the key in the ghost queue
  uint64_t promotions = 0;    // s3fifo: small -> main
  uint64_t reinsertions = 0;  // s3fifo main / sieve: second chances given
};

// Which queue a saved key is in. The numbering is part of the saved format.
enum class PolicyQueue : uint8_t {
  kMain = 0,       // lru, fifo, sieve: their only list; s3fifo: main
  kSmall = 1,      // s3fifo: small
  kGhost = 2,      // s3fifo: ghost (key and size only; not tracked, no body)
  kHand = 3,       // sieve: the key under the hand (otherwise like kMain)
  kProbation = 4,  // s3fifo: main's probation segment (not yet hit in main)
};

// One key of a saved state. `freq` is the s3fifo frequency (0..7) or the sieve
// visited bit (0..1); 0 for lru and fifo.
struct PolicyEntryState {
  std::string key;
  uint64_t size = 0;
  PolicyQueue queue = PolicyQueue::kMain;
  uint8_t freq = 0;
  bool operator==(const PolicyEntryState&) const = default;
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;

  virtual std::string name() const = 0;
  // The byte budget the queues are sized for (given at construction).
  virtual uint64_t capacity() const = 0;
  // Total size of the tracked keys (ghost keys excluded).
  virtual uint64_t bytes() const = 0;
  // Number of tracked keys (ghost keys excluded).
  virtual size_t size() const = 0;
  virtual PolicyStats stats() const = 0;

  // Starts tracking `key` (a body was stored). For a key already tracked it
  // records the new size and counts as a hit.
  virtual void Insert(const std::string& key, uint64_t size) = 0;
  // Records a hit. Returns false (and changes nothing) when `key` is not tracked.
  virtual bool Access(const std::string& key) = 0;
  virtual bool Contains(const std::string& key) const = 0;
  // The body was deleted (object deleted or overwritten elsewhere): forget the
  // key and any history of it. Returns false when it was not tracked.
  virtual bool Erase(const std::string& key) = 0;
  // The body of `key` was evicted (normally the key Victim returned): stop
  // tracking it but keep what the policy learns from evictions (s3fifo's ghost).
  // Returns false when it was not tracked.
  virtual bool Evict(const std::string& key) = 0;

  // The key to evict next among those `evictable` accepts, or nullopt when the
  // policy tracks none it accepts. Does not remove the key (see Evict), but may
  // reorder queues (the policy's eviction pass), so two calls in a row return the
  // same key unless something changed in between.
  std::optional<std::string> Victim(const EvictablePredicate& evictable) {
    return FindVictim(evictable);
  }
  std::optional<std::string> Victim() {
    return FindVictim([](const std::string&) { return true; });
  }

  // Every tracked key (and ghost key), grouped by queue, oldest first.
  virtual std::vector<PolicyEntryState> SaveState() const = 0;
  // Replaces the whole state with `state` (stats are reset). Invalid, with the
  // policy left empty, when a key appears twice among tracked keys.
  virtual Status RestoreState(const std::vector<PolicyEntryState>& state) = 0;

 protected:
  virtual std::optional<std::string> FindVictim(const EvictablePredicate& evictable) = 0;
};

// "s3fifo", "lru", "fifo" or "sieve"; Invalid for any other name. The capacity
// sizes the policy's queues (see above); it must be > 0.
Result<std::unique_ptr<EvictionPolicy>> MakePolicy(const std::string& name,
                                                   uint64_t capacity_bytes);
// The names MakePolicy accepts, the default first.
std::vector<std::string> PolicyNames();
inline constexpr const char* kDefaultPolicy = "s3fifo";

// A compact binary form of a saved state for the journal:
//   "OSPS1" varint(count) { varint(key_len) key varint(size) u8(queue) u8(freq) }*
// Decode returns Corruption for anything malformed or truncated.
std::string EncodePolicyState(const std::vector<PolicyEntryState>& state);
Result<std::vector<PolicyEntryState>> DecodePolicyState(std::string_view blob);

}  // namespace objstore
