// Unit tests of the cluster's pure parts: the sync tree, call authentication,
// membership merging and failure detection, and the message codec.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/random.h"
#include "cluster/auth.h"
#include "cluster/codec.h"
#include "cluster/membership.h"
#include "cluster/sync_tree.h"

namespace objstore::cluster {
namespace {

ObjectRecord Rec(const std::string& key, uint64_t version, const std::string& node = "A") {
  ObjectRecord r;
  r.key = key;
  r.name = "n.txt";
  r.size = 3;
  r.etag = "\"e\"";
  r.timestamp_ns = 1;
  r.version.packed = version;
  r.version_node = node;
  r.consistency = 1;
  return r;
}

TEST(SyncTree, EqualSetsHaveEqualRootsWhateverTheOrder) {
  std::vector<ObjectRecord> recs;
  for (int i = 0; i < 2000; ++i) recs.push_back(Rec("key" + std::to_string(i), 100 + i));
  SyncTree a, b;
  for (const auto& r : recs) a.Change(nullptr, r);
  std::shuffle(recs.begin(), recs.end(), std::mt19937(7));
  for (const auto& r : recs) b.Change(nullptr, r);
  EXPECT_EQ(a.Root(), b.Root());
  EXPECT_NE(a.Root(), 0u);
  EXPECT_EQ(a.records(), 2000u);
  for (uint32_t i = 0; i < SyncTree::NodesAt(2); ++i) EXPECT_EQ(a.Hash(2, i), b.Hash(2, i));
}

TEST(SyncTree, AChangeShowsInOneLeafAndItsAncestorsOnly) {
  SyncTree a, b;
  ObjectRecord r = Rec("k", 1);
  a.Change(nullptr, r);
  b.Change(nullptr, r);
  ObjectRecord newer = Rec("k", 2);
  b.Change(&r, newer);
  const uint32_t leaf = SyncTree::LeafOf("k");
  EXPECT_NE(a.Root(), b.Root());
  uint32_t index = leaf;
  for (int level = SyncTree::kLeafLevel; level >= 0; --level, index /= SyncTree::kFanout) {
    EXPECT_NE(a.Hash(level, index), b.Hash(level, index)) << level;
  }
  EXPECT_EQ(a.Hash(SyncTree::kLeafLevel, leaf ^ 1), b.Hash(SyncTree::kLeafLevel, leaf ^ 1));
  b.Change(&newer, r);  // back to the same state
  EXPECT_EQ(a.Root(), b.Root());
}

TEST(SyncTree, RecordHashCoversWhatMustAgreeAndNotLocalState) {
  ObjectRecord r = Rec("k", 1);
  const uint64_t h = SyncTree::RecordHash(r);
  ObjectRecord local = r;
  local.local_body = !r.local_body;
  local.cold = ColdState::kPending;
  EXPECT_EQ(SyncTree::RecordHash(local), h);
  ObjectRecord other = r;
  other.version_node = "B";
  EXPECT_NE(SyncTree::RecordHash(other), h);
  other = r;
  other.deleted = true;
  EXPECT_NE(SyncTree::RecordHash(other), h);
  other = r;
  other.cold = ColdState::kStored;
  EXPECT_NE(SyncTree::RecordHash(other), h);
  uint64_t parsed = 0;
  EXPECT_TRUE(HexToHash(HashToHex(h), &parsed));
  EXPECT_EQ(parsed, h);
  EXPECT_FALSE(HexToHash("xyz", &parsed));
  EXPECT_FALSE(HexToHash("0123456789ABCDEF", &parsed));
}

TEST(SyncTree, StabilityOfATombstoneMustAgreeAndRemoveUndoesIt) {
  ObjectRecord t = Rec("k", 1);
  t.deleted = true;
  ObjectRecord stable = t;
  stable.stable_ms = 1234;
  EXPECT_NE(SyncTree::RecordHash(stable), SyncTree::RecordHash(t));
  ObjectRecord later = stable;
  later.stable_ms = 999;  // the time is each node's own
  EXPECT_EQ(SyncTree::RecordHash(later), SyncTree::RecordHash(stable));

  SyncTree a, empty;
  ObjectRecord other = Rec("other", 5);
  a.Change(nullptr, other);
  empty.Change(nullptr, other);
  a.Change(nullptr, t);
  EXPECT_TRUE(a.Change(&t, stable));
  EXPECT_EQ(a.records(), 2u);
  a.Remove(stable);  // purged
  EXPECT_EQ(a.Root(), empty.Root());
  EXPECT_EQ(a.records(), 1u);
  // A new version written between the purge and the tree's update: XOR
  // makes the order irrelevant.
  ObjectRecord again = Rec("k", 9);
  a.Change(nullptr, stable);
  a.Change(nullptr, again);  // the journal saw no predecessor (purged)
  a.Remove(stable);
  empty.Change(nullptr, again);
  EXPECT_EQ(a.Root(), empty.Root());
}

TEST(SyncTree, PackedHashesRoundTripAndGarbageIsRefused) {
  std::vector<uint64_t> out{42};
  EXPECT_EQ(PackHashes({}), "");
  ASSERT_TRUE(UnpackHashes("", &out));
  EXPECT_TRUE(out.empty());
  for (size_t n : {1u, 2u, 3u, 1000u}) {
    std::vector<uint64_t> in;
    for (size_t i = 0; i < n; ++i) in.push_back(0x0123456789abcdefull * (i + 1) ^ (i << 60));
    const std::string packed = PackHashes(in);
    EXPECT_LE(packed.size(), n * 11 + 3);
    ASSERT_TRUE(UnpackHashes(packed, &out)) << n;
    EXPECT_EQ(out, in);
  }
  // Known bytes: 0x0000000000000001 is base64 of 7 zero bytes and a one.
  ASSERT_TRUE(UnpackHashes("AAAAAAAAAAE=", &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], 1u);
  for (const char* bad : {"AAAAAAAAAA==", "AAAAAAAAAAE", "AAAAAAAA AE=", "AAAAA=AAAAE=",
                          "AAAAAAAAAA\nE=", "AAAAAAAAAAE*"}) {
    EXPECT_FALSE(UnpackHashes(bad, &out)) << bad;
  }
}

// ------------------------------------------------------------ auth

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RequestFacts Facts(const SignedHeaders& h, const std::string& tag, std::string_view body) {
  return RequestFacts{"POST", "/cluster/v1/records", tag, "N1", h.time_ms, h.nonce, h.signature,
                      body};
}

TEST(CallAuthenticator, AcceptsASignedCallOnceAndRefusesForgeries) {
  SystemRandom random;
  CallAuthenticator sender("secret", "blue", random), receiver("secret", "blue", random);
  const std::string body = R"({"records":[]})";
  SignedHeaders h = sender.SignRequest("POST", "/cluster/v1/records", "N1", body);
  EXPECT_TRUE(receiver.VerifyRequest(Facts(h, "blue", body), NowMs()).ok());
  auto replay = receiver.VerifyRequest(Facts(h, "blue", body), NowMs());
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(replay.code, "replayed");

  SignedHeaders h2 = sender.SignRequest("POST", "/cluster/v1/records", "N1", body);
  EXPECT_EQ(receiver.VerifyRequest(Facts(h2, "blue", body + " "), NowMs()).code, "bad_signature");
  RequestFacts other_target = Facts(h2, "blue", body);
  other_target.target = "/cluster/v1/ping";
  EXPECT_EQ(receiver.VerifyRequest(other_target, NowMs()).code, "bad_signature");
  // Another tag: refused, and told only when the caller holds the secret.
  EXPECT_EQ(receiver.VerifyRequest(Facts(h2, "red", body), NowMs()).code, "bad_signature");
  CallAuthenticator red_sender("secret", "red", random);
  SignedHeaders red = red_sender.SignRequest("POST", "/cluster/v1/records", "N1", body);
  EXPECT_EQ(receiver.VerifyRequest(Facts(red, "red", body), NowMs()).code, "tag_mismatch");
  EXPECT_EQ(receiver.VerifyRequest(Facts(red, "red", body), NowMs()).status, 403);
  EXPECT_EQ(receiver.VerifyRequest(Facts(h2, "blue", body), NowMs() + 301'000).code,
            "stale_request");
  EXPECT_TRUE(receiver.VerifyRequest(Facts(h2, "blue", body), NowMs()).ok());

  CallAuthenticator stranger("other", "blue", random);
  SignedHeaders h3 = stranger.SignRequest("POST", "/cluster/v1/records", "N1", body);
  EXPECT_EQ(receiver.VerifyRequest(Facts(h3, "blue", body), NowMs()).code, "bad_signature");
  SignedHeaders unsigned_call = h3;
  unsigned_call.signature.clear();
  EXPECT_EQ(receiver.VerifyRequest(Facts(unsigned_call, "blue", body), NowMs()).code,
            "bad_signature");
}

TEST(CallAuthenticator, ANonceIsKeptAWindowPastItsRequestsAndThenForgotten) {
  SystemRandom random;
  const std::string body = "{}";
  CallAuthenticator sender("secret", "blue", random);
  CallAuthenticator receiver("secret", "blue", random, std::chrono::seconds(1));
  auto sign_after = [&](int64_t ms) {  // a call signed later than `ms`
    SignedHeaders h;
    do {
      h = sender.SignRequest("POST", "/cluster/v1/records", "N1", body);
      if (std::stoll(h.time_ms) <= ms) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } while (std::stoll(h.time_ms) <= ms);
    return h;
  };
  SignedHeaders first = sender.SignRequest("POST", "/cluster/v1/records", "N1", body);
  const int64_t first_ms = std::stoll(first.time_ms);
  ASSERT_TRUE(receiver.VerifyRequest(Facts(first, "blue", body), first_ms).ok());
  // Just past the first's window a replay of it is stale, but a receiver whose
  // clock is stepped back would take it: its nonce is still held.
  SignedHeaders second = sign_after(first_ms);
  ASSERT_TRUE(receiver.VerifyRequest(Facts(second, "blue", body), first_ms + 1001).ok());
  EXPECT_EQ(receiver.remembered_nonces(), 2u);
  EXPECT_EQ(receiver.VerifyRequest(Facts(first, "blue", body), first_ms).code, "replayed");
  // A window later it is forgotten; the third call's nonce is held.
  SignedHeaders third = sign_after(first_ms + 1001);
  ASSERT_TRUE(receiver.VerifyRequest(Facts(third, "blue", body), first_ms + 2001).ok());
  EXPECT_EQ(receiver.remembered_nonces(), 2u);  // the second's and the third's
  EXPECT_EQ(receiver.VerifyRequest(Facts(first, "blue", body), first_ms + 2001).code,
            "stale_request");
}

TEST(CallAuthenticator, AnswersAreBoundToTheirRequest) {
  SystemRandom random;
  CallAuthenticator a("secret", "t", random), b("secret", "t", random);
  std::string sig = b.SignResponse(200, "nonce1", "{}");
  EXPECT_TRUE(a.VerifyResponse(200, "nonce1", "{}", sig));
  EXPECT_FALSE(a.VerifyResponse(200, "nonce2", "{}", sig));
  EXPECT_FALSE(a.VerifyResponse(200, "nonce1", "{ }", sig));
  EXPECT_FALSE(a.VerifyResponse(200, "nonce1", "{}", ""));
  CallAuthenticator open("", "t", random);  // no secret: only the tag counts
  EXPECT_TRUE(open.VerifyResponse(200, "n", "{}", ""));
  SignedHeaders h = open.SignRequest("POST", "/x", "N", "{}");
  EXPECT_TRUE(h.signature.empty());
  EXPECT_TRUE(open.VerifyRequest(RequestFacts{"POST", "/x", "t", "N", h.time_ms, h.nonce, "", "{}"},
                                 NowMs()).ok());
}

// ------------------------------------------------------------ membership

Member M(const std::string& id, uint64_t inc, MemberState s) {
  Member m;
  m.id = id;
  m.addr = id + ":1";
  m.incarnation = inc;
  m.state = s;
  return m;
}

TEST(Membership, MergeRulesFollowIncarnationThenSeverity) {
  ManualClock clock(1'000'000'000);
  Membership ms(clock, M("self", 0, MemberState::kAlive));
  auto ev = ms.Merge({M("b", 1, MemberState::kAlive)});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(ev[0].is_new);
  ms.Merge({M("b", 1, MemberState::kSuspect)});
  EXPECT_EQ(ms.Find("b")->state, MemberState::kSuspect);
  ms.Merge({M("b", 1, MemberState::kAlive)});  // same incarnation: alive loses
  EXPECT_EQ(ms.Find("b")->state, MemberState::kSuspect);
  ms.Merge({M("b", 2, MemberState::kAlive)});  // refuted with a higher incarnation
  EXPECT_EQ(ms.Find("b")->state, MemberState::kAlive);
  ms.Merge({M("b", 1, MemberState::kDead)});  // old rumour
  EXPECT_EQ(ms.Find("b")->state, MemberState::kAlive);
  ms.Merge({M("b", 2, MemberState::kDead)});
  EXPECT_EQ(ms.Find("b")->state, MemberState::kDead);
  EXPECT_EQ(ms.ReachablePeers().size(), 0u);
  EXPECT_EQ(ms.DeadPeers().size(), 1u);
  // Heard from directly: alive again, whatever the rumour said.
  ms.Heard(M("b", 2, MemberState::kAlive));
  EXPECT_EQ(ms.Find("b")->state, MemberState::kAlive);
  EXPECT_EQ(ms.AliveCount(), 2u);
}

TEST(Membership, ThisNodeRefutesItsOwnDeath) {
  ManualClock clock(1'000'000'000);
  Membership ms(clock, M("self", 0, MemberState::kAlive));
  ms.Merge({M("self", 3, MemberState::kDead)});
  EXPECT_EQ(ms.self().state, MemberState::kAlive);
  EXPECT_EQ(ms.self().incarnation, 4u);
  ms.Merge({M("self", 1, MemberState::kSuspect)});  // older than ours: nothing to refute
  EXPECT_EQ(ms.self().incarnation, 4u);
}

TEST(Membership, FailedProbeSuspectsAndTimeoutKills) {
  ManualClock clock(1'000'000'000);
  Membership ms(clock, M("self", 0, MemberState::kAlive));
  ms.Merge({M("b", 0, MemberState::kAlive), M("c", 0, MemberState::kAlive)});
  auto ev = ms.ProbeFailed("b");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].to, MemberState::kSuspect);
  EXPECT_EQ(ms.ReachablePeers().size(), 2u);  // a suspect is still tried
  clock.Advance(2'000'000'000);
  EXPECT_TRUE(ms.ExpireSuspects(std::chrono::milliseconds(3000)).empty());
  clock.Advance(1'000'000'000);
  ev = ms.ExpireSuspects(std::chrono::milliseconds(3000));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].to, MemberState::kDead);
  EXPECT_EQ(ms.Find("b")->state, MemberState::kDead);
  EXPECT_EQ(ms.Find("c")->state, MemberState::kAlive);
}

// ------------------------------------------------------------ codec

TEST(Codec, RecordJsonBoundIsNeverBelowTheJson) {
  ObjectRecord r = Rec("01ARZ3NDEKTSV4RRFFQ69G5FAV", ~0ull, "N1");
  r.size = ~0ull;
  r.timestamp_ns = std::numeric_limits<int64_t>::min();
  r.deleted = true;
  r.stable_ms = 1;
  r.cold = ColdState::kStored;
  EXPECT_GE(RecordJsonBound(r), RecordToJson(r).dump().size());
  r.name = std::string(300, '\x01');  // each byte escaped as \u0001
  r.user_meta = std::string(2000, '"');
  r.etag = std::string(100, '\\');
  EXPECT_GE(RecordJsonBound(r), RecordToJson(r).dump().size());
  EXPECT_LE(RecordJsonBound(r), 6 * RecordToJson(r).dump().size());
}

TEST(Codec, RecordsRoundTripAndBadOnesAreRefused) {
  ObjectRecord r = Rec("01ARZ3NDEKTSV4RRFFQ69G5FAV", 0x1234567890abcdefull, "N1");
  r.deleted = true;
  r.user_meta = R"({"a":"b"})";
  r.cold = ColdState::kStored;
  auto back = RecordFromJson(nlohmann::json::parse(RecordToJson(r).dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(SyncTree::RecordHash(*back), SyncTree::RecordHash(r));
  EXPECT_EQ(back->user_meta, r.user_meta);
  EXPECT_EQ(back->size, r.size);

  nlohmann::json j = RecordToJson(r);
  j["level"] = 7;
  EXPECT_FALSE(RecordFromJson(j).ok());
  j = RecordToJson(r);
  j["size"] = "3";
  EXPECT_FALSE(RecordFromJson(j).ok());
  j = RecordToJson(r);
  j.erase("v");
  EXPECT_FALSE(RecordFromJson(j).ok());
  j = RecordToJson(r);
  j["key"] = "";
  EXPECT_FALSE(RecordFromJson(j).ok());
  EXPECT_FALSE(RecordsFromJson(nlohmann::json::object()).ok());
  EXPECT_FALSE(RecordsFromJson(nlohmann::json::array({RecordToJson(r), 5})).ok());
  EXPECT_FALSE(ParseBody("{not json").ok());

  // "stable" travels for tombstones only, without this node's time.
  r.stable_ms = 1'700'000'000'000;
  j = RecordToJson(r);
  EXPECT_EQ(j.value("stable", false), true);
  back = RecordFromJson(j);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->stable_ms, 1);
  EXPECT_EQ(SyncTree::RecordHash(*back), SyncTree::RecordHash(r));
  j["stable"] = "yes";
  EXPECT_FALSE(RecordFromJson(j).ok());
  ObjectRecord live = Rec("live", 3);
  live.stable_ms = 5;
  EXPECT_FALSE(RecordToJson(live).contains("stable"));
}

TEST(Codec, MembersRoundTrip) {
  Member m = M("N1", 5, MemberState::kSuspect);
  m.public_addr = "1.2.3.4:10999";
  auto back = MemberFromJson(MemberToJson(m, "tag"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->id, "N1");
  EXPECT_EQ(back->incarnation, 5u);
  EXPECT_EQ(back->state, MemberState::kSuspect);
  EXPECT_EQ(back->public_addr, m.public_addr);
  nlohmann::json bad = MemberToJson(m, "tag");
  bad["state"] = "zombie";
  EXPECT_FALSE(MemberFromJson(bad).ok());
}

// A ping's member list had no bound: one message could fill the membership.
TEST(Codec, MemberListsAreBounded) {
  nlohmann::json members = nlohmann::json::array();
  nlohmann::json known = nlohmann::json::object();
  for (size_t i = 0; i < kMaxMembers; ++i) {
    const std::string id = "N" + std::to_string(i);
    members.push_back(MemberToJson(M(id, 1, MemberState::kAlive), "tag"));
    known[id] = "10.0.0.1:7001";
  }
  EXPECT_TRUE(MembersFromJson(members).ok());
  EXPECT_EQ(PingFromJson(nlohmann::json{{"known", known}}).known.size(), kMaxMembers);
  members.push_back(MemberToJson(M("one-more", 1, MemberState::kAlive), "tag"));
  known["one-more"] = "10.0.0.1:7001";
  EXPECT_FALSE(MembersFromJson(members).ok());
  EXPECT_TRUE(PingFromJson(nlohmann::json{{"members", members}}).members.empty());
  EXPECT_TRUE(PingFromJson(nlohmann::json{{"known", known}}).known.empty());
}

}  // namespace
}  // namespace objstore::cluster
