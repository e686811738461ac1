// ColdStore: the durable copy of level >= 1 objects (SPEC §4).
//
// Two implementations plug into this interface: DirColdStore (a local
// directory, the embedded default when no bucket is configured) and the S3
// client. Calls are blocking and may take long (network); the node runs them on
// its blocking thread pool, never on an event loop. Implementations must be
// thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "base/status.h"

namespace objstore {

// What the cold store keeps beside a body so that a fetch restores the object.
struct ColdObjectMeta {
  std::string key;
  std::string name;
  int consistency = 1;
  int64_t timestamp_ns = 0;
  std::string user_meta = "{}";  // compact JSON object
  uint64_t size = 0;
  std::string etag;  // quoted content hash, as the journal has it
  uint64_t version = 0;  // the record's packed HLC stamp; a Put never replaces a newer one
};

// The store's state as /stats and /metrics show it.
struct ColdStoreHealth {
  bool reachable = true;       // false after a failed call, until one succeeds
  std::string last_error;      // message of the last failure, empty if none
  int64_t last_error_unix = 0;
  uint64_t requests = 0, retries = 0, errors = 0, bytes_up = 0, bytes_down = 0;
};

class ColdStore {
 public:
  virtual ~ColdStore() = default;
  // Human-readable location, for logs ("directory /var/lib/objstore/cold").
  virtual std::string Describe() const = 0;
  // Stores the file at `body_path` as meta.key, replacing an object of an older
  // version (an object of a newer version is kept and Put returns Ok). Returns
  // only once the object is durable. Unavailable when unreachable.
  virtual Status Put(const ColdObjectMeta& meta, const std::string& body_path) = 0;
  // Streams an object: on_meta once, then on_data for each chunk in order. An
  // error returned by a callback aborts the transfer and is returned.
  // NotFound when the store has no such key.
  virtual Status Get(const std::string& key,
                     const std::function<Status(const ColdObjectMeta&)>& on_meta,
                     const std::function<Status(std::span<const char>)>& on_data) = 0;
  // Streams bytes [offset, offset + length) of an object, length > 0: on_meta
  // once (its size is the whole object's), then on_data for each chunk in
  // order. A range outside the object is an error (Invalid, or Unavailable
  // from S3's 416); otherwise as Get. This default runs Get and drops the
  // bytes outside the range; a store that can read a range alone overrides it.
  virtual Status GetRange(const std::string& key, uint64_t offset, uint64_t length,
                          const std::function<Status(const ColdObjectMeta&)>& on_meta,
                          const std::function<Status(std::span<const char>)>& on_data);
  // Removes the object if its version is not newer than `version` (a delete
  // never removes a later re-PUT); absent is not an error.
  virtual Status Delete(const std::string& key, uint64_t version) = 0;
  virtual ColdStoreHealth Health() const { return {}; }
  // Invalid when the store could never keep an object with `meta` (S3 keeps at
  // most 2 KB of user metadata): checked before a PUT's body is taken, so the
  // upload does not fail for good after the PUT was acknowledged.
  virtual Status CheckMeta(const ColdObjectMeta& meta) const {
    (void)meta;
    return Status::Ok();
  }
};

// Reads an object (`length` kWholeObject: from `offset` 0 to its end, with
// Get) or a range of it (with GetRange), resuming a transfer broken off
// mid-body (a reset connection, a stalled S3): when on_meta accepted the
// answer and it carries an etag (an object written by objstore, whose etag,
// size and version name its bytes), a failure with Unavailable or IOError is
// followed by a GetRange from the first byte on_data has not taken, at most
// `max_resumes` times. A resumed answer of another size, etag or version
// ends it with Unavailable; on_meta sees the first answer only.
// `before_resume(have, why)` runs before each resume (`have`: bytes taken so
// far, `why`: the failure) and ends it by returning an error, which is
// returned. Not resumed: a callback's own failure, NotFound, a failure before
// any accepted answer (S3ColdStore has retried those already).
inline constexpr uint64_t kWholeObject = 0;
Status GetResuming(ColdStore& cold, const std::string& key, uint64_t offset, uint64_t length,
                   int max_resumes, const std::function<Status(const ColdObjectMeta&)>& on_meta,
                   const std::function<Status(std::span<const char>)>& on_data,
                   const std::function<Status(uint64_t have, const Status& why)>& before_resume);

}  // namespace objstore
