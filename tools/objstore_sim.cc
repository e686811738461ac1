// objstore-sim: replays a cache trace (or a generated Zipf workload) through the
// node's eviction policies and Belady's offline reference, and prints object and
// byte miss ratios at each capacity.
//
// It links the engine's own policy code (src/cache/), so what it measures is
// what the node runs; the engine knows nothing of this tool. Model and Belady
// approximation: src/cache/simulator.h.
//
//   objstore-sim --trace web.trace.xz --capacity 1%,10%
//   objstore-sim --trace log.csv --csv --key-col 2 --size-col 5 --capacity 64M,1G
//   objstore-sim --zipf 1.0 --objects 100000 --requests 1000000 --seed 1
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/eviction_policy.h"
#include "cache/simulator.h"

namespace {

using objstore::sim::SimResult;

constexpr const char* kUsage = R"(usage: objstore-sim (--trace PATH | --zipf ALPHA) [options]
  --trace PATH         trace file, `time id size` per line; PATH ending in .xz is
                       decompressed; (id, size) is the object
  --csv                the trace is CSV instead (a non-numeric first row is a header)
  --key-col N          CSV column (1 to 1000) of the object id      [2]
  --size-col N         CSV column (1 to 1000) of the size in bytes  [3]
  --zipf ALPHA         generate a Zipf(ALPHA) workload instead of reading a trace
                       (ALPHA a finite number > 0)
  --objects N          Zipf: number of objects, at most 100000000   [100000]
  --requests N         Zipf: number of requests, at most 1000000000 [1000000]
  --seed N             Zipf: seed of the generator                  [1]
                       (sizes log-uniform in 1 KiB..1 MiB, see simulator.h)
  --capacity LIST      comma-separated capacities: N% of the distinct bytes of
                       the trace, or bytes with optional K/M/G/T     [1%,10%]
  --policies LIST      comma-separated policies                     [s3fifo,lru,sieve,fifo]
  --no-belady          skip Belady's offline reference
A trace or workload takes about 20 bytes of memory per request (12 with
--no-belady) and a few hundred per object. Exit status: 0 done; 1 out of memory or another failure;
2 bad arguments or a bad trace (the sizes of its objects, and those of its
requests, must add up to less than 2^64 bytes).
)";

// Upper bounds of the counts, as given in kUsage.
constexpr uint64_t kMaxColumn = 1000;
constexpr uint64_t kMaxObjects = 100'000'000;
constexpr uint64_t kMaxRequests = 1'000'000'000;

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "objstore-sim: %s\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    std::string item(s.substr(start, comma - start));
    if (!item.empty()) out.push_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// A decimal number from `min` to `max`, else Die naming `flag`.
uint64_t ParseCount(const std::string& flag, const std::string& v, uint64_t min = 0,
                    uint64_t max = std::numeric_limits<uint64_t>::max()) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (errno != 0 || end == v.c_str() || *end != '\0' || v.find('-') != std::string::npos) {
    Die(flag + ": not a number: " + v);
  }
  if (n < min || n > max) {
    Die(flag + ": " + v + " is out of range (" + std::to_string(min) + " to " +
        std::to_string(max) + ")");
  }
  return n;
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int Run(int argc, char** argv) {
  std::string trace_path;
  objstore::sim::TraceFormat format;
  bool zipf = false;
  objstore::sim::ZipfParams zp;
  std::string capacities = "1%,10%";
  std::string policies;
  for (const auto& name : objstore::PolicyNames()) policies += (policies.empty() ? "" : ",") + name;
  bool belady = true;

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--trace") {
      trace_path = value();
    } else if (a == "--csv") {
      format.csv = true;
    } else if (a == "--key-col") {
      format.key_col = static_cast<int>(ParseCount(a, value(), 1, kMaxColumn));
    } else if (a == "--size-col") {
      format.size_col = static_cast<int>(ParseCount(a, value(), 1, kMaxColumn));
    } else if (a == "--zipf") {
      zipf = true;
      std::string v = value();
      char* end = nullptr;
      zp.alpha = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !std::isfinite(zp.alpha) || zp.alpha <= 0) {
        Die("--zipf: bad alpha " + v + " (expected a finite number > 0)");
      }
    } else if (a == "--objects") {
      zp.objects = static_cast<uint32_t>(ParseCount(a, value(), 1, kMaxObjects));
    } else if (a == "--requests") {
      zp.requests = ParseCount(a, value(), 0, kMaxRequests);
    } else if (a == "--seed") {
      zp.seed = ParseCount(a, value());
    } else if (a == "--capacity") {
      capacities = value();
    } else if (a == "--policies") {
      policies = value();
    } else if (a == "--no-belady") {
      belady = false;
    } else {
      std::fputs(kUsage, stderr);
      Die("unknown argument " + a);
    }
  }
  if (zipf == !trace_path.empty()) {
    std::fputs(kUsage, stderr);
    Die("give exactly one of --trace and --zipf");
  }

  objstore::sim::Trace trace;
  if (zipf) {
    trace = objstore::sim::GenerateZipf(zp);
    std::printf("workload: zipf alpha=%g objects=%u requests=%llu seed=%llu\n", zp.alpha,
                zp.objects, static_cast<unsigned long long>(zp.requests),
                static_cast<unsigned long long>(zp.seed));
  } else {
    auto read = objstore::sim::ReadTraceFile(trace_path, format);
    if (!read.ok()) Die(read.status().ToString());
    trace = std::move(read).value();
    std::printf("trace: %s\n", trace_path.c_str());
  }
  std::printf("requests: %zu, objects: %zu, distinct bytes: %llu (%s), requested bytes: %s\n",
              trace.requests.size(), trace.keys.size(),
              static_cast<unsigned long long>(trace.distinct_bytes),
              HumanBytes(trace.distinct_bytes).c_str(), HumanBytes(trace.requested_bytes).c_str());

  const auto policy_list = SplitList(policies);
  for (const std::string& cap_text : SplitList(capacities)) {
    auto cap = objstore::sim::ParseCapacity(cap_text, trace.distinct_bytes);
    if (!cap.ok()) Die(cap.status().message());
    std::printf("\ncapacity %s = %llu bytes (%s)\n", cap_text.c_str(),
                static_cast<unsigned long long>(*cap), HumanBytes(*cap).c_str());
    std::vector<SimResult> results;
    std::vector<double> seconds;
    for (const std::string& p : policy_list) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = objstore::sim::Simulate(trace, p, *cap);
      if (!r.ok()) Die(r.status().message());
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      results.push_back(*r);
    }
    std::optional<SimResult> opt;
    if (belady) opt = objstore::sim::SimulateBelady(trace, *cap);
    const SimResult* lru = nullptr;
    for (const auto& r : results) {
      if (r.policy == "lru") lru = &r;
    }
    std::printf("  %-8s %10s %10s %12s %14s %14s %9s\n", "policy", "obj miss", "byte miss",
                "byte / lru", "obj - belady", "byte - belady", "ns/req");
    for (size_t i = 0; i < results.size(); ++i) {
      const SimResult& r = results[i];
      char vs_lru[16] = "-", d_obj[16] = "-", d_byte[16] = "-";
      if (lru != nullptr && lru->ByteMissRatio() > 0) {
        std::snprintf(vs_lru, sizeof vs_lru, "%.3f", r.ByteMissRatio() / lru->ByteMissRatio());
      }
      if (opt) {
        std::snprintf(d_obj, sizeof d_obj, "%+.4f", r.ObjectMissRatio() - opt->ObjectMissRatio());
        std::snprintf(d_byte, sizeof d_byte, "%+.4f", r.ByteMissRatio() - opt->ByteMissRatio());
      }
      std::printf("  %-8s %10.4f %10.4f %12s %14s %14s %9.0f\n", r.policy.c_str(),
                  r.ObjectMissRatio(), r.ByteMissRatio(), vs_lru, d_obj, d_byte,
                  seconds[i] * 1e9 / double(std::max<uint64_t>(1, r.requests)));
    }
    if (opt) {
      char vs_lru[16] = "-";
      if (lru != nullptr && lru->ByteMissRatio() > 0) {
        std::snprintf(vs_lru, sizeof vs_lru, "%.3f", opt->ByteMissRatio() / lru->ByteMissRatio());
      }
      std::printf("  %-8s %10.4f %10.4f %12s %14s %14s %9s\n", "belady", opt->ObjectMissRatio(),
                  opt->ByteMissRatio(), vs_lru, "", "", "");
    }
  }
  return 0;
}

}  // namespace

// Whatever Run throws (std::bad_alloc for a trace or workload larger than the
// memory) ends the run with one line and exit status 1, never an abort.
int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("objstore-sim: out of memory for this trace or workload\n", stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "objstore-sim: %s\n", e.what());
  }
  return 1;
}
