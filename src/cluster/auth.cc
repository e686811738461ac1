#include "cluster/auth.h"

#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "coldstore/sigv4.h"

namespace objstore::cluster {

namespace {

std::string HexNonce(RandomSource& random) {
  uint8_t bytes[16];
  random.Fill(bytes);
  static const char* kDigits = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

CallAuthenticator::CallAuthenticator(std::string secret, std::string tag, RandomSource& random,
                                     std::chrono::seconds window)
    : secret_(std::move(secret)), tag_(std::move(tag)), random_(random),
      window_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(window).count()) {}

std::string CallAuthenticator::RequestMac(const RequestFacts& f) const {
  std::string text;
  for (std::string_view part : {std::string_view(f.method), std::string_view(f.target),
                                std::string_view(f.tag), std::string_view(f.node),
                                std::string_view(f.time_ms), std::string_view(f.nonce)}) {
    text.append(part);
    text.push_back('\n');
  }
  text += sigv4::Sha256Hex(f.body);
  return sigv4::HmacSha256Hex(secret_, text);
}

SignedHeaders CallAuthenticator::SignRequest(std::string_view method, std::string_view target,
                                             std::string_view node, std::string_view body) {
  SignedHeaders h;
  h.time_ms = std::to_string(NowMillis());
  h.nonce = HexNonce(random_);
  if (enabled()) {
    RequestFacts f{std::string(method), std::string(target), tag_, std::string(node),
                   h.time_ms, h.nonce, "", body};
    h.signature = RequestMac(f);
  }
  return h;
}

CallAuthenticator::Verdict CallAuthenticator::VerifyRequest(const RequestFacts& f,
                                                            int64_t now_ms) {
  // With a secret, the signature comes first: a caller without it learns
  // nothing, not even the tag.
  if (enabled() && (f.signature.empty() || !ConstantTimeEquals(RequestMac(f), f.signature))) {
    return {401, "bad_signature", "the request is not signed with this cluster's secret"};
  }
  if (f.tag != tag_) {
    return {403, "tag_mismatch",
            "this node belongs to cluster tag '" + tag_ + "', not '" + f.tag + "'"};
  }
  if (!enabled()) return {};
  int64_t sent_ms = 0;
  auto [p, ec] = std::from_chars(f.time_ms.data(), f.time_ms.data() + f.time_ms.size(), sent_ms);
  if (ec != std::errc() || p != f.time_ms.data() + f.time_ms.size() ||
      sent_ms < now_ms - window_ms_ || sent_ms > now_ms + window_ms_) {
    return {401, "stale_request",
            "the request's time is more than " + std::to_string(window_ms_ / 1000) +
                " s from this node's clock"};
  }
  if (f.nonce.size() < 16 || !RememberNonce(f.nonce, sent_ms, now_ms)) {
    return {401, "replayed", "this request was already received"};
  }
  return {};
}

CallAuthenticator::Verdict CallAuthenticator::PrecheckRequest(const RequestFacts& f) const {
  constexpr size_t kMacHexDigits = 64;  // HMAC-SHA256
  const bool hex = std::all_of(f.signature.begin(), f.signature.end(),
                               [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (enabled() &&
      (f.signature.size() != kMacHexDigits || !hex || f.time_ms.empty() || f.nonce.size() < 16)) {
    return {401, "bad_signature", "the request is not signed with this cluster's secret"};
  }
  return {};
}

bool CallAuthenticator::RememberNonce(const std::string& nonce, int64_t sent_ms, int64_t now_ms) {
  const XXH128_hash_t h = XXH3_128bits(nonce.data(), nonce.size());
  const NonceDigest digest{h.low64, h.high64};
  std::lock_guard lock(mu_);
  while (!expiry_.empty() && expiry_.top().at_ms < now_ms) {
    seen_.erase(expiry_.top().nonce);
    expiry_.pop();
  }
  if (!seen_.insert(digest).second) return false;
  expiry_.push(Expiry{sent_ms + 2 * window_ms_, digest});
  return true;
}

size_t CallAuthenticator::remembered_nonces() const {
  std::lock_guard lock(mu_);
  return seen_.size();
}

std::string CallAuthenticator::SignResponse(int status, std::string_view request_nonce,
                                            std::string_view body) const {
  if (!enabled()) return "";
  std::string text = "response\n" + std::to_string(status) + "\n" + std::string(request_nonce) +
                     "\n" + sigv4::Sha256Hex(body);
  return sigv4::HmacSha256Hex(secret_, text);
}

bool CallAuthenticator::VerifyResponse(int status, std::string_view request_nonce,
                                       std::string_view body, std::string_view signature) const {
  if (!enabled()) return true;
  return ConstantTimeEquals(SignResponse(status, request_nonce, body), signature);
}

}  // namespace objstore::cluster
