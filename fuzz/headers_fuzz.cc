// Fuzz target: one header value (the whole input) through every parser of a
// value the node interprets, checking what each promises: an accepted id is
// canonical, user meta comes back as JSON that parses to itself (DEL
// escaped, as a header value needs it), a partial
// range lies inside the body, a parsed date formats and parses back, an
// accepted name serialises, a version prints and parses back.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "api/request_checks.h"
#include "base/percent_encoding.h"
#include "cluster/codec.h"
#include "http/range.h"
#include "ids/hlc.h"
#include "ids/ulid.h"

using namespace objstore;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);

  if (auto id = api::ParseId(value); id.ok()) {
    Check(id->size() == 26 && *api::ParseId(*id) == *id);
  }
  if (auto decoded = PercentDecode(value)) Check(decoded->size() <= value.size());
  if (auto ulid = Ulid::Parse(value)) Check(Ulid::Parse(ulid->ToString()) == ulid);
  (void)api::ParseLevel(value);

  if (auto meta = ParseUserMeta(value); meta.ok()) {
    Check(meta->find('\x7f') == std::string::npos);
    Check(EscapeDel(nlohmann::json::parse(*meta).dump()) == *meta);
  }
  if (CheckName(value).ok()) {
    ObjectRecord r;
    r.key = "01M898QMGXGV8MJZMG8BSY4GCM";
    r.name = value;
    r.version.packed = 1;
    auto back = cluster::RecordFromJson(nlohmann::json::parse(cluster::RecordToJson(r).dump()));
    Check(back.ok() && back->name == value);
  }

  for (uint64_t body : {uint64_t{0}, uint64_t{1}, uint64_t{4096}, UINT64_MAX}) {
    http::RangeDecision d = http::ParseRange(value, body);
    if (d.kind == http::RangeKind::kPartial) {
      Check(d.range.first <= d.range.last && d.range.last < body);
    }
  }
  (void)http::IfNoneMatchMatches(value, "\"0123456789abcdef\"");
  if (auto t = http::ParseHttpDate(value)) {
    Check(http::ParseHttpDate(http::FormatHttpDate(*t)) == t);
  }

  HlcTimestamp version;
  if (HlcTimestamp::Parse(value, &version)) {
    HlcTimestamp again;
    Check(HlcTimestamp::Parse(version.ToString(), &again) && again == version);
  }
  return 0;
}
