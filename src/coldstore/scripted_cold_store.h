// ScriptedColdStore: a cold store for unit tests that holds one object and
// hands it over the way a test scripts: in pieces of chosen sizes, at a chosen
// rate, broken off after a chosen byte (a reset connection), or under another
// etag (the object replaced in the bucket between two requests). The real
// stores cannot be made to do any of that at a chosen byte, so this is the one
// fake the cold-store and node tests share for it. ReadObject below reads
// an object whole through any store, for the stores' own tests.
//
// Get serves the whole object, GetRange a range of it; both check the key
// (NotFound for any other) and GetRange the bounds (Invalid past the end).
// A transfer hands its bytes to on_data in pieces of the sizes in `pieces`,
// the last size repeating, and after each piece runs `after_piece` (a test's
// probe, on the transferring thread) and sleeps `pause`.
//
// Thread safety: transfers may run at once (a node fetches parts in
// parallel). Set the knobs before the first transfer; read the records
// (`ranges`, `gets`, `most_running`) under `mu` or after the transfers ended.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coldstore/cold_store.h"

namespace objstore::testing {

class ScriptedColdStore final : public ColdStore {
 public:
  static constexpr uint64_t kAnyOffset = ~0ull;

  ScriptedColdStore(ColdObjectMeta meta, std::string body)
      : meta(std::move(meta)), body_(std::move(body)) {}

  ColdObjectMeta meta;  // what answers carry unless `changed_meta` applies

  // How bytes are handed over.
  std::vector<size_t> pieces{64 * 1024};  // sizes of successive pieces, the last repeating
  std::chrono::microseconds pause{0};     // after each piece
  std::function<void()> after_piece;      // after each piece, before the pause

  // The first `breaks` transfers that start at `break_at_offset` (any, when
  // kAnyOffset) end with Unavailable once `break_after` bytes of them are out.
  int breaks = 0;
  uint64_t break_after = 0;
  uint64_t break_at_offset = kAnyOffset;

  // When set, answers carry `changed_meta` instead of `meta`: to transfers
  // that start at `changed_at_offset`, or with kAnyOffset to every transfer
  // but the first.
  std::optional<ColdObjectMeta> changed_meta;
  uint64_t changed_at_offset = kAnyOffset;

  // Records.
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (offset, length) of each GetRange
  int gets = 0, running = 0, most_running = 0;

  std::string Describe() const override { return "scripted"; }
  Status Put(const ColdObjectMeta&, const std::string&) override { return Status::Ok(); }
  Status Delete(const std::string&, uint64_t) override { return Status::Ok(); }

  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override {
    if (key != meta.key) return Status::NotFound("no " + key);
    {
      std::lock_guard lock(mu);
      ++gets;
    }
    return Serve(0, body_.size(), on_meta, on_data);
  }

  Status GetRange(const std::string& key, uint64_t offset, uint64_t length,
                  const std::function<Status(const ColdObjectMeta&)>& on_meta,
                  const std::function<Status(std::span<const char>)>& on_data) override {
    if (key != meta.key) return Status::NotFound("no " + key);
    if (offset + length > body_.size()) return Status::Invalid("range past the end");
    {
      std::lock_guard lock(mu);
      ranges.emplace_back(offset, length);
    }
    return Serve(offset, length, on_meta, on_data);
  }

 private:
  Status Serve(uint64_t offset, uint64_t length,
               const std::function<Status(const ColdObjectMeta&)>& on_meta,
               const std::function<Status(std::span<const char>)>& on_data) {
    uint64_t cut = length;
    ColdObjectMeta answer = meta;
    {
      std::lock_guard lock(mu);
      most_running = std::max(most_running, ++running);
      const bool first = transfers_++ == 0;
      if (breaks > 0 && (break_at_offset == kAnyOffset || break_at_offset == offset)) {
        --breaks;
        cut = std::min(length, break_after);
      }
      if (changed_meta && (changed_at_offset == kAnyOffset ? !first : changed_at_offset == offset))
        answer = *changed_meta;
    }
    Status s = on_meta(answer);
    for (uint64_t at = 0, i = 0; s.ok() && at < cut; ++i) {
      const uint64_t n = std::min<uint64_t>(pieces[std::min(i, pieces.size() - 1)], cut - at);
      if (s = on_data({body_.data() + offset + at, n}); !s.ok()) break;
      at += n;
      if (after_piece) after_piece();
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
    if (s.ok() && cut < length) s = Status::Unavailable("connection reset mid-body");
    std::lock_guard lock(mu);
    --running;
    return s;
  }

  std::string body_;
  int transfers_ = 0;  // guarded by mu
};

// Reads `key` whole through any store's Get: its metadata and bytes.
inline Result<std::pair<ColdObjectMeta, std::string>> ReadObject(ColdStore& store,
                                                                 const std::string& key) {
  ColdObjectMeta meta;
  std::string data;
  Status s = store.Get(
      key,
      [&](const ColdObjectMeta& m) {
        meta = m;
        return Status::Ok();
      },
      [&](std::span<const char> c) {
        data.append(c.data(), c.size());
        return Status::Ok();
      });
  if (!s.ok()) return s;
  return std::make_pair(meta, data);
}

}  // namespace objstore::testing
