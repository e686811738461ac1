// objstore client library: the public HTTP API of a node (SPEC §2,
// docs/API.md) as C++ calls.
//
// Contract:
// - One Client talks to one node over one persistent HTTP/1.1 connection
//   (keep-alive). The connection is opened on the first call, reused by the
//   next ones, and reopened transparently when the node closed it (idle
//   timeout, an error answer that ended the connection, a restart).
// - Every call returns a Result: the value, or an Error that says whether the
//   node answered (http_status, and the server's own JSON `code` and `error`
//   text) or not (connection, timeout, protocol, local I/O). No exception
//   leaves this API.
// - Bodies stream in both directions through a fixed buffer (256 KiB): a
//   multi-GB put or get never holds the object in memory.
// - Timeouts: `connect_timeout` bounds the TCP connect; `io_timeout` bounds
//   every single read or write on the socket (a stalled transfer fails, a slow
//   but moving one does not), except the wait for a PUT's or a level raise's
//   answer, bounded by `commit_timeout` (the node uploads to the cold store
//   first). Host-name resolution uses the system resolver and its own limits.
// - Only http:// URLs: objstore nodes serve plain HTTP (put TLS in front with
//   a proxy).
//
// Thread safety: a Client is not thread-safe; use one per thread. Calls block
// the calling thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace objstore::client {

// ------------------------------------------------------------------ errors

struct Error {
  enum class Kind {
    kHttp,        // the node answered 4xx/5xx: http_status, code and message are the node's
    kConnection,  // cannot connect, or the connection broke mid-request
    kTimeout,     // connect or a read/write took longer than its timeout
    kProtocol,    // the node's answer was not the HTTP or JSON expected
    kLocalIo,     // reading the source or writing the destination failed
    kInvalid,     // a bad argument (URL, range, an id not of letters and digits), nothing was sent
  };
  Kind kind = Kind::kInvalid;
  int http_status = 0;  // set for kHttp only
  std::string code;     // kHttp: the server's code ("bad_id", "not_found"...); else empty
  std::string message;  // human-readable; kHttp: the server's "error" text

  // "HTTP 404 not_found: no object 01..." or "connection: ..." for logs and CLIs.
  std::string ToString() const;
  // 404 (unknown id or tombstone).
  bool IsNotFound() const { return kind == Kind::kHttp && http_status == 404; }
};

// A value or an Error. Result<void> carries only the outcome.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// ------------------------------------------------------------------ values

using UserMeta = std::map<std::string, std::string>;

// An object's metadata as the node reports it (docs/API.md "meta JSON").
struct ObjectInfo {
  std::string id;
  std::string name;
  uint64_t size = 0;
  std::string etag;  // quoted, as in the ETag header
  std::string content_type;
  int64_t timestamp_ns = 0;  // creation time
  std::string last_modified;
  std::string version;  // the HLC stamp ordering every change
  int consistency = 0;  // level 0, 1 or 2
  UserMeta user_meta;
  bool deleted = false;
  bool local_body = false;  // the body is on the node that answered
  std::string cold;         // "none", "pending" or "stored"
  std::string json;         // the node's JSON text, unchanged
};

// One byte range: [first, last] inclusive, [first, end) when last is empty,
// or the final `suffix` bytes when first is empty (RFC 9110 forms a-b, a-, -n).
struct ByteRange {
  std::optional<uint64_t> first;
  std::optional<uint64_t> last;
  // Parses "A-B", "A-" or "-N" (an optional "bytes=" prefix is accepted).
  static Result<ByteRange> Parse(std::string_view text);
  std::string ToHeader() const;  // "bytes=A-B"
};

// Called while a body moves: bytes done so far and the total when known.
using ProgressFn = std::function<void(uint64_t done, std::optional<uint64_t> total)>;

// Fills buf with up to `capacity` bytes; returns how many (0 = end of the body),
// or an Error (kind kLocalIo) to abort the upload.
using SourceFn = std::function<Result<size_t>(char* buf, size_t capacity)>;

// Takes the next bytes of a body; returns false to abort the download (the
// connection is then closed, since the rest of the body is unread).
using SinkFn = std::function<bool(std::string_view bytes)>;

struct PutOptions {
  int level = 0;     // X-Meta-ConsistencyLevel
  std::string name;  // X-Meta-Name; its extension gives the Content-Type; empty: none
  UserMeta user_meta;
  ProgressFn progress;
};

struct GetOptions {
  std::optional<ByteRange> range;
  bool fetch = false;  // X-Meta-Fetch: restore an id this node does not know from the cold store
  ProgressFn progress;
};

// What a GET answered besides the body.
struct GetInfo {
  int http_status = 200;  // 200, or 206 for a range
  uint64_t content_length = 0;
  std::string content_range;  // "bytes a-b/size" for 206
  std::string content_type;
  std::string etag;
  std::string last_modified;
  std::string id;
  std::string name;
  int consistency = 0;
  std::string user_meta_json;
  bool fetched = false;  // the body came from the cold store in this request
  bool symlink = false;  // the body was streamed from another node
};

struct ClientOptions {
  std::string url = "http://127.0.0.1:10999";  // http://host[:port] of any node
  // A node on the same network connects in microseconds; 5 s covers a busy one.
  std::chrono::milliseconds connect_timeout{5'000};
  // Per read or write: the node's own idle timeout is 60 s, so waiting longer
  // than that for one socket operation means the transfer is stuck.
  std::chrono::milliseconds io_timeout{60'000};
  // The wait for the answer once a PUT's body or a level raise is sent: at
  // level >= 1 the node first uploads the object to the cold store, which for
  // a multi-GB object takes minutes.
  std::chrono::milliseconds commit_timeout{15 * 60'000};
  // Sent as "Authorization: Bearer <token>" when not empty, for nodes started
  // with --auth-tokens-file (docs/SECURITY.md).
  std::string token;
};

// ------------------------------------------------------------------ client

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // GET /api/v1/id: a fresh ULID.
  Result<std::string> NewId();
  // GET /api/v1/ping: the node's id (stable across restarts).
  Result<std::string> Ping();
  // GET /api/v1/version: the node's JSON text.
  Result<std::string> Version();
  // GET /api/v1/stats: the node's JSON text (docs/API.md lists the fields).
  Result<std::string> StatsJson();

  // POST /api/v1/put of a file's bytes: Content-Length from its size, or
  // chunked when it is a pipe or a device (`<(cmd)`, /dev/stdin).
  Result<ObjectInfo> PutFile(const std::string& id, const std::string& path,
                             const PutOptions& options = {});
  // POST /api/v1/put of the bytes `source` yields; sent chunked unless `size`
  // is given (then the source must yield exactly that many bytes).
  Result<ObjectInfo> Put(const std::string& id, const SourceFn& source,
                         std::optional<uint64_t> size, const PutOptions& options = {});
  // POST /api/v1/put of bytes held in memory.
  Result<ObjectInfo> Put(const std::string& id, std::string_view bytes,
                         const PutOptions& options = {});

  // GET /api/v1/get/:id, body to `sink` as it arrives.
  Result<GetInfo> Get(const std::string& id, const SinkFn& sink, const GetOptions& options = {});
  // GET to a file. A regular (or new) file is written under a temporary name in
  // the same directory and renamed into place only when the body is complete;
  // anything else (a FIFO, /dev/null) is written directly.
  Result<GetInfo> GetToFile(const std::string& id, const std::string& path,
                            const GetOptions& options = {});

  // GET /api/v1/meta/:id (also answers for tombstones, with deleted = true).
  Result<ObjectInfo> Meta(const std::string& id);
  // POST /api/v1/meta/:id: raises the level without re-sending the body.
  Result<ObjectInfo> RaiseLevel(const std::string& id, int level);
  // POST /api/v1/delete/:id: the tombstone's metadata.
  Result<ObjectInfo> Delete(const std::string& id);

 private:
  class Connection;
  std::unique_ptr<Connection> conn_;
};

}  // namespace objstore::client
