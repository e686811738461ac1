// S3ColdStore: the cold store on S3 or any S3-compatible endpoint (SPEC §4).
//
// Design
// - libcurl easy handles, kept in a pool so connections (and TLS sessions)
//   are reused; every request is signed with our SigV4 signer (sigv4.h,
//   checked against AWS's published vectors), because the signer must also
//   cover multipart query strings exactly as S3 canonicalises them.
// - Bodies stream both ways: uploads read the local file with pread in
//   curl's read callback, downloads hand each chunk to the caller. Memory does
//   not grow with the object.
// - Objects at or above `multipart_threshold` (and any over S3's 5 GiB
//   limit of one PUT; never an empty one, which a multipart upload cannot
//   hold) go up in parts of `part_size`, raised so no upload needs more than
//   S3's 10,000 parts (CreateMultipartUpload, UploadPart…,
//   CompleteMultipartUpload); any failure aborts the upload so no orphaned
//   parts are billed. A CompleteMultipartUpload answered with an error S3
//   calls passing (InternalError, SlowDown) is sent again with the same parts.
// - Every call has a connect timeout and either a total timeout (small calls)
//   or a low-speed limit (transfers). CompleteMultipartUpload gets a long
//   total timeout and no low-speed limit: S3 assembles the object before it
//   answers, sending only whitespace meanwhile, for minutes on large objects. Failures that may
//   pass (connection errors, 5xx, SlowDown/throttling, RequestTimeout) are retried with exponential
//   backoff and full jitter, up to `max_attempts`; a download is retried only while no byte of it
//   reached the caller, and never after the caller's callback refused it.
// - Put and Delete never replace or remove an object of a newer version,
//   though other nodes write the same keys: a HEAD reads the stored version,
//   and the write is conditional on what the HEAD saw (If-Match: its ETag, or
//   If-None-Match: * when the key was absent; CompleteMultipartUpload carries
//   the condition of a multipart upload). A 412 means another write landed
//   in between: HEAD and decide again, a few rounds at most. An endpoint
//   that answers 501 to the conditions gets the request without them (logged
//   once): there, two nodes' uploads of one key can race as before.
// - Object key = the id; name, level, timestamp, version, content hash and user
//   meta travel as x-amz-meta-* headers, percent-encoded so any byte (and the
//   case of user-meta keys, which S3 lower-cases in header names) survives.
//
// - Credentials are read again from their source (ReloadCredentials: the
//   environment, then the shared files) when S3 refuses the current ones as
//   expired or unknown (a temporary session token ran out, a sidecar
//   rotated the file) — the call is then sent once more if they changed —
//   and on the operator's SIGHUP. Without credentials at start, a call reads
//   the source again, at most once per `credentials_retry`.
//
// Thread safety: all methods may be called concurrently (blocking calls; the
// node runs them on its blocking pool).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "coldstore/aws_credentials.h"
#include "coldstore/cold_store.h"

namespace objstore {

struct S3Options {
  std::string bucket;
  std::string region = "us-east-1";
  // Scheme, host and port of an S3-compatible endpoint ("http://127.0.0.1:9000");
  // empty: AWS, https://s3.<region>.amazonaws.com.
  std::string endpoint;
  // Path-style URLs (endpoint/bucket/key) instead of virtual-hosted ones
  // (bucket.endpoint/key); needed by most custom endpoints and IP addresses.
  bool path_style = false;
  uint64_t multipart_threshold = 64ull << 20;  // S3 allows 5 GiB in one PUT
  uint64_t part_size = 16ull << 20;            // S3's minimum part is 5 MiB
  // SO_RCVBUF of the sockets that download objects; 0: the kernel's
  // autotuning, which starts each new connection (moto closes every one) at
  // tcp_rmem's default, 128 KiB. With 4 MiB set before the connection is
  // made, a 4 MiB miss's body came 0.3-1.7 ms sooner against moto (the
  // fetcher's reads had been seen waiting for data between 256 KiB reads);
  // a buffer enlarged once the headers are in did not help. Why autotuning
  // falls short here was not established. A fixed buffer also caps the
  // window over a long round trip, hence off by default (docs/BENCHMARKS.md,
  // "A 4 MiB miss waits for the window").
  int receive_buffer = 0;
  // PEM file of the certificate authorities an https endpoint's certificate
  // must chain to (an endpoint with a private CA, e.g. MinIO in the same
  // datacenter); empty: the system's store. Verification is never turned off.
  std::string ca_bundle;
  int max_attempts = 5;
  std::chrono::milliseconds base_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  long connect_timeout_ms = 3000;
  long request_timeout_ms = 10000;  // calls without a large body
  long low_speed_seconds = 10;      // transfers: give up below 1 KiB/s for this long
  long assembly_timeout_ms = 15 * 60 * 1000;  // CompleteMultipartUpload
  // No retry starts later than this after a call began: a client waiting on a
  // PUT gets its 503 (and the upload is queued) in bounded time, about
  // retry_budget + one attempt's timeout, even when S3 hangs. One attempt of
  // a CompleteMultipartUpload may take up to assembly_timeout_ms (S3 takes
  // minutes to assemble the largest objects).
  std::chrono::milliseconds retry_budget{15000};
  // Where fresh credentials come from (e.g. LoadAwsCredentials); empty: the
  // ones given to the constructor are kept for good.
  std::function<Result<AwsCredentials>()> credential_source;
  std::chrono::milliseconds credentials_retry{10000};
};

// S3's limits on uploads: one PUT, a part, the parts of one upload.
inline constexpr uint64_t kMaxSinglePut = 5ull << 30;
inline constexpr uint64_t kMinPartSize = 5ull << 20;
inline constexpr uint64_t kMaxParts = 10000;

// The part size of a multipart upload of `object_size` bytes: `configured`,
// raised to S3's minimum and to what keeps the upload within kMaxParts.
uint64_t MultipartPartSize(uint64_t object_size, uint64_t configured);

// Counters of the cold store's traffic, for /stats and /metrics.
struct ColdStoreCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> bytes_up{0};
  std::atomic<uint64_t> bytes_down{0};
};

class S3ColdStore final : public ColdStore {
 public:
  // `credentials` may be an error: the store then answers every call with
  // Unavailable carrying that message (the node still serves level 0).
  S3ColdStore(S3Options options, Result<AwsCredentials> credentials);
  ~S3ColdStore() override;

  std::string Describe() const override;
  Status Put(const ColdObjectMeta& meta, const std::string& body_path) override;
  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override;
  // A GET with a Range header; S3 must answer 206 with exactly that range (a
  // range outside the object is Unavailable here, S3's 416).
  Status GetRange(const std::string& key, uint64_t offset, uint64_t length,
                  const std::function<Status(const ColdObjectMeta&)>& on_meta,
                  const std::function<Status(std::span<const char>)>& on_data) override;
  Status Delete(const std::string& key, uint64_t version) override;
  ColdStoreHealth Health() const override;
  Status CheckMeta(const ColdObjectMeta& meta) const override;

  // HEAD of the bucket: Ok when it exists and the keys may use it.
  Status CheckBucket();

  // Reads the credentials again from options.credential_source; on failure
  // the current ones stay. Ok when the store now holds credentials.
  Status ReloadCredentials();
  const ColdStoreCounters& counters() const { return counters_; }

  struct Call;
  struct Response {
    long status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;                            // error documents and small replies
    std::shared_ptr<const AwsCredentials> signed_with;
  };

 private:
  Result<Response> Perform(Call& call);
  // One attempt. `delivered`: a byte reached call.on_data; `refused`: the
  // error returned is a callback's (call.on_headers or call.on_data).
  Result<Response> PerformOnce(Call& call, bool* delivered, bool* refused);
  // What a HEAD found under a key: its version and S3's ETag (which the
  // conditional write or delete that follows names).
  struct Stored {
    uint64_t version = 0;
    std::string etag;
  };
  using Header = std::pair<std::string, std::string>;
  // std::nullopt when the key is absent.
  Result<std::optional<Stored>> HeadKey(const std::string& key);
  // `condition` (If-Match or If-None-Match) goes on the request that makes
  // the object visible: the PUT, or CompleteMultipartUpload. An empty value
  // (an endpoint whose HEAD gave no ETag) is no condition: curl would not
  // send the header that the signature names.
  Status PutSingle(const ColdObjectMeta& meta, int fd, uint64_t size, const Header& condition);
  Status PutMultipart(const ColdObjectMeta& meta, int fd, uint64_t size, const Header& condition);
  std::vector<std::pair<std::string, std::string>> MetaHeaders(const ColdObjectMeta& meta) const;
  Status Remember(Status s);  // records the last error for Health()

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  // The credentials to sign with, or why there are none.
  Result<std::shared_ptr<const AwsCredentials>> Credentials();
  // After S3 refused `used`: true when the store now holds other credentials
  // (read again here, unless read within credentials_retry).
  bool RenewCredentials(const std::shared_ptr<const AwsCredentials>& used);

  S3Options options_;
  std::mutex credentials_mu_;
  Result<std::shared_ptr<const AwsCredentials>> credentials_;  // guarded by credentials_mu_
  std::chrono::steady_clock::time_point credentials_read_;     // guarded by credentials_mu_
  std::string scheme_host_;  // e.g. "http://127.0.0.1:9000" or "https://bucket.s3.…"
  std::string host_header_;
  std::string base_path_;    // "/bucket" for path style, "" otherwise
  ColdStoreCounters counters_;
  std::mutex handles_mu_;
  std::vector<void*> handles_;  // idle CURL handles, guarded by handles_mu_
  std::atomic<bool> warned_unconditional_{false};  // the 501 fallback was logged
  mutable std::mutex health_mu_;
  ColdStoreHealth health_;  // guarded by health_mu_
};

}  // namespace objstore
