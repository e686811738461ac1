// OpenBodyCache: descriptors of committed bodies kept open between reads, so
// that a cache hit costs no open(2) and close(2) (BodyStore::OpenBody). A
// small body's bytes are kept with its descriptor (SharedBody), so that its
// answer is one sendmsg(2) rather than a send and a sendfile(2).
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
//   dropped first; one version per key. The bytes kept are bounded with them:
//   at most kInMemoryBodyMax per entry (64 MiB for 4,096 entries).
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
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/unique_fd.h"
#include "ids/hlc.h"

namespace objstore {

// Bodies of at most this many bytes are read into memory when opened and
// answered from there. The bound keeps the memory small (64 MiB for the
// cache's 4,096 entries); larger bodies go by sendfile(2), which does not copy
// them through user space.
inline constexpr uint64_t kInMemoryBodyMax = 16 * 1024;

// A committed body opened for reading, shared by the cache and the readers
// using it: its descriptor (closed when the last of them drops it) and, for a
// small body, its whole content as read through that descriptor.
class SharedBody {
 public:
  SharedBody() = default;
  explicit SharedBody(UniqueFd fd, std::optional<std::string> bytes = std::nullopt)
      : body_(std::make_shared<const Opened>(Opened{std::move(fd), std::move(bytes)})) {}
  int get() const { return body_ ? body_->fd.get() : -1; }
  bool valid() const { return body_ && body_->fd.valid(); }
  // The whole body when it is held in memory, else nullptr.
  const std::string* bytes() const { return body_ && body_->bytes ? &*body_->bytes : nullptr; }

 private:
  struct Opened {
    UniqueFd fd;
    std::optional<std::string> bytes;
  };
  std::shared_ptr<const Opened> body_;
};

class OpenBodyCache {
 public:
  explicit OpenBodyCache(size_t capacity);

  struct Lookup {
    SharedBody body;      // valid on a hit
    uint64_t ticket = 0;  // on a miss: pass to Insert
  };
  Lookup Get(const std::string& key, HlcTimestamp version);
  // Caches `body` as key@version unless its shard saw a removal since the miss
  // that gave `ticket`, or it holds a newer version of `key`. Returns `body`,
  // cached or not.
  SharedBody Insert(const std::string& key, HlcTimestamp version, SharedBody body,
                    uint64_t ticket);
  // Drops the descriptor (and bytes) of key@version, if cached; call after the
  // unlink.
  void Invalidate(const std::string& key, HlcTimestamp version);
  // Drops every descriptor (after removals not made through Invalidate).
  void Clear();
  size_t size() const;
  // False when the cache is disabled (capacity 0): nothing is kept, so a
  // small body's bytes would be read for one answer only.
  bool caching() const { return per_shard_ > 0; }

 private:
  struct Entry {
    std::string key;
    HlcTimestamp version;
    SharedBody body;
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
