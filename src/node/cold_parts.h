// ColdParts: the later parts of a large cold fetch, brought by ranged GETs
// over parallel connections into the fetch's file while the fetcher streams
// the first part to its readers.
//
// Why: one GET from S3 runs at one connection's rate (tens of MB/s to about a
// hundred on AWS), so a large evicted object came back at that rate however
// fast the link. AWS's own clients fetch large objects in parts over several
// connections; a fetch of an object larger than one part does the same.
//
// Design
// - [first, size) is cut into parts of `part_size`. Workers, threads of
//   their own (a fetch on the node's blocking pool waiting for parts queued
//   behind other fetches there could starve it), take the lowest part not yet
//   taken, read it with ColdStore::GetRange and AtomicFile::WriteAt its bytes
//   at their offsets. Each part's written length is published under a mutex.
// - The fetcher owns the file. WaitPast(offset) returns once the part holding
//   `offset` has bytes past it; the fetcher adopts them
//   (AtomicFile::AdoptWritten, which hashes them in order) and publishes them
//   to its readers, so the readers still see one answer in order.
// - Every part's answer must be of the same object as the fetch's first
//   (size, etag, version). A part broken off mid-body is resumed from its
//   first missing byte, at most `max_resumes` times; a part that fails fails
//   the fetch.
// - Destruction cancels: workers stop at their next callback and are joined,
//   so the file outlives every write into it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status.h"
#include "coldstore/cold_store.h"
#include "metrics/metrics.h"
#include "store/atomic_file.h"

namespace objstore {

class ColdParts {
 public:
  struct Counters {
    Counter& parts;    // ranged GETs started for parts (resumes aside)
    Counter& resumes;  // ranged GETs that resumed a broken part
  };
  // Parts of `object` (meta.size > first) from byte `first` on, into `file`,
  // which must stay open until this is destroyed. Starts no worker.
  ColdParts(ColdStore& cold, AtomicFile& file, const ColdObjectMeta& object, uint64_t first,
            uint64_t part_size, int max_resumes, Counters counters);
  ~ColdParts();
  ColdParts(const ColdParts&) = delete;
  ColdParts& operator=(const ColdParts&) = delete;

  // Starts one more worker (while parts remain untaken). WaitPast needs one.
  void AddWorker();
  // Blocks until the part holding `offset` (first <= offset < size) has bytes
  // written past it; returns the end of that part's written bytes. The error
  // of the first part that failed, if one did (the fetch fails with it).
  Result<uint64_t> WaitPast(uint64_t offset);

 private:
  struct Part {
    uint64_t offset = 0, length = 0;
    uint64_t written = 0;  // bytes from offset on that are in the file
    bool taken = false, done = false;
    Status status;  // of a done part
  };
  void Work();
  Status Fetch(size_t index);

  ColdStore& cold_;
  AtomicFile& file_;
  const ColdObjectMeta object_;
  const uint64_t first_, part_size_;
  const int max_resumes_;
  const Counters counters_;
  std::mutex mu_;
  std::condition_variable progress_;
  std::vector<Part> parts_;  // guarded by mu_
  bool cancelled_ = false;   // guarded by mu_
  Status failed_;            // the first part's failure; guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace objstore
