#include "coldstore/cold_store.h"

#include <algorithm>

namespace objstore {

Status ColdStore::GetRange(const std::string& key, uint64_t offset, uint64_t length,
                           const std::function<Status(const ColdObjectMeta&)>& on_meta,
                           const std::function<Status(std::span<const char>)>& on_data) {
  uint64_t pos = 0;  // offset in the object of the next byte Get hands over
  bool done = false;
  Status s = Get(
      key,
      [&](const ColdObjectMeta& m) {
        if (length == 0 || offset > m.size || m.size - offset < length) {
          return Status::Invalid("range outside the object " + key);
        }
        return on_meta(m);
      },
      [&](std::span<const char> chunk) {
        const uint64_t chunk_at = pos;  // offset in the object of chunk[0]
        pos += chunk.size();
        const uint64_t begin = std::max(chunk_at, offset), end = std::min(pos, offset + length);
        if (begin < end) {
          Status d = on_data(chunk.subspan(begin - chunk_at, end - begin));
          if (!d.ok()) return d;
        }
        if (pos < offset + length) return Status::Ok();
        done = true;
        return Status::IOError("range complete");  // stops the transfer
      });
  return done ? Status::Ok() : s;
}

}  // namespace objstore
