#include "coldstore/dir_cold_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/test_util.h"
#include "coldstore/scripted_cold_store.h"
#include "store/atomic_file.h"

namespace objstore {
namespace {

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<DirColdStore> cold =
      std::move(DirColdStore::Open(dir / "cold", DefaultDisk()).value());

  // Writes `bytes` to a file and returns meta describing it.
  ColdObjectMeta MakeBody(const std::string& key, const std::string& bytes, uint64_t version,
                          std::string* path) {
    auto f = std::move(AtomicFile::Create(DefaultDisk(), dir.path()).value());
    EXPECT_TRUE(f->Append(bytes).ok());
    *path = dir / (key + std::to_string(version));
    EXPECT_TRUE(f->Commit(*path).ok());
    return ColdObjectMeta{key, "n.txt", 2, 123, R"({"A":"b"})", bytes.size(), f->ETag(), version};
  }

  Result<std::pair<ColdObjectMeta, std::string>> Fetch(const std::string& key) {
    return testing::ReadObject(*cold, key);
  }
};

TEST(DirColdStore, PutGetDeleteRoundTrip) {
  Fixture fx;
  std::string path;
  auto meta = fx.MakeBody("K1", "payload", 5, &path);
  ASSERT_TRUE(fx.cold->Put(meta, path).ok());
  auto got = fx.Fetch("K1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->second, "payload");
  EXPECT_EQ(got->first.name, "n.txt");
  EXPECT_EQ(got->first.consistency, 2);
  EXPECT_EQ(got->first.user_meta, R"({"A":"b"})");
  EXPECT_EQ(got->first.etag, meta.etag);
  EXPECT_EQ(got->first.version, 5u);
  ASSERT_TRUE(fx.cold->Delete("K1", 6).ok());
  EXPECT_EQ(fx.Fetch("K1").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fx.cold->Delete("K1", 7).ok());  // absent: not an error
}

// Reads [offset, offset + length) of `key` through `store`'s GetRange: the
// bytes, and the object size its metadata gave.
Result<std::pair<uint64_t, std::string>> FetchRange(ColdStore& store, const std::string& key,
                                                    uint64_t offset, uint64_t length) {
  uint64_t size = 0;
  std::string data;
  Status s = store.GetRange(
      key, offset, length,
      [&](const ColdObjectMeta& m) {
        size = m.size;
        return Status::Ok();
      },
      [&](std::span<const char> c) {
        data.append(c.data(), c.size());
        return Status::Ok();
      });
  if (!s.ok()) return s;
  return std::make_pair(size, data);
}

TEST(DirColdStore, GetRangeReadsOnlyTheRange) {
  Fixture fx;
  std::string path, bytes;
  for (int i = 0; i < 700'000; ++i) bytes.push_back(static_cast<char>('a' + i % 23));
  ASSERT_TRUE(fx.cold->Put(fx.MakeBody("K", bytes, 1, &path), path).ok());
  for (auto [offset, length] : {std::pair<uint64_t, uint64_t>{0, 1},
                                {5, 300'000},
                                {262'143, 262'146},
                                {699'999, 1},
                                {0, 700'000}}) {
    auto got = FetchRange(*fx.cold, "K", offset, length);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->first, bytes.size());
    EXPECT_EQ(got->second, bytes.substr(offset, length)) << offset << "+" << length;
  }
  EXPECT_EQ(FetchRange(*fx.cold, "K", 699'999, 2).status().code(), StatusCode::kInvalid);
  EXPECT_EQ(FetchRange(*fx.cold, "K", 0, 0).status().code(), StatusCode::kInvalid);
  EXPECT_EQ(FetchRange(*fx.cold, "nope", 0, 1).status().code(), StatusCode::kNotFound);
}

// A store that can only stream whole objects, in pieces of 7 bytes: GetRange
// is the base class's.
class WholeOnlyStore final : public ColdStore {
 public:
  explicit WholeOnlyStore(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string Describe() const override { return "whole only"; }
  Status Put(const ColdObjectMeta&, const std::string&) override { return Status::Ok(); }
  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override {
    ColdObjectMeta m;
    m.key = key;
    m.size = bytes_.size();
    if (Status s = on_meta(m); !s.ok()) return s;
    for (size_t i = 0; i < bytes_.size(); i += 7) {
      ++pieces_;
      std::span<const char> all(bytes_);
      if (Status s = on_data(all.subspan(i, std::min<size_t>(7, bytes_.size() - i))); !s.ok()) {
        return s;
      }
    }
    return Status::Ok();
  }
  Status Delete(const std::string&, uint64_t) override { return Status::Ok(); }
  int pieces_ = 0;

 private:
  std::string bytes_;
};

TEST(ColdStore, DefaultGetRangeCutsTheWholeStreamAndStopsAfterTheRange) {
  const std::string bytes = "0123456789abcdefghijklmnopqrstuvwxyz";  // 36 bytes, 6 pieces
  for (uint64_t offset = 0; offset < bytes.size(); ++offset) {
    for (uint64_t length = 1; offset + length <= bytes.size(); ++length) {
      WholeOnlyStore store(bytes);
      auto got = FetchRange(store, "K", offset, length);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->first, bytes.size());
      EXPECT_EQ(got->second, bytes.substr(offset, length)) << offset << "+" << length;
      EXPECT_EQ(store.pieces_,
                static_cast<int>((offset + length + 6) / 7));  // none after the range
    }
  }
  WholeOnlyStore store(bytes);
  EXPECT_EQ(FetchRange(store, "K", 30, 7).status().code(), StatusCode::kInvalid);
}

// A store that serves `bytes` as key "K" under `etag`, in pieces of 7 bytes.
std::unique_ptr<testing::ScriptedColdStore> SevenBytePieces(const std::string& bytes,
                                                            std::string etag) {
  ColdObjectMeta meta;
  meta.key = "K";
  meta.size = bytes.size();
  meta.etag = std::move(etag);
  meta.version = 5;
  auto store = std::make_unique<testing::ScriptedColdStore>(std::move(meta), bytes);
  store->pieces = {7};
  return store;
}

// What GetResuming brought: its status, the bytes, how often on_meta ran and
// the byte counts before_resume was called with.
struct Resumed {
  Status status;
  std::string data;
  int metas = 0;
  std::vector<uint64_t> resumed_at;
};

Resumed ReadResuming(ColdStore& store, uint64_t offset, uint64_t length, int max_resumes,
                     Status meta_answer = Status::Ok(), Status data_answer = Status::Ok(),
                     Status resume_answer = Status::Ok()) {
  Resumed r;
  r.status = GetResuming(
      store, "K", offset, length, max_resumes,
      [&](const ColdObjectMeta&) {
        ++r.metas;
        return meta_answer;
      },
      [&](std::span<const char> c) {
        if (!data_answer.ok()) return data_answer;
        r.data.append(c.data(), c.size());
        return Status::Ok();
      },
      [&](uint64_t have, const Status& why) {
        EXPECT_EQ(why.code(), StatusCode::kUnavailable);
        r.resumed_at.push_back(have);
        return resume_answer;
      });
  return r;
}

TEST(ColdStore, GetResumingContinuesABrokenTransferFromItsFirstMissingByte) {
  std::string bytes(100, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 26);
  {
    auto store = SevenBytePieces(bytes, "\"e\"");
    store->breaks = 2;
    store->break_after = 30;  // 4 pieces and 2 bytes of the fifth, then the break
    Resumed r = ReadResuming(*store, 0, kWholeObject, 3);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.data, bytes);
    EXPECT_EQ(r.metas, 1);
    EXPECT_EQ(r.resumed_at, (std::vector<uint64_t>{30, 60}));
    EXPECT_EQ(store->ranges, (std::vector<std::pair<uint64_t, uint64_t>>{{30, 70}, {60, 40}}));
  }
  {  // a range
    auto store = SevenBytePieces(bytes, "\"e\"");
    store->breaks = 1;
    store->break_after = 10;
    Resumed r = ReadResuming(*store, 20, 50, 3);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.data, bytes.substr(20, 50));
    EXPECT_EQ(r.resumed_at, (std::vector<uint64_t>{10}));
    EXPECT_EQ(store->ranges, (std::vector<std::pair<uint64_t, uint64_t>>{{20, 50}, {30, 40}}));
  }
}

TEST(ColdStore, GetResumingStopsWhereResumingCouldMixObjectsOrIsNotTheTransfersFault) {
  const std::string bytes(100, 'x');
  auto broken = [&](std::string etag) {
    auto store = SevenBytePieces(bytes, std::move(etag));
    store->breaks = 5;
    store->break_after = 30;
    return store;
  };
  {  // the copy changed between the break and the resume
    auto store = broken("\"e\"");
    store->changed_meta = store->meta;
    store->changed_meta->etag = "\"f\"";
    Resumed r = ReadResuming(*store, 0, kWholeObject, 3);
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
    EXPECT_EQ(r.data.size(), 30u);
    EXPECT_EQ(store->ranges.size(), 1u);
  }
  {  // an object without our etag: nothing says the later bytes are the same object's
    auto store = broken("");
    Resumed r = ReadResuming(*store, 0, kWholeObject, 3);
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
    EXPECT_TRUE(store->ranges.empty());
  }
  {  // at most max_resumes
    auto store = broken("\"e\"");
    store->break_after = 10;  // 10 bytes per transfer
    Resumed r = ReadResuming(*store, 0, kWholeObject, 2);
    EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
    EXPECT_EQ(r.data.size(), 3 * 10u);
    EXPECT_EQ(store->ranges.size(), 2u);
  }
  {  // a whole object from anywhere but its start is a caller's mistake
    auto store = broken("\"e\"");
    EXPECT_EQ(ReadResuming(*store, 10, kWholeObject, 3).status.code(), StatusCode::kInvalid);
  }
  {  // our own refusals: of the answer, of the bytes, of the resume
    auto store = broken("\"e\"");
    EXPECT_EQ(ReadResuming(*store, 0, kWholeObject, 3, Status::TooLarge("budget")).status.code(),
              StatusCode::kTooLarge);
    EXPECT_EQ(ReadResuming(*store, 0, kWholeObject, 3, Status::Ok(), Status::NoSpace("full"))
                  .status.code(),
              StatusCode::kNoSpace);
    EXPECT_TRUE(store->ranges.empty());
    Resumed r = ReadResuming(*store, 0, kWholeObject, 3, Status::Ok(), Status::Ok(),
                             Status::Unavailable("cancelled"));
    EXPECT_EQ(r.status.message(), "cancelled");
    EXPECT_TRUE(store->ranges.empty());
  }
}

TEST(DirColdStore, NewerVersionIsNeverReplacedOrDeletedByOlder) {
  Fixture fx;
  std::string p1, p2;
  auto v2 = fx.MakeBody("K", "new", 20, &p2);
  auto v1 = fx.MakeBody("K", "old", 10, &p1);
  ASSERT_TRUE(fx.cold->Put(v2, p2).ok());
  ASSERT_TRUE(fx.cold->Put(v1, p1).ok());
  EXPECT_EQ(fx.Fetch("K")->second, "new");
  ASSERT_TRUE(fx.cold->Delete("K", 15).ok());  // a delete older than the object
  EXPECT_EQ(fx.Fetch("K")->second, "new");
}

// Bodies (files named <name>@<stamp>) under the cold directory.
size_t CountBodies(const std::string& cold_dir) {
  size_t bodies = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(cold_dir)) {
    bodies += e.is_regular_file() && e.path().filename().string().find('@') != std::string::npos;
  }
  return bodies;
}

// Holds the first rename onto a .meta for `hold` (or until the store's other
// renames are done), telling when it is held.
class HeldMetaRenameDisk final : public testing::PassThroughDisk {
 public:
  explicit HeldMetaRenameDisk(std::chrono::milliseconds hold) : hold_(hold) {}
  std::promise<void> held;

  int Rename(const char* from, const char* to) override {
    if (std::string_view(to).ends_with(".meta") && !once_) {
      once_ = true;
      held.set_value();
      std::this_thread::sleep_for(hold_);
    }
    return real_.Rename(from, to);
  }

 private:
  std::chrono::milliseconds hold_;
  bool once_ = false;
};

// Two nodes share one directory (two stores, as two processes have): node A's
// Put of version 10 is between its check and its rename when node B puts
// version 12, and B's Delete of version 11 comes after. The newer version
// stays in both cases; the key's lock (flock) is what orders them.
TEST(DirColdStore, NodesSharingADirectoryNeverReplaceANewerVersion) {
  Fixture fx;
  HeldMetaRenameDisk slow_disk(std::chrono::milliseconds(300));
  auto a = DirColdStore::Open(fx.dir / "cold", slow_disk);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::string p10, p12;
  auto v10 = fx.MakeBody("K", "ten", 10, &p10);
  auto v12 = fx.MakeBody("K", "twelve", 12, &p12);
  auto older = std::async(std::launch::async, [&] { return (*a)->Put(v10, p10); });
  slow_disk.held.get_future().wait();
  ASSERT_TRUE(fx.cold->Put(v12, p12).ok());  // B, while A holds its rename
  ASSERT_TRUE(older.get().ok());
  auto got = fx.Fetch("K");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->second, "twelve") << "an older version replaced a newer one";
  EXPECT_TRUE(fx.cold->Delete("K", 11).ok());  // older than what is stored
  EXPECT_EQ(fx.Fetch("K")->second, "twelve");
  EXPECT_EQ(CountBodies(fx.dir / "cold"), 1u) << "a superseded body was left behind";
}

// Runs `between` on the next `times` opens of a committed body for reading:
// after the reader read the .meta that names the body, before the open.
class BetweenMetaAndBodyDisk final : public testing::PassThroughDisk {
 public:
  std::function<void()> between;
  int times = 0;

  int Open(const char* path, int flags, mode_t mode) override {
    if ((flags & O_ACCMODE) == O_RDONLY && std::string_view(path).find('@') != std::string::npos &&
        times > 0) {
      --times;
      between();
    }
    return real_.Open(path, flags, mode);
  }
};

// A node reads a key's .meta, then another node sharing the directory puts a
// newer version (replacing the .meta, removing the body it named), then the
// reader opens that body: it reads the newer version instead of reporting an
// existing object lost (NotFound), and NotFound only for an object deleted
// meanwhile.
TEST(DirColdStore, ReadFollowsAPutThatRemovedTheBodyItsMetaNamed) {
  Fixture fx;
  BetweenMetaAndBodyDisk disk;
  auto reader = DirColdStore::Open(fx.dir / "cold", disk);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  uint64_t version = 0;
  auto put_next = [&] {
    std::string path;
    ++version;
    auto meta = fx.MakeBody("K", "v" + std::to_string(version), version, &path);
    ASSERT_TRUE(fx.cold->Put(meta, path).ok());
  };
  put_next();
  disk.between = put_next;

  disk.times = 1;
  auto got = testing::ReadObject(**reader, "K");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->second, "v2");
  EXPECT_EQ(got->first.version, 2u);

  disk.times = 1;
  auto range = FetchRange(**reader, "K", 1, 1);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(range->second, "3");

  // Replaced at every open: the read gives up, as an outage.
  disk.times = 100;
  EXPECT_EQ(testing::ReadObject(**reader, "K").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(disk.times, 96) << "not a few bounded attempts";

  disk.between = [&] { ASSERT_TRUE(fx.cold->Delete("K", version).ok()); };
  disk.times = 1;
  EXPECT_EQ(testing::ReadObject(**reader, "K").status().code(), StatusCode::kNotFound);
}

// A .meta whose body is missing (not replaced: it names the same body when
// read again) is a damaged store, not an object that was never stored.
TEST(DirColdStore, ABodyMissingUnderItsMetaIsAnOutageNotAnAbsentObject) {
  Fixture fx;
  std::string path;
  ASSERT_TRUE(fx.cold->Put(fx.MakeBody("K", "body", 1, &path), path).ok());
  for (const auto& e : std::filesystem::recursive_directory_iterator(fx.dir / "cold")) {
    if (e.path().filename().string().find('@') != std::string::npos) {
      std::filesystem::remove(e.path());
    }
  }
  EXPECT_EQ(fx.Fetch("K").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(FetchRange(*fx.cold, "K", 0, 1).status().code(), StatusCode::kUnavailable);
}

// Fails the directory fsync that follows a rename onto a path containing
// `target` (".meta": a .meta, "@": a body): the rename happened, its
// durability is unknown.
class FailingSyncAfterRenameDisk final : public testing::PassThroughDisk {
 public:
  explicit FailingSyncAfterRenameDisk(std::string target) : target_(std::move(target)) {}

  int Rename(const char* from, const char* to) override {
    renamed_ = std::string_view(to).find(target_) != std::string_view::npos;
    return real_.Rename(from, to);
  }
  int SyncDir(const char* path) override {
    return std::exchange(renamed_, false) ? -EIO : real_.SyncDir(path);
  }

 private:
  std::string target_;
  bool renamed_ = false;
};

// A Put whose .meta rename succeeded but whose directory fsync failed reports
// the failure, yet keeps the body the .meta in place names (the object stays
// readable) and the previous body (a crash may bring back the .meta naming it).
TEST(DirColdStore, AFailedSyncAfterTheMetaRenameKeepsTheBodiesBothMetasName) {
  Fixture fx;
  std::string p1, p2;
  ASSERT_TRUE(fx.cold->Put(fx.MakeBody("K", "one", 1, &p1), p1).ok());
  FailingSyncAfterRenameDisk disk(".meta");
  auto writer = DirColdStore::Open(fx.dir / "cold", disk);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ((*writer)->Put(fx.MakeBody("K", "two", 2, &p2), p2).code(), StatusCode::kIOError);
  auto got = fx.Fetch("K");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->second, "two");
  EXPECT_EQ(got->first.version, 2u);
  EXPECT_EQ(CountBodies(fx.dir / "cold"), 2u);
}

// The body's own commit failing at its directory fsync leaves no body behind:
// no .meta names it.
TEST(DirColdStore, AFailedSyncAfterTheBodyRenameLeavesNoBody) {
  Fixture fx;
  FailingSyncAfterRenameDisk disk("@");
  auto writer = DirColdStore::Open(fx.dir / "cold", disk);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  std::string path;
  EXPECT_EQ((*writer)->Put(fx.MakeBody("K", "one", 1, &path), path).code(), StatusCode::kIOError);
  EXPECT_EQ(fx.Fetch("K").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountBodies(fx.dir / "cold"), 0u);
}

TEST(DirColdStore, RejectsABodyThatDoesNotMatchItsMeta) {
  Fixture fx;
  std::string path;
  auto meta = fx.MakeBody("K", "abc", 1, &path);
  meta.etag = "\"00\"";
  EXPECT_EQ(fx.cold->Put(meta, path).code(), StatusCode::kCorruption);
  EXPECT_EQ(fx.Fetch("K").status().code(), StatusCode::kNotFound);
}

TEST(DirColdStore, OverwriteLeavesOneBody) {
  Fixture fx;
  for (uint64_t v = 1; v <= 3; ++v) {
    std::string path;
    auto meta = fx.MakeBody("K", "v" + std::to_string(v), v, &path);
    ASSERT_TRUE(fx.cold->Put(meta, path).ok());
  }
  EXPECT_EQ(fx.Fetch("K")->second, "v3");
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(fx.dir / "cold")) {
    files += e.is_regular_file() && e.path().parent_path().filename() != "locks";
  }
  EXPECT_EQ(files, 2u);  // one body, one .meta (and this store's lock file)
}

TEST(DirColdStore, StartUpRemovesOnlyTheTemporariesOfDeadOwners) {
  testing::TempDir dir;
  const std::string cold = dir / "cold";
  auto live = DirColdStore::Open(cold, DefaultDisk());
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  // A live owner's temporary, and a dead owner's (no lock held).
  std::string live_tmp;
  for (const auto& e : std::filesystem::directory_iterator(cold + "/tmp")) {
    live_tmp = e.path().string() + "/upload.part";
  }
  ASSERT_FALSE(live_tmp.empty());
  { std::ofstream(live_tmp) << "in flight"; }
  std::filesystem::create_directories(cold + "/tmp/deadbeefdeadbeef");
  { std::ofstream(cold + "/tmp/deadbeefdeadbeef/x.part") << "left over"; }
  { std::ofstream(cold + "/locks/deadbeefdeadbeef.lock") << ""; }

  auto second = DirColdStore::Open(cold, DefaultDisk());
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(std::filesystem::exists(live_tmp));
  EXPECT_FALSE(std::filesystem::exists(cold + "/tmp/deadbeefdeadbeef"));
  EXPECT_FALSE(std::filesystem::exists(cold + "/locks/deadbeefdeadbeef.lock"));
  live->reset();  // a clean close leaves no temporaries of its own
  EXPECT_FALSE(std::filesystem::exists(live_tmp));
}

}  // namespace
}  // namespace objstore
