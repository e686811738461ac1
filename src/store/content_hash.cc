#include "store/content_hash.h"

#include <cstdio>

namespace objstore {

ContentHash::ContentHash() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }

ContentHash::~ContentHash() { XXH3_freeState(state_); }

void ContentHash::Update(std::span<const char> data) {
  XXH3_128bits_update(state_, data.data(), data.size());
}

std::string ContentHash::ETag() const {
  XXH128_hash_t h = XXH3_128bits_digest(state_);
  char buf[35];
  std::snprintf(buf, sizeof buf, "\"%016llx%016llx\"", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

}  // namespace objstore
