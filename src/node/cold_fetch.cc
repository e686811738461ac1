#include "node/cold_fetch.h"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace objstore {

namespace asio = boost::asio;

ColdFetch::Progress ColdFetch::CurrentLocked() const {
  Progress p;
  p.status = status_;
  p.has_meta = has_meta_;
  p.complete = finished_ && status_.ok();
  p.verified = p.complete || (verified_ && status_.ok());
  // Until verified, written_ < size (PublishBytes): the last byte waits.
  if (has_meta_) p.sendable = p.verified ? length_ : written_;
  return p;
}

ColdFetch::Progress ColdFetch::Current() const {
  std::lock_guard lock(mu_);
  return CurrentLocked();
}

ColdFetch::RecordPtr ColdFetch::outcome() const {
  std::lock_guard lock(mu_);
  return outcome_;
}

bool ColdFetch::Ready(const Waiter& w, const Progress& p) const {
  if (!p.status.ok() || p.complete) return true;
  if (w.wait_meta && p.has_meta) return true;
  if (p.verified && w.have == 0) return true;  // an empty body has no byte to wait for
  return p.has_meta && p.sendable > w.have;
}

bool ColdFetch::WakeReady(std::unique_lock<std::mutex>& lock) {
  const Progress p = CurrentLocked();
  std::vector<Waiter> ready;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (Ready(*it, p)) {
      ready.push_back(std::move(*it));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  lock.unlock();
  for (auto& w : ready) {
    asio::post(w.executor, [resume = std::move(w.resume), p]() { resume(p); });
  }
  return !ready.empty();
}

asio::awaitable<ColdFetch::Progress> ColdFetch::Wait(uint64_t have, bool wait_meta) {
  {
    std::lock_guard lock(mu_);
    Progress p = CurrentLocked();
    if (Ready(Waiter{have, wait_meta, {}, {}}, p)) co_return p;
  }
  // Named, not a temporary inside co_await (docs/ARCHITECTURE.md, g++ 12).
  auto park = [this, have, wait_meta](auto handler) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    Waiter w{have, wait_meta, asio::get_associated_executor(*shared),
             [shared](Progress p) { std::move (*shared)(std::move(p)); }};
    std::unique_lock lock(mu_);
    waiters_.push_back(std::move(w));
    WakeReady(lock);  // progress may have been made since the check above
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Progress)>(
      std::move(park), asio::use_awaitable);
}

Reservation& ColdFetch::HoldSpace(BodyPin pin, Reservation reserved) {
  pin_ = std::move(pin);
  reserved_ = std::move(reserved);
  return reserved_;
}

void ColdFetch::PublishMeta(ObjectRecord record, UniqueFd read_fd,
                            std::optional<uint64_t> range_length) {
  std::unique_lock lock(mu_);
  length_ = range_length.value_or(record.size);
  record_ = std::move(record);
  fd_ = std::move(read_fd);
  has_meta_ = true;
  WakeReady(lock);
}

bool ColdFetch::PublishBytes(uint64_t written) {
  std::unique_lock lock(mu_);
  // The bytes that complete the body wait for PublishVerified: published now,
  // they would wake every reader once more, for all but the last byte.
  if (written >= length_) return false;
  written_ = written;
  if (waiters_.empty()) return false;
  return WakeReady(lock);
}

bool ColdFetch::PublishVerified() {
  std::unique_lock lock(mu_);
  verified_ = true;
  return WakeReady(lock);
}

uint32_t ColdFetch::Finish(Result<RecordPtr> outcome) {
  std::unique_lock lock(mu_);
  finished_ = true;
  if (outcome.ok()) {
    outcome_ = *outcome;
  } else {
    status_ = outcome.status();
  }
  const uint32_t early_hits = early_hits_;
  WakeReady(lock);
  return early_hits;
}

bool ColdFetch::CountEarlyHit() {
  std::lock_guard lock(mu_);
  if (finished_) return false;
  ++early_hits_;
  return true;
}

}  // namespace objstore
