#include "base/random.h"

#include <sys/random.h>

#include <cerrno>
#include <stdexcept>

namespace objstore {

void SystemRandom::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");  // only before the kernel's pool exists
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace objstore
