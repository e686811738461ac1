// SingleFlight: at most one run of a piece of work per key at a time;
// concurrent callers for the same key wait for that run and share its result.
//
// Used for misses (cold-store and peer fetches): N concurrent GETs of a cold
// id cause one fetch. Waiters are suspended coroutines woken by the leader on
// their own executors when the result is ready: no polling, no blocked threads.
// Thread safety: Run may be called from any thread. R must be copyable.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace objstore {

template <typename R>
class SingleFlight {
 public:
  // Runs work() unless a run for `key` is in flight, in which case waits for it.
  boost::asio::awaitable<R> Run(std::string key,
                                std::function<boost::asio::awaitable<R>()> work) {
    namespace asio = boost::asio;
    std::shared_ptr<Flight> flight;
    bool leader = false;
    {
      std::lock_guard lock(mu_);
      auto& slot = flights_[key];
      if (!slot) {
        slot = std::make_shared<Flight>();
        leader = true;
      }
      flight = slot;
    }
    if (!leader) {
      // Named, not a temporary in the co_await expression: g++ 12 destroys
      // capturing lambda temporaries there twice (docs/ARCHITECTURE.md).
      auto wait = [flight](auto handler) {
        // Type-erase the (move-only) handler together with the executor it
        // must be resumed on.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        Waiter waiter{asio::get_associated_executor(*shared),
                      [shared](std::optional<R> r) { std::move (*shared)(std::move(r)); }};
        std::unique_lock lock(flight->mu);
        if (flight->done) {  // finished between the map lookup and now
          std::optional<R> copy = flight->result;
          lock.unlock();
          Complete(std::move(waiter), std::move(copy));
          return;
        }
        flight->waiters.push_back(std::move(waiter));
      };
      std::optional<R> r = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                                         void(std::optional<R>)>(
          std::move(wait), asio::use_awaitable);
      if (!r) throw std::runtime_error("the shared run for " + key + " failed");
      co_return std::move(*r);
    }
    std::optional<R> result;
    try {
      result.emplace(co_await work());
    } catch (...) {
      Finish(key, flight, std::nullopt);
      throw;
    }
    Finish(key, flight, result);
    co_return std::move(*result);
  }

  size_t InFlight() const {
    std::lock_guard lock(mu_);
    return flights_.size();
  }

 private:
  struct Waiter {
    boost::asio::any_io_executor executor;
    std::function<void(std::optional<R>)> resume;
  };
  struct Flight {
    std::mutex mu;
    bool done = false;             // guarded by mu
    std::optional<R> result;       // guarded by mu; empty when the leader threw
    std::vector<Waiter> waiters;   // guarded by mu
  };

  static void Complete(Waiter waiter, std::optional<R> r) {
    boost::asio::post(waiter.executor, [resume = std::move(waiter.resume),
                                        r = std::move(r)]() mutable { resume(std::move(r)); });
  }

  // Publishes the result (nullopt: the leader threw, and so will the waiters).
  void Finish(const std::string& key, const std::shared_ptr<Flight>& flight,
              std::optional<R> result) {
    {
      std::lock_guard lock(mu_);
      flights_.erase(key);
    }
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(flight->mu);
      flight->done = true;
      flight->result = result;
      waiters.swap(flight->waiters);
    }
    for (auto& w : waiters) Complete(std::move(w), result);
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mu_
};

}  // namespace objstore
