// ColdFetch: one transfer of a body from the cold store, shared by every GET
// that wants it while it runs (single flight), and streamed to them as it
// arrives (a client does not wait for the whole object before the first byte).
//
// Protocol
// - The fetcher (a blocking-pool thread, Node::RunColdFetch) writes the body
//   into a temporary file and publishes, in order: the object's metadata and a
//   read descriptor of that file (PublishMeta), the count of bytes written
//   (PublishBytes, after every chunk), and the outcome (Finish): the
//   committed record, or the error. The count is always of the body's first
//   bytes in order, also when a large body's later parts arrive beside the
//   first over parallel connections (ColdParts): they are published as the
//   count reaches them.
//   A GET waits for the metadata and its first bytes together (one wake-up);
//   a HEAD for the metadata alone.
// - Readers (GET coroutines on any event loop) call Wait(have) and are resumed
//   on their own executor when more than `have` bytes may be sent, or when the
//   fetch failed. No polling, no blocked threads.
// - The chunk that completes the body (by the size in the metadata) is held
//   back until the body is verified (size and content hash, PublishVerified):
//   a client never receives a complete body that failed verification (on
//   failure readers close the connection mid-body), and readers wake once for
//   that chunk and the last byte, not twice. The durable commit (fsyncs of
//   the body, its directory and the journal) comes after and is not waited
//   for: it costs about as much as the transfer of a small object. A GET
//   arriving meanwhile is a hit served from the verified file
//   (Node::VerifiedFetch); a request that must see the committed record
//   (meta, delete, a level change) waits for Finish (Node::FetchInFlight).
//
// A ColdFetch also carries a range read (Node::ReadColdRange): the bytes of
// one range of the body, into a temporary file that is never committed, for
// one GET whose range lies far ahead of the body's fetch. Its "size" is then
// the range's length, and "verified" means all of the range arrived from the
// version the record names.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "cache/capacity.h"
#include "journal/record.h"

namespace objstore {

class ColdFetch {
 public:
  using RecordPtr = std::shared_ptr<const ObjectRecord>;

  struct Progress {
    Status status;           // not Ok: the fetch failed (readers stop)
    bool has_meta = false;   // record() and fd() are valid
    uint64_t sendable = 0;   // bytes readers may send now
    bool verified = false;   // the whole body is here and matches: sendable == size
    bool complete = false;   // verified and committed: outcome() is valid
  };

  // Resumes when sendable > have, or (have == 0) an empty body is verified,
  // or the fetch failed, or (wait_meta) the metadata is known. Call from a
  // coroutine.
  boost::asio::awaitable<Progress> Wait(uint64_t have, bool wait_meta = false);
  Progress Current() const;

  // Valid once has_meta: what the object will be served as.
  const ObjectRecord& record() const { return record_; }
  int fd() const { return fd_.get(); }
  // Valid once complete.
  RecordPtr outcome() const;

  // Fetcher side. First, the key's pin and the reservation of the body's
  // bytes: both are kept until this object is destroyed (see pin_). Returns
  // the reservation to grow and to hand to Capacity::AddBody.
  Reservation& HoldSpace(BodyPin pin, Reservation reserved);
  // `range_length`: for a range read, the bytes it brings (else the body's
  // size, record.size).
  void PublishMeta(ObjectRecord record, UniqueFd read_fd,
                   std::optional<uint64_t> range_length = std::nullopt);
  // After PublishMeta. A count that reaches the object's size publishes
  // nothing: those bytes become sendable with PublishVerified. Both return
  // true when they woke a reader (the fetcher may then hand its CPU over).
  bool PublishBytes(uint64_t written);
  // The body is complete and matches its size and hash; the commit follows.
  bool PublishVerified();
  // Returns the early hits counted (CountEarlyHit): the committer hands them
  // to the eviction policy, which did not know the key before the commit.
  uint32_t Finish(Result<RecordPtr> outcome);

  // Reader side: a GET was served from the verified body before the commit
  // (Node::VerifiedFetch). True when counted here; false once finished (the
  // body, if committed, is tracked by the policy: record the hit there).
  bool CountEarlyHit();

 private:
  struct Waiter {
    uint64_t have;
    bool wait_meta;
    boost::asio::any_io_executor executor;
    std::function<void(Progress)> resume;
  };
  Progress CurrentLocked() const;
  bool Ready(const Waiter& w, const Progress& p) const;
  // Resumes the waiters that are ready, unlocking `lock`; true if any was.
  bool WakeReady(std::unique_lock<std::mutex>& lock);

  mutable std::mutex mu_;
  bool has_meta_ = false;  // guarded by mu_; record_ and fd_ are immutable once set
  ObjectRecord record_;
  // Declared before fd_, so released after it is closed: an open descriptor
  // keeps the file's pages allocated even once the file is unlinked, and
  // readers may hold this object after the fetcher is done. The pin keeps a
  // committed body from being evicted (its bytes would leave the account but
  // not the disk); the reservation keeps counting a failed fetch's file. Only
  // the fetcher touches them.
  BodyPin pin_;
  Reservation reserved_;
  UniqueFd fd_;
  uint64_t length_ = 0;               // guarded by mu_: record_.size, or the range's length
  uint64_t written_ = 0;              // guarded by mu_
  bool verified_ = false;             // guarded by mu_
  bool finished_ = false;             // guarded by mu_
  uint32_t early_hits_ = 0;           // guarded by mu_
  Status status_;                     // guarded by mu_
  RecordPtr outcome_;                 // guarded by mu_
  std::vector<Waiter> waiters_;       // guarded by mu_
};

}  // namespace objstore
