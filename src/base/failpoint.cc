// See failpoint.h. The armed points live in a fixed table filled once by
// Init(); Reached() only counts with atomics, so any thread may hit a point.
#include "base/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace objstore::failpoint {
namespace internal {
bool armed = false;
}  // namespace internal

namespace {

struct Point {
  std::string name;
  long count = 1;  // kill at this hit
  std::atomic<long> hits{0};
};

// Built before threads start and never resized afterwards.
std::vector<Point>& Points() {
  static std::vector<Point> points;
  return points;
}

}  // namespace

std::string Init() {
  internal::armed = false;
  Points().clear();
  const char* env = std::getenv("OBJSTORE_FAILPOINTS");
  if (env == nullptr || *env == '\0') return "";
  std::string_view spec(env);
  std::vector<std::pair<std::string, long>> parsed;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    long count = 1;
    size_t colon = item.find(':');
    if (colon != std::string_view::npos) {
      count = std::strtol(std::string(item.substr(colon + 1)).c_str(), nullptr, 10);
      if (count < 1) count = 1;
      item = item.substr(0, colon);
    }
    parsed.emplace_back(std::string(item), count);
  }
  std::vector<Point> points(parsed.size());
  std::string described;
  for (size_t i = 0; i < parsed.size(); ++i) {
    points[i].name = parsed[i].first;
    points[i].count = parsed[i].second;
    if (!described.empty()) described += ", ";
    described += parsed[i].first + " at hit " + std::to_string(parsed[i].second);
  }
  Points() = std::move(points);
  internal::armed = !Points().empty();
  return described;
}

void internal::Reached(const char* name) {
  for (Point& p : Points()) {
    if (p.name != name) continue;
    if (p.hits.fetch_add(1) + 1 != p.count) return;
    // write(2), not a logger: nothing buffered may stand between us and the kill.
    std::string line = "failpoint " + p.name + " reached: killing the process\n";
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::raise(SIGKILL);
  }
}

}  // namespace objstore::failpoint
