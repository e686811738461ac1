// SyncTree: a hash tree over the journal, for anti-entropy (docs/CLUSTER.md).
//
// Design
// - Leaves are 65,536 buckets chosen by the key's hash. A record contributes a
//   64-bit hash of what must agree across nodes (key, version, version node,
//   tombstone, for live records whether the cold store has the version, for
//   tombstones whether every member holds it).
// - A node's hash is the XOR of the record hashes below it, so a change updates
//   one leaf and its four ancestors in O(1): remove the old record's hash, add
//   the new one. Equal sets give equal hashes; the root says at once whether
//   two journals agree.
// - Levels: 0 is the root; level l has 16^l nodes; the children of node i at
//   level l are 16*i … 16*i+15 at level l+1; leaves are at level kLeafLevel.
// Thread safety: all methods may be called concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "journal/record.h"

namespace objstore::cluster {

class SyncTree {
 public:
  static constexpr int kFanout = 16;
  static constexpr int kLeafLevel = 4;
  static constexpr uint32_t kLeaves = 65536;

  SyncTree();
  static uint64_t RecordHash(const ObjectRecord& r);
  static uint32_t LeafOf(const std::string& key);
  static uint32_t NodesAt(int level) { return 1u << (4 * level); }

  // Replaces `before` (nullptr: none) by `after` in the tree. True when what
  // must agree across nodes changed (a new record, or a different hash).
  bool Change(const ObjectRecord* before, const ObjectRecord& after);
  // Takes out `record`, which the tree holds (a purged tombstone). XOR makes
  // the order of Change and Remove calls for one key irrelevant.
  void Remove(const ObjectRecord& record);

  uint64_t Hash(int level, uint32_t index) const;
  uint64_t Root() const { return Hash(0, 0); }
  uint64_t records() const;

 private:
  void Toggle(uint32_t leaf, uint64_t hash);  // requires mu_
  mutable std::mutex mu_;
  std::array<std::vector<uint64_t>, kLeafLevel + 1> levels_;  // guarded by mu_
  uint64_t records_ = 0;                                      // guarded by mu_
};

// 16 lower-case hex digits; Parse refuses anything else.
std::string HashToHex(uint64_t h);
bool HexToHash(const std::string& text, uint64_t* out);

// A list of hashes as one base64 string of their 8-byte big-endian forms, as
// the private API sends them: 10.7 characters a hash instead of 19 for a JSON
// array of hex strings (anti-entropy sends one per record of a differing
// leaf). Unpack refuses anything that is not such a string.
std::string PackHashes(const std::vector<uint64_t>& hashes);
bool UnpackHashes(std::string_view text, std::vector<uint64_t>* out);

}  // namespace objstore::cluster
