// Capacity: the node's byte budget for bodies, and eviction within it.
//
// Contract
// - used() counts every body byte this node holds on disk: committed bodies
//   (AddBody) and the temporary files of PUTs and cold fetches in flight
//   (Reservation). A writer reserves bytes *before* writing them, so used()
//   never exceeds max_bytes() and neither does the disk (sizes are file sizes).
// - Eviction runs on the Capacity's own thread, off the request path: when
//   used() passes the high watermark (95% of the budget by default), it takes
//   victims from the EvictionPolicy until used() is at the low watermark (90%)
//   or until a waiting reservation fits. Each victim's body is removed by the
//   owner's `remove_body` hook, which may refuse (the journal decides) or fail
//   (an I/O error: the body stays tracked and a later pass tries it again).
// - Never evicted: bodies added with evictable = false (level 0, or not yet in
//   the cold store; SetEvictable turns that on once the cold store has them),
//   bodies pinned by a reader (PinForRead) or by another holder of an open
//   descriptor (Pin), reservations. Only evictable
//   bodies are in the policy, so a budget full of level-0 bodies costs no scan.
// - A reservation that does not fit and cannot be made to fit (nothing left
//   to evict, or the deadline passed) fails with NoSpace: the caller answers
//   507 and nothing stored is touched. "Nothing left" means for good, not for
//   the moment: the reservation waits (up to the deadline) while something
//   short-lived may yet make room: bodies that only a pin keeps (their readers
//   finish), other writes in flight (they end as bodies, perhaps evictable
//   ones, or give their bytes back) and bodies whose cold-store upload is
//   running (UploadStarted: evictable once it succeeds). Without that, a GET
//   of an evicted body answered 507 while the budget held only level-1 PUTs
//   being uploaded and writes in flight (docs/ARCHITECTURE.md).
//   At most `max_settling_waiters` reservations wait for writes and uploads
//   at once (the others get the verdict at once, as before): the waiters
//   hold threads of the node's blocking pool, which the PUTs they wait for
//   need to finish.
// - Policy "none" (kNoEviction): nothing is ever evicted, the budget still
//   holds (507 when full), and reads take no lock at all: a pure store.
// - The policy's state (queues, frequencies) is saved through the `save_state`
//   hook every `state_save_interval` when it changed, and when the Capacity
//   stops; Load rebuilds it at start-up, so a restart keeps what is hot.
//
// Thread safety: every method may be called from any thread; one mutex guards
// the accounting and the policy, striped locks guard the pins. PinForRead
// never waits for that mutex: when it is busy the hit is not recorded
// (counted in dropped_hits). Reserve may block (call it off the event loops);
// every other method is O(1) apart from Load and state saves.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "cache/eviction_policy.h"

namespace objstore {

// The policy name that turns eviction off (see above).
inline constexpr const char* kNoEviction = "none";

struct CapacityOptions {
  uint64_t max_bytes = 0;               // the budget; > 0
  std::string policy = kDefaultPolicy;  // an EvictionPolicy name or kNoEviction
  // Eviction starts above high * max_bytes and stops at low * max_bytes. The
  // gap batches evictions (one wake-up frees ~5% of the budget) and leaves
  // room for PUTs to reserve without waiting for an eviction.
  double high_watermark = 0.95;
  double low_watermark = 0.90;
  std::chrono::milliseconds state_save_interval{30'000};
  // How long a Reserve waits for evictions to make room before NoSpace.
  std::chrono::milliseconds reserve_timeout{10'000};
  // How many Reserves may wait at once for writes and uploads in flight (see
  // above); 0: none does. The node sets half its blocking threads, rounded
  // down (NodeOptions::blocking_threads).
  size_t max_settling_waiters = 8;
};

// What became of a body the eviction asked its owner to remove.
enum class Removal {
  kRemoved,  // gone
  kRefused,  // may not go (the journal says so): out of the policy until SetEvictable
  kFailed,   // could not go now (an I/O error): kept, and offered again by a later pass
};

// What the owner of the bodies does for the Capacity (called without its lock).
struct CapacityHooks {
  // Removes the body of `key` at `version` if it may still go.
  std::function<Removal(const std::string& key, uint64_t version)> remove_body;
  // Persists an EncodePolicyState blob.
  std::function<void(const std::string& blob)> save_state;
};

// A body present at start-up.
struct StoredBody {
  std::string key;
  uint64_t version = 0;
  uint64_t size = 0;
  bool evictable = false;
};

struct CapacityStats {
  std::string policy;
  uint64_t max_bytes = 0;
  uint64_t used_bytes = 0;      // bodies + reservations
  uint64_t reserved_bytes = 0;  // temporary files of PUTs and fetches in flight
  uint64_t evictable_bytes = 0;
  uint64_t bodies = 0;
  uint64_t evictions = 0;
  uint64_t evicted_bytes = 0;
  uint64_t refused_reservations = 0;  // NoSpace answers
  uint64_t waiting_reservations = 0;  // Reserves waiting for room now
  uint64_t dropped_hits = 0;          // hits not recorded because the policy was busy
  uint64_t policy_hits = 0;           // hits the policy recorded (of keys it tracks)
};

class Capacity;

// Bytes reserved for a body being written; released when destroyed unless
// handed to AddBody. Movable, owned by one writer. A default-constructed one
// belongs to the first Capacity that grants it bytes.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept;
  Reservation& operator=(Reservation&& other) noexcept;
  ~Reservation();
  uint64_t bytes() const { return bytes_; }

 private:
  friend class Capacity;
  explicit Reservation(Capacity* owner) : owner_(owner) {}
  Capacity* owner_ = nullptr;
  uint64_t bytes_ = 0;
};

// Keeps a body from being evicted while a reader sends it.
class BodyPin {
 public:
  BodyPin() = default;
  BodyPin(BodyPin&& other) noexcept;
  BodyPin& operator=(BodyPin&& other) noexcept;
  ~BodyPin();
  // False when the body was already being evicted: the reader must treat it as
  // a miss (the pin still holds off any later eviction of the key).
  bool safe() const { return safe_; }

 private:
  friend class Capacity;
  BodyPin(Capacity* owner, size_t pin_id, bool safe)
      : owner_(owner), pin_id_(pin_id), safe_(safe) {}
  Capacity* owner_ = nullptr;
  size_t pin_id_ = 0;  // Capacity::PinIdOf the key
  bool safe_ = false;
};

class Capacity {
 public:
  // Invalid for a zero budget, bad watermarks or an unknown policy. The
  // eviction thread starts at once.
  static Result<std::unique_ptr<Capacity>> Open(const CapacityOptions& options,
                                                CapacityHooks hooks);
  ~Capacity();  // stops the thread and saves the policy state
  Capacity(const Capacity&) = delete;
  Capacity& operator=(const Capacity&) = delete;

  // Start-up: accounts `bodies` and rebuilds the policy from `saved_state`
  // (an EncodePolicyState blob, may be empty) restricted to the evictable
  // bodies; bodies the saved state does not know count as the coldest. A
  // corrupt state is logged and ignored. Returns how many keys it restored.
  size_t Load(const std::vector<StoredBody>& bodies, std::string_view saved_state);

  Reservation NewReservation() { return Reservation(this); }
  // Adds `bytes` to `r` if they fit now; never waits.
  bool TryReserve(Reservation& r, uint64_t bytes);
  // The same, but only while the used bytes stay at or under the low
  // watermark: for copies the node may do without (level-2 replicas), which
  // must never cause an eviction, or eviction and replication would take
  // turns on the same bodies.
  bool TryReserveSpare(Reservation& r, uint64_t bytes);
  // Adds `bytes` to `r`, waiting for evictions when needed. NoSpace when they
  // cannot fit (larger than the budget, nothing evictable, or the timeout).
  Status Reserve(Reservation& r, uint64_t bytes);

  // A body of `size` bytes is on disk as `key` at `version`, written under `r`
  // (or, with r == nullptr, without one: a hard link, start-up). Replaces the
  // entry of an older version of the key (the caller has removed its file).
  void AddBody(const std::string& key, uint64_t version, uint64_t size, bool evictable,
               Reservation* r);
  // The body of `key` at `version` is gone (deleted, superseded). A no-op when
  // the entry is of another version.
  void RemoveBody(const std::string& key, uint64_t version);
  // True while the budget counts a body of `key` at `version`: added and not
  // yet removed, evicted or replaced by another version's. An eviction whose
  // removal failed leaves it counted.
  bool Counts(const std::string& key, uint64_t version) const;
  // The body of `key` at `version` may (or may no longer) be evicted.
  void SetEvictable(const std::string& key, uint64_t version, bool evictable);
  // The cold-store upload of the body of `key` at `version` has started /
  // ended (after SetEvictable when it succeeded). While it runs, a Reserve
  // that finds nothing to evict waits for it (see above). No-ops for an entry
  // of another version or none.
  void UploadStarted(const std::string& key, uint64_t version);
  void UploadEnded(const std::string& key, uint64_t version);
  // Pins `key` against eviction and records a hit with the policy.
  BodyPin PinForRead(const std::string& key);
  // Records a hit of `key` with the policy if the policy is free this instant
  // (PinForRead's hit without the pin).
  void RecordHit(const std::string& key);
  // Records `count` hits of `key` (at most 16: every policy's frequency has
  // saturated by then), waiting for the policy: for hits counted before the
  // body was added (GETs served by a cold fetch before its commit). A no-op
  // for a key the policy does not track.
  void RecordHits(const std::string& key, uint32_t count);
  // Pins `key` against eviction without recording a hit: for a holder of a
  // descriptor of the body that is not a read (a cold fetch's own, whose file
  // keeps its pages while it is open, even after an unlink).
  BodyPin Pin(const std::string& key);
  // True while the eviction thread is removing the body of `key`.
  bool Evicting(const std::string& key);

  CapacityStats Stats() const;
  uint64_t max_bytes() const { return max_bytes_; }

 private:
  friend class Reservation;
  friend class BodyPin;
  struct Entry {
    uint64_t version = 0;
    uint64_t size = 0;
    bool evictable = false;
    bool uploading = false;  // between UploadStarted and UploadEnded
    // Which AddBody made it: the same version may be added again (a fetch
    // bringing an evicted body back) while the eviction pass removes it.
    uint64_t generation = 0;
  };
  struct PinState {
    int readers = 0;
    bool evicting = false;  // claimed by the eviction pass
  };
  // Pins are kept by a 64-bit hash of the key, not the key: a hit then
  // copies no string. Two keys of equal hash (odds 2^-64 per pair) would share
  // a pin: a reader of one holds off the other's eviction, and a reader of one
  // that meets the other's eviction fetches its body again. Both are harmless.
  struct PinShard {
    std::mutex mu;
    std::unordered_map<size_t, PinState> keys;  // guarded by mu
  };
  static size_t PinIdOf(const std::string& key) { return std::hash<std::string>{}(key); }
  Capacity(const CapacityOptions& options, CapacityHooks hooks,
           std::unique_ptr<EvictionPolicy> policy);
  void Release(uint64_t bytes);
  void Grant(Reservation& r, uint64_t bytes);  // requires mu_
  bool FitsUnder(uint64_t bytes, uint64_t limit) const;  // used_ + bytes <= limit; requires mu_
  void Unpin(size_t pin_id);
  PinShard& ShardOf(size_t pin_id);
  // Marks `key` as being evicted unless a reader holds it; false when one does.
  bool ClaimForEviction(const std::string& key);
  void EndEviction(const std::string& key);
  void EvictionLoop();
  bool WantsEviction() const;       // requires mu_
  uint64_t EvictionTarget() const;  // requires mu_
  void EvictPass(std::unique_lock<std::mutex>& lock);
  void SaveState(std::unique_lock<std::mutex>& lock);
  void Changed();  // requires mu_: wakes a stalled eviction
  // Requires mu_: bytes that may yet make room (writes in flight other than
  // the waiting reservations' own, bodies being uploaded).
  bool Settling() const;
  // Requires mu_: drops the entry's bytes and its policy node.
  void Forget(std::unordered_map<std::string, Entry>::iterator it);

  const CapacityOptions options_;
  const CapacityHooks hooks_;
  const uint64_t max_bytes_;
  const uint64_t high_bytes_;
  const uint64_t low_bytes_;

  mutable std::mutex mu_;
  std::condition_variable evict_cv_;                // wakes the eviction thread
  std::condition_variable space_cv_;                // wakes waiting reservations
  std::unique_ptr<EvictionPolicy> policy_;          // guarded by mu_; null: kNoEviction
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  uint64_t generations_ = 0;                        // guarded by mu_: the last Entry::generation
  std::array<PinShard, 16> pin_shards_;             // lock order: mu_ before a shard's mu
  std::atomic<uint64_t> dropped_hits_{0};
  uint64_t used_ = 0;                 // guarded by mu_
  uint64_t reserved_ = 0;             // guarded by mu_
  uint64_t demand_ = 0;               // guarded by mu_: bytes waiting reservations want
  uint64_t waiting_held_ = 0;         // guarded by mu_: bytes waiting reservations hold
  uint64_t uploading_bytes_ = 0;      // guarded by mu_: sizes of entries being uploaded
  size_t waiters_ = 0;                // guarded by mu_: Reserves waiting
  size_t settling_waiters_ = 0;       // guarded by mu_: ...of which may wait for Settling bytes
  uint64_t passes_ = 0;               // guarded by mu_: eviction passes finished
  std::atomic<bool> stalled_{false};  // written under mu_: the last pass found no victim
  bool stalled_on_pins_ = false;      // guarded by mu_: ...and readers held some candidates
  bool stalled_settling_ = false;     // guarded by mu_: ...and bytes were Settling
  uint64_t changes_ = 0;              // guarded by mu_: events that may unstall eviction
  uint64_t stalled_at_ = 0;           // guarded by mu_: changes_ when the pass stalled
  bool state_dirty_ = false;          // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  CapacityStats counters_;            // guarded by mu_: evictions, refusals
  std::thread thread_;
};

}  // namespace objstore
