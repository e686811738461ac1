#include "coldstore/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace objstore::sigv4 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kHexDigits = "0123456789abcdef";

// See the header: an OpenSSL failure here is an environment failure, not a
// data error, and is handled like std::bad_alloc would be.
[[noreturn]] void CryptoFailure(const char* what) {
  char detail[256];
  ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
  std::fprintf(stderr, "objstore: OpenSSL %s failed: %s\n", what, detail);
  std::abort();
}

std::string Hex(const unsigned char* p, size_t n) {
  std::string out(2 * n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHexDigits[p[i] >> 4];
    out[2 * i + 1] = kHexDigits[p[i] & 0xf];
  }
  return out;
}

using Key = std::array<unsigned char, 32>;  // an HMAC-SHA256 output

// EVP_sha256() makes OpenSSL 3 look the algorithm up again on every digest;
// fetched once, hashing a short string costs half as much (the public API
// hashes a bearer token per request).
const EVP_MD* Sha256Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

// HMAC (RFC 2104) over the SHA-256 fetched once. OpenSSL 3's one-shot HMAC()
// fetches the MAC and the digest by name on every call: the five HMACs of a
// signature took ~0.1 ms, on the critical path of every cold miss.
Key HmacSha256(const void* key, size_t key_len, std::string_view data) {
  constexpr size_t kBlock = 64;  // SHA-256's block size
  std::array<unsigned char, kBlock> k0{}, pad;
  Key inner, out;
  unsigned int len = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (ctx == nullptr) CryptoFailure("HMAC-SHA256");
  if (key_len > kBlock) {
    if (EVP_Digest(key, key_len, k0.data(), &len, Sha256Md(), nullptr) != 1) {
      CryptoFailure("HMAC-SHA256 key");
    }
  } else if (key_len > 0) {
    std::memcpy(k0.data(), key, key_len);
  }
  auto hash = [&](unsigned char mask, const void* msg, size_t msg_len, Key& result) {
    for (size_t i = 0; i < kBlock; ++i) pad[i] = k0[i] ^ mask;
    if (EVP_DigestInit_ex(ctx.get(), Sha256Md(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), pad.data(), pad.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), msg, msg_len) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), result.data(), &len) != 1 || len != result.size()) {
      CryptoFailure("HMAC-SHA256");
    }
  };
  hash(0x36, data.data(), data.size(), inner);
  hash(0x5c, inner.data(), inner.size(), out);
  OPENSSL_cleanse(k0.data(), k0.size());
  OPENSSL_cleanse(pad.data(), pad.size());
  OPENSSL_cleanse(inner.data(), inner.size());
  return out;
}

// The signing key: a chain of HMACs over the scope, so that the secret itself
// never signs a request. Intermediate keys are wiped once used.
Key SigningKey(std::string_view secret, std::string_view date, std::string_view region,
               std::string_view service) {
  std::string k_secret = "AWS4";
  k_secret.append(secret);
  Key k_date = HmacSha256(k_secret.data(), k_secret.size(), date);
  OPENSSL_cleanse(k_secret.data(), k_secret.size());
  Key k_region = HmacSha256(k_date.data(), k_date.size(), region);
  Key k_service = HmacSha256(k_region.data(), k_region.size(), service);
  Key k_signing = HmacSha256(k_service.data(), k_service.size(), "aws4_request");
  OPENSSL_cleanse(k_date.data(), k_date.size());
  OPENSSL_cleanse(k_region.data(), k_region.size());
  OPENSSL_cleanse(k_service.data(), k_service.size());
  return k_signing;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// RFC 9110 token characters, which is what a header name (and a method) is.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return IsUnreserved(c) || std::string_view("!#$%&'*+^`|").find(c) != std::string_view::npos;
  });
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

// SigV4's Trimall: no whitespace at either end, each inner run of spaces and
// tabs becomes one space.
std::string TrimAll(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool IsPayloadHash(std::string_view h) {
  if (h == kUnsignedPayload) return true;
  return h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
           return kHexDigits.find(c) != std::string_view::npos;
         });
}

// Credentials go verbatim into a header: no whitespace or control bytes, and
// the access key must not contain the Credential field's separators either.
bool IsHeaderSafe(std::string_view s, std::string_view also_forbidden) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](unsigned char c) {
    return c > 0x20 && c < 0x7f && also_forbidden.find(c) == std::string_view::npos;
  });
}

bool IsScopePart(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return IsUnreserved(c); });
}

struct Header {
  std::string name;   // lower-case
  std::string value;  // trimmed
};

// Adds a header the signer owns (x-amz-date, ...) unless the caller gave it;
// a caller's copy must agree, or the request would carry two different values.
Status AddOwnHeader(std::vector<Header>& headers, Params& added, std::string_view name,
                    std::string_view value) {
  bool present = false;
  for (const Header& h : headers) {
    if (h.name != name) continue;
    if (h.value != value) {
      return Status::Invalid("sigv4: header " + std::string(name) + " is '" + h.value +
                             "' but the signer needs '" + std::string(value) + "'");
    }
    present = true;
  }
  if (!present) {
    headers.push_back({std::string(name), std::string(value)});
    added.emplace_back(std::string(name), std::string(value));
  }
  return Status::Ok();
}

}  // namespace

// ------------------------------------------------------------------ hashing

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  Key mac = HmacSha256(key.data(), key.size(), data);
  return Hex(mac.data(), mac.size());
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, Sha256Md(), nullptr) != 1) {
    CryptoFailure("SHA-256");
  }
  return Hex(md, len);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) != 1) {
    CryptoFailure("SHA-256 init");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

Sha256::Sha256(Sha256&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Sha256::Update(std::string_view data) {
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) CryptoFailure("SHA-256 update");
}

std::string Sha256::FinishHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, md, &len) != 1 ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    CryptoFailure("SHA-256 final");
  }
  return Hex(md, len);
}

// ------------------------------------------------------------------ encoding

std::string UriEncode(std::string_view s, bool encode_slash) {
  static constexpr std::string_view kUpperHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kUpperHex[c >> 4]);
      out.push_back(kUpperHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  return UriEncode(raw_path, /*encode_slash=*/false);
}

std::string CanonicalQuery(const Params& params) {
  // Sorting happens after encoding: the order is that of the encoded bytes.
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const auto& [name, value] : params) {
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

Result<std::string> FormatAmzDate(std::time_t t) {
  std::tm tm{};
  if (t < 0 || gmtime_r(&t, &tm) == nullptr || tm.tm_year > 9999 - 1900) {
    return Status::Invalid("sigv4: time " + std::to_string(t) + " is outside years 1970-9999");
  }
  char buf[20];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf);
}

// ------------------------------------------------------------------ signing

Result<Signature> SignV4(const Request& request, const Credentials& credentials) {
  if (!IsToken(request.method)) {
    return Status::Invalid("sigv4: bad method '" + request.method + "'");
  }
  if (!request.path.empty() && request.path.front() != '/') {
    return Status::Invalid("sigv4: path '" + request.path + "' does not start with '/'");
  }
  if (!IsPayloadHash(request.payload_hash)) {
    return Status::Invalid("sigv4: payload hash '" + request.payload_hash +
                           "' is neither 64 lower-case hex digits nor UNSIGNED-PAYLOAD");
  }
  if (!IsScopePart(request.region) || !IsScopePart(request.service)) {
    return Status::Invalid("sigv4: bad region '" + request.region + "' or service '" +
                           request.service + "'");
  }
  if (!IsHeaderSafe(credentials.access_key, "/,;=") || credentials.secret_key.empty() ||
      (!credentials.session_token.empty() && !IsHeaderSafe(credentials.session_token, ""))) {
    return Status::Invalid("sigv4: empty or malformed access key, secret key or session token");
  }
  Result<std::string> amz_date = FormatAmzDate(request.time);
  if (!amz_date.ok()) return amz_date.status();
  const std::string date = amz_date->substr(0, 8);

  std::vector<Header> headers;
  headers.reserve(request.headers.size() + 3);
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name)) return Status::Invalid("sigv4: bad header name '" + name + "'");
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return Status::Invalid("sigv4: header " + name + " has a CR, LF or NUL in its value");
    }
    headers.push_back({LowerCase(name), TrimAll(value)});
    if (headers.back().name == "authorization") {
      return Status::Invalid("sigv4: the request already has an Authorization header");
    }
  }
  Signature sig;
  Status s = AddOwnHeader(headers, sig.headers, "x-amz-date", *amz_date);
  if (s.ok() && request.service == "s3") {
    s = AddOwnHeader(headers, sig.headers, "x-amz-content-sha256", request.payload_hash);
  }
  if (s.ok() && !credentials.session_token.empty()) {
    s = AddOwnHeader(headers, sig.headers, "x-amz-security-token", credentials.session_token);
  }
  if (!s.ok()) return s;
  // Stable: values of a repeated name keep the caller's order.
  std::stable_sort(headers.begin(), headers.end(),
                   [](const Header& a, const Header& b) { return a.name < b.name; });
  bool has_host = false;
  std::string canonical_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    const bool repeat = i > 0 && headers[i].name == headers[i - 1].name;
    if (repeat) {
      canonical_headers.back() = ',';  // replaces the previous value's '\n'
    } else {
      if (!sig.signed_headers.empty()) sig.signed_headers.push_back(';');
      sig.signed_headers += headers[i].name;
      canonical_headers += headers[i].name;
      canonical_headers.push_back(':');
    }
    canonical_headers += headers[i].value;
    canonical_headers.push_back('\n');
    has_host = has_host || (headers[i].name == "host" && !headers[i].value.empty());
  }
  if (!has_host) return Status::Invalid("sigv4: the request has no host header");

  sig.canonical_uri = CanonicalUri(request.path);
  sig.canonical_query = CanonicalQuery(request.query);
  sig.canonical_request = request.method + '\n' + sig.canonical_uri + '\n' + sig.canonical_query +
                          '\n' + canonical_headers + '\n' + sig.signed_headers + '\n' +
                          request.payload_hash;

  const std::string scope = date + '/' + request.region + '/' + request.service + "/aws4_request";
  sig.string_to_sign = std::string(kAlgorithm) + '\n' + *amz_date + '\n' + scope + '\n' +
                       Sha256Hex(sig.canonical_request);

  Key key = SigningKey(credentials.secret_key, date, request.region, request.service);
  Key mac = HmacSha256(key.data(), key.size(), sig.string_to_sign);
  OPENSSL_cleanse(key.data(), key.size());
  sig.hex = Hex(mac.data(), mac.size());

  sig.headers.emplace_back("Authorization", std::string(kAlgorithm) +
                                                " Credential=" + credentials.access_key + '/' +
                                                scope + ", SignedHeaders=" + sig.signed_headers +
                                                ", Signature=" + sig.hex);
  return sig;
}

}  // namespace objstore::sigv4
