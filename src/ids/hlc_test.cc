#include "ids/hlc.h"

#include <gtest/gtest.h>

namespace objstore {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(Hlc, FollowsWallClockWhenItMovesForward) {
  ManualClock clock(1'000 * kMs);
  HybridLogicalClock hlc(clock);
  auto a = hlc.Now();
  EXPECT_EQ(a.Millis(), 1000u);
  EXPECT_EQ(a.Logical(), 0);
  clock.Advance(5 * kMs);
  auto b = hlc.Now();
  EXPECT_EQ(b.Millis(), 1005u);
  EXPECT_EQ(b.Logical(), 0);
}

TEST(Hlc, CountsWithinAMillisecondAndWhenClockStepsBack) {
  ManualClock clock(1'000 * kMs);
  HybridLogicalClock hlc(clock);
  auto a = hlc.Now(), b = hlc.Now();
  EXPECT_LT(a, b);
  EXPECT_EQ(b.Logical(), 1);
  clock.Advance(-500 * kMs);
  auto c = hlc.Now();
  EXPECT_LT(b, c);
  EXPECT_EQ(c.Millis(), 1000u);
}

TEST(Hlc, LogicalOverflowAdvancesMillis) {
  ManualClock clock(1'000 * kMs);
  HybridLogicalClock hlc(clock);
  HlcTimestamp prev = hlc.Now();
  for (int i = 0; i < 70'000; ++i) {
    HlcTimestamp next = hlc.Now();
    ASSERT_LT(prev, next);
    prev = next;
  }
  EXPECT_GT(prev.Millis(), 1000u);
}

TEST(Hlc, ObservedRemoteStampFromTheFutureOrdersLaterLocalEvents) {
  // This node's clock is an hour behind the sender's: after seeing the
  // sender's stamp, its own writes are still ordered after it.
  ManualClock clock(1'000'000 * kMs);
  HybridLogicalClock hlc(clock);
  HlcTimestamp remote = HlcTimestamp::From(1'000'000 + 3'600'000, 7);
  hlc.Observe(remote);
  EXPECT_GT(hlc.Now(), remote);
}

TEST(Hlc, AStampCenturiesAheadIsNotFollowed) {
  // A peer's (or a damaged journal's) stamp at the end of the millisecond
  // field: following it, the next stamp would wrap to 0.
  ManualClock clock(1'000'000 * kMs);
  HybridLogicalClock hlc(clock);
  const HlcTimestamp before = hlc.Now();
  EXPECT_FALSE(hlc.Observe(HlcTimestamp::From((1ull << 48) - 1, 0xffff)));
  const HlcTimestamp after = hlc.Now();
  EXPECT_GT(after, before);
  EXPECT_LT(after.Millis(), 2'000'000u);
  // Skew within a century is followed, as any other.
  const HlcTimestamp decades = HlcTimestamp::From(1'000'000 + 50ull * 366 * 86'400'000, 0);
  EXPECT_TRUE(hlc.Observe(decades));
  EXPECT_GT(hlc.Now(), decades);
}

TEST(Hlc, TextFormSortsLikeTheValue) {
  HlcTimestamp a = HlcTimestamp::From(1'700'000'000'000, 1);
  HlcTimestamp b = HlcTimestamp::From(1'700'000'000'001, 0);
  EXPECT_LT(a.ToString(), b.ToString());
  HlcTimestamp parsed;
  ASSERT_TRUE(HlcTimestamp::Parse(a.ToString(), &parsed));
  EXPECT_EQ(parsed, a);
  EXPECT_FALSE(HlcTimestamp::Parse("xyz", &parsed));
  EXPECT_FALSE(HlcTimestamp::Parse("0123456789ABCDEF", &parsed));  // upper case is not ours
  EXPECT_EQ(HlcTimestamp{0x0123456789abcdefULL}.ToString(), "0123456789abcdef");
  EXPECT_EQ(HlcTimestamp{0}.ToString(), "0000000000000000");
  EXPECT_EQ(HlcTimestamp{~0ULL}.ToString(), "ffffffffffffffff");
}

}  // namespace
}  // namespace objstore
