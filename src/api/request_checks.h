// The checks of the public API's request values (SPEC §2, docs/API.md): ids,
// consistency levels, user meta and names. Pure functions of their input, kept
// apart from the routes so fuzz/headers_fuzz.cc and the HTTP fuzz target can
// feed them arbitrary bytes; PublicApi calls them for every request.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"
#include "journal/record_checks.h"

namespace objstore::api {

// A ULID from a path segment or header (percent-encoded or not), in canonical
// (upper-case) form.
Result<std::string> ParseId(std::string_view raw);
// X-Meta-ConsistencyLevel: empty means 0; otherwise 0, 1 or 2 (spaces around).
Result<int> ParseLevel(std::string_view raw);
// The name and the user meta: journal/record_checks.h.

}  // namespace objstore::api
