#include "base/clock.h"

#include <chrono>

namespace objstore {

int64_t SystemClock::NowNanos() const {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count() + skew_;
}

}  // namespace objstore
