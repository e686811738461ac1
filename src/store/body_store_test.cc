#include "store/body_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>
#include <xxhash.h>

#include <cstdio>

#include "base/test_util.h"

namespace objstore {
namespace {
namespace fs = std::filesystem;

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

TEST(BodyStore, CommitThenReadBack) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir / "files", DefaultDisk()).value());
  auto body = std::move(store->NewBody().value());
  ASSERT_TRUE(body->Append(std::string_view("hello ")).ok());
  ASSERT_TRUE(body->Append(std::string_view("world")).ok());
  EXPECT_EQ(body->size(), 11u);
  std::string etag = body->ETag();
  EXPECT_EQ(etag.size(), 34u);
  EXPECT_EQ(etag.front(), '"');
  HlcTimestamp v{77};
  ASSERT_TRUE(store->Commit(*body, "01ARZ3NDEKTSV4RRFFQ69G5FAV", v).ok());
  auto fd = store->OpenBody("01ARZ3NDEKTSV4RRFFQ69G5FAV", v);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(ReadAll(fd->get()), "hello world");
  EXPECT_EQ(store->BodySize("01ARZ3NDEKTSV4RRFFQ69G5FAV", v).value(), 11u);
  EXPECT_EQ(store->OpenBody("01ARZ3NDEKTSV4RRFFQ69G5FAV", HlcTimestamp{78}).status().code(),
            StatusCode::kNotFound);
  // Nothing is left in tmp/ after a commit.
  EXPECT_TRUE(fs::is_empty(dir / "files/tmp"));
}

// Bytes written ahead with WriteAt and adopted in order hash and read back as
// if appended; a later Append goes after them; adopting past what was written
// fails.
TEST(BodyStore, BytesWrittenAheadAndAdoptedAreAsIfAppended) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir / "files", DefaultDisk()).value());
  const std::string text = "the first part|the second part|the third part|tail";
  auto appended = std::move(store->NewBody().value());
  ASSERT_TRUE(appended->Append(text).ok());

  auto parts = std::move(store->NewBody().value());
  ASSERT_TRUE(parts->WriteAt(31, std::string_view(text).substr(31, 15)).ok());  // third
  ASSERT_TRUE(parts->WriteAt(15, std::string_view(text).substr(15, 16)).ok());  // second
  ASSERT_TRUE(parts->Append(std::string_view(text).substr(0, 15)).ok());       // first
  ASSERT_TRUE(parts->AdoptWritten(16).ok());
  ASSERT_TRUE(parts->AdoptWritten(15).ok());
  EXPECT_EQ(parts->size(), 46u);
  ASSERT_TRUE(parts->Append(std::string_view(text).substr(46)).ok());
  EXPECT_EQ(parts->size(), text.size());
  EXPECT_EQ(parts->ETag(), appended->ETag());
  EXPECT_EQ(parts->AdoptWritten(1).code(), StatusCode::kCorruption);

  ASSERT_TRUE(store->Commit(*parts, "01ARZ3NDEKTSV4RRFFQ69G5FAV", HlcTimestamp{7}).ok());
  auto fd = store->OpenBody("01ARZ3NDEKTSV4RRFFQ69G5FAV", HlcTimestamp{7});
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(ReadAll(fd->get()), text);
}

TEST(BodyStore, SameBytesSameEtagDifferentBytesDifferentEtag) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  auto a = std::move(store->NewBody().value());
  auto b = std::move(store->NewBody().value());
  auto c = std::move(store->NewBody().value());
  ASSERT_TRUE(a->Append(std::string_view("abc")).ok());
  ASSERT_TRUE(b->Append(std::string_view("ab")).ok());
  ASSERT_TRUE(b->Append(std::string_view("c")).ok());
  ASSERT_TRUE(c->Append(std::string_view("abd")).ok());
  EXPECT_EQ(a->ETag(), b->ETag());
  EXPECT_NE(a->ETag(), c->ETag());
}

TEST(BodyStore, AbandonedBodyLeavesNothing) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  {
    auto body = std::move(store->NewBody().value());
    ASSERT_TRUE(body->Append(std::string_view("partial")).ok());
  }
  EXPECT_EQ(CountFiles(dir.path()), 0u);
}

TEST(BodyStore, DiskFullFailsCleanly) {
  testing::TempDir dir;
  testing::FaultyDisk disk;
  auto store = std::move(BodyStore::Open(dir.path(), disk).value());
  disk.write_budget = 10;
  auto body = std::move(store->NewBody().value());
  ASSERT_TRUE(body->Append(std::string_view("12345")).ok());
  Status s = body->Append(std::string_view("6789012345"));
  EXPECT_EQ(s.code(), StatusCode::kNoSpace);
  body.reset();
  EXPECT_EQ(CountFiles(dir.path()), 0u);
}

TEST(BodyStore, FailedFsyncIsNotACommit) {
  testing::TempDir dir;
  testing::FaultyDisk disk;
  auto store = std::move(BodyStore::Open(dir.path(), disk).value());
  auto body = std::move(store->NewBody().value());
  ASSERT_TRUE(body->Append(std::string_view("data")).ok());
  disk.fail_fsync = true;
  EXPECT_FALSE(store->Commit(*body, "KEY", HlcTimestamp{1}).ok());
  disk.fail_fsync = false;
  body.reset();
  EXPECT_EQ(store->OpenBody("KEY", HlcTimestamp{1}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountFiles(dir.path()), 0u);
}

TEST(BodyStore, HostileKeysStayInsideTheDirectory) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir / "files", DefaultDisk()).value());
  const std::vector<std::string> keys = {"../../escape", "/etc/passwd",       "..", ".", "a/b",
                                       std::string("x\0y", 3), std::string(2000, 'k'),
                                       "%2e%2e%2f"};
  for (const std::string& key : keys) {
    std::string path = store->PathFor(key, HlcTimestamp{1});
    EXPECT_EQ(path.rfind(dir / "files/", 0), 0u) << path;
    std::string rel = path.substr((dir / "files/").size());
    EXPECT_EQ(rel.find(".."), std::string::npos) << path;
    EXPECT_EQ(std::count(rel.begin(), rel.end(), '/'), 2) << path;
    auto body = std::move(store->NewBody().value());
    ASSERT_TRUE(body->Append(std::string_view("x")).ok());
    ASSERT_TRUE(store->Commit(*body, key, HlcTimestamp{1}).ok());
    EXPECT_TRUE(store->OpenBody(key, HlcTimestamp{1}).ok());
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(BodyStore, ShardsSpreadUlidsAcrossDirectories) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  // ULIDs made in one millisecond share their first 10 characters.
  std::set<std::string> shards;
  for (int i = 0; i < 64; ++i) {
    std::string key = "01ARZ3NDEK" + std::string(14, 'A') + std::to_string(10 + i);
    std::string path = store->PathFor(key, HlcTimestamp{1});
    shards.insert(fs::path(path).parent_path().string());
  }
  EXPECT_GT(shards.size(), 50u);
}

std::set<std::string> FileNames(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

TEST(BodyStore, SpareBodiesAreMadeAheadTakenFirstAndRemovedWithTheStore) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir / "files", DefaultDisk()).value());
  EXPECT_TRUE(store->WantsSpares());
  store->RefillSpares();
  EXPECT_FALSE(store->WantsSpares());
  const std::set<std::string> spares = FileNames(dir / "files/tmp");
  ASSERT_EQ(spares.size(), BodyStore::kSpareBodies);
  for (const auto& name : spares) EXPECT_EQ(fs::file_size(fs::path(dir / "files/tmp") / name), 0u);

  // NewBody hands out a spare: no file is created.
  auto body = std::move(store->NewBody().value());
  EXPECT_EQ(spares.count(fs::path(body->temp_path()).filename().string()), 1u);
  EXPECT_EQ(FileNames(dir / "files/tmp"), spares);
  EXPECT_TRUE(store->WantsSpares());
  ASSERT_TRUE(body->Append(std::string_view("spare")).ok());
  ASSERT_TRUE(store->Commit(*body, "KEY", HlcTimestamp{3}).ok());
  EXPECT_EQ(ReadAll(store->OpenBody("KEY", HlcTimestamp{3})->get()), "spare");
  EXPECT_EQ(CountFiles(dir / "files/tmp"), BodyStore::kSpareBodies - 1);

  // Taken bodies are distinct; once the spares are gone NewBody creates files.
  std::set<std::string> taken;
  std::vector<std::unique_ptr<AtomicFile>> bodies;
  for (size_t i = 0; i < BodyStore::kSpareBodies + 2; ++i) {
    bodies.push_back(std::move(store->NewBody().value()));
    taken.insert(bodies.back()->temp_path());
  }
  EXPECT_EQ(taken.size(), BodyStore::kSpareBodies + 2);
  EXPECT_EQ(CountFiles(dir / "files/tmp"), BodyStore::kSpareBodies + 2);
  bodies.clear();
  store->RefillSpares();
  EXPECT_EQ(CountFiles(dir / "files/tmp"), BodyStore::kSpareBodies);
  store.reset();  // unused spares are temporaries: nothing is left
  EXPECT_EQ(CountFiles(dir / "files"), 1u);  // KEY's body
}

// Refills racing each other and NewBody: never more than kSpareBodies
// spares, and no body handed out twice (checked under TSan in CI).
TEST(BodyStore, ConcurrentRefillsAndTakesHandOutEachSpareOnce) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  constexpr int kThreads = 4, kTakes = 50;
  std::vector<std::vector<std::string>> paths(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTakes; ++i) {
        store->RefillSpares();
        auto body = store->NewBody();
        ASSERT_TRUE(body.ok());
        paths[t].push_back((*body)->temp_path());
        (*body)->Abort();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& p : paths) all.insert(p.begin(), p.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kTakes));
  EXPECT_LE(CountFiles(dir.path()), BodyStore::kSpareBodies);
}

TEST(BodyStore, StartupRemovesTemporariesAndOrphans) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  for (const char* key : {"KEEP", "ORPHAN"}) {
    auto body = std::move(store->NewBody().value());
    ASSERT_TRUE(body->Append(std::string_view("x")).ok());
    ASSERT_TRUE(store->Commit(*body, key, HlcTimestamp{9}).ok());
  }
  std::ofstream(dir / "tmp/leftover.part") << "half";
  EXPECT_EQ(store->RemoveTemporaries(), 1u);
  BodyStore::Sweep sweep = store->RemoveUnreferenced(
      [](const std::string& name, HlcTimestamp v) { return name == "KEEP" && v.packed == 9; });
  EXPECT_EQ(sweep.removed, 1u);
  EXPECT_EQ(sweep.left_alone, 0u);
  EXPECT_TRUE(store->OpenBody("KEEP", HlcTimestamp{9}).ok());
  EXPECT_FALSE(store->OpenBody("ORPHAN", HlcTimestamp{9}).ok());
}

// --files-dir may hold other data (another program's, a cold store a user put
// there): start-up deletes only files named as bodies in the shard
// directories, never a file three levels down that merely looks like one.
TEST(BodyStore, StartupLeavesWhatIsNotTheStoresAlone) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  auto orphan = std::move(store->NewBody().value());
  ASSERT_TRUE(orphan->Append(std::string_view("x")).ok());
  ASSERT_TRUE(store->Commit(*orphan, "ORPHAN", HlcTimestamp{9}).ok());
  const std::string leaf = fs::path(store->PathFor("ORPHAN", HlcTimestamp{9})).parent_path();
  const std::vector<std::string> foreign = {
      leaf + "/notes.txt",                      // not a body's name
      leaf + "/ORPHAN@0000000000000009.bak",    // nor this
      leaf + "/with space@0000000000000009",    // a key FileNameKey would hash
      dir / "cold/3f/ORPHAN@0000000000000009",  // a cold store's layout
      dir / "ab/CD/ORPHAN@0000000000000009",    // upper-case: not a shard
      dir / "other/data/file"};
  for (const std::string& path : foreign) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << "not a body";
  }
  BodyStore::Sweep sweep =
      store->RemoveUnreferenced([](const std::string&, HlcTimestamp) { return false; });
  EXPECT_EQ(sweep.removed, 1u);
  EXPECT_EQ(sweep.left_alone, 6u);  // three files, cold/, ab/CD, other/
  EXPECT_FALSE(fs::exists(store->PathFor("ORPHAN", HlcTimestamp{9})));
  for (const std::string& path : foreign) EXPECT_TRUE(fs::exists(path)) << path;
}

// An entry whose stat fails (a symbolic link loop) is skipped, not thrown: a
// std::filesystem exception there stopped the node at start (terminate).
TEST(BodyStore, StartupSkipsEntriesItCannotRead) {
  testing::TempDir dir;
  auto store = std::move(BodyStore::Open(dir.path(), DefaultDisk()).value());
  fs::create_symlink("loop", dir / "loop");
  fs::create_symlink("ef", dir / "cd/ef");  // a leaf's name, looping
  fs::create_symlink("loop.part", dir / "tmp/loop.part");
  EXPECT_EQ(store->RemoveTemporaries(), 1u);
  BodyStore::Sweep sweep =
      store->RemoveUnreferenced([](const std::string&, HlcTimestamp) { return false; });
  EXPECT_EQ(sweep.removed, 0u);
  EXPECT_EQ(sweep.left_alone, 2u);
}

// The on-disk layout (docs/FORMATS.md) must not move when the path is built
// differently: <dir>/<2 hex>/<2 hex>/<key>@<16 hex>, shards from XXH64.
TEST(BodyStore, PathLayoutIsStable) {
  testing::TempDir tmp;
  auto store = std::move(BodyStore::Open(tmp / "files", DefaultDisk()).value());
  for (const std::string key : {"01ARZ3NDEKTSV4RRFFQ69G5FAV", "a", "with space"}) {
    const uint64_t h = XXH64(key.data(), key.size(), 0);
    char shard[8];
    std::snprintf(shard, sizeof shard, "%02x/%02x", static_cast<unsigned>(h >> 56),
                  static_cast<unsigned>((h >> 48) & 0xff));
    const std::string want = tmp.path() + "/files/" + shard + "/" + BodyStore::FileNameKey(key) +
                             "@00000000000abc12";
    EXPECT_EQ(store->PathFor(key, HlcTimestamp{0xabc12}), want);
  }
}

// Counts the syncs a commit makes, and which directories they were for.
class SyncCountingDisk final : public testing::PassThroughDisk {
 public:
  int file_syncs = 0;
  std::vector<std::string> dir_syncs;

  int Fsync(int fd) override {
    ++file_syncs;
    return real_.Fsync(fd);
  }
  int SyncDir(const char* path) override {
    dir_syncs.emplace_back(path);
    return real_.SyncDir(path);
  }
};

// Open makes the first level ahead; a commit syncs the body and its leaf, and
// the leaf's parent only for the first body of that leaf.
TEST(BodyStore, CommitSyncsTheBodyItsLeafAndANewLeafsParentOnly) {
  testing::TempDir tmp;
  SyncCountingDisk disk;
  auto store = std::move(BodyStore::Open(tmp / "files", disk).value());
  size_t top = 0;
  for (const auto& e : fs::directory_iterator(tmp / "files")) top += e.is_directory();
  EXPECT_EQ(top, 257u);  // 00..ff and tmp
  // Two keys in one leaf.
  const std::string a = "a";
  const std::string leaf = fs::path(store->PathFor(a, HlcTimestamp{1})).parent_path().string();
  std::string b;
  for (int i = 0; b.empty(); ++i) {
    std::string k = "k" + std::to_string(i);
    if (fs::path(store->PathFor(k, HlcTimestamp{1})).parent_path().string() == leaf) b = k;
  }
  disk.file_syncs = 0;
  disk.dir_syncs.clear();
  for (const std::string& key : {a, b}) {
    auto body = std::move(store->NewBody().value());
    ASSERT_TRUE(body->Append(std::string_view("x")).ok());
    ASSERT_TRUE(store->Commit(*body, key, HlcTimestamp{1}).ok());
    EXPECT_TRUE(store->OpenBody(key, HlcTimestamp{1}).ok());
  }
  EXPECT_EQ(disk.file_syncs, 2);
  const std::string parent = fs::path(leaf).parent_path().string();
  EXPECT_EQ(disk.dir_syncs, (std::vector<std::string>{leaf, parent, leaf}));
}

}  // namespace
}  // namespace objstore
