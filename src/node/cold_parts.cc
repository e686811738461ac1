#include "node/cold_parts.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace objstore {

ColdParts::ColdParts(ColdStore& cold, AtomicFile& file, const ColdObjectMeta& object,
                     uint64_t first, uint64_t part_size, int max_resumes, Counters counters)
    : cold_(cold),
      file_(file),
      object_(object),
      first_(first),
      part_size_(std::max<uint64_t>(part_size, 1)),
      max_resumes_(max_resumes),
      counters_(counters) {
  for (uint64_t at = first_; at < object_.size; at += part_size_) {
    Part& p = parts_.emplace_back();
    p.offset = at;
    p.length = std::min(part_size_, object_.size - at);
  }
}

ColdParts::~ColdParts() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ColdParts::AddWorker() {
  {
    std::lock_guard lock(mu_);
    if (std::none_of(parts_.begin(), parts_.end(), [](const Part& p) { return !p.taken; })) {
      return;
    }
  }
  workers_.emplace_back([this] { Work(); });
}

void ColdParts::Work() {
  for (;;) {
    size_t index = 0;
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      auto it = std::find_if(parts_.begin(), parts_.end(), [](const Part& p) { return !p.taken; });
      if (it == parts_.end()) return;
      it->taken = true;
      index = static_cast<size_t>(it - parts_.begin());
    }
    Status s = Fetch(index);
    std::lock_guard lock(mu_);
    Part& p = parts_[index];
    p.done = true;
    p.status = s.ok() && p.written != p.length
                   ? Status::Corruption(fmt::format("part at {} of {} brought {} of {} bytes",
                                                    p.offset, object_.key, p.written, p.length))
                   : s;
    if (!p.status.ok() && failed_.ok()) failed_ = p.status;
    progress_.notify_all();
    if (!p.status.ok()) return;
  }
}

Status ColdParts::Fetch(size_t index) {
  uint64_t offset = 0, length = 0;
  {
    std::lock_guard lock(mu_);
    offset = parts_[index].offset;
    length = parts_[index].length;
  }
  uint64_t have = 0;  // only this thread writes the part's `written`
  auto cancelled = [&] {
    std::lock_guard lock(mu_);
    return cancelled_;
  };
  auto check = [&](const ColdObjectMeta& m) {
    if (m.size != object_.size || m.etag != object_.etag || m.version != object_.version) {
      return Status::Unavailable("the cold store's copy of " + object_.key +
                                 " changed during the fetch");
    }
    return cancelled() ? Status::Unavailable("fetch cancelled") : Status::Ok();
  };
  auto take = [&](std::span<const char> chunk) {
    if (chunk.size() > length - have) {
      return Status::Corruption("the cold store sent more than a part of " + object_.key);
    }
    if (Status w = file_.WriteAt(offset + have, chunk); !w.ok()) return w;
    have += chunk.size();
    std::lock_guard lock(mu_);
    parts_[index].written = have;
    progress_.notify_all();
    return cancelled_ ? Status::Unavailable("fetch cancelled") : Status::Ok();
  };
  counters_.parts.Inc();
  // A part broken off mid-body resumes where it stopped, as the first part
  // does in Node::RunColdFetch.
  return GetResuming(cold_, object_.key, offset, length, max_resumes_, check, take,
                     [&](uint64_t taken, const Status& why) {
                       if (cancelled()) return Status::Unavailable("fetch cancelled");
                       spdlog::info(
                           "part at {} of {} broke off after {} of {} bytes ({}); resuming", offset,
                           object_.key, taken, length, why.message());
                       counters_.resumes.Inc();
                       return Status::Ok();
                     });
}

Result<uint64_t> ColdParts::WaitPast(uint64_t offset) {
  if (offset < first_ || offset >= object_.size) {
    return Status::Invalid(
        fmt::format("offset {} is outside the parts of {}", offset, object_.key));
  }
  std::unique_lock lock(mu_);
  Part& p = parts_[(offset - first_) / part_size_];
  // Any failed part fails the fetch: no need to wait for the parts before it.
  progress_.wait(lock, [&] { return p.offset + p.written > offset || p.done || !failed_.ok(); });
  if (!failed_.ok()) return failed_;
  if (p.offset + p.written > offset) return p.offset + p.written;
  return Status::Corruption("part of " + object_.key + " ended early");
}

}  // namespace objstore
