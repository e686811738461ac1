// ContentHash: the content hash of a body, XXH3-128, in the form a record's
// etag carries it. Computed as the bytes go by: by AtomicFile as a body is
// written, and by the peer relay as a body streams through to a client.
//
// Not thread-safe: one owner.
#pragma once

#include <xxhash.h>

#include <span>
#include <string>

namespace objstore {

class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;

  void Update(std::span<const char> data);
  // Quoted lower-case hex of the XXH3-128 of everything so far.
  std::string ETag() const;

 private:
  XXH3_state_t* state_;
};

}  // namespace objstore
