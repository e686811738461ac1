// HttpServer: an HTTP/1.1 server on Boost.Beast with C++20 coroutines.
//
// Design (after Beast's awaitable server examples):
// - Thread layout: one io_context per thread, each run by exactly one thread;
//   the acceptor lives on the first and deals connections round-robin, so a
//   connection's coroutine and all its state stay on one thread (no strands,
//   no locks on the connection path).
// - One coroutine per connection reads a request header, hands an Exchange to
//   the handler, and loops while the connection may be kept alive.
// - Limits: header bytes (431), header count (431), body bytes (413); a
//   deadline for a whole request header once its first byte arrived (slow
//   clients cannot hold a connection by trickling; 408), an idle timeout
//   between requests and between body reads. Malformed HTTP gets 400 and the
//   connection closes. Beast rejects Transfer-Encoding with Content-Length.
// - RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two,
//   gets 400; a version other than HTTP/1.0 and 1.1 gets 505 (Beast parses
//   no other, not even HTTP/1.2, which RFC 9110 §2.5 would serve as 1.1); an
//   absolute-form target ("http://host/path", as sent to a proxy) is routed
//   by its path and query.
// - Client limits (http/client_limits.h, off unless configured): a connection
//   over the overall or per-IP cap gets 503 and is closed before a request is
//   read; a request over its IP's rate gets 429 with Retry-After. A
//   connection closes after max_requests_per_connection requests. With all of
//   them off, each request pays one null check and one compare.
// - File bodies go out with sendfile(2) after the header, which is sent with
//   MSG_MORE so header and first body bytes leave in one segment. The header
//   of such an answer is a ResponseHead (http/response_head.h), written into
//   the connection's reused buffer, not a Beast message: it is every hit's.
// - Stop() closes the acceptor, closes idle connections, lets requests in
//   flight finish (up to a grace period; their answers say Connection: close)
//   and then stops the loops.
//
// Thread safety: Start/Stop from one controlling thread. An Exchange belongs to
// its connection's coroutine.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "http/client_limits.h"
#include "http/direct_body.h"
#include "http/response_head.h"

namespace objstore::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 10999;
  size_t threads = 2;                 // event loops; default: one per core
  uint32_t max_header_bytes = 16384;  // request line + headers
  uint32_t max_header_count = 100;
  uint64_t max_body_bytes = 5ull << 30;  // S3's single-PUT limit
  std::chrono::milliseconds header_timeout{10'000};  // whole header, from its first byte
  std::chrono::milliseconds idle_timeout{60'000};    // between requests and between reads
  ClientLimitOptions limits;              // connection caps and request rate (all off)
  uint32_t max_requests_per_connection = 0;  // then the connection closes; 0: no cap
};

struct Connection;

// One request and its response. The handler reads the body (if it wants it)
// and sends exactly one response.
class Exchange {
 public:
  using Header = bhttp::request_header<>;
  Exchange(Connection& conn, bhttp::request_parser<bhttp::buffer_body>& parser,
           const ServerOptions& options, const std::atomic<bool>& stopping)
      : conn_(conn), parser_(parser), options_(options), stopping_(stopping) {}

  const Header& header() const { return parser_.get().base(); }
  bool is_head() const { return header().method() == bhttp::verb::head; }

  // Reads up to out.size() body bytes; 0 means the body is complete.
  // TooLarge past the body limit, Invalid for a malformed body, Unavailable
  // when the client went away or stalled past the idle timeout.
  // A body with a Content-Length is read from the socket straight into `out`
  // once the bytes that came with the header are used up (http/direct_body.h).
  boost::asio::awaitable<Result<size_t>> ReadBody(std::span<char> out);
  bool body_done() const { return direct_.engaged() ? direct_.done() : parser_.is_done(); }

  // Sends a response whose body is in memory (or empty for HEAD / 304: the
  // Content-Length set by the caller is kept).
  boost::asio::awaitable<void> Send(bhttp::response<bhttp::string_body> res);
  // Sends `head` and then `length` bytes of `fd` from `offset`. `head` must
  // live until the call completes (the caller's co_await). When the caller
  // holds the whole body in memory (`in_memory`, nullptr otherwise), its bytes
  // go out with the head in one sendmsg instead, and `fd` is not read.
  boost::asio::awaitable<void> SendFile(const ResponseHead& head, int fd, uint64_t offset,
                                        uint64_t length, const std::string* in_memory = nullptr);
  // The same in steps, for a body that is still being written (a cold fetch):
  // the header announcing `length` bytes (with `first_bytes` of them, which
  // leave in the same sendmsg and must live until it returns), then ranges of
  // `fd` with sendfile.
  // Both return false once the connection failed. A body left short closes
  // the connection (Abort), so the client sees the truncation.
  boost::asio::awaitable<bool> SendHead(const ResponseHead& head, uint64_t length,
                                        std::string_view first_bytes = {});
  boost::asio::awaitable<bool> SendFileBytes(int fd, uint64_t offset, uint64_t length);
  // Body bytes from memory after SendHead (a body relayed from a peer).
  boost::asio::awaitable<bool> SendBytes(std::span<const char> bytes);
  // The client's IP address ("" when the socket is gone).
  std::string remote_address() const;
  void Abort() { failed_ = true; }
  bool responded() const { return responded_; }
  // Asks for the connection to close after this response.
  void CloseAfterResponse() { close_ = true; }
  // Whether the connection stays open after this response. Never once the
  // server is stopping: it closes each connection after its request in
  // flight, so no answer may promise more.
  bool keep_alive() const;

 private:
  void Finalize(bhttp::fields& fields, bool keep_alive);
  boost::asio::awaitable<Result<size_t>> ReadDirect(std::span<char> out);
  Connection& conn_;
  bhttp::request_parser<bhttp::buffer_body>& parser_;
  const ServerOptions& options_;
  const std::atomic<bool>& stopping_;  // the server's
  bool sent_continue_ = false;
  bool responded_ = false;
  bool close_ = false;
  bool failed_ = false;  // the socket failed: nothing more can be sent
  DirectBody direct_;  // the body past the parser's bytes
  friend class HttpServer;
};

using Handler = std::function<boost::asio::awaitable<void>(Exchange&)>;

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();
  // Binds and listens, then starts the loops. IOError when the address is busy.
  Status Start();
  // Graceful stop; returns once every loop has stopped.
  void Stop(std::chrono::milliseconds grace);
  uint16_t port() const { return bound_port_; }
  size_t active_connections() const { return active_.load(); }
  // Requests refused with 429 and connections refused with 503 so far.
  uint64_t rate_limited() const { return rate_limited_.load(std::memory_order_relaxed); }
  uint64_t connections_refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  boost::asio::awaitable<void> AcceptLoop();
  boost::asio::awaitable<void> Serve(std::shared_ptr<Connection> conn);
  boost::asio::awaitable<void> SendError(Connection& conn, bhttp::status status,
                                         const std::string& code, const std::string& message,
                                         int64_t retry_after_s = 0);
  // Answers a request over its client's rate with 429 (the connection stays
  // open when the request has no body).
  boost::asio::awaitable<void> SendRateLimited(Exchange& ex, int64_t retry_after_s);
  // Answers a connection over a cap with 503 and lingers (below).
  boost::asio::awaitable<void> RefuseConnection(Connection& conn, ClientLimits::Admit why);
  // Before closing a connection whose request was not read to its end: shuts
  // our side and reads (discarding) until the client closes, for at most
  // kLingerTime and kLingerBytes. Closing with unread bytes would send a reset
  // that can destroy the answer in flight before the client reads it.
  boost::asio::awaitable<void> Linger(Connection& conn);

  ServerOptions options_;
  Handler handler_;
  std::unique_ptr<ClientLimits> limits_;  // null when every client limit is off
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<std::thread> threads_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  uint16_t bound_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> active_{0};  // connections open
  std::atomic<size_t> busy_{0};    // connections inside a request
  std::atomic<uint64_t> rate_limited_{0};
  std::atomic<uint64_t> refused_{0};
  std::mutex conns_mu_;
  std::unordered_set<std::shared_ptr<Connection>> conns_;  // guarded by conns_mu_
  size_t next_context_ = 0;
};

// The JSON error body every 4xx/5xx carries: {"error": message, "code": code}.
std::string ErrorJson(const std::string& code, const std::string& message);

}  // namespace objstore::http
