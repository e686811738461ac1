// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//
// Every change to an object is stamped with an HLC timestamp; the cluster orders
// versions by (timestamp, node id), so the same order holds on every node even
// when wall clocks disagree: a node that receives a stamp from the future moves
// its own clock past it, hence a write made after seeing another is stamped
// later ("causally later writes win"), whatever its wall clock says.
//
// Packed layout (64 bits, compares as an integer): the high 48 bits are
// milliseconds since the Unix epoch, the low 16 bits a logical counter that
// orders events within one millisecond. When the counter would overflow the
// millisecond field is advanced instead. A stamp more than kMaxAhead past the
// wall clock is not observed: no real clock is a century off, and following
// it would bring the millisecond field to its end, where the next stamp
// wraps to 0 (older than everything). Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "base/clock.h"

namespace objstore {

struct HlcTimestamp {
  uint64_t packed = 0;

  static HlcTimestamp From(uint64_t ms, uint16_t logical) {
    return {(ms << 16) | logical};
  }
  uint64_t Millis() const { return packed >> 16; }
  uint16_t Logical() const { return static_cast<uint16_t>(packed & 0xffff); }
  // 16 lower-case hex digits: sorts as text in the same order as the value.
  std::string ToString() const;
  static bool Parse(const std::string& text, HlcTimestamp* out);
  auto operator<=>(const HlcTimestamp&) const = default;
};

class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(const Clock& clock) : clock_(clock) {}
  // A timestamp for a local event, greater than every one issued or observed.
  HlcTimestamp Now();
  // Merges a timestamp received from elsewhere (a peer's record, the journal at
  // start-up) so later local stamps exceed it; false (nothing merged) when it
  // lies more than kMaxAhead past this node's wall clock.
  bool Observe(HlcTimestamp remote);
  static constexpr uint64_t kMaxAheadMs = 100ull * 366 * 86'400'000;
  HlcTimestamp Last() const;

 private:
  const Clock& clock_;
  mutable std::mutex mu_;
  HlcTimestamp last_;  // guarded by mu_
};

}  // namespace objstore
