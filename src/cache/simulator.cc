// Trace reading, workload generation and replay (design in simulator.h).
#include "cache/simulator.h"

#include <lzma.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "cache/eviction_policy.h"

namespace objstore::sim {
namespace {

// ---------------------------------------------------------------- parsing

class TraceBuilder {
 public:
  // Adds a request for the object (id, size). Adds nothing and says why when
  // the sizes of the objects or of the requests would add up to more than
  // 2^64 - 1 bytes, or the objects be more than an index of 32 bits counts;
  // an empty string otherwise.
  std::string Add(std::string_view id, uint64_t size) {
    constexpr uint64_t kMaxBytes = std::numeric_limits<uint64_t>::max();
    if (size > kMaxBytes - trace_.requested_bytes) {
      return "the sizes of the requests add up to more than 2^64 - 1 bytes";
    }
    std::string key;
    key.reserve(id.size() + 21);
    key.append(id).push_back('/');
    key += std::to_string(size);
    auto it = index_.find(key);
    if (it == index_.end()) {
      if (size > kMaxBytes - trace_.distinct_bytes) {
        return "the sizes of the objects add up to more than 2^64 - 1 bytes";
      }
      if (trace_.keys.size() > std::numeric_limits<uint32_t>::max()) {
        return "more than 2^32 objects";
      }
      it = index_.emplace(key, static_cast<uint32_t>(trace_.keys.size())).first;
      trace_.keys.push_back(std::move(key));
      trace_.sizes.push_back(size);
      trace_.distinct_bytes += size;
    }
    trace_.requests.push_back(it->second);
    trace_.requested_bytes += size;
    return "";
  }
  Trace Take() { return std::move(trace_); }

 private:
  Trace trace_;
  std::unordered_map<std::string, uint32_t> index_;
};

bool ParseU64(std::string_view s, uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> SplitFields(std::string_view line, bool csv) {
  std::vector<std::string_view> out;
  if (csv) {
    size_t start = 0;
    for (;;) {
      size_t comma = line.find(',', start);
      out.push_back(Trim(line.substr(start, comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return out;
  }
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::FromErrno(errno, "open " + path);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status::IOError("read " + path);
  return data;
}

Result<std::string> DecompressXz(const std::string& in, const std::string& path) {
  lzma_stream strm = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&strm, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
    return Status::IOError("lzma_stream_decoder failed");
  }
  std::string out;
  char buf[1 << 16];
  strm.next_in = reinterpret_cast<const uint8_t*>(in.data());
  strm.avail_in = in.size();
  lzma_ret ret = LZMA_OK;
  while (ret == LZMA_OK) {
    strm.next_out = reinterpret_cast<uint8_t*>(buf);
    strm.avail_out = sizeof buf;
    ret = lzma_code(&strm, strm.avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
    out.append(buf, sizeof buf - strm.avail_out);
  }
  lzma_end(&strm);
  if (ret != LZMA_STREAM_END) {
    return Status::Corruption(path + ": xz decoding failed (lzma error " + std::to_string(ret) +
                              ")");
  }
  return out;
}

// ---------------------------------------------------------------- Zipf

// A double uniform in [0, 1) from the top 53 bits of one draw.
double Uniform(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Result<Trace> ParseTrace(std::string_view text, const TraceFormat& format) {
  if (format.key_col < 1 || format.size_col < 1) {
    return Status::Invalid("trace columns are 1-based");
  }
  TraceBuilder builder;
  size_t line_no = 0;
  bool first_row = true;  // of a CSV, after blank lines and comments: may be a header
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (Trim(line).empty() || Trim(line).front() == '#') continue;
    auto fields = SplitFields(line, format.csv);
    const size_t need = std::max(format.key_col, format.size_col);
    uint64_t size = 0;
    const bool may_be_header = format.csv && first_row;
    first_row = false;
    if (fields.size() < need || !ParseU64(fields[format.size_col - 1], size)) {
      if (may_be_header) continue;
      return Status::Invalid(
          "trace line " + std::to_string(line_no) + ": expected " +
          (format.csv ? "a CSV row with id in column " + std::to_string(format.key_col) +
                            " and size in column " + std::to_string(format.size_col)
                      : std::string("'time id size'")) +
          ", got '" + std::string(line.substr(0, 80)) + "'");
    }
    if (std::string why = builder.Add(fields[format.key_col - 1], size); !why.empty()) {
      return Status::Invalid("trace line " + std::to_string(line_no) + ": " + why);
    }
  }
  return builder.Take();
}

Result<Trace> ReadTraceFile(const std::string& path, const TraceFormat& format) {
  auto data = ReadFile(path);
  if (!data.ok()) return data.status();
  if (path.ends_with(".xz")) {
    auto plain = DecompressXz(*data, path);
    if (!plain.ok()) return plain.status();
    return ParseTrace(*plain, format);
  }
  return ParseTrace(*data, format);
}

Trace GenerateZipf(const ZipfParams& p) {
  std::mt19937_64 rng(p.seed);
  Trace t;
  t.keys.reserve(p.objects);
  t.sizes.reserve(p.objects);
  for (uint32_t i = 0; i < p.objects; ++i) {
    const auto size = static_cast<uint64_t>(std::exp2(10.0 + 10.0 * Uniform(rng)));
    t.keys.push_back("zipf-" + std::to_string(i));
    t.sizes.push_back(size);
    t.distinct_bytes += size;
  }
  // Inverse-CDF sampling over the ranks: O(log objects) per draw.
  std::vector<double> cdf(p.objects);
  double sum = 0;
  for (uint32_t i = 0; i < p.objects; ++i) {
    sum += 1.0 / std::pow(double(i + 1), p.alpha);
    cdf[i] = sum;
  }
  t.requests.reserve(p.requests);
  std::vector<bool> seen(p.objects, false);
  uint64_t seen_bytes = 0;
  for (uint64_t r = 0; r < p.requests; ++r) {
    const double u = Uniform(rng) * sum;
    auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
    const auto obj = static_cast<uint32_t>(std::min<size_t>(it - cdf.begin(), p.objects - 1));
    t.requests.push_back(obj);
    t.requested_bytes += t.sizes[obj];
    if (!seen[obj]) {
      seen[obj] = true;
      seen_bytes += t.sizes[obj];
    }
  }
  // Percent capacities refer to the bytes the trace actually touches.
  t.distinct_bytes = seen_bytes;
  return t;
}

Result<SimResult> Simulate(const Trace& trace, const std::string& policy_name, uint64_t capacity) {
  auto made = MakePolicy(policy_name, capacity);
  if (!made.ok()) return made.status();
  EvictionPolicy& policy = **made;
  SimResult r{.policy = policy_name, .capacity = capacity};
  for (uint32_t obj : trace.requests) {
    const std::string& key = trace.keys[obj];
    const uint64_t size = trace.sizes[obj];
    ++r.requests;
    r.requested_bytes += size;
    if (policy.Access(key)) continue;
    ++r.misses;
    r.missed_bytes += size;
    if (size > capacity) continue;
    while (policy.bytes() + size > capacity) {
      auto victim = policy.Victim();
      if (!victim) break;  // unreachable: nothing is pinned in a simulation
      policy.Evict(*victim);
    }
    policy.Insert(key, size);
  }
  return r;
}

SimResult SimulateBelady(const Trace& trace, uint64_t capacity) {
  constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  const size_t n = trace.requests.size();
  // next[i]: the index of the next request for the same object, kNever if none.
  std::vector<uint64_t> next(n);
  std::vector<uint64_t> upcoming(trace.keys.size(), kNever);
  for (size_t i = n; i-- > 0;) {
    next[i] = upcoming[trace.requests[i]];
    upcoming[trace.requests[i]] = i;
  }
  // Cached objects ordered by next request; cached_at[o] is o's entry key.
  std::set<std::pair<uint64_t, uint32_t>> cache;
  std::vector<uint64_t> cached_at(trace.keys.size(), 0);
  std::vector<bool> cached(trace.keys.size(), false);
  uint64_t bytes = 0;
  SimResult r{.policy = "belady", .capacity = capacity};
  for (size_t i = 0; i < n; ++i) {
    const uint32_t obj = trace.requests[i];
    const uint64_t size = trace.sizes[obj];
    ++r.requests;
    r.requested_bytes += size;
    if (cached[obj]) {
      cache.erase({cached_at[obj], obj});
    } else {
      ++r.misses;
      r.missed_bytes += size;
      if (size > capacity) continue;
      cached[obj] = true;
      bytes += size;
    }
    cached_at[obj] = next[i];
    cache.insert({next[i], obj});
    while (bytes > capacity) {
      auto last = std::prev(cache.end());
      const uint32_t victim = last->second;
      cache.erase(last);
      cached[victim] = false;
      bytes -= trace.sizes[victim];
    }
  }
  return r;
}

Result<uint64_t> ParseCapacity(std::string_view text, uint64_t distinct_bytes) {
  const std::string s(Trim(text));
  if (s.empty()) return Status::Invalid("empty capacity");
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  std::string_view suffix(end);
  double bytes = -1;
  if (errno == 0 && end != s.c_str() && v >= 0) {
    if (suffix == "%") {
      bytes = std::floor(double(distinct_bytes) * v / 100.0);
      if (bytes < 1 && v > 0) bytes = 1;
    } else {
      static const std::map<std::string_view, double> kMult = {{"", 1.0},
                                                               {"K", 1024.0},
                                                               {"M", 1024.0 * 1024},
                                                               {"G", 1024.0 * 1024 * 1024},
                                                               {"T", 1024.0 * 1024 * 1024 * 1024}};
      auto it = kMult.find(suffix);
      if (it != kMult.end()) bytes = std::floor(v * it->second);
    }
  }
  if (bytes < 1 || bytes > 1.8e19) {
    return Status::Invalid("bad capacity '" + s + "' (expected N%, N, NK, NM, NG or NT, > 0)");
  }
  return static_cast<uint64_t>(bytes);
}

}  // namespace objstore::sim
