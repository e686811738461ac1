// Node: one objstore node's object service, independent of HTTP.
//
// It owns the journal (metadata), the body store (local bodies), the cold store
// and the clocks, and implements the object operations of SPEC §1–2 on them.
//
// Write path (PUT), in this order, so that a crash at any point leaves either
// the previous object or the new one, never a mix, and never loses an
// acknowledged object:
//   1. the body streams into <files>/tmp (BeginPut + AtomicFile::Append);
//   2. FinishPut: rename to its versioned path, fsync the body and its
//      directory (BodyStore::Commit; before step 3 nothing names that path,
//      and start-up removes it if the node dies here);
//   3. the journal record commits (cold state "pending" for level >= 1),
//      sharing its fsync with concurrent PUTs (Journal::Upsert);
//   4. level >= 1: the cold store stores the body, then the record is marked
//      "stored"; if the cold store fails, the record stays pending (the body is
//      on this node), the caller answers 503, and the retry loop uploads later;
//   5. the previous version's body file is removed.
// FinishPut does steps 2, 3 and 5 on the blocking pool; step 4 is
// ToColdStore, which the caller runs next on the cold write pool (it lasts as
// long as S3 takes) and waits for before answering.
// Deletes commit a tombstone first, then remove the body (Delete), then delete
// from the cold store (ToColdStore; pending until it succeeds). A tombstone is
// never revived: fetches check the journal before and after the transfer.
//
// Start-up reconciles journal and disk: temporaries are removed, bodies no
// record points at are removed (files named as bodies in the body store's
// shard directories only: whatever else is under the files directory is left
// alone), and records whose body is missing or of the wrong size are marked
// as having no local body (never served as empty).
//
// Capacity (cache/capacity.h) keeps the byte budget: writers reserve before
// writing (PUT bodies, cold fetches), committed bodies are handed to it, GETs
// pin what they send, and it evicts bodies the cold store holds through
// EvictBody, which keeps the metadata (local_body = false) so the next GET
// fetches the body back. A peer-first fetch (cluster) belongs in FetchFromCold.
//
// Thread safety: every method may be called from any thread. Blocking methods
// (marked) must run on the blocking pool (RunBlocking), never on an event loop;
// those that wait for the cold store name the pool they run on instead.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/clock.h"
#include "base/disk.h"
#include "base/key_locks.h"
#include "base/random.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "cache/capacity.h"
#include "coldstore/cold_store.h"
#include "ids/hlc.h"
#include "ids/ulid.h"
#include "journal/journal.h"
#include "metrics/metrics.h"
#include "node/cold_fetch.h"
#include "store/body_store.h"

namespace objstore {

struct NodeOptions {
  std::string files_dir = "files/";
  std::string state_dir = "state/";
  // The embedded cold store's directory (DirColdStore, --cold-dir); none
  // when the cold store is a bucket. Checked by CheckDirectories, and read
  // for the default byte budget below.
  std::optional<std::string> cold_dir;
  // Threads for blocking work (fsync, SQLite), and as many again in each of
  // two pools for work that lasts as long as S3 takes: cold fetches and range
  // reads (the transfer pool), and uploads and deletes in the cold store (the
  // cold write pool). On pools of their own, slow misses and slow uploads
  // never hold up PUTs, deletes and journal commits. Two pools rather than
  // one for both: a burst of slow uploads (level >= 1 PUTs while S3 crawls)
  // would otherwise delay every miss, and a burst of misses every level >= 1
  // PUT's answer; each side keeps its own threads (idle ones cost a stack's
  // address space, not memory). fsync latency, not CPU, bounds PUT
  // throughput, so more threads than cores help. At least 1. Half of the
  // blocking threads, rounded down, may wait in a reservation for writes in
  // flight to settle (Capacity's max_settling_waiters): with one thread none
  // does, since a waiter would hold the very thread the write it waits for
  // needs to commit (that PUT stalled for the whole reserve timeout); such a
  // reservation gets its verdict at once (507 when the budget is full of
  // writes in flight).
  size_t blocking_threads = 16;
  // Largest object a cold-store fetch may bring in (guards the disk).
  uint64_t max_body_bytes = 5ull << 30;
  // Byte budget for bodies (--max-size). 0: 90% of the room for bodies at
  // start (the space free plus the bodies already stored), leaving room for
  // the journal and the rest of the filesystem; half of that when cold_dir is
  // on the files directory's filesystem. There the cold store keeps a copy of
  // every level >= 1 body for good (it never evicts), so each such byte the
  // cache takes costs two on the disk: with the whole room as the budget, the
  // disk filled (507) at half the budget with nothing evicted. Halved, the
  // cache evicts before its bodies and their copies fill the disk, and the
  // cold store keeps at least as much room to grow as the cache has. Open
  // fails with NoSpace when that default is under kMinDefaultBudget (a full
  // disk); an explicit budget is kept as given, with a warning when the disk
  // cannot hold it (and, sharing it, the cold copies).
  uint64_t max_size_bytes = 0;
  std::string eviction_policy = kDefaultPolicy;
  // A cold fetch of an object larger than one part, known to the journal,
  // reads its parts over this many connections at once (ColdParts); 1: one
  // GET for the whole object.
  int cold_fetch_streams = 4;
  uint64_t cold_fetch_part_size = 8ull << 20;
  // How often the eviction policy's state is saved to the journal (when changed).
  std::chrono::milliseconds policy_save_interval{30'000};
};

// A validated PUT request (the API layer checks ids, levels, names and JSON).
struct PutSpec {
  std::string key;
  std::string name;
  int consistency = 0;
  std::string user_meta = "{}";  // compact JSON object
};

// A change FinishPut, RaiseLevel or Delete committed. `to_cold`: the cold
// store must still take it (an upload at level >= 1, a delete of an object it
// may hold): the caller runs ToColdStore next, and a PUT or level raise
// answers only after it (SPEC §1).
struct Committed {
  Journal::RecordPtr record;
  bool to_cold = false;
};

// The outcome of ToColdStore: the record as it then stands, and whether the
// cold store acknowledged the change (false: 503 to the client, queued).
struct PutOutcome {
  Journal::RecordPtr record;
  Status cold_status;
};

struct NodeStats {
  JournalCounts journal;
  DiskUsage disk;
  uint64_t hits = 0, misses = 0, cold_fetches = 0, cold_range_reads = 0, cold_fetch_resumes = 0,
           cold_fetch_parts = 0, peer_fetches = 0;
  uint64_t cold_fetch_errors = 0, cold_puts = 0, cold_put_errors = 0, cold_deletes = 0,
           cold_delete_errors = 0;
  CapacityStats capacity;
};

class Node {
 public:
  using RecordPtr = Journal::RecordPtr;

  // The smallest default budget a node starts with (see max_size_bytes).
  static constexpr uint64_t kMinDefaultBudget = 1 << 20;

  // Invalid, naming the flag, when files_dir, state_dir or cold_dir (when
  // there is one) is empty or the filesystem's root, or when state_dir or cold_dir is
  // files_dir or inside it, or files_dir is inside cold_dir: start-up
  // deletes orphan bodies in the files directory's layout, and its budget
  // counts that directory's disk as the bodies'. Paths are compared made
  // absolute, with symbolic links resolved as far as they exist (they need
  // not exist yet). Call before opening the cold store or the node: both make
  // their directories.
  static Status CheckDirectories(const NodeOptions& options);
  static Result<std::unique_ptr<Node>> Open(const NodeOptions& options, const Clock& clock,
                                            RandomSource& random, Disk& disk,
                                            std::unique_ptr<ColdStore> cold_store);
  ~Node();

  const std::string& node_id() const { return node_id_; }
  std::string NewId() { return ulids_.Next().ToString(); }
  boost::asio::thread_pool& blocking_pool() { return pool_; }
  // Where ToColdStore and the cluster's cold deletes run: they wait for S3.
  boost::asio::thread_pool& cold_write_pool() { return cold_write_pool_; }
  MetricsRegistry& metrics() { return metrics_; }
  const ColdStore& cold_store() const { return *cold_; }

  // Ok; Conflict when `spec` would lower the level of the live object;
  // Invalid when the cold store could not keep its name and user meta.
  Status CheckPut(const PutSpec& spec) const;
  // A temporary body for a PUT: a spare made ahead when there is one (then
  // the pool makes another), else a file created here (blocking).
  Result<std::unique_ptr<AtomicFile>> BeginPut();
  // The byte budget: a PUT reserves its body's bytes here before writing them.
  Capacity& capacity() { return *capacity_; }
  // Commits a received body as `spec`, taking over the bytes `reserved` for it
  // (steps 2, 3 and 5 above; to_cold at level >= 1). Blocking. Errors:
  // Conflict, NoSpace, IOError.
  Result<Committed> FinishPut(const PutSpec& spec, AtomicFile& body,
                              Reservation* reserved = nullptr);
  // Takes `committed` (Committed::record with to_cold) to the cold store:
  // uploads the body and marks the record stored, or deletes the object. On
  // failure the record stays pending for RetryPendingColdWork. Blocking for as
  // long as S3 takes: run it on cold_write_pool(), never on blocking_pool().
  PutOutcome ToColdStore(const ObjectRecord& committed);

  // The current record (tombstones included), nullptr when unknown. Never blocks.
  RecordPtr Lookup(const std::string& key) const { return journal_->Get(key); }
  // Keeps the local body of `key` from eviction while the pin lives, and
  // records the access for the eviction policy. Not safe(): being evicted,
  // serve it as a miss. Never blocks.
  BodyPin PinBody(const std::string& key) { return capacity_->PinForRead(key); }
  // A descriptor of the local body of `record` (shared, possibly cached: read
  // it with offsets), with its bytes when the body is small
  // (store/open_body_cache.h). NotFound when this node has none.
  Result<SharedBody> OpenBody(const ObjectRecord& record) const;

  // Brings the body of `key` from the cold store. Concurrent callers for one
  // key share one transfer (single flight) and stream it as it arrives
  // (ColdFetch). `restore_unknown`: an id the journal does not know is restored
  // from the cold store's metadata (SPEC §2 step 5); otherwise the fetch fails
  // with NotFound. A tombstone fails it with Deleted. A transfer of an object
  // written by objstore that breaks off mid-body is resumed from its first
  // missing byte (a GetRange of the same size, etag and version), a bounded
  // number of times. A known object larger than cold_fetch_part_size comes in
  // parts over up to cold_fetch_streams ranged GETs at once (ColdParts); its
  // readers still get the bytes in order. Never blocks.
  std::shared_ptr<ColdFetch> FetchFromCold(const std::string& key, bool restore_unknown);
  // Reads bytes [offset, offset + length) of `record`'s body from the cold
  // store, for one GET whose range lies far ahead of the body's fetch: a
  // ColdFetch carrying that range (its byte 0 is the body's byte `offset`),
  // into a temporary file that is removed once its reader is done; never
  // committed. Fails with Unavailable when the cold store holds another
  // version. A transfer cut mid-body resumes as FetchFromCold's does. Never
  // blocks.
  std::shared_ptr<ColdFetch> ReadColdRange(RecordPtr record, uint64_t offset, uint64_t length);
  // The fetch of `key` in flight, nullptr when none. A client may have its
  // whole body (verified) before the fetch committed the record: a request
  // that must see the committed record waits for that commit
  // (PublicApi::SettleFetch). Never blocks.
  std::shared_ptr<ColdFetch> FetchInFlight(const std::string& key);
  // The fetch in flight of `key` whose body is here whole and verified while
  // its commit still runs, provided it is the body of `current` (the journal's
  // record; nullptr for an id being restored) and the answer it makes equals
  // the committed record's (an object written to the bucket by something else
  // gets its etag only at the commit): a GET may serve fd() as a hit then,
  // without waiting for the commit. The hit is counted for the eviction
  // policy (handed over at the commit, before which the policy does not know
  // the key). nullptr otherwise. Never blocks.
  std::shared_ptr<ColdFetch> VerifiedFetch(const std::string& key, const ObjectRecord* current);
  // Marks that the local body of `record` vanished (found missing on open),
  // once the file is confirmed gone: a body that exists but could not be
  // opened (out of descriptors, EIO) is kept and stays counted.
  void ForgetLocalBody(const ObjectRecord& record);

  // Tombstones `key` and removes its body (to_cold when the cold store may
  // hold the object). Blocking. NotFound when unknown; a tombstone is returned
  // as is (deleting twice is not an error).
  Result<Committed> Delete(const std::string& key);
  // Raises the level of a live object without re-sending its body (to_cold
  // unless it already had that level). Blocking. Conflict when lower than the
  // current level.
  Result<Committed> RaiseLevel(const std::string& key, int consistency);

  // Retries cold-store uploads and deletes left pending. Blocking, for as long
  // as S3 takes (the retry loop's own thread). Returns how many are still
  // pending.
  size_t RetryPendingColdWork();

  // ---- cluster (src/cluster/)
  // Applies records made by other nodes (Journal::ApplyRemote, last writer
  // wins) and removes the local bodies of the versions they superseded; moves
  // the HLC past every version seen. Blocking. Returns the records written.
  Result<std::vector<RecordPtr>> ApplyRemote(const std::vector<ObjectRecord>& records);
  // Tombstone purge (the cluster decides when; Journal::MarkStable and
  // Journal::PurgeTombstones). Blocking. Marking `tombstone` (this node's,
  // held by every member) stable first deletes the object from the cold store
  // once more when it had a level >= 1: another member may have finished an
  // upload of an older version after this node's first cold delete and
  // before the tombstone reached it (an upload still running then deletes
  // its own copy; none starts after). Fails, to be retried, when that delete
  // does. Blocking for as long as S3 takes: on cold_write_pool().
  Status MarkTombstoneStable(const ObjectRecord& tombstone, int64_t now_ms);
  Result<std::vector<RecordPtr>> PurgeTombstones(const std::vector<RecordPtr>& tombstones) {
    return journal_->PurgeTombstones(tombstones);
  }
  // Room for a replica of `size` bytes, taken only from the budget's spare
  // part (Capacity::TryReserveSpare). NoSpace when there is none now.
  Result<Reservation> ReserveReplica(uint64_t size);
  // Commits `body`, pulled from a peer under `reserved`, as the local body of
  // `record`'s version. Blocking. Conflict when that version was superseded,
  // Corruption when size or content hash differ from the record's.
  Status CommitReplica(const ObjectRecord& record, AtomicFile& body, Reservation& reserved);
  // A named setting of the journal (Journal::GetSetting, PutSetting). Blocking.
  std::optional<std::string> Setting(const std::string& name) { return journal_->GetSetting(name); }
  Status PutSetting(const std::string& name, const std::string& value) {
    return journal_->PutSetting(name, value);
  }
  // Journal change notifications (Journal::SetChangeListener).
  void SetChangeListener(Journal::ChangeListener listener) {
    journal_->SetChangeListener(std::move(listener));
  }
  // Every record, under the journal's read lock (Journal::Scan): fn must be
  // quick and must not call the node.
  void ScanRecords(const std::function<void(const RecordPtr&)>& fn) const {
    journal_->Scan(fn);
  }

  void RecordHit() { hits_->Inc(); }
  void RecordMiss() { misses_->Inc(); }
  NodeStats Stats() const;

 private:
  Node(const NodeOptions& options, const Clock& clock, RandomSource& random)
      : options_(options),
        clock_(clock),
        hlc_(clock),
        ulids_(clock, random),
        pool_(options.blocking_threads),
        cold_write_pool_(options.blocking_threads),
        transfer_pool_(options.blocking_threads) {}
  Status Reconcile();
  Status OpenCapacity(const NodeOptions& options);
  // The Capacity's eviction hook: drops the local body of `key` at `version`
  // if the journal says the cold store has it. Blocking.
  Removal EvictBody(const std::string& key, uint64_t version);
  // Invalid when an object of `consistency` >= 1 with this name and user meta
  // could not be kept by the cold store (ColdStore::CheckMeta).
  Status CheckColdMeta(const std::string& key, const std::string& name,
                       const std::string& user_meta, int consistency) const;
  void RegisterMetrics();
  Status UploadToCold(const ObjectRecord& record);
  Status DeleteFromCold(const ObjectRecord& tombstone);
  std::mutex& CommitLock(const std::string& key);
  // The journal's record of r.key while it is still r's version (with the
  // cold state and local_body as they now stand), else r itself.
  RecordPtr RecordAsNow(const ObjectRecord& r) const;
  // Removes the body file of `record`'s version and its entry in the budget.
  // Requires the key's commit lock.
  void DropBody(const ObjectRecord& record);
  Result<RecordPtr> RunColdFetch(const std::string& key, bool restore_unknown, ColdFetch& fetch);
  Status RunColdRange(const ObjectRecord& record, uint64_t offset, uint64_t length,
                      ColdFetch& read);

  NodeOptions options_;
  const Clock& clock_;
  HybridLogicalClock hlc_;
  UlidGenerator ulids_;
  std::string node_id_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<BodyStore> bodies_;
  std::unique_ptr<ColdStore> cold_;
  MetricsRegistry metrics_;
  std::mutex fetches_mu_;
  std::unordered_map<std::string, std::shared_ptr<ColdFetch>> fetches_;  // guarded by fetches_mu_
  Counter* hits_ = nullptr;
  Counter* misses_ = nullptr;
  Counter* cold_fetches_ = nullptr;
  Counter* cold_fetch_errors_ = nullptr;
  Counter* cold_range_reads_ = nullptr;
  Counter* cold_fetch_resumes_ = nullptr;
  Counter* cold_fetch_parts_ = nullptr;
  Counter* cold_puts_ = nullptr;
  Counter* cold_put_errors_ = nullptr;
  Counter* cold_deletes_ = nullptr;
  Counter* cold_delete_errors_ = nullptr;
  Counter* bytes_received_ = nullptr;
  Counter* evictions_ = nullptr;
  // After the journal and the bodies: destroyed (saving its state) before them.
  std::unique_ptr<Capacity> capacity_;
  // One upload or cold delete per key at a time; per key, not by hash: an
  // upload of a large body must not hold up other keys' uploads.
  KeyLocks upload_locks_;
  // By hash of key: a body file is committed and its record written as one
  // step. Two nodes can stamp the same HLC value, and file names carry the
  // version only, so a local PUT and a peer's copy of an equal-stamped version
  // must never write the same name in an interleaved order.
  std::array<std::mutex, 64> commit_locks_;
  std::atomic<bool> refilling_spares_{false};  // a RefillSpares is queued on pool_
  // The pools, declared last: destroyed (joined) first, while the stores
  // still exist.
  boost::asio::thread_pool pool_;
  // Cold-store uploads and deletes (NodeOptions::blocking_threads): each holds
  // its thread for as long as S3 takes, never one of pool_'s.
  boost::asio::thread_pool cold_write_pool_;
  // Cold fetches and range reads (NodeOptions::blocking_threads). Joined
  // before pool_: a fetch posts its spare-body refill there.
  boost::asio::thread_pool transfer_pool_;
};

}  // namespace objstore
