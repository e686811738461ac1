#include "coldstore/s3_cold_store.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "base/failpoint.h"
#include "base/percent_encoding.h"
#include "base/unique_fd.h"
#include "coldstore/sigv4.h"
#include "http/mime.h"
#include "http/range.h"

namespace objstore {

using Params = std::vector<std::pair<std::string, std::string>>;

// One HTTP exchange with S3, described before it runs.
struct S3ColdStore::Call {
  std::string method = "GET";
  std::string key;  // empty: the bucket itself
  Params query;
  Params headers;
  bool transfer = false;  // a large body: low-speed limit instead of a total timeout
  bool assembles = false;  // S3 works before it answers: assembly_timeout_ms, no speed limit
  // Request body: a file range, or a string.
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  std::string body;
  bool has_body = false;
  // Response body of a 2xx: streamed here when set (else kept in Response::body).
  // An error either returns is final: the call ends with it, never retried.
  std::function<Status(const Response&)> on_headers;
  std::function<Status(std::span<const char>)> on_data;
};

namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Value of <tag>…</tag> in a small XML document (S3's replies are flat).
std::string XmlValue(const std::string& xml, const std::string& tag) {
  auto b = xml.find("<" + tag + ">");
  if (b == std::string::npos) return "";
  b += tag.size() + 2;
  auto e = xml.find("</" + tag + ">", b);
  return e == std::string::npos ? "" : xml.substr(b, e - b);
}

// Metadata values as written by Put; a value that is not valid percent-encoding
// (written by another tool) is taken as it is.
std::string DecodeMetaValue(const std::string& s) { return PercentDecode(s).value_or(s); }

bool Retryable(long status, const std::string& code) {
  return status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout" ||
         code == "RequestTimeTooSkewed" || code == "InternalError";
}

// S3's error codes for credentials it does not take (as opposed to a
// permission the keys lack): reading them again may help.
bool RefusedCredentials(const std::string& code) {
  return code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired" ||
         code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch";
}

Result<std::shared_ptr<const AwsCredentials>> Shared(Result<AwsCredentials> c) {
  if (!c.ok()) return c.status();
  return std::make_shared<const AwsCredentials>(std::move(c).value());
}

bool SameCredentials(const AwsCredentials& a, const AwsCredentials& b) {
  return a.access_key == b.access_key && a.secret_key == b.secret_key &&
         a.session_token == b.session_token;
}

// Drops the If-Match / If-None-Match headers of a conditional request;
// false when it had none.
bool DropConditions(Params& headers) {
  return std::erase_if(headers, [](const auto& h) {
           return h.first == "if-match" || h.first == "if-none-match";
         }) > 0;
}

// Rounds of HEAD + conditional write before Put or Delete gives up: each 412
// means another node wrote the key in between, which two nodes racing do
// once, not four times in a row.
constexpr int kConditionalRounds = 4;

std::once_flag curl_init_once;

// Transfer state shared with curl's callbacks for one attempt.
struct Transfer {
  S3ColdStore::Call* call;
  S3ColdStore::Response* response;
  ColdStoreCounters* counters;
  uint64_t sent = 0;
  bool headers_done = false;
  bool delivered = false;  // a byte reached call->on_data
  Status callback_status;  // a caller callback's refusal, returned as is
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {  // a new status line (after 100 Continue, redirects)
    t->response->headers.clear();
    auto sp = line.find(' ');
    t->response->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
  } else if (auto colon = line.find(':'); colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    t->response->headers[Lower(line.substr(0, colon))] = value;
  }
  return size * n;
}

// CURLOPT_SOCKOPTFUNCTION of downloads: S3Options::receive_buffer on each new
// socket (a hint: the kernel caps it at net.core.rmem_max, failure is ignored).
int SetReceiveBuffer(void* bytes, curl_socket_t fd, curlsocktype) {
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, bytes, sizeof(int));
  return CURL_SOCKOPT_OK;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  const bool success = t->response->status >= 200 && t->response->status < 300;
  if (success && t->call->on_data) {
    if (!t->headers_done) {
      t->headers_done = true;
      if (t->call->on_headers) {
        t->callback_status = t->call->on_headers(*t->response);
        if (!t->callback_status.ok()) return 0;  // aborts the transfer
      }
    }
    t->delivered = true;
    t->counters->bytes_down += len;
    t->callback_status = t->call->on_data({data, len});
    return t->callback_status.ok() ? len : 0;
  }
  if (t->response->body.size() + len > kMaxErrorBody) return 0;
  t->response->body.append(data, len);
  return len;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  S3ColdStore::Call& c = *t->call;
  const size_t want = size * n;
  if (c.body_fd >= 0) {
    uint64_t left = c.body_length - t->sent;
    if (left == 0) return 0;
    ssize_t got = ::pread(c.body_fd, buffer, std::min<uint64_t>(want, left),
                          static_cast<off_t>(c.body_offset + t->sent));
    if (got <= 0) return CURL_READFUNC_ABORT;  // the file shrank or failed
    t->sent += static_cast<uint64_t>(got);
    t->counters->bytes_up += static_cast<uint64_t>(got);
    if (t->sent < c.body_length) failpoint::Hit("s3.upload.mid_body");
    return static_cast<size_t>(got);
  }
  size_t len = std::min<size_t>(want, c.body.size() - t->sent);
  std::memcpy(buffer, c.body.data() + t->sent, len);
  t->sent += len;
  return len;
}

}  // namespace

S3ColdStore::S3ColdStore(S3Options options, Result<AwsCredentials> credentials)
    : options_(std::move(options)), credentials_(Shared(std::move(credentials))) {
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::string endpoint = options_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (endpoint.empty()) endpoint = "https://s3." + options_.region + ".amazonaws.com";
  auto scheme_end = endpoint.find("://");
  std::string scheme = scheme_end == std::string::npos ? "https" : endpoint.substr(0, scheme_end);
  std::string host = scheme_end == std::string::npos ? endpoint : endpoint.substr(scheme_end + 3);
  // curl leaves the scheme's default port out of the Host header it sends,
  // so the signed host must leave it out too.
  const std::string default_port = scheme == "http" ? ":80" : scheme == "https" ? ":443" : "";
  if (!default_port.empty() && host.ends_with(default_port)) {
    host.resize(host.size() - default_port.size());
  }
  if (options_.path_style) {
    host_header_ = host;
    base_path_ = "/" + options_.bucket;
  } else {
    host_header_ = options_.bucket + "." + host;
  }
  scheme_host_ = scheme + "://" + host_header_;
}

S3ColdStore::~S3ColdStore() {
  for (void* h : handles_) curl_easy_cleanup(static_cast<CURL*>(h));
}

std::string S3ColdStore::Describe() const {
  return fmt::format("S3 bucket {} at {}{} (region {}, {} addressing)", options_.bucket,
                     scheme_host_, base_path_, options_.region,
                     options_.path_style ? "path-style" : "virtual-hosted");
}

ColdStoreHealth S3ColdStore::Health() const {
  ColdStoreHealth h;
  {
    std::lock_guard lock(health_mu_);
    h = health_;
  }
  h.requests = counters_.requests;
  h.retries = counters_.retries;
  h.errors = counters_.errors;
  h.bytes_up = counters_.bytes_up;
  h.bytes_down = counters_.bytes_down;
  return h;
}

Status S3ColdStore::Remember(Status s) {
  std::lock_guard lock(health_mu_);
  if (s.ok() || s.code() == StatusCode::kNotFound || s.code() == StatusCode::kConflict) {
    health_.reachable = true;
  } else {
    health_.reachable = false;
    health_.last_error = s.message();
    health_.last_error_unix = static_cast<int64_t>(std::time(nullptr));
  }
  return s;
}

void* S3ColdStore::AcquireHandle() {
  {
    std::lock_guard lock(handles_mu_);
    if (!handles_.empty()) {
      void* h = handles_.back();
      handles_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void S3ColdStore::ReleaseHandle(void* handle) {
  std::lock_guard lock(handles_mu_);
  handles_.push_back(handle);
}

Status S3ColdStore::ReloadCredentials() {
  if (!options_.credential_source) {
    std::lock_guard lock(credentials_mu_);
    return credentials_.ok() ? Status::Ok() : credentials_.status();
  }
  Result<AwsCredentials> fresh = options_.credential_source();
  std::lock_guard lock(credentials_mu_);
  credentials_read_ = std::chrono::steady_clock::now();
  if (!fresh.ok()) {
    spdlog::warn("S3 credentials not reloaded ({}); {}", fresh.status().message(),
                 credentials_.ok() ? "the current ones stay" : "S3 calls keep failing");
    return credentials_.ok() ? Status::Ok() : fresh.status();
  }
  if (credentials_.ok() && SameCredentials(**credentials_, *fresh)) {
    spdlog::debug("S3 credentials read again from {}: unchanged", fresh->source);
    return Status::Ok();
  }
  spdlog::info("S3 credentials reloaded from {}", fresh->source);
  credentials_ = Shared(std::move(fresh));
  return Status::Ok();
}

bool S3ColdStore::RenewCredentials(const std::shared_ptr<const AwsCredentials>& used) {
  auto changed = [&] {
    return used != nullptr && credentials_.ok() && !SameCredentials(**credentials_, *used);
  };
  {
    std::lock_guard lock(credentials_mu_);
    if (changed()) return true;  // another call read them again meanwhile
    if (!options_.credential_source ||
        std::chrono::steady_clock::now() - credentials_read_ < options_.credentials_retry) {
      return false;
    }
  }
  (void)ReloadCredentials();
  std::lock_guard lock(credentials_mu_);
  return changed();
}

Result<std::shared_ptr<const AwsCredentials>> S3ColdStore::Credentials() {
  {
    std::lock_guard lock(credentials_mu_);
    if (credentials_.ok() || !options_.credential_source ||
        std::chrono::steady_clock::now() - credentials_read_ < options_.credentials_retry) {
      return credentials_;
    }
  }
  (void)ReloadCredentials();
  std::lock_guard lock(credentials_mu_);
  return credentials_;
}

Result<S3ColdStore::Response> S3ColdStore::PerformOnce(Call& call, bool* delivered, bool* refused) {
  auto held = Credentials();
  if (!held.ok()) return held.status();
  const AwsCredentials& creds = **held;
  sigv4::Request req;
  req.method = call.method;
  req.path = base_path_ + "/" + call.key;  // raw: the signer encodes it once, as S3 does
  req.query = call.query;
  // curl does not send a header whose value is empty, so none may be signed.
  for (const auto& h : call.headers) {
    if (!h.second.empty()) req.headers.push_back(h);
  }
  req.headers.emplace_back("host", host_header_);
  req.payload_hash = std::string(sigv4::kUnsignedPayload);
  req.region = options_.region;
  req.service = "s3";
  req.time = std::time(nullptr);
  auto sig = sigv4::SignV4(req, {creds.access_key, creds.secret_key, creds.session_token});
  if (!sig.ok()) return sig.status();
  spdlog::debug("S3 canonical request:\n{}", sig->canonical_request);
  // The URL is built from exactly what was signed.
  const std::string url = scheme_host_ + sig->canonical_uri +
                          (sig->canonical_query.empty() ? "" : "?" + sig->canonical_query);

  CURL* curl = static_cast<CURL*>(AcquireHandle());
  if (curl == nullptr) return Status::IOError("curl_easy_init failed");
  curl_easy_reset(curl);
  curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) {
    if (k != "host") list = curl_slist_append(list, (k + ": " + v).c_str());
  }
  for (const auto& [k, v] : sig->headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip

  Response response;
  response.signed_with = *held;
  Transfer t{&call, &response, &counters_, 0, false, false, Status::Ok()};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);  // "/./" and "/../" in a key were signed as is
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  if (!options_.ca_bundle.empty())
    curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  if (call.assembles) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.assembly_timeout_ms);
  } else if (call.transfer) {
    // Larger reads than curl's 16 KiB default: fewer callbacks and wake-ups
    // of streaming readers per object.
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_seconds);
    if (options_.receive_buffer > 0 && call.method == "GET") {
      curl_easy_setopt(curl, CURLOPT_SOCKOPTFUNCTION, SetReceiveBuffer);
      curl_easy_setopt(curl, CURLOPT_SOCKOPTDATA, &options_.receive_buffer);
    }
  } else {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (call.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (call.method == "PUT" || call.method == "POST") {
    if (call.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    } else {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
    }
    uint64_t len = call.body_fd >= 0 ? call.body_length : call.body.size();
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    if (call.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(len));
    } else {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(len));
    }
  } else if (call.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call.method.c_str());
  }
  ++counters_.requests;
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  ReleaseHandle(curl);
  *delivered = t.delivered;
  *refused = !t.callback_status.ok();
  if (*refused) return t.callback_status;
  if (rc != CURLE_OK) {
    return Status::Unavailable(fmt::format("S3 {} {}: {}", call.method, url,
                                           curl_easy_strerror(rc)));
  }
  return response;
}

Result<S3ColdStore::Response> S3ColdStore::Perform(Call& call) {
  if (auto held = Credentials(); !held.ok()) {
    return Remember(Status::Unavailable(held.status().message()));
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto started = std::chrono::steady_clock::now();
  Status last;
  bool renewed = false;  // the call was sent again with renewed credentials
  for (int attempt = 1;; ++attempt) {
    bool delivered = false, refused = false;
    auto r = PerformOnce(call, &delivered, &refused);
    if (refused) {
      // A caller's refusal (of another version, say) is final: S3 answered,
      // and asking again would bring the same answer.
      (void)Remember(Status::Ok());
      return r;
    }
    bool retry = false;
    if (!r.ok()) {
      last = r.status();
      // Only transport failures are retried.
      retry = r.status().code() == StatusCode::kUnavailable && !delivered;
    } else if (r->status >= 200 && r->status < 300) {
      (void)Remember(Status::Ok());
      return r;
    } else {
      std::string code = XmlValue(r->body, "Code");
      std::string message = XmlValue(r->body, "Message");
      if ((r->status == 400 || r->status == 403) && call.method == "HEAD" && !call.key.empty()) {
        // A HEAD's answer has no body, so no error code; a GET of the object
        // (the same permission) names the cause, wrong keys, an expired
        // session token (400) or a skewed clock say, for the log and for the
        // retry decision. Put and Delete begin with a HEAD.
        Call get;
        get.key = call.key;
        get.headers = {{"range", "bytes=0-0"}};  // should it be answered after all: one byte
        bool get_delivered = false, get_refused = false;
        if (auto g = PerformOnce(get, &get_delivered, &get_refused);
            g.ok() && g->status == r->status) {
          code = XmlValue(g->body, "Code");
          message = XmlValue(g->body, "Message");
        }
      }
      // Credentials that ran out or were rotated: read them again, and send
      // the call once more if they differ from those it was signed with.
      if ((r->status == 400 || r->status == 403) && RefusedCredentials(code) && !renewed) {
        renewed = true;
        if (RenewCredentials(r->signed_with)) {
          ++counters_.retries;
          continue;
        }
      }
      if (r->status == 404 && code != "NoSuchBucket") {
        return Remember(Status::NotFound(fmt::format("S3 has no {}", call.key)));
      }
      // 409 ConditionalRequestConflict: a concurrent conditional write to
      // the key; AWS says to decide again, as after a 412.
      if (r->status == 412 || (r->status == 409 && code == "ConditionalRequestConflict")) {
        return Remember(Status::Conflict(
            fmt::format("S3 {} {}: the object changed since it was read", call.method, call.key)));
      }
      // An endpoint that does not implement conditional writes (S3 does)
      // answers every one of them so: the same request without its
      // condition, sent at once, keeps the cold store usable there, though
      // no longer safe against other nodes' concurrent writes of the key.
      if (r->status == 501 && DropConditions(call.headers)) {
        if (!warned_unconditional_.exchange(true)) {
          spdlog::warn(
              "S3 endpoint {} does not implement conditional requests (501 to {} {}): "
              "writing unconditionally, so concurrent uploads of a key by two nodes "
              "may leave the older version",
              scheme_host_, call.method, call.key);
        }
        continue;
      }
      last = Status::Unavailable(fmt::format(
          "S3 {} {} answered {} {}{}{}", call.method, call.key.empty() ? "bucket" : call.key,
          r->status, code.empty() ? "(no error code)" : code, message.empty() ? "" : ": ",
          message));
      retry = Retryable(r->status, code) && !delivered;
    }
    ++counters_.errors;
    if (!retry || attempt >= options_.max_attempts) break;
    // Exponential backoff with full jitter (AWS architecture blog, 2015).
    auto cap = std::min<int64_t>(options_.max_backoff.count(),
                                 options_.base_backoff.count() << std::min(attempt - 1, 20));
    auto sleep = std::uniform_int_distribution<int64_t>(0, cap)(rng);
    if (std::chrono::steady_clock::now() + std::chrono::milliseconds(sleep) - started >
        options_.retry_budget) {
      break;
    }
    ++counters_.retries;
    spdlog::debug("S3 {} {} failed ({}); retry {} in {} ms", call.method, call.key,
                  last.message(), attempt, sleep);
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep));
  }
  spdlog::warn("{}", last.message());
  return Remember(last);
}

Params S3ColdStore::MetaHeaders(const ColdObjectMeta& m) const {
  auto enc = [](const std::string& v) { return sigv4::UriEncode(v, true); };
  return {
      {"content-type", std::string(http::ContentTypeForName(m.name))},
      {"x-amz-meta-name", enc(m.name)},
      {"x-amz-meta-level", std::to_string(m.consistency)},
      {"x-amz-meta-timestamp", std::to_string(m.timestamp_ns)},
      {"x-amz-meta-version", std::to_string(m.version)},
      {"x-amz-meta-etag", enc(m.etag)},
      {"x-amz-meta-user-meta", enc(m.user_meta)},
  };
}

Status S3ColdStore::CheckMeta(const ColdObjectMeta& meta) const {
  // S3 counts the UTF-8 bytes of each x-amz-meta-* header's name (after the
  // prefix) and value, and answers 400 MetadataTooLarge past 2 KB.
  constexpr std::string_view kPrefix = "x-amz-meta-";
  constexpr size_t kMaxUserMetadataBytes = 2048;
  size_t bytes = 0;
  for (const auto& [name, value] : MetaHeaders(meta)) {
    if (name.starts_with(kPrefix)) bytes += name.size() - kPrefix.size() + value.size();
  }
  if (bytes <= kMaxUserMetadataBytes) return Status::Ok();
  return Status::Invalid(fmt::format(
      "the name and user meta take too much of S3's {} bytes of object metadata: {} bytes with "
      "the level, timestamp, version and hash, percent-encoded (each byte outside A-Z a-z 0-9 "
      "-._~ takes three); shorten them",
      kMaxUserMetadataBytes, bytes));
}

Result<std::optional<S3ColdStore::Stored>> S3ColdStore::HeadKey(const std::string& key) {
  Call head;
  head.method = "HEAD";
  head.key = key;
  auto h = Perform(head);
  if (!h.ok()) {
    if (h.status().code() == StatusCode::kNotFound) return std::optional<Stored>();
    return h.status();
  }
  Stored stored;
  if (auto v = h->headers.find("x-amz-meta-version"); v != h->headers.end()) {
    stored.version = std::strtoull(v->second.c_str(), nullptr, 10);
  }
  if (auto e = h->headers.find("etag"); e != h->headers.end()) stored.etag = e->second;
  return std::optional<Stored>(std::move(stored));
}

Status S3ColdStore::Put(const ColdObjectMeta& meta, const std::string& body_path) {
  UniqueFd fd(::open(body_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + body_path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat " + body_path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size != meta.size) {
    return Status::Corruption(fmt::format("body of {} has {} bytes, expected {}", meta.key, size,
                                          meta.size));
  }
  for (int round = 1; round <= kConditionalRounds; ++round) {
    auto stored = HeadKey(meta.key);
    if (!stored.ok()) return stored.status();
    if (*stored && (*stored)->version > meta.version) return Status::Ok();  // the newer stays
    const Header condition =
        *stored ? Header{"if-match", (*stored)->etag} : Header{"if-none-match", "*"};
    // S3 takes at most 5 GiB in one PUT, and no multipart upload without a
    // part: an empty body goes up in one PUT whatever the threshold.
    const bool in_parts =
        size > 0 && (size >= options_.multipart_threshold || size > kMaxSinglePut);
    Status s = in_parts ? PutMultipart(meta, fd.get(), size, condition)
                        : PutSingle(meta, fd.get(), size, condition);
    // Conflict (412): another write landed after the HEAD; NotFound: what the
    // HEAD saw was deleted since. Either way the HEAD is out of date.
    if (s.code() != StatusCode::kConflict && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Unavailable(fmt::format(
      "S3 object {} changed under each of {} conditional uploads", meta.key, kConditionalRounds));
}

Status S3ColdStore::PutSingle(const ColdObjectMeta& meta, int fd, uint64_t size,
                              const Header& condition) {
  Call call;
  call.method = "PUT";
  call.key = meta.key;
  call.headers = MetaHeaders(meta);
  if (!condition.second.empty()) call.headers.push_back(condition);
  call.transfer = true;
  call.body_fd = fd;
  call.body_length = size;
  call.has_body = true;
  auto r = Perform(call);
  return r.ok() ? Status::Ok() : r.status();
}

Status S3ColdStore::PutMultipart(const ColdObjectMeta& meta, int fd, uint64_t size,
                                 const Header& condition) {
  Call create;
  create.method = "POST";
  create.key = meta.key;
  create.query = {{"uploads", ""}};
  create.headers = MetaHeaders(meta);
  create.has_body = true;
  auto created = Perform(create);
  if (!created.ok()) return created.status();
  const std::string upload_id = XmlValue(created->body, "UploadId");
  if (upload_id.empty()) return Remember(Status::Unavailable("S3 gave no UploadId for " + meta.key));

  auto abort = [&](Status why) {
    Call del;
    del.method = "DELETE";
    del.key = meta.key;
    del.query = {{"uploadId", upload_id}};
    if (auto r = Perform(del); !r.ok()) {
      spdlog::warn("could not abort multipart upload {} of {}: {}", upload_id, meta.key,
                   r.status().message());
    }
    return why;
  };

  std::string complete = "<CompleteMultipartUpload>";
  const uint64_t part = MultipartPartSize(size, options_.part_size);
  int number = 1;
  for (uint64_t offset = 0; offset < size; offset += part, ++number) {
    Call up;
    up.method = "PUT";
    up.key = meta.key;
    up.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    up.transfer = true;
    up.body_fd = fd;
    up.body_offset = offset;
    up.body_length = std::min(part, size - offset);
    up.has_body = true;
    auto r = Perform(up);
    if (!r.ok()) return abort(r.status());
    auto etag = r->headers.find("etag");
    if (etag == r->headers.end()) {
      return abort(Remember(Status::Unavailable("S3 gave no ETag for a part of " + meta.key)));
    }
    complete += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", number,
                            etag->second);
    failpoint::Hit("s3.multipart.after_part");
  }
  complete += "</CompleteMultipartUpload>";
  Call done;
  done.method = "POST";
  done.key = meta.key;
  done.query = {{"uploadId", upload_id}};
  done.headers = {{"content-type", "application/xml"}};
  if (!condition.second.empty()) done.headers.push_back(condition);
  done.body = std::move(complete);
  done.has_body = true;
  done.assembles = true;
  // CompleteMultipartUpload can fail after a 200: the error is in the body.
  // One AWS calls passing (InternalError, SlowDown) is asked again with the
  // same parts, which S3 still holds, rather than sending them all again.
  for (int attempt = 1;; ++attempt) {
    auto r = Perform(done);
    if (!r.ok()) return abort(r.status());
    if (r->body.find("<Error>") == std::string::npos) return Status::Ok();
    const std::string code = XmlValue(r->body, "Code");
    Status failed =
        Remember(Status::Unavailable(fmt::format("S3 could not complete the upload of {}: {} {}",
                                                 meta.key, code, XmlValue(r->body, "Message"))));
    if (!Retryable(500, code) || attempt >= options_.max_attempts) return abort(failed);
    ++counters_.retries;
    spdlog::debug("{}; asking again", failed.message());
  }
}

uint64_t MultipartPartSize(uint64_t object_size, uint64_t configured) {
  const uint64_t at_least = (object_size + kMaxParts - 1) / kMaxParts;
  return std::max(std::clamp(configured, kMinPartSize, kMaxSinglePut), at_least);
}

namespace {

// The object's metadata from the headers of a GET's answer (size aside).
ColdObjectMeta MetaFromHeaders(const std::string& key,
                               const std::map<std::string, std::string>& headers) {
  ColdObjectMeta m;
  m.key = key;
  auto get = [&](const char* name) -> std::string {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  };
  m.name = DecodeMetaValue(get("x-amz-meta-name"));
  std::string level = get("x-amz-meta-level");
  m.consistency = level.size() == 1 && level[0] >= '1' && level[0] <= '2' ? level[0] - '0' : 1;
  m.timestamp_ns = std::strtoll(get("x-amz-meta-timestamp").c_str(), nullptr, 10);
  if (m.timestamp_ns == 0) {  // not written by objstore: use S3's own date
    auto t = http::ParseHttpDate(get("last-modified"));
    m.timestamp_ns = t ? static_cast<int64_t>(*t) * 1'000'000'000 : 0;
  }
  m.version = std::strtoull(get("x-amz-meta-version").c_str(), nullptr, 10);
  m.etag = DecodeMetaValue(get("x-amz-meta-etag"));
  m.user_meta = DecodeMetaValue(get("x-amz-meta-user-meta"));
  if (m.user_meta.empty()) m.user_meta = "{}";
  return m;
}

}  // namespace

Status S3ColdStore::Get(const std::string& key,
                        const std::function<Status(const ColdObjectMeta&)>& on_meta,
                        const std::function<Status(std::span<const char>)>& on_data) {
  Call call;
  call.method = "GET";
  call.key = key;
  call.transfer = true;
  call.on_headers = [&](const Response& r) {
    ColdObjectMeta m = MetaFromHeaders(key, r.headers);
    auto length = r.headers.find("content-length");
    m.size = length == r.headers.end() ? 0 : std::strtoull(length->second.c_str(), nullptr, 10);
    return on_meta(m);
  };
  call.on_data = on_data;
  auto r = Perform(call);
  if (!r.ok()) return r.status();
  // An empty object has no body bytes: the metadata has not been delivered yet.
  if (r->headers.count("content-length") && r->headers.at("content-length") == "0") {
    if (Status s = call.on_headers(*r); !s.ok()) return s;
  }
  return Status::Ok();
}

Status S3ColdStore::GetRange(const std::string& key, uint64_t offset, uint64_t length,
                             const std::function<Status(const ColdObjectMeta&)>& on_meta,
                             const std::function<Status(std::span<const char>)>& on_data) {
  if (length == 0) return Status::Invalid("empty range of " + key);
  Call call;
  call.method = "GET";
  call.key = key;
  call.transfer = true;
  call.headers.emplace_back("range", fmt::format("bytes={}-{}", offset, offset + length - 1));
  call.on_headers = [&](const Response& r) {
    // "bytes first-last/size": exactly the range asked for, of an object
    // whose size is known (a 200 would be the whole object, not the range).
    auto cr = r.headers.find("content-range");
    unsigned long long first = 0, last = 0, size = 0;
    if (r.status != 206 || cr == r.headers.end() ||
        std::sscanf(cr->second.c_str(), "bytes %llu-%llu/%llu", &first, &last, &size) != 3 ||
        first != offset || last != offset + length - 1 || last >= size) {
      return Status::Unavailable(
          fmt::format("S3 answered a range GET of {} with status {} and Content-Range '{}'", key,
                      r.status, cr == r.headers.end() ? "" : cr->second));
    }
    ColdObjectMeta m = MetaFromHeaders(key, r.headers);
    m.size = size;
    return on_meta(m);
  };
  call.on_data = on_data;
  // A 416 (the range is not within the object) comes back as Unavailable: the
  // caller asked for a range of the object it knows, so the bucket holds
  // another one.
  auto r = Perform(call);
  return r.ok() ? Status::Ok() : r.status();
}

Status S3ColdStore::Delete(const std::string& key, uint64_t version) {
  for (int round = 1; round <= kConditionalRounds; ++round) {
    auto stored = HeadKey(key);
    if (!stored.ok()) return stored.status();
    // Absent, or a later PUT replaced the object: keep it.
    if (!*stored || (*stored)->version > version) return Status::Ok();
    Call del;
    del.method = "DELETE";
    del.key = key;
    if (!(*stored)->etag.empty()) del.headers = {{"if-match", (*stored)->etag}};
    auto r = Perform(del);
    if (r.ok() || r.status().code() == StatusCode::kNotFound) return Status::Ok();
    if (r.status().code() != StatusCode::kConflict) return r.status();  // 412: look again
  }
  return Status::Unavailable(fmt::format(
      "S3 object {} changed under each of {} conditional deletes", key, kConditionalRounds));
}

Status S3ColdStore::CheckBucket() {
  Call head;
  head.method = "HEAD";
  auto r = Perform(head);
  if (r.ok()) return Status::Ok();
  if (r.status().code() == StatusCode::kNotFound) {
    return Status::NotFound("bucket " + options_.bucket + " does not exist");
  }
  return r.status();
}

}  // namespace objstore
