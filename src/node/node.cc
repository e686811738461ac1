#include "node/node.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <limits>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "journal/record_checks.h"
#include "node/blocking.h"
#include "node/cold_parts.h"

namespace objstore {
namespace {

namespace fs = std::filesystem;

// `dir` made absolute, its existing part's symbolic links resolved; Invalid,
// naming `flag`, when it is empty or the filesystem's root.
Result<fs::path> DataDir(const char* flag, const std::string& dir) {
  if (dir.empty()) return Status::Invalid(fmt::format("{} is empty: name a directory", flag));
  std::error_code ec;
  fs::path path = fs::absolute(NormalizeDir(dir), ec);
  if (!ec) path = fs::weakly_canonical(path, ec);
  if (ec) return Status::Invalid(fmt::format("{} {}: {}", flag, dir, ec.message()));
  if (path == path.root_path()) {
    return Status::Invalid(
        fmt::format("{} {} is the filesystem's root: name a directory of its own", flag, dir));
  }
  return path;
}

// Whether `inner` is `outer` or a path below it.
bool Within(const fs::path& inner, const fs::path& outer) {
  return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

// Whether two existing paths are on one filesystem.
bool SameFilesystem(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev;
}

}  // namespace

Status Node::CheckDirectories(const NodeOptions& options) {
  auto files = DataDir("--files-dir", options.files_dir);
  if (!files.ok()) return files.status();
  auto state = DataDir("--state-dir", options.state_dir);
  if (!state.ok()) return state.status();
  if (Within(*state, *files)) {
    return Status::Invalid(fmt::format("--state-dir {} is inside --files-dir {}: give each its own",
                                       options.state_dir, options.files_dir));
  }
  if (!options.cold_dir) return Status::Ok();
  auto cold = DataDir("--cold-dir", *options.cold_dir);
  if (!cold.ok()) return cold.status();
  if (Within(*cold, *files) || Within(*files, *cold)) {
    return Status::Invalid(
        fmt::format("--cold-dir {} and --files-dir {} overlap (one is inside the other): give "
                    "each its own",
                    *options.cold_dir, options.files_dir));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Node>> Node::Open(const NodeOptions& options, const Clock& clock,
                                         RandomSource& random, Disk& disk,
                                         std::unique_ptr<ColdStore> cold_store) {
  std::unique_ptr<Node> node(new Node(options, clock, random));
  auto journal = Journal::Open(options.state_dir);
  if (!journal.ok()) return journal.status();
  node->journal_ = std::move(journal).value();
  auto bodies = BodyStore::Open(options.files_dir, disk);
  if (!bodies.ok()) return bodies.status();
  node->bodies_ = std::move(bodies).value();
  node->cold_ = std::move(cold_store);

  if (auto id = node->journal_->GetSetting("node_id")) {
    node->node_id_ = *id;
  } else {
    node->node_id_ = node->NewId();
    if (Status s = node->journal_->PutSetting("node_id", node->node_id_); !s.ok()) return s;
    spdlog::info("created node id {}", node->node_id_);
  }
  // Stamps issued after a restart must exceed every stamp already recorded,
  // even if the wall clock went back while the node was down.
  node->hlc_.Observe(node->journal_->MaxVersion());
  if (Status s = node->Reconcile(); !s.ok()) return s;
  node->RegisterMetrics();  // first: eviction may start as soon as the capacity opens
  if (Status s = node->OpenCapacity(options); !s.ok()) return s;
  return node;
}

Node::~Node() {
  transfer_pool_.join();
  cold_write_pool_.join();
  pool_.join();
  // Its eviction thread calls EvictBody, which takes commit locks declared
  // after it (so destroyed before it): stopped first, explicitly.
  capacity_.reset();
}

Status Node::Reconcile() {
  size_t temporaries = bodies_->RemoveTemporaries();
  bodies_->RefillSpares();
  size_t missing = 0;
  journal_->ForEach([&](const RecordPtr& r) {
    if (!r->local_body) return;
    auto size = bodies_->BodySize(r->key, r->version);
    if (size.ok() && *size == r->size) return;
    ++missing;
    spdlog::warn("body of {} version {} is {}; marked missing", r->key, r->version.ToString(),
                 size.ok() ? "of the wrong size" : "absent");
    (void)journal_->UpdateLocalState(r->key, r->version, false, r->cold);
  });
  // Keys whose file name is a hash cannot be read back from the name.
  std::unordered_map<std::string, std::string> hashed_names;
  journal_->ForEach([&](const RecordPtr& r) {
    if (r->local_body && BodyStore::FileNameKey(r->key) != r->key) {
      hashed_names.emplace(BodyStore::FileNameKey(r->key), r->key);
    }
  });
  BodyStore::Sweep orphans =
      bodies_->RemoveUnreferenced([&](const std::string& fname, HlcTimestamp v) {
        auto it = hashed_names.find(fname);
        RecordPtr r = journal_->Get(it == hashed_names.end() ? fname : it->second);
        return r && r->local_body && r->version == v;
      });
  if (temporaries || missing || orphans.removed || orphans.left_alone) {
    spdlog::info(
        "reconciled: {} temporary files removed, {} bodies missing, {} orphans removed, {} "
        "entries that are not bodies left alone",
        temporaries, missing, orphans.removed, orphans.left_alone);
  }
  return Status::Ok();
}

// The policy state is one journal row, rewritten whole when it changed, at
// most every policy_save_interval and at shutdown (docs/FORMATS.md).
constexpr const char* kPolicyStateName = "eviction_policy";

// How many times one cold fetch resumes a transfer that broke off mid-body
// (each resume is a GetRange; S3ColdStore retries it until its first byte):
// enough for a reset connection or two, bounded so that a store that keeps
// cutting its answers fails the fetch instead of looping.
constexpr int kMaxFetchResumes = 3;

Status Node::OpenCapacity(const NodeOptions& options) {
  std::vector<StoredBody> bodies;
  uint64_t stored_bytes = 0;
  journal_->ForEach([&](const RecordPtr& r) {
    if (r->deleted || !r->local_body) return;
    bodies.push_back({r->key, r->version.packed, r->size, r->cold == ColdState::kStored});
    stored_bytes += r->size;
  });
  CapacityOptions copt;
  copt.policy = options.eviction_policy;
  copt.max_bytes = options.max_size_bytes;
  copt.state_save_interval = options.policy_save_interval;
  // Half the pool, rounded down: the settling writes a waiter waits for need
  // the other half to commit. One thread: no waiter at all (NodeOptions).
  copt.max_settling_waiters = options.blocking_threads / 2;
  // The room for bodies, halved when the cold store's copies share the disk
  // (NodeOptions::max_size_bytes says why).
  const uint64_t free_bytes = bodies_->Usage().bytes_free;
  const bool cold_shares_disk =
      options.cold_dir && SameFilesystem(options.files_dir, *options.cold_dir);
  const uint64_t room = (free_bytes + stored_bytes) / (cold_shares_disk ? 2 : 1);
  const char* halved = cold_shares_disk ? ", halved as --cold-dir shares the disk" : "";
  if (copt.max_bytes == 0) {
    copt.max_bytes = room / 10 * 9;
    if (copt.max_bytes < kMinDefaultBudget) {
      return Status::NoSpace(fmt::format(
          "the disk of --files-dir {} is full: {} bytes free and {} bytes of bodies stored make a "
          "default budget of {} bytes{}, less than the {} bytes a node starts with; free space "
          "there, or set --max-size",
          options.files_dir, free_bytes, stored_bytes, copt.max_bytes, halved, kMinDefaultBudget));
    }
    spdlog::info(
        "--max-size not set: the budget for bodies is {} bytes (90% of free space and stored "
        "bodies{})",
        copt.max_bytes, halved);
  } else if (copt.max_bytes > room) {
    spdlog::warn(
        "--max-size {} is more than the disk has room for ({} bytes{}): a full disk will answer "
        "507 before the budget is reached",
        copt.max_bytes, room, halved);
  }
  CapacityHooks hooks;
  hooks.remove_body = [this](const std::string& key, uint64_t version) {
    return EvictBody(key, version);
  };
  // Warns once per run of failed saves (one every policy_save_interval would
  // flood the log when the state has outgrown SQLite's length limit).
  hooks.save_state =
      [this, failing = std::make_shared<std::atomic<bool>>(false)](const std::string& blob) {
        Status s = journal_->PutCacheState(kPolicyStateName, blob);
        if (s.ok()) {
          if (failing->exchange(false)) spdlog::info("eviction state saved again");
        } else if (!failing->exchange(true)) {
          spdlog::warn(
              "eviction state of {} bytes not saved (a restart will start from the last "
              "state saved, or an empty one): {}; not repeated until a save succeeds",
              blob.size(), s.ToString());
        }
      };
  auto capacity = Capacity::Open(copt, std::move(hooks));
  if (!capacity.ok()) return capacity.status();
  capacity_ = std::move(capacity).value();
  size_t restored = capacity_->Load(bodies, journal_->GetCacheState(kPolicyStateName));
  CapacityStats cs = capacity_->Stats();
  spdlog::info("capacity: {} of {} bytes used by {} bodies; eviction policy {} ({} keys restored)",
               cs.used_bytes, cs.max_bytes, cs.bodies, cs.policy, restored);
  if (cs.used_bytes > cs.max_bytes) {
    spdlog::warn("the stored bodies exceed --max-size: evicting what the cold store holds");
  }
  return Status::Ok();
}

Removal Node::EvictBody(const std::string& key, uint64_t version) {
  // Under the key's commit lock: a replica or fetch of the same version must
  // not commit its file between the journal update and the unlink below.
  std::lock_guard lock(CommitLock(key));
  RecordPtr cur = journal_->Get(key);
  if (!cur || cur->deleted || cur->version.packed != version || cur->cold != ColdState::kStored) {
    return Removal::kRefused;
  }
  // Journal first: from here GETs fetch the body back instead of opening the
  // file; a crash before the unlink leaves an orphan that start-up removes.
  // A record that already says so is an earlier eviction whose unlink failed.
  if (cur->local_body) {
    if (Status s = journal_->UpdateLocalState(key, cur->version, false, cur->cold); !s.ok()) {
      spdlog::warn("evicting {}: {}", key, s.ToString());
      return Removal::kFailed;
    }
  }
  if (Status s = bodies_->Remove(key, cur->version); !s.ok()) {
    spdlog::warn("evicting {}: {} (tried again later)", key, s.ToString());
    return Removal::kFailed;
  }
  evictions_->Inc();
  spdlog::debug("evicted {} ({} bytes)", key, cur->size);
  return Removal::kRemoved;
}

void Node::RegisterMetrics() {
  auto& m = metrics_;
  hits_ = &m.AddCounter("objstore_get_hits_total", "GETs served from a local body.");
  misses_ = &m.AddCounter("objstore_get_misses_total", "GETs whose body was not on this node.");
  cold_fetches_ = &m.AddCounter("objstore_cold_fetches_total", "Bodies fetched from the cold store.");
  cold_fetch_errors_ =
      &m.AddCounter("objstore_cold_fetch_errors_total", "Failed cold-store fetches.");
  cold_range_reads_ = &m.AddCounter("objstore_cold_range_reads_total",
                                    "Ranges read from the cold store for GETs ahead of a fetch.");
  cold_fetch_parts_ =
      &m.AddCounter("objstore_cold_fetch_parts_total",
                    "Ranged GETs that fetched a part of a large object beside its first part.");
  cold_fetch_resumes_ = &m.AddCounter(
      "objstore_cold_fetch_resumes_total",
      "Ranged GETs that resumed a cold-store transfer broken off mid-body.");
  cold_puts_ = &m.AddCounter("objstore_cold_puts_total", "Bodies stored in the cold store.");
  cold_put_errors_ = &m.AddCounter("objstore_cold_put_errors_total", "Failed cold-store puts.");
  cold_deletes_ = &m.AddCounter("objstore_cold_deletes_total", "Objects deleted from the cold store.");
  cold_delete_errors_ =
      &m.AddCounter("objstore_cold_delete_errors_total", "Failed cold-store deletes.");
  bytes_received_ = &m.AddCounter("objstore_put_bytes_total", "Body bytes committed by PUTs.");
  evictions_ = &m.AddCounter("objstore_evictions_total", "Bodies evicted to stay in --max-size.");
  auto capacity = [this](uint64_t CapacityStats::*field) {
    return [this, field] { return static_cast<double>(capacity_->Stats().*field); };
  };
  m.AddGauge("objstore_capacity_max_bytes", "The byte budget for bodies (--max-size).",
             capacity(&CapacityStats::max_bytes));
  m.AddGauge("objstore_capacity_used_bytes", "Bytes of bodies and of writes in flight.",
             capacity(&CapacityStats::used_bytes));
  m.AddGauge("objstore_capacity_reserved_bytes", "Bytes reserved by writes in flight.",
             capacity(&CapacityStats::reserved_bytes));
  m.AddGauge("objstore_capacity_evictable_bytes", "Bytes of bodies the policy may evict.",
             capacity(&CapacityStats::evictable_bytes));
  m.AddGauge("objstore_objects", "Live objects in the journal.",
             [this] { return static_cast<double>(journal_->Counts().live_objects); });
  m.AddGauge("objstore_tombstones", "Tombstones in the journal.",
             [this] { return static_cast<double>(journal_->Counts().tombstones); });
  m.AddGauge("objstore_local_bodies", "Bodies stored on this node.",
             [this] { return static_cast<double>(journal_->Counts().local_bodies); });
  m.AddGauge("objstore_local_bytes", "Bytes of bodies stored on this node.",
             [this] { return static_cast<double>(journal_->Counts().local_bytes); });
  m.AddGauge("objstore_cold_pending", "Objects waiting for the cold store.",
             [this] { return static_cast<double>(journal_->Counts().pending_cold); },
             "op=\"upload\"");
  m.AddGauge("objstore_cold_pending", "Objects waiting for the cold store.",
             [this] { return static_cast<double>(journal_->Counts().pending_deletes); },
             "op=\"delete\"");
  m.AddGauge("objstore_fetches_in_flight", "Cold-store fetches in flight.", [this] {
    std::lock_guard lock(fetches_mu_);
    return static_cast<double>(fetches_.size());
  });
  // The cold store's own traffic (S3 requests, retries, bytes), read at scrape time.
  auto cold = [this](uint64_t ColdStoreHealth::*field) {
    return [this, field] { return static_cast<double>(cold_->Health().*field); };
  };
  m.AddCounterFn("objstore_cold_requests_total", "Requests sent to the cold store.",
             cold(&ColdStoreHealth::requests));
  m.AddCounterFn("objstore_cold_retries_total", "Cold-store requests retried after a failure.",
             cold(&ColdStoreHealth::retries));
  m.AddCounterFn("objstore_cold_errors_total", "Failed cold-store requests (each attempt).",
             cold(&ColdStoreHealth::errors));
  m.AddCounterFn("objstore_cold_bytes_total", "Bytes moved to and from the cold store.",
                 cold(&ColdStoreHealth::bytes_up), "direction=\"up\"");
  m.AddCounterFn("objstore_cold_bytes_total", "Bytes moved to and from the cold store.",
             cold(&ColdStoreHealth::bytes_down), "direction=\"down\"");
  m.AddGauge("objstore_cold_reachable", "1 when the last cold-store call succeeded.",
             [this] { return cold_->Health().reachable ? 1.0 : 0.0; });
  m.AddGauge("objstore_disk_free_bytes", "Free bytes on the files directory's filesystem.",
             [this] { return static_cast<double>(bodies_->Usage().bytes_free); });
}

Result<std::unique_ptr<AtomicFile>> Node::BeginPut() {
  auto body = bodies_->NewBody();
  if (bodies_->WantsSpares() && !refilling_spares_.exchange(true)) {
    boost::asio::post(pool_, [this] {
      bodies_->RefillSpares();
      refilling_spares_.store(false);
    });
  }
  return body;
}

Status Node::CheckPut(const PutSpec& spec) const {
  RecordPtr cur = journal_->Get(spec.key);
  if (cur && !cur->deleted && spec.consistency < cur->consistency) {
    return Status::Conflict("object " + spec.key + " has consistency level " +
                            std::to_string(cur->consistency) + "; a level cannot be lowered");
  }
  return CheckColdMeta(spec.key, spec.name, spec.user_meta, spec.consistency);
}

Status Node::CheckColdMeta(const std::string& key, const std::string& name,
                           const std::string& user_meta, int consistency) const {
  if (consistency < 1) return Status::Ok();  // never in the cold store
  // The fields a PUT does not give yet at their longest.
  const std::string longest_etag = "\"" + std::string(32, 'f') + "\"";
  return cold_->CheckMeta(ColdObjectMeta{key, name, consistency,
                                         std::numeric_limits<int64_t>::max(), user_meta, 0,
                                         longest_etag, std::numeric_limits<uint64_t>::max()});
}

Status Node::UploadToCold(const ObjectRecord& r) {
  // Reservations that find the budget full wait for the upload rather than
  // answer 507: the body is evictable once it succeeds. The mark (made at the
  // commit for a PUT, here for the retry loop) ends on every way out, after
  // SetEvictable on success.
  struct UploadMark {
    Capacity& capacity;
    const ObjectRecord& record;
    ~UploadMark() { capacity.UploadEnded(record.key, record.version.packed); }
  };
  capacity_->UploadStarted(r.key, r.version.packed);
  UploadMark mark{*capacity_, r};
  // Uploads of one key run one at a time, and only for the key's current
  // version: an older version can then never overwrite a newer one in the
  // cold store, whatever order the uploads were started in.
  KeyLocks::Guard lock(upload_locks_, r.key);
  RecordPtr cur = journal_->Get(r.key);
  if (!cur || cur->version != r.version || cur->deleted) return Status::Ok();  // superseded
  if (cur->cold == ColdState::kStored) return Status::Ok();
  ColdObjectMeta meta{r.key,       r.name, r.consistency, r.timestamp_ns,
                      r.user_meta, r.size, r.etag,        r.version.packed};
  Status s = cold_->Put(meta, bodies_->PathFor(r.key, r.version));
  if (!s.ok()) {
    cold_put_errors_->Inc();
    spdlog::warn("cold store put of {} failed: {}", r.key, s.ToString());
    return s;
  }
  cold_puts_->Inc();
  Status u = journal_->UpdateLocalState(r.key, r.version, r.local_body, ColdState::kStored);
  if (u.code() == StatusCode::kNotFound) {
    // Superseded while the upload ran: by a newer version, or by a delete made
    // on another node, whose own cold delete found nothing here yet. The copy
    // just stored is taken back out (never a newer one: Delete is by version),
    // or it would outlive the tombstone and come back with the next fetch.
    if (Status d = cold_->Delete(r.key, r.version.packed); !d.ok()) {
      cold_delete_errors_->Inc();
      spdlog::warn("cold store: {} was superseded during its upload and is still there: {}", r.key,
                   d.ToString());
    }
    return Status::Ok();
  }
  if (!u.ok()) return u;
  if (r.local_body) capacity_->SetEvictable(r.key, r.version.packed, true);
  return Status::Ok();
}

void Node::DropBody(const ObjectRecord& record) {
  (void)bodies_->Remove(record.key, record.version);
  capacity_->RemoveBody(record.key, record.version.packed);
}

std::mutex& Node::CommitLock(const std::string& key) {
  return commit_locks_[std::hash<std::string>{}(key) % commit_locks_.size()];
}

Status Node::DeleteFromCold(const ObjectRecord& tomb) {
  KeyLocks::Guard lock(upload_locks_, tomb.key);  // after any upload of this key in flight
  Status s = cold_->Delete(tomb.key, tomb.version.packed);
  if (!s.ok()) {
    cold_delete_errors_->Inc();
    spdlog::warn("cold store delete of {} failed (will retry): {}", tomb.key, s.ToString());
    return s;
  }
  cold_deletes_->Inc();
  (void)journal_->UpdateLocalState(tomb.key, tomb.version, false, ColdState::kNone);
  return s;
}

Result<Committed> Node::FinishPut(const PutSpec& spec, AtomicFile& body, Reservation* reserved) {
  if (Status s = CheckPut(spec); !s.ok()) return s;
  ObjectRecord r;
  r.key = spec.key;
  r.name = spec.name;
  r.consistency = spec.consistency;
  r.user_meta = spec.user_meta;
  r.size = body.size();
  r.etag = body.ETag();
  r.timestamp_ns = clock_.NowNanos();
  r.version = hlc_.Now();
  r.version_node = node_id_;
  r.local_body = true;
  r.cold = spec.consistency >= 1 ? ColdState::kPending : ColdState::kNone;
  {
    std::lock_guard lock(CommitLock(r.key));
    RecordPtr previous = journal_->Get(r.key);
    if (previous && !r.NewerThan(*previous)) {
      // A peer's version with an equal or later stamp arrived meanwhile: ours
      // is superseded at once (LWW), and its file name may be that version's.
      bytes_received_->Inc(r.size);
      return Committed{std::make_shared<const ObjectRecord>(r)};
    }
    if (Status s = bodies_->Commit(body, r.key, r.version); !s.ok()) return s;
    auto written = journal_->Upsert(r);
    if (!written.ok()) {
      (void)bodies_->Remove(r.key, r.version);
      return written.status();
    }
    bytes_received_->Inc(r.size);
    if (!*written) {
      (void)bodies_->Remove(r.key, r.version);
      return Committed{std::make_shared<const ObjectRecord>(r)};
    }
    if (previous && previous->local_body && previous->version != r.version) {
      (void)bodies_->Remove(previous->key, previous->version);
    }
    // Under the lock, as the body's journal record: a later version's commit
    // (or a delete) settles the budget after this one, never before it.
    // Not evictable until the cold store has it (UploadToCold).
    capacity_->AddBody(r.key, r.version.packed, r.size, false, reserved);
    // Counted as uploading from here, not from when the cold write pool gets
    // to it: a Reserve meanwhile waits for these bytes instead of answering
    // 507. UploadToCold (or the retry loop's, if the caller never gets to it)
    // ends the mark.
    if (r.consistency >= 1) capacity_->UploadStarted(r.key, r.version.packed);
  }
  return Committed{RecordAsNow(r), r.consistency >= 1};
}

PutOutcome Node::ToColdStore(const ObjectRecord& committed) {
  Status cold = committed.deleted ? DeleteFromCold(committed) : UploadToCold(committed);
  return PutOutcome{RecordAsNow(committed), std::move(cold)};
}

Node::RecordPtr Node::RecordAsNow(const ObjectRecord& r) const {
  RecordPtr now = journal_->Get(r.key);
  if (!now || now->version != r.version) now = std::make_shared<const ObjectRecord>(r);
  return now;
}

Result<SharedBody> Node::OpenBody(const ObjectRecord& record) const {
  if (!record.local_body) return Status::NotFound("no local body of " + record.key);
  return bodies_->OpenBody(record.key, record.version);
}

void Node::ForgetLocalBody(const ObjectRecord& record) {
  // A body being evicted is not "vanished": the eviction settles its record
  // and its bytes (forgetting it here would drop them before the unlink).
  if (capacity_->Evicting(record.key)) return;
  RecordPtr cur = journal_->Get(record.key);
  if (!cur || cur->version != record.version || !cur->local_body) return;
  if (Result<uint64_t> size = bodies_->BodySize(record.key, record.version);
      size.status().code() != StatusCode::kNotFound) {
    if (!size.ok()) spdlog::warn("body of {} kept: {}", record.key, size.status().ToString());
    return;  // still there (or unknown): only a missing file is forgotten
  }
  spdlog::warn("body of {} version {} vanished from disk", record.key, record.version.ToString());
  (void)journal_->UpdateLocalState(record.key, record.version, false, record.cold);
  capacity_->RemoveBody(record.key, record.version.packed);
}

std::shared_ptr<ColdFetch> Node::FetchFromCold(const std::string& key, bool restore_unknown) {
  std::lock_guard lock(fetches_mu_);
  auto& slot = fetches_[key];
  if (slot) return slot;  // join the transfer in flight
  auto fetch = std::make_shared<ColdFetch>();
  slot = fetch;
  boost::asio::post(transfer_pool_, [this, key, restore_unknown, fetch] {
    Result<RecordPtr> outcome = Status::IOError("fetch did not run");
    try {
      outcome = RunColdFetch(key, restore_unknown, *fetch);
    } catch (const std::exception& e) {
      outcome = Status::IOError(std::string("cold fetch failed: ") + e.what());
    }
    if (!outcome.ok() && outcome.status().code() != StatusCode::kNotFound &&
        outcome.status().code() != StatusCode::kDeleted) {
      cold_fetch_errors_->Inc();
    }
    const bool committed = outcome.ok();
    const uint32_t early_hits = fetch->Finish(std::move(outcome));
    if (committed && early_hits > 0) capacity_->RecordHits(key, early_hits);
    // Out of the table only once finished: no fetch in flight means its
    // readers were woken (a request in between joins the finished fetch and
    // gets its outcome at once).
    std::lock_guard lock(fetches_mu_);
    if (auto it = fetches_.find(key); it != fetches_.end() && it->second == fetch) {
      fetches_.erase(it);
    }
  });
  return fetch;
}

std::shared_ptr<ColdFetch> Node::ReadColdRange(RecordPtr record, uint64_t offset, uint64_t length) {
  auto read = std::make_shared<ColdFetch>();
  boost::asio::post(transfer_pool_, [this, record = std::move(record), offset, length, read] {
    Status s = Status::IOError("range read did not run");
    try {
      s = RunColdRange(*record, offset, length, *read);
    } catch (const std::exception& e) {
      s = Status::IOError(std::string("range read failed: ") + e.what());
    }
    if (!s.ok()) cold_fetch_errors_->Inc();
    read->Finish(s.ok() ? Result<RecordPtr>(record) : Result<RecordPtr>(s));
  });
  return read;
}

std::shared_ptr<ColdFetch> Node::FetchInFlight(const std::string& key) {
  std::lock_guard lock(fetches_mu_);
  auto it = fetches_.find(key);
  return it == fetches_.end() ? nullptr : it->second;
}

std::shared_ptr<ColdFetch> Node::VerifiedFetch(const std::string& key,
                                               const ObjectRecord* current) {
  std::shared_ptr<ColdFetch> fetch = FetchInFlight(key);
  if (!fetch) return nullptr;
  const ColdFetch::Progress p = fetch->Current();
  if (!p.status.ok() || !p.verified) return nullptr;
  const ObjectRecord& shown = fetch->record();
  if (shown.etag.empty()) return nullptr;
  if (current && (current->deleted || current->version != shown.version ||
                  current->version_node != shown.version_node || current->etag != shown.etag)) {
    return nullptr;
  }
  if (!fetch->CountEarlyHit()) capacity_->RecordHit(key);  // committed meanwhile
  return fetch;
}

namespace {

// The metadata of a cold copy comes from whoever wrote the bucket: a name or
// user meta that a PUT would have refused (control characters, not UTF-8, not
// a JSON object of strings) and an etag that is not one are dropped, as they
// would reach response headers and JSON as they are.
void SanitizeColdMeta(ColdObjectMeta& m) {
  auto drop = [&](const char* what, std::string& value, std::string replacement) {
    spdlog::warn("cold copy of {}: {} dropped: not valid", m.key, what);
    value = std::move(replacement);
  };
  if (!CheckName(m.name).ok()) drop("name", m.name, "");
  if (Result<std::string> user_meta = ParseUserMeta(m.user_meta); user_meta.ok()) {
    m.user_meta = std::move(user_meta).value();
  } else {
    drop("user meta", m.user_meta, "{}");
  }
  if (!m.etag.empty() && !IsEntityTag(m.etag)) drop("etag", m.etag, "");
}

// Writes what the cold store hands over into a fetch's file and publishes it
// to the fetch's readers (the bytes that complete the transfer wait for
// PublishVerified: ColdFetch::PublishBytes).
//
// libcurl hands over what one read brought in pieces of at most
// CURL_MAX_WRITE_SIZE (16 KiB); appending and publishing each piece cost a
// write and a wake-up of every reader (a sendfile of 16 KiB) per piece. They
// are gathered up to the end of a read (a shorter piece) or kGather bytes.
//
// A reader woken from here is queued on this thread's CPU, where it waited
// out the rest of the fetcher's time slice (0.68 ms in a scheduler trace of a
// 4 MiB miss, while the fetcher copied bytes the reader could have been
// sending). The fetcher hands the CPU over the first time a publication of
// bytes wakes a reader (and when the verification does); not for every piece
// in between, where the two would take turns for no gain.
class FetchWriter {
 public:
  FetchWriter(AtomicFile& file, ColdFetch& fetch) : file_(file), fetch_(fetch) {
    pending_.reserve(kGather + kCurlPiece);
  }
  Status Take(std::span<const char> chunk) {
    pending_.insert(pending_.end(), chunk.begin(), chunk.end());
    if (chunk.size() >= kCurlPiece && pending_.size() < kGather) return Status::Ok();
    return Flush();
  }
  Status Flush() {
    if (pending_.empty()) return Status::Ok();
    Status a = file_.Append(pending_);
    pending_.clear();
    if (a.ok()) Publish();
    return a;
  }
  // Takes the next `length` bytes, written past the end by ColdParts, as
  // appended, and publishes them (after a Flush: nothing pending).
  Status Adopt(uint64_t length) {
    Status a = file_.AdoptWritten(length);
    if (a.ok()) Publish();
    return a;
  }

 private:
  void Publish() {
    if (fetch_.PublishBytes(file_.size()) && !handed_over_) {
      handed_over_ = true;
      std::this_thread::yield();
    }
  }
  static constexpr size_t kCurlPiece = 16 * 1024, kGather = 256 * 1024;
  AtomicFile& file_;
  ColdFetch& fetch_;
  std::vector<char> pending_;
  bool handed_over_ = false;
};

}  // namespace

Status Node::RunColdRange(const ObjectRecord& record, uint64_t offset, uint64_t length,
                          ColdFetch& read) {
  // The range's file counts against the budget until its reader is done (the
  // ColdFetch holds the reservation and the file's descriptor).
  Reservation& reserved = read.HoldSpace(BodyPin(), capacity_->NewReservation());
  if (Status r = capacity_->Reserve(reserved, length); !r.ok()) return r;
  auto file = bodies_->NewBody();  // removed when it goes out of scope, never committed
  if (!file.ok()) return file.status();
  UniqueFd reader(::open((*file)->temp_path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!reader.valid()) return Status::FromErrno(errno, "open " + (*file)->temp_path());
  FetchWriter writer(**file, read);
  // Only the bytes of the record's own version (an object of another tool
  // has no etag of ours: its size is all there is to check); refused before
  // any byte is served. A range broken off mid-body resumes where it stopped,
  // as a body's fetch does.
  Status s = GetResuming(
      *cold_, record.key, offset, length, kMaxFetchResumes,
      [&](const ColdObjectMeta& m) {
        if (m.size != record.size || (!m.etag.empty() && m.etag != record.etag)) {
          return Status::Unavailable("the cold store holds another version of " + record.key);
        }
        read.PublishMeta(record, std::move(reader), length);
        return Status::Ok();
      },
      [&](std::span<const char> chunk) { return writer.Take(chunk); },
      [&](uint64_t have, const Status& why) {
        if (Status f = writer.Flush(); !f.ok()) return f;  // what came is served meanwhile
        spdlog::info("range read of {} broke off after {} of {} bytes ({}); resuming", record.key,
                     have, length, why.message());
        cold_fetch_resumes_->Inc();
        return Status::Ok();
      });
  if (s.ok()) s = writer.Flush();
  if (!s.ok()) return s;
  if ((*file)->size() != length) {
    return Status::Corruption(fmt::format("range read of {} brought {} of {} bytes", record.key,
                                          (*file)->size(), length));
  }
  cold_range_reads_->Inc();
  read.PublishVerified();
  return Status::Ok();
}

Result<Node::RecordPtr> Node::RunColdFetch(const std::string& key, bool restore_unknown,
                                           ColdFetch& fetch) {
  // A GET that met a body in the middle of its eviction comes here: the
  // eviction settles within one journal commit, after which the record says
  // whether the body is still here. Rare, and on the blocking pool: a short
  // sleep loop rather than one more wake-up channel.
  for (int i = 0; i < 2000 && capacity_->Evicting(key); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  RecordPtr before = journal_->Get(key);
  if (before && before->deleted) return Status::Deleted(key + " is deleted");
  if (before && before->local_body) return before;  // a previous fetch brought it
  if (!before && !restore_unknown) return Status::NotFound("no object " + key);

  // The fetch keeps a descriptor of the body (its readers send from it) for as
  // long as it lives, which may be after the body is committed and evicted, or
  // after a failure unlinked it: the fetch holds the bytes reserved and the key
  // pinned until then, so the budget holds on disk and not only in the account.
  Reservation& reserved = fetch.HoldSpace(capacity_->Pin(key), capacity_->NewReservation());
  auto body = bodies_->NewBody();
  if (!body.ok()) return body.status();
  UniqueFd reader(::open((*body)->temp_path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!reader.valid()) return Status::FromErrno(errno, "open " + (*body)->temp_path());
  // An object we know that is larger than one part comes in parts over
  // parallel connections: the first part streams through `writer` as a whole
  // object would, ColdParts writes the others beside it, and they are adopted
  // in order once the first is in.
  const uint64_t part_size = options_.cold_fetch_part_size;
  const bool in_parts = before && !before->etag.empty() && options_.cold_fetch_streams > 1 &&
                        part_size > 0 && before->size > part_size;
  std::unique_ptr<ColdParts> parts;  // after `body`: destroyed (joined) before it
  ColdObjectMeta meta;
  FetchWriter writer(**body, fetch);
  auto take_meta = [&](const ColdObjectMeta& m) {
    meta = m;
    SanitizeColdMeta(meta);
    if (meta.size > options_.max_body_bytes) {
      return Status::TooLarge("cold object " + key + " exceeds the body size limit");
    }
    if (Status r = capacity_->Reserve(reserved, meta.size); !r.ok()) return r;
    // Refuse before any byte is served: a known record is only completed
    // with the bytes of its own version: its size, and its etag when the copy
    // carries ours (else the record's etag is checked against the bytes).
    if (before &&
        (meta.size != before->size || (!meta.etag.empty() && meta.etag != before->etag))) {
      return Status::Unavailable("the cold store holds another version of " + key);
    }
    ObjectRecord shown;
    if (before) {
      shown = *before;
    } else {
      shown.key = key;
      shown.name = meta.name;
      shown.size = meta.size;
      shown.etag = meta.etag;  // empty for objects not written by objstore
      shown.timestamp_ns = meta.timestamp_ns;
      shown.version = HlcTimestamp{meta.version};
      shown.consistency = meta.consistency;
      shown.user_meta = meta.user_meta;
      shown.cold = ColdState::kStored;
    }
    fetch.PublishMeta(std::move(shown), std::move(reader));
    return Status::Ok();
  };
  auto on_meta = [&](const ColdObjectMeta& m) {
    Status t = take_meta(m);
    if (t.ok() && in_parts) {
      parts = std::make_unique<ColdParts>(
          *cold_, **body, m, part_size, part_size, kMaxFetchResumes,
          ColdParts::Counters{*cold_fetch_parts_, *cold_fetch_resumes_});
      // No exception may cross libcurl's frames: a thread that cannot start
      // is one worker fewer (the fetcher adds one after the first part).
      try {
        for (int i = 1; i < options_.cold_fetch_streams; ++i) parts->AddWorker();
      } catch (const std::system_error& e) {
        spdlog::warn("fetch of {}: a part worker did not start: {}", key, e.what());
      }
    }
    return t;
  };
  // A transfer that broke off mid-body (a reset connection, a stalled S3) is
  // resumed from the first byte missing, for an object of ours only: its etag
  // and version tell that the bytes after the break belong to the same object
  // as those before it (and the hash of the whole body is checked below).
  Status s = GetResuming(
      *cold_, key, 0, in_parts ? part_size : kWholeObject, kMaxFetchResumes, on_meta,
      [&](std::span<const char> chunk) { return writer.Take(chunk); },
      [&](uint64_t have, const Status& why) {
        if (Status f = writer.Flush(); !f.ok()) return f;  // what came is served meanwhile
        spdlog::info("fetch of {} broke off after {} bytes ({}); resuming", key, have,
                     why.message());
        cold_fetch_resumes_->Inc();
        return Status::Ok();
      });
  if (s.ok()) s = writer.Flush();
  if (s.ok() && parts) {
    parts->AddWorker();  // the first part's connection is free
    // At most 1 MiB per adoption, so the readers are not held up by the
    // read-back and hash of a whole part.
    while (s.ok() && (*body)->size() < meta.size) {
      const uint64_t have = (*body)->size();
      Result<uint64_t> end = parts->WaitPast(have);
      s = end.ok() ? writer.Adopt(std::min<uint64_t>(*end - have, 1 << 20)) : end.status();
    }
    parts.reset();
  }
  if (!s.ok()) {
    if (s.code() == StatusCode::kNotFound) {
      return before ? Status::Unavailable("the cold store has lost " + key) : s;
    }
    if (s.code() == StatusCode::kNoSpace || s.code() == StatusCode::kTooLarge) return s;
    return s.code() == StatusCode::kUnavailable ? s : Status::Unavailable("cold store: " + s.message());
  }
  // A copy without our content hash (written to the bucket by something
  // else) is checked against the record's when the journal knows the object;
  // otherwise its size is all there is to check.
  if (meta.etag.empty()) meta.etag = before ? before->etag : (*body)->ETag();
  if ((*body)->size() != meta.size || (*body)->ETag() != meta.etag) {
    return Status::Corruption("cold copy of " + key + " does not match its size or etag");
  }
  // Readers finish their answers while the commit below runs.
  if (fetch.PublishVerified()) std::this_thread::yield();
  bodies_->RefillSpares();  // for the next miss or PUT, now that this one's readers are served
  cold_fetches_->Inc();
  // A copy another tool wrote carries no version of ours (0); a record
  // without one would be refused by every peer it is sent to. It is stamped
  // from the copy's own time (Last-Modified), which every node restoring it
  // reads alike and which any delete made since is stamped after; a stamp
  // taken from this node's clock at the commit would beat a delete made
  // elsewhere while the transfer ran, and bring the object back.
  HlcTimestamp version{meta.version};
  if (version.packed == 0 && meta.timestamp_ns > 0) {
    version = HlcTimestamp::From(static_cast<uint64_t>(meta.timestamp_ns / 1'000'000), 0);
  }
  if (version.packed == 0 || !hlc_.Observe(version)) version = hlc_.Now();

  // The journal may have changed during the transfer: decide against its
  // current state. A tombstone always wins.
  std::lock_guard lock(CommitLock(key));
  RecordPtr cur = journal_->Get(key);
  if (cur && cur->deleted) return Status::Deleted(key + " is deleted");
  if (cur && cur->local_body) return cur;
  if (cur) {
    if (cur->etag != meta.etag) {
      return Status::Unavailable("object " + key + " changed during the fetch");
    }
    if (Status c = bodies_->Commit(**body, key, cur->version); !c.ok()) return c;
    Status u = journal_->UpdateLocalState(key, cur->version, true, cur->cold);
    if (!u.ok()) {
      (void)bodies_->Remove(key, cur->version);
      return u;
    }
    capacity_->AddBody(key, cur->version.packed, meta.size, cur->cold == ColdState::kStored,
                       &reserved);
    return journal_->Get(key);
  }
  // Known when the fetch began and gone now: its tombstone was purged during
  // the transfer. Only a restore of an object never known here may make one.
  if (before) return Status::Deleted(key + " was deleted during the fetch");
  ObjectRecord r;
  r.key = key;
  r.name = meta.name;
  r.size = meta.size;
  r.etag = meta.etag;
  r.timestamp_ns = meta.timestamp_ns;
  r.version = version;
  r.version_node = node_id_;  // restored here: pushed to peers as this node's change
  r.consistency = meta.consistency;
  r.user_meta = meta.user_meta;
  r.local_body = true;
  r.cold = ColdState::kStored;
  if (Status c = bodies_->Commit(**body, key, r.version); !c.ok()) return c;
  auto written = journal_->Upsert(r);
  if (!written.ok() || !*written) {
    (void)bodies_->Remove(key, r.version);
    if (!written.ok()) return written.status();
    RecordPtr now = journal_->Get(key);  // someone wrote a newer version meanwhile
    if (now && now->deleted) return Status::Deleted(key + " is deleted");
    return Status::Unavailable("object " + key + " changed during the fetch");
  }
  capacity_->AddBody(key, r.version.packed, r.size, true, &reserved);
  return journal_->Get(key);
}

Result<Committed> Node::Delete(const std::string& key) {
  ObjectRecord t;
  {
    // Under the key's commit lock: the version read here is the one whose
    // body goes, not one that a PUT or fetch commits meanwhile.
    std::lock_guard lock(CommitLock(key));
    RecordPtr cur = journal_->Get(key);
    if (!cur) return Status::NotFound("no object " + key);
    if (cur->deleted) return Committed{cur};
    t = *cur;
    t.deleted = true;
    t.version = hlc_.Now();
    t.version_node = node_id_;
    t.timestamp_ns = clock_.NowNanos();
    t.local_body = false;
    t.cold = (cur->consistency >= 1 || cur->cold != ColdState::kNone) ? ColdState::kPending
                                                                      : ColdState::kNone;
    auto written = journal_->Upsert(t);
    if (!written.ok()) return written.status();
    // Refused: the record carries a stamp this node's clock does not follow
    // (a century ahead, HybridLogicalClock::kMaxAheadMs), so the tombstone
    // lost to it and the body stays.
    if (!*written) {
      return Status::Conflict("the current version of " + key +
                              " is stamped too far ahead of this node's clock to be deleted");
    }
    // Also when the record says it is gone but the budget still counts it:
    // an eviction whose unlink failed left the file and its entry behind.
    if (cur->local_body || capacity_->Counts(cur->key, cur->version.packed)) DropBody(*cur);
  }
  return Committed{std::make_shared<const ObjectRecord>(t), t.cold == ColdState::kPending};
}

Result<Committed> Node::RaiseLevel(const std::string& key, int consistency) {
  // Pinned before the record is read: a body the record says is here stays
  // until it is linked under the new version (eviction honours pins).
  BodyPin pin = capacity_->Pin(key);
  RecordPtr cur = journal_->Get(key);
  if (!cur) return Status::NotFound("no object " + key);
  if (cur->deleted) return Status::Deleted(key + " is deleted");
  if (consistency < cur->consistency) {
    return Status::Conflict("object " + key + " has consistency level " +
                            std::to_string(cur->consistency) + "; a level cannot be lowered");
  }
  if (consistency == cur->consistency) return Committed{cur};
  if (Status s = CheckColdMeta(key, cur->name, cur->user_meta, consistency); !s.ok()) return s;
  // The cold copy carries the level in its metadata, so it is rewritten even
  // when it exists; that needs the body here.
  if (!cur->local_body || !pin.safe()) {
    return Status::Unavailable("the body of " + key +
                               " is not on this node; GET it (which fetches it) and retry");
  }
  ObjectRecord r = *cur;
  r.consistency = consistency;
  r.version = hlc_.Now();
  r.version_node = node_id_;
  r.cold = ColdState::kPending;
  // The body file is named by version: link the new version's name to it.
  {
    std::lock_guard lock(CommitLock(key));
    if (RecordPtr now = journal_->Get(key);
        !now || now->deleted || now->version != cur->version || !now->local_body) {
      return Status::Unavailable("object " + key + " changed meanwhile; retry");
    }
    if (Status s = bodies_->LinkVersion(key, cur->version, r.version); !s.ok()) return s;
    auto written = journal_->Upsert(r);
    if (!written.ok() || !*written) {
      (void)bodies_->Remove(key, r.version);
      if (!written.ok()) return written.status();
      return Status::Unavailable("object " + key + " changed meanwhile; retry");
    }
    (void)bodies_->Remove(key, cur->version);
    // The same bytes under the new version's name, evictable once re-uploaded
    // (counted as uploading until then, as in FinishPut).
    capacity_->AddBody(key, r.version.packed, r.size, false, nullptr);
    capacity_->UploadStarted(key, r.version.packed);
  }
  return Committed{std::make_shared<const ObjectRecord>(r), true};
}

Result<std::vector<Node::RecordPtr>> Node::ApplyRemote(const std::vector<ObjectRecord>& records) {
  for (const ObjectRecord& r : records) {
    if (!hlc_.Observe(r.version)) {
      spdlog::warn("record {} from a peer is stamped a century ahead ({}): not followed", r.key,
                   r.version.ToString());
    }
  }
  auto applied = journal_->ApplyRemote(records);
  if (!applied.ok()) return applied.status();
  std::vector<RecordPtr> written;
  for (size_t i = 0; i < records.size(); ++i) {
    const Journal::Applied& a = (*applied)[i];
    if (!a.written) continue;
    // Only this node's own disk decides local_body; a newer version from a
    // peer retires the body of the version it replaces.
    if (a.replaced) {
      if (a.replaced->version != records[i].version) {
        // When the record says the body is here, or the budget still counts
        // it although the record says it is gone (an eviction whose unlink
        // failed left the file and its entry behind). Neither: there is no
        // file to remove (so for most records anti-entropy brings), and none
        // can appear, as every commit of a body checks under its commit lock
        // that its version is still the journal's. Under the key's commit
        // lock: a fetch or PUT that made the replaced version local hands its
        // body to the budget under that lock, so the removal comes after it
        // (else the budget would keep counting a body removed before it was
        // added).
        if (a.replaced->local_body ||
            capacity_->Counts(a.replaced->key, a.replaced->version.packed)) {
          std::lock_guard lock(CommitLock(records[i].key));
          DropBody(*a.replaced);
        }
      } else if (a.replaced->local_body) {
        // Another node stamped the same HLC value: the file under that name
        // holds the replaced version's bytes. Removed unless they are the new
        // version's too (kept by Journal::ApplyRemote) or a copy of the new
        // version was committed under the same name meanwhile.
        std::lock_guard lock(CommitLock(records[i].key));
        RecordPtr cur = journal_->Get(records[i].key);
        if (cur && cur->version == records[i].version && !cur->local_body) DropBody(*cur);
      }
    }
    if (RecordPtr now = journal_->Get(records[i].key)) written.push_back(std::move(now));
  }
  // The maker's word that the cold store has a version we hold a copy of
  // makes that copy evictable.
  for (const ObjectRecord& in : records) {
    if (in.deleted || in.cold != ColdState::kStored) continue;
    RecordPtr cur = journal_->Get(in.key);
    if (cur && cur->version == in.version && cur->local_body && cur->cold == ColdState::kStored) {
      capacity_->SetEvictable(cur->key, cur->version.packed, true);
    }
  }
  return written;
}

Status Node::MarkTombstoneStable(const ObjectRecord& tombstone, int64_t now_ms) {
  if (tombstone.consistency >= 1) {
    if (Status s = DeleteFromCold(tombstone); !s.ok()) return s;
  }
  return journal_->MarkStable(tombstone.key, tombstone.version, now_ms);
}

Result<Reservation> Node::ReserveReplica(uint64_t size) {
  Reservation reserved = capacity_->NewReservation();
  if (!capacity_->TryReserveSpare(reserved, size)) {
    return Status::NoSpace("no spare room in the byte budget for a replica");
  }
  return reserved;
}

Status Node::CommitReplica(const ObjectRecord& record, AtomicFile& body, Reservation& reserved) {
  std::lock_guard lock(CommitLock(record.key));
  RecordPtr cur = journal_->Get(record.key);
  if (!cur || cur->deleted || cur->version != record.version) {
    return Status::Conflict("object " + record.key + " changed during the transfer");
  }
  if (cur->local_body) return Status::Ok();
  if (body.size() != cur->size || body.ETag() != cur->etag) {
    return Status::Corruption("the copy of " + record.key + " does not match its size or etag");
  }
  if (Status c = bodies_->Commit(body, cur->key, cur->version); !c.ok()) return c;
  Status u = journal_->UpdateLocalState(cur->key, cur->version, true, cur->cold);
  if (!u.ok()) {
    (void)bodies_->Remove(cur->key, cur->version);
    return u.code() == StatusCode::kNotFound ? Status::Conflict(u.message()) : u;
  }
  capacity_->AddBody(cur->key, cur->version.packed, cur->size, cur->cold == ColdState::kStored,
                     &reserved);
  return Status::Ok();
}

size_t Node::RetryPendingColdWork() {
  std::vector<RecordPtr> pending;
  journal_->ForEach([&](const RecordPtr& r) {
    // The node that made a version owns its cold-store work (docs/CLUSTER.md).
    if (r->cold == ColdState::kPending && r->version_node == node_id_) pending.push_back(r);
  });
  size_t left = 0;
  for (const RecordPtr& r : pending) {
    if (r->deleted) {
      if (!DeleteFromCold(*r).ok()) ++left;
    } else if (r->local_body) {
      if (!UploadToCold(*r).ok()) ++left;
    } else {
      ++left;  // body gone before it reached the cold store: needs a peer (cluster)
    }
  }
  return left;
}

NodeStats Node::Stats() const {
  NodeStats s;
  s.journal = journal_->Counts();
  s.disk = bodies_->Usage();
  s.hits = hits_->Value();
  s.misses = misses_->Value();
  s.cold_fetches = cold_fetches_->Value();
  s.cold_range_reads = cold_range_reads_->Value();
  s.cold_fetch_resumes = cold_fetch_resumes_->Value();
  s.cold_fetch_parts = cold_fetch_parts_->Value();
  s.cold_fetch_errors = cold_fetch_errors_->Value();
  s.cold_puts = cold_puts_->Value();
  s.cold_put_errors = cold_put_errors_->Value();
  s.cold_deletes = cold_deletes_->Value();
  s.cold_delete_errors = cold_delete_errors_->Value();
  s.capacity = capacity_->Stats();
  return s;
}

}  // namespace objstore
