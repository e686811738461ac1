#include "node/cold_fetch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <limits>
#include <thread>

namespace objstore {
namespace {
namespace asio = boost::asio;

ObjectRecord Record(uint64_t size) {
  ObjectRecord r;
  r.key = "K";
  r.size = size;
  return r;
}

// Readers on two event loops follow one fetch published from a third thread,
// as GETs on two loops follow a transfer on the blocking pool.
TEST(ColdFetch, ReadersFollowProgressAndGetTheLastChunkOnlyAfterFinish) {
  ColdFetch fetch;
  asio::io_context io1, io2;
  auto g1 = asio::make_work_guard(io1), g2 = asio::make_work_guard(io2);
  std::atomic<int> done{0};
  std::vector<std::vector<uint64_t>> seen(20);
  for (int i = 0; i < 20; ++i) {
    auto reader = [&, i]() -> asio::awaitable<void> {
      auto first = co_await fetch.Wait(0, true);
      EXPECT_TRUE(first.has_meta);
      uint64_t have = 0;
      while (have < 100) {
        auto p = co_await fetch.Wait(have);
        EXPECT_TRUE(p.status.ok());
        EXPECT_GT(p.sendable, have);
        if (!p.complete) {
          EXPECT_LE(p.sendable, 90u);  // the chunk with the last byte waits
        }
        have = p.sendable;
        seen[i].push_back(have);
      }
      if (++done == 20) {
        g1.reset();
        g2.reset();
      }
    };
    asio::co_spawn(i % 2 ? io1 : io2, std::move(reader), asio::detached);
  }
  std::thread t1([&] { io1.run(); }), t2([&] { io2.run(); });
  std::thread fetcher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fetch.PublishMeta(Record(100), UniqueFd());
    for (uint64_t w = 10; w <= 100; w += 10) {
      fetch.PublishBytes(w);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fetch.Finish(std::make_shared<const ObjectRecord>(Record(100)));
  });
  fetcher.join();
  t1.join();
  t2.join();
  EXPECT_EQ(done.load(), 20);
  for (const auto& s : seen) {
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.back(), 100u);
    EXPECT_EQ(s[s.size() - 2], 90u);  // the last chunk is not published on its own
  }
  EXPECT_TRUE(fetch.Current().complete);
  EXPECT_EQ(fetch.outcome()->size, 100u);
}

// A range read counts its bytes against the range's length, not the body's
// size: the chunk that completes the range waits for the verification, and
// a finished read never offers more than the range.
TEST(ColdFetch, ARangeReadIsBoundedByItsLength) {
  ColdFetch read;
  read.PublishMeta(Record(1000), UniqueFd(), 100);
  EXPECT_EQ(read.record().size, 1000u);  // the answer is about the whole body
  read.PublishBytes(60);
  EXPECT_EQ(read.Current().sendable, 60u);
  read.PublishBytes(100);
  EXPECT_EQ(read.Current().sendable, 60u);
  read.PublishVerified();
  EXPECT_EQ(read.Current().sendable, 100u);
  read.Finish(std::make_shared<const ObjectRecord>(Record(1000)));
  EXPECT_TRUE(read.Current().complete);
  EXPECT_EQ(read.Current().sendable, 100u);
}

// The bytes that complete the body are published by the verification alone,
// whatever the chunk (one wake-up of the readers for them, not two). A
// verified body is sendable whole before its commit; a request that needs the
// committed record (Wait with no byte count to reach) waits for Finish.
TEST(ColdFetch, VerifiedReleasesTheLastChunkAndTheCommitIsWaitedApart) {
  ColdFetch fetch;
  fetch.PublishMeta(Record(100), UniqueFd());
  fetch.PublishBytes(17);
  EXPECT_EQ(fetch.Current().sendable, 17u);
  fetch.PublishBytes(99);
  EXPECT_EQ(fetch.Current().sendable, 99u);
  fetch.PublishBytes(100);  // completes the body: nothing new to send yet
  EXPECT_EQ(fetch.Current().sendable, 99u);
  fetch.PublishBytes(101);  // more than announced: the check will refuse it
  EXPECT_EQ(fetch.Current().sendable, 99u);
  EXPECT_FALSE(fetch.Current().verified);

  ColdFetch whole;  // a body that arrives in one chunk
  whole.PublishMeta(Record(100), UniqueFd());
  whole.PublishBytes(100);
  EXPECT_EQ(whole.Current().sendable, 0u);
  whole.PublishVerified();
  EXPECT_EQ(whole.Current().sendable, 100u);

  fetch.PublishVerified();
  EXPECT_EQ(fetch.Current().sendable, 100u);
  EXPECT_TRUE(fetch.Current().verified);
  EXPECT_FALSE(fetch.Current().complete);

  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  bool last_byte = false, settled = false;
  auto reader = [&]() -> asio::awaitable<void> {
    auto p = co_await fetch.Wait(99);
    last_byte = p.sendable == 100 && !p.complete;
    auto q = co_await fetch.Wait(std::numeric_limits<uint64_t>::max());
    settled = q.complete;
    guard.reset();
  };
  asio::co_spawn(io, std::move(reader), asio::detached);
  std::thread fetcher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fetch.Finish(std::make_shared<const ObjectRecord>(Record(100)));
  });
  io.run();
  fetcher.join();
  EXPECT_TRUE(last_byte);
  EXPECT_TRUE(settled);
}

// The publishers say whether they woke a reader: the fetcher hands its CPU
// over only then (Node::RunColdFetch).
TEST(ColdFetch, PublishersSayWhetherTheyWokeAReader) {
  ColdFetch fetch;
  fetch.PublishMeta(Record(100), UniqueFd());
  EXPECT_FALSE(fetch.PublishBytes(10));  // nobody waits

  // Polled, never run: a spawned reader counts as work until it ends, so
  // run() would block while it is parked; and a poll in which the last
  // reader ended leaves the loop stopped until restart().
  asio::io_context io;
  std::vector<uint64_t> resumed;
  auto reader = [&](uint64_t have) -> asio::awaitable<void> {
    auto p = co_await fetch.Wait(have);
    resumed.push_back(p.sendable);
  };
  asio::co_spawn(io, reader(10), asio::detached);
  io.poll();  // parks: 10 bytes are sendable, it wants more
  io.restart();
  EXPECT_TRUE(resumed.empty());
  EXPECT_TRUE(fetch.PublishBytes(50));
  io.poll();
  io.restart();
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0], 50u);

  asio::co_spawn(io, reader(50), asio::detached);
  io.poll();
  io.restart();
  EXPECT_FALSE(fetch.PublishBytes(100));  // completes the body: held back, nobody woken
  EXPECT_EQ(resumed.size(), 1u);
  EXPECT_TRUE(fetch.PublishVerified());
  io.poll();
  io.restart();
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed[1], 100u);
  EXPECT_FALSE(fetch.PublishVerified());  // again: nobody left to wake
}

TEST(ColdFetch, FailureWakesEveryReader) {
  ColdFetch fetch;
  asio::io_context io;
  // Parked readers are not asio work: keep the loop alive until all are done.
  auto guard = asio::make_work_guard(io);
  int failed = 0, finished = 0;
  for (int i = 0; i < 5; ++i) {
    auto reader = [&]() -> asio::awaitable<void> {
      // Follow the fetch as a streaming GET does, until it ends.
      uint64_t have = 0;
      bool first = true;
      Status status;
      for (;;) {
        auto p = co_await fetch.Wait(have, first);
        first = false;
        status = p.status;
        if (!status.ok() || p.complete) break;
        have = p.sendable;
      }
      if (status.code() == StatusCode::kUnavailable) ++failed;
      if (++finished == 5) guard.reset();
    };
    asio::co_spawn(io, std::move(reader), asio::detached);
  }
  std::thread fetcher([&] {
    fetch.PublishMeta(Record(10), UniqueFd());
    fetch.PublishBytes(4);
    fetch.Finish(Status::Unavailable("S3 went away"));
  });
  io.run();  // returns when every reader finished
  fetcher.join();
  EXPECT_EQ(failed, 5);
}

TEST(ColdFetch, LateReaderOfAFinishedFetchReturnsAtOnce) {
  ColdFetch fetch;
  fetch.PublishMeta(Record(0), UniqueFd());
  fetch.Finish(std::make_shared<const ObjectRecord>(Record(0)));
  asio::io_context io;
  bool complete = false;
  auto reader = [&]() -> asio::awaitable<void> {
    auto p = co_await fetch.Wait(0, true);
    complete = p.complete;
  };
  asio::co_spawn(io, std::move(reader), asio::detached);
  io.run();
  EXPECT_TRUE(complete);
}

// A fetch's descriptor keeps its file's pages until the fetch is destroyed,
// which readers may delay past the commit: until then the committed body is
// not evicted and the bytes of a failed fetch stay counted.
TEST(ColdFetch, HoldsItsPinAndReservationUntilDestroyed) {
  CapacityOptions options;
  options.max_bytes = 1000;
  options.policy = "lru";
  // Evictions only on demand: at the default 95% the eviction thread would
  // race the test for "other" as soon as the budget is full.
  options.high_watermark = 1.0;
  CapacityHooks hooks;
  std::vector<std::string> evicted;  // only the eviction thread writes it
  hooks.remove_body = [&](const std::string& key, uint64_t) {
    evicted.push_back(key);
    return Removal::kRemoved;
  };
  hooks.save_state = [](const std::string&) {};
  auto capacity = Capacity::Open(options, hooks);
  ASSERT_TRUE(capacity.ok());
  Capacity& c = **capacity;

  auto committed = std::make_shared<ColdFetch>();
  Reservation& r1 = committed->HoldSpace(c.Pin("K"), c.NewReservation());
  ASSERT_TRUE(c.Reserve(r1, 400).ok());
  c.AddBody("K", 1, 400, /*evictable=*/true, &r1);  // the oldest: LRU's first victim
  auto failed = std::make_shared<ColdFetch>();
  Reservation& r2 = failed->HoldSpace(c.Pin("F"), c.NewReservation());
  ASSERT_TRUE(c.Reserve(r2, 300).ok());  // never handed to a body
  Reservation other = c.NewReservation();
  ASSERT_TRUE(c.Reserve(other, 300).ok());
  c.AddBody("other", 1, 300, true, &other);
  EXPECT_EQ(c.Stats().used_bytes, 1000u);

  Reservation more = c.NewReservation();
  ASSERT_TRUE(c.Reserve(more, 300).ok());  // "K" is pinned: "other" goes
  more = Reservation();
  EXPECT_EQ(c.Stats().evictions, 1u);
  EXPECT_EQ(c.Stats().used_bytes, 700u) << "the failed fetch's 300 bytes still count";
  failed.reset();
  EXPECT_EQ(c.Stats().used_bytes, 400u);
  committed.reset();  // unpinned: "K" may go now
  Reservation all = c.NewReservation();
  ASSERT_TRUE(c.Reserve(all, 1000).ok());
  EXPECT_EQ(c.Stats().evictions, 2u);
  all = Reservation();
  capacity->reset();  // joins the eviction thread before `evicted` is read
  EXPECT_EQ(evicted, (std::vector<std::string>{"other", "K"}));
}

}  // namespace
}  // namespace objstore
