// DirColdStore: the embedded cold store, a local directory (SPEC §4).
//
// Layout: <dir>/<h0h1>/<name>@<stamp> bodies and <dir>/<h0h1>/<name>.meta,
// a JSON document (ColdObjectMeta plus "body": the body file's name). Put writes
// the body, then atomically replaces the .meta (AtomicFile: temp, fsync,
// rename, fsync dir), then removes the previous body: a reader that opened the
// .meta finds its body complete (or removed by a later Put, and then follows
// the .meta that Put wrote), and a crash leaves either the old or the new
// object, never a mix. <name> is escaped as in BodyStore, so keys never
// reach a path unescaped. Temporaries live in tmp/<owner>/ while the writing
// process holds locks/<owner>.lock, so nodes may share one directory and a
// node's start-up removes only the temporaries of owners that died.
//
// The read-compare-replace of a key's .meta (Put's "is mine newer?",
// Delete's "is the stored one older?") runs under the key's lock: a mutex
// for this process's threads and flock(2) on locks/key-<xx>.lock (one of
// 256, by the key's hash) for the other nodes sharing the directory. The
// body is copied before the lock is taken, so a large upload does not hold
// other nodes' writes of that shard back.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "base/disk.h"
#include "base/unique_fd.h"
#include "coldstore/cold_store.h"

namespace objstore {

class DirColdStore final : public ColdStore {
 public:
  // Creates the directory when missing, removes the temporaries of owners
  // that died. Invalid for "" or "/" (StoreDir).
  static Result<std::unique_ptr<DirColdStore>> Open(const std::string& dir, Disk& disk);
  ~DirColdStore() override;

  std::string Describe() const override { return "directory " + dir_; }
  Status Put(const ColdObjectMeta& meta, const std::string& body_path) override;
  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override;
  Status GetRange(const std::string& key, uint64_t offset, uint64_t length,
                  const std::function<Status(const ColdObjectMeta&)>& on_meta,
                  const std::function<Status(std::span<const char>)>& on_data) override;
  Status Delete(const std::string& key, uint64_t version) override;

 private:
  DirColdStore(std::string dir, Disk& disk) : dir_(std::move(dir)), disk_(disk) {}
  std::string ShardDir(const std::string& key) const;
  Result<std::string> ReadMetaFile(const std::string& key, ColdObjectMeta* meta) const;
  // The body the key's .meta names, opened for reading, with that .meta in
  // `meta` and the body's path in `path`. NotFound when there is no .meta.
  Result<UniqueFd> OpenBody(const std::string& key, ColdObjectMeta* meta, std::string* path) const;

  std::string dir_;
  std::string tmp_dir_;  // tmp/<owner>
  Disk& disk_;
  UniqueFd owner_lock_;  // flock held while this store lives
  std::mutex& KeyLock(const std::string& key);
  // The other processes' side of a key's lock: held while the result lives.
  Result<UniqueFd> LockKeyFile(const std::string& key);

  std::atomic<uint64_t> put_seq_{0};  // makes body names unique per Put
  // Puts and Deletes of one key are serialised (read-compare-replace of .meta).
  std::array<std::mutex, 64> key_locks_;
};

}  // namespace objstore
