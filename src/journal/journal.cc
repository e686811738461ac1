#include "journal/journal.h"

#include <sqlite3.h>

#include <filesystem>
#include <mutex>
#include <vector>

#include "base/failpoint.h"

namespace objstore {

const char* ColdStateName(ColdState s) {
  switch (s) {
    case ColdState::kNone: return "none";
    case ColdState::kPending: return "pending";
    case ColdState::kStored: return "stored";
  }
  return "none";
}

namespace {

// 2 added objects.stable_ms; a version-1 journal is upgraded at open.
constexpr int kSchemaVersion = 2;

// The schema is documented in docs/FORMATS.md; keep the two in step.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS objects (
  key          TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  size         INTEGER NOT NULL,
  etag         TEXT NOT NULL,
  timestamp_ns INTEGER NOT NULL,
  version      INTEGER NOT NULL,
  version_node TEXT NOT NULL,
  consistency  INTEGER NOT NULL,
  user_meta    TEXT NOT NULL,
  deleted      INTEGER NOT NULL,
  local_body   INTEGER NOT NULL,
  cold_state   INTEGER NOT NULL,
  stable_ms    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_state (
  name  TEXT PRIMARY KEY,
  state BLOB NOT NULL
) WITHOUT ROWID;
)sql";

// A full disk is NoSpace (the API's 507), whichever statement met it: a
// COMMIT that cannot grow the WAL as much as an INSERT.
Status StatusOfSqlite(int code, std::string msg) {
  code &= 0xff;  // the primary code of an extended one
  if (code == SQLITE_FULL) return Status::NoSpace(std::move(msg));
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Status::Corruption(std::move(msg));
  return Status::IOError(std::move(msg));
}

Status SqlError(sqlite3* db, const std::string& what) {
  return StatusOfSqlite(sqlite3_errcode(db), what + ": " + sqlite3_errmsg(db));
}

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  const int code = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (code == SQLITE_OK) return Status::Ok();
  std::string msg = std::string("sqlite: ") + (err ? err : sqlite3_errstr(code));
  sqlite3_free(err);
  return StatusOfSqlite(code, std::move(msg));
}

// RAII for prepared statements used once.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

bool HasColumn(sqlite3* db, const char* table, const char* column) {
  Stmt st;
  const std::string sql =
      std::string("SELECT 1 FROM pragma_table_info('") + table + "') WHERE name = ?1";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) return false;
  sqlite3_bind_text(st.s, 1, column, -1, SQLITE_STATIC);
  return sqlite3_step(st.s) == SQLITE_ROW;
}

std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s, i)) : "";
}

void Account(JournalCounts& c, const ObjectRecord& r, int sign) {
  auto add = [sign](uint64_t& field, uint64_t v) { field += sign > 0 ? v : -v; };
  if (r.deleted) {
    add(c.tombstones, 1);
    if (r.cold == ColdState::kPending) add(c.pending_deletes, 1);
    return;
  }
  add(c.live_objects, 1);
  if (r.local_body) {
    add(c.local_bodies, 1);
    add(c.local_bytes, r.size);
  }
  if (r.cold == ColdState::kPending) add(c.pending_cold, 1);
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::FromErrno(ec.value(), "create state dir " + dir);
  const std::string path = (std::filesystem::path(dir) / "journal.db").string();
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqlError(db, "open " + path);
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Journal> j(new Journal(db));
  if (Status s = j->Init(); !s.ok()) return s;
  if (Status s = j->LoadIndex(); !s.ok()) return s;
  return j;
}

Journal::~Journal() {
  sqlite3_finalize(upsert_stmt_);
  sqlite3_finalize(delete_stmt_);
  // A clean close checkpoints the WAL into the main file.
  sqlite3_close(db_);
}

Status Journal::Init() {
  sqlite3_busy_timeout(db_, 5000);
  // WAL: readers do not block the writer; FULL: fsync at every commit, so an
  // acknowledged record survives power loss, not only a process crash.
  if (Status s = Exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"); !s.ok()) return s;
  if (Status s = Exec(db_, kSchema); !s.ok()) return s;
  auto version = GetSetting("schema_version");
  if (version == "1") {
    // Version 1 lacked stable_ms (CREATE TABLE IF NOT EXISTS kept the old
    // table). The column and the new version number go in one transaction;
    // a journal that has the column but not the number (an earlier binary
    // added them one after the other and stopped between) gets the number.
    Status s = Exec(db_, "BEGIN IMMEDIATE");
    if (s.ok() && !HasColumn(db_, "objects", "stable_ms")) {
      s = Exec(db_, "ALTER TABLE objects ADD COLUMN stable_ms INTEGER NOT NULL DEFAULT 0");
    }
    if (s.ok()) s = PutSetting("schema_version", std::to_string(kSchemaVersion));
    if (s.ok()) s = Exec(db_, "COMMIT");
    if (!s.ok()) {
      (void)Exec(db_, "ROLLBACK");
      return s;
    }
    version = std::to_string(kSchemaVersion);
  }
  if (!version) {
    if (Status s = PutSetting("schema_version", std::to_string(kSchemaVersion)); !s.ok()) return s;
  } else if (*version != std::to_string(kSchemaVersion)) {
    return Status::Corruption("journal schema version " + *version + " is not " +
                              std::to_string(kSchemaVersion));
  }
  const char* sql =
      "INSERT INTO objects (key, name, size, etag, timestamp_ns, version, version_node,"
      " consistency, user_meta, deleted, local_body, cold_state, stable_ms)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
      " ON CONFLICT(key) DO UPDATE SET name=?2, size=?3, etag=?4, timestamp_ns=?5,"
      " version=?6, version_node=?7, consistency=?8, user_meta=?9, deleted=?10,"
      " local_body=?11, cold_state=?12, stable_ms=?13";
  if (sqlite3_prepare_v2(db_, sql, -1, &upsert_stmt_, nullptr) != SQLITE_OK) {
    return SqlError(db_, "prepare upsert");
  }
  if (sqlite3_prepare_v2(db_, "DELETE FROM objects WHERE key = ?1", -1, &delete_stmt_, nullptr) !=
      SQLITE_OK) {
    return SqlError(db_, "prepare delete");
  }
  return Status::Ok();
}

Status Journal::LoadIndex() {
  Stmt st;
  const char* sql =
      "SELECT key, name, size, etag, timestamp_ns, version, version_node, consistency,"
      " user_meta, deleted, local_body, cold_state, stable_ms FROM objects";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) {
    return SqlError(db_, "prepare load");
  }
  std::unique_lock lock(index_mu_);
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    auto r = std::make_shared<ObjectRecord>();
    r->key = ColumnText(st.s, 0);
    r->name = ColumnText(st.s, 1);
    r->size = static_cast<uint64_t>(sqlite3_column_int64(st.s, 2));
    r->etag = ColumnText(st.s, 3);
    r->timestamp_ns = sqlite3_column_int64(st.s, 4);
    r->version.packed = static_cast<uint64_t>(sqlite3_column_int64(st.s, 5));
    r->version_node = ColumnText(st.s, 6);
    r->consistency = sqlite3_column_int(st.s, 7);
    r->user_meta = ColumnText(st.s, 8);
    r->deleted = sqlite3_column_int(st.s, 9) != 0;
    r->local_body = sqlite3_column_int(st.s, 10) != 0;
    r->cold = static_cast<ColdState>(sqlite3_column_int(st.s, 11));
    r->stable_ms = sqlite3_column_int64(st.s, 12);
    Account(counts_, *r, +1);
    if (r->version > max_version_) max_version_ = r->version;
    index_.emplace(r->key, std::move(r));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "load journal");
  return Status::Ok();
}

Journal::RecordPtr Journal::Get(const std::string& key) const {
  std::shared_lock lock(index_mu_);
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : it->second;
}

Status Journal::WriteRecord(const ObjectRecord& r) {
  sqlite3_stmt* s = upsert_stmt_;
  sqlite3_reset(s);
  sqlite3_bind_text(s, 1, r.key.data(), static_cast<int>(r.key.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 2, r.name.data(), static_cast<int>(r.name.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(r.size));
  sqlite3_bind_text(s, 4, r.etag.data(), static_cast<int>(r.etag.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, r.timestamp_ns);
  sqlite3_bind_int64(s, 6, static_cast<sqlite3_int64>(r.version.packed));
  sqlite3_bind_text(s, 7, r.version_node.data(), static_cast<int>(r.version_node.size()),
                    SQLITE_STATIC);
  sqlite3_bind_int(s, 8, r.consistency);
  sqlite3_bind_text(s, 9, r.user_meta.data(), static_cast<int>(r.user_meta.size()),
                    SQLITE_STATIC);
  sqlite3_bind_int(s, 10, r.deleted ? 1 : 0);
  sqlite3_bind_int(s, 11, r.local_body ? 1 : 0);
  sqlite3_bind_int(s, 12, static_cast<int>(r.cold));
  sqlite3_bind_int64(s, 13, r.stable_ms);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return SqlError(db_, "write record " + r.key);
  return Status::Ok();
}

void Journal::IndexPut(RecordPtr r) {
  RecordPtr before;
  {
    std::unique_lock lock(index_mu_);
    auto [it, inserted] = index_.try_emplace(r->key, r);
    if (!inserted) {
      before = std::move(it->second);
      Account(counts_, *before, -1);
      it->second = r;
    }
    Account(counts_, *r, +1);
    if (r->version > max_version_) max_version_ = r->version;
  }
  if (listener_) listener_(before.get(), *r);
}

void Journal::SetChangeListener(ChangeListener listener) {
  std::lock_guard wlock(write_mu_);
  listener_ = std::move(listener);
  if (!listener_) return;
  std::shared_lock lock(index_mu_);
  for (const auto& [key, record] : index_) listener_(nullptr, *record);
}

Result<std::vector<Journal::Applied>> Journal::ApplyRemote(
    const std::vector<ObjectRecord>& records) {
  std::vector<Applied> out(records.size());
  std::vector<RecordPtr> next(records.size());
  std::lock_guard wlock(write_mu_);
  // Decide every record against the index (and against earlier records of the
  // same batch), then write them all in one transaction: one fsync per batch.
  std::unordered_map<std::string, RecordPtr> batch;
  auto current = [&](const std::string& key) {
    auto it = batch.find(key);
    return it != batch.end() ? it->second : Get(key);
  };
  for (size_t i = 0; i < records.size(); ++i) {
    const ObjectRecord& in = records[i];
    RecordPtr cur = current(in.key);
    if (!cur && in.deleted && in.stable_ms != 0) {
      // Every member already holds this tombstone, so nobody holds an older
      // live version: here it would only be purged again.
      continue;
    }
    if (!cur || in.NewerThan(*cur)) {
      auto r = std::make_shared<ObjectRecord>(in);
      // Another node's record of the very version held here (the same HLC
      // stamp and bytes, as when two nodes restored one cold copy): the body
      // file, named by key and version, is already this version's.
      r->local_body = cur && cur->local_body && !cur->deleted && !in.deleted &&
                      cur->version == in.version && cur->etag == in.etag && cur->size == in.size;
      // The node that made a version uploads it and deletes from the cold
      // store; here a tombstone has no cold work and a live record only
      // remembers whether the cold store has it.
      if (r->deleted) {
        r->cold = ColdState::kNone;
      } else if (r->cold != ColdState::kStored) {
        r->cold = r->consistency >= 1 ? ColdState::kPending : ColdState::kNone;
      }
      out[i] = Applied{true, cur};
      next[i] = r;
    } else if (!cur->deleted && in.version == cur->version &&
               in.version_node == cur->version_node && in.cold == ColdState::kStored &&
               cur->cold != ColdState::kStored) {
      auto r = std::make_shared<ObjectRecord>(*cur);
      r->cold = ColdState::kStored;
      next[i] = r;
    } else if (cur->deleted && in.deleted && in.version == cur->version &&
               in.version_node == cur->version_node && in.stable_ms != 0 &&
               cur->stable_ms == 0) {
      auto r = std::make_shared<ObjectRecord>(*cur);
      r->stable_ms = in.stable_ms;
      next[i] = r;
    } else {
      continue;
    }
    batch[in.key] = next[i];
  }
  if (batch.empty()) return out;
  std::vector<RecordPtr> writes;
  writes.reserve(batch.size());
  for (const auto& [key, r] : batch) writes.push_back(r);
  if (Status s = WriteTransaction(writes, "journal.mid_transaction"); !s.ok()) return s;
  for (const RecordPtr& r : writes) IndexPut(r);
  return out;
}

Status Journal::WriteTransaction(const std::vector<RecordPtr>& records, const char* failpoint) {
  if (Status s = Exec(db_, "BEGIN IMMEDIATE"); !s.ok()) return s;
  for (const RecordPtr& r : records) {
    if (Status s = WriteRecord(*r); !s.ok()) {
      (void)Exec(db_, "ROLLBACK");
      return s;
    }
    if (failpoint) failpoint::Hit(failpoint);
  }
  if (Status s = Exec(db_, "COMMIT"); !s.ok()) {
    (void)Exec(db_, "ROLLBACK");
    return s;
  }
  return Status::Ok();
}

// ------------------------------------------------------------ group commit

struct Journal::QueuedUpsert {
  const ObjectRecord& record;
  bool done = false;     // guarded by queue_mu_
  bool written = false;  // the answer, valid once done
  Status status;
};

Result<bool> Journal::Upsert(const ObjectRecord& record) {
  QueuedUpsert self{record};
  std::unique_lock qlock(queue_mu_);
  upsert_queue_.push_back(&self);
  queue_cv_.wait(qlock, [&] { return self.done || upsert_queue_.front() == &self; });
  if (!self.done) {
    // First in the queue: commit everything queued so far, this one included.
    std::vector<QueuedUpsert*> group(upsert_queue_.begin(), upsert_queue_.end());
    qlock.unlock();
    CommitUpserts(group);
    qlock.lock();
    for (QueuedUpsert* q : group) {
      upsert_queue_.pop_front();
      q->done = true;
    }
    queue_cv_.notify_all();
  }
  if (!self.status.ok()) return self.status;
  return self.written;
}

void Journal::CommitUpserts(const std::vector<QueuedUpsert*>& group) {
  std::lock_guard wlock(write_mu_);
  // Each record is decided against the index and the earlier ones of the
  // group, in queue order, as if they had come one at a time.
  std::unordered_map<std::string, RecordPtr> latest;
  std::vector<RecordPtr> writes;
  for (QueuedUpsert* q : group) {
    auto it = latest.find(q->record.key);
    RecordPtr cur = it != latest.end() ? it->second : Get(q->record.key);
    if (cur && !q->record.NewerThan(*cur)) continue;
    auto r = std::make_shared<const ObjectRecord>(q->record);
    latest[r->key] = r;
    writes.push_back(r);
    q->written = true;
  }
  Status s = writes.empty() ? Status::Ok() : WriteTransaction(writes, nullptr);
  for (QueuedUpsert* q : group) {
    q->status = s;
    q->written = q->written && s.ok();
  }
  if (!s.ok()) return;
  for (const RecordPtr& r : writes) IndexPut(r);
}

Status Journal::UpdateLocalState(const std::string& key, HlcTimestamp version, bool local_body,
                                 ColdState cold) {
  std::lock_guard wlock(write_mu_);
  RecordPtr cur = Get(key);
  if (!cur || cur->version != version) {
    return Status::NotFound("record " + key + " was superseded");
  }
  if (cur->local_body == local_body && cur->cold == cold) return Status::Ok();
  auto next = std::make_shared<ObjectRecord>(*cur);
  next->local_body = local_body;
  next->cold = cold;
  if (Status s = WriteRecord(*next); !s.ok()) return s;
  IndexPut(std::move(next));
  return Status::Ok();
}

Status Journal::MarkStable(const std::string& key, HlcTimestamp version, int64_t now_ms) {
  std::lock_guard wlock(write_mu_);
  RecordPtr cur = Get(key);
  if (!cur || !cur->deleted || cur->version != version) {
    return Status::NotFound("tombstone " + key + " was superseded");
  }
  if (cur->stable_ms != 0) return Status::Ok();
  auto next = std::make_shared<ObjectRecord>(*cur);
  next->stable_ms = now_ms;
  if (Status s = WriteRecord(*next); !s.ok()) return s;
  IndexPut(std::move(next));
  return Status::Ok();
}

Result<std::vector<Journal::RecordPtr>> Journal::PurgeTombstones(
    const std::vector<RecordPtr>& tombstones) {
  std::lock_guard wlock(write_mu_);
  std::vector<RecordPtr> purged;
  for (const RecordPtr& t : tombstones) {
    // Only the exact record the caller saw: a newer version stays.
    if (Get(t->key) == t && t->deleted && t->stable_ms != 0) purged.push_back(t);
  }
  if (purged.empty()) return purged;
  if (Status s = Exec(db_, "BEGIN IMMEDIATE"); !s.ok()) return s;
  for (const RecordPtr& t : purged) {
    sqlite3_reset(delete_stmt_);
    sqlite3_bind_text(delete_stmt_, 1, t->key.data(), static_cast<int>(t->key.size()),
                      SQLITE_STATIC);
    const int rc = sqlite3_step(delete_stmt_);
    sqlite3_reset(delete_stmt_);
    sqlite3_clear_bindings(delete_stmt_);
    if (rc != SQLITE_DONE) {
      Status s = SqlError(db_, "purge " + t->key);
      (void)Exec(db_, "ROLLBACK");
      return s;
    }
  }
  if (Status s = Exec(db_, "COMMIT"); !s.ok()) {
    (void)Exec(db_, "ROLLBACK");
    return s;
  }
  std::unique_lock lock(index_mu_);
  for (const RecordPtr& t : purged) {
    index_.erase(t->key);
    Account(counts_, *t, -1);
  }
  return purged;
}

void Journal::Scan(const std::function<void(const RecordPtr&)>& fn) const {
  std::shared_lock lock(index_mu_);
  for (const auto& [k, v] : index_) fn(v);
}

void Journal::ForEach(const std::function<void(const RecordPtr&)>& fn) const {
  std::vector<RecordPtr> snapshot;
  {
    std::shared_lock lock(index_mu_);
    snapshot.reserve(index_.size());
    for (const auto& [k, v] : index_) snapshot.push_back(v);
  }
  for (const auto& r : snapshot) fn(r);
}

JournalCounts Journal::Counts() const {
  std::shared_lock lock(index_mu_);
  return counts_;
}

HlcTimestamp Journal::MaxVersion() const {
  std::shared_lock lock(index_mu_);
  return max_version_;
}

// Settings and cache states are (name, value) rows: one reader and one
// writer for both tables. `select_sql` binds the name as ?1, `upsert_sql` the
// name and the value as ?1 and ?2; blob values are stored as BLOB, others as TEXT.
std::optional<std::string> Journal::ReadNamedRow(const char* select_sql, const std::string& name) {
  std::lock_guard wlock(write_mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, select_sql, -1, &st.s, nullptr) != SQLITE_OK) return std::nullopt;
  sqlite3_bind_text(st.s, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
  const void* bytes = sqlite3_column_blob(st.s, 0);
  return bytes ? std::string(static_cast<const char*>(bytes), sqlite3_column_bytes(st.s, 0)) : "";
}

Status Journal::WriteNamedRow(const char* upsert_sql, const std::string& name,
                              const std::string& value, bool blob) {
  std::lock_guard wlock(write_mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, upsert_sql, -1, &st.s, nullptr) != SQLITE_OK) {
    return SqlError(db_, "prepare write of " + name);
  }
  int bound = sqlite3_bind_text(st.s, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  if (bound == SQLITE_OK) {
    bound =
        blob ? sqlite3_bind_blob64(st.s, 2, value.data(), value.size(), SQLITE_STATIC)
             : sqlite3_bind_text64(st.s, 2, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
  }
  if (bound != SQLITE_OK) {  // SQLITE_TOOBIG past SQLite's length limit (1e9 bytes)
    return StatusOfSqlite(bound, "write " + name + ": a value of " + std::to_string(value.size()) +
                                     " bytes: " + sqlite3_errstr(bound));
  }
  if (sqlite3_step(st.s) != SQLITE_DONE) return SqlError(db_, "write " + name);
  return Status::Ok();
}

std::optional<std::string> Journal::GetSetting(const std::string& name) {
  return ReadNamedRow("SELECT value FROM settings WHERE name = ?1", name);
}

Status Journal::PutSetting(const std::string& name, const std::string& value) {
  return WriteNamedRow(
      "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = ?2",
      name, value, false);
}

std::string Journal::GetCacheState(const std::string& name) {
  return ReadNamedRow("SELECT state FROM cache_state WHERE name = ?1", name).value_or("");
}

Status Journal::PutCacheState(const std::string& name, const std::string& state) {
  return WriteNamedRow(
      "INSERT INTO cache_state (name, state) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET "
      "state = ?2",
      name, state, true);
}

}  // namespace objstore
