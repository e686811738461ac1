#include "cluster/cluster.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unordered_set>

#include "base/failpoint.h"
#include "base/percent_encoding.h"
#include "cluster/codec.h"
#include "coldstore/sigv4.h"
#include "http/range.h"
#include "node/blocking.h"

namespace objstore::cluster {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using json = nlohmann::json;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kPrefix = "/cluster/v1/";
constexpr std::string_view kBodyPrefix = "/cluster/v1/body/";
constexpr size_t kPushBatch = 1000;        // records per push call
constexpr size_t kSyncBatch = 5000;        // records per anti-entropy call
// Bytes of records per call or answer (RecordJsonBound), well inside the
// private API's body limit (kMaxCallBody): records with large user meta fill
// a call long before its count.
constexpr size_t kMaxCallBody = 32ull << 20;
constexpr size_t kRecordBytesPerCall = 8ull << 20;
// Bytes of private calls' bodies held at once before their signatures are
// checked: four of the largest.
constexpr uint64_t kMaxUnverifiedBytes = 4 * kMaxCallBody;
// Record hashes per leaves query (~11 bytes each once packed): a journal of
// millions of records that all differ (a node that just joined) is traded in
// several passes.
constexpr size_t kHashesPerQuery = 500'000;
constexpr int kMaxSyncPasses = 1000;       // passes of one exchange (20M records)
constexpr size_t kOutboxLimit = 100'000;   // beyond: dropped, anti-entropy repairs
constexpr size_t kReadChunk = 256 * 1024;  // body relay and pull buffer
constexpr int kIndirectProbes = 2;

// How many of `records` from `first` on go in one call: at most `max_count`,
// at most kRecordBytesPerCall of JSON, at least one.
template <typename Records>
size_t BatchEnd(const Records& records, size_t first, size_t max_count) {
  size_t n = 0, bytes = 0;
  while (first + n < records.size() && n < max_count) {
    bytes += RecordJsonBound(*records[first + n]);
    if (n > 0 && bytes > kRecordBytesPerCall) break;
    ++n;
  }
  return n;
}
constexpr size_t kColdDeletesPerRound = 256;  // tombstones marked stable per round
constexpr const char* kKnownMembersSetting = "cluster_members";  // journal setting

int64_t RealNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string BodyTarget(const ObjectRecord& r) {
  return std::string(kBodyPrefix) + sigv4::UriEncode(r.key, true) + "?v=" + r.version.ToString();
}

// host:port with the host replaced, keeping IPv6 brackets.
std::string WithHost(const std::string& addr, const std::string& host) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return addr;
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + addr.substr(colon);
}

// What a peer's answer to a body request other than 200/206 says. Only 404
// (ServeBody's no_body, the one 404 a body request gets) says that the peer
// holds no copy. A refusal (401 stale_request from a skewed clock, 403) or a
// failure (503: it holds the body but cannot open it) says nothing of the
// copy: a level-0 GET must then answer peer_unavailable, not that no copy is
// left.
Status BodyRefusal(const Member& peer, int status, const std::string& key) {
  if (status == 404) return Status::NotFound(peer.id + " holds no body of " + key);
  return Status::Unavailable(fmt::format("{} answered {} to a read of {}", peer.id, status, key));
}

// Every address of the host: 0.0.0.0, [::], or no host at all (":port").
bool Unspecified(const std::string& addr) {
  return addr.starts_with("0.0.0.0:") || addr.starts_with("[::]:") || addr.starts_with(':');
}

}  // namespace

Cluster::Cluster(Node& node, ClusterOptions options, RandomSource& random, const Clock& clock)
    : node_(node), options_(std::move(options)), random_(random), clock_(clock),
      auth_(options_.secret, options_.tag, random),
      membership_(clock, Member{node.node_id(), options_.advertise_addr, options_.public_addr}),
      client_(auth_, node.node_id(), options_.peer_timeout) {}

Cluster::~Cluster() { Stop(); }

Status Cluster::Start() {
  node_.SetChangeListener(
      [this](const ObjectRecord* before, const ObjectRecord& after) { OnJournalChange(before, after); });
  replaying_ = false;
  LoadKnownMembers();

  http::ServerOptions so;
  so.host = options_.private_host;
  so.port = options_.private_port;
  so.threads = 1;
  so.max_body_bytes = kMaxCallBody;
  so.header_timeout = std::chrono::milliseconds(10'000);
  so.idle_timeout = std::chrono::milliseconds(120'000);
  so.limits.max_connections = options_.max_connections;
  server_ = std::make_unique<http::HttpServer>(so, [this](http::Exchange& ex) { return Handle(ex); });
  if (Status s = server_->Start(); !s.ok()) return s;
  if (options_.private_port == 0 || options_.advertise_addr.empty() ||
      options_.advertise_addr.ends_with(":0")) {
    // Port 0 (tests): advertise the port actually bound.
    std::string host = options_.advertise_addr.empty() ? options_.private_host
                                                       : options_.advertise_addr.substr(
                                                             0, options_.advertise_addr.rfind(':'));
    options_.advertise_addr = fmt::format("{}:{}", host, server_->port());
    membership_.SetSelfAddr(options_.advertise_addr);
  }
  if (!auth_.enabled()) {
    spdlog::warn("no --cluster-secret: private calls are not authenticated; anyone who can "
                 "reach {} can change this node's journal", options_.advertise_addr);
  }
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      ctx_.get_executor());
  asio::co_spawn(ctx_, GossipLoop(), asio::detached);
  asio::co_spawn(ctx_, SyncLoop(), asio::detached);
  asio::co_spawn(ctx_, ReplicationLoop(), asio::detached);
  thread_ = std::thread([this] { ctx_.run(); });
  spdlog::info("cluster: private API on {}:{}, advertised as {}, tag '{}'", options_.private_host,
               server_->port(), options_.advertise_addr, options_.tag);
  return Status::Ok();
}

void Cluster::Stop() {
  if (stopping_.exchange(true)) return;
  // The node outlives the cluster and its blocking threads may still change
  // the journal (a cold fetch finishing): stop hearing of it first.
  node_.SetChangeListener(nullptr);
  if (server_) server_->Stop(std::chrono::milliseconds(1000));
  work_.reset();
  ctx_.stop();
  if (thread_.joinable()) thread_.join();
  client_.Clear();
  // Members learned since the last sync tick (the loop that saves them is gone).
  if (std::optional<std::string> text = TakeUnsavedKnownMembers()) {
    if (Status s = node_.PutSetting(kKnownMembersSetting, *text); !s.ok()) {
      spdlog::warn("saving the known cluster members failed: {}", s.ToString());
    }
  }
}

// ------------------------------------------------------------ journal changes

void Cluster::OnJournalChange(const ObjectRecord* before, const ObjectRecord& after) {
  const bool replicated_change = tree_.Change(before, after);
  if (replicated_change) TrackTombstone(after);
  if (replaying_) return;
  if (!replicated_change) {
    // Only local state changed: a body that vanished may need a new copy.
    if (!after.deleted && after.consistency == 2 && !after.local_body) {
      auto copy = std::make_shared<const ObjectRecord>(after);
      asio::post(ctx_, [this, copy] { WantBody(*copy); });
    }
    return;
  }
  auto record = std::make_shared<const ObjectRecord>(after);
  asio::post(ctx_, [this, record] {
    if (record->version_node == node_.node_id()) {
      for (const Member& peer : membership_.ReachablePeers()) {
        Outbox& box = outboxes_[peer.id];
        if (box.records.size() >= kOutboxLimit) continue;  // anti-entropy repairs
        box.records.push_back(record);
        push_backlog_.fetch_add(1);
        if (!box.sending) {
          box.sending = true;
          asio::co_spawn(ctx_, PushTo(peer.id), asio::detached);
        }
      }
    }
    WantBody(*record);
  });
}

asio::awaitable<void> Cluster::PushTo(std::string peer_id) {
  while (!stopping_) {
    Outbox& box = outboxes_[peer_id];
    if (box.records.empty()) {
      box.sending = false;
      co_return;
    }
    const size_t n = BatchEnd(box.records, 0, kPushBatch);
    json records = json::array();
    for (size_t i = 0; i < n; ++i) records.push_back(RecordToJson(*box.records[i]));
    box.records.erase(box.records.begin(), box.records.begin() + static_cast<ptrdiff_t>(n));
    push_backlog_.fetch_sub(n);
    auto member = membership_.Find(peer_id);
    if (!member || member->state == MemberState::kDead) {
      push_backlog_.fetch_sub(box.records.size());
      box.records.clear();
      continue;
    }
    json body{{"records", std::move(records)}};
    auto answer = co_await client_.Call(member->addr, "/cluster/v1/records", body.dump());
    if (answer.ok()) {
      pushed_.fetch_add(n);
    } else {
      push_failures_.fetch_add(1);
      spdlog::debug("push of {} records to {} failed: {}", n, peer_id, answer.status().ToString());
    }
  }
}

// ------------------------------------------------------------ private API

asio::awaitable<void> Cluster::Handle(http::Exchange& ex) {
  const auto& h = ex.header();
  const std::string target(h.target());
  const bool is_get = h.method() == bhttp::verb::get || h.method() == bhttp::verb::head;
  RequestFacts facts{std::string(h.method_string()),   target,
                     std::string(h[kTagHeader]),       std::string(h[kNodeHeader]),
                     std::string(h[kTimeHeader]),      std::string(h[kNonceHeader]),
                     std::string(h[kSignatureHeader]), {}};
  auto refuse = [&](int status, const std::string& code, const std::string& message) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = http::ErrorJson(code, message);
    ex.CloseAfterResponse();  // the body, if any, is not read
    return ex.Send(std::move(res));
  };
  if (CallAuthenticator::Verdict pre = auth_.PrecheckRequest(facts); !pre.ok()) {
    spdlog::warn("private call {} from {} refused before its body: {}", target, ex.remote_address(),
                 pre.code);
    co_await refuse(pre.status, pre.code, pre.message);
    co_return;
  }
  // Bodies held before their signature is checked are bounded in total, so
  // callers that send large bodies with made-up signatures cannot exhaust
  // memory (one body is bounded by the server's body limit).
  std::string body;
  uint64_t held = 0;
  struct Release {
    std::atomic<uint64_t>& total;
    uint64_t& held;
    ~Release() { total.fetch_sub(held); }
  } release{unverified_bytes_, held};
  std::vector<char> buf(64 * 1024);
  while (!ex.body_done()) {
    auto n = co_await ex.ReadBody(std::span<char>(buf.data(), buf.size()));
    if (!n.ok()) {
      co_await refuse(400, "bad_body", n.status().message());
      co_return;
    }
    if (*n == 0) break;
    held += *n;
    if (unverified_bytes_.fetch_add(*n) + *n > kMaxUnverifiedBytes) {
      co_await refuse(503, "busy", "too many private calls' bodies are arriving at once");
      co_return;
    }
    body.append(buf.data(), *n);
  }
  facts.body = body;
  CallAuthenticator::Verdict verdict = auth_.VerifyRequest(facts, RealNowMs());
  unverified_bytes_.fetch_sub(held);
  held = 0;
  if (!verdict.ok()) {
    spdlog::warn("private call {} from {} ({}) refused: {}", target, ex.remote_address(),
                 facts.node, verdict.code);
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(verdict.status), 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = http::ErrorJson(verdict.code, verdict.message);
    co_await ex.Send(std::move(res));
    co_return;
  }
  if (is_get && target.starts_with(kBodyPrefix)) {
    co_await ServeBody(ex, target);
    co_return;
  }

  Result<json> answer = Status::NotFound("no such private call: " + target);
  auto parsed = ParseBody(body.empty() ? std::string_view("{}") : std::string_view(body));
  if (h.method() != bhttp::verb::post) {
    answer = Status::NotFound("no such private call: " + std::string(h.method_string()) + " " + target);
  } else if (!parsed.ok() || !parsed->is_object()) {
    answer = Status::Invalid("the body must be a JSON object");
  } else if (auto to = parsed->find("to"); to != parsed->end() && *to != node_.node_id()) {
    // The caller meant another member, which had this address before: what
    // this node answers must not be credited to it (anti-entropy's word
    // that a member holds a tombstone).
    bhttp::response<bhttp::string_body> res{bhttp::status::misdirected_request, 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = http::ErrorJson("wrong_member",
                                 "this is member " + node_.node_id() + ", not " + to->dump());
    co_await ex.Send(std::move(res));
    co_return;
  } else if (target == "/cluster/v1/ping") {
    std::string remote = ex.remote_address();
    answer = co_await OnPing(std::move(parsed).value(), std::move(remote));
  } else if (target == "/cluster/v1/ping-req") {
    answer = co_await OnPingReq(std::move(parsed).value());
  } else if (target == "/cluster/v1/records") {
    answer = co_await OnRecords(std::move(parsed).value());
  } else if ((target == "/cluster/v1/tree" || target == "/cluster/v1/leaves") &&
             RefusesMirroredExchange(facts.node)) {
    answer = Status::Conflict("an exchange with this node is under way: started by the smaller id");
  } else if (target == "/cluster/v1/tree" || target == "/cluster/v1/leaves") {
    // Scans of the journal: off the private loop, which must keep answering pings.
    const bool tree = target == "/cluster/v1/tree";
    auto work = [this, tree, request = std::move(parsed).value()]() -> Result<json> {
      if (tree) return OnTree(request);
      return OnLeaves(request);
    };
    answer = co_await RunBlocking(node_.blocking_pool(), std::move(work));
    // The peer's exchange makes ours redundant only once it got what it
    // needs: the records of the leaves, or the word that the trees agree. An
    // exchange that broke off before (a call refused) does not count.
    const bool exchanged = answer.ok() && (!tree || (*answer)["differ"].empty());
    if (exchanged && !facts.node.empty()) {
      std::lock_guard lock(synced_by_mu_);
      synced_by_ms_[facts.node] = RealNowMs();
    }
  }
  bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  if (answer.ok()) {
    res.body() = answer->dump();
    const std::string signature = auth_.SignResponse(200, facts.nonce, res.body());
    if (!signature.empty()) res.set(kSignatureHeader, signature);
  } else {
    const Status& s = answer.status();
    switch (s.code()) {
      case StatusCode::kNotFound:
        res.result(bhttp::status::not_found);
        res.body() = http::ErrorJson("not_found", s.message());
        break;
      case StatusCode::kInvalid:
        res.result(bhttp::status::bad_request);
        res.body() = http::ErrorJson("bad_request", s.message());
        break;
      case StatusCode::kConflict:
        res.result(bhttp::status::conflict);
        res.body() = http::ErrorJson("busy", s.message());
        break;
      default:
        res.result(bhttp::status::service_unavailable);
        res.body() = http::ErrorJson("unavailable", s.message());
    }
  }
  co_await ex.Send(std::move(res));
}

asio::awaitable<void> Cluster::ServeBody(http::Exchange& ex, std::string target) {
  // /cluster/v1/body/<percent-encoded key>?v=<version>
  std::string rest = target.substr(kBodyPrefix.size());
  auto q = rest.find("?v=");
  std::optional<std::string> key;
  HlcTimestamp version;
  if (q != std::string::npos) key = PercentDecode(rest.substr(0, q));
  bhttp::response<bhttp::string_body> err{bhttp::status::bad_request, 11};
  err.set(bhttp::field::content_type, "application/json");
  if (!key || !HlcTimestamp::Parse(rest.substr(q + 3), &version)) {
    err.body() = http::ErrorJson("bad_request", "expected /cluster/v1/body/<key>?v=<version>");
    co_await ex.Send(std::move(err));
    co_return;
  }
  Node::RecordPtr rec = node_.Lookup(*key);
  // Not evicted while a peer reads it, as a public GET's body is not; not a
  // hit either (a replica pull is no sign that the body is read here).
  BodyPin pin = node_.capacity().Pin(*key);
  Result<SharedBody> body = Status::NotFound("no body");
  if (rec && !rec->deleted && rec->version == version && pin.safe()) body = node_.OpenBody(*rec);
  if (!body.ok()) {
    if (body.status().code() == StatusCode::kNotFound) {
      err.result(bhttp::status::not_found);
      err.body() = http::ErrorJson(
          "no_body", "this node holds no body of " + *key + " version " + version.ToString());
    } else {
      // The body is here but cannot be opened (out of descriptors, EIO): a
      // 404 would tell the caller that no copy is here, and a level-0 GET
      // there would answer that none is left.
      err.result(bhttp::status::service_unavailable);
      err.body() = http::ErrorJson("unavailable",
                                   "the body of " + *key + " version " + version.ToString() +
                                       " is here but cannot be opened: " + body.status().message());
    }
    co_await ex.Send(std::move(err));
    co_return;
  }
  http::ResponseHead res;
  res.Add("ETag", rec->etag);
  uint64_t offset = 0, length = rec->size;
  if (auto r = ex.header()[bhttp::field::range]; !r.empty()) {
    http::RangeDecision d = http::ParseRange(r, rec->size);
    if (d.kind == http::RangeKind::kUnsatisfiable) {
      err.result(bhttp::status::range_not_satisfiable);
      err.set(bhttp::field::content_range, fmt::format("bytes */{}", rec->size));
      err.body() = http::ErrorJson("range_not_satisfiable", "range not satisfiable");
      co_await ex.Send(std::move(err));
      co_return;
    }
    if (d.kind == http::RangeKind::kPartial) {
      res.set_status(206);
      res.Add("Content-Range",
              fmt::format("bytes {}-{}/{}", d.range.first, d.range.last, rec->size));
      offset = d.range.first;
      length = d.range.length();
    }
  }
  if (!ex.is_head()) bodies_served_.fetch_add(1);
  co_await ex.SendFile(res, body->get(), offset, length, body->bytes());
}

json Cluster::PingBody() const {
  json members = json::array();
  std::set<std::string> listed;
  for (const Member& m : membership_.All()) {
    members.push_back(MemberToJson(m, options_.tag));
    listed.insert(m.id);
  }
  json known = json::object();
  for (const auto& [id, addr] : KnownMembers()) {
    if (!listed.count(id)) known[id] = addr;
  }
  return json{{"from", MemberToJson(membership_.self(), options_.tag)},
              {"members", std::move(members)},
              {"known", std::move(known)}};
}

asio::awaitable<json> Cluster::OnPing(json body, std::string remote_ip) {
  PingMessage ping = PingFromJson(body);
  if (ping.from) {
    // A peer listening on 0.0.0.0 is reached at the address we see it from.
    if (Unspecified(ping.from->addr) && !remote_ip.empty()) {
      ping.from->addr = WithHost(ping.from->addr, remote_ip);
    }
    OnEvents(membership_.Heard(*ping.from));
  }
  if (!ping.members.empty()) OnEvents(membership_.Merge(ping.members));
  RememberHearsay(ping.known);
  co_return PingBody();
}

asio::awaitable<Result<json>> Cluster::OnPingReq(json body) {
  if (!body.contains("target") || !body["target"].is_string()) {
    co_return Status::Invalid("expected {\"target\": \"<member id>\"}");
  }
  auto member = membership_.Find(body["target"].get<std::string>());
  bool ack = false;
  if (member) ack = co_await Ping(member->addr, member->id);
  co_return json{{"ack", ack}};
}

asio::awaitable<Result<json>> Cluster::OnRecords(json body) {
  if (!body.contains("records")) co_return Status::Invalid("records missing");
  auto records = RecordsFromJson(body["records"]);
  if (!records.ok()) co_return records.status();
  auto applied = co_await ApplyRecords(std::move(records).value());
  if (!applied.ok()) co_return applied.status();
  co_return json{{"applied", *applied}};
}

asio::awaitable<Result<size_t>> Cluster::ApplyRecords(std::vector<ObjectRecord> records) {
  const size_t n = records.size();
  // "Stable" travels, its time does not: this node's grace period starts now.
  const int64_t now = RealNowMs();
  for (ObjectRecord& r : records) {
    if (r.stable_ms != 0) r.stable_ms = now;
  }
  auto work = [this, records = std::move(records)]() -> Result<size_t> {
    auto written = node_.ApplyRemote(records);
    if (!written.ok()) return written.status();
    return written->size();
  };
  Result<size_t> applied = co_await RunBlocking(node_.blocking_pool(), std::move(work));
  if (applied.ok()) sync_records_received_.fetch_add(n);
  co_return applied;
}

bool Cluster::RefusesMirroredExchange(const std::string& caller) const {
  // We keep our exchange when our id is the smaller; the caller's then fails
  // at its first call and it stops (SyncPass).
  std::lock_guard lock(synced_by_mu_);
  return !caller.empty() && node_.node_id() < caller && syncing_.count(caller) > 0;
}

int64_t Cluster::LastSyncedBy(const std::string& peer_id) const {
  std::lock_guard lock(synced_by_mu_);
  auto it = synced_by_ms_.find(peer_id);
  return it == synced_by_ms_.end() ? 0 : it->second;
}

Result<json> Cluster::OnTree(const json& body) const {
  // The answer lists the indices of the asked nodes whose hashes differ.
  auto query = TreeQueryFromJson(body);
  if (!query.ok()) return query.status();
  json differ = json::array();
  for (size_t i = 0; i < query->indices.size(); ++i) {
    if (tree_.Hash(query->level, query->indices[i]) != query->hashes[i]) {
      differ.push_back(query->indices[i]);
    }
  }
  return json{{"differ", std::move(differ)}};
}

Result<json> Cluster::OnLeaves(const json& body) const {
  auto query = LeavesQueryFromJson(body);
  if (!query.ok()) return query.status();
  const std::unordered_set<uint32_t>& leaves = query->leaves;
  const std::unordered_set<uint64_t>& theirs = query->hashes;
  json records = json::array();
  bool truncated = false;
  std::unordered_set<uint64_t> mine;
  // Stable tombstones go last: a caller that never knew their keys refuses
  // them (Journal::ApplyRemote), so ahead of live records they could fill
  // every bounded answer and hold those back.
  std::vector<Node::RecordPtr> stable_tombstones;
  size_t answer_bytes = 0;
  auto add = [&](const ObjectRecord& r) {
    // A bounded answer, in records and bytes: the caller comes back for the
    // rest (a new node joining a large cluster must not get one answer of
    // the whole journal).
    const size_t bytes = RecordJsonBound(r);
    if (records.size() < options_.max_records_per_answer &&
        (records.empty() || answer_bytes + bytes <= kRecordBytesPerCall)) {
      records.push_back(RecordToJson(r));
      answer_bytes += bytes;
    } else {
      truncated = true;
    }
  };
  node_.ScanRecords([&](const Node::RecordPtr& r) {
    if (!leaves.count(SyncTree::LeafOf(r->key))) return;
    const uint64_t h = SyncTree::RecordHash(*r);
    mine.insert(h);
    if (theirs.count(h)) return;
    if (r->deleted && r->stable_ms != 0) {
      stable_tombstones.push_back(r);
    } else {
      add(*r);
    }
  });
  for (const Node::RecordPtr& r : stable_tombstones) add(*r);
  std::vector<uint64_t> want;
  for (uint64_t h : theirs) {
    if (!mine.count(h)) want.push_back(h);
  }
  return json{{"records", std::move(records)}, {"want", PackHashes(want)}, {"truncated", truncated}};
}

// ------------------------------------------------------------ membership

void Cluster::OnEvents(const std::vector<MembershipEvent>& events) {
  RememberMembers(events);
  for (const MembershipEvent& e : events) {
    if (e.is_new) {
      spdlog::info("cluster: member {} joined ({})", e.id, MemberStateName(e.to));
    } else {
      spdlog::info("cluster: member {} is {} (was {})", e.id, MemberStateName(e.to),
                   MemberStateName(e.from));
    }
    // A member that (re)appears gets an anti-entropy exchange at once, started
    // by one side only (the smaller id), since both see the event.
    if (e.to == MemberState::kAlive && (e.is_new || e.from == MemberState::kDead) &&
        node_.node_id() < e.id) {
      if (auto m = membership_.Find(e.id)) {
        asio::co_spawn(ctx_, AntiEntropy(*m), asio::detached);
      }
    }
  }
}

void Cluster::LoadKnownMembers() {
  std::optional<std::string> saved = node_.Setting(kKnownMembersSetting);
  if (!saved) return;
  json parsed = json::parse(*saved, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    spdlog::error("setting {} of the journal is not a JSON object; known members start empty",
                  kKnownMembersSetting);
    return;
  }
  std::lock_guard lock(known_mu_);
  for (const auto& [id, addr] : parsed.items()) {
    if (id != node_.node_id() && addr.is_string()) known_members_[id] = addr.get<std::string>();
  }
}

void Cluster::RememberMembers(const std::vector<MembershipEvent>& events) {
  for (const MembershipEvent& e : events) {
    std::optional<Member> m = membership_.Find(e.id);
    if (!m || m->id == node_.node_id()) continue;
    std::lock_guard lock(known_mu_);
    auto [it, is_new] = known_members_.try_emplace(m->id, m->addr);
    if (is_new || (!m->addr.empty() && it->second != m->addr)) {
      it->second = m->addr;
      known_members_unsaved_ = true;
    }
  }
}

void Cluster::RememberHearsay(const std::map<std::string, std::string>& known) {
  std::lock_guard lock(known_mu_);
  for (const auto& [id, addr] : known) {
    if (id == node_.node_id()) continue;
    // The address of a member already known stays the one this node saw.
    if (known_members_.try_emplace(id, addr).second) {
      known_members_unsaved_ = true;
      spdlog::info(
          "cluster: learned of member {} ({}) from a peer that knew it before; "
          "its word is awaited before tombstones are purged",
          id, addr);
    }
  }
}

std::optional<std::string> Cluster::TakeUnsavedKnownMembers() {
  std::lock_guard lock(known_mu_);
  if (!known_members_unsaved_) return std::nullopt;
  known_members_unsaved_ = false;
  json out = json::object();
  for (const auto& [id, addr] : known_members_) out[id] = addr;
  return out.dump();
}

asio::awaitable<void> Cluster::SaveKnownMembers() {
  std::optional<std::string> text = TakeUnsavedKnownMembers();
  if (!text) co_return;
  // Runs only on the cluster loop, one save at a time: the last write holds
  // every member learned before it started.
  auto save = [&node = node_, text = std::move(*text)] {
    return node.PutSetting(kKnownMembersSetting, text);
  };
  Status s = co_await RunBlocking(node_.blocking_pool(), std::move(save));
  if (!s.ok()) {
    spdlog::warn("saving the known cluster members failed (will retry): {}", s.ToString());
    std::lock_guard lock(known_mu_);
    known_members_unsaved_ = true;
  }
}

std::map<std::string, std::string> Cluster::KnownMembers() const {
  std::lock_guard lock(known_mu_);
  return known_members_;
}

asio::awaitable<bool> Cluster::Ping(std::string addr, std::string expected_id) {
  auto answer = co_await client_.Call(addr, "/cluster/v1/ping", PingBody().dump());
  if (!answer.ok()) {
    spdlog::debug("ping {} failed: {}", addr, answer.status().ToString());
    co_return false;
  }
  PingMessage ping = PingFromJson(*answer);
  if (ping.from) {
    if (ping.from->addr.empty() || Unspecified(ping.from->addr)) ping.from->addr = addr;
    OnEvents(membership_.Heard(*ping.from));
  }
  if (!ping.members.empty()) OnEvents(membership_.Merge(ping.members));
  RememberHearsay(ping.known);
  // Another node at the address (a container IP reused by a new member)
  // answers for itself, not for the one probed.
  if (!expected_id.empty() && (!ping.from || ping.from->id != expected_id)) {
    spdlog::debug("ping {}: answered by {}, not {}", addr, ping.from ? ping.from->id : "nobody",
                  expected_id);
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> Cluster::Contact(std::string addr) {
  bool ok = co_await Ping(std::move(addr));
  (void)ok;  // a failure changes nothing: the address is only a hint
}

asio::awaitable<void> Cluster::ProbeRound(Member target) {
  bool ok = co_await Ping(target.addr, target.id);
  if (ok) co_return;
  // Indirect probes through up to two other members (SWIM's ping-req): a
  // congested link between us and the target does not make it suspect.
  std::vector<Member> helpers;
  for (const Member& m : membership_.ReachablePeers()) {
    if (m.id != target.id && m.state == MemberState::kAlive) helpers.push_back(m);
  }
  std::shuffle(helpers.begin(), helpers.end(), std::mt19937(static_cast<uint32_t>(RealNowMs())));
  if (helpers.size() > kIndirectProbes) helpers.resize(kIndirectProbes);
  for (const Member& helper : helpers) {
    json req{{"target", target.id}};
    auto answer = co_await client_.Call(helper.addr, "/cluster/v1/ping-req", req.dump());
    if (answer.ok() && answer->value("ack", false)) co_return;
  }
  OnEvents(membership_.ProbeFailed(target.id));
}

asio::awaitable<void> Cluster::GossipLoop() {
  asio::steady_timer timer(ctx_);
  uint64_t tick = 0;
  std::mt19937 rng(static_cast<uint32_t>(RealNowMs()));
  while (!stopping_) {
    ++tick;
    OnEvents(membership_.ExpireSuspects(options_.suspect_timeout));
    std::vector<Member> peers = membership_.ReachablePeers();
    // Seeds: until some peer is known, every tick; afterwards now and then, so
    // a node that was split from the rest finds it again.
    if (peers.empty() || tick % 20 == 0) {
      std::set<std::string> addrs(options_.seeds.begin(), options_.seeds.end());
      // Members known before a restart too: a node started without seeds
      // (the first one) finds the others itself.
      if (peers.empty()) {
        for (const auto& [id, addr] : KnownMembers()) {
          if (!addr.empty()) addrs.insert(addr);
        }
      }
      addrs.erase(options_.advertise_addr);
      for (const std::string& addr : addrs) asio::co_spawn(ctx_, Contact(addr), asio::detached);
    }
    if (!peers.empty()) {
      // Round-robin over a shuffled order: every member is probed once per round.
      if (probe_order_.empty()) {
        for (const Member& m : peers) probe_order_.push_back(m.id);
        std::shuffle(probe_order_.begin(), probe_order_.end(), rng);
      }
      std::string id = probe_order_.back();
      probe_order_.pop_back();
      if (auto m = membership_.Find(id); m && m->state != MemberState::kDead) {
        asio::co_spawn(ctx_, ProbeRound(*m), asio::detached);
      }
    }
    // Dead members are tried again every few seconds: a healed partition or a
    // restarted node is found even if it does not call first.
    if (tick % 8 == 0) {
      std::vector<Member> dead = membership_.DeadPeers();
      if (!dead.empty()) {
        Member m = dead[rng() % dead.size()];
        asio::co_spawn(ctx_, Contact(m.addr), asio::detached);
      }
    }
    timer.expires_after(options_.gossip_interval);
    co_await timer.async_wait(kTuple);
  }
}

// ------------------------------------------------------------ anti-entropy

std::vector<Member> Cluster::SyncCandidates() const {
  std::vector<Member> out;
  for (const Member& m : membership_.ReachablePeers()) {
    if (m.state == MemberState::kAlive) out.push_back(m);
  }
  return out;
}

asio::awaitable<void> Cluster::SyncLoop() {
  asio::steady_timer timer(ctx_);
  std::mt19937 rng(static_cast<uint32_t>(RealNowMs()) ^ 0x9e3779b9u);
  while (!stopping_) {
    // Jittered (0.5–1.5 intervals): two members rarely start an exchange with
    // each other at the same moment, which would move every record twice.
    const auto interval = options_.sync_interval.count();
    timer.expires_after(std::chrono::milliseconds(interval / 2 + rng() % (interval + 1)));
    co_await timer.async_wait(kTuple);
    std::vector<Member> peers = SyncCandidates();
    if (!peers.empty()) co_await AntiEntropy(peers[rng() % peers.size()]);
    // Every tick, not only after an exchange of ours: a tombstone every member
    // confirmed may have waited for its cold delete, and exchanges a peer
    // started lately make ours skip.
    co_await SaveKnownMembers();  // before any tombstone is judged against them
    // On its own: marking a tombstone stable waits on the cold store (a
    // second delete), and exchanges must go on meanwhile. One round at a time.
    if (!stabilizing_.exchange(true)) asio::co_spawn(ctx_, StabilizeTombstones(), asio::detached);
    co_await PurgeTombstones();
    ScanForReplication();
  }
}

asio::awaitable<void> Cluster::AntiEntropy(Member peer) {
  // One exchange per pair at a time: the exchange moves records both ways, so
  // one that the peer started lately makes ours redundant.
  // Own tombstones wait for every member's word, which only our own
  // exchanges collect.
  if (RealNowMs() - LastSyncedBy(peer.id) < 2 * options_.sync_interval.count() &&
      !AwaitsConfirmationFrom(peer.id)) {
    co_return;
  }
  {
    std::lock_guard lock(synced_by_mu_);
    if (!syncing_.insert(peer.id).second) co_return;
  }
  sync_rounds_.fetch_add(1);
  for (int pass = 0; pass < kMaxSyncPasses && !stopping_; ++pass) {
    bool more = co_await SyncPass(peer);
    if (!more) break;
  }
  {
    std::lock_guard lock(synced_by_mu_);
    syncing_.erase(peer.id);
  }
}

asio::awaitable<bool> Cluster::SyncPass(Member peer) {
  const auto started = std::chrono::steady_clock::now();
  // Taken before any hash is read: what the tree held then is what the
  // exchange shows the peer holds (ConfirmTombstones).
  const int64_t as_of_ms = RealNowMs();
  auto took_ms = [&started] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started)
        .count();
  };
  auto call = [this, &peer](std::string target, json body) -> asio::awaitable<Result<json>> {
    body["to"] = peer.id;  // answered only by that member, not by another at its address
    std::string text = body.dump();
    sync_bytes_sent_.fetch_add(text.size());
    size_t answer_bytes = 0;
    auto answer = co_await client_.Call(peer.addr, std::move(target), std::move(text),
                                        options_.sync_timeout, &answer_bytes);
    sync_bytes_received_.fetch_add(answer_bytes);
    co_return answer;
  };
  // Descend the tree through the nodes that differ.
  std::vector<uint32_t> frontier{0};
  for (int level = 0; level <= SyncTree::kLeafLevel && !frontier.empty(); ++level) {
    json parents = json::array();
    std::vector<uint64_t> hashes;
    if (level == 0) {
      hashes.push_back(tree_.Root());
    } else {
      for (uint32_t parent : frontier) {
        parents.push_back(parent);
        for (uint32_t c = parent * SyncTree::kFanout; c < (parent + 1) * SyncTree::kFanout; ++c) {
          hashes.push_back(tree_.Hash(level, c));
        }
      }
    }
    json query{{"level", level}, {"parents", std::move(parents)}, {"hashes", PackHashes(hashes)}};
    auto answer = co_await call("/cluster/v1/tree", std::move(query));
    // A Result is never made from an Ok status (it asserts): decode only an answer.
    // Only nodes asked about, each once: the next level's query costs 16
    // hashes for each.
    Result<std::vector<uint32_t>> differ = answer.ok()
                                               ? TreeAnswerFromJson(*answer, level, frontier)
                                               : Result<std::vector<uint32_t>>(answer.status());
    if (!differ.ok()) {
      spdlog::debug("anti-entropy with {} failed: {}", peer.id, differ.status().ToString());
      co_return false;
    }
    frontier = std::move(differ).value();
    if (level == 0 && frontier.empty()) {
      last_sync_ms_ = RealNowMs();
      ConfirmTombstones(peer.id, as_of_ms, {}, {});
      co_return false;  // the journals agree
    }
  }
  if (frontier.empty()) co_return false;
  // The differing leaves: trade record hashes, then records. The journal scan
  // runs on the blocking pool: the cluster loop must keep probing.
  using HashedRecords = std::unordered_map<uint64_t, Node::RecordPtr>;
  auto scan = [this, leaves = std::unordered_set<uint32_t>(frontier.begin(), frontier.end())] {
    auto found = std::make_shared<HashedRecords>();
    node_.ScanRecords([&](const Node::RecordPtr& r) {
      if (leaves.count(SyncTree::LeafOf(r->key))) found->emplace(SyncTree::RecordHash(*r), r);
    });
    return Result<std::shared_ptr<HashedRecords>>(std::move(found));
  };
  auto scanned = co_await RunBlocking(node_.blocking_pool(), std::move(scan));
  if (!scanned.ok()) co_return false;
  // Too many hashes for one query: the first leaves now, the rest in the
  // passes that follow (these leaves agree by then).
  bool leaves_left = false;
  if ((*scanned)->size() > kHashesPerQuery) {
    std::unordered_map<uint32_t, size_t> per_leaf;
    for (const auto& [h, r] : **scanned) ++per_leaf[SyncTree::LeafOf(r->key)];
    size_t taken = 0, kept = 0;
    while (kept < frontier.size() &&
           (kept == 0 || taken + per_leaf[frontier[kept]] <= kHashesPerQuery)) {
      taken += per_leaf[frontier[kept++]];
    }
    leaves_left = kept < frontier.size();
    frontier.resize(kept);
    const std::unordered_set<uint32_t> now(frontier.begin(), frontier.end());
    std::erase_if(**scanned,
                  [&now](const auto& e) { return !now.count(SyncTree::LeafOf(e.second->key)); });
  }
  const HashedRecords& mine = **scanned;
  std::vector<uint64_t> hashes;
  hashes.reserve(mine.size());
  for (const auto& [h, r] : mine) hashes.push_back(h);
  json query{{"leaves", frontier}, {"hashes", PackHashes(hashes)}};
  auto answer = co_await call("/cluster/v1/leaves", std::move(query));
  Result<LeavesAnswer> leaves =
      answer.ok() ? LeavesAnswerFromJson(*answer) : Result<LeavesAnswer>(answer.status());
  if (!leaves.ok()) {
    spdlog::debug("anti-entropy with {} failed: {}", peer.id, leaves.status().ToString());
    co_return false;
  }
  const bool truncated = leaves->truncated;
  const std::unordered_set<uint64_t> peer_wants(leaves->want.begin(), leaves->want.end());
  ConfirmTombstones(peer.id, as_of_ms,
                    std::unordered_set<uint32_t>(frontier.begin(), frontier.end()), peer_wants);
  const size_t n_in = leaves->records.size();
  size_t n_applied = 0;
  if (n_in > 0) {
    auto applied = co_await ApplyRecords(std::move(leaves->records));
    if (applied.ok()) {
      n_applied = *applied;
    } else {
      spdlog::warn("anti-entropy: applying records failed: {}", applied.status().ToString());
    }
  }
  std::vector<Node::RecordPtr> wanted;
  for (uint64_t v : peer_wants) {
    auto it = mine.find(v);
    if (it == mine.end()) continue;
    // Only what is still current here: a record the peer just replaced with
    // a newer version (applied above) would be refused anyway.
    Node::RecordPtr now = node_.Lookup(it->second->key);
    if (now && SyncTree::RecordHash(*now) == v) wanted.push_back(std::move(now));
  }
  for (size_t i = 0, end; i < wanted.size(); i = end) {
    end = i + BatchEnd(wanted, i, kSyncBatch);
    json records = json::array();
    for (size_t k = i; k < end; ++k) records.push_back(RecordToJson(*wanted[k]));
    const size_t n = records.size();
    json body{{"records", std::move(records)}};
    auto pushed = co_await call("/cluster/v1/records", std::move(body));
    if (!pushed.ok()) co_return false;
    sync_records_sent_.fetch_add(n);
  }
  // A truncated answer of which nothing was taken (stable tombstones of keys
  // never known here, which come last) would come back the same: the
  // exchange is as complete as it can be.
  const bool more = (truncated && n_applied > 0) || leaves_left;
  if (!more) last_sync_ms_ = RealNowMs();
  spdlog::debug("anti-entropy with {}: {} leaves differed, {} records in ({} taken), {} out, {} ms",
                peer.id, frontier.size(), n_in, n_applied, wanted.size(), took_ms());
  co_return more;
}

// ------------------------------------------------------------ tombstones

void Cluster::TrackTombstone(const ObjectRecord& r) {
  std::lock_guard lock(tomb_mu_);
  if (r.deleted && r.stable_ms == 0 && r.version_node == node_.node_id()) {
    OwnTombstone& t = unconfirmed_[r.key];
    if (t.version != r.version || t.since_ms == 0) {
      t = OwnTombstone{r.version, SyncTree::RecordHash(r), RealNowMs(), {}};
    }
  } else {
    unconfirmed_.erase(r.key);
  }
  if (r.deleted && r.stable_ms != 0) {
    stable_[r.key] = r.stable_ms;
  } else {
    stable_.erase(r.key);
  }
}

void Cluster::ConfirmTombstones(const std::string& peer, int64_t as_of_ms,
                                const std::unordered_set<uint32_t>& differing_leaves,
                                const std::unordered_set<uint64_t>& wanted) {
  std::lock_guard lock(tomb_mu_);
  for (auto& [key, t] : unconfirmed_) {
    if (t.since_ms >= as_of_ms) continue;  // may not have been in the tree yet
    if (differing_leaves.count(SyncTree::LeafOf(key)) && wanted.count(t.hash)) continue;
    t.held_by.insert(peer);
  }
}

bool Cluster::AwaitsConfirmationFrom(const std::string& peer) const {
  std::lock_guard lock(tomb_mu_);
  for (const auto& [key, t] : unconfirmed_) {
    if (!t.held_by.count(peer)) return true;
  }
  return false;
}

asio::awaitable<void> Cluster::StabilizeTombstones() {
  // Every member counts, dead ones too: a member that comes back may still
  // hold an older live version, which a purged tombstone could not beat.
  // The known members, not the membership, which starts empty at a restart:
  // every member the membership holds reached it through OnEvents, which
  // remembers it.
  const std::map<std::string, std::string> members = KnownMembers();
  std::vector<std::pair<std::string, HlcTimestamp>> ready;
  {
    std::lock_guard lock(tomb_mu_);
    for (const auto& [key, t] : unconfirmed_) {
      if (std::all_of(members.begin(), members.end(),
                      [&t](const auto& member) { return t.held_by.count(member.first) > 0; })) {
        ready.emplace_back(key, t.version);
      }
    }
  }
  if (!ready.empty()) {
    auto work = [this, ready = std::move(ready)]() -> Result<size_t> {
      size_t marked = 0, cold_deletes = 0;
      for (const auto& [key, version] : ready) {
        if (stopping_) break;
        // The cold-store delete must be done first: once the tombstone is gone
        // a GET with X-Meta-Fetch asks the cold store.
        Node::RecordPtr r = node_.Lookup(key);
        if (!r || !r->deleted || r->version != version || r->cold == ColdState::kPending) continue;
        // Marking one of level >= 1 deletes from the cold store again: a
        // bounded number per round, and none more once one fails (the store
        // is down).
        const bool cold = r->consistency >= 1;
        if (cold && ++cold_deletes > kColdDeletesPerRound) break;
        if (node_.MarkTombstoneStable(*r, RealNowMs()).ok()) {
          ++marked;
        } else if (cold) {
          break;
        }
      }
      return marked;
    };
    // On the cold write pool: its cold-store deletes last as long as S3 takes.
    auto marked = co_await RunBlocking(node_.cold_write_pool(), std::move(work));
    if (marked.ok()) tombstones_stabilized_.fetch_add(*marked);
  }
  stabilizing_ = false;
}

asio::awaitable<void> Cluster::PurgeTombstones() {
  const int64_t after = options_.tombstone_purge_after.count();
  if (after <= 0) co_return;
  const int64_t now = RealNowMs();
  std::vector<std::string> due;
  {
    std::lock_guard lock(tomb_mu_);
    for (const auto& [key, stable_ms] : stable_) {
      if (stable_ms + after <= now) due.push_back(key);
    }
  }
  if (due.empty()) co_return;
  auto work = [this, due = std::move(due), after, now]() -> Result<size_t> {
    std::vector<Node::RecordPtr> candidates;
    for (const std::string& key : due) {
      Node::RecordPtr r = node_.Lookup(key);
      if (r && r->deleted && r->stable_ms != 0 && r->stable_ms + after <= now) {
        candidates.push_back(std::move(r));
      }
    }
    auto purged = node_.PurgeTombstones(candidates);
    if (!purged.ok()) return purged.status();
    std::vector<std::string> gone;
    for (const Node::RecordPtr& r : *purged) {
      tree_.Remove(*r);
      if (!node_.Lookup(r->key)) gone.push_back(r->key);  // else the listener saw its successor
    }
    std::lock_guard lock(tomb_mu_);
    for (const std::string& key : gone) stable_.erase(key);
    return purged->size();
  };
  auto purged = co_await RunBlocking(node_.blocking_pool(), std::move(work));
  if (purged.ok()) {
    tombstones_purged_.fetch_add(*purged);
    if (*purged) spdlog::debug("purged {} tombstones every member held", *purged);
  } else {
    spdlog::warn("purging tombstones failed: {}", purged.status().ToString());
  }
}

// ------------------------------------------------------------ replication

void Cluster::WantBody(const ObjectRecord& r) {
  if (r.deleted || r.consistency < 2 || r.local_body) return;
  if (wanted_.insert(r.key).second) {
    want_queue_.push_back(r.key);
    want_size_ = wanted_.size();
  }
}

void Cluster::ScanForReplication() {
  std::vector<Node::RecordPtr> missing;
  node_.ScanRecords([&](const Node::RecordPtr& r) {
    if (!r->deleted && r->consistency == 2 && !r->local_body) missing.push_back(r);
  });
  for (const auto& r : missing) WantBody(*r);
}

asio::awaitable<void> Cluster::ReplicationLoop() {
  asio::steady_timer timer(ctx_);
  ScanForReplication();  // the queue after a restart: it is the journal
  while (!stopping_) {
    const int64_t now = RealNowMs();
    size_t looked = 0;
    while (pulls_in_flight_ < options_.replication_parallelism && looked < want_queue_.size()) {
      std::string key = want_queue_.front();
      want_queue_.pop_front();
      ++looked;
      auto retry = pull_retries_.find(key);
      if (retry != pull_retries_.end() && retry->second.at_ms > now) {
        want_queue_.push_back(key);  // not yet: keep its place in the queue
        continue;
      }
      ++pulls_in_flight_;
      asio::co_spawn(ctx_, Replicate(key), asio::detached);
    }
    timer.expires_after(std::chrono::milliseconds(100));
    co_await timer.async_wait(kTuple);
  }
}

asio::awaitable<void> Cluster::Replicate(std::string key) {
  Node::RecordPtr rec = node_.Lookup(key);
  Status result = Status::Ok();
  if (rec && !rec->deleted && rec->consistency == 2 && !rec->local_body) {
    // Room first: a node without spare room asks no member for the body.
    auto reserve = [this, size = rec->size] { return node_.ReserveReplica(size); };
    auto room = co_await RunBlocking(node_.blocking_pool(), std::move(reserve));
    if (room.ok()) {
      auto reserved = std::make_shared<Reservation>(std::move(room).value());
      result = Status::Unavailable("no live member holds " + key);
      std::vector<Member> sources;
      if (auto origin = membership_.Find(rec->version_node);
          origin && origin->id != node_.node_id() && origin->state != MemberState::kDead) {
        sources.push_back(*origin);
      }
      for (const Member& m : SyncCandidates()) {
        if (m.id != rec->version_node) sources.push_back(m);
      }
      for (const Member& from : sources) {
        result = co_await PullBody(rec, from, reserved);
        if (result.ok() || result.code() == StatusCode::kConflict) break;
      }
    } else {
      result = room.status();
    }
  }
  --pulls_in_flight_;
  if (result.ok() || result.code() == StatusCode::kConflict) {
    wanted_.erase(key);
    pull_retries_.erase(key);
    if (result.ok() && rec && !rec->local_body) replicated_.fetch_add(1);
  } else {
    replication_failures_.fetch_add(1);
    // Back off: 1 s, doubling to a minute, while no member can give the body.
    PullRetry& retry = pull_retries_[key];
    retry.gap_ms = std::clamp<int64_t>(retry.gap_ms * 2, 1000, 60'000);
    retry.at_ms = RealNowMs() + retry.gap_ms;
    want_queue_.push_back(key);
    spdlog::debug("replication of {} failed: {}", key, result.ToString());
  }
  want_size_ = wanted_.size();
}

asio::awaitable<Status> Cluster::PullBody(Node::RecordPtr rec, Member from,
                                          std::shared_ptr<Reservation> reserved) {
  auto opened = co_await client_.OpenBody(from.addr, BodyTarget(*rec), "");
  if (!opened.ok()) co_return opened.status();
  std::unique_ptr<PeerBodyStream> stream = std::move(opened).value();
  if (stream->status() != 200) co_return BodyRefusal(from, stream->status(), rec->key);
  auto begin = [this] { return node_.BeginPut(); };
  auto file = co_await RunBlocking(node_.blocking_pool(), std::move(begin));
  if (!file.ok()) co_return file.status();
  std::shared_ptr<AtomicFile> body(std::move(file).value());
  std::vector<char> buf(kReadChunk);
  for (bool end = false; !end;) {
    // The buffer is filled before it is appended: one trip to the blocking
    // pool per kReadChunk, not per socket read (up to 64 KiB each).
    size_t filled = 0;
    while (filled < buf.size()) {
      auto n = co_await stream->Read(std::span<char>(buf.data() + filled, buf.size() - filled));
      if (!n.ok()) co_return n.status();
      if (*n == 0) {
        end = true;
        break;
      }
      filled += *n;
    }
    if (filled == 0) break;
    if (body->size() + filled > rec->size) co_return Status::Corruption("the copy is too long");
    auto append = [&body, &buf, filled] {
      return body->Append(std::span<const char>(buf.data(), filled));
    };
    Status a = co_await RunBlocking(node_.blocking_pool(), std::move(append));
    if (!a.ok()) co_return a;
    if (body->size() < rec->size) failpoint::Hit("replica.mid_body");
  }
  auto commit = [this, rec, body, reserved] { return node_.CommitReplica(*rec, *body, *reserved); };
  Status c = co_await RunBlocking(node_.blocking_pool(), std::move(commit));
  co_return c;
}

// ------------------------------------------------------------ peer reads

asio::awaitable<Result<std::unique_ptr<PeerBodyStream>>> Cluster::OpenPeerBody(
    Node::RecordPtr record, std::string range, bool head_only) {
  std::vector<Member> candidates;
  if (auto origin = membership_.Find(record->version_node);
      origin && origin->id != node_.node_id() && origin->state != MemberState::kDead) {
    candidates.push_back(*origin);
  }
  if (record->consistency == 2) {
    for (const Member& m : SyncCandidates()) {
      if (m.id != record->version_node && candidates.size() < 3) candidates.push_back(m);
    }
  }
  if (candidates.empty()) {
    // This node made the version (its copy is lost) or its maker is dead.
    auto origin = membership_.Find(record->version_node);
    if (!origin || origin->id == node_.node_id()) {
      co_return Status::NotFound("no other member holds the body of " + record->key);
    }
    co_return Status::Unavailable("node " + origin->id + ", which holds the body of " +
                                  record->key + ", is " + MemberStateName(origin->state));
  }
  Status last = Status::Unavailable("no live member holds the body of " + record->key);
  bool said_no_body = false;
  // A public request waits on peers for at most one peer timeout in all.
  const auto deadline = std::chrono::steady_clock::now() + options_.peer_timeout;
  for (const Member& m : candidates) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    auto opened = co_await client_.OpenBody(m.addr, BodyTarget(*record), range, head_only);
    if (!opened.ok()) {
      last = opened.status();
      continue;
    }
    const int status = (*opened)->status();
    if (status == 200 || status == 206) {
      if (!head_only) peer_reads_.fetch_add(1);
      co_return std::move(opened).value();
    }
    Status refusal = BodyRefusal(m, status, record->key);
    if (refusal.code() == StatusCode::kNotFound) {
      said_no_body = true;
    } else {
      last = std::move(refusal);
    }
  }
  if (said_no_body)
    co_return Status::NotFound("no reachable member holds the body of " + record->key);
  co_return last;
}

// ------------------------------------------------------------ stats

void Cluster::RegisterMetrics(MetricsRegistry& m) {
  for (MemberState state : {MemberState::kAlive, MemberState::kSuspect, MemberState::kDead}) {
    m.AddGauge("objstore_cluster_members", "Cluster members by state, this node included.",
               [this, state] {
                 double n = 0;
                 for (const Member& member : membership_.All()) n += member.state == state;
                 return n;
               },
               fmt::format("state=\"{}\"", MemberStateName(state)));
  }
  m.AddGauge("objstore_cluster_sync_lag_seconds",
             "Seconds since the last anti-entropy exchange that completed (-1: none yet).", [this] {
               const int64_t last = last_sync_ms_.load();
               return last ? (RealNowMs() - last) / 1000.0 : -1.0;
             });
  m.AddGauge("objstore_cluster_replication_queue", "Level-2 bodies this node still has to pull.",
             [this] { return static_cast<double>(want_size_.load()); });
  m.AddGauge("objstore_cluster_push_queue", "Journal records waiting to be pushed to peers.",
             [this] { return static_cast<double>(push_backlog_.load()); });
  auto counter = [&m](const char* name, const char* help, const std::atomic<uint64_t>& v,
                      std::string labels = "") {
    m.AddCounterFn(name, help, [&v] { return static_cast<double>(v.load()); }, labels);
  };
  counter("objstore_cluster_sync_rounds_total", "Anti-entropy exchanges started.", sync_rounds_);
  counter("objstore_cluster_records_total", "Journal records sent to or received from peers.",
          pushed_, "direction=\"pushed\"");
  counter("objstore_cluster_records_total", "Journal records sent to or received from peers.",
          sync_records_sent_, "direction=\"synced_out\"");
  counter("objstore_cluster_records_total", "Journal records sent to or received from peers.",
          sync_records_received_, "direction=\"in\"");
  counter("objstore_cluster_replicated_total", "Level-2 bodies pulled from peers.", replicated_);
  counter("objstore_cluster_replication_failures_total", "Failed level-2 pulls (retried).",
          replication_failures_);
  counter("objstore_cluster_peer_reads_total", "GETs served by streaming from a peer.",
          peer_reads_);
  counter("objstore_cluster_bodies_served_total",
          "Body streams this node answered to peers (replication and peer reads).", bodies_served_);
  counter("objstore_cluster_tombstones_purged_total",
          "Tombstones purged after every member held them.", tombstones_purged_);
  counter("objstore_cluster_calls_total", "Private calls made to peers.", client_.traffic().calls);
  counter("objstore_cluster_call_failures_total", "Private calls that failed or were refused.",
          client_.traffic().failures);
}

json Cluster::TombstoneStats() const {
  std::lock_guard lock(tomb_mu_);
  size_t words = 0;
  for (const auto& [key, t] : unconfirmed_) words += t.held_by.size();
  return json{{"awaiting_members", unconfirmed_.size()},
              {"members_heard", words},
              {"stable", stable_.size()},
              {"stabilized", tombstones_stabilized_.load()},
              {"purged", tombstones_purged_.load()},
              {"purge_after_s", options_.tombstone_purge_after.count() / 1000}};
}

json Cluster::StatsJson() const {
  json members = json::array();
  const int64_t now = clock_.NowNanos() / 1'000'000;
  for (const Member& m : membership_.All()) {
    json j = MemberToJson(m, options_.tag);
    j["last_seen_ms_ago"] = m.id == node_.node_id() ? 0 : (m.last_seen_ms ? now - m.last_seen_ms : -1);
    members.push_back(std::move(j));
  }
  const int64_t last_sync = last_sync_ms_.load();
  return json{{"node_id", node_.node_id()},
              {"tag", options_.tag},
              {"private_addr", options_.advertise_addr},
              {"authenticated", auth_.enabled()},
              {"members", std::move(members)},
              {"alive", membership_.AliveCount()},
              {"digest", HashToHex(tree_.Root())},
              {"records", tree_.records()},
              {"replication_queue", want_size_.load()},
              {"push_queue", push_backlog_.load()},
              {"peer_reads", peer_reads_.load()},
              {"replicated", replicated_.load()},
              {"bodies_served", bodies_served_.load()},
              {"tombstones", TombstoneStats()},
              {"sync",
               {{"rounds", sync_rounds_.load()},
                {"records_sent", sync_records_sent_.load() + pushed_.load()},
                {"records_received", sync_records_received_.load()},
                {"bytes_sent", sync_bytes_sent_.load()},
                {"bytes_received", sync_bytes_received_.load()},
                {"last_sync_ms_ago", last_sync ? RealNowMs() - last_sync : -1}}},
              {"private_calls",
               {{"calls", client_.traffic().calls.load()},
                {"failures", client_.traffic().failures.load()},
                {"bytes_sent", client_.traffic().bytes_sent.load()},
                {"bytes_received", client_.traffic().bytes_received.load()}}}};
}

}  // namespace objstore::cluster
