// Parsing of the request headers the node interprets: Range (RFC 9110 §14),
// If-None-Match / If-Modified-Since (§13), and HTTP dates (IMF-fixdate).
// Pure functions of their input; fuzzed and unit-tested.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace objstore::http {

struct ByteRange {
  uint64_t first = 0;  // inclusive
  uint64_t last = 0;   // inclusive
  uint64_t length() const { return last - first + 1; }
};

enum class RangeKind {
  kFull,           // no Range, or one the server ignores (malformed, multiple ranges)
  kPartial,        // a satisfiable single range: answer 206
  kUnsatisfiable,  // answer 416 with Content-Range: bytes */size
};

struct RangeDecision {
  RangeKind kind = RangeKind::kFull;
  ByteRange range;
};

// Decides how to answer `Range: <header>` for a body of `size` bytes.
// Supported: `bytes=a-b`, `bytes=a-`, `bytes=-n`; b is clamped to size-1.
RangeDecision ParseRange(std::string_view header, uint64_t size);

// True when an If-None-Match value matches `etag` (quoted; weak comparison;
// `*` matches any).
bool IfNoneMatchMatches(std::string_view header, std::string_view etag);

// True when an If-Match value matches `etag` (quoted; strong comparison: a
// weak tag never matches; `*` matches any existing representation).
bool IfMatchMatches(std::string_view header, std::string_view etag);

// "Sun, 06 Nov 1994 08:49:37 GMT". Accepts also the obsolete RFC 850 and asctime
// forms when parsing, as RFC 9110 requires of recipients.
std::string FormatHttpDate(std::time_t t);
std::optional<std::time_t> ParseHttpDate(std::string_view text);

}  // namespace objstore::http
