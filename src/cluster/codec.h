// The private API's JSON shapes (docs/CLUSTER.md): records, members, and the
// bodies of ping, tree and leaves calls and of their answers.
// Decoding validates every field a node acts on; a bad message is refused as a
// whole (Invalid), never half applied. Pure functions: fuzzed by
// fuzz/private_api_fuzz.cc.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "cluster/membership.h"
#include "journal/record.h"

namespace objstore::cluster {

nlohmann::json RecordToJson(const ObjectRecord& r);
// An upper bound of RecordToJson(r).dump().size() (every byte of its strings
// escaped as \u00XX, its numbers at their widest), so batches of records can
// be cut by bytes without serialising them twice.
size_t RecordJsonBound(const ObjectRecord& r);
Result<ObjectRecord> RecordFromJson(const nlohmann::json& j);
Result<std::vector<ObjectRecord>> RecordsFromJson(const nlohmann::json& array);

// The most members a message may list (a ping's members or known ones). A
// ping carries the whole list every probe, so clusters are of tens of nodes;
// the bound keeps one message from filling the membership (kept for good, and
// saved in the journal) with made-up members.
constexpr size_t kMaxMembers = 1024;

nlohmann::json MemberToJson(const Member& m, const std::string& tag);
Result<Member> MemberFromJson(const nlohmann::json& j);
// Invalid for more than kMaxMembers members.
Result<std::vector<Member>> MembersFromJson(const nlohmann::json& array);

// A ping, or its answer: {"from": member, "members": [...], "known": {id: addr}}.
// `known` names the members the sender's journal remembers that its membership
// does not list (down across a restart), so that a node that joins later
// still waits for their word before purging tombstones. Each part is taken on
// its own: a bad or missing part is left empty, the others still count.
struct PingMessage {
  std::optional<Member> from;
  std::vector<Member> members;
  std::map<std::string, std::string> known;
};
PingMessage PingFromJson(const nlohmann::json& j);

// A tree request {"level": l, "parents": [p...], "hashes": "packed"}: the sender's
// hashes of the children of each parent at level l-1 (level 0: the root alone).
// `indices` are the tree nodes at `level` the hashes are of, in order.
// Invalid when a parent is out of range or named twice.
struct TreeQuery {
  int level = 0;
  std::vector<uint32_t> indices;
  std::vector<uint64_t> hashes;
};
Result<TreeQuery> TreeQueryFromJson(const nlohmann::json& j);
// Its answer {"differ": [i...]}: node indices at `level`, to the query that
// named `parents` (each below SyncTree::NodesAt(level - 1); ignored at level
// 0, where the root alone was asked about). Invalid when an index is not a
// node asked about or is listed twice.
Result<std::vector<uint32_t>> TreeAnswerFromJson(const nlohmann::json& j, int level,
                                                 const std::vector<uint32_t>& parents);

// A leaves request {"leaves": [leaf...], "hashes": "packed record hashes"}
// (PackHashes in sync_tree.h).
struct LeavesQuery {
  std::unordered_set<uint32_t> leaves;
  std::unordered_set<uint64_t> hashes;
};
Result<LeavesQuery> LeavesQueryFromJson(const nlohmann::json& j);
// Its answer {"records": [...], "want": "packed", "truncated": bool}.
struct LeavesAnswer {
  std::vector<ObjectRecord> records;
  std::vector<uint64_t> want;
  bool truncated = false;
};
Result<LeavesAnswer> LeavesAnswerFromJson(const nlohmann::json& j);

// Parses a JSON body; Invalid with the parser's message when malformed.
Result<nlohmann::json> ParseBody(std::string_view body);

}  // namespace objstore::cluster
