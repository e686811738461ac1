// Clock: the node's only source of wall time, behind an interface so tests can
// drive it (HLC tests, skewed-clock cluster tests) without sleeping.
// Implementations must be thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace objstore {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since the Unix epoch. May jump backwards (NTP); callers that
  // need monotonic order use the HLC built on top.
  virtual int64_t NowNanos() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowNanos() const override;
  // Adds a fixed skew to the real clock (e.g. an hour off, for tests via flags).
  explicit SystemClock(int64_t skew_nanos = 0) : skew_(skew_nanos) {}

 private:
  int64_t skew_;
};

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_nanos) : now_(start_nanos) {}
  int64_t NowNanos() const override { return now_.load(); }
  void Set(int64_t nanos) { now_.store(nanos); }
  void Advance(int64_t nanos) { now_.fetch_add(nanos); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace objstore
