// The checks of an object record's free-form fields, its name and its user
// metadata (SPEC §2, docs/API.md), wherever they come from: a PUT's headers
// (api/request_checks.h), or an object restored from a bucket that another
// tool wrote, whose metadata is just as untrusted. Both end up in response
// headers and in JSON, so they must be UTF-8 without control characters.
// Pure functions of their input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace objstore {

inline constexpr size_t kMaxNameBytes = 1024;

// X-Meta-UserMeta: a JSON object of string values, returned compact (keys keep
// case); empty means {}.
Result<std::string> ParseUserMeta(std::string_view raw);

// JSON text with DEL (0x7F, legal in JSON, not in a header value: RFC 9110
// §5.5) escaped as \u007f; in JSON text DEL can only stand inside a string.
std::string EscapeDel(std::string_view json_text);
// X-Meta-Name: at most kMaxNameBytes of UTF-8 without control characters.
Status CheckName(std::string_view name);
// An ETag as RFC 9110 spells one: a quoted string of visible ASCII characters
// other than '"', optionally behind "W/".
bool IsEntityTag(std::string_view etag);

}  // namespace objstore
