// The private API's JSON shapes (docs/CLUSTER.md): records and members.
// Decoding validates every field a node acts on; a bad message is refused as a
// whole (Invalid), never half applied.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "base/status.h"
#include "cluster/membership.h"
#include "journal/record.h"

namespace objstore::cluster {

nlohmann::json RecordToJson(const ObjectRecord& r);
Result<ObjectRecord> RecordFromJson(const nlohmann::json& j);
Result<std::vector<ObjectRecord>> RecordsFromJson(const nlohmann::json& array);

nlohmann::json MemberToJson(const Member& m, const std::string& tag);
Result<Member> MemberFromJson(const nlohmann::json& j);
Result<std::vector<Member>> MembersFromJson(const nlohmann::json& array);

// Parses a JSON body; Invalid with the parser's message when malformed.
Result<nlohmann::json> ParseBody(std::string_view body);

}  // namespace objstore::cluster
