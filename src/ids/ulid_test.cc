#include "ids/ulid.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace objstore {
namespace {

// Deterministic randomness: counts up from a seed byte.
class CountingRandom : public RandomSource {
 public:
  void Fill(std::span<uint8_t> out) override {
    for (auto& b : out) b = next_++;
  }
  uint8_t next_ = 0;
};

TEST(Ulid, FormatIs26CrockfordCharacters) {
  ManualClock clock(1'469'918'176'385'000'000);  // the spec's example time, in ns
  CountingRandom random;
  UlidGenerator gen(clock, random);
  std::string s = gen.Next().ToString();
  ASSERT_EQ(s.size(), 26u);
  EXPECT_EQ(s.substr(0, 10), "01ARYZ6S41");  // 1469918176385 ms in Crockford base32
  for (char c : s) EXPECT_NE(std::string("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c), std::string::npos);
}

TEST(Ulid, RoundTripsThroughParse) {
  SystemClock clock;
  SystemRandom random;
  UlidGenerator gen(clock, random);
  for (int i = 0; i < 100; ++i) {
    Ulid u = gen.Next();
    auto parsed = Ulid::Parse(u.ToString());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, u);
  }
}

TEST(Ulid, MonotonicWithinOneMillisecondAndWhenClockStepsBack) {
  ManualClock clock(1'700'000'000'000'000'000);
  SystemRandom random;
  UlidGenerator gen(clock, random);
  std::string prev = gen.Next().ToString();
  for (int i = 0; i < 1000; ++i) {
    if (i == 500) clock.Advance(-5'000'000'000);  // wall clock goes back 5 s
    std::string next = gen.Next().ToString();
    EXPECT_LT(prev, next) << "at " << i;
    prev = next;
  }
}

TEST(Ulid, IncrementCarriesAcrossBytes) {
  ManualClock clock(1'000'000'000);  // 1000 ms
  class MaxRandom : public RandomSource {
   public:
    void Fill(std::span<uint8_t> out) override {
      for (auto& b : out) b = 0xff;
      out[0] = 0x00;  // leave room for the carry inside the random part
    }
  } random;
  UlidGenerator gen(clock, random);
  Ulid a = gen.Next(), b = gen.Next();
  EXPECT_LT(a, b);
  EXPECT_EQ(b.bytes[6], 0x01);
  for (int i = 7; i < 16; ++i) EXPECT_EQ(b.bytes[i], 0x00);
}

TEST(Ulid, UniqueAcrossThreads) {
  SystemClock clock;
  SystemRandom random;
  UlidGenerator gen(clock, random);
  std::vector<std::vector<std::string>> out(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) out[t].push_back(gen.Next().ToString());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (auto& v : out) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 8000u);
}

TEST(Ulid, ParseAcceptsCrockfordAliasesAndLowerCase) {
  auto a = Ulid::Parse("01arz3ndektsv4rrffq69g5fav");
  auto b = Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  auto c = Ulid::Parse("0IARZ3NDEKTSV4RRFFQ69G5FAV");  // I reads as 1
  auto d = Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  ASSERT_TRUE(c && d);
  EXPECT_EQ(*c, *d);
  EXPECT_EQ(Ulid::Parse("O1ARZ3NDEKTSV4RRFFQ69G5FAV")->ToString(), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
}

TEST(Ulid, ParseRejectsBadInput) {
  EXPECT_FALSE(Ulid::Parse(""));
  EXPECT_FALSE(Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FA"));    // 25
  EXPECT_FALSE(Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FAVX"));  // 27
  EXPECT_FALSE(Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FAU"));   // U is excluded
  EXPECT_FALSE(Ulid::Parse("01ARZ3NDEKTSV4RRFFQ69G5FA!"));
  EXPECT_FALSE(Ulid::Parse("81ARZ3NDEKTSV4RRFFQ69G5FAV"));   // overflows 128 bits
  EXPECT_FALSE(Ulid::Parse(std::string("01ARZ3NDEKTSV4RRFFQ69G5FA\0", 26)));
  EXPECT_FALSE(Ulid::Parse("../../../../etc/passwd/xxxx"));
  EXPECT_TRUE(Ulid::Parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));  // the largest ULID
}

// IsCanonical holds exactly when Parse succeeds and ToString gives the text
// back: checked on every character at every position of the first and a later
// place, plus lengths and the first digit's bound.
TEST(Ulid, IsCanonicalExactlyWhenParseThenToStringIsTheIdentity) {
  const std::string base = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  auto same = [](const std::string& t) {
    auto u = Ulid::Parse(t);
    return u && u->ToString() == t;
  };
  for (size_t pos : {size_t{0}, size_t{13}, size_t{25}}) {
    for (int c = 0; c < 256; ++c) {
      std::string t = base;
      t[pos] = static_cast<char>(c);
      EXPECT_EQ(Ulid::IsCanonical(t), same(t)) << "char " << c << " at " << pos;
    }
  }
  EXPECT_TRUE(Ulid::IsCanonical("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
  EXPECT_FALSE(Ulid::IsCanonical("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
  EXPECT_FALSE(Ulid::IsCanonical(base.substr(0, 25)));
  EXPECT_FALSE(Ulid::IsCanonical(base + "0"));
  EXPECT_FALSE(Ulid::IsCanonical(""));
}

}  // namespace
}  // namespace objstore
