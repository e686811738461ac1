// RandomSource: cryptographically strong random bytes behind an interface, so
// tests can make id generation deterministic. Implementations are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace objstore {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual void Fill(std::span<uint8_t> out) = 0;
};

// getrandom(2): the kernel CSPRNG, never blocks after boot.
class SystemRandom final : public RandomSource {
 public:
  void Fill(std::span<uint8_t> out) override;
};

}  // namespace objstore
