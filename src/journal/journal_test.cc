#include "journal/journal.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

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

}  // namespace
}  // namespace objstore
