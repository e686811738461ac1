#include "journal/journal.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "base/test_util.h"

namespace objstore {
namespace {

ObjectRecord MakeRecord(const std::string& key, uint64_t version, const std::string& node = "A") {
  ObjectRecord r;
  r.key = key;
  r.name = "file.txt";
  r.size = 42;
  r.etag = "\"abc\"";
  r.timestamp_ns = 1'700'000'000'000'000'000;
  r.version.packed = version;
  r.version_node = node;
  r.consistency = 1;
  r.user_meta = R"({"Owner":"Ann"})";
  r.local_body = true;
  r.cold = ColdState::kPending;
  return r;
}

TEST(Journal, RecordsSurviveReopenWithEveryField) {
  testing::TempDir dir;
  {
    auto j = Journal::Open(dir.path());
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    ASSERT_TRUE((*j)->Upsert(MakeRecord("k1", 10)).value());
    ASSERT_TRUE((*j)->PutSetting("node_id", "N1").ok());
  }
  auto j = Journal::Open(dir.path());
  ASSERT_TRUE(j.ok());
  auto r = (*j)->Get("k1");
  ASSERT_TRUE(r);
  ObjectRecord want = MakeRecord("k1", 10);
  EXPECT_EQ(r->name, want.name);
  EXPECT_EQ(r->size, want.size);
  EXPECT_EQ(r->etag, want.etag);
  EXPECT_EQ(r->timestamp_ns, want.timestamp_ns);
  EXPECT_EQ(r->version, want.version);
  EXPECT_EQ(r->version_node, "A");
  EXPECT_EQ(r->consistency, 1);
  EXPECT_EQ(r->user_meta, want.user_meta);
  EXPECT_FALSE(r->deleted);
  EXPECT_TRUE(r->local_body);
  EXPECT_EQ(r->cold, ColdState::kPending);
  EXPECT_EQ((*j)->GetSetting("node_id"), "N1");
  EXPECT_EQ((*j)->MaxVersion().packed, 10u);
}

TEST(Journal, UsesWalMode) {
  testing::TempDir dir;
  { auto j = Journal::Open(dir.path()); ASSERT_TRUE(j.ok()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "journal.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(Journal, LastWriterWinsByVersionThenNode) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  ASSERT_TRUE(j->Upsert(MakeRecord("k", 20, "B")).value());
  EXPECT_FALSE(j->Upsert(MakeRecord("k", 19, "Z")).value());  // older HLC loses
  EXPECT_FALSE(j->Upsert(MakeRecord("k", 20, "A")).value());  // same HLC, lower node loses
  EXPECT_EQ(j->Get("k")->version_node, "B");
  EXPECT_TRUE(j->Upsert(MakeRecord("k", 20, "C")).value());   // same HLC, higher node wins
  EXPECT_EQ(j->Get("k")->version_node, "C");
  auto tomb = MakeRecord("k", 21, "A");
  tomb.deleted = true;
  EXPECT_TRUE(j->Upsert(tomb).value());
  EXPECT_FALSE(j->Upsert(MakeRecord("k", 20, "Z")).value());  // tombstone beats older
  EXPECT_TRUE(j->Get("k")->deleted);
}

TEST(Journal, ConcurrentUpsertsCommitInGroupsAsIfOneAtATime) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  constexpr int kThreads = 8, kEach = 40;
  std::atomic<int> own_written{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // A key of its own (always written) and one key shared by every thread
        // whose versions race: only a newer one may replace the stored one.
        auto own = j->Upsert(MakeRecord("own-" + std::to_string(t) + "-" + std::to_string(i), 5));
        if (own.ok() && *own) ++own_written;
        (void)j->Upsert(MakeRecord("shared", 1 + t * kEach + i));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(own_written.load(), kThreads * kEach);
  EXPECT_EQ(j->Get("shared")->version.packed, static_cast<uint64_t>(kThreads * kEach));
  j.reset();
  auto again = std::move(Journal::Open(dir.path()).value());
  EXPECT_EQ(again->Counts().live_objects, static_cast<uint64_t>(kThreads * kEach + 1));
  EXPECT_EQ(again->Get("shared")->version.packed, static_cast<uint64_t>(kThreads * kEach));
}

TEST(Journal, UpdateLocalStateOnlyTouchesTheSameVersion) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  ASSERT_TRUE(j->Upsert(MakeRecord("k", 5)).value());
  HlcTimestamp v5{5}, v4{4};
  EXPECT_TRUE(j->UpdateLocalState("k", v5, true, ColdState::kStored).ok());
  EXPECT_EQ(j->Get("k")->cold, ColdState::kStored);
  EXPECT_EQ(j->UpdateLocalState("k", v4, false, ColdState::kNone).code(), StatusCode::kNotFound);
  EXPECT_EQ(j->UpdateLocalState("missing", v5, false, ColdState::kNone).code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(j->Get("k")->local_body);
}

TEST(Journal, CountsFollowChanges) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  ASSERT_TRUE(j->Upsert(MakeRecord("a", 1)).value());
  ASSERT_TRUE(j->Upsert(MakeRecord("b", 2)).value());
  auto c = j->Counts();
  EXPECT_EQ(c.live_objects, 2u);
  EXPECT_EQ(c.local_bytes, 84u);
  EXPECT_EQ(c.pending_cold, 2u);
  auto tomb = MakeRecord("a", 3);
  tomb.deleted = true;
  tomb.local_body = false;
  tomb.cold = ColdState::kNone;
  ASSERT_TRUE(j->Upsert(tomb).value());
  c = j->Counts();
  EXPECT_EQ(c.live_objects, 1u);
  EXPECT_EQ(c.tombstones, 1u);
  EXPECT_EQ(c.local_bytes, 42u);
  EXPECT_EQ(c.pending_cold, 1u);
}

TEST(Journal, KeysAreArbitraryStrings) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  std::string long_key(1024, 'x');
  std::string odd_key = std::string("a/b/../c\xc3\xa9 ") + std::string(1, '\0') + "z";
  ASSERT_TRUE(j->Upsert(MakeRecord(long_key, 1)).value());
  ASSERT_TRUE(j->Upsert(MakeRecord(odd_key, 1)).value());
  j.reset();
  j = std::move(Journal::Open(dir.path()).value());
  EXPECT_TRUE(j->Get(long_key));
  ASSERT_TRUE(j->Get(odd_key));
  EXPECT_EQ(j->Get(odd_key)->key, odd_key);
}


TEST(Journal, ApplyRemoteIsLastWriterWinsAndNeverBringsALocalBody) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path())).value();
  ASSERT_TRUE(j->Upsert(MakeRecord("mine", 20, "A")).value());  // local body here
  std::vector<ObjectRecord> in{MakeRecord("mine", 10, "B"),    // older: ignored
                               MakeRecord("new", 5, "B"),      // unknown: written
                               MakeRecord("new", 7, "C"),      // newer in the same batch
                               MakeRecord("new", 6, "D")};     // older than the batch's
  auto applied = j->ApplyRemote(in);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_FALSE((*applied)[0].written);
  EXPECT_TRUE((*applied)[1].written);
  EXPECT_TRUE((*applied)[2].written);
  EXPECT_FALSE((*applied)[3].written);
  EXPECT_TRUE(j->Get("mine")->local_body);
  EXPECT_EQ(j->Get("mine")->version_node, "A");
  auto n = j->Get("new");
  EXPECT_EQ(n->version.packed, 7u);
  EXPECT_EQ(n->version_node, "C");
  EXPECT_FALSE(n->local_body);  // local state never travels
  EXPECT_EQ(n->cold, ColdState::kPending);

  // A newer version replaces ours and reports what it replaced.
  auto over = j->ApplyRemote({MakeRecord("mine", 30, "B")});
  ASSERT_TRUE(over.ok());
  ASSERT_TRUE((*over)[0].written);
  ASSERT_TRUE((*over)[0].replaced);
  EXPECT_TRUE((*over)[0].replaced->local_body);
  EXPECT_FALSE(j->Get("mine")->local_body);

  // Equal version: only the cold store's acknowledgement is taken over.
  ObjectRecord stored = MakeRecord("new", 7, "C");
  stored.cold = ColdState::kStored;
  stored.name = "ignored.txt";
  ASSERT_TRUE(j->ApplyRemote({stored}).ok());
  EXPECT_EQ(j->Get("new")->cold, ColdState::kStored);
  EXPECT_EQ(j->Get("new")->name, "file.txt");

  // A tombstone wins over older versions and carries no cold work here.
  ObjectRecord tomb = MakeRecord("new", 8, "B");
  tomb.deleted = true;
  ASSERT_TRUE(j->ApplyRemote({tomb}).ok());
  EXPECT_TRUE(j->Get("new")->deleted);
  EXPECT_EQ(j->Get("new")->cold, ColdState::kNone);
  ASSERT_TRUE(j->ApplyRemote({MakeRecord("new", 7, "Z")}).ok());
  EXPECT_TRUE(j->Get("new")->deleted);

  // All of it is durable.
  j.reset();
  auto again = std::move(Journal::Open(dir.path())).value();
  EXPECT_TRUE(again->Get("new")->deleted);
  EXPECT_EQ(again->Get("mine")->version.packed, 30u);
}

TEST(Journal, ChangeListenerSeesExistingRecordsThenEveryChange) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path())).value();
  ASSERT_TRUE(j->Upsert(MakeRecord("a", 1)).value());
  std::vector<std::pair<bool, std::string>> seen;  // (had a before, key)
  j->SetChangeListener([&](const ObjectRecord* before, const ObjectRecord& after) {
    seen.emplace_back(before != nullptr, after.key);
  });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].first);
  ASSERT_TRUE(j->Upsert(MakeRecord("a", 2)).value());
  ASSERT_TRUE(j->UpdateLocalState("a", HlcTimestamp{2}, false, ColdState::kStored).ok());
  ASSERT_TRUE(j->ApplyRemote({MakeRecord("b", 3, "B")}).ok());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_TRUE(seen[1].first);
  EXPECT_TRUE(seen[2].first);
  EXPECT_FALSE(seen[3].first);
  EXPECT_EQ(seen[3].second, "b");
}

TEST(Journal, AnEmptyListenerDetachesTheCurrentOneWhileWritersRun) {
  // What the cluster does at shutdown while blocking threads still write.
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path())).value();
  auto heard = std::make_unique<std::atomic<int>>(0);
  j->SetChangeListener([counter = heard.get()](const ObjectRecord*, const ObjectRecord&) {
    counter->fetch_add(1);
  });
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t v = 1; !stop; ++v) ASSERT_TRUE(j->Upsert(MakeRecord("w", v)).ok());
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (heard->load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  j->SetChangeListener(nullptr);
  const int at_detach = heard->load();
  heard.reset();  // the owner is gone: a later call would be a use after free
  ASSERT_TRUE(j->Upsert(MakeRecord("x", 1)).value());
  stop = true;
  writer.join();
  EXPECT_GE(at_detach, 3);
}


ObjectRecord Tombstone(const std::string& key, uint64_t version, int64_t stable_ms = 0) {
  ObjectRecord t = MakeRecord(key, version, "B");
  t.deleted = true;
  t.local_body = false;
  t.cold = ColdState::kNone;
  t.stable_ms = stable_ms;
  return t;
}

TEST(Journal, StableTombstonesUpgradeTheirVersionAndAreNotWrittenForUnknownKeys) {
  testing::TempDir dir;
  auto j = Journal::Open(dir.path());
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->Upsert(MakeRecord("old", 10)).value());
  ASSERT_TRUE((*j)->ApplyRemote({Tombstone("t", 20)}).ok());
  auto applied = (*j)->ApplyRemote({Tombstone("gone", 30, 1), Tombstone("old", 40, 7),
                                     Tombstone("t", 20, 9)});
  ASSERT_TRUE(applied.ok());
  // Unknown key: every member already has the tombstone, nothing to keep.
  EXPECT_FALSE((*applied)[0].written);
  EXPECT_EQ((*j)->Get("gone"), nullptr);
  // Older live version: the tombstone wins and arrives stable.
  EXPECT_TRUE((*applied)[1].written);
  EXPECT_TRUE((*j)->Get("old")->deleted);
  EXPECT_EQ((*j)->Get("old")->stable_ms, 7);
  // Same version, not yet stable here: upgraded.
  EXPECT_EQ((*j)->Get("t")->stable_ms, 9);
  // A stable tombstone of an older version does not touch a newer record.
  ASSERT_TRUE((*j)->ApplyRemote({MakeRecord("t", 50, "C")}).ok());
  ASSERT_TRUE((*j)->ApplyRemote({Tombstone("t", 20, 11)}).ok());
  EXPECT_FALSE((*j)->Get("t")->deleted);
}

TEST(Journal, MarkStableAndPurgeTouchOnlyTheExactTombstone) {
  testing::TempDir dir;
  {
    auto j = Journal::Open(dir.path());
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Upsert(Tombstone("a", 10)).value());
    ASSERT_TRUE((*j)->Upsert(Tombstone("b", 10)).value());
    ASSERT_TRUE((*j)->Upsert(MakeRecord("live", 10)).value());
    EXPECT_EQ((*j)->MarkStable("a", HlcTimestamp{11}, 100).code(), StatusCode::kNotFound);
    EXPECT_EQ((*j)->MarkStable("live", HlcTimestamp{10}, 100).code(), StatusCode::kNotFound);
    ASSERT_TRUE((*j)->MarkStable("a", HlcTimestamp{10}, 100).ok());
    EXPECT_EQ((*j)->Get("a")->stable_ms, 100);
    auto a = (*j)->Get("a");
    auto b = (*j)->Get("b");  // not stable: never purged
    auto live = (*j)->Get("live");
    auto purged = (*j)->PurgeTombstones({a, b, live});
    ASSERT_TRUE(purged.ok());
    ASSERT_EQ(purged->size(), 1u);
    EXPECT_EQ((*purged)[0]->key, "a");
    EXPECT_EQ((*j)->Get("a"), nullptr);
    EXPECT_EQ((*j)->Counts().tombstones, 1u);
    // A record replaced since the caller looked is not purged.
    ASSERT_TRUE((*j)->MarkStable("b", HlcTimestamp{10}, 100).ok());
    auto stale_b = (*j)->Get("b");
    ASSERT_TRUE((*j)->Upsert(MakeRecord("b", 20)).value());
    purged = (*j)->PurgeTombstones({stale_b});
    ASSERT_TRUE(purged.ok());
    EXPECT_TRUE(purged->empty());
  }
  auto j = Journal::Open(dir.path());  // the purge is durable
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->Get("a"), nullptr);
  ASSERT_NE((*j)->Get("b"), nullptr);
  EXPECT_FALSE((*j)->Get("b")->deleted);
}

TEST(Journal, SchemaVersionOneIsUpgraded) {
  for (bool column_already_added : {false, true}) {
    SCOPED_TRACE(column_already_added ? "column added, version not" : "version 1");
    testing::TempDir dir;
    {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open((dir / "journal.db").c_str(), &db), SQLITE_OK);
      const char* v1 =
          "CREATE TABLE objects (key TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL,"
          " etag TEXT NOT NULL, timestamp_ns INTEGER NOT NULL, version INTEGER NOT NULL,"
          " version_node TEXT NOT NULL, consistency INTEGER NOT NULL, user_meta TEXT NOT NULL,"
          " deleted INTEGER NOT NULL, local_body INTEGER NOT NULL, cold_state INTEGER NOT NULL)"
          " WITHOUT ROWID;"
          "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
          "INSERT INTO settings VALUES ('schema_version', '1');"
          "INSERT INTO objects VALUES ('k', 'n', 1, 'e', 5, 7, 'A', 0, '{}', 1, 0, 0);";
      ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
      // An older binary's upgrade cut between its two steps.
      const char* half = "ALTER TABLE objects ADD COLUMN stable_ms INTEGER NOT NULL DEFAULT 0";
      if (column_already_added)
        ASSERT_EQ(sqlite3_exec(db, half, nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_close(db);
    }
    auto j = Journal::Open(dir.path());
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    ASSERT_NE((*j)->Get("k"), nullptr);
    EXPECT_TRUE((*j)->Get("k")->deleted);
    EXPECT_EQ((*j)->Get("k")->stable_ms, 0);
    EXPECT_EQ((*j)->GetSetting("schema_version"), "2");
    ASSERT_TRUE((*j)->MarkStable("k", HlcTimestamp{7}, 3).ok());
  }
}

TEST(Journal, CacheStatePastSqlitesLengthLimitIsRefusedNamingItsSizeAndTheOldOneKept) {
  testing::TempDir dir;
  auto j = std::move(Journal::Open(dir.path()).value());
  ASSERT_TRUE(j->PutCacheState("policy", "queues").ok());
  // SQLite's default SQLITE_MAX_LENGTH is 1e9 bytes: one more (a 1 GB string
  // for the duration of this test; bound, not copied, so refused at once).
  const std::string too_big(1'000'000'001, 'x');
  Status s = j->PutCacheState("policy", too_big);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("a value of 1000000001 bytes: string or blob too big"),
            std::string::npos)
      << s.ToString();
  EXPECT_EQ(j->GetCacheState("policy"), "queues");
}

}  // namespace
}  // namespace objstore
