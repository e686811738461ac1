// PublicApi: the routes of SPEC §2 on top of a Node (docs/API.md has the
// decisions the spec leaves open).
//
// Request flow: HttpServer parses a header and calls Handle(exchange); Handle
// routes by method and path, validates every header it interprets (ids,
// levels, names, user-meta JSON, Range, conditionals), calls the Node —
// blocking work through RunBlocking on the node's pool — and maps the Status
// it gets back to one HTTP answer (ErrorFor, one place for all of them).
// With bearer tokens configured (api/token_auth.h), a request whose token is
// missing or wrong is answered 401 (403 for a write with a read-only token)
// before any of that.
//
// Thread safety: stateless apart from the Node and atomic counters; Handle runs
// concurrently on every event loop.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "api/token_auth.h"
#include "cluster/cluster.h"
#include "http/server.h"
#include "node/node.h"

namespace objstore::api {

struct ApiOptions {
  std::string version = "dev";
  std::string build;  // compiler, build type, date
  // Bearer tokens every route but /api/v1/ping requires; null: no authentication.
  TokenAuth* auth = nullptr;
};

class PublicApi {
 public:
  // `cluster`: null for a node without the cluster (unit tests); then a miss
  // goes straight to the cold store.
  PublicApi(Node& node, ApiOptions options, cluster::Cluster* cluster = nullptr);
  boost::asio::awaitable<void> Handle(http::Exchange& ex);

 private:
  boost::asio::awaitable<void> Put(http::Exchange& ex);
  boost::asio::awaitable<void> Get(http::Exchange& ex, const std::string& key);
  boost::asio::awaitable<void> Meta(http::Exchange& ex, const std::string& key);
  boost::asio::awaitable<void> RaiseLevel(http::Exchange& ex, const std::string& key);
  boost::asio::awaitable<void> Delete(http::Exchange& ex, const std::string& key);
  boost::asio::awaitable<void> Stats(http::Exchange& ex);
  // The local body of `record`, pinned against eviction until this is
  // destroyed (after the last byte is sent). NotFound when it is being
  // evicted or gone (the caller treats that as a miss); another error when
  // the file is there but could not be opened (out of descriptors, EIO).
  struct LocalBody {
    BodyPin pin;
    SharedBody body;
  };
  Result<LocalBody> OpenLocalBody(const ObjectRecord& record);
  // Answers a hit of `record` from `fd`, a descriptor of its whole body, or
  // from `in_memory`, the whole body, when the caller holds it.
  boost::asio::awaitable<void> SendBody(http::Exchange& ex, const ObjectRecord& record, int fd,
                                        const std::string* in_memory = nullptr);
  // Answers a HEAD of `record` from the record alone, its body being
  // neither here nor on a peer: the answer a GET's header would be.
  boost::asio::awaitable<void> SendRecordHead(http::Exchange& ex, const ObjectRecord& record);
  boost::asio::awaitable<void> ServeFetch(http::Exchange& ex, std::string key,
                                          ColdFetch& fetch);
  // Answers a GET of a range of `record` from a range read of the cold store
  // (Node::ReadColdRange), and starts the fetch of the body. False when that
  // read failed before anything was sent: the caller answers from the body's
  // fetch instead.
  boost::asio::awaitable<bool> ServeColdRange(http::Exchange& ex, Node::RecordPtr record);
  // Adds `bytes` to a PUT's reservation, waiting off the loop when the budget
  // is full. NoSpace: answer 507.
  boost::asio::awaitable<Status> Reserve(Reservation& reserved, uint64_t bytes);
  // Runs what a PUT, level raise or DELETE committed through the cold store
  // when it must (Node::ToColdStore, on the node's cold write pool); without
  // a cold step, the committed record with an Ok status.
  boost::asio::awaitable<PutOutcome> ToColdStore(Committed committed);
  // Relays the body of `record` from a peer (X-Meta-Symlink). Ok once an
  // answer went out (even one cut short); otherwise why no peer could serve it.
  // A whole body is verified against the record's etag, its last piece held
  // back until the hash is known: a peer's copy that rotted on its disk cuts
  // the connection short (counted in peer_relays_corrupt), and the client
  // never gets a complete wrong body. A range is relayed unverified: the etag
  // covers the whole body only, and hashing it all for a few bytes would cost
  // the whole transfer.
  boost::asio::awaitable<Status> ServePeer(http::Exchange& ex, Node::RecordPtr record);
  // Waits until a cold fetch of `key` whose body is complete has committed
  // its record, so a request following a GET sees what that GET served (a
  // GET itself is served from the verified body meanwhile: Node::VerifiedFetch).
  boost::asio::awaitable<void> SettleFetch(std::string key);
  struct BodyPlan;
  BodyPlan PlanBody(const http::Exchange& ex, const ObjectRecord& record, bool fetched);

  Node& node_;
  ApiOptions options_;
  cluster::Cluster* cluster_;
  Histogram* get_latency_ = nullptr;
  Histogram* put_latency_ = nullptr;
  Counter* requests_ = nullptr;
  Counter* errors_4xx_ = nullptr;
  Counter* errors_5xx_ = nullptr;
  Counter* peer_relays_corrupt_ = nullptr;
};

}  // namespace objstore::api
