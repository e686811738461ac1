// Capacity on crafted sequences: accounting of reservations and bodies, the
// watermarks, what is never evicted, refusals by the owner, pins, and the
// saved state across a "restart" (a second Capacity loading the first's blob).
#include "cache/capacity.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

namespace objstore {
namespace {

using namespace std::chrono_literals;

// The owner's side: records removals, refuses keys on demand, keeps the state.
struct FakeOwner {
  std::mutex mu;
  std::vector<std::string> removed;
  std::set<std::string> refuse;
  std::set<std::string> fail;  // each fails once
  std::string saved;
  std::function<void(const std::string&)> on_remove;  // runs before deciding

  CapacityHooks Hooks() {
    CapacityHooks h;
    h.remove_body = [this](const std::string& key, uint64_t) {
      if (on_remove) on_remove(key);
      std::lock_guard lock(mu);
      if (refuse.contains(key)) return Removal::kRefused;
      if (fail.erase(key) > 0) return Removal::kFailed;
      removed.push_back(key);
      return Removal::kRemoved;
    };
    h.save_state = [this](const std::string& blob) {
      std::lock_guard lock(mu);
      saved = blob;
    };
    return h;
  }
  std::vector<std::string> Removed() {
    std::lock_guard lock(mu);
    return removed;
  }
};

std::unique_ptr<Capacity> Open(FakeOwner& owner, uint64_t max, const std::string& policy = "lru",
                               std::chrono::milliseconds reserve_timeout = 5000ms) {
  CapacityOptions o;
  o.max_bytes = max;
  o.policy = policy;
  o.reserve_timeout = reserve_timeout;
  auto c = Capacity::Open(o, owner.Hooks());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

// Waits for the eviction thread to settle: `cond` true within 10 s (a loaded
// machine under TSan is slow; a passing run returns at once).
template <typename F>
bool Eventually(F cond) {
  for (int i = 0; i < 2000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// Adds an evictable body as a committed PUT would: reserve, then hand over.
void Put(Capacity& c, const std::string& key, uint64_t size, bool evictable = true) {
  Reservation r = c.NewReservation();
  ASSERT_TRUE(c.Reserve(r, size).ok()) << key;
  c.AddBody(key, 1, size, evictable, &r);
  EXPECT_EQ(r.bytes(), 0u);
}

// Reserves `bytes` into `r` while `event` happens 200 ms later on another
// thread: the Reserve's outcome and how long it took.
std::pair<Status, std::chrono::steady_clock::duration> ReserveAcross(
    Capacity& c, Reservation& r, uint64_t bytes, const std::function<void()>& event) {
  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(200ms);
    event();
  });
  const auto start = std::chrono::steady_clock::now();
  Status s = c.Reserve(r, bytes);
  const auto took = std::chrono::steady_clock::now() - start;
  later.get();
  return {s, took};
}

TEST(Capacity, RejectsBadOptions) {
  FakeOwner owner;
  CapacityOptions o;
  EXPECT_FALSE(Capacity::Open(o, owner.Hooks()).ok());  // zero budget
  o.max_bytes = 100;
  o.policy = "nope";
  EXPECT_FALSE(Capacity::Open(o, owner.Hooks()).ok());
  o.policy = "lru";
  o.low_watermark = 0.99;
  EXPECT_FALSE(Capacity::Open(o, owner.Hooks()).ok());  // low above high
}

TEST(Capacity, ReservationsCountUntilReleasedOrHandedToABody) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  {
    Reservation r = c->NewReservation();
    EXPECT_TRUE(c->TryReserve(r, 600));
    EXPECT_FALSE(c->TryReserve(r, 401));  // 1001 > 1000
    EXPECT_TRUE(c->TryReserve(r, 300));
    EXPECT_EQ(c->Stats().used_bytes, 900u);
    EXPECT_EQ(c->Stats().reserved_bytes, 900u);
  }
  EXPECT_EQ(c->Stats().used_bytes, 0u);  // released by the destructor
  {
    Reservation adopted;  // default-constructed: the Capacity adopts it
    ASSERT_TRUE(c->Reserve(adopted, 200).ok());
    EXPECT_TRUE(c->TryReserve(adopted, 100));
    EXPECT_EQ(c->Stats().reserved_bytes, 300u);
  }
  EXPECT_EQ(c->Stats().used_bytes, 0u);

  Reservation r = c->NewReservation();
  ASSERT_TRUE(c->TryReserve(r, 500));
  c->AddBody("a", 1, 480, false, &r);  // the body came out shorter than reserved
  EXPECT_EQ(c->Stats().used_bytes, 480u);
  EXPECT_EQ(c->Stats().reserved_bytes, 0u);
  // A new version replaces the old one's bytes; removing another version is a no-op.
  c->AddBody("a", 2, 100, false, nullptr);
  EXPECT_EQ(c->Stats().used_bytes, 100u);
  c->RemoveBody("a", 1);
  EXPECT_EQ(c->Stats().used_bytes, 100u);
  c->RemoveBody("a", 2);
  EXPECT_EQ(c->Stats().used_bytes, 0u);
  EXPECT_EQ(c->Stats().bodies, 0u);
}

TEST(Capacity, EvictsFromTheHighToTheLowWatermarkInPolicyOrder) {
  FakeOwner owner;
  auto c = Open(owner, 1000);  // high 950, low 900
  for (int i = 0; i < 9; ++i) Put(*c, "k" + std::to_string(i), 100);
  std::this_thread::sleep_for(200ms);  // time for a wrong eviction to show
  EXPECT_TRUE(owner.Removed().empty()) << "900 bytes is under the high watermark";
  c->PinForRead("k0").safe();  // a hit: k0 becomes the most recent (LRU)
  Put(*c, "k9", 100);          // 1000 > 950: evict down to 900
  ASSERT_TRUE(Eventually([&] { return c->Stats().evictions == 1; }));
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"k1"});
  EXPECT_EQ(c->Stats().used_bytes, 900u);
  Put(*c, "k10", 50);  // 950 is not above the high watermark
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(c->Stats().evictions, 1u);
}

TEST(Capacity, ReserveWaitsForEvictionAndFailsWhenNothingCanGo) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "level0", 500, /*evictable=*/false);
  Put(*c, "cold", 400);
  Reservation r = c->NewReservation();
  EXPECT_FALSE(c->TryReserve(r, 200));
  ASSERT_TRUE(c->Reserve(r, 200).ok());  // evicts "cold"
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"cold"});
  EXPECT_EQ(c->Stats().used_bytes, 700u);

  auto start = std::chrono::steady_clock::now();
  Status s = c->Reserve(r, 301);  // 1001: only the level-0 body and r are left
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s)
      << "NoSpace must not wait for the timeout";
  EXPECT_EQ(c->Reserve(r, 5000).code(), StatusCode::kNoSpace);  // larger than the budget
  EXPECT_EQ(c->Stats().refused_reservations, 2u);
  EXPECT_EQ(c->Stats().used_bytes, 700u);
}

TEST(Capacity, AReservationThatCannotFitEvictsNothing) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "level0", 600, /*evictable=*/false);
  for (int i = 0; i < 7; ++i) Put(*c, "cold" + std::to_string(i), 50);
  Reservation held = c->NewReservation();
  ASSERT_TRUE(c->TryReserve(held, 10));  // another write in flight: it may fail and free its room
  Reservation r = c->NewReservation();
  // 600 level-0 bytes stay whatever goes: 500 more can never fit.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c->Reserve(r, 500).code(), StatusCode::kNoSpace);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "a hopeless request waited";
  EXPECT_TRUE(owner.Removed().empty()) << "the cache was flushed for a refusal";
  EXPECT_EQ(c->Stats().evictions, 0u);
  // 390 fit beside the level-0 body and the write in flight once all else is gone.
  EXPECT_TRUE(c->Reserve(r, 390).ok());
  EXPECT_EQ(owner.Removed().size(), 7u);
}

// A GET brings an evicted body back (same version) while the pass that
// removed it has not yet taken the lock again: the body it added stays
// counted and tracked, not forgotten as the one just removed, so the pass
// goes on to evict another.
TEST(Capacity, ABodyAddedAgainDuringItsEvictionStaysCounted) {
  FakeOwner owner;
  auto c = Open(owner, 1000);  // eviction above 950 bytes, down to 900
  Put(*c, "back", 300);
  Capacity* cap = c.get();
  bool once = true;
  owner.on_remove = [&](const std::string& key) {
    if (key == "back" && std::exchange(once, false)) cap->AddBody("back", 1, 300, true, nullptr);
  };
  Put(*c, "new", 600);  // 900 bytes: under the high watermark
  // 980 bytes: "back", the oldest, is evicted first, then "new" (both bodies
  // before the pass starts, whether it starts at the last reservation or at
  // its body).
  Put(*c, "last", 80);
  EXPECT_TRUE(Eventually([&] { return owner.Removed().size() == 2; }))
      << "the pass stopped as if the body added again were gone";
  EXPECT_EQ(owner.Removed(), (std::vector<std::string>{"back", "new"}));
  EXPECT_TRUE(Eventually([&] { return c->Stats().used_bytes == 380; })) << c->Stats().used_bytes;
  EXPECT_EQ(c->Stats().bodies, 2u);
}

TEST(Capacity, AHugeReservationDoesNotWrapAround) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Reservation held = c->NewReservation();
  ASSERT_TRUE(c->TryReserve(held, 1));
  // A size from a peer's record or a damaged journal: refused, never wrapped
  // past 2^64 into a small sum that fits.
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  Reservation r = c->NewReservation();
  EXPECT_FALSE(c->TryReserve(r, huge));
  EXPECT_FALSE(c->TryReserve(r, huge - 500));
  EXPECT_FALSE(c->TryReserveSpare(r, huge));
  EXPECT_EQ(c->Reserve(r, huge).code(), StatusCode::kNoSpace);
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_EQ(c->Stats().used_bytes, 1u);
}

TEST(Capacity, NoEvictionKeepsTheBudgetWithoutEvicting) {
  FakeOwner owner;
  auto c = Open(owner, 1000, kNoEviction);
  Put(*c, "a", 600);  // evictable as far as the owner knows; "none" ignores it
  EXPECT_TRUE(c->PinForRead("a").safe());
  Reservation r = c->NewReservation();
  EXPECT_EQ(c->Reserve(r, 500).code(), StatusCode::kNoSpace);
  EXPECT_TRUE(c->Reserve(r, 400).ok());
  EXPECT_TRUE(owner.Removed().empty());
  EXPECT_EQ(c->Stats().policy, "none");
  EXPECT_EQ(c->Stats().evictable_bytes, 0u);
}

TEST(Capacity, BodiesBecomeEvictableOnlyWhenTold) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "pending", 600, /*evictable=*/false);
  Reservation r = c->NewReservation();
  EXPECT_EQ(c->Reserve(r, 500).code(), StatusCode::kNoSpace);
  c->SetEvictable("pending", 2, true);  // another version: ignored
  EXPECT_EQ(c->Reserve(r, 500).code(), StatusCode::kNoSpace);
  c->SetEvictable("pending", 1, true);  // the cold store has it now
  EXPECT_TRUE(c->Reserve(r, 500).ok());
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"pending"});
}

TEST(Capacity, PinnedBodiesAreSkippedAndABodyBeingEvictedIsNotSafeToRead) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "a", 400);
  Put(*c, "b", 400);
  {
    BodyPin pin = c->PinForRead("a");  // also makes "a" the most recent...
    EXPECT_TRUE(pin.safe());
    BodyPin pin_b = c->PinForRead("b");  // ...and "b" after it: "a" is the LRU victim
    pin_b = BodyPin();                   // released
    Reservation r = c->NewReservation();
    ASSERT_TRUE(c->Reserve(r, 400).ok());
    EXPECT_EQ(owner.Removed(), std::vector<std::string>{"b"});  // "a" is pinned
  }
  // While the owner removes a body, a reader is told not to open it.
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  owner.on_remove = [&](const std::string&) {
    entered.set_value();
    released.wait();
  };
  Reservation r = c->NewReservation();
  auto waiting = std::async(std::launch::async, [&] { return c->Reserve(r, 700); });
  entered.get_future().wait();
  EXPECT_FALSE(c->PinForRead("a").safe());
  release.set_value();
  EXPECT_TRUE(waiting.get().ok());
  EXPECT_EQ(owner.Removed(), (std::vector<std::string>{"b", "a"}));
}

// A pinned body is only held for as long as a reader sends it: a reservation
// that needs its room waits for the reader instead of answering 507 at once.
TEST(Capacity, ReserveWaitsForAPinnedBodyInsteadOfRefusing) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "level0", 500, /*evictable=*/false);
  Put(*c, "read", 400);
  auto pin = std::make_unique<BodyPin>(c->PinForRead("read"));
  auto unpin = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(200ms);
    pin.reset();
  });
  Reservation r = c->NewReservation();
  const auto start = std::chrono::steady_clock::now();
  Status s = c->Reserve(r, 400);
  unpin.get();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms) << "it did not wait for the pin";
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"read"});
  // Without a pin in the way, a budget that cannot be freed refuses at once.
  Reservation more = c->NewReservation();
  EXPECT_EQ(c->Reserve(more, 200).code(), StatusCode::kNoSpace);
}

// Another write in flight ends as a body (evictable or not) or gives its
// bytes back: a reservation that finds nothing to evict waits for it. (A GET
// of an evicted body answered 507 while level-1 PUTs were in flight.)
TEST(Capacity, ReserveWaitsForAWriteInFlightInsteadOfRefusing) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "level0", 500, /*evictable=*/false);
  auto writing = std::make_unique<Reservation>(c->NewReservation());
  ASSERT_TRUE(c->TryReserve(*writing, 400));  // 900 used, nothing evictable
  Reservation r = c->NewReservation();
  auto [s, took] = ReserveAcross(
      *c, r, 300, [&] { c->AddBody("written", 1, 400, /*evictable=*/true, writing.get()); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(took, 150ms) << "it did not wait for the write";
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"written"});
  r = c->NewReservation();

  // A write that ends without a body gives its bytes back: they fit then.
  ASSERT_TRUE(c->TryReserve(*writing, 400));
  std::tie(s, took) = ReserveAcross(*c, r, 300, [&] { writing.reset(); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(took, 150ms);
  r = c->NewReservation();

  // A write that ends as a body that may not go leaves nothing to wait for:
  // the waiter is refused then, not at the timeout.
  Reservation last = c->NewReservation();
  ASSERT_TRUE(c->TryReserve(last, 150));  // 650 used
  Reservation more = c->NewReservation();
  std::tie(s, took) = ReserveAcross(
      *c, more, 400, [&] { c->AddBody("level0-b", 1, 150, /*evictable=*/false, &last); });
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_LT(took, 2s) << "it waited for the timeout";
}

// A body whose cold-store upload runs becomes evictable when it succeeds: a
// reservation waits for it, and is refused at once when the upload fails.
TEST(Capacity, ReserveWaitsForAnUploadInFlight) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "uploading", 600, /*evictable=*/false);
  c->UploadStarted("uploading", 2);  // another version: not waited for
  Reservation r = c->NewReservation();
  EXPECT_EQ(c->Reserve(r, 500).code(), StatusCode::kNoSpace);
  c->UploadStarted("uploading", 1);
  auto [s, took] = ReserveAcross(*c, r, 500, [&] {
    c->SetEvictable("uploading", 1, true);  // the cold store has it
    c->UploadEnded("uploading", 1);
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(took, 150ms) << "it did not wait for the upload";
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"uploading"});
  r = c->NewReservation();

  Put(*c, "failing", 600, /*evictable=*/false);
  c->UploadStarted("failing", 1);
  std::tie(s, took) = ReserveAcross(*c, r, 500, [&] {
    c->UploadEnded("failing", 1);  // not evictable after all
  });
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s) << "it waited for the timeout";
  // An upload of a body that is removed meanwhile leaves nothing behind.
  c->UploadStarted("failing", 1);
  c->RemoveBody("failing", 1);
  const auto start = std::chrono::steady_clock::now();
  Put(*c, "level0", 900, /*evictable=*/false);
  EXPECT_EQ(c->Reserve(r, 200).code(), StatusCode::kNoSpace);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "a removed upload was waited for";
}

// Waiting reservations hold threads of the node's blocking pool, which the
// PUTs they wait for need: only max_settling_waiters of them wait for writes
// in flight, the others get the verdict at once.
TEST(Capacity, OnlySomeReservationsWaitForWritesInFlight) {
  FakeOwner owner;
  CapacityOptions o;
  o.max_bytes = 1000;
  o.policy = "lru";
  o.max_settling_waiters = 1;
  auto opened = Capacity::Open(o, owner.Hooks());
  ASSERT_TRUE(opened.ok());
  Capacity& c = **opened;
  Put(c, "level0", 500, /*evictable=*/false);
  auto writing = std::make_unique<Reservation>(c.NewReservation());
  ASSERT_TRUE(c.TryReserve(*writing, 400));
  Reservation first = c.NewReservation();
  auto waiting = std::async(std::launch::async, [&] { return c.Reserve(first, 300); });
  ASSERT_TRUE(Eventually([&] { return c.Stats().waiting_reservations == 1; }));
  Reservation second = c.NewReservation();
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.Reserve(second, 300).code(), StatusCode::kNoSpace);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "the second waited too";
  writing.reset();  // the write in flight gives its bytes back
  EXPECT_TRUE(waiting.get().ok());
}

TEST(Capacity, APinWithoutAHitKeepsThePolicyOrder) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "a", 400);
  Put(*c, "b", 400);
  EXPECT_TRUE(c->Pin("a").safe());  // taken and released: "a" is still the oldest
  Reservation r = c->NewReservation();
  ASSERT_TRUE(c->Reserve(r, 400).ok());
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"a"});
  // PinForRead, by contrast, records the hit: "b" made recent, "c" goes first.
  Put(*c, "c", 100);
  c->PinForRead("b").safe();
  Reservation more = c->NewReservation();
  ASSERT_TRUE(c->Reserve(more, 100).ok());  // 1000 > 950: evicts down to 900
  ASSERT_TRUE(Eventually([&] { return owner.Removed().size() == 2; }));
  EXPECT_EQ(owner.Removed(), (std::vector<std::string>{"a", "c"}));
}

TEST(Capacity, OwnerRefusalTakesTheBodyOutOfThePolicy) {
  FakeOwner owner;
  owner.refuse = {"deleted-meanwhile"};
  auto c = Open(owner, 1000);
  Put(*c, "deleted-meanwhile", 500);
  Put(*c, "ok", 300);
  Reservation r = c->NewReservation();
  ASSERT_TRUE(c->Reserve(r, 400).ok());  // refused first, then "ok" goes
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"ok"});
  EXPECT_EQ(c->Stats().evictable_bytes, 0u);
  EXPECT_EQ(c->Stats().used_bytes, 900u);
}

TEST(Capacity, ABodyWhoseRemovalFailedIsOfferedAgainLater) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  Put(*c, "a", 300);
  Put(*c, "b", 300);
  Put(*c, "c", 300);
  owner.fail.insert("a");  // an I/O error, once
  Reservation r = c->NewReservation();
  ASSERT_TRUE(c->Reserve(r, 300).ok());  // "a" fails: "b" goes instead
  EXPECT_EQ(owner.Removed(), std::vector<std::string>{"b"});
  EXPECT_EQ(c->Stats().evictable_bytes, 600u) << "the failed body left the policy";
  EXPECT_TRUE(c->Counts("a", 1)) << "a body whose removal failed is still on disk";
  EXPECT_FALSE(c->Counts("b", 1));
  // Refused for that pass, "a" went to the recent end, as a pinned key does.
  Reservation more = c->NewReservation();
  ASSERT_TRUE(c->Reserve(more, 300).ok());
  Reservation last = c->NewReservation();
  ASSERT_TRUE(c->Reserve(last, 300).ok());  // a later pass takes "a"
  EXPECT_EQ(owner.Removed(), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(c->Stats().used_bytes, 900u);
}

// Counts answers for the one version the budget accounts: not another
// version's, not after a removal (still after an eviction whose removal
// failed: ABodyWhoseRemovalFailedIsOfferedAgainLater).
TEST(Capacity, CountsTheVersionItAccountsUntilItsBodyIsGone) {
  FakeOwner owner;
  auto c = Open(owner, 1000);
  EXPECT_FALSE(c->Counts("a", 1)) << "never added";
  Put(*c, "a", 300, /*evictable=*/false);  // version 1
  EXPECT_TRUE(c->Counts("a", 1));
  EXPECT_FALSE(c->Counts("a", 2));
  c->AddBody("a", 2, 300, false, nullptr);  // replaces version 1
  EXPECT_FALSE(c->Counts("a", 1));
  EXPECT_TRUE(c->Counts("a", 2));
  c->RemoveBody("a", 2);
  EXPECT_FALSE(c->Counts("a", 2));
}

TEST(Capacity, SavedStateKeepsTheOrderAcrossARestart) {
  FakeOwner owner;
  std::vector<StoredBody> bodies;
  {
    auto c = Open(owner, 10'000);
    for (const char* k : {"a", "b", "c", "d"}) {
      Put(*c, k, 100);
      bodies.push_back({k, 1, 100, true});
    }
    c->PinForRead("a");  // LRU order now b, c, d, a
    c->PinForRead("b");  // c, d, a, b
  }                      // saves at shutdown
  ASSERT_FALSE(owner.saved.empty());
  bodies.push_back({"new", 1, 100, true});      // unknown to the saved state: coldest
  bodies.push_back({"level0", 1, 100, false});  // never in the policy
  FakeOwner after;
  CapacityOptions o;
  o.max_bytes = 600;  // 600 used: over the high watermark at once, down to 540
  o.policy = "lru";
  auto c = Capacity::Open(o, after.Hooks());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Load(bodies, owner.saved), 4u);
  ASSERT_TRUE(Eventually([&] { return (*c)->Stats().evictions == 1; }));
  EXPECT_EQ(after.Removed(), std::vector<std::string>{"new"});
  Reservation r = (*c)->NewReservation();
  ASSERT_TRUE((*c)->Reserve(r, 240).ok());  // 740 > 600: two more, in the saved order
  EXPECT_EQ(after.Removed(), (std::vector<std::string>{"new", "c", "d"}));
  // A corrupt blob is ignored, not fatal.
  FakeOwner third;
  auto d = Open(third, 10'000);
  EXPECT_EQ(d->Load(bodies, "garbage"), 0u);
  EXPECT_EQ(d->Stats().used_bytes, 600u);
}

// S3-FIFO's ghost is part of the saved state: a key evicted before a restart
// and stored again after it is recognised and goes straight to main.
TEST(Capacity, SavedStateKeepsTheS3FifoGhostAcrossARestart) {
  auto queue_of = [](const std::string& blob, const std::string& key) {
    auto state = DecodePolicyState(blob);
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    std::optional<PolicyQueue> q;
    for (const PolicyEntryState& e : state.value()) {
      if (e.key == key) q = e.queue;
    }
    return q;
  };
  FakeOwner owner;
  std::vector<StoredBody> bodies;
  {
    auto c = Open(owner, 1000, "s3fifo");
    for (char k = 'a'; k <= 'j'; ++k) Put(*c, std::string(1, k), 100);
    // 1000 > 950 used: one eviction down to 900, small's oldest never-hit key.
    ASSERT_TRUE(Eventually([&] { return c->Stats().evictions == 1; }));
    EXPECT_EQ(owner.Removed(), std::vector<std::string>{"a"});
  }
  EXPECT_EQ(queue_of(owner.saved, "a"), PolicyQueue::kGhost);
  for (char k = 'b'; k <= 'j'; ++k) bodies.push_back({std::string(1, k), 1, 100, true});
  FakeOwner after;
  {
    auto c = Open(after, 10'000, "s3fifo");
    EXPECT_EQ(c->Load(bodies, owner.saved), 9u);
    Put(*c, "a", 100);  // fetched back: the ghost sends it to main (its probation)
  }
  EXPECT_EQ(queue_of(after.saved, "a"), PolicyQueue::kProbation);
  EXPECT_EQ(queue_of(after.saved, "b"), PolicyQueue::kSmall);
}

}  // namespace
}  // namespace objstore
