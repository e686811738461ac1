// OpenBodyCache: descriptors of committed bodies kept open between reads, so
// that a cache hit costs no open(2) and close(2) (BodyStore::OpenBody).
//
// Contract:
// - Get(key, version) returns a descriptor of exactly that version's body or
//   a miss. Bodies are immutable once committed and their file names carry
//   the version, so a cached descriptor never shows other bytes than the
//   version asked for: a newer version is a different key@version and misses.
// - Invalidate(key, version) is called after the body's file was unlinked or
//   replaced (a rename over it); from then on the cache holds no descriptor
//   of the old file, so its disk space is freed as soon as the readers that
//   already hold it finish, and its bytes are not served again.
// - A descriptor opened after a miss is cached by Insert only when no removal
//   happened in the key's shard since that miss (the miss hands out a ticket,
//   each Invalidate advances the shard's count). Otherwise an open racing an
//   unlink could cache a descriptor of an unlinked file after its
//   invalidation. Such a descriptor is still handed back, uncached: a reader
//   that opened the file before the unlink may send it, as without a cache.
// - Bounded: at most `capacity` descriptors, rounded up to a multiple of the
//   16 shards (0 disables the cache); in each shard the least recently used is
//   dropped first; one version per key.
// - A body unlinked behind the store's back (by hand) may still be served from
//   a cached descriptor, with its right bytes, until dropped.
//
// Thread safety: every method may be called concurrently (the event loops and
// the blocking pool); keys are sharded by hash, each shard under its mutex.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/unique_fd.h"
#include "ids/hlc.h"

namespace objstore {

// A body's descriptor, shared by the cache and the readers using it; closed
// when the last of them drops it.
class SharedFd {
 public:
  SharedFd() = default;
  explicit SharedFd(UniqueFd fd) : fd_(std::make_shared<const UniqueFd>(std::move(fd))) {}
  int get() const { return fd_ ? fd_->get() : -1; }
  bool valid() const { return fd_ && fd_->valid(); }

 private:
  std::shared_ptr<const UniqueFd> fd_;
};

class OpenBodyCache {
 public:
  explicit OpenBodyCache(size_t capacity);

  struct Lookup {
    SharedFd fd;          // valid on a hit
    uint64_t ticket = 0;  // on a miss: pass to Insert
  };
  Lookup Get(const std::string& key, HlcTimestamp version);
  // Caches `fd` as key@version unless its shard saw a removal since the miss
  // that gave `ticket`, or it holds a newer version of `key`. Returns `fd`,
  // shared, cached or not.
  SharedFd Insert(const std::string& key, HlcTimestamp version, UniqueFd fd, uint64_t ticket);
  // Drops the descriptor of key@version, if cached; call after the unlink.
  void Invalidate(const std::string& key, HlcTimestamp version);
  // Drops every descriptor (after removals not made through Invalidate).
  void Clear();
  size_t size() const;

 private:
  struct Entry {
    std::string key;
    HlcTimestamp version;
    SharedFd fd;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // most recently used first; guarded by mu
    // Views of the keys held in `lru`'s entries (list nodes never move).
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // guarded by mu
    uint64_t removals = 0;  // Invalidate and Clear calls so far; guarded by mu
  };
  static constexpr size_t kShards = 16;
  Shard& ShardFor(std::string_view key);

  size_t per_shard_;  // capacity of each shard; 0: nothing is cached
  std::array<Shard, kShards> shards_;
};

}  // namespace objstore
