#include "store/open_body_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "base/test_util.h"
#include "store/body_store.h"

namespace objstore {
namespace {
namespace fs = std::filesystem;

UniqueFd OpenNull() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

// A reader's miss then insert of key@version, as BodyStore::OpenBody does.
SharedBody InsertNull(OpenBodyCache& cache, const std::string& key, HlcTimestamp version) {
  return cache.Insert(key, version, SharedBody(OpenNull()), cache.Get(key, version).ticket);
}

// Descriptors of this process that point at a deleted file under `dir`: an
// unlinked body whose disk space is still held.
size_t DeletedFilesHeld(const std::string& dir) {
  const std::string prefix = fs::weakly_canonical(dir).string();
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = fs::read_symlink(e.path(), ec).string();
    n += !ec && target.starts_with(prefix) && target.ends_with(" (deleted)");
  }
  return n;
}

std::string Commit(BodyStore& store, const std::string& key, HlcTimestamp v, std::string_view b) {
  auto body = std::move(store.NewBody().value());
  EXPECT_TRUE(body->Append(b).ok());
  EXPECT_TRUE(store.Commit(*body, key, v).ok());
  return store.PathFor(key, v);
}

std::string ReadAt(int fd, size_t n) {
  std::string out(n, '\0');
  out.resize(static_cast<size_t>(std::max<ssize_t>(0, ::pread(fd, out.data(), n, 0))));
  return out;
}

TEST(OpenBodyCache, HitsExactlyTheCachedVersion) {
  OpenBodyCache cache(64);
  auto miss = cache.Get("K", HlcTimestamp{1});
  EXPECT_FALSE(miss.body.valid());
  SharedBody fd = cache.Insert("K", HlcTimestamp{1}, SharedBody(OpenNull()), miss.ticket);
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(cache.Get("K", HlcTimestamp{1}).body.get(), fd.get());
  EXPECT_FALSE(cache.Get("K", HlcTimestamp{2}).body.valid());
  EXPECT_FALSE(cache.Get("OTHER", HlcTimestamp{1}).body.valid());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(OpenBodyCache, NewerVersionReplacesOlderNeverTheReverse) {
  OpenBodyCache cache(64);
  InsertNull(cache, "K", HlcTimestamp{1});
  SharedBody v2 = InsertNull(cache, "K", HlcTimestamp{2});
  EXPECT_FALSE(cache.Get("K", HlcTimestamp{1}).body.valid());
  EXPECT_EQ(cache.Get("K", HlcTimestamp{2}).body.get(), v2.get());
  // A reader of the old version still gets its descriptor, uncached.
  SharedBody v1 = InsertNull(cache, "K", HlcTimestamp{1});
  EXPECT_TRUE(v1.valid());
  EXPECT_EQ(cache.Get("K", HlcTimestamp{2}).body.get(), v2.get());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(OpenBodyCache, InvalidateDropsOnlyThatVersion) {
  OpenBodyCache cache(64);
  InsertNull(cache, "K", HlcTimestamp{2});
  cache.Invalidate("K", HlcTimestamp{1});
  EXPECT_TRUE(cache.Get("K", HlcTimestamp{2}).body.valid());
  cache.Invalidate("K", HlcTimestamp{2});
  EXPECT_FALSE(cache.Get("K", HlcTimestamp{2}).body.valid());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(OpenBodyCache, OpenRacingARemovalIsNotCached) {
  // A reader misses, opens the file; the file is unlinked and invalidated
  // before the reader inserts: the descriptor must not stay in the cache.
  OpenBodyCache cache(64);
  auto miss = cache.Get("K", HlcTimestamp{1});
  cache.Invalidate("K", HlcTimestamp{1});
  SharedBody fd = cache.Insert("K", HlcTimestamp{1}, SharedBody(OpenNull()), miss.ticket);
  EXPECT_TRUE(fd.valid());  // still handed to its reader
  EXPECT_FALSE(cache.Get("K", HlcTimestamp{1}).body.valid());
  EXPECT_EQ(cache.size(), 0u);
  // Clear counts as a removal too.
  miss = cache.Get("K", HlcTimestamp{1});
  cache.Clear();
  cache.Insert("K", HlcTimestamp{1}, SharedBody(OpenNull()), miss.ticket);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(OpenBodyCache, BoundedAndZeroDisables) {
  OpenBodyCache cache(32);  // two per shard
  for (int i = 0; i < 500; ++i) {
    const std::string key = "K" + std::to_string(i);
    InsertNull(cache, key, HlcTimestamp{1});
  }
  EXPECT_LE(cache.size(), 32u);
  EXPECT_GT(cache.size(), 0u);

  OpenBodyCache off(0);
  SharedBody fd = InsertNull(off, "K", HlcTimestamp{1});
  EXPECT_TRUE(fd.valid());
  EXPECT_FALSE(off.Get("K", HlcTimestamp{1}).body.valid());
  EXPECT_EQ(off.size(), 0u);
}

TEST(OpenBodyCache, DescriptorClosesWhenCacheAndReadersDropIt) {
  OpenBodyCache cache(64);
  int raw;
  {
    SharedBody fd = InsertNull(cache, "K", HlcTimestamp{1});
    raw = fd.get();
    cache.Invalidate("K", HlcTimestamp{1});
    EXPECT_NE(::fcntl(raw, F_GETFD), -1) << "closed under its reader";
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1) << "still open with no cache entry and no reader";
}

// Readers and removers on several threads (run under TSan in CI).
TEST(OpenBodyCache, ConcurrentReadersAndRemovers) {
  OpenBodyCache cache(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string key = "K" + std::to_string(i % 40);
        const HlcTimestamp v{static_cast<uint64_t>(i % 3)};
        if ((i + t) % 5 == 0) {
          cache.Invalidate(key, v);
          continue;
        }
        auto got = cache.Get(key, v);
        if (!got.body.valid()) got.body = cache.Insert(key, v, SharedBody(OpenNull()), got.ticket);
        EXPECT_TRUE(got.body.valid());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(cache.size(), 16u);
}

// ---------------------------------------------------------------- in BodyStore

class OpenBodyCacheInStore : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  const std::string files_ = dir_ / "files";
  std::unique_ptr<BodyStore> store_ = std::move(BodyStore::Open(files_, DefaultDisk(), 64).value());
};

TEST_F(OpenBodyCacheInStore, ReusesTheDescriptorOfABody) {
  Commit(*store_, "KEY", HlcTimestamp{1}, "first");
  auto a = store_->OpenBody("KEY", HlcTimestamp{1});
  auto b = store_->OpenBody("KEY", HlcTimestamp{1});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(ReadAt(b->get(), 16), "first");
  ASSERT_NE(b->bytes(), nullptr);
  EXPECT_EQ(*b->bytes(), "first");
}

TEST_F(OpenBodyCacheInStore, SmallBodiesAreHeldInMemoryLargeOnesAreNot) {
  const std::string small(kInMemoryBodyMax, 's'), large(kInMemoryBodyMax + 1, 'l');
  Commit(*store_, "SMALL", HlcTimestamp{1}, small);
  Commit(*store_, "LARGE", HlcTimestamp{1}, large);
  Commit(*store_, "EMPTY", HlcTimestamp{1}, "");
  auto s = store_->OpenBody("SMALL", HlcTimestamp{1});
  auto l = store_->OpenBody("LARGE", HlcTimestamp{1});
  auto e = store_->OpenBody("EMPTY", HlcTimestamp{1});
  ASSERT_TRUE(s.ok() && l.ok() && e.ok());
  ASSERT_NE(s->bytes(), nullptr);
  EXPECT_EQ(*s->bytes(), small);
  EXPECT_EQ(l->bytes(), nullptr);
  EXPECT_EQ(ReadAt(l->get(), large.size() + 1), large);
  ASSERT_NE(e->bytes(), nullptr);
  EXPECT_EQ(*e->bytes(), "");
  // The cached entry hands the same bytes to the next reader.
  EXPECT_EQ(store_->OpenBody("SMALL", HlcTimestamp{1})->bytes(), s->bytes());
}

TEST_F(OpenBodyCacheInStore, RemovedBodyKeepsNoDiskSpaceAndIsNeverServed) {
  Commit(*store_, "KEY", HlcTimestamp{1}, "version one");
  ASSERT_TRUE(store_->OpenBody("KEY", HlcTimestamp{1}).ok());  // now cached
  // Overwrite: the new version is committed, the old one removed.
  Commit(*store_, "KEY", HlcTimestamp{2}, "version two");
  ASSERT_TRUE(store_->Remove("KEY", HlcTimestamp{1}).ok());
  EXPECT_EQ(DeletedFilesHeld(files_), 0u) << "the removed body's descriptor stayed open";
  EXPECT_EQ(store_->OpenBody("KEY", HlcTimestamp{1}).status().code(), StatusCode::kNotFound);
  auto two = store_->OpenBody("KEY", HlcTimestamp{2});
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(ReadAt(two->get(), 32), "version two");
  ASSERT_NE(two->bytes(), nullptr);
  EXPECT_EQ(*two->bytes(), "version two");

  // A reader holding the descriptor while the body is removed (delete,
  // eviction) keeps it until it is done, and not a moment longer.
  ASSERT_TRUE(store_->Remove("KEY", HlcTimestamp{2}).ok());
  EXPECT_EQ(DeletedFilesHeld(files_), 1u);
  EXPECT_EQ(ReadAt(two->get(), 32), "version two");
  two = Status::NotFound("dropped by its reader");
  EXPECT_EQ(DeletedFilesHeld(files_), 0u);
}

TEST_F(OpenBodyCacheInStore, CommitOverAnEqualStampedBodyIsNeverServedStale) {
  // Two nodes may stamp the same version: a peer's copy is committed under
  // the name of the replaced body, whose descriptor may be cached.
  Commit(*store_, "KEY", HlcTimestamp{5}, "ours");
  ASSERT_TRUE(store_->OpenBody("KEY", HlcTimestamp{5}).ok());  // now cached
  Commit(*store_, "KEY", HlcTimestamp{5}, "theirs");
  auto fd = store_->OpenBody("KEY", HlcTimestamp{5});
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(ReadAt(fd->get(), 16), "theirs");
  ASSERT_NE(fd->bytes(), nullptr);
  EXPECT_EQ(*fd->bytes(), "theirs");
  fd = Status::NotFound("dropped by its reader");
  EXPECT_EQ(DeletedFilesHeld(files_), 0u);
}

TEST_F(OpenBodyCacheInStore, RemovingUnreferencedBodiesDropsTheirDescriptors) {
  Commit(*store_, "ORPHAN", HlcTimestamp{3}, "orphan");
  ASSERT_TRUE(store_->OpenBody("ORPHAN", HlcTimestamp{3}).ok());
  EXPECT_EQ(
      store_->RemoveUnreferenced([](const std::string&, HlcTimestamp) { return false; }).removed,
      1u);
  EXPECT_EQ(DeletedFilesHeld(files_), 0u);
}

}  // namespace
}  // namespace objstore
