// ULID: 128-bit ids, 48-bit millisecond time + 80 random bits, written as 26
// characters of Crockford base32 (https://github.com/ulid/spec).
//
// UlidGenerator is monotonic: ids made within the same millisecond (or while
// the wall clock stands still or steps back) increment the previous random part,
// so ids from one node sort in creation order. Thread-safe (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/random.h"

namespace objstore {

struct Ulid {
  std::array<uint8_t, 16> bytes{};  // big-endian: bytes 0..5 time, 6..15 random

  uint64_t TimeMs() const;
  std::string ToString() const;  // 26 upper-case characters
  // Accepts exactly 26 Crockford characters, case-insensitive, with I/L read as
  // 1 and O as 0. The first character must be 0-7 (the value is 128 bits).
  static std::optional<Ulid> Parse(std::string_view text);
  // True when `text` is what ToString would give for Parse(text): 26
  // characters of the upper-case alphabet, the first 0-7. Such text is its own
  // canonical form, so a caller that only needs that form skips the decoding.
  static bool IsCanonical(std::string_view text);
  auto operator<=>(const Ulid&) const = default;
};

class UlidGenerator {
 public:
  UlidGenerator(const Clock& clock, RandomSource& random) : clock_(clock), random_(random) {}
  Ulid Next();

 private:
  const Clock& clock_;
  RandomSource& random_;
  std::mutex mu_;
  Ulid last_;  // guarded by mu_
};

}  // namespace objstore
