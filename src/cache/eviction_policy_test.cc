#include "cache/eviction_policy.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "cache/simulator.h"

namespace objstore {
namespace {

std::unique_ptr<EvictionPolicy> Make(const std::string& name, uint64_t capacity) {
  auto p = MakePolicy(name, capacity);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

// The node's eviction loop (eviction_policy.h): evict victims until the budget
// holds. Returns the evicted keys in order.
std::vector<std::string> EvictDownTo(
    EvictionPolicy& p, uint64_t budget,
    const EvictablePredicate& evictable = [](const std::string&) { return true; }) {
  std::vector<std::string> out;
  while (p.bytes() > budget) {
    auto v = p.Victim(evictable);
    if (!v) break;
    EXPECT_TRUE(p.Evict(*v));
    out.push_back(*v);
  }
  return out;
}

std::vector<std::string> DrainVictims(EvictionPolicy& p) { return EvictDownTo(p, 0); }

std::string K(int i) { return "k" + std::to_string(i); }

// A deterministic mixed workload: inserts with eviction, hits, a few erases.
void RunWorkload(EvictionPolicy& p, uint64_t capacity, uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < steps; ++i) {
    // Skewed key choice so some keys are hot.
    const int key = static_cast<int>((rng() % 300) * (rng() % 300) / 300);
    const uint64_t size = 1 + (key * 7919) % 97;
    const auto op = rng() % 20;
    if (op == 0) {
      p.Erase(K(key));
    } else if (!p.Access(K(key))) {
      p.Insert(K(key), size);
      EvictDownTo(p, capacity);
    }
  }
}

// ------------------------------------------------------------ typed suite

struct Lru {
  static constexpr const char* kName = "lru";
};
struct Fifo {
  static constexpr const char* kName = "fifo";
};
struct S3Fifo {
  static constexpr const char* kName = "s3fifo";
};
struct Sieve {
  static constexpr const char* kName = "sieve";
};

template <typename T>
class EvictionPolicyTest : public ::testing::Test {
 protected:
  std::unique_ptr<EvictionPolicy> New(uint64_t capacity) { return Make(T::kName, capacity); }
};
using AllPolicies = ::testing::Types<Lru, Fifo, S3Fifo, Sieve>;
TYPED_TEST_SUITE(EvictionPolicyTest, AllPolicies);

TYPED_TEST(EvictionPolicyTest, NameAndCapacity) {
  auto p = this->New(1234);
  EXPECT_EQ(p->name(), TypeParam::kName);
  EXPECT_EQ(p->capacity(), 1234u);
  EXPECT_EQ(p->size(), 0u);
  EXPECT_EQ(p->bytes(), 0u);
  EXPECT_FALSE(p->Victim().has_value());
}

TYPED_TEST(EvictionPolicyTest, InsertEraseEvictAccounting) {
  auto p = this->New(1000);
  p->Insert("a", 10);
  p->Insert("b", 20);
  p->Insert("c", 30);
  EXPECT_EQ(p->size(), 3u);
  EXPECT_EQ(p->bytes(), 60u);
  EXPECT_TRUE(p->Contains("b"));
  EXPECT_FALSE(p->Contains("z"));

  p->Insert("a", 15);  // a new size for a tracked key
  EXPECT_EQ(p->size(), 3u);
  EXPECT_EQ(p->bytes(), 65u);

  EXPECT_TRUE(p->Erase("b"));
  EXPECT_FALSE(p->Erase("b"));
  EXPECT_FALSE(p->Access("b"));
  EXPECT_FALSE(p->Contains("b"));
  EXPECT_EQ(p->bytes(), 45u);

  EXPECT_TRUE(p->Access("c"));
  EXPECT_TRUE(p->Evict("c"));
  EXPECT_FALSE(p->Evict("c"));
  EXPECT_FALSE(p->Contains("c"));
  EXPECT_EQ(p->size(), 1u);
  EXPECT_EQ(p->bytes(), 15u);

  const PolicyStats s = p->stats();
  EXPECT_EQ(s.inserts, 3u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.erases, 1u);
  EXPECT_EQ(s.evictions, 1u);
}

TYPED_TEST(EvictionPolicyTest, CapacityNeverExceededAndBytesExact) {
  constexpr uint64_t kCapacity = 1000;
  auto p = this->New(kCapacity);
  std::map<std::string, uint64_t> model;  // what the caller believes is cached
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20'000; ++i) {
    const int key = static_cast<int>(rng() % 400);
    const uint64_t size = 1 + rng() % 120;
    if (rng() % 10 == 0) {
      EXPECT_EQ(p->Erase(K(key)), model.erase(K(key)) == 1);
    } else if (!p->Access(K(key))) {
      ASSERT_EQ(model.count(K(key)), 0u);
      p->Insert(K(key), size);
      model[K(key)] = size;
      for (const std::string& v : EvictDownTo(*p, kCapacity)) {
        ASSERT_EQ(model.erase(v), 1u) << v;
      }
    }
    ASSERT_LE(p->bytes(), kCapacity);
    ASSERT_EQ(p->size(), model.size());
  }
  uint64_t sum = 0;
  for (const auto& [k, s] : model) {
    sum += s;
    EXPECT_TRUE(p->Contains(k));
  }
  EXPECT_EQ(p->bytes(), sum);
}

TYPED_TEST(EvictionPolicyTest, VictimIsStableUntilSomethingChanges) {
  auto p = this->New(100);
  for (int i = 0; i < 50; ++i) p->Insert(K(i), 3);
  for (int i = 0; i < 50; i += 3) p->Access(K(i));
  auto v1 = p->Victim();
  auto v2 = p->Victim();
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(v1, v2);
  EXPECT_TRUE(p->Contains(*v1));  // Victim does not remove
}

TYPED_TEST(EvictionPolicyTest, RefusedKeysAreNeverVictims) {
  auto p = this->New(100);
  for (int i = 0; i < 40; ++i) p->Insert(K(i), 5);  // 200 bytes
  for (int i = 0; i < 40; i += 2) p->Access(K(i));
  std::set<std::string> pinned;
  for (int i = 0; i < 40; i += 4) pinned.insert(K(i));  // 10 keys, 50 bytes
  auto evictable = [&](const std::string& k) { return pinned.count(k) == 0; };
  for (const std::string& v : EvictDownTo(*p, 100, evictable)) EXPECT_EQ(pinned.count(v), 0u);
  EXPECT_LE(p->bytes(), 100u);
  for (const std::string& k : pinned) EXPECT_TRUE(p->Contains(k));

  // Only pinned keys left: Victim offers none, however many times it is asked.
  EvictDownTo(*p, 50, evictable);
  EXPECT_EQ(p->size(), pinned.size());
  EXPECT_FALSE(p->Victim(evictable).has_value());
  EXPECT_FALSE(p->Victim(evictable).has_value());
  EXPECT_GT(p->stats().refusals, 0u);
  // Unpinned again, they can go.
  EXPECT_EQ(DrainVictims(*p).size(), pinned.size());
}

// Victim finds an evictable key whenever one exists, whatever is pinned and
// whatever the queues look like (random pins over a random workload).
TYPED_TEST(EvictionPolicyTest, VictimFindsAnEvictableKeyWheneverOneExists) {
  constexpr uint64_t kCapacity = 300;
  auto p = this->New(kCapacity);
  std::mt19937_64 rng(21);
  for (int round = 0; round < 300; ++round) {
    RunWorkload(*p, kCapacity, round, 50);
    std::set<std::string> pinned, evictable_keys;
    for (const auto& e : p->SaveState()) {
      if (e.queue == PolicyQueue::kGhost) continue;
      (rng() % 8 != 0 ? pinned : evictable_keys).insert(e.key);
    }
    auto v = p->Victim([&](const std::string& k) { return pinned.count(k) == 0; });
    if (evictable_keys.empty()) {
      EXPECT_FALSE(v.has_value());
    } else {
      ASSERT_TRUE(v.has_value()) << "round " << round;
      EXPECT_EQ(evictable_keys.count(*v), 1u);
    }
  }
}

TYPED_TEST(EvictionPolicyTest, SaveRestoreRoundTripKeepsVictimOrder) {
  constexpr uint64_t kCapacity = 2000;
  auto p = this->New(kCapacity);
  RunWorkload(*p, kCapacity, 11, 5000);
  const auto saved = p->SaveState();
  auto decoded = DecodePolicyState(EncodePolicyState(saved));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(*decoded, saved);

  auto q = this->New(kCapacity);
  ASSERT_TRUE(q->RestoreState(*decoded).ok());
  EXPECT_EQ(q->SaveState(), saved);
  EXPECT_EQ(q->bytes(), p->bytes());
  EXPECT_EQ(q->size(), p->size());

  // The same future on both: the same misses, the same victims.
  RunWorkload(*p, kCapacity, 12, 3000);
  RunWorkload(*q, kCapacity, 12, 3000);
  EXPECT_EQ(q->SaveState(), p->SaveState());
  EXPECT_EQ(DrainVictims(*q), DrainVictims(*p));
}

TYPED_TEST(EvictionPolicyTest, RestoreRejectsDuplicateKeys) {
  auto p = this->New(100);
  p->Insert("x", 1);
  std::vector<PolicyEntryState> bad = {{"a", 1, PolicyQueue::kMain, 0},
                                       {"a", 2, PolicyQueue::kMain, 0}};
  Status s = p->RestoreState(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_EQ(p->size(), 0u);
  EXPECT_EQ(p->bytes(), 0u);
}

TYPED_TEST(EvictionPolicyTest, RestoresEveryOtherPolicysStateWithoutLosingKeys) {
  for (const std::string& from : PolicyNames()) {
    auto src = Make(from, 500);
    RunWorkload(*src, 500, 3, 2000);
    auto q = this->New(500);
    ASSERT_TRUE(q->RestoreState(src->SaveState()).ok()) << from;
    EXPECT_EQ(q->size(), src->size()) << from;
    EXPECT_EQ(q->bytes(), src->bytes()) << from;
    for (const auto& e : src->SaveState()) {
      if (e.queue != PolicyQueue::kGhost) {
        EXPECT_TRUE(q->Contains(e.key)) << from << " " << e.key;
      }
    }
  }
}

// ------------------------------------------------------------ factory, codec

TEST(MakePolicy, DefaultIsS3FifoAndUnknownNamesAreInvalid) {
  EXPECT_STREQ(kDefaultPolicy, "s3fifo");
  EXPECT_EQ(PolicyNames().front(), "s3fifo");
  EXPECT_EQ(MakePolicy("arc", 10).status().code(), StatusCode::kInvalid);
  EXPECT_EQ(MakePolicy("lru", 0).status().code(), StatusCode::kInvalid);
}

TEST(PolicyStateCodec, RejectsDamagedBlobs) {
  std::vector<PolicyEntryState> state = {
      {"key-1", 300, PolicyQueue::kSmall, 2},
      {"", 0, PolicyQueue::kGhost, 0},
      {std::string(200, 'x'), 1ull << 40, PolicyQueue::kHand, 1}};
  const std::string blob = EncodePolicyState(state);
  ASSERT_EQ(*DecodePolicyState(blob), state);
  for (size_t cut = 0; cut < blob.size(); ++cut) {
    EXPECT_EQ(DecodePolicyState(blob.substr(0, cut)).status().code(), StatusCode::kCorruption)
        << cut;
  }
  EXPECT_FALSE(DecodePolicyState(blob + "x").ok());
  std::string bad_queue = EncodePolicyState({{"k", 1, PolicyQueue::kMain, 0}});
  bad_queue[bad_queue.size() - 2] = 9;
  EXPECT_EQ(DecodePolicyState(bad_queue).status().code(), StatusCode::kCorruption);
}

// ------------------------------------------------------------ LRU, FIFO

TEST(Lru, EvictsLeastRecentlyUsed) {
  auto p = Make("lru", 3);
  p->Insert("a", 1);
  p->Insert("b", 1);
  p->Insert("c", 1);
  p->Access("a");  // recency now: b < c < a
  p->Insert("d", 1);
  EXPECT_EQ(EvictDownTo(*p, 3), std::vector<std::string>{"b"});
  p->Access("c");  // a < d < c
  EXPECT_EQ(DrainVictims(*p), (std::vector<std::string>{"a", "d", "c"}));
}

TEST(Fifo, IgnoresHits) {
  auto p = Make("fifo", 3);
  p->Insert("a", 1);
  p->Insert("b", 1);
  p->Access("a");
  EXPECT_EQ(DrainVictims(*p), (std::vector<std::string>{"a", "b"}));
}

// ------------------------------------------------------------ S3-FIFO

std::vector<PolicyEntryState> InQueue(const EvictionPolicy& p, PolicyQueue q) {
  std::vector<PolicyEntryState> out;
  for (const auto& e : p.SaveState()) {
    if (e.queue == q) out.push_back(e);
  }
  return out;
}

// Inserts K(0)..K(n-1) of `size` bytes each and hits each once (in small).
void InsertHitKeys(EvictionPolicy& p, int n, uint64_t size) {
  for (int i = 0; i < n; ++i) {
    p.Insert(K(i), size);
    p.Access(K(i));
  }
}

TEST(S3Fifo, ScanOfOneHitWondersDoesNotFlushHotKeys) {
  constexpr uint64_t kCapacity = 100;  // small queue: 10 bytes
  for (const std::string name : {"s3fifo", "lru"}) {
    auto p = Make(name, kCapacity);
    for (int i = 0; i < 20; ++i) p->Insert("hot" + std::to_string(i), 1);
    for (int i = 0; i < 20; ++i) p->Access("hot" + std::to_string(i));
    // A scan: 1,000 keys, each requested once, five times the capacity.
    for (int i = 0; i < 1000; ++i) {
      p->Insert("scan" + std::to_string(i), 1);
      EvictDownTo(*p, kCapacity);
    }
    int hot_left = 0;
    for (int i = 0; i < 20; ++i) hot_left += p->Contains("hot" + std::to_string(i));
    if (name == "s3fifo") {
      EXPECT_EQ(hot_left, 20);
      EXPECT_EQ(p->stats().promotions, 20u);
      // Promoted and never hit in main: its probation segment.
      EXPECT_EQ(InQueue(*p, PolicyQueue::kProbation).size(), 20u);
    } else {
      EXPECT_EQ(hot_left, 0) << "the contrast: LRU loses every hot key to the scan";
    }
  }
}

TEST(S3Fifo, OneHitWondersLeaveThroughSmallAndComeBackToMain) {
  auto p = Make("s3fifo", 100);
  int next_victim = 0;
  for (int i = 0; i < 1000; ++i) {
    p->Insert(K(i), 1);
    // Keys never hit leave in insertion order, straight from small.
    for (const std::string& v : EvictDownTo(*p, 100)) EXPECT_EQ(v, K(next_victim++));
    ASSERT_TRUE(InQueue(*p, PolicyQueue::kProbation).empty()) << i;
    ASSERT_TRUE(InQueue(*p, PolicyQueue::kMain).empty()) << i;
  }
  EXPECT_EQ(p->stats().promotions, 0u);
  EXPECT_EQ(p->stats().reinsertions, 0u);
  EXPECT_EQ(p->stats().evictions, 900u);
  // The evicted keys are remembered, 2 per tracked key plus 2: 100 tracked
  // once the evicted key is out, so 2 * (100 + 1) = 202 -> the last 202.
  const auto ghost = InQueue(*p, PolicyQueue::kGhost);
  ASSERT_EQ(ghost.size(), 202u);
  EXPECT_EQ(ghost.front().key, K(698));
  EXPECT_EQ(ghost.back().key, K(899));
  // One of them requested again: straight into main (its probation segment).
  p->Insert(K(750), 1);
  EXPECT_EQ(p->stats().ghost_hits, 1u);
  const auto main = InQueue(*p, PolicyQueue::kProbation);
  ASSERT_EQ(main.size(), 1u);
  EXPECT_EQ(main[0].key, K(750));
  // One forgotten by the ghost starts in small again.
  p->Insert(K(650), 1);
  EXPECT_EQ(p->stats().ghost_hits, 1u);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kSmall).back().key, K(650));
  // Deleted keys leave no history.
  EXPECT_TRUE(p->Erase(K(750)));
  p->Insert(K(750), 1);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kSmall).back().key, K(750));
  p->Erase(K(760));  // only a ghost: forgotten too
  p->Insert(K(760), 1);
  EXPECT_EQ(p->stats().ghost_hits, 1u);
}

// The ghost is bounded in keys, not bytes: a key as large as the whole
// capacity is remembered like a 1-byte one, and the ghost holds at most 2 keys
// per tracked key (plus 2) whatever their sizes.
TEST(S3Fifo, GhostCountsKeysWhateverTheirSize) {
  auto p = Make("s3fifo", 100);  // small: 10 bytes
  p->Insert("huge", 100);
  for (int i = 0; i < 10; ++i) p->Insert(K(i), 1);
  EXPECT_EQ(EvictDownTo(*p, 10), std::vector<std::string>{"huge"});
  EXPECT_EQ(InQueue(*p, PolicyQueue::kGhost).back().key, "huge");
  // 100 one-hit keys pass through; 10 tracked: room for 2 * 11 = 22.
  for (int i = 10; i < 110; ++i) {
    p->Insert(K(i), 1);
    EvictDownTo(*p, 10);
  }
  const auto ghost = InQueue(*p, PolicyQueue::kGhost);
  ASSERT_EQ(ghost.size(), 22u);
  EXPECT_EQ(ghost.front().key, K(78));
  EXPECT_EQ(ghost.back().key, K(99));
  p->Insert("huge", 100);  // forgotten by now: small
  EXPECT_EQ(p->stats().ghost_hits, 0u);
  p->Insert(K(99), 1);  // remembered: main (probation)
  EXPECT_EQ(p->stats().ghost_hits, 1u);
  ASSERT_FALSE(InQueue(*p, PolicyQueue::kProbation).empty());
  EXPECT_EQ(InQueue(*p, PolicyQueue::kProbation).back().key, K(99));
}

TEST(S3Fifo, PromotionSpendsTheHitAndMainReinsertsWithFrequencyCappedAtSeven) {
  auto p = Make("s3fifo", 80);  // small: 10% of the 61 bytes tracked, 6
  p->Insert("a", 20);
  p->Insert("b", 20);
  p->Access("a");
  p->Access("b");
  p->Insert("c", 20);
  p->Insert("d", 1);  // small [d c b a], 61 bytes
  // The search promotes a and b (hit) with freq 0, then small [d c] holds
  // over its 6 bytes and its tail c, never hit, goes.
  EXPECT_EQ(*p->Victim(), "c");
  EXPECT_EQ(p->stats().promotions, 2u);
  ASSERT_TRUE(p->Evict("c"));
  const auto promoted = InQueue(*p, PolicyQueue::kProbation);
  ASSERT_EQ(promoted.size(), 2u);
  for (const auto& e : promoted) EXPECT_EQ(e.freq, 0) << e.key;
  for (int i = 0; i < 10; ++i) p->Access("a");
  p->Access("b");
  EXPECT_EQ(InQueue(*p, PolicyQueue::kProbation).front().freq, 7);  // a (the tail), capped
  // small [d] is below its share (1 of 41 bytes): main, probation's tail a then b move to
  // protected (a 7->6, b 1->0); there FIFO reinsertion goes round: a 6->5,
  // then b is at the tail with freq 0 and goes.
  EXPECT_EQ(*p->Victim(), "b");
  EXPECT_EQ(p->stats().reinsertions, 3u);
  ASSERT_TRUE(p->Evict("b"));
  EXPECT_EQ(*p->Victim(), "a");  // a 5->4->3->2->1->0, then a goes
  EXPECT_EQ(p->stats().reinsertions, 8u);
  // A key evicted from main is forgotten (only small's evictions are ghosts).
  EXPECT_EQ(InQueue(*p, PolicyQueue::kGhost).size(), 1u);  // c
  p->Insert("b", 1);
  EXPECT_EQ(p->stats().ghost_hits, 0u);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kSmall).back().key, "b");
}

// A restored state lists the ghost before the tracked keys its bound depends
// on: the ghost must survive the restore whole, and be trimmed (oldest first)
// only to the bound the restored keys give.
TEST(S3Fifo, RestoreKeepsTheGhostUpToItsBound) {
  std::vector<PolicyEntryState> state;
  for (int i = 0; i < 6; ++i) {
    state.push_back({"g" + std::to_string(i), 5, PolicyQueue::kGhost, 0});
  }
  state.push_back({"s", 1, PolicyQueue::kSmall, 0});
  state.push_back({"m", 1, PolicyQueue::kMain, 6});
  auto p = Make("s3fifo", 100);
  ASSERT_TRUE(p->RestoreState(state).ok());
  // 2 tracked keys: room for 2 * 3 = 6 ghost keys, all kept in order.
  EXPECT_EQ(p->SaveState(), state);
  state.insert(state.begin() + 6, {"g6", 5, PolicyQueue::kGhost, 0});  // a 7th: g0 goes
  ASSERT_TRUE(p->RestoreState(state).ok());
  const auto ghost = InQueue(*p, PolicyQueue::kGhost);
  ASSERT_EQ(ghost.size(), 6u);
  EXPECT_EQ(ghost.front().key, "g1");
  EXPECT_EQ(ghost.back().key, "g6");
  p->Insert("g3", 5);
  EXPECT_EQ(p->stats().ghost_hits, 1u);
}

// Regression: a small key below small's share of the capacity was never offered when
// every main key was pinned, so Victim returned nullopt with a victim present.
TEST(S3Fifo, SmallKeyIsFoundBehindAFullyPinnedMain) {
  auto p = Make("s3fifo", 100);  // small: 10 bytes
  InsertHitKeys(*p, 10, 9);
  p->Insert("victim", 9);
  // The search promotes k0..k9 (hit) to main, leaving 9 bytes in small, below
  // its share; then every main key is refused.
  auto v = p->Victim([](const std::string& k) { return k == "victim"; });
  EXPECT_EQ(v, "victim");
  EXPECT_EQ(InQueue(*p, PolicyQueue::kProbation).size(), 10u);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kSmall).size(), 1u);
}

// In the node the policy tracks the evictable bodies only, which may be far
// fewer bytes than the budget it is sized by (level-0 bodies fill the rest):
// small's share is of the bytes tracked then, so a never-hit key in small
// still leaves before a key in main.
TEST(S3Fifo, SmallsShareIsOfTheBytesTrackedWhenFewerThanTheCapacity) {
  auto p = Make("s3fifo", 1000);  // 40 + 40 tracked: small's share is 8 bytes, not 100
  ASSERT_TRUE(p->RestoreState({{"in-main", 40, PolicyQueue::kMain, 0},
                               {"never-hit", 40, PolicyQueue::kSmall, 0}})
                  .ok());
  EXPECT_EQ(p->Victim(), "never-hit");
}

// Main's probation segment: keys promoted from small that are not hit again
// in main leave before keys that were, while probation holds 10% or more of
// main's bytes; a key hit in probation moves to protected instead of leaving.
TEST(S3Fifo, PromotedKeysNotHitInMainLeaveBeforeKeysHitThere) {
  auto p = Make("s3fifo", 400);  // small: 40 bytes (the 920 tracked are more)
  // 30 keys of 30 bytes, each hit once in small.
  InsertHitKeys(*p, 30, 30);
  // 20 bytes: small stays over its 40 bytes until all 30 are promoted.
  p->Insert("new", 20);
  ASSERT_TRUE(p->Victim().has_value());  // the search promotes the 30
  ASSERT_EQ(InQueue(*p, PolicyQueue::kProbation).size(), 30u);
  // The oldest, k0..k9, hit again in main; k10..k29 not.
  for (int i = 0; i < 10; ++i) p->Access(K(i));
  // Room for 540 bytes: k0..k9 move to protected (their hit spent), and
  // k10..k27 leave, although k0..k9 were ahead of them.
  std::vector<std::string> want;
  for (int i = 10; i < 28; ++i) want.push_back(K(i));
  EXPECT_EQ(EvictDownTo(*p, 380), want);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kMain).size(), 10u);
  EXPECT_EQ(InQueue(*p, PolicyQueue::kProbation).size(), 2u);
  // k28 and k29 are 60 of main's 360 bytes, over 10%: k28 goes next; then
  // probation is under its share and protected's tail k0 goes, never hit
  // since its move.
  EXPECT_EQ(EvictDownTo(*p, 320), (std::vector<std::string>{K(28), K(0)}));
  EXPECT_TRUE(p->Contains("new"));
}

// Probation under 10% of main's bytes: protected's tail goes first, and a
// never-hit probation key stays; over 10%, probation's tail goes.
TEST(S3Fifo, ProbationUnderItsShareLeavesProtectedToGoFirst) {
  for (uint64_t x_size : {50, 200}) {
    SCOPED_TRACE(x_size);
    std::vector<PolicyEntryState> state{{"s", 9, PolicyQueue::kSmall, 0},
                                        {"x", x_size, PolicyQueue::kProbation, 0}};
    for (int i = 0; i < 7; ++i) state.push_back({K(i), 100, PolicyQueue::kMain, 0});
    auto p = Make("s3fifo", 1000);  // small: 100 bytes, "s" under it
    ASSERT_TRUE(p->RestoreState(state).ok());
    // x is 50 of 750 bytes of main (6.7%), or 200 of 900 (22%).
    EXPECT_EQ(*p->Victim(), x_size == 50 ? K(0) : "x");
  }
}

// A fully pinned segment of main does not hide the other one's keys, whichever
// the search looks at first.
TEST(S3Fifo, AKeyIsFoundBehindAFullyPinnedMainSegment) {
  for (bool probation_first : {true, false}) {
    SCOPED_TRACE(probation_first);
    // Probation: 5 keys of 100 bytes (over 10% of main) or one of 50 (under).
    std::vector<PolicyEntryState> state{{"s", 9, PolicyQueue::kSmall, 0}};
    for (int i = 0; i < (probation_first ? 5 : 1); ++i) {
      state.push_back(
          {"a" + std::to_string(i), probation_first ? 100u : 50u, PolicyQueue::kProbation, 0});
    }
    for (int i = 0; i < 7; ++i) {
      state.push_back({"b" + std::to_string(i), 100, PolicyQueue::kMain, 0});
    }
    auto p = Make("s3fifo", 2000);  // small: 200 bytes, "s" under it
    ASSERT_TRUE(p->RestoreState(state).ok());
    EXPECT_EQ(*p->Victim(), probation_first ? "a0" : "b0");
    // Every key of the segment searched first is pinned: the other's tail goes.
    const char pinned = probation_first ? 'a' : 'b';
    EXPECT_EQ(p->Victim([&](const std::string& k) { return k[0] != pinned; }),
              probation_first ? "b0" : "a0");
  }
}

// ------------------------------------------------------------ SIEVE

TEST(Sieve, HandKeepsVisitedKeysInPlaceAndResumesWhereItStopped) {
  auto p = Make("sieve", 4);
  for (const char* k : {"a", "b", "c", "d"}) p->Insert(k, 1);  // tail a b c d head
  p->Access("a");
  p->Access("b");
  EXPECT_EQ(*p->Victim(), "c");  // a and b lose their bit, hand stops at c
  ASSERT_TRUE(p->Evict("c"));
  p->Insert("e", 1);             // tail a b d e head, hand at d
  EXPECT_EQ(*p->Victim(), "d");  // not back at a: the hand resumes
  ASSERT_TRUE(p->Evict("d"));
  p->Access("e");
  EXPECT_EQ(*p->Victim(), "a");  // e passed (bit cleared), wrap to the tail
  const auto saved = p->SaveState();
  ASSERT_EQ(saved.size(), 3u);
  EXPECT_EQ(saved[0].queue, PolicyQueue::kHand);
}

// ------------------------------------------------------------ simulator

// Capacity 3 bytes; the trace (time id size):
//   1 a 1 | 2 b 1 | 3 c 2 | 4 a 1 | 5 d 1 | 6 b 1 | 7 a 1 | 8 c 2
// 8 requests, 10 bytes requested; objects a, b, d of 1 byte and c of 2.
//
// LRU (evict until the new object fits, then insert; most recent first):
//   1 a miss [a]  2 b miss [b a]  3 c miss, evict a [c b]  4 a miss, evict b [a c]
//   5 d miss, evict c [d a]  6 b miss [b d a]  7 a HIT [a b d]
//   8 c miss, evict d and b [c a]
//   -> 7 misses (7/8 = 0.875), 9 bytes missed (9/10 = 0.9).
// S3-FIFO (small = max(1, 3/10) = 1 byte; the ghost holds up to 2 keys per
// tracked key plus 2, which never forgets anything here):
//   1 a, 2 b -> small [b a]   3 c: small tail a (freq 0) evicted -> ghost [a]; small [c b]
//   4 a: evict b -> ghost [b a]; a is in the ghost -> main [a]; small [c]
//   5 d: evict c (2 bytes) -> ghost [c b]; small [d]
//   6 b: fits (3 bytes); b is in the ghost -> main [b a]   7 a HIT (freq 1)
//   8 c: evict d (small is at its 1-byte share) -> ghost [d c]; then main: a
//        (freq 1) is reinserted with freq 0, b (freq 0) is evicted and
//        forgotten; c is in the ghost -> main [c a]
//   -> 7 misses (all but 7), 1+1+2+1+1+1+2 = 9 bytes: the same counts as LRU,
//   through the ghost path.
// Belady (next use: a@1->4, b@2->6, c@3->8, a@4->7, then none):
//   1 a miss {a}  2 b miss {a b}  3 c miss: c's next use (8) is furthest -> bypassed
//   4 a HIT  5 d miss {a b d}  6 b HIT  7 a HIT  8 c miss
//   -> 5 misses (0.625), 1+1+2+1+2 = 7 bytes missed (0.7).
TEST(Simulator, TinyTraceMatchesHandComputedMissRatios) {
  auto trace = sim::ParseTrace("1 a 1\n2 b 1\n3 c 2\n4 a 1\n5 d 1\n6 b 1\n7 a 1\n8 c 2\n", {});
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  EXPECT_EQ(trace->requests.size(), 8u);
  EXPECT_EQ(trace->keys.size(), 4u);
  EXPECT_EQ(trace->distinct_bytes, 5u);
  EXPECT_EQ(trace->requested_bytes, 10u);

  for (const char* policy : {"lru", "fifo", "s3fifo"}) {
    auto r = sim::Simulate(*trace, policy, 3);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->misses, 7u) << policy;
    EXPECT_EQ(r->missed_bytes, 9u) << policy;
    EXPECT_DOUBLE_EQ(r->ObjectMissRatio(), 0.875) << policy;
    EXPECT_DOUBLE_EQ(r->ByteMissRatio(), 0.9) << policy;
  }
  auto opt = sim::SimulateBelady(*trace, 3);
  EXPECT_EQ(opt.misses, 5u);
  EXPECT_EQ(opt.missed_bytes, 7u);
  EXPECT_DOUBLE_EQ(opt.ObjectMissRatio(), 0.625);
  EXPECT_DOUBLE_EQ(opt.ByteMissRatio(), 0.7);
}

TEST(Simulator, ObjectTooLargeForTheCacheIsAMissAndNotAdmitted) {
  auto trace = sim::ParseTrace("1 big 10\n2 big 10\n3 s 1\n4 s 1\n", {});
  ASSERT_TRUE(trace.ok());
  for (const std::string& policy : PolicyNames()) {
    auto r = sim::Simulate(*trace, policy, 5);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->misses, 3u) << policy;
  }
  EXPECT_EQ(sim::SimulateBelady(*trace, 5).misses, 3u);
}

TEST(Simulator, BeladyIsOptimalForUnitSizes) {
  sim::ZipfParams zp{.alpha = 0.9, .objects = 2000, .requests = 50'000, .seed = 5};
  sim::Trace t = sim::GenerateZipf(zp);
  for (auto& s : t.sizes) s = 1;  // MIN is optimal only when sizes are equal
  for (uint64_t cap : {10u, 100u, 500u}) {
    const uint64_t opt = sim::SimulateBelady(t, cap).misses;
    for (const std::string& policy : PolicyNames()) {
      auto r = sim::Simulate(t, policy, cap);
      ASSERT_TRUE(r.ok());
      EXPECT_LE(opt, r->misses) << policy << " at " << cap;
    }
  }
}

TEST(Simulator, ZipfIsDeterministicAndSkewed) {
  sim::ZipfParams zp{.alpha = 1.0, .objects = 1000, .requests = 20'000, .seed = 9};
  sim::Trace a = sim::GenerateZipf(zp), b = sim::GenerateZipf(zp);
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_EQ(a.sizes, b.sizes);
  std::vector<int> count(1000);
  for (uint32_t o : a.requests) ++count[o];
  EXPECT_GT(count[0], 5 * count[9]);  // rank 1 vs rank 10: ~10x expected
  for (uint64_t s : a.sizes) {
    EXPECT_GE(s, 1024u);
    EXPECT_LE(s, 1024u * 1024);
  }
}

TEST(Simulator, CsvTraceWithHeaderAndChosenColumns) {
  sim::TraceFormat csv{.csv = true, .key_col = 3, .size_col = 1};
  auto t = sim::ParseTrace("bytes,ts,key\n100,1,x\n100,2,x\n50,3,y\n", csv);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->requests, (std::vector<uint32_t>{0, 0, 1}));
  EXPECT_EQ(t->distinct_bytes, 150u);
  EXPECT_EQ(sim::ParseTrace("1 a 1\n2 b\n", {}).status().code(), StatusCode::kInvalid);
  // The header may follow comments and blank lines; only the first row is one.
  auto commented = sim::ParseTrace("# from the CDN's logs\n\nbytes,ts,key\n100,1,x\n", csv);
  ASSERT_TRUE(commented.ok()) << commented.status().ToString();
  EXPECT_EQ(commented->requests, (std::vector<uint32_t>{0}));
  EXPECT_EQ(sim::ParseTrace("bytes,ts,key\n100,1,x\nbytes,ts,key\n", csv).status().code(),
            StatusCode::kInvalid);
}

TEST(Simulator, TraceWhoseByteTotalsOverflowIsRefusedNamingTheLine) {
  // Two objects of 2^64 - 1 bytes: their sum wrapped to 2^64 - 2.
  auto two = sim::ParseTrace("1 a 18446744073709551615\n2 b 18446744073709551615\n", {});
  ASSERT_EQ(two.status().code(), StatusCode::kInvalid);
  EXPECT_NE(two.status().message().find("trace line 2: the sizes of the"), std::string::npos)
      << two.status().ToString();
  // One such object requested twice: the objects' total fits, the requests' does not.
  auto twice = sim::ParseTrace("1 a 18446744073709551615\n2 a 18446744073709551615\n", {});
  ASSERT_EQ(twice.status().code(), StatusCode::kInvalid);
  EXPECT_NE(twice.status().message().find("trace line 2: the sizes of the requests"),
            std::string::npos)
      << twice.status().ToString();
  // Right up to the limit is fine.
  auto full = sim::ParseTrace("1 a 18446744073709551614\n2 b 1\n", {});
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->distinct_bytes, 18446744073709551615u);
  EXPECT_EQ(full->requested_bytes, 18446744073709551615u);
}

TEST(Simulator, ParsesCapacities) {
  EXPECT_EQ(*sim::ParseCapacity("10%", 1000), 100u);
  EXPECT_EQ(*sim::ParseCapacity("1%", 50), 1u);
  EXPECT_EQ(*sim::ParseCapacity("64K", 0), 65536u);
  EXPECT_EQ(*sim::ParseCapacity("1.5G", 0), 1610612736u);
  EXPECT_EQ(*sim::ParseCapacity("512", 0), 512u);
  EXPECT_FALSE(sim::ParseCapacity("10x", 1000).ok());
  EXPECT_FALSE(sim::ParseCapacity("0", 1000).ok());
  EXPECT_FALSE(sim::ParseCapacity("", 1000).ok());
}

}  // namespace
}  // namespace objstore
