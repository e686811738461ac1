// BodyStore: object bodies as files under --files-dir.
//
// Layout (docs/FORMATS.md):
//   <dir>/tmp/<random>.part             bodies being received
//   <dir>/tmp/<random>.spare            empty bodies made ahead, or being received
//   <dir>/<h0h1>/<h2h3>/<name>@<version> committed bodies
// where h = hex XXH64 of the key, <name> is the key itself when it is made of
// [0-9A-Za-z_-] only and at most 128 bytes long (every ULID), else '~' and the
// hex XXH3-128 of the key, and <version> is the record's HLC stamp in hex.
//
// Why: sharding by a hash of the key (not the ULID's prefix, which is a
// timestamp and would put every recent object in one directory) keeps every
// directory small and evenly filled (65,536 leaves). No byte of a key or name
// reaches a path unescaped, so no input can point outside <dir>. The version in
// the file name means an overwrite never changes the bytes behind an open file
// or behind a record: a GET that looked up version V opens exactly V's body.
//
// Durability (docs/FORMATS.md): Open makes the 256 first-level directories and
// syncs the top once. Commit renames the body to its final path, then fsyncs
// it, its leaf directory and, for a leaf not yet known durable since Open, the
// leaf's parent; the caller commits the journal record only after that. The
// rename comes first because nothing refers to that path before the record
// exists, and start-up deletes unreferenced bodies: the first fsync then
// carries the data and both names in one filesystem commit.
//
// A few empty bodies are created in tmp/ ahead of need (RefillSpares), so
// that a request does not wait for the file system to allocate an inode.
// They are temporaries like any other: start-up deletes those a crash left.
//
// Open descriptors of committed bodies are kept for the next read, with the
// bytes of small bodies (store/open_body_cache.h): Remove drops a body's
// descriptor after unlinking it, so a removed body keeps no disk space once
// its readers finish; Commit drops the descriptor of a file its rename
// replaced.
//
// Thread safety: all methods may be called concurrently; a Writer belongs to
// one request.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/disk.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "ids/hlc.h"
#include "store/atomic_file.h"
#include "store/open_body_cache.h"

namespace objstore {

struct DiskUsage {
  uint64_t bytes_all = 0;   // filesystem size
  uint64_t bytes_free = 0;  // available to this process
  uint64_t bytes_used = 0;
};

class BodyStore {
 public:
  // How many body descriptors stay open by default: 4,096 (a hit then costs no
  // open and close), but at most a quarter of RLIMIT_NOFILE's soft limit so
  // that connections keep the rest.
  static size_t DefaultOpenBodies();

  // Creates the directory (and tmp/) when missing. `open_bodies`: descriptors
  // kept open for later reads (0: none). Invalid for "" or "/" (StoreDir).
  static Result<std::unique_ptr<BodyStore>> Open(const std::string& dir, Disk& disk,
                                                 size_t open_bodies = DefaultOpenBodies());

  // A new body in tmp/; commit it with Commit(writer, key, version). Takes a
  // spare made by RefillSpares when there is one, else creates the file.
  Result<std::unique_ptr<AtomicFile>> NewBody();
  // Creates empty bodies ahead, up to kSpareBodies, for NewBody to take.
  // Creating a file allocates an inode, which took 0.1-0.2 ms per file on
  // this project's test machines (ext4 without a journal, where the allocator
  // skips inodes deleted in the last seconds; docs/BENCHMARKS.md): a PUT or a
  // cold fetch would otherwise pay it before its first byte. Call it where a
  // request does not wait. A failure (full disk, no descriptors) is left to
  // NewBody, which then creates the file itself and reports it.
  void RefillSpares();
  // Whether there are fewer than kSpareBodies spares.
  bool WantsSpares() const;
  // Few, as each holds a descriptor; enough for requests that start together
  // between two refills. Named tmp/<random>.spare, a name they keep once taken.
  static constexpr size_t kSpareBodies = 4;
  static constexpr const char* kSpareSuffix = ".spare";
  // Makes the body durable as `key`'s `version` (rename, fsync, fsync dirs).
  Status Commit(AtomicFile& body, const std::string& key, HlcTimestamp version);

  // A descriptor of a committed body, for reading with offsets (pread,
  // sendfile: it is shared, its file position means nothing), with the
  // body's bytes when it has at most kInMemoryBodyMax of them. NotFound when
  // absent.
  Result<SharedBody> OpenBody(const std::string& key, HlcTimestamp version);
  // Size of a committed body, NotFound when absent.
  Result<uint64_t> BodySize(const std::string& key, HlcTimestamp version) const;
  // Makes the body of `from` also the body of `to` (a hard link, made durable),
  // for a new version whose bytes are unchanged (a raised level).
  Status LinkVersion(const std::string& key, HlcTimestamp from, HlcTimestamp to);
  // Removes a committed body and drops its cached descriptor; absent is not
  // an error.
  Status Remove(const std::string& key, HlcTimestamp version);

  // Start-up: deletes every temporary file (and spare) left by a crash.
  // Returns how many.
  size_t RemoveTemporaries();
  // Start-up: calls keep(file_name_key, version) for every committed body and
  // deletes those for which it returns false (orphans of interrupted writes).
  // `file_name_key` is the <name> part of the layout above. Only files named
  // as a body (<name>@<16 hex>, <name> as FileNameKey makes it) in directories
  // named as the shards (<2 hex>/<2 hex>) are bodies; anything else under
  // <dir> is not the store's and is left alone (logged, counted): --files-dir
  // may be a directory other data shares. An entry that cannot be read (a
  // symbolic link loop) is skipped and logged, never thrown.
  struct Sweep {
    size_t removed = 0;     // unreferenced bodies deleted
    size_t left_alone = 0;  // entries that are not the store's
  };
  Sweep RemoveUnreferenced(const std::function<bool(const std::string&, HlcTimestamp)>& keep);

  // The <name> part of the layout for `key`.
  static std::string FileNameKey(const std::string& key);
  std::string PathFor(const std::string& key, HlcTimestamp version) const;
  const std::string& dir() const { return dir_; }
  DiskUsage Usage() const;

 private:
  static constexpr size_t kShards = 65536;

  BodyStore(std::string dir, Disk& disk, size_t open_bodies)
      : dir_(std::move(dir)),
        disk_(disk),
        shard_durable_(new std::atomic<bool>[kShards]()),
        open_(open_bodies) {}
  std::string ShardDir(const std::string& key) const { return ShardDir(ShardOf(key)); }
  std::string ShardDir(uint16_t shard) const;
  static uint16_t ShardOf(const std::string& key);

  std::string dir_;
  std::string tmp_dir_;
  Disk& disk_;
  // Leaf directories known to exist durably (made and their parent synced).
  std::unique_ptr<std::atomic<bool>[]> shard_durable_;
  OpenBodyCache open_;
  mutable std::mutex spares_mu_;
  std::vector<std::unique_ptr<AtomicFile>> spares_;
};

}  // namespace objstore
