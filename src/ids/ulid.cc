#include "ids/ulid.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace objstore {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Crockford base32 decoding, one table lookup per character (ids are parsed
// on every request): digits and letters of the alphabet, lower case too, O as
// 0 and I/L as 1; -1 for anything else (U included).
constexpr std::array<int8_t, 256> kDecode = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 32; ++i) {
    const char c = kAlphabet[i];
    t[static_cast<unsigned char>(c)] = static_cast<int8_t>(i);
    if (c >= 'A' && c <= 'Z') t[static_cast<unsigned char>(c - 'A' + 'a')] = static_cast<int8_t>(i);
  }
  t['O'] = t['o'] = 0;
  t['I'] = t['i'] = t['L'] = t['l'] = 1;
  return t;
}();

int DecodeChar(char c) { return kDecode[static_cast<unsigned char>(c)]; }

// The characters ToString writes: the alphabet itself, upper case.
constexpr std::array<bool, 256> kCanonical = [] {
  std::array<bool, 256> t{};
  for (int i = 0; i < 32; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = true;
  return t;
}();

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

bool Ulid::IsCanonical(std::string_view text) {
  if (text.size() != 26 || text[0] < '0' || text[0] > '7') return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return kCanonical[static_cast<unsigned char>(c)]; });
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
