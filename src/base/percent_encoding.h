// Percent-decoding (RFC 3986 §2.1) of URL path segments and of the
// percent-encoded metadata values the S3 client writes. Encoding lives with
// its one strict user, the SigV4 signer (coldstore/sigv4.h: UriEncode).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace objstore {

// Decodes every %XX escape; nullopt when an escape is malformed ("%4", "%zz").
std::optional<std::string> PercentDecode(std::string_view s);

}  // namespace objstore
