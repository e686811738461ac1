// Fuzz target: a private API body (the whole input) through every decoder a
// node applies to what a peer sends (cluster/codec.h): requests of ping, tree,
// leaves and records calls, and the answers to them. A decoded record or member
// must encode and decode back to itself (what a node accepts it can forward).
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <set>
#include <string_view>
#include <vector>

#include "cluster/codec.h"
#include "cluster/sync_tree.h"

using namespace objstore;
using namespace objstore::cluster;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckRoundTrip(const ObjectRecord& r) {
  auto back = RecordFromJson(nlohmann::json::parse(RecordToJson(r).dump()));
  Check(back.ok() && back->key == r.key && back->name == r.name && back->size == r.size &&
        back->version == r.version && back->deleted == r.deleted && back->cold == r.cold &&
        back->user_meta == r.user_meta);
}

void CheckRoundTrip(const Member& m) {
  auto back = MemberFromJson(nlohmann::json::parse(MemberToJson(m, "tag").dump()));
  Check(back.ok() && back->id == m.id && back->addr == m.addr && back->state == m.state &&
        back->incarnation == m.incarnation);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto body = ParseBody(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body.ok()) return 0;
  const nlohmann::json& j = *body;

  if (auto records = RecordsFromJson(j.contains("records") ? j["records"] : j); records.ok()) {
    for (const ObjectRecord& r : *records) CheckRoundTrip(r);
  }
  if (auto members = MembersFromJson(j); members.ok()) {
    Check(members->size() <= kMaxMembers);
    for (const Member& m : *members) CheckRoundTrip(m);
  }
  PingMessage ping = PingFromJson(j);
  if (ping.from) CheckRoundTrip(*ping.from);
  for (const Member& m : ping.members) CheckRoundTrip(m);
  for (const auto& [id, addr] : ping.known)
    Check(!id.empty() && id.size() <= 64 && addr.size() <= 300);

  if (auto tree = TreeQueryFromJson(j); tree.ok()) {
    Check(tree->indices.size() == tree->hashes.size());
    Check(tree->indices.size() <= SyncTree::NodesAt(tree->level));
    for (uint32_t i : tree->indices) Check(i < SyncTree::NodesAt(tree->level));
  }
  // Answers to the widest question (every node of the level above) and to
  // the narrowest (its first node): each index once, a child of one asked.
  for (int level = 0; level <= SyncTree::kLeafLevel; ++level) {
    std::vector<uint32_t> every(level == 0 ? 1 : SyncTree::NodesAt(level - 1));
    std::iota(every.begin(), every.end(), 0u);
    for (const std::vector<uint32_t>& parents : {every, std::vector<uint32_t>{0}}) {
      if (auto differ = TreeAnswerFromJson(j, level, parents); differ.ok()) {
        const std::set<uint32_t> unique(differ->begin(), differ->end());
        Check(unique.size() == differ->size());
        const uint32_t bound = level == 0 ? 1 : parents.size() * SyncTree::kFanout;
        Check(unique.empty() || *unique.rbegin() < bound);
      }
    }
  }
  if (auto leaves = LeavesQueryFromJson(j); leaves.ok()) {
    for (uint32_t l : leaves->leaves) Check(l < SyncTree::kLeaves);
  }
  if (auto answer = LeavesAnswerFromJson(j); answer.ok()) {
    for (const ObjectRecord& r : answer->records) CheckRoundTrip(r);
  }
  return 0;
}
