#include "http/client_limits.h"

#include <gtest/gtest.h>

namespace objstore::http {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(/*rate=*/2, /*burst=*/3, /*now_ns=*/0);
  int64_t wait = 0;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.Take(0, &wait)) << i;
  EXPECT_FALSE(b.Take(0, &wait));
  EXPECT_EQ(wait, kSec / 2);  // one token at 2 per second
  EXPECT_FALSE(b.Take(kSec / 4, &wait));
  EXPECT_EQ(wait, kSec / 4);
  EXPECT_TRUE(b.Take(kSec / 2, &wait));
  EXPECT_FALSE(b.Take(kSec / 2, &wait));
}

TEST(TokenBucket, RefillStopsAtBurstAndIgnoresTimeGoingBack) {
  TokenBucket b(10, 2, 0);
  int64_t wait = 0;
  EXPECT_TRUE(b.Full(0));
  EXPECT_TRUE(b.Take(0, &wait));
  EXPECT_FALSE(b.Full(0));
  EXPECT_TRUE(b.Full(kSec / 10));
  // An hour idle still allows only `burst` requests at once.
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(b.Take(3600 * kSec, &wait));
  EXPECT_FALSE(b.Take(3600 * kSec, &wait));
  // A clock that steps back neither refills nor breaks the bucket.
  EXPECT_FALSE(b.Take(3599 * kSec, &wait));
  EXPECT_GT(wait, 0);
  EXPECT_TRUE(b.Take(3600 * kSec + kSec / 10, &wait));
}

TEST(TokenBucket, SlowRateWaitsWholeInterval) {
  TokenBucket b(0.1, 1, 0);  // one request per 10 s
  int64_t wait = 0;
  EXPECT_TRUE(b.Take(0, &wait));
  EXPECT_FALSE(b.Take(kSec, &wait));
  EXPECT_EQ(wait, 9 * kSec);
}

TEST(ClientKey, IPv4AndIPv6Slash64) {
  using boost::asio::ip::make_address;
  EXPECT_EQ(ClientKey(make_address("192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(ClientKey(make_address("::ffff:192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(ClientKey(make_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientKey(make_address("2001:db8:1:2::1")), ClientKey(make_address("2001:db8:1:2::2")));
  EXPECT_NE(ClientKey(make_address("2001:db8:1:2::1")), ClientKey(make_address("2001:db8:1:3::1")));
}

TEST(ClientLimits, OverallConnectionCap) {
  ClientLimits l({.max_connections = 2});
  EXPECT_EQ(l.Connect("a"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.Connect("b"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.Connect("c"), ClientLimits::Admit::kTooManyConnections);
  EXPECT_EQ(l.connections(), 2u);
  l.Disconnect("a");
  EXPECT_EQ(l.Connect("c"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.tracked_clients(), 0u);  // no per-client limit: no map entries
}

TEST(ClientLimits, PerClientCapLeavesOthersAlone) {
  ClientLimits l({.max_connections_per_client = 2});
  EXPECT_EQ(l.Connect("10.0.0.1"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.Connect("10.0.0.1"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.Connect("10.0.0.1"), ClientLimits::Admit::kTooManyFromClient);
  EXPECT_EQ(l.Connect("10.0.0.2"), ClientLimits::Admit::kOk);
  EXPECT_EQ(l.connections(), 3u);
  l.Disconnect("10.0.0.1");
  EXPECT_EQ(l.Connect("10.0.0.1"), ClientLimits::Admit::kOk);
  l.Disconnect("10.0.0.1");
  l.Disconnect("10.0.0.1");
  l.Disconnect("10.0.0.2");
  EXPECT_EQ(l.connections(), 0u);
  EXPECT_EQ(l.tracked_clients(), 0u);  // closed clients leave nothing behind
}

TEST(ClientLimits, RatePerClient) {
  ClientLimits l({.rate = 1, .burst = 3});
  int64_t retry = 0;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.AllowRequest("a", &retry)) << i;
  EXPECT_FALSE(l.AllowRequest("a", &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(l.AllowRequest("b", &retry));  // another client has its own bucket
}

TEST(ClientLimits, DefaultBurstIsOneSecondOfRate) {
  ClientLimits l({.rate = 0.5});
  EXPECT_EQ(l.options().burst, 1.0);
  int64_t retry = 0;
  EXPECT_TRUE(l.AllowRequest("a", &retry));
  EXPECT_FALSE(l.AllowRequest("a", &retry));
  EXPECT_EQ(retry, 2);  // 0.5 per second: the next token in 2 s
}

TEST(ClientLimits, ManyAddressesDoNotGrowWithoutBound) {
  // Each address sends one request; its bucket is not full again for a while,
  // so the map may hold them until a sweep finds them refilled. With a high
  // rate they refill within microseconds and the sweeps keep the map small.
  ClientLimits l({.rate = 1e9, .burst = 1});
  int64_t retry = 0;
  for (int i = 0; i < 200'000; ++i) ASSERT_TRUE(l.AllowRequest(std::to_string(i), &retry));
  EXPECT_LE(l.tracked_clients(), 16 * ClientLimits::kMaxIdleEntries + 16);
}

}  // namespace
}  // namespace objstore::http
