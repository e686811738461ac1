#include "api/request_checks.h"

#include <fmt/format.h>

#include <cstdint>
#include <optional>

#include "base/percent_encoding.h"
#include "ids/ulid.h"

namespace objstore::api {

Result<std::string> ParseId(std::string_view raw) {
  // Every id a client got from GET /api/v1/id: already canonical, copied as
  // is (decoding and re-encoding it cost ~1,000 instructions per request).
  if (Ulid::IsCanonical(raw)) return std::string(raw);
  std::optional<Ulid> id;
  if (raw.find('%') == std::string_view::npos) {
    id = Ulid::Parse(raw);  // every id in practice: no copy to decode
  } else if (auto decoded = PercentDecode(raw)) {
    id = Ulid::Parse(*decoded);
  }
  if (!id) {
    return Status::Invalid(
        "bad id: expected a ULID (26 characters of Crockford base32); GET /api/v1/id makes one");
  }
  return id->ToString();
}

Result<int> ParseLevel(std::string_view raw) {
  while (!raw.empty() && raw.front() == ' ') raw.remove_prefix(1);
  while (!raw.empty() && raw.back() == ' ') raw.remove_suffix(1);
  if (raw.empty()) return 0;
  if (raw.size() == 1 && raw[0] >= '0' && raw[0] <= '2') return raw[0] - '0';
  return Status::Invalid("bad consistency level '" + std::string(raw) +
                         "': expected 0 (local), 1 (s3) or 2 (full)");
}

}  // namespace objstore::api
