#include "api/public_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "api/request_checks.h"
#include "http/mime.h"
#include "http/range.h"
#include "ids/ulid.h"
#include "journal/record_checks.h"
#include "node/blocking.h"
#include "store/content_hash.h"

namespace objstore::api {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using json = nlohmann::json;
using StringResponse = bhttp::response<bhttp::string_body>;

namespace {

constexpr size_t kBodyChunk = 256 * 1024;
constexpr std::string_view kGetPrefix = "/api/v1/get/";
constexpr std::string_view kMetaPrefix = "/api/v1/meta/";
constexpr std::string_view kDeletePrefix = "/api/v1/delete/";
// A GET for a range that starts this far or further past what the body's
// fetch has brought is answered by a range read of its own from the cold
// store (docs/ARCHITECTURE.md, "A GET of a range ahead of a cold fetch"):
// against S3 a second request costs a round trip (tens of ms), about what
// the fetch needs to bring 1 MiB more; for a nearer range the fetch is as
// quick and costs no request.
constexpr uint64_t kRangeReadAhead = 1024 * 1024;
// How much of a PUT's declared length is reserved before its bytes arrive:
// the rest is reserved as they come. Reserving a 5 GiB declaration whole
// would evict 5 GiB of bodies for a client that may then send two bytes.
constexpr uint64_t kPutReserveAhead = 64ull << 20;

// The range a GET of `rec` asks for, If-Range honoured (a stale one asks for
// the whole body).
http::RangeDecision RequestedRange(const http::Exchange& ex, const ObjectRecord& rec) {
  const auto& h = ex.header();
  auto r = h[bhttp::field::range];
  if (r.empty()) return {};
  auto if_range = h[bhttp::field::if_range];
  if (!if_range.empty() && if_range != rec.etag) return {};
  return http::ParseRange(r, rec.size);
}

// ------------------------------------------------------------ answers

struct ApiError {
  bhttp::status status;
  std::string code;
  std::string message;
};

// The one place where Status kinds become HTTP answers.
ApiError ErrorFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound: return {bhttp::status::not_found, "not_found", s.message()};
    case StatusCode::kDeleted: return {bhttp::status::not_found, "deleted", s.message()};
    case StatusCode::kInvalid: return {bhttp::status::bad_request, "bad_request", s.message()};
    case StatusCode::kConflict: return {bhttp::status::conflict, "level_lowered", s.message()};
    case StatusCode::kNoSpace:
      return {bhttp::status::insufficient_storage, "disk_full",
              "not enough disk space to store the object: " + s.message()};
    case StatusCode::kTooLarge:
      return {bhttp::status::payload_too_large, "body_too_large", s.message()};
    case StatusCode::kUnavailable:
      return {bhttp::status::service_unavailable, "cold_store_unavailable", s.message()};
    case StatusCode::kCorruption:
      return {bhttp::status::bad_gateway, "cold_store_corrupt", s.message()};
    case StatusCode::kIOError:
    case StatusCode::kOk: break;
  }
  return {bhttp::status::internal_server_error, "internal", s.message()};
}

StringResponse JsonResponse(bhttp::status status, std::string body) {
  StringResponse res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

StringResponse ErrorResponse(const ApiError& e) {
  auto res = JsonResponse(e.status, http::ErrorJson(e.code, e.message));
  if (e.code == "deleted") res.set("X-Meta-Deleted", "true");
  return res;
}

StringResponse ErrorResponse(bhttp::status status, std::string code, std::string message) {
  return ErrorResponse(ApiError{status, std::move(code), std::move(message)});
}

StringResponse TextResponse(std::string body) {
  StringResponse res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

std::time_t LastModified(const ObjectRecord& r) {
  return static_cast<std::time_t>(r.timestamp_ns / 1'000'000'000);
}

// Calls add(name, value) for each X-Meta-* field of `r`: into a Beast message
// (SetMetaHeaders) or straight into a ResponseHead (hits).
template <typename Add>
void AddMetaHeaders(const ObjectRecord& r, Add&& add) {
  add("X-Meta-ID", r.key);
  add("X-Meta-Name", r.name);
  add("X-Meta-ConsistencyLevel", std::to_string(r.consistency));
  // A record from an older node may hold a raw DEL, which no header may carry.
  if (r.user_meta.find('\x7f') == std::string::npos) {
    add("X-Meta-UserMeta", r.user_meta);
  } else {
    add("X-Meta-UserMeta", EscapeDel(r.user_meta));
  }
  if (r.deleted) add("X-Meta-Deleted", "true");
}

void SetMetaHeaders(bhttp::fields& f, const ObjectRecord& r) {
  AddMetaHeaders(r, [&](std::string_view name, std::string_view value) { f.set(name, value); });
}

json MetaJson(const ObjectRecord& r) {
  json user = json::parse(r.user_meta, nullptr, false);
  if (user.is_discarded()) user = json::object();
  return json{{"id", r.key},
              {"name", r.name},
              {"size", r.size},
              {"etag", r.etag},
              {"content_type", http::ContentTypeForName(r.name)},
              {"timestamp", r.timestamp_ns},
              {"last_modified", http::FormatHttpDate(LastModified(r))},
              {"version", r.version.ToString()},
              {"consistency", r.consistency},
              {"user_meta", std::move(user)},
              {"deleted", r.deleted},
              {"local_body", r.local_body},
              {"cold", ColdStateName(r.cold)}};
}

json ColdStoreJson(const ColdStore& cold, const NodeStats& s) {
  ColdStoreHealth h = cold.Health();
  return json{{"location", cold.Describe()},
              {"gets", s.cold_fetches},
              {"get_errors", s.cold_fetch_errors},
              {"puts", s.cold_puts},
              {"put_errors", s.cold_put_errors},
              {"deletes", s.cold_deletes},
              {"delete_errors", s.cold_delete_errors},
              {"queue", s.journal.pending_cold + s.journal.pending_deletes},
              {"reachable", h.reachable},
              {"last_error", h.last_error},
              {"last_error_unix", h.last_error_unix},
              {"requests", h.requests},
              {"retries", h.retries},
              {"errors", h.errors},
              {"bytes_up", h.bytes_up},
              {"bytes_down", h.bytes_down}};
}

StringResponse RecordResponse(bhttp::status status, const ObjectRecord& r) {
  auto res = JsonResponse(status, MetaJson(r).dump());
  SetMetaHeaders(res, r);
  res.set("X-Meta-Size", std::to_string(r.size));
  res.set("X-Meta-Version", r.version.ToString());
  if (!r.deleted) res.set(bhttp::field::etag, r.etag);
  return res;
}

bool IsTrue(std::string_view v) { return v == "1" || boost::beast::iequals(v, "true"); }

StringResponse MethodNotAllowed(std::string_view allowed) {
  auto res = ErrorResponse(bhttp::status::method_not_allowed, "method_not_allowed",
                           "method not allowed here; allowed: " + std::string(allowed));
  res.set(bhttp::field::allow, allowed);
  return res;
}

}  // namespace

PublicApi::PublicApi(Node& node, ApiOptions options, cluster::Cluster* cluster)
    : node_(node), options_(std::move(options)), cluster_(cluster) {
  auto& m = node_.metrics();
  std::vector<double> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 10};
  requests_ = &m.AddCounter("objstore_http_requests_total", "Public API requests.");
  errors_4xx_ = &m.AddCounter("objstore_http_errors_total", "Error answers.", "class=\"4xx\"");
  errors_5xx_ = &m.AddCounter("objstore_http_errors_total", "Error answers.", "class=\"5xx\"");
  peer_relays_corrupt_ =
      &m.AddCounter("objstore_peer_relays_corrupt_total",
                    "Relays from a peer cut short: its bytes did not match the content hash.");
  get_latency_ = &m.AddHistogram("objstore_request_seconds", "Request latency.", bounds,
                                 "op=\"get\"");
  put_latency_ = &m.AddHistogram("objstore_request_seconds", "Request latency.", bounds,
                                 "op=\"put\"");
}

asio::awaitable<void> PublicApi::Handle(http::Exchange& ex) {
  requests_->Inc();
  const auto& h = ex.header();
  const auto method = h.method();
  std::string_view target = h.target();
  std::string_view path = target.substr(0, target.find('?'));
  const bool get_like = method == bhttp::verb::get || method == bhttp::verb::head;

  StringResponse res;
  // /api/v1/ping stays open: load balancers and probes check liveness there.
  TokenAuth::Verdict denied;
  if (options_.auth != nullptr && path != "/api/v1/ping") {
    denied = options_.auth->Check(h[bhttp::field::authorization], !get_like);
  }
  // Writes are not conditional: every node takes them and the newest version
  // (by HLC) wins everywhere, so there is no one current version to compare
  // an If-Match against. Refused rather than done unconditionally.
  const bool write_path =
      path == "/api/v1/put" || path.starts_with(kMetaPrefix) || path.starts_with(kDeletePrefix);
  const bool conditional = !h[bhttp::field::if_match].empty() ||
                           !h[bhttp::field::if_none_match].empty() ||
                           !h[bhttp::field::if_unmodified_since].empty();
  if (denied.status != 0) {
    res = ErrorResponse(static_cast<bhttp::status>(denied.status), denied.code, denied.message);
    res.set(bhttp::field::www_authenticate, denied.challenge);
  } else if (write_path && !get_like && conditional) {
    res = ErrorResponse(bhttp::status::not_implemented, "conditional_write_unsupported",
                        "If-Match, If-None-Match and If-Unmodified-Since are not supported on "
                        "writes: the cluster is multi-master and the newest version wins");
  } else if (path.starts_with(kGetPrefix)) {
    if (!get_like) {
      res = MethodNotAllowed("GET, HEAD");
    } else if (auto key = ParseId(path.substr(kGetPrefix.size())); !key.ok()) {
      res = ErrorResponse(bhttp::status::bad_request, "bad_id", key.status().message());
    } else {
      auto start = std::chrono::steady_clock::now();
      co_await Get(ex, *key);
      get_latency_->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      co_return;
    }
  } else if (path == "/api/v1/put") {
    if (method != bhttp::verb::post && method != bhttp::verb::put) {
      res = MethodNotAllowed("POST, PUT");
    } else {
      auto start = std::chrono::steady_clock::now();
      co_await Put(ex);
      put_latency_->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      co_return;
    }
  } else if (path.starts_with(kMetaPrefix)) {
    auto key = ParseId(path.substr(kMetaPrefix.size()));
    if (!get_like && method != bhttp::verb::post) {
      res = MethodNotAllowed("GET, HEAD, POST");
    } else if (!key.ok()) {
      res = ErrorResponse(bhttp::status::bad_request, "bad_id", key.status().message());
    } else {
      // if/else, not ?: — g++ 12 destroys the chosen awaitable twice.
      if (get_like) {
        co_await Meta(ex, *key);
      } else {
        co_await RaiseLevel(ex, *key);
      }
      co_return;
    }
  } else if (path.starts_with(kDeletePrefix)) {
    auto key = ParseId(path.substr(kDeletePrefix.size()));
    if (method != bhttp::verb::post && method != bhttp::verb::delete_) {
      res = MethodNotAllowed("POST, DELETE");
    } else if (!key.ok()) {
      res = ErrorResponse(bhttp::status::bad_request, "bad_id", key.status().message());
    } else {
      co_await Delete(ex, *key);
      co_return;
    }
  } else if (path == "/api/v1/id" || path == "/api/v1/ping" || path == "/api/v1/version" ||
             path == "/api/v1/stats" || path == "/metrics") {
    if (!get_like) {
      res = MethodNotAllowed("GET, HEAD");
    } else if (path == "/api/v1/id") {
      res = TextResponse(node_.NewId());
      res.set(bhttp::field::cache_control, "no-store");
    } else if (path == "/api/v1/ping") {
      res = TextResponse(node_.node_id());
    } else if (path == "/api/v1/version") {
      res = JsonResponse(bhttp::status::ok,
                         json{{"version", options_.version}, {"build", options_.build}}.dump());
    } else if (path == "/api/v1/stats") {
      co_await Stats(ex);
      co_return;
    } else {
      res = TextResponse(node_.metrics().Render());
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    }
  } else {
    res = ErrorResponse(bhttp::status::not_found, "not_found",
                        "no such endpoint: " + std::string(path));
  }
  if (res.result_int() >= 500) errors_5xx_->Inc();
  else if (res.result_int() >= 400) errors_4xx_->Inc();
  co_await ex.Send(std::move(res));
}

// ------------------------------------------------------------ PUT

asio::awaitable<void> PublicApi::Put(http::Exchange& ex) {
  const auto& h = ex.header();
  auto fail = [&](StringResponse res) -> asio::awaitable<void> {
    (res.result_int() >= 500 ? errors_5xx_ : errors_4xx_)->Inc();
    co_await ex.Send(std::move(res));
  };
  auto id_header = h["X-Meta-ID"];
  if (id_header.empty()) {
    co_await fail(ErrorResponse(bhttp::status::bad_request, "missing_id",
                                "X-Meta-ID is required: get a fresh id from GET /api/v1/id"));
    co_return;
  }
  PutSpec spec;
  auto key = ParseId(id_header);
  if (!key.ok()) {
    co_await fail(ErrorResponse(bhttp::status::bad_request, "bad_id", key.status().message()));
    co_return;
  }
  spec.key = *key;
  auto level = ParseLevel(h["X-Meta-ConsistencyLevel"]);
  if (!level.ok()) {
    co_await fail(ErrorResponse(bhttp::status::bad_request, "bad_level",
                                level.status().message()));
    co_return;
  }
  spec.consistency = *level;
  spec.name = std::string(h["X-Meta-Name"]);
  if (Status s = CheckName(spec.name); !s.ok()) {
    co_await fail(ErrorResponse(bhttp::status::bad_request, "bad_name", s.message()));
    co_return;
  }
  auto user_meta = ParseUserMeta(h["X-Meta-UserMeta"]);
  if (!user_meta.ok()) {
    co_await fail(ErrorResponse(bhttp::status::bad_request, "bad_user_meta",
                                user_meta.status().message()));
    co_return;
  }
  spec.user_meta = *user_meta;
  // Refuse early, before the body crosses the network.
  if (Status s = node_.CheckPut(spec); !s.ok()) {
    co_await fail(ErrorResponse(ErrorFor(s)));
    co_return;
  }

  // The budget first: a declared length that can never fit is refused before
  // any byte is read, and up to kPutReserveAhead of it is reserved (a refusal
  // then costs the client no upload); the rest, and a chunked body, reserve
  // as they arrive.
  Reservation reserved = node_.capacity().NewReservation();
  uint64_t declared = 0;
  if (auto cl = h[bhttp::field::content_length]; !cl.empty()) {
    std::from_chars(cl.data(), cl.data() + cl.size(), declared);
  }
  if (declared > node_.capacity().max_bytes()) {
    ex.CloseAfterResponse();  // the body is not read
    co_await fail(ErrorResponse(ErrorFor(
        Status::NoSpace(fmt::format("a body of {} bytes is larger than the whole budget ({} bytes)",
                                    declared, node_.capacity().max_bytes())))));
    co_return;
  }
  if (declared > 0) {
    Status r = co_await Reserve(reserved, std::min(declared, kPutReserveAhead));
    if (!r.ok()) {
      ex.CloseAfterResponse();  // the body is not read
      co_await fail(ErrorResponse(ErrorFor(r)));
      co_return;
    }
  }
  auto body = node_.BeginPut();
  if (!body.ok()) {
    co_await fail(ErrorResponse(ErrorFor(body.status())));
    co_return;
  }
  std::vector<char> buf(kBodyChunk);
  for (;;) {
    auto n = co_await ex.ReadBody(buf);
    if (!n.ok()) {
      if (n.status().code() == StatusCode::kUnavailable) co_return;  // client gone: nothing kept
      StringResponse res = ErrorResponse(bhttp::status::bad_request, "bad_request",
                                         n.status().message());
      if (n.status().code() == StatusCode::kTooLarge) res = ErrorResponse(ErrorFor(n.status()));
      co_await fail(std::move(res));
      co_return;
    }
    if (*n == 0) break;
    const uint64_t needed = (*body)->size() + *n;
    if (needed > reserved.bytes()) {
      // Ahead of the bytes in kPutReserveAhead steps (one wait for room per
      // step, not per read), never past the declared length.
      const uint64_t until = std::max(needed, std::min(declared, needed + kPutReserveAhead));
      Status r = co_await Reserve(reserved, until - reserved.bytes());
      if (!r.ok()) {
        (*body)->Abort();
        ex.CloseAfterResponse();
        co_await fail(ErrorResponse(ErrorFor(r)));
        co_return;
      }
    }
    if (Status s = (*body)->Append({buf.data(), *n}); !s.ok()) {
      (*body)->Abort();  // free the space now, not when the client is done
      ex.CloseAfterResponse();
      co_await fail(ErrorResponse(ErrorFor(s)));
      co_return;
    }
  }
  buf = {};
  AtomicFile& file = **body;
  auto committed = co_await RunBlocking(node_.blocking_pool(),
                                        [&] { return node_.FinishPut(spec, file, &reserved); });
  if (!committed.ok()) {
    co_await fail(ErrorResponse(ErrorFor(committed.status())));
    co_return;
  }
  const PutOutcome outcome = co_await ToColdStore(std::move(*committed));
  const ObjectRecord& rec = *outcome.record;
  if (!outcome.cold_status.ok()) {
    auto res =
        ErrorResponse(bhttp::status::service_unavailable, "cold_store_unavailable",
                      "the object is stored on this node but the cold store did not take it (" +
                          outcome.cold_status.message() + "); the upload is queued and retried");
    SetMetaHeaders(res, rec);
    co_await fail(std::move(res));
    co_return;
  }
  co_await ex.Send(RecordResponse(bhttp::status::ok, rec));
}

asio::awaitable<PutOutcome> PublicApi::ToColdStore(Committed committed) {
  if (!committed.to_cold) co_return PutOutcome{std::move(committed.record), Status::Ok()};
  // On the cold write pool: the blocking pool's threads never wait for S3.
  // An exception there is a cold store that did not take the change (the
  // record stays pending).
  auto out = co_await RunBlocking(node_.cold_write_pool(), [&]() -> Result<PutOutcome> {
    return node_.ToColdStore(*committed.record);
  });
  if (!out.ok()) co_return PutOutcome{std::move(committed.record), out.status()};
  co_return std::move(*out);
}

asio::awaitable<Status> PublicApi::Reserve(Reservation& reserved, uint64_t bytes) {
  Capacity& capacity = node_.capacity();
  if (capacity.TryReserve(reserved, bytes)) co_return Status::Ok();
  // Full: wait (off the event loop) for the eviction thread to make room.
  Status s = co_await RunBlocking(node_.blocking_pool(),
                                  [&] { return capacity.Reserve(reserved, bytes); });
  co_return s;
}

// ------------------------------------------------------------ GET

asio::awaitable<void> PublicApi::SettleFetch(std::string key) {
  std::shared_ptr<ColdFetch> fetch = node_.FetchInFlight(key);
  if (!fetch || !fetch->Current().verified) co_return;
  co_await fetch->Wait(std::numeric_limits<uint64_t>::max());  // committed or failed
}

asio::awaitable<void> PublicApi::Get(http::Exchange& ex, const std::string& key) {
  Node::RecordPtr rec = node_.Lookup(key);
  if (!rec || (!rec->deleted && !rec->local_body)) {
    // Right after the miss that fetched it, the body is here whole and
    // verified while its commit (fsyncs, journal) runs: a hit, served from
    // the fetch's file rather than after the commit.
    if (std::shared_ptr<ColdFetch> fetch = node_.VerifiedFetch(key, rec.get())) {
      co_await SendBody(ex, rec ? *rec : fetch->record(), fetch->fd());
      co_return;
    }
    co_await SettleFetch(key);
    rec = node_.Lookup(key);
  }
  // A concurrent overwrite may remove the body of the version looked up
  // between the lookup and the open: look again, and serve the newer version.
  for (int attempt = 0; rec && !rec->deleted && rec->local_body; ++attempt) {
    Result<LocalBody> local = OpenLocalBody(*rec);
    if (local.ok()) {
      co_await SendBody(ex, *rec, local->body.get(), local->body.bytes());
      co_return;
    }
    if (local.status().code() != StatusCode::kNotFound) {
      // The file is there but could not be opened (e.g. out of descriptors):
      // nothing is forgotten, the client may retry.
      spdlog::warn("cannot open the body of {}: {}", key, local.status().ToString());
      errors_5xx_->Inc();
      co_await ex.Send(ErrorResponse(bhttp::status::service_unavailable, "body_unavailable",
                                     "the body of " + key +
                                         " is on this node but could not be opened (" +
                                         local.status().message() + "); retry later"));
      co_return;
    }
    Node::RecordPtr again = node_.Lookup(key);
    if (again && again->version != rec->version && attempt < 8) {
      rec = std::move(again);
      continue;
    }
    // The body of the current version vanished (e.g. removed by hand).
    co_await RunBlocking(node_.blocking_pool(), [&] {
      node_.ForgetLocalBody(*rec);
      return Status::Ok();
    });
    rec = node_.Lookup(key);
    break;
  }
  if (rec && rec->deleted) {
    errors_4xx_->Inc();
    co_await ex.Send(ErrorResponse(bhttp::status::not_found, "deleted", key + " was deleted"));
    co_return;
  }
  node_.RecordMiss();
  // SPEC §2 step 3: a body on another live node is streamed from there.
  Status peer = Status::NotFound("no cluster");
  if (rec && cluster_) {
    peer = co_await ServePeer(ex, rec);
    if (peer.ok()) co_return;
  }
  const bool may_fetch = rec ? rec->consistency >= 1 : IsTrue(ex.header()["X-Meta-Fetch"]);
  if (!may_fetch) {
    if (!rec) {
      errors_4xx_->Inc();
      co_await ex.Send(ErrorResponse(bhttp::status::not_found, "not_found", "no object " + key));
    } else if (peer.code() == StatusCode::kUnavailable) {
      errors_5xx_->Inc();
      co_await ex.Send(ErrorResponse(bhttp::status::service_unavailable, "peer_unavailable",
                                     "level-0 object " + key + " lives only on node " +
                                         rec->version_node +
                                         ", which cannot serve it now: " + peer.message()));
    } else {
      errors_5xx_->Inc();
      co_await ex.Send(ErrorResponse(bhttp::status::service_unavailable, "body_unavailable",
                                     "the body of level-0 object " + key +
                                         " is not on this node and has no other copy"));
    }
    co_return;
  }
  // A HEAD of a known object is answered from its record, which holds all
  // that the answer says: fetching the body only to drop it would cost a cold
  // read, and a 507 when the budget is full. An unknown id's HEAD needs the
  // cold copy's metadata, and fetches.
  if (rec && ex.is_head()) {
    co_await SendRecordHead(ex, *rec);
    co_return;
  }
  // The body's fetch brings the body from its first byte: a range far ahead
  // of what it has brought (nothing, when none runs yet) is read on its own
  // (a Parquet footer, a seek in a video).
  if (rec) {
    const http::RangeDecision range = RequestedRange(ex, *rec);
    if (range.kind == http::RangeKind::kPartial && range.range.first >= kRangeReadAhead) {
      std::shared_ptr<ColdFetch> running = node_.FetchInFlight(key);
      const uint64_t fetched = running ? running->Current().sendable : 0;
      running.reset();
      if (range.range.first >= fetched + kRangeReadAhead) {
        const bool served = co_await ServeColdRange(ex, rec);
        if (served) co_return;
      }
    }
  }
  std::shared_ptr<ColdFetch> fetch = node_.FetchFromCold(key, /*restore_unknown=*/!rec);
  co_await ServeFetch(ex, key, *fetch);
}

// Decides the answer to a GET of `rec` from its headers: a complete answer
// (304, 416) in `early`, or the header of a 200/206 and the byte range to send.
struct PublicApi::BodyPlan {
  std::optional<StringResponse> early;
  http::ResponseHead head;  // 200, or 206 for a range
  uint64_t offset = 0;
  uint64_t length = 0;
};

PublicApi::BodyPlan PublicApi::PlanBody(const http::Exchange& ex, const ObjectRecord& rec,
                                        bool fetched) {
  const auto& h = ex.header();
  const std::time_t last_modified = LastModified(rec);
  // The fields of every answer about `rec`, through add(name, value); the
  // names are spelled as Beast spells its known fields.
  auto add_common = [&](auto&& add) {
    if (!rec.etag.empty()) add("ETag", rec.etag);
    add("Last-Modified", http::FormatHttpDate(last_modified));
    add("Accept-Ranges", "bytes");
    AddMetaHeaders(rec, add);
    if (fetched) add("X-Meta-Fetched", "true");
  };
  auto set_common = [&](bhttp::fields& f) {
    add_common([&](std::string_view name, std::string_view value) { f.set(name, value); });
  };
  BodyPlan plan;

  // Conditionals in RFC 9110 §13.2.2's order: If-Match (else
  // If-Unmodified-Since) may fail the request; If-None-Match wins over
  // If-Modified-Since.
  bool precondition_failed = false;
  if (auto im = h[bhttp::field::if_match]; !im.empty()) {
    precondition_failed = !http::IfMatchMatches(im, rec.etag);
  } else if (auto ius = h[bhttp::field::if_unmodified_since]; !ius.empty()) {
    auto since = http::ParseHttpDate(ius);
    precondition_failed = since && last_modified > *since;
  }
  if (precondition_failed) {
    errors_4xx_->Inc();
    plan.early = ErrorResponse(bhttp::status::precondition_failed, "precondition_failed",
                               "the object's current version does not meet If-Match or "
                               "If-Unmodified-Since");
    set_common(*plan.early);
    return plan;
  }
  bool not_modified = false;
  if (auto inm = h[bhttp::field::if_none_match]; !inm.empty()) {
    not_modified = !rec.etag.empty() && http::IfNoneMatchMatches(inm, rec.etag);
  } else if (auto ims = h[bhttp::field::if_modified_since]; !ims.empty()) {
    auto since = http::ParseHttpDate(ims);
    not_modified = since && last_modified <= *since;
  }
  if (not_modified) {
    plan.early.emplace(bhttp::status::not_modified, 11);
    set_common(*plan.early);
    return plan;
  }

  const http::RangeDecision range = RequestedRange(ex, rec);
  if (range.kind == http::RangeKind::kUnsatisfiable) {
    errors_4xx_->Inc();
    plan.early = ErrorResponse(bhttp::status::range_not_satisfiable, "range_not_satisfiable",
                               fmt::format("range not satisfiable for a body of {} bytes",
                                           rec.size));
    plan.early->set(bhttp::field::content_range, fmt::format("bytes */{}", rec.size));
    set_common(*plan.early);
    return plan;
  }
  add_common([&](std::string_view name, std::string_view value) { plan.head.Add(name, value); });
  plan.head.Add("Content-Type", http::ContentTypeForName(rec.name));
  plan.length = rec.size;
  if (range.kind == http::RangeKind::kPartial) {
    plan.head.set_status(206);
    plan.head.Add("Content-Range",
                  fmt::format("bytes {}-{}/{}", range.range.first, range.range.last, rec.size));
    plan.offset = range.range.first;
    plan.length = range.range.length();
  }
  return plan;
}

Result<PublicApi::LocalBody> PublicApi::OpenLocalBody(const ObjectRecord& rec) {
  BodyPin pin = node_.PinBody(rec.key);
  if (!pin.safe()) return Status::NotFound("the body of " + rec.key + " is being evicted");
  auto body = node_.OpenBody(rec);
  if (!body.ok()) return body.status();
  return LocalBody{std::move(pin), std::move(body).value()};
}

asio::awaitable<void> PublicApi::SendBody(http::Exchange& ex, const ObjectRecord& rec, int fd,
                                          const std::string* in_memory) {
  node_.RecordHit();
  BodyPlan plan = PlanBody(ex, rec, false);
  if (plan.early) {
    co_await ex.Send(std::move(*plan.early));
    co_return;
  }
  co_await ex.SendFile(plan.head, fd, plan.offset, plan.length, in_memory);
}

asio::awaitable<void> PublicApi::SendRecordHead(http::Exchange& ex, const ObjectRecord& rec) {
  BodyPlan plan = PlanBody(ex, rec, false);
  if (plan.early) {
    co_await ex.Send(std::move(*plan.early));
    co_return;
  }
  co_await ex.SendHead(plan.head, plan.length);
}

asio::awaitable<void> PublicApi::ServeFetch(http::Exchange& ex, std::string key,
                                            ColdFetch& fetch) {
  // Once committed, the fetched body is evictable: not while this GET sends it.
  BodyPin pin = node_.PinBody(key);
  // A HEAD needs the metadata only; a GET resumes once there are bytes to
  // send as well (they come with the metadata from the cold store's first
  // read): one wake-up, and the header goes out with the first bytes anyway.
  ColdFetch::Progress p = co_await fetch.Wait(0, /*wait_meta=*/ex.is_head());
  if (!p.status.ok()) {
    ApiError e = ErrorFor(p.status);
    (e.status >= bhttp::status::internal_server_error ? errors_5xx_ : errors_4xx_)->Inc();
    co_await ex.Send(ErrorResponse(e));
    co_return;
  }
  if (!p.has_meta) {  // nothing was transferred: the body was already here
    ColdFetch::RecordPtr rec = fetch.outcome();
    Result<LocalBody> local = Status::NotFound("no record");
    if (rec) local = OpenLocalBody(*rec);
    if (local.ok()) co_await SendBody(ex, *rec, local->body.get(), local->body.bytes());
    if (!ex.responded()) {
      errors_5xx_->Inc();
      co_await ex.Send(ErrorResponse(bhttp::status::service_unavailable, "body_unavailable",
                                     "the body vanished during the fetch"));
    }
    co_return;
  }
  BodyPlan plan = PlanBody(ex, fetch.record(), true);
  if (plan.early) {
    co_await ex.Send(std::move(*plan.early));
    co_return;
  }
  const uint64_t end = plan.offset + plan.length;
  const bool head_sent = co_await ex.SendHead(plan.head, plan.length);
  if (!head_sent || ex.is_head()) co_return;
  // Stream the body while it arrives; the fetch holds the chunk with the last
  // byte back until the whole body is verified.
  uint64_t pos = plan.offset;
  while (pos < end) {
    ColdFetch::Progress now = co_await fetch.Wait(pos);
    if (!now.status.ok()) {
      spdlog::warn("fetch of {} failed while streaming: {}", fetch.record().key,
                   now.status.ToString());
      ex.Abort();  // the client sees a short body and a closed connection
      co_return;
    }
    const uint64_t until = std::min(now.sendable, end);
    if (until <= pos) continue;
    const bool sent = co_await ex.SendFileBytes(fetch.fd(), pos, until - pos);
    if (!sent) co_return;
    pos = until;
  }
}

asio::awaitable<bool> PublicApi::ServeColdRange(http::Exchange& ex, Node::RecordPtr rec) {
  BodyPlan plan = PlanBody(ex, *rec, true);
  if (plan.early) {  // 304: the body is still brought into the cache
    node_.FetchFromCold(rec->key, /*restore_unknown=*/false);
    co_await ex.Send(std::move(*plan.early));
    co_return true;
  }
  // The range the client waits for is asked for first, then the body, which
  // fills the cache: where the two share a link or a server, the range does
  // not queue behind the body.
  std::shared_ptr<ColdFetch> read = node_.ReadColdRange(rec, plan.offset, plan.length);
  node_.FetchFromCold(rec->key, /*restore_unknown=*/false);
  const ColdFetch::Progress first = co_await read->Wait(0);
  if (!first.status.ok()) {
    spdlog::info("range read of {} failed, the GET waits for the fetch of the body: {}", rec->key,
                 first.status.ToString());
    co_return false;
  }
  const bool head_sent = co_await ex.SendHead(plan.head, plan.length);
  if (!head_sent) co_return true;
  // The read's file holds the range alone: its byte 0 is the body's byte
  // plan.offset.
  uint64_t pos = 0;
  while (pos < plan.length) {
    ColdFetch::Progress now = co_await read->Wait(pos);
    if (!now.status.ok()) {
      spdlog::warn("range read of {} failed while streaming: {}", rec->key, now.status.ToString());
      ex.Abort();  // the client sees a short body and a closed connection
      co_return true;
    }
    const uint64_t until = std::min(now.sendable, plan.length);
    if (until <= pos) continue;
    if (!co_await ex.SendFileBytes(read->fd(), pos, until - pos)) co_return true;
    pos = until;
  }
  co_return true;
}

asio::awaitable<Status> PublicApi::ServePeer(http::Exchange& ex, Node::RecordPtr rec) {
  BodyPlan plan = PlanBody(ex, *rec, false);
  if (plan.early) {  // 304, 412 or 416: decided from the metadata alone, no peer asked
    co_await ex.Send(std::move(*plan.early));
    co_return Status::Ok();
  }
  std::string range;
  if (plan.head.status() == 206) {
    range = fmt::format("bytes={}-{}", plan.offset, plan.offset + plan.length - 1);
  }
  // A HEAD asks the peer for the header alone: the body is there, and no
  // transfer starts only to be dropped.
  auto opened = co_await cluster_->OpenPeerBody(rec, std::move(range), ex.is_head());
  if (!opened.ok()) co_return opened.status();
  std::unique_ptr<cluster::PeerBodyStream> stream = std::move(opened).value();
  if (stream->content_length() != plan.length) {
    co_return Status::Unavailable("a peer answered a body of another length");
  }
  plan.head.Add("X-Meta-Symlink", "true");
  const bool head_sent = co_await ex.SendHead(plan.head, plan.length);
  if (!head_sent || ex.is_head()) co_return Status::Ok();
  // A whole body's last piece is sent only once the hash of all its bytes
  // matched the etag; a range is relayed unchecked (see the header).
  const bool whole_body = plan.offset == 0 && plan.length == rec->size;
  ContentHash hash;
  std::vector<char> buf(kBodyChunk);
  uint64_t sent = 0;
  while (sent < plan.length) {
    auto n = co_await stream->Read(std::span<char>(buf.data(), buf.size()));
    if (!n.ok() || *n == 0) {
      spdlog::warn("relay of {} from a peer stopped after {} of {} bytes", rec->key, sent,
                   plan.length);
      ex.Abort();  // the client sees a short body and a closed connection
      co_return Status::Ok();
    }
    const std::span<const char> piece(buf.data(), *n);
    if (whole_body) {
      hash.Update(piece);
      if (sent + *n >= plan.length && hash.ETag() != rec->etag) {
        spdlog::warn("relay of {} version {} from peer {} cut short: not the bytes of etag {}",
                     rec->key, rec->version.ToString(), stream->addr(), rec->etag);
        peer_relays_corrupt_->Inc();
        ex.Abort();
        co_return Status::Ok();
      }
    }
    const bool ok = co_await ex.SendBytes(piece);
    if (!ok) co_return Status::Ok();
    sent += *n;
  }
  co_return Status::Ok();
}

// ------------------------------------------------------------ meta, level, delete, stats

asio::awaitable<void> PublicApi::Meta(http::Exchange& ex, const std::string& key) {
  co_await SettleFetch(key);
  Node::RecordPtr rec = node_.Lookup(key);
  if (!rec) {
    errors_4xx_->Inc();
    co_await ex.Send(ErrorResponse(bhttp::status::not_found, "not_found", "no object " + key));
    co_return;
  }
  co_await ex.Send(RecordResponse(bhttp::status::ok, *rec));
}

asio::awaitable<void> PublicApi::RaiseLevel(http::Exchange& ex, const std::string& key) {
  auto level = ParseLevel(ex.header()["X-Meta-ConsistencyLevel"]);
  if (!level.ok() || ex.header()["X-Meta-ConsistencyLevel"].empty()) {
    errors_4xx_->Inc();
    std::string why = "X-Meta-ConsistencyLevel is required";
    if (!level.ok()) why = level.status().message();
    co_await ex.Send(ErrorResponse(bhttp::status::bad_request, "bad_level", std::move(why)));
    co_return;
  }
  int target = *level;
  co_await SettleFetch(key);
  // The cold copy carries the level in its metadata, so raising the level
  // rewrites the copy from the body: an evicted body comes back first, as a
  // GET would bring it, and stays pinned (by the fetch) until the level is
  // raised.
  std::shared_ptr<ColdFetch> fetch;
  if (Node::RecordPtr rec = node_.Lookup(key); rec && !rec->deleted && !rec->local_body &&
                                               rec->consistency >= 1 && target > rec->consistency) {
    fetch = node_.FetchFromCold(key, /*restore_unknown=*/false);
    const ColdFetch::Progress done = co_await fetch->Wait(std::numeric_limits<uint64_t>::max());
    if (!done.status.ok()) {
      const StatusCode code = done.status.code();
      ApiError e = ErrorFor(done.status);
      if (code != StatusCode::kNotFound && code != StatusCode::kDeleted &&
          code != StatusCode::kNoSpace) {
        e = {bhttp::status::service_unavailable, "body_unavailable",
             "the body of " + key +
                 " is not on this node and could not be fetched back to raise its level: " +
                 done.status.message()};
      }
      (e.status >= bhttp::status::internal_server_error ? errors_5xx_ : errors_4xx_)->Inc();
      co_await ex.Send(ErrorResponse(e));
      co_return;
    }
  }
  auto committed =
      co_await RunBlocking(node_.blocking_pool(), [&] { return node_.RaiseLevel(key, target); });
  if (!committed.ok()) {
    ApiError e = ErrorFor(committed.status());
    (e.status >= bhttp::status::internal_server_error ? errors_5xx_ : errors_4xx_)->Inc();
    co_await ex.Send(ErrorResponse(e));
    co_return;
  }
  const PutOutcome outcome = co_await ToColdStore(std::move(*committed));
  if (!outcome.cold_status.ok()) {
    errors_5xx_->Inc();
    auto res = ErrorResponse(bhttp::status::service_unavailable, "cold_store_unavailable",
                             "level raised; the cold store did not take the object yet (" +
                                 outcome.cold_status.message() + "); the upload is queued");
    SetMetaHeaders(res, *outcome.record);
    co_await ex.Send(std::move(res));
    co_return;
  }
  co_await ex.Send(RecordResponse(bhttp::status::ok, *outcome.record));
}

asio::awaitable<void> PublicApi::Delete(http::Exchange& ex, const std::string& key) {
  co_await SettleFetch(key);
  auto committed = co_await RunBlocking(node_.blocking_pool(), [&] { return node_.Delete(key); });
  if (!committed.ok()) {
    ApiError e = ErrorFor(committed.status());
    if (committed.status().code() == StatusCode::kConflict) e.code = "version_ahead";
    (e.status >= bhttp::status::internal_server_error ? errors_5xx_ : errors_4xx_)->Inc();
    co_await ex.Send(ErrorResponse(e));
    co_return;
  }
  // A cold store that fails the delete leaves the tombstone pending (retried).
  const PutOutcome outcome = co_await ToColdStore(std::move(*committed));
  co_await ex.Send(RecordResponse(bhttp::status::ok, *outcome.record));
}

asio::awaitable<void> PublicApi::Stats(http::Exchange& ex) {
  NodeStats s = node_.Stats();
  auto scaled = [](json& j, const char* unit, uint64_t div, const DiskUsage& d) {
    j[fmt::format("{}_all", unit)] = d.bytes_all / div;
    j[fmt::format("{}_used", unit)] = d.bytes_used / div;
    j[fmt::format("{}_free", unit)] = d.bytes_free / div;
  };
  json disk;
  scaled(disk, "bytes", 1, s.disk);
  scaled(disk, "kb", 1ull << 10, s.disk);
  scaled(disk, "mb", 1ull << 20, s.disk);
  scaled(disk, "gb", 1ull << 30, s.disk);
  json doc{{"node_id", node_.node_id()},
           {"disk_stats", disk},
           {"objects", s.journal.live_objects},
           {"tombstones", s.journal.tombstones},
           {"local_objects", s.journal.local_bodies},
           {"bytes", s.journal.local_bytes},
           {"hits", s.hits},
           {"misses", s.misses},
           {"peer_fetches", s.peer_fetches},
           {"peer_relays_corrupt", peer_relays_corrupt_->Value()},
           {"cold_fetches", s.cold_fetches},
           {"cold_range_reads", s.cold_range_reads},
           {"cold_fetch_resumes", s.cold_fetch_resumes},
           {"cold_fetch_parts", s.cold_fetch_parts},
           {"pending_uploads", s.journal.pending_cold},
           {"pending_deletes", s.journal.pending_deletes},
           {"cold_store", ColdStoreJson(node_.cold_store(), s)},
           {"capacity", json{{"policy", s.capacity.policy},
                             {"max_bytes", s.capacity.max_bytes},
                             {"used_bytes", s.capacity.used_bytes},
                             {"reserved_bytes", s.capacity.reserved_bytes},
                             {"evictable_bytes", s.capacity.evictable_bytes},
                             {"bodies", s.capacity.bodies},
                             {"evictions", s.capacity.evictions},
                             {"evicted_bytes", s.capacity.evicted_bytes},
                             {"refused_reservations", s.capacity.refused_reservations},
                             {"waiting_reservations", s.capacity.waiting_reservations},
                             {"dropped_hits", s.capacity.dropped_hits},
                             {"policy_hits", s.capacity.policy_hits}}},
           {"members", json::array({node_.node_id()})}};
  if (cluster_) {
    json cluster = cluster_->StatsJson();
    json members = json::array();
    for (const json& m : cluster["members"]) {
      if (m["state"] == "alive") members.push_back(m["id"]);
    }
    doc["members"] = std::move(members);
    doc["peer_fetches"] = cluster["peer_reads"];
    doc["cluster"] = std::move(cluster);
  }
  co_await ex.Send(JsonResponse(bhttp::status::ok, doc.dump()));
}

}  // namespace objstore::api
