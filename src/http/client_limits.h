// ClientLimits: connection caps and a request rate per client IP, shared by
// every event loop of one HttpServer (docs/SECURITY.md).
//
// Design:
// - Connections: one atomic count for all clients; per client IP a count in a
//   sharded map (16 shards, one mutex each), touched only at connect and
//   disconnect. A connection over a cap is answered 503 and closed by the
//   server before any request is read, so it costs one accept and one write.
// - Requests: one token bucket per client IP (rate r per second, room for b),
//   in the same map entry. A request takes a token or is answered 429 with the
//   time until the next token as Retry-After. Buckets refill lazily from the
//   time elapsed, so an idle client costs nothing.
// - A client is an IPv4 address or an IPv6 /64 (ClientKey).
// - Memory: an entry lives while its client has a connection open or a bucket
//   that is not yet full again; past kMaxIdleEntries entries in a shard, a
//   sweep drops the idle ones, so a scan from many addresses cannot grow the
//   map without bound.
// - Cost when a limit is off: the server skips the lookups (no address, no
//   lock); with every limit off it does not create a ClientLimits at all.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace objstore::http {

struct ClientLimitOptions {
  size_t max_connections = 0;             // open connections from all clients; 0: no cap
  size_t max_connections_per_client = 0;  // open connections from one IP; 0: no cap
  double rate = 0;                        // requests per second per IP; 0: no rate limit
  double burst = 0;                       // bucket size in requests; 0: max(1, rate)
  bool any() const { return max_connections > 0 || max_connections_per_client > 0 || rate > 0; }
  bool per_client() const { return max_connections_per_client > 0 || rate > 0; }
};

// The client an address belongs to: an IPv4 address (also IPv4-mapped IPv6),
// or an IPv6 /64 — the smallest block a site is given, so one host cannot
// dodge a per-client limit by cycling through its own /64.
std::string ClientKey(const boost::asio::ip::address& address);

// A token bucket that refills at `rate` tokens per second up to `burst`.
// Time is passed in (nanoseconds, any monotonic origin) so tests drive it.
// Not thread-safe: ClientLimits guards each one.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, int64_t now_ns)
      : rate_(rate), burst_(burst), tokens_(burst), last_ns_(now_ns) {}
  // Takes one token: true. Otherwise false and *wait_ns is the time until one
  // token is there.
  bool Take(int64_t now_ns, int64_t* wait_ns);
  // True when the bucket has refilled completely by now_ns (it can be dropped:
  // a fresh bucket is the same).
  bool Full(int64_t now_ns) const;

 private:
  void Refill(int64_t now_ns);
  double rate_;
  double burst_;
  double tokens_;
  int64_t last_ns_;
};

class ClientLimits {
 public:
  enum class Admit { kOk, kTooManyConnections, kTooManyFromClient };
  static constexpr size_t kMaxIdleEntries = 4096;  // per shard, before a sweep

  explicit ClientLimits(ClientLimitOptions options);
  const ClientLimitOptions& options() const { return options_; }

  // A new connection from `client` (its IP as text; unused unless per-client
  // limits are on). kOk counts it: call Disconnect exactly once later.
  Admit Connect(const std::string& client);
  void Disconnect(const std::string& client);
  // One request from `client`: true, or false with the whole seconds the
  // client should wait (at least 1) in *retry_after_s. Needs rate > 0.
  bool AllowRequest(const std::string& client, int64_t* retry_after_s);

  size_t connections() const { return total_.load(std::memory_order_relaxed); }
  size_t tracked_clients() const;  // map entries, for tests

 private:
  struct Entry {
    size_t connections = 0;
    TokenBucket bucket;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> entries;  // guarded by mu
  };
  Shard& ShardOf(const std::string& client);
  Entry& EntryFor(Shard& shard, const std::string& client, int64_t now_ns);  // requires shard.mu
  static int64_t NowNanos();

  ClientLimitOptions options_;
  std::atomic<size_t> total_{0};
  std::array<Shard, 16> shards_;
};

}  // namespace objstore::http
