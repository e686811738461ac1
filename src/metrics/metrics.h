// Metrics: counters, gauges and histograms rendered in the Prometheus text
// exposition format 0.0.4 (GET /metrics).
//
// Why our own: prometheus-cpp is not packaged for Debian bookworm, and the
// node needs only the text format. Counters and histograms are lock-free
// atomics (relaxed: they are statistics, not synchronisation), cheap enough for
// the GET hit path. Registration happens at start-up; Render may run at any time.
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace objstore {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Cumulative histogram with fixed upper bounds (seconds, bytes, ...).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  std::vector<double> bounds() const { return bounds_; }
  std::vector<uint64_t> BucketCounts() const;  // per bucket, not cumulative; last is +Inf
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum in millionths, to stay lock-free
};

class MetricsRegistry {
 public:
  // `labels` is the label set without braces, e.g. `method="GET"`; may be empty.
  // Families (same name) must share help and type. Returned references stay valid.
  Counter& AddCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read,
                const std::string& labels = "");
  // A counter kept elsewhere, read at scrape time (it must only grow).
  void AddCounterFn(const std::string& name, const std::string& help, std::function<double()> read,
                    const std::string& labels = "");
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, const std::string& labels = "");
  std::string Render() const;

 private:
  enum class Kind { kCounter, kCounterFn, kGauge, kHistogram };
  struct Series {
    std::string name, help, labels;
    Kind kind;
    Counter* counter = nullptr;
    Histogram* histogram = nullptr;
    std::function<double()> gauge;
  };
  mutable std::mutex mu_;
  std::vector<Series> series_;      // guarded by mu_, in registration order
  std::deque<Counter> counters_;    // deque: stable addresses
  std::deque<Histogram> histograms_;
};

}  // namespace objstore
