// The policy factory and the saved-state codec (format in eviction_policy.h).
// Varints are LEB128 (7 bits per byte, low first), as in protobuf and LevelDB.
#include "cache/eviction_policy.h"

#include "cache/policy_list.h"

namespace objstore {
namespace {

constexpr std::string_view kStateMagic = "OSPS1";

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> PolicyNames() { return {"s3fifo", "lru", "sieve", "fifo"}; }

Result<std::unique_ptr<EvictionPolicy>> MakePolicy(const std::string& name,
                                                   uint64_t capacity_bytes) {
  if (capacity_bytes == 0) return Status::Invalid("eviction policy capacity must be > 0");
  if (name == "s3fifo") return cache_internal::NewS3FifoPolicy(capacity_bytes);
  if (name == "lru") return cache_internal::NewLruPolicy(capacity_bytes, true);
  if (name == "fifo") return cache_internal::NewLruPolicy(capacity_bytes, false);
  if (name == "sieve") return cache_internal::NewSievePolicy(capacity_bytes);
  return Status::Invalid("unknown eviction policy '" + name +
                         "' (expected s3fifo, lru, sieve or fifo)");
}

std::string EncodePolicyState(const std::vector<PolicyEntryState>& state) {
  std::string out(kStateMagic);
  PutVarint(out, state.size());
  for (const PolicyEntryState& e : state) {
    PutVarint(out, e.key.size());
    out += e.key;
    PutVarint(out, e.size);
    out.push_back(static_cast<char>(e.queue));
    out.push_back(static_cast<char>(e.freq));
  }
  return out;
}

Result<std::vector<PolicyEntryState>> DecodePolicyState(std::string_view in) {
  if (!in.starts_with(kStateMagic)) return Status::Corruption("policy state: bad magic");
  in.remove_prefix(kStateMagic.size());
  uint64_t count = 0;
  if (!GetVarint(in, count)) return Status::Corruption("policy state: truncated count");
  std::vector<PolicyEntryState> out;
  // Each entry takes at least 4 bytes; do not trust a count the blob cannot hold.
  out.reserve(std::min<uint64_t>(count, in.size() / 4));
  for (uint64_t i = 0; i < count; ++i) {
    PolicyEntryState e;
    uint64_t key_len = 0;
    if (!GetVarint(in, key_len) || key_len > in.size()) {
      return Status::Corruption("policy state: truncated key");
    }
    e.key.assign(in.substr(0, key_len));
    in.remove_prefix(key_len);
    if (!GetVarint(in, e.size) || in.size() < 2) {
      return Status::Corruption("policy state: truncated entry");
    }
    const auto queue = static_cast<uint8_t>(in[0]);
    if (queue > static_cast<uint8_t>(PolicyQueue::kProbation)) {
      return Status::Corruption("policy state: unknown queue " + std::to_string(queue));
    }
    e.queue = static_cast<PolicyQueue>(queue);
    e.freq = static_cast<uint8_t>(in[1]);
    in.remove_prefix(2);
    out.push_back(std::move(e));
  }
  if (!in.empty()) return Status::Corruption("policy state: trailing bytes");
  return out;
}

}  // namespace objstore
