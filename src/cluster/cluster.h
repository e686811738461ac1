// Cluster: this node's part in the multi-master cluster (SPEC §3,
// docs/CLUSTER.md has the design and the private API).
//
// What it owns
// - The private API server (`--private-addr`, its own event loop) and the
//   PeerClient used for every call to other nodes (signed, with deadlines).
// - Membership and the SWIM failure detector (probe, indirect probe,
//   suspicion, death, refutation), seeded by `-N`.
// - Journal convergence: a journal change listener feeds the SyncTree and the
//   push outboxes (one per peer: this node's own changes go out at once, in
//   batches); periodic anti-entropy repairs anything a push missed.
// - The set of peers ever heard of, kept in the journal's settings
//   ("cluster_members"): membership lives in memory, and a restart must not
//   forget a dead member whose word a tombstone waits for.
// - Level-2 replication: live level-2 records without a local body are pulled
//   from peers, verified by size and hash, and committed.
// - Peer reads for the public API (OpenPeerBody).
//
// Threads: one "cluster loop" (an io_context and its thread) runs gossip,
// pushes, anti-entropy and replication; the private server has its own loop;
// blocking work (SQLite, fsync) goes to the node's blocking pool. Outboxes and
// the replication queue are touched only on the cluster loop.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "base/random.h"
#include "cluster/auth.h"
#include "cluster/membership.h"
#include "cluster/peer_client.h"
#include "cluster/sync_tree.h"
#include "http/server.h"
#include "node/node.h"

namespace objstore::cluster {

struct ClusterOptions {
  std::string tag = "default";
  std::string secret;          // empty: calls are not signed (a warning at start)
  std::string private_host = "0.0.0.0";
  uint16_t private_port = 11999;
  std::string advertise_addr;  // host:port peers use; 0.0.0.0 host: peers fill it in
  std::string public_addr;     // shown to operators
  std::vector<std::string> seeds;
  std::chrono::milliseconds gossip_interval{500};
  std::chrono::milliseconds suspect_timeout{3000};
  std::chrono::milliseconds sync_interval{10000};
  std::chrono::milliseconds peer_timeout{2000};
  // Deadline of one anti-entropy call: its messages may be megabytes.
  std::chrono::milliseconds sync_timeout{30000};
  size_t replication_parallelism = 2;
  // How long a tombstone every member holds is kept before it is purged
  // (it answers 404 with X-Meta-Deleted until then); 0: never purged.
  std::chrono::milliseconds tombstone_purge_after{24 * 3600 * 1000};
  // Records per anti-entropy `leaves` answer: a node joining a large cluster
  // comes back for the rest instead of getting the whole journal at once.
  size_t max_records_per_answer = 20'000;
  // Connection cap of the private server (docs/SECURITY.md): peers keep a few
  // pooled connections each, so only an overall cap applies, no rate.
  size_t max_connections = 0;  // 0: no cap
};

class Cluster {
 public:
  // `clock`: real time for timeouts (not the node's possibly skewed clock).
  Cluster(Node& node, ClusterOptions options, RandomSource& random, const Clock& clock);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Listens on the private address and starts the cluster loop.
  Status Start();
  // Stops the loops and the private server; call before the public server's
  // event loops are destroyed (it closes pooled connections bound to them).
  void Stop();

  // Opens a stream of `record`'s body (exactly its version) from a peer that
  // has it: the node that made the version first, then (level 2) any other
  // live member. `range`: a Range header value to pass through ("" for all).
  // `head_only`: the answer's header alone (for a public HEAD), no bytes.
  // NotFound when a candidate answered that it holds no copy (404 no_body)
  // and none served it; Unavailable when none could be reached or each
  // refused the read (401, 403, 503: it may well hold the body).
  boost::asio::awaitable<Result<std::unique_ptr<PeerBodyStream>>> OpenPeerBody(
      Node::RecordPtr record, std::string range, bool head_only = false);

  // The "cluster" block of /api/v1/stats.
  nlohmann::json StatsJson() const;
  // Members by state, sync lag, queues and traffic, read at scrape time.
  void RegisterMetrics(MetricsRegistry& metrics);

 private:
  // ---- private API (runs on the private server's loop)
  boost::asio::awaitable<void> Handle(http::Exchange& ex);
  boost::asio::awaitable<void> ServeBody(http::Exchange& ex, std::string target);
  boost::asio::awaitable<nlohmann::json> OnPing(nlohmann::json body, std::string remote_ip);
  boost::asio::awaitable<Result<nlohmann::json>> OnPingReq(nlohmann::json body);
  boost::asio::awaitable<Result<nlohmann::json>> OnRecords(nlohmann::json body);
  Result<nlohmann::json> OnTree(const nlohmann::json& body) const;
  Result<nlohmann::json> OnLeaves(const nlohmann::json& body) const;

  // ---- cluster loop
  boost::asio::awaitable<void> GossipLoop();
  boost::asio::awaitable<void> SyncLoop();
  boost::asio::awaitable<void> ReplicationLoop();
  boost::asio::awaitable<void> ProbeRound(Member target);
  boost::asio::awaitable<bool> Ping(std::string addr, std::string expected_id = "");
  boost::asio::awaitable<void> Contact(std::string addr);  // a seed or a dead member
  boost::asio::awaitable<void> AntiEntropy(Member peer);
  // One descent and exchange; true when the peer had more records to give.
  boost::asio::awaitable<bool> SyncPass(Member peer);
  boost::asio::awaitable<void> PushTo(std::string peer_id);
  boost::asio::awaitable<void> Replicate(std::string key);
  // Streams the body of `record` from `from` into a file and commits it,
  // under `reserved` (room taken before any member is asked).
  boost::asio::awaitable<Status> PullBody(Node::RecordPtr record, Member from,
                                          std::shared_ptr<Reservation> reserved);
  boost::asio::awaitable<Result<size_t>> ApplyRecords(std::vector<ObjectRecord> records);
  void OnJournalChange(const ObjectRecord* before, const ObjectRecord& after);
  // ---- tombstones (docs/CLUSTER.md, "Tombstones")
  void TrackTombstone(const ObjectRecord& r);  // from the journal listener
  // After an exchange with `peer` that began at `as_of_ms`: every own
  // tombstone older than that is held by the peer unless its leaf differed
  // and the peer wanted its hash.
  void ConfirmTombstones(const std::string& peer, int64_t as_of_ms,
                         const std::unordered_set<uint32_t>& differing_leaves,
                         const std::unordered_set<uint64_t>& wanted);
  bool AwaitsConfirmationFrom(const std::string& peer) const;
  // Marks those every member holds; clears stabilizing_ when done.
  boost::asio::awaitable<void> StabilizeTombstones();
  boost::asio::awaitable<void> PurgeTombstones();      // drops stable ones past their time
  void OnEvents(const std::vector<MembershipEvent>& events);
  // ---- members ever known (docs/CLUSTER.md, "Tombstones")
  void LoadKnownMembers();                                            // at Start
  void RememberMembers(const std::vector<MembershipEvent>& events);  // any thread
  // Known members a peer's ping named (PingMessage::known); any thread.
  void RememberHearsay(const std::map<std::string, std::string>& known);
  boost::asio::awaitable<void> SaveKnownMembers();                   // cluster loop only
  // The set as JSON ({"<id>": "<private addr>", …}) when it changed since
  // the last call, which then counts it as saved.
  std::optional<std::string> TakeUnsavedKnownMembers();
  std::map<std::string, std::string> KnownMembers() const;  // id -> addr
  void WantBody(const ObjectRecord& r);  // cluster loop only
  void ScanForReplication();             // cluster loop only
  nlohmann::json PingBody() const;
  nlohmann::json TombstoneStats() const;
  std::vector<Member> SyncCandidates() const;

  Node& node_;
  ClusterOptions options_;
  RandomSource& random_;
  const Clock& clock_;
  CallAuthenticator auth_;
  SyncTree tree_;
  Membership membership_;
  PeerClient client_;
  std::atomic<bool> replaying_{true};  // the journal listener's initial replay

  // Cluster-loop state (touched only on ctx_'s thread).
  struct Outbox {
    std::vector<Node::RecordPtr> records;
    bool sending = false;
  };
  std::map<std::string, Outbox> outboxes_;
  std::deque<std::string> want_queue_;   // keys needing a level-2 body
  std::set<std::string> wanted_;          // the same keys, for dedup
  struct PullRetry {
    int64_t at_ms = 0;   // the next pull attempt, not before
    int64_t gap_ms = 0;  // the wait before it, doubled after each failure
  };
  std::map<std::string, PullRetry> pull_retries_;  // keys whose last pull failed
  size_t pulls_in_flight_ = 0;
  std::vector<std::string> probe_order_;
  mutable std::mutex synced_by_mu_;
  std::set<std::string> syncing_;  // peers we run an exchange with now; guarded
  std::map<std::string, int64_t> synced_by_ms_;  // peer -> last exchange it started; guarded
  // Two members that start exchanges with each other at the same moment would
  // move every differing record twice: the one with the larger id yields (its
  // call is refused with 409 while ours is under way).
  bool RefusesMirroredExchange(const std::string& caller) const;
  int64_t LastSyncedBy(const std::string& peer_id) const;

  // Tombstones, fed by the journal listener (any thread): guarded by tomb_mu_.
  struct OwnTombstone {
    HlcTimestamp version;
    uint64_t hash = 0;              // SyncTree::RecordHash
    int64_t since_ms = 0;           // when it entered this node's tree
    std::set<std::string> held_by;  // members seen holding it since
  };
  mutable std::mutex tomb_mu_;
  std::map<std::string, OwnTombstone> unconfirmed_;  // this node's, not yet stable
  std::map<std::string, int64_t> stable_;            // key -> stable_ms, purge candidates
  std::atomic<uint64_t> tombstones_stabilized_{0}, tombstones_purged_{0};

  // Every peer this node has heard of since its journal was made (id ->
  // private address, the last one seen), its own peers' known members
  // included (so a node that joins while a member is down learns of it),
  // saved in the journal before each
  // tombstone stabilization: a restarted node still waits for their word, and
  // one without seeds calls them to rejoin.
  mutable std::mutex known_mu_;
  std::map<std::string, std::string> known_members_;  // guarded by known_mu_
  bool known_members_unsaved_ = false;                 // guarded by known_mu_

  // Figures for /stats and /metrics.
  std::atomic<uint64_t> sync_rounds_{0}, sync_records_sent_{0}, sync_records_received_{0};
  std::atomic<uint64_t> sync_bytes_sent_{0}, sync_bytes_received_{0};
  std::atomic<uint64_t> pushed_{0}, push_failures_{0};
  std::atomic<uint64_t> unverified_bytes_{0};  // private bodies read, signatures unchecked
  std::atomic<uint64_t> replicated_{0}, replication_failures_{0};
  std::atomic<uint64_t> peer_reads_{0}, bodies_served_{0};
  std::atomic<size_t> want_size_{0}, push_backlog_{0};
  std::atomic<int64_t> last_sync_ms_{0};

  std::unique_ptr<http::HttpServer> server_;
  // Declared last: destroyed first, so coroutine frames still parked on the
  // loop are destroyed while everything they refer to exists.
  boost::asio::io_context ctx_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stabilizing_{false};  // a StabilizeTombstones round is running
};

}  // namespace objstore::cluster
