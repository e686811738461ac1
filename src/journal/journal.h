// Journal: the node's durable metadata, one ObjectRecord per key, in SQLite.
//
// Design
// - SQLite in WAL mode with synchronous=FULL: a committed record survives a
//   process crash and a power loss; readers never block the writer. The file is
//   `<state-dir>/journal.db`, inspectable with the sqlite3 shell (docs/FORMATS.md).
// - Every record is also held in an in-memory index (key -> immutable record),
//   loaded at open. The GET hit path reads only the index, never SQLite.
// - Writes are serialised by one mutex, go to SQLite first and to the index
//   only after the commit succeeded, so the index never shows an uncommitted
//   record.
// - Upserts commit in groups: concurrent callers queue their records, the
//   first in the queue writes all that are queued in one transaction (one
//   fsync of the WAL instead of one each) and hands every caller its answer;
//   a failed transaction fails every upsert in it. One caller alone commits
//   alone, at the cost it always had.
// - Upsert applies last-writer-wins (HLC, then node id): an older version never
//   replaces a newer one, whatever order concurrent writers commit in.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "journal/record.h"

struct sqlite3;
struct sqlite3_stmt;

namespace objstore {

struct JournalCounts {
  uint64_t live_objects = 0;  // records that are not tombstones
  uint64_t tombstones = 0;
  uint64_t local_bodies = 0;  // live records whose body is on this node
  uint64_t local_bytes = 0;   // their total size
  uint64_t pending_cold = 0;     // live records waiting for a cold-store upload
  uint64_t pending_deletes = 0;  // tombstones waiting for a cold-store delete
};

class Journal {
 public:
  using RecordPtr = std::shared_ptr<const ObjectRecord>;

  // Opens or creates `<dir>/journal.db`. Fails with IOError/Corruption when the
  // database cannot be opened or its schema is from an unknown version.
  static Result<std::unique_ptr<Journal>> Open(const std::string& dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The current record of `key`, tombstones included; nullptr when unknown.
  RecordPtr Get(const std::string& key) const;

  // Writes `record` if it is newer (NewerThan) than the stored one or the key is
  // unknown. Returns true when written, false when a newer version is stored.
  // Durable when it returns; may share its commit with concurrent calls.
  Result<bool> Upsert(const ObjectRecord& record);

  // Applies records made by other nodes, in one transaction. A record replaces
  // the stored one only when newer (NewerThan); it then arrives without a local
  // body (local state never travels), unless it is the stored version's HLC
  // stamp, etag and size from another maker, whose body is the one held. A record of the stored
  // version that says the cold store has it upgrades the stored cold state; a stable tombstone
  // makes the stored tombstone of its version stable. A stable tombstone of an
  // unknown key is not written (every member has it; it would only be purged).
  // For each record the answer tells what happened; `replaced` is the record
  // it superseded.
  struct Applied {
    bool written = false;
    RecordPtr replaced;
  };
  Result<std::vector<Applied>> ApplyRemote(const std::vector<ObjectRecord>& records);

  // Updates this node's local state of the exact version `version` of `key`.
  // NotFound when the stored record is another version (it was superseded).
  Status UpdateLocalState(const std::string& key, HlcTimestamp version, bool local_body,
                          ColdState cold);

  // Marks the tombstone `key`@`version` as held by every member since
  // `now_ms`. NotFound when the stored record is another version or not a
  // tombstone.
  Status MarkStable(const std::string& key, HlcTimestamp version, int64_t now_ms);

  // Removes each of `tombstones` that is still the stored record of its key
  // (the same RecordPtr) and stable, in one transaction. Returns the removed
  // ones; the change listener is not called (the caller owns what follows).
  Result<std::vector<RecordPtr>> PurgeTombstones(const std::vector<RecordPtr>& tombstones);

  // Calls fn for every record under the index's read lock, without a copy:
  // for quick scans of large journals. fn must not call the journal.
  void Scan(const std::function<void(const RecordPtr&)>& fn) const;
  // Calls fn for every record (a snapshot of the index; fn may call Get).
  void ForEach(const std::function<void(const RecordPtr&)>& fn) const;

  // Called for every change of the index, under the writer lock, with the
  // record before (nullptr for a new key) and after. It must be quick and must
  // not call back into the journal's writers. Set once, before concurrent use:
  // the listener first receives every existing record (before = nullptr).
  // An empty listener detaches the current one: when this returns, no call of
  // it is running or will start (its owner may then be destroyed).
  using ChangeListener = std::function<void(const ObjectRecord* before, const ObjectRecord& after)>;
  void SetChangeListener(ChangeListener listener);

  JournalCounts Counts() const;
  HlcTimestamp MaxVersion() const;

  // Small persistent settings (node id, ...). Empty optional when unset.
  std::optional<std::string> GetSetting(const std::string& name);
  Status PutSetting(const std::string& name, const std::string& value);

  // A cache's saved state (binary, e.g. the eviction policy's queues), one
  // per name; empty when none was saved. Written whole, a few times a minute.
  // A state longer than SQLite's length limit (1e9 bytes) is not written: an
  // IOError naming its size ("string or blob too big"), the saved one kept.
  std::string GetCacheState(const std::string& name);
  Status PutCacheState(const std::string& name, const std::string& state);

 private:
  explicit Journal(sqlite3* db) : db_(db) {}
  Status Init();
  Status LoadIndex();
  Status WriteRecord(const ObjectRecord& r);
  // Writes `records` in one transaction; `failpoint` (or none) is hit after
  // each. Requires write_mu_.
  Status WriteTransaction(const std::vector<RecordPtr>& records, const char* failpoint);
  struct QueuedUpsert;
  void CommitUpserts(const std::vector<QueuedUpsert*>& group);
  void IndexPut(RecordPtr r);  // requires write_mu_
  ChangeListener listener_;    // guarded by write_mu_
  std::optional<std::string> ReadNamedRow(const char* select_sql, const std::string& name);
  Status WriteNamedRow(const char* upsert_sql, const std::string& name, const std::string& value,
                       bool blob);

  sqlite3* db_;
  sqlite3_stmt* upsert_stmt_ = nullptr;
  sqlite3_stmt* delete_stmt_ = nullptr;
  std::mutex write_mu_;  // serialises writers (SQLite connection + index changes)
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<QueuedUpsert*> upsert_queue_;  // guarded by queue_mu_; the front commits
  mutable std::shared_mutex index_mu_;
  std::unordered_map<std::string, RecordPtr> index_;  // guarded by index_mu_
  JournalCounts counts_;                              // guarded by index_mu_
  HlcTimestamp max_version_;                          // guarded by index_mu_
};

}  // namespace objstore
