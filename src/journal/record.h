// ObjectRecord: the journal's unit, one per key (SPEC §1). Plain data.
#pragma once

#include <cstdint>
#include <string>

#include "ids/hlc.h"

namespace objstore {

// Where the cold store stands for this version of the object.
enum class ColdState : int {
  kNone = 0,     // level 0, or not uploaded and not wanted
  kPending = 1,  // wanted (level >= 1) but not acknowledged yet
  kStored = 2,   // the cold store acknowledged this version
};
const char* ColdStateName(ColdState s);

struct ObjectRecord {
  std::string key;        // the object's id (a ULID in the native API)
  std::string name;       // client-supplied file name; metadata only, never a path
  uint64_t size = 0;      // bytes received, never a header's claim
  std::string etag;       // quoted content hash, e.g. "\"9f2c…\""
  int64_t timestamp_ns = 0;  // creation time of this version (wall clock)
  HlcTimestamp version;      // orders every change cluster-wide
  std::string version_node;  // node that made this version; breaks HLC ties
  int consistency = 0;       // 0 local, 1 s3, 2 full
  std::string user_meta = "{}";  // compact JSON object of string -> string
  bool deleted = false;          // tombstone
  // Tombstones only: when this node learned that every member holds this
  // tombstone (this node's wall clock, ms; 0 = not known yet). "Stable"
  // travels between nodes; the time does not. A stable tombstone is purged
  // `--tombstone-purge-after` later (docs/CLUSTER.md, "Tombstones").
  int64_t stable_ms = 0;

  // This node's view of where the body lives.
  bool local_body = false;  // this node has the body of this version on disk
  ColdState cold = ColdState::kNone;

  // Last-writer-wins order: HLC first, node id as the tie-break.
  bool NewerThan(const ObjectRecord& other) const {
    if (version != other.version) return version > other.version;
    return version_node > other.version_node;
  }
};

}  // namespace objstore
