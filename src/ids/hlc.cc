#include "ids/hlc.h"

#include <cstdio>
#include <cstdlib>

namespace objstore {

std::string HlcTimestamp::ToString() const {
  // 16 lower-case hex digits, by hand (body paths are built on every GET).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15, shift = 0; i >= 0; --i, shift += 4) out[i] = kHex[(packed >> shift) & 0xf];
  return out;
}

bool HlcTimestamp::Parse(const std::string& text, HlcTimestamp* out) {
  if (text.size() != 16) return false;
  uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  out->packed = v;
  return true;
}

HlcTimestamp HybridLogicalClock::Now() {
  const uint64_t wall_ms = static_cast<uint64_t>(clock_.NowNanos() / 1'000'000);
  std::lock_guard lock(mu_);
  if (wall_ms > last_.Millis()) {
    last_ = HlcTimestamp::From(wall_ms, 0);
  } else if (last_.Logical() < 0xffff) {
    last_.packed += 1;
  } else {
    last_ = HlcTimestamp::From(last_.Millis() + 1, 0);
  }
  return last_;
}

bool HybridLogicalClock::Observe(HlcTimestamp remote) {
  const uint64_t wall_ms = static_cast<uint64_t>(clock_.NowNanos() / 1'000'000);
  if (remote.Millis() > wall_ms + kMaxAheadMs) return false;
  std::lock_guard lock(mu_);
  if (remote > last_) last_ = remote;
  return true;
}

HlcTimestamp HybridLogicalClock::Last() const {
  std::lock_guard lock(mu_);
  return last_;
}

}  // namespace objstore
