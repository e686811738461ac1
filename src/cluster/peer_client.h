// PeerClient: calls to other nodes' private APIs (docs/CLUSTER.md).
//
// Design
// - HTTP/1.1 on Boost.Beast, C++20 coroutines. Connections are kept alive in a
//   pool per (event loop, peer address): a coroutine takes an idle connection
//   of its own loop, so a connection is only ever touched by one thread and no
//   locks sit on the I/O path (the pool's map has a mutex, held for a lookup).
// - Every call has a deadline (`timeout`) covering connect, send and the whole
//   answer; a body stream has it per read. A hung peer costs a caller at most
//   that long.
// - Requests are signed and JSON answers verified (CallAuthenticator).
// - A pooled connection the peer closed meanwhile fails on first use: the
//   call is retried once on a new connection (every call is idempotent).
// Thread safety: all methods may be called from any event loop concurrently.
// Clear() must run before the event loops that own pooled connections die.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "cluster/auth.h"
#include "http/direct_body.h"

namespace objstore::cluster {

// Traffic of the private API, for /stats and /metrics.
struct PeerTraffic {
  std::atomic<uint64_t> calls{0}, failures{0}, bytes_sent{0}, bytes_received{0};
};

class PeerClient;

// The answer of a body request, streamed. Read until it returns 0.
class PeerBodyStream {
 public:
  ~PeerBodyStream();
  int status() const { return status_; }
  uint64_t content_length() const { return content_length_; }
  // The private address of the peer answering.
  const std::string& addr() const { return addr_; }
  // Up to out.size() bytes; 0 at the end. Unavailable on a failure or timeout.
  // A body with a Content-Length goes through Beast's parser only for the
  // bytes read with the header; the rest comes from the socket straight into
  // `out` (http/direct_body.h).
  boost::asio::awaitable<Result<size_t>> Read(std::span<char> out);

 private:
  friend class PeerClient;
  bool BodyDone() const { return direct_.engaged() ? direct_.done() : parser_->is_done(); }
  PeerClient* client_ = nullptr;
  std::string addr_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
  std::unique_ptr<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser_;
  int status_ = 0;
  uint64_t content_length_ = 0;
  bool failed_ = false;
  http::DirectBody direct_;  // the body past the parser's bytes
};

class PeerClient {
 public:
  PeerClient(CallAuthenticator& auth, std::string self_id, std::chrono::milliseconds timeout);
  ~PeerClient();

  // POSTs `body` (JSON) to `target` on `addr` and returns the JSON answer.
  // Unavailable when the peer cannot be reached in time or its answer is not
  // authentic; Invalid/Conflict carry a refusal's message (e.g. tag_mismatch).
  // `timeout`: this call's deadline when longer than the default (large
  // anti-entropy exchanges); 0 keeps the default. `answer_bytes`, when given,
  // receives the size of the answer's body.
  boost::asio::awaitable<Result<nlohmann::json>> Call(
      std::string addr, std::string target, std::string body,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
      size_t* answer_bytes = nullptr);
  // GETs `target` (a body) with an optional Range header, or with
  // `head_only` asks for its header alone (HEAD: the stream then has no
  // bytes to read); the stream is returned once the answer's header arrived,
  // whatever its status.
  boost::asio::awaitable<Result<std::unique_ptr<PeerBodyStream>>> OpenBody(std::string addr,
                                                                           std::string target,
                                                                           std::string range,
                                                                           bool head_only = false);
  // Closes every pooled connection; later releases close theirs at once.
  void Clear();
  const PeerTraffic& traffic() const { return traffic_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  friend class PeerBodyStream;
  using Stream = boost::beast::tcp_stream;
  using Deadline = std::chrono::steady_clock::time_point;
  // A pooled connection to `addr`, or a new one made by `deadline`.
  boost::asio::awaitable<Result<std::unique_ptr<Stream>>> Connect(const std::string& addr,
                                                                  Deadline deadline, bool* reused);
  void Release(const std::string& addr, std::unique_ptr<Stream> stream);
  // Host and the signed-call headers; returns the call's nonce.
  std::string SetCallHeaders(boost::beast::http::request_header<>& req, std::string_view method,
                             const std::string& target, const std::string& addr,
                             std::string_view body);

  CallAuthenticator& auth_;
  const std::string self_id_;
  const std::chrono::milliseconds timeout_;
  PeerTraffic traffic_;
  std::mutex mu_;
  bool closed_ = false;  // guarded by mu_; after Clear nothing is pooled again
  // (event loop, address) -> idle connections; guarded by mu_
  std::map<std::pair<const void*, std::string>, std::vector<std::unique_ptr<Stream>>> idle_;
};

}  // namespace objstore::cluster
