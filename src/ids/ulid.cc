#include "ids/ulid.h"

#include <algorithm>

namespace objstore {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Decodes one Crockford character; -1 when it is not part of the alphabet.
int DecodeChar(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  switch (c) {
    case 'O': return 0;
    case 'I':
    case 'L': return 1;
    case 'U': return -1;
    default: break;
  }
  for (int i = 0; i < 32; ++i) {
    if (kAlphabet[i] == c) return i;
  }
  return -1;
}

}  // namespace

uint64_t Ulid::TimeMs() const {
  uint64_t t = 0;
  for (int i = 0; i < 6; ++i) t = (t << 8) | bytes[i];
  return t;
}

std::string Ulid::ToString() const {
  // 128 bits as 26 groups of 5 bits, the first group holding the top 3 bits.
  std::string out(26, '0');
  unsigned __int128 v = 0;
  for (uint8_t b : bytes) v = (v << 8) | b;
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<int>(v & 31)];
    v >>= 5;
  }
  return out;
}

std::optional<Ulid> Ulid::Parse(std::string_view text) {
  if (text.size() != 26) return std::nullopt;
  unsigned __int128 v = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int d = DecodeChar(text[i]);
    if (d < 0) return std::nullopt;
    if (i == 0 && d > 7) return std::nullopt;  // would overflow 128 bits
    v = (v << 5) | static_cast<unsigned>(d);
  }
  Ulid u;
  for (int i = 15; i >= 0; --i) {
    u.bytes[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return u;
}

Ulid UlidGenerator::Next() {
  const uint64_t now_ms = static_cast<uint64_t>(clock_.NowNanos() / 1'000'000);
  std::lock_guard lock(mu_);
  Ulid next;
  if (now_ms > last_.TimeMs()) {
    for (int i = 0; i < 6; ++i) next.bytes[i] = static_cast<uint8_t>(now_ms >> (8 * (5 - i)));
    random_.Fill(std::span(next.bytes).subspan(6));
  } else {
    // Same millisecond, or the clock stepped back: keep the last time and
    // increment the 80-bit random part (carrying into the time on overflow,
    // which keeps the order and only happens after 2^80 ids).
    next = last_;
    for (int i = 15; i >= 0; --i) {
      if (++next.bytes[i] != 0) break;
    }
  }
  last_ = next;
  return next;
}

}  // namespace objstore
