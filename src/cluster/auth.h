// Authentication of private calls between nodes (docs/CLUSTER.md).
//
// Design: a shared secret, HMAC-SHA256 over everything that gives a request its
// meaning (method, target, cluster tag, sender id, time, a random nonce and the
// SHA-256 of the body). The receiver refuses a wrong signature, a time outside
// a window around its own clock, and a nonce it has already accepted inside
// that window (replay). Answers are signed over their status, body hash and the
// request's nonce, so a caller also refuses tampered or replayed answers.
// Without a secret nothing is signed and only the tag is compared.
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/random.h"

namespace objstore::cluster {

// The header names of a signed call.
inline constexpr const char* kTagHeader = "X-Cluster-Tag";
inline constexpr const char* kNodeHeader = "X-Cluster-Node";
inline constexpr const char* kTimeHeader = "X-Cluster-Time";
inline constexpr const char* kNonceHeader = "X-Cluster-Nonce";
inline constexpr const char* kSignatureHeader = "X-Cluster-Signature";

struct SignedHeaders {
  std::string time_ms, nonce, signature;  // signature empty without a secret
};

struct RequestFacts {
  std::string method, target, tag, node, time_ms, nonce, signature;
  std::string_view body;
};

class CallAuthenticator {
 public:
  // `window`: how far a request's time may be from the receiver's.
  CallAuthenticator(std::string secret, std::string tag, RandomSource& random,
                    std::chrono::seconds window = std::chrono::seconds(300));
  bool enabled() const { return !secret_.empty(); }
  const std::string& tag() const { return tag_; }

  SignedHeaders SignRequest(std::string_view method, std::string_view target,
                            std::string_view node, std::string_view body);
  // Accepted, or refused with the HTTP status and error code to answer:
  // 403 tag_mismatch, 401 bad_signature / stale_request / replayed.
  // `now_ms`: the receiver's clock.
  struct Verdict {
    int status = 200;  // 200: accepted
    std::string code, message;
    bool ok() const { return status == 200; }
  };
  Verdict VerifyRequest(const RequestFacts& facts, int64_t now_ms);
  // What the headers alone tell, before any body byte is read (so an unsigned
  // call's body is never held): with a secret, a call without a well-formed
  // signature, time or nonce is refused (401 bad_signature), as
  // VerifyRequest would refuse it. `facts.body` is not looked at.
  Verdict PrecheckRequest(const RequestFacts& facts) const;

  // Nonces held for the replay check (each until its request's time is out
  // of the window).
  size_t remembered_nonces() const;

  std::string SignResponse(int status, std::string_view request_nonce,
                           std::string_view body) const;
  bool VerifyResponse(int status, std::string_view request_nonce, std::string_view body,
                      std::string_view signature) const;

 private:
  std::string RequestMac(const RequestFacts& f) const;
  // False: seen before. A nonce is kept while a replay could still pass the
  // time check, i.e. until `sent_ms` + the window on the receiver's clock,
  // plus one window more: a replay checked against a clock read a moment
  // earlier, or after the receiver's clock was stepped back, still finds it.
  // Kept as a 128-bit digest: at a few thousand calls a second the cache
  // holds millions of them.
  bool RememberNonce(const std::string& nonce, int64_t sent_ms, int64_t now_ms);

  struct NonceDigest {
    uint64_t low = 0, high = 0;
    bool operator==(const NonceDigest&) const = default;
  };
  struct NonceDigestHash {
    size_t operator()(const NonceDigest& d) const { return d.low; }
  };
  struct Expiry {
    int64_t at_ms;
    NonceDigest nonce;
    bool operator>(const Expiry& o) const { return at_ms > o.at_ms; }
  };

  const std::string secret_;
  const std::string tag_;
  RandomSource& random_;
  const int64_t window_ms_;
  mutable std::mutex mu_;
  std::unordered_set<NonceDigest, NonceDigestHash> seen_;  // guarded by mu_
  // guarded by mu_; the earliest expiry on top
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiry_;
};

// Compares two strings in time independent of where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace objstore::cluster
