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

Status GetResuming(ColdStore& cold, const std::string& key, uint64_t offset, uint64_t length,
                   int max_resumes, const std::function<Status(const ColdObjectMeta&)>& on_meta,
                   const std::function<Status(std::span<const char>)>& on_data,
                   const std::function<Status(uint64_t have, const Status& why)>& before_resume) {
  if (length == kWholeObject && offset != 0) {
    return Status::Invalid("a whole object is read from its first byte");
  }
  ColdObjectMeta first;   // the accepted answer
  bool accepted = false;  // on_meta took it
  bool refused = false;   // a callback failed: ours, not the transfer's
  uint64_t have = 0;      // bytes on_data took
  auto take = [&](std::span<const char> chunk) {
    Status d = on_data(chunk);
    if (!d.ok()) {
      refused = true;
      return d;
    }
    have += chunk.size();
    return Status::Ok();
  };
  auto accept = [&](const ColdObjectMeta& m) {
    Status t = on_meta(m);
    (t.ok() ? accepted : refused) = true;
    if (t.ok()) first = m;
    return t;
  };
  Status s = length == kWholeObject ? cold.Get(key, accept, take)
                                    : cold.GetRange(key, offset, length, accept, take);
  auto same_object = [&](const ColdObjectMeta& m) {
    if (m.size == first.size && m.etag == first.etag && m.version == first.version) {
      return Status::Ok();
    }
    refused = true;
    return Status::Unavailable("the cold store's copy of " + key + " changed during the transfer");
  };
  for (int resumes = 0;
       !s.ok() && accepted && !refused && !first.etag.empty() && resumes < max_resumes &&
       (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kIOError);
       ++resumes) {
    const uint64_t end = length == kWholeObject ? first.size : offset + length;
    if (offset + have >= end) break;  // a transfer that failed after its last byte
    if (Status b = before_resume(have, s); !b.ok()) return b;
    s = cold.GetRange(key, offset + have, end - offset - have, same_object, take);
  }
  return s;
}

}  // namespace objstore
