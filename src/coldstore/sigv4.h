// sigv4: AWS Signature Version 4 for requests signed in the Authorization
// header, with the whole payload hashed up front (or declared UNSIGNED-PAYLOAD).
//
// What it guarantees
// - The canonical request follows S3's rules, which are the ones we need:
//     METHOD \n CanonicalUri \n CanonicalQuery \n CanonicalHeaders \n
//     SignedHeaders \n PayloadHash
//   The path is URI-encoded exactly once and never normalised ("//", "." and
//   ".." stay as they are), because S3 object keys are literal byte strings.
//   Other services encode the already-encoded path a second time and collapse
//   dot segments; this signer does not, so it is correct for them only when
//   the path holds nothing but unreserved characters and single slashes.
// - The caller gives the path, query names and query values RAW (unencoded).
//   The signer encodes them, and returns the encoded path and query string it
//   signed (Signature::canonical_uri / canonical_query): build the URL from
//   those, so what is sent is byte-for-byte what was signed. Taking raw input
//   makes the classic S3 bug (encoding a key twice) impossible to write here.
// - Every header the caller passes is signed. Names are lower-cased, values
//   trimmed with inner runs of whitespace collapsed to one space, repeated
//   names joined with ',' in the order given. The signer adds and signs
//   x-amz-date, x-amz-content-sha256 (service "s3" only) and
//   x-amz-security-token (when the credentials carry a session token); the
//   caller may pass any of them itself, but only with the same value.
// - Bad input (no host header, a header value with CR/LF, a malformed payload
//   hash, empty keys, ...) comes back as Status::Invalid, never as a wrong
//   signature. Nothing here throws.
//
// Checked against AWS's published vectors: the "aws-sig-v4-test-suite"
// (service "service") and the S3 API reference examples of "Signature
// Calculations for the Authorization Header: Transferring Payload in a Single
// Chunk" (see sigv4_test.cc for which vectors and why some are left out).
//
// Hashing uses OpenSSL 3 (EVP). An OpenSSL failure inside a digest or an HMAC
// can only mean an allocation failure or a broken OpenSSL installation, not bad
// data; it is treated like running out of memory: the process aborts with a
// message.
//
// Thread safety: the free functions are pure and may be called concurrently.
// A Sha256 object is owned by one thread at a time.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace objstore::sigv4 {

// (name, value) pairs; order matters only among equal names.
using Params = std::vector<std::pair<std::string, std::string>>;

// x-amz-content-sha256 value for a body that is not hashed (sent over TLS, or
// too large to read twice).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// Hex SHA-256 of the empty string: the payload hash of a request without body.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Lower-case hex HMAC-SHA256 of `data` under `key` (also signs cluster calls).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// SHA-256 of a body fed in pieces (a file streamed to S3).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void Update(std::string_view data);
  // Lower-case hex digest of everything passed to Update since construction or
  // the previous FinishHex; the object then starts over with no data.
  std::string FinishHex();

 private:
  evp_md_ctx_st* ctx_;
};

// Percent-encodes `s` as SigV4 requires: A-Z a-z 0-9 '-' '_' '.' '~' are kept,
// every other byte becomes %XX with upper-case hex (a space is %20, never '+';
// UTF-8 is encoded byte by byte). '/' is kept when `encode_slash` is false,
// which is how S3 object key paths are encoded; query names and values use
// true.
std::string UriEncode(std::string_view s, bool encode_slash);

// The canonical URI of a raw path: UriEncode(path, false), and "/" for an
// empty path. Use it as the path of the URL.
std::string CanonicalUri(std::string_view raw_path);

// The canonical query string of raw (name, value) pairs: each name and value
// UriEncode'd (slashes too), the pairs sorted by encoded name and then by
// encoded value, joined as "a=b&c=d". A parameter without a value, such as
// S3's "?uploads", is given as {"uploads", ""} and becomes "uploads=", which S3
// accepts in a URL as well. Empty for no parameters. Use it as the query of the
// URL, after a '?'.
std::string CanonicalQuery(const Params& params);

// Formats a time as x-amz-date wants it: "YYYYMMDDTHHMMSSZ", UTC.
// Invalid before 1970 or after year 9999.
Result<std::string> FormatAmzDate(std::time_t t);

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary (STS) credentials
};

// One request, as the signer needs to see it.
struct Request {
  std::string method = "GET";  // upper-case, as sent
  std::string path = "/";      // RAW path, e.g. "/bucket/photos/a b.jpg"; must start with '/'
  Params query;                // RAW names and values, any order
  Params headers;              // any case and order; must include "host"
  // Hex SHA-256 of the body (lower-case, 64 digits; kEmptySha256 for none),
  // or kUnsignedPayload.
  std::string payload_hash{kEmptySha256};
  std::time_t time = 0;  // when the request is signed; S3 allows 15 minutes of skew
  std::string region = "us-east-1";
  std::string service = "s3";
};

struct Signature {
  // Headers to add to the request, beyond those in Request::headers:
  // x-amz-date, x-amz-content-sha256 and x-amz-security-token when the signer
  // added them, then Authorization.
  Params headers;
  std::string canonical_uri;    // the URL's path
  std::string canonical_query;  // the URL's query, without '?'
  // The intermediate steps, for tests and for comparing with the
  // CanonicalRequest / StringToSign that S3 returns in a
  // SignatureDoesNotMatch error. They contain no secret.
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date;..."
  std::string hex;             // the signature, 64 lower-case hex digits
};

// Signs `request` with `credentials`. Invalid when the request or the
// credentials cannot be signed as given (see the design note).
Result<Signature> SignV4(const Request& request, const Credentials& credentials);

}  // namespace objstore::sigv4
