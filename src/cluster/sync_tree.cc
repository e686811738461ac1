#include "cluster/sync_tree.h"

#include <openssl/evp.h>

#include <cctype>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <charconv>

namespace objstore::cluster {

SyncTree::SyncTree() {
  for (int l = 0; l <= kLeafLevel; ++l) levels_[l].assign(NodesAt(l), 0);
}

uint64_t SyncTree::RecordHash(const ObjectRecord& r) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, r.key.data(), r.key.size());
  const uint64_t version = r.version.packed;
  XXH3_64bits_update(&state, &version, sizeof version);
  XXH3_64bits_update(&state, r.version_node.data(), r.version_node.size());
  const uint8_t flags = (r.deleted ? 1 : 0) |
                        (!r.deleted && r.cold == ColdState::kStored ? 2 : 0) |
                        (r.deleted && r.stable_ms != 0 ? 4 : 0);
  XXH3_64bits_update(&state, &flags, 1);
  // 0 is the hash of "nothing": keep every record's contribution non-zero.
  const uint64_t h = XXH3_64bits_digest(&state);
  return h ? h : 1;
}

uint32_t SyncTree::LeafOf(const std::string& key) {
  return static_cast<uint32_t>(XXH3_64bits(key.data(), key.size()) >> 48);
}

void SyncTree::Toggle(uint32_t leaf, uint64_t hash) {
  uint32_t index = leaf;
  for (int l = kLeafLevel; l >= 0; --l) {
    levels_[l][index] ^= hash;
    index /= kFanout;
  }
}

bool SyncTree::Change(const ObjectRecord* before, const ObjectRecord& after) {
  const uint32_t leaf = LeafOf(after.key);
  const uint64_t new_hash = RecordHash(after);
  const uint64_t old_hash = before ? RecordHash(*before) : 0;
  if (before && old_hash == new_hash) return false;
  std::lock_guard lock(mu_);
  if (before) {
    Toggle(leaf, old_hash);
  } else {
    ++records_;
  }
  Toggle(leaf, new_hash);
  return true;
}

void SyncTree::Remove(const ObjectRecord& record) {
  const uint64_t hash = RecordHash(record);
  std::lock_guard lock(mu_);
  Toggle(LeafOf(record.key), hash);
  --records_;
}

uint64_t SyncTree::Hash(int level, uint32_t index) const {
  if (level < 0 || level > kLeafLevel || index >= NodesAt(level)) return 0;
  std::lock_guard lock(mu_);
  return levels_[level][index];
}

uint64_t SyncTree::records() const {
  std::lock_guard lock(mu_);
  return records_;
}

std::string HashToHex(uint64_t h) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[i] = kDigits[h & 15];
  return out;
}

bool HexToHash(const std::string& text, uint64_t* out) {
  if (text.size() != 16) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, 16);
  return ec == std::errc() && p == text.data() + text.size();
}

std::string PackHashes(const std::vector<uint64_t>& hashes) {
  std::string raw(hashes.size() * 8, '\0');
  for (size_t i = 0; i < hashes.size(); ++i) {
    for (int b = 0; b < 8; ++b) raw[i * 8 + b] = static_cast<char>(hashes[i] >> (56 - 8 * b));
  }
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool UnpackHashes(std::string_view text, std::vector<uint64_t>* out) {
  out->clear();
  if (text.empty()) return true;
  if (text.size() % 4 != 0 || text.size() > (1u << 30)) return false;
  size_t pad = 0;
  if (text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  const size_t bytes = text.size() / 4 * 3 - pad;
  if (bytes % 8 != 0) return false;
  for (char c : text.substr(0, text.size() - pad)) {  // EVP_DecodeBlock would skip white space
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return false;
  }
  std::string raw(text.size() / 4 * 3, '\0');
  if (EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                      reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size())) < 0) {
    return false;
  }
  out->resize(bytes / 8);
  for (size_t i = 0; i < out->size(); ++i) {
    uint64_t h = 0;
    for (int b = 0; b < 8; ++b) h = (h << 8) | static_cast<unsigned char>(raw[i * 8 + b]);
    (*out)[i] = h;
  }
  return true;
}

}  // namespace objstore::cluster
