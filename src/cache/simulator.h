// Trace-driven cache simulation: the core of tools/objstore-sim, kept in the
// library so tests can check it against hand-computed miss ratios.
//
// Model
// - A trace is a sequence of requests for objects; an object is (id, size) (a
//   trace id seen with two sizes is two objects, as in Caffeine's simulator).
// - A simulated cache holds at most `capacity` bytes of objects. On a request,
//   a tracked object is a hit (policy Access). Otherwise it is a miss; an object
//   larger than the whole capacity is not admitted; any other object is
//   admitted after evicting Victim()s until it fits, exactly the loop the node
//   runs (eviction_policy.h), through the very same policy code.
// - Miss ratios: object = misses / requests; byte = bytes of missed requests /
//   bytes of all requests.
// - Belady: the offline reference. On a miss the object is admitted, then the
//   cached objects (the new one included, so it may be bypassed) whose next
//   request is furthest in the future are dropped until the cache fits. With
//   equal sizes this is optimal (Belady's MIN); with variable sizes finding the
//   optimum is NP-hard and this is the standard practical approximation: its
//   choice ignores sizes, so it is a strong lower reference, not a proven
//   bound (a size-aware policy can occasionally beat it on byte miss ratio).
//
// Thread safety: functions are pure over their arguments; a Trace is immutable
// once built.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace objstore::sim {

struct Trace {
  std::vector<uint32_t> requests;  // object index per request, in order
  std::vector<std::string> keys;   // object index -> key given to the policy
  std::vector<uint64_t> sizes;     // object index -> size in bytes
  uint64_t distinct_bytes = 0;     // sum of sizes over objects
  uint64_t requested_bytes = 0;    // sum of sizes over requests
};

// How to read a text trace.
// - Default: `time id size` separated by blanks (id is any token).
// - CSV: comma-separated, the id in column key_col and the size in size_col
//   (1-based); a first line whose size field is not a number is a header.
// Empty lines and lines starting with '#' are skipped in both.
struct TraceFormat {
  bool csv = false;
  int key_col = 2;
  int size_col = 3;
};

// Parses trace text. Invalid (with the line number) for a malformed line, or
// for the line whose size takes the sum of the objects' sizes or that of the
// requests' sizes (Trace's byte totals) past 2^64 - 1.
Result<Trace> ParseTrace(std::string_view text, const TraceFormat& format);
// Reads a trace file; a name ending in ".xz" is decompressed with liblzma.
Result<Trace> ReadTraceFile(const std::string& path, const TraceFormat& format);

// A synthetic workload: `objects` objects, popularity Zipf(alpha) by rank
// (P(rank r) ~ 1/r^alpha), `requests` independent draws from a 64-bit
// Mersenne Twister seeded with `seed` (std::mt19937_64 is fully specified, and
// the draws use no std::*_distribution, so traces match across platforms).
// Sizes, drawn once per object from the same generator and independent of
// popularity: log-uniform between 1 KiB and 1 MiB, i.e. 2^u bytes with u
// uniform in [10, 20], rounded down to a byte (median 32 KiB, mean about 74 KiB).
struct ZipfParams {
  double alpha = 1.0;
  uint32_t objects = 100'000;
  uint64_t requests = 1'000'000;
  uint64_t seed = 1;
};
Trace GenerateZipf(const ZipfParams& params);

struct SimResult {
  std::string policy;
  uint64_t capacity = 0;
  uint64_t requests = 0;
  uint64_t misses = 0;
  uint64_t requested_bytes = 0;
  uint64_t missed_bytes = 0;
  double ObjectMissRatio() const { return requests ? double(misses) / double(requests) : 0; }
  double ByteMissRatio() const {
    return requested_bytes ? double(missed_bytes) / double(requested_bytes) : 0;
  }
};

// Replays `trace` through MakePolicy(policy, capacity). Invalid for an unknown
// policy or a zero capacity.
Result<SimResult> Simulate(const Trace& trace, const std::string& policy, uint64_t capacity);
// Replays `trace` through the offline Belady approximation described above.
SimResult SimulateBelady(const Trace& trace, uint64_t capacity);

// "10%" (of `distinct_bytes`, rounded down, at least 1), "512", "64K", "1.5G"
// (powers of 1024). Invalid for anything else or for a result of 0.
Result<uint64_t> ParseCapacity(std::string_view text, uint64_t distinct_bytes);

}  // namespace objstore::sim
