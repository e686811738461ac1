#include "api/request_checks.h"

#include <gtest/gtest.h>

#include <numeric>

#include "cluster/codec.h"
#include "cluster/sync_tree.h"

namespace objstore::api {
namespace {

TEST(RequestChecks, IdsAreCanonical) {
  EXPECT_EQ(*ParseId("01m898qmgxgv8mjzmg8bsy4gcm"), "01M898QMGXGV8MJZMG8BSY4GCM");
  EXPECT_EQ(*ParseId("%301M898QMGXGV8MJZMG8BSY4GCM"), "01M898QMGXGV8MJZMG8BSY4GCM");
  EXPECT_FALSE(ParseId("01M898QMGXGV8MJZMG8BSY4GC").ok());
  EXPECT_FALSE(ParseId("%zz1M898QMGXGV8MJZMG8BSY4GCM").ok());
}

TEST(RequestChecks, LevelsAndUserMeta) {
  EXPECT_EQ(*ParseLevel(""), 0);
  EXPECT_EQ(*ParseLevel(" 2 "), 2);
  EXPECT_FALSE(ParseLevel("3").ok());
}

}  // namespace
}  // namespace objstore::api

namespace objstore {
namespace {

TEST(RecordChecks, UserMeta) {
  EXPECT_EQ(*ParseUserMeta(""), "{}");
  EXPECT_EQ(*ParseUserMeta(R"({ "K" : "v" })"), R"({"K":"v"})");
  EXPECT_FALSE(ParseUserMeta(R"({"k": 1})").ok());
  // DEL is legal in JSON text but not in a header value: it comes out escaped.
  EXPECT_EQ(*ParseUserMeta("{\"k\x7f\": \"a\x7f\"}"), R"({"k\u007f":"a\u007f"})");
  EXPECT_FALSE(ParseUserMeta("[]").ok());
}

// Found while writing fuzz/headers_fuzz.cc (its name check): a name with
// bytes that are not UTF-8 was accepted, and every JSON the record went into (answers, cold store
// metadata, replication) then threw: the PUT and later reads answered 500.
TEST(RecordChecks, NamesMustBeUtf8) {
  EXPECT_TRUE(CheckName("h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80.txt").ok());
  for (std::string_view bad : {"a\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                               "\xe2\x98", "a\x01"}) {
    EXPECT_FALSE(CheckName(bad).ok()) << bad;
  }
  EXPECT_FALSE(CheckName(std::string(kMaxNameBytes + 1, 'n')).ok());
  EXPECT_TRUE(CheckName(std::string(kMaxNameBytes, 'n')).ok());
}

// An etag restored from a bucket another tool wrote goes into the ETag header.
TEST(RecordChecks, EntityTags) {
  for (std::string_view good : {R"("5c7401c0ec22eeeeeaf06c6480b2cd11")", R"("")", R"(W/"x")"}) {
    EXPECT_TRUE(IsEntityTag(good)) << good;
  }
  for (std::string_view bad : {"", "x", R"(")", R"("a"b")", "\"a\r\nSet-Cookie: s=1\"", "\"a b\"",
                               "\"\xc3\xa9\"", R"(W/x)"}) {
    EXPECT_FALSE(IsEntityTag(bad)) << bad;
  }
}

}  // namespace
}  // namespace objstore

namespace objstore::cluster {
namespace {

using nlohmann::json;

TEST(Codec, TreeQueries) {
  auto root = TreeQueryFromJson(json::parse(R"({"level":0,"parents":[],"hashes":"AAAAAAAAAP8="})"));
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->indices, std::vector<uint32_t>{0});
  EXPECT_EQ(root->hashes, std::vector<uint64_t>{0xff});
  EXPECT_FALSE(TreeQueryFromJson(json::parse(R"({"level":5,"parents":[],"hashes":""})")).ok());
  EXPECT_FALSE(TreeQueryFromJson(json::parse(R"({"level":1,"parents":[1],"hashes":""})")).ok());
  EXPECT_FALSE(TreeQueryFromJson(json::parse(R"({"level":0,"parents":[],"hashes":""})")).ok());
  EXPECT_FALSE(TreeQueryFromJson(json::parse(R"([1])")).ok());
  EXPECT_EQ(*TreeAnswerFromJson(json::parse(R"({"differ":[3,15]})"), 1, {0}),
            (std::vector<uint32_t>{3, 15}));
  EXPECT_FALSE(TreeAnswerFromJson(json::parse(R"({"differ":[16]})"), 1, {0}).ok());
  EXPECT_FALSE(TreeAnswerFromJson(json::parse(R"({"differ":3})"), 1, {0}).ok());
}

// Packed hashes of `n` tree nodes, all 0.
std::string ZeroHashes(size_t n) { return PackHashes(std::vector<uint64_t>(n)); }

// A 30 MiB query naming parent 0 over and over drove a node to 1.37 GB (16
// indices and hashes per name) before it was refused.
TEST(Codec, TreeQueriesNameEachParentOnce) {
  auto q =
      TreeQueryFromJson(json{{"level", 2}, {"parents", {3u, 15u}}, {"hashes", ZeroHashes(32)}});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->indices.front(), 48u);
  EXPECT_EQ(q->indices.back(), 255u);
  EXPECT_FALSE(
      TreeQueryFromJson(json{{"level", 2}, {"parents", {3u, 3u}}, {"hashes", ZeroHashes(32)}})
          .ok());
  std::vector<uint32_t> seventeen(17);
  std::iota(seventeen.begin(), seventeen.end() - 1, 0u);  // 0..15, then 0 again
  EXPECT_FALSE(TreeQueryFromJson(json{{"level", 2},
                                      {"parents", seventeen},
                                      {"hashes", ZeroHashes(17 * SyncTree::kFanout)}})
                   .ok());
}

// An answer listing a node twice, or one not asked about, made the caller
// build 16 hashes for each (up to a 512 MiB answer: bad_alloc in a detached
// coroutine).
TEST(Codec, TreeAnswersListNodesAskedAboutOnce) {
  EXPECT_EQ(*TreeAnswerFromJson(json::parse(R"({"differ":[0]})"), 0, {0}),
            std::vector<uint32_t>{0});
  EXPECT_FALSE(TreeAnswerFromJson(json::parse(R"({"differ":[0,0]})"), 0, {0}).ok());
  EXPECT_EQ(*TreeAnswerFromJson(json::parse(R"({"differ":[31,16,40]})"), 2, {1, 2}),
            (std::vector<uint32_t>{31, 16, 40}));
  EXPECT_FALSE(TreeAnswerFromJson(json::parse(R"({"differ":[15]})"), 2, {1, 2}).ok());
  EXPECT_FALSE(TreeAnswerFromJson(json::parse(R"({"differ":[16,17,16]})"), 2, {1, 2}).ok());
  json many = {{"differ", std::vector<uint32_t>(1'000'000, 7)}};
  EXPECT_FALSE(TreeAnswerFromJson(many, SyncTree::kLeafLevel, {0}).ok());
}

// Found while writing fuzz/private_api_fuzz.cc: a leaves answer whose "truncated" was not
// a boolean threw out of the anti-entropy coroutine (json::value).
TEST(Codec, LeavesAnswersRefuseWrongTypes) {
  EXPECT_FALSE(LeavesAnswerFromJson(json::parse(R"({"records":[],"want":"","truncated":"yes"})")).ok());
  EXPECT_FALSE(LeavesAnswerFromJson(json::parse(R"({"records":[],"want":[1]})")).ok());
  EXPECT_FALSE(LeavesAnswerFromJson(json::parse(R"({"records":{},"want":""})")).ok());
  auto ok = LeavesAnswerFromJson(json::parse(R"({"records":[],"want":"AAAAAAAAAP8="})"));
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(ok->truncated);
  EXPECT_EQ(ok->want, std::vector<uint64_t>{0xff});
  EXPECT_FALSE(LeavesQueryFromJson(json::parse(R"({"leaves":[65536],"hashes":""})")).ok());
}

TEST(Codec, PingPartsCountOnTheirOwn) {
  auto ping = PingFromJson(json::parse(
      R"({"from":{"id":""},"members":[{"id":"b","addr":"x:1","public":"","inc":1,"state":"alive"}]})"));
  EXPECT_FALSE(ping.from);
  ASSERT_EQ(ping.members.size(), 1u);
  EXPECT_EQ(ping.members[0].id, "b");
  EXPECT_TRUE(PingFromJson(json::parse("7")).members.empty());
}

TEST(Codec, PingKnownMembersAreTakenWholeOrNotAtAll) {
  auto ping = PingFromJson(json::parse(R"({"known":{"c":"10.0.0.3:7001","d":""}})"));
  EXPECT_EQ(ping.known, (std::map<std::string, std::string>{{"c", "10.0.0.3:7001"}, {"d", ""}}));
  EXPECT_TRUE(PingFromJson(json::parse(R"({"known":{"c":7}})")).known.empty());
  EXPECT_TRUE(PingFromJson(json::parse(R"({"known":{"":"x:1"}})")).known.empty());
  EXPECT_TRUE(PingFromJson(json::parse(R"({"known":["c"]})")).known.empty());
  const std::string long_id(65, 'i');
  EXPECT_TRUE(PingFromJson(json{{"known", {{long_id, "x:1"}}}}).known.empty());
  EXPECT_TRUE(PingFromJson(json{{"known", {{"c", std::string(301, 'a')}}}}).known.empty());
}

}  // namespace
}  // namespace objstore::cluster
