#include "metrics/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace objstore {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::Observe(double v) {
  // Negative or NaN (a clock stepped back): not a duration; the sum's cast
  // would be undefined.
  if (!(v >= 0)) return;
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(std::min(v * 1e6, 1e18)), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out;
  out.reserve(buckets_.size());
  for (const auto& b : buckets_) out.push_back(b.load(std::memory_order_relaxed));
  return out;
}

double Histogram::Sum() const {
  return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  std::lock_guard lock(mu_);
  Counter& c = counters_.emplace_back();
  series_.push_back({name, help, labels, Kind::kCounter, &c, nullptr, {}});
  return c;
}

void MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                               std::function<double()> read, const std::string& labels) {
  std::lock_guard lock(mu_);
  series_.push_back({name, help, labels, Kind::kGauge, nullptr, nullptr, std::move(read)});
}

void MetricsRegistry::AddCounterFn(const std::string& name, const std::string& help,
                                   std::function<double()> read, const std::string& labels) {
  std::lock_guard lock(mu_);
  series_.push_back({name, help, labels, Kind::kCounterFn, nullptr, nullptr, std::move(read)});
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, const std::string& labels) {
  std::lock_guard lock(mu_);
  Histogram& h = histograms_.emplace_back(std::move(bounds));
  series_.push_back({name, help, labels, Kind::kHistogram, nullptr, &h, {}});
  return h;
}

std::string MetricsRegistry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  std::set<std::string> described;
  auto braces = [](const std::string& labels, const std::string& extra = "") {
    std::string all = labels;
    if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
    return all.empty() ? std::string() : "{" + all + "}";
  };
  for (const Series& s : series_) {
    if (described.insert(s.name).second) {
      const char* type = s.kind == Kind::kCounter || s.kind == Kind::kCounterFn ? "counter"
                         : s.kind == Kind::kGauge ? "gauge"
                                                  : "histogram";
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", s.name, s.help, s.name, type);
    }
    switch (s.kind) {
      case Kind::kCounter:
        out += fmt::format("{}{} {}\n", s.name, braces(s.labels), s.counter->Value());
        break;
      case Kind::kCounterFn:
      case Kind::kGauge:
        out += fmt::format("{}{} {}\n", s.name, braces(s.labels), s.gauge());
        break;
      case Kind::kHistogram: {
        auto counts = s.histogram->BucketCounts();
        auto bounds = s.histogram->bounds();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          std::string le = i < bounds.size() ? fmt::format("{}", bounds[i]) : "+Inf";
          out += fmt::format("{}_bucket{} {}\n", s.name, braces(s.labels, "le=\"" + le + "\""),
                             cumulative);
        }
        out += fmt::format("{}_sum{} {}\n", s.name, braces(s.labels), s.histogram->Sum());
        out += fmt::format("{}_count{} {}\n", s.name, braces(s.labels), cumulative);
        break;
      }
    }
  }
  return out;
}

}  // namespace objstore
