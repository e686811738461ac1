#include "node/single_flight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

namespace objstore {
namespace {
namespace asio = boost::asio;

TEST(SingleFlight, ConcurrentCallersShareOneRun) {
  SingleFlight<int> flights;
  std::atomic<int> runs{0};
  std::atomic<int> done{0};
  std::vector<int> results(50, -1);
  asio::io_context io1, io2;  // callers on two threads, as on two event loops
  auto work = [&]() -> asio::awaitable<int> {
    ++runs;
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    co_await t.async_wait(asio::use_awaitable);
    co_return 42;
  };
  for (int i = 0; i < 50; ++i) {
    auto& io = i % 2 ? io1 : io2;
    asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
      results[i] = co_await flights.Run("key", work);
      ++done;
    }, asio::detached);
  }
  std::thread t1([&] { io1.run(); });
  std::thread t2([&] { io2.run(); });
  t1.join();
  t2.join();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(done.load(), 50);
  for (int r : results) EXPECT_EQ(r, 42);
  EXPECT_EQ(flights.InFlight(), 0u);
}

TEST(SingleFlight, DifferentKeysRunSeparatelyAndLaterCallsRunAgain) {
  SingleFlight<int> flights;
  std::atomic<int> runs{0};
  asio::io_context io;
  auto work = [&]() -> asio::awaitable<int> { co_return ++runs; };
  int a = 0, b = 0, c = 0;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    a = co_await flights.Run("a", work);
    b = co_await flights.Run("b", work);
    c = co_await flights.Run("a", work);
  }, asio::detached);
  io.run();
  EXPECT_EQ(runs.load(), 3);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(c, 3);
}

TEST(SingleFlight, AFailingLeaderFailsItsWaiters) {
  SingleFlight<int> flights;
  asio::io_context io;
  int failures = 0;
  auto work = [&]() -> asio::awaitable<int> {
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
    co_await t.async_wait(asio::use_awaitable);
    throw std::runtime_error("boom");
  };
  for (int i = 0; i < 3; ++i) {
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      try {
        co_await flights.Run("k", work);
      } catch (const std::exception&) {
        ++failures;
      }
    }, asio::detached);
  }
  io.run();
  EXPECT_EQ(failures, 3);
}

}  // namespace
}  // namespace objstore
