#include "coldstore/dir_cold_store.h"

#include <gtest/gtest.h>

#include <fstream>

#include "base/test_util.h"
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
    ColdObjectMeta meta;
    std::string data;
    Status s = cold->Get(
        key, [&](const ColdObjectMeta& m) { meta = m; return Status::Ok(); },
        [&](std::span<const char> c) { data.append(c.data(), c.size()); return Status::Ok(); });
    if (!s.ok()) return s;
    return std::make_pair(meta, data);
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
