#include "http/client_limits.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace objstore::http {

std::string ClientKey(const boost::asio::ip::address& address) {
  if (address.is_v6()) {
    auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) {
      return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
    }
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return boost::asio::ip::address_v6(bytes).to_string() + "/64";
  }
  return address.to_string();
}

// ---------------------------------------------------------------- TokenBucket

void TokenBucket::Refill(int64_t now_ns) {
  if (now_ns <= last_ns_) return;  // a clock that did not move (or went back)
  tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) * 1e-9);
  last_ns_ = now_ns;
}

bool TokenBucket::Take(int64_t now_ns, int64_t* wait_ns) {
  Refill(now_ns);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  *wait_ns = static_cast<int64_t>(std::ceil((1.0 - tokens_) / rate_ * 1e9));
  return false;
}

bool TokenBucket::Full(int64_t now_ns) const {
  if (now_ns <= last_ns_) return tokens_ >= burst_;
  return tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) * 1e-9 >= burst_;
}

// ---------------------------------------------------------------- ClientLimits

ClientLimits::ClientLimits(ClientLimitOptions options) : options_(options) {
  if (options_.rate > 0 && options_.burst <= 0) options_.burst = std::max(1.0, options_.rate);
}

int64_t ClientLimits::NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ClientLimits::Shard& ClientLimits::ShardOf(const std::string& client) {
  return shards_[std::hash<std::string>{}(client) % shards_.size()];
}

ClientLimits::Entry& ClientLimits::EntryFor(Shard& shard, const std::string& client,
                                            int64_t now_ns) {
  auto it = shard.entries.find(client);
  if (it != shard.entries.end()) return it->second;
  if (shard.entries.size() >= kMaxIdleEntries) {
    std::erase_if(shard.entries, [now_ns](const auto& kv) {
      return kv.second.connections == 0 && kv.second.bucket.Full(now_ns);
    });
  }
  // With no rate limit the bucket is never asked; burst 1 keeps it valid.
  const double rate = options_.rate > 0 ? options_.rate : 1.0;
  const double burst = options_.rate > 0 ? options_.burst : 1.0;
  return shard.entries.emplace(client, Entry{0, TokenBucket(rate, burst, now_ns)}).first->second;
}

ClientLimits::Admit ClientLimits::Connect(const std::string& client) {
  const size_t open = total_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (options_.max_connections > 0 && open > options_.max_connections) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return Admit::kTooManyConnections;
  }
  if (options_.per_client()) {
    Shard& shard = ShardOf(client);
    std::lock_guard lock(shard.mu);
    Entry& e = EntryFor(shard, client, NowNanos());
    if (options_.max_connections_per_client > 0 &&
        e.connections >= options_.max_connections_per_client) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return Admit::kTooManyFromClient;
    }
    ++e.connections;
  }
  return Admit::kOk;
}

void ClientLimits::Disconnect(const std::string& client) {
  total_.fetch_sub(1, std::memory_order_relaxed);
  if (!options_.per_client()) return;
  Shard& shard = ShardOf(client);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(client);
  if (it == shard.entries.end()) return;
  if (it->second.connections > 0) --it->second.connections;
  if (it->second.connections == 0 && it->second.bucket.Full(NowNanos())) shard.entries.erase(it);
}

bool ClientLimits::AllowRequest(const std::string& client, int64_t* retry_after_s) {
  const int64_t now = NowNanos();
  Shard& shard = ShardOf(client);
  std::lock_guard lock(shard.mu);
  int64_t wait_ns = 0;
  if (EntryFor(shard, client, now).bucket.Take(now, &wait_ns)) return true;
  *retry_after_s = std::max<int64_t>(1, (wait_ns + 999'999'999) / 1'000'000'000);
  return false;
}

size_t ClientLimits::tracked_clients() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.entries.size();
  }
  return n;
}

}  // namespace objstore::http
