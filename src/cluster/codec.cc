#include "cluster/codec.h"

#include <algorithm>

#include "cluster/sync_tree.h"

namespace objstore::cluster {

using nlohmann::json;

namespace {

// Bounds of a member's id and private address as a message may carry them.
constexpr size_t kMaxMemberIdBytes = 64;
constexpr size_t kMaxMemberAddrBytes = 300;

// Reads field `name` of type T; false when missing or of another type.
template <typename T>
bool Field(const json& j, const char* name, T* out) {
  auto it = j.find(name);
  if (it == j.end()) return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  *out = it->get<T>();
  return true;
}

}  // namespace

json RecordToJson(const ObjectRecord& r) {
  json j{{"key", r.key},
              {"name", r.name},
              {"size", r.size},
              {"etag", r.etag},
              {"ts", r.timestamp_ns},
              {"v", r.version.packed},
              {"vn", r.version_node},
              {"level", r.consistency},
              {"um", r.user_meta},
              {"del", r.deleted},
              {"cold", r.cold == ColdState::kStored ? "stored" : "none"}};
  if (r.deleted && r.stable_ms != 0) j["stable"] = true;
  return j;
}

size_t RecordJsonBound(const ObjectRecord& r) {
  constexpr size_t kFixed = 256;  // field names, punctuation, numbers, flags
  return kFixed + 6 * (r.key.size() + r.name.size() + r.etag.size() + r.version_node.size() +
                       r.user_meta.size());
}

Result<ObjectRecord> RecordFromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("a record must be a JSON object");
  ObjectRecord r;
  std::string cold;
  if (!Field(j, "key", &r.key) || !Field(j, "name", &r.name) || !Field(j, "size", &r.size) ||
      !Field(j, "etag", &r.etag) || !Field(j, "ts", &r.timestamp_ns) ||
      !Field(j, "v", &r.version.packed) || !Field(j, "vn", &r.version_node) ||
      !Field(j, "level", &r.consistency) || !Field(j, "um", &r.user_meta) ||
      !Field(j, "del", &r.deleted) || !Field(j, "cold", &cold)) {
    return Status::Invalid("a record lacks a field or has one of the wrong type");
  }
  if (r.key.empty() || r.key.size() > 1024) return Status::Invalid("bad record key");
  if (r.consistency < 0 || r.consistency > 2) return Status::Invalid("bad record level");
  if (r.version.packed == 0) return Status::Invalid("record without a version");
  r.cold = cold == "stored" ? ColdState::kStored : ColdState::kNone;
  if (auto it = j.find("stable"); it != j.end()) {
    if (!it->is_boolean()) return Status::Invalid("record field stable must be a boolean");
    // The time is the receiver's to set (Cluster::ApplyRecords); 1 marks it.
    if (r.deleted && it->get<bool>()) r.stable_ms = 1;
  }
  return r;
}

Result<std::vector<ObjectRecord>> RecordsFromJson(const json& array) {
  if (!array.is_array()) return Status::Invalid("records must be a JSON array");
  std::vector<ObjectRecord> out;
  out.reserve(array.size());
  for (const json& j : array) {
    auto r = RecordFromJson(j);
    if (!r.ok()) return r.status();
    out.push_back(std::move(r).value());
  }
  return out;
}

json MemberToJson(const Member& m, const std::string& tag) {
  return json{{"id", m.id},         {"tag", tag},
              {"addr", m.addr},     {"public", m.public_addr},
              {"inc", m.incarnation}, {"state", MemberStateName(m.state)}};
}

Result<Member> MemberFromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("a member must be a JSON object");
  Member m;
  std::string state;
  if (!Field(j, "id", &m.id) || !Field(j, "addr", &m.addr) || !Field(j, "public", &m.public_addr) ||
      !Field(j, "inc", &m.incarnation) || !Field(j, "state", &state)) {
    return Status::Invalid("a member lacks a field or has one of the wrong type");
  }
  auto parsed = ParseMemberState(state);
  if (!parsed || m.id.empty() || m.id.size() > kMaxMemberIdBytes ||
      m.addr.size() > kMaxMemberAddrBytes) {
    return Status::Invalid("bad member entry");
  }
  m.state = *parsed;
  return m;
}

Result<std::vector<Member>> MembersFromJson(const json& array) {
  if (!array.is_array()) return Status::Invalid("members must be a JSON array");
  if (array.size() > kMaxMembers) return Status::Invalid("more members than a cluster may have");
  std::vector<Member> out;
  for (const json& j : array) {
    auto m = MemberFromJson(j);
    if (!m.ok()) return m.status();
    out.push_back(std::move(m).value());
  }
  return out;
}

PingMessage PingFromJson(const json& j) {
  PingMessage ping;
  if (!j.is_object()) return ping;
  if (auto it = j.find("from"); it != j.end()) {
    auto from = MemberFromJson(*it);
    if (from.ok()) ping.from = std::move(from).value();
  }
  if (auto it = j.find("members"); it != j.end()) {
    auto members = MembersFromJson(*it);
    if (members.ok()) ping.members = std::move(members).value();
  }
  if (auto it = j.find("known"); it != j.end() && it->is_object() && it->size() <= kMaxMembers) {
    std::map<std::string, std::string> known;
    for (const auto& [id, addr] : it->items()) {
      if (id.empty() || id.size() > kMaxMemberIdBytes || !addr.is_string() ||
          addr.get_ref<const std::string&>().size() > kMaxMemberAddrBytes) {
        known.clear();
        break;
      }
      known.emplace(id, addr.get<std::string>());
    }
    ping.known = std::move(known);
  }
  return ping;
}

namespace {

// A list of hashes as PackHashes writes it; false when anything else.
bool HashesFromJson(const json& packed, std::vector<uint64_t>* out) {
  return packed.is_string() && UnpackHashes(packed.get_ref<const std::string&>(), out);
}

}  // namespace

Result<TreeQuery> TreeQueryFromJson(const json& j) {
  auto level = j.find("level");
  auto parents = j.find("parents");
  auto hashes = j.find("hashes");
  if (level == j.end() || !level->is_number_integer() || parents == j.end() ||
      !parents->is_array() || hashes == j.end()) {
    return Status::Invalid(R"(expected {"level": l, "parents": [...], "hashes": "<packed>"})");
  }
  TreeQuery q;
  const int64_t l = level->get<int64_t>();
  if (l < 0 || l > SyncTree::kLeafLevel) return Status::Invalid("bad tree level");
  q.level = static_cast<int>(l);
  if (q.level == 0) {
    q.indices.push_back(0);
  } else {
    // Each parent costs 16 indices and 16 hashes: a 30 MiB query naming
    // parent 0 over and over drove a node to 1.37 GB before it was refused.
    // So a parent is named once at most, and no more parents than its level has.
    const uint32_t nodes_above = SyncTree::NodesAt(q.level - 1);
    if (parents->size() > nodes_above) return Status::Invalid("more parents than tree nodes");
    std::vector<bool> named(nodes_above);
    for (const json& p : *parents) {
      if (!p.is_number_unsigned() || p.get<uint64_t>() >= nodes_above) {
        return Status::Invalid("bad parent index");
      }
      const uint32_t parent = p.get<uint32_t>();
      if (named[parent]) return Status::Invalid("a parent named twice");
      named[parent] = true;
      const uint32_t first = parent * SyncTree::kFanout;
      for (uint32_t c = first; c < first + SyncTree::kFanout; ++c) q.indices.push_back(c);
    }
  }
  if (!HashesFromJson(*hashes, &q.hashes)) return Status::Invalid("bad tree hash");
  if (q.hashes.size() != q.indices.size()) {
    return Status::Invalid("one hash per tree node expected");
  }
  return q;
}

Result<std::vector<uint32_t>> TreeAnswerFromJson(const json& j, int level,
                                                 const std::vector<uint32_t>& parents) {
  auto differ = j.find("differ");
  if (differ == j.end() || !differ->is_array()) return Status::Invalid("expected {\"differ\": [...]}");
  // The nodes asked about (the root, or the children of `parents`), each
  // taken once: the caller descends into every index it gets, with 16 hashes
  // each, and an answer may be up to 512 MiB.
  std::vector<bool> asked(SyncTree::NodesAt(level), level == 0);
  if (level > 0) {
    for (uint32_t p : parents) {
      std::fill_n(asked.begin() + p * SyncTree::kFanout, SyncTree::kFanout, true);
    }
  }
  std::vector<uint32_t> out;
  for (const json& i : *differ) {
    if (!i.is_number_unsigned() || i.get<uint64_t>() >= SyncTree::NodesAt(level)) {
      return Status::Invalid("bad tree node index");
    }
    const uint32_t index = i.get<uint32_t>();
    if (!asked[index]) return Status::Invalid("a tree node not asked about, or listed twice");
    asked[index] = false;
    out.push_back(index);
  }
  return out;
}

Result<LeavesQuery> LeavesQueryFromJson(const json& j) {
  auto leaves = j.find("leaves");
  auto hashes = j.find("hashes");
  if (leaves == j.end() || !leaves->is_array() || hashes == j.end()) {
    return Status::Invalid(R"(expected {"leaves": [...], "hashes": "<packed>"})");
  }
  LeavesQuery q;
  for (const json& l : *leaves) {
    if (!l.is_number_unsigned() || l.get<uint64_t>() >= SyncTree::kLeaves) {
      return Status::Invalid("bad leaf index");
    }
    q.leaves.insert(l.get<uint32_t>());
  }
  std::vector<uint64_t> list;
  if (!HashesFromJson(*hashes, &list)) return Status::Invalid("bad hash");
  q.hashes.insert(list.begin(), list.end());
  return q;
}

Result<LeavesAnswer> LeavesAnswerFromJson(const json& j) {
  auto records = j.find("records");
  auto want = j.find("want");
  auto truncated = j.find("truncated");
  if (records == j.end() || want == j.end()) {
    return Status::Invalid(R"(expected {"records": [...], "want": "<packed>"})");
  }
  LeavesAnswer a;
  auto decoded = RecordsFromJson(*records);
  if (!decoded.ok()) return decoded.status();
  a.records = std::move(decoded).value();
  if (!HashesFromJson(*want, &a.want)) return Status::Invalid("bad wanted hash");
  if (truncated != j.end()) {
    if (!truncated->is_boolean()) return Status::Invalid("truncated must be a boolean");
    a.truncated = truncated->get<bool>();
  }
  return a;
}

Result<json> ParseBody(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("the body is not valid JSON");
  return j;
}

}  // namespace objstore::cluster
