// RunBlocking: runs a blocking call (fsync, SQLite commit, cold-store
// transfer) on a thread pool and resumes the calling coroutine on its own
// executor with the result, so event-loop threads never block on disk or on
// the network. R must be constructible from a Status (Status or Result<T>):
// an exception escaping the call becomes an IOError instead of a crash.
// Callers pass lambdas that capture by reference only when written inline in
// the co_await (g++ 12 destroys such temporaries twice; harmless only for
// trivially destructible closures; docs/ARCHITECTURE.md).
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "base/status.h"

namespace objstore {

template <typename F>
auto RunBlocking(boost::asio::thread_pool& pool, F fn)
    -> boost::asio::awaitable<std::invoke_result_t<F&>> {
  namespace asio = boost::asio;
  using R = std::invoke_result_t<F&>;
  // The result travels as optional<R>: asio's awaitable needs a
  // default-constructible value and Result<T> has none.
  // Named, not a temporary inside co_await (docs/ARCHITECTURE.md, g++ 12).
  auto start = [&pool, &fn](auto handler) {
    asio::post(pool, [fn = std::move(fn), handler = std::move(handler)]() mutable {
      std::optional<R> r;
      try {
        r.emplace(fn());
      } catch (const std::exception& e) {
        r.emplace(Status::IOError(std::string("unexpected exception: ") + e.what()));
      }
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
        std::move(handler)(std::move(r));
      });
    });
  };
  std::optional<R> out =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::optional<R>)>(
          std::move(start), asio::use_awaitable);
  co_return std::move(*out);
}

}  // namespace objstore
