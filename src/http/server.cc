#include "http/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

#include "http/range.h"

namespace objstore::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Connection : std::enable_shared_from_this<Connection> {
  Connection(tcp::socket s, size_t buffer_limit)
      : stream(std::move(s)), buffer(buffer_limit), deadline(stream.get_executor()) {}
  beast::tcp_stream stream;
  // Bytes read and not yet parsed. Bounded: Beast limits a request's header
  // (header_limit) and its body's data (body_limit) but not a chunk-size line,
  // its extensions or the trailer section, which it buffers whole until their
  // CRLF; past the bound a read fails (buffer_overflow: 400, closed).
  beast::flat_buffer buffer;
  // Everything below is touched only on the connection's own thread.
  bool idle = true;       // waiting for the next request (may be closed at stop)
  std::string client;     // ClientKey of the peer, only when per-client limits are on
  uint32_t requests = 0;  // requests started on this connection
  // Deadline of a request header's read or of a wait for the socket to drain
  // during sendfile (ArmDeadline), armed once per wait on one timer (no
  // allocation per wait); `deadline_wait` tells a late timer completion from
  // the current wait's.
  asio::steady_timer deadline;
  uint64_t deadline_wait = 0;
  bool timed_out = false;
  std::string head;  // the bytes of the last ResponseHead sent, reused
};

namespace {

// The Date header, formatted at most once a second per thread.
const std::string& CachedDate() {
  thread_local std::time_t last = 0;
  thread_local std::string text;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    text = FormatHttpDate(now);
  }
  return text;
}

// Unless DisarmDeadline runs first, once `timeout` passed: sets
// conn.timed_out and cancels the socket's pending operations (they end with
// operation_aborted). Unlike the expiry of Beast's tcp_stream, which closes
// the socket, this leaves it open for an answer (the 408 of a header read).
void ArmDeadline(Connection& conn, std::chrono::milliseconds timeout) {
  const uint64_t wait = ++conn.deadline_wait;
  conn.timed_out = false;
  conn.deadline.expires_after(timeout);
  conn.deadline.async_wait([c = conn.shared_from_this(), wait](boost::system::error_code ec) {
    if (ec || c->deadline_wait != wait) return;  // cancelled, or a wait that already ended
    c->timed_out = true;
    boost::system::error_code ignored;
    c->stream.socket().cancel(ignored);
  });
}

void DisarmDeadline(Connection& conn) {
  ++conn.deadline_wait;
  conn.deadline.cancel();
}

// Waits until the socket is writable; false on timeout or error.
asio::awaitable<bool> WaitWritable(Connection& conn, std::chrono::milliseconds timeout) {
  ArmDeadline(conn, timeout);
  auto [ec] = co_await conn.stream.socket().async_wait(tcp::socket::wait_write, kTuple);
  DisarmDeadline(conn);
  co_return !ec && !conn.timed_out;
}

// The version ("HTTP/2.0") of a request line that Beast refused with `ec`
// for naming a well-formed version other than HTTP/1.0 and HTTP/1.1 (an
// HTTP/2 client's preface too); empty for any other refusal. Beast reports a
// malformed version and an unsupported one alike (bad_version), and leaves the
// refused line in `buffer`: one whose part after the method and the target is
// "HTTP/" DIGIT "." DIGIT was refused only for the version's value.
std::string_view UnsupportedVersion(boost::system::error_code ec,
                                    const beast::flat_buffer& buffer) {
  if (ec != bhttp::error::bad_version) return {};
  const std::string_view bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
  const std::string_view line = bytes.substr(0, bytes.find("\r\n"));
  const size_t target = line.find(' ');
  const size_t version = target == std::string_view::npos ? target : line.find(' ', target + 1);
  if (version == std::string_view::npos) return {};
  const std::string_view v = line.substr(version + 1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const bool well_formed =
      v.size() == 8 && v.starts_with("HTTP/") && digit(v[5]) && v[6] == '.' && digit(v[7]);
  return well_formed ? v : std::string_view();
}

// The origin-form of an absolute-form request target (RFC 9112 §3.2.2):
// "http://host:port/p?q" is "/p?q", "http://host" is "/"; nullopt for a
// target in any other form.
std::optional<std::string> OriginForm(std::string_view target) {
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() < scheme.size() || !beast::iequals(target.substr(0, scheme.size()), scheme)) {
      continue;
    }
    const std::string_view rest = target.substr(scheme.size());
    const size_t path = rest.find_first_of("/?");
    if (path == std::string_view::npos) return "/";
    if (rest[path] == '?') return "/" + std::string(rest.substr(path));
    return std::string(rest.substr(path));
  }
  return std::nullopt;
}

// The bytes of `head` as Beast would have written them for a response with
// these fields and Server, Date, Connection and Content-Length set last.
void SerializeHead(const ResponseHead& head, uint64_t length, bool keep_alive, std::string& out) {
  char digits[24];
  out.clear();
  out += "HTTP/1.1 ";
  out.append(digits, std::to_chars(digits, digits + sizeof digits, head.status()).ptr);
  out += ' ';
  out += bhttp::obsolete_reason(static_cast<bhttp::status>(head.status()));
  out += "\r\n";
  out += head.fields();
  out += "Server: objstore\r\nDate: ";
  out += CachedDate();
  out += keep_alive ? "\r\nContent-Length: " : "\r\nConnection: close\r\nContent-Length: ";
  out.append(digits, std::to_chars(digits, digits + sizeof digits, length).ptr);
  out += "\r\n\r\n";
}

}  // namespace

std::string ErrorJson(const std::string& code, const std::string& message) {
  // The message may quote the request (a path, a header): bytes that are not
  // UTF-8 become U+FFFD instead of making dump() throw.
  return nlohmann::json{{"error", message}, {"code", code}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------- Exchange

bool Exchange::keep_alive() const {
  return !close_ && !failed_ && !stopping_.load(std::memory_order_relaxed) &&
         parser_.get().keep_alive() && body_done();
}

void Exchange::Finalize(bhttp::fields& fields, bool keep_alive) {
  fields.set(bhttp::field::server, "objstore");
  fields.set(bhttp::field::date, CachedDate());
  if (!keep_alive) fields.set(bhttp::field::connection, "close");
}

asio::awaitable<Result<size_t>> Exchange::ReadBody(std::span<char> out) {
  if (body_done()) co_return size_t{0};
  if (failed_) co_return Status::Unavailable("connection failed");
  if (direct_.engaged()) co_return co_await ReadDirect(out);
  if (!sent_continue_) {
    sent_continue_ = true;
    auto expect = header()[bhttp::field::expect];
    // RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored.
    if (header().version() >= 11 && beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      conn_.stream.expires_after(options_.idle_timeout);
      auto [ec, n] = co_await asio::async_write(conn_.stream, asio::buffer(kContinue), kTuple);
      if (ec) {
        failed_ = true;
        co_return Status::Unavailable("client went away: " + ec.message());
      }
    }
  }
  if (direct_.Begin(parser_, conn_.buffer)) co_return co_await ReadDirect(out);
  for (;;) {
    auto& body = parser_.get().body();
    body.data = out.data();
    body.size = out.size();
    conn_.stream.expires_after(options_.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read_some(conn_.stream, conn_.buffer, parser_, kTuple);
    if (ec == bhttp::error::need_buffer) ec = {};
    size_t got = out.size() - body.size;
    if (ec == bhttp::error::body_limit) {
      close_ = true;
      co_return Status::TooLarge(fmt::format("request body exceeds the limit of {} bytes",
                                             options_.max_body_bytes));
    }
    if (ec == beast::error::timeout || ec == asio::error::eof || ec == bhttp::error::end_of_stream ||
        ec == bhttp::error::partial_message || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      failed_ = true;
      co_return Status::Unavailable("client stopped sending the body: " + ec.message());
    }
    if (ec) {
      close_ = true;
      co_return Status::Invalid("malformed request body: " + ec.message());
    }
    if (got > 0 || parser_.is_done()) co_return got;
  }
}

asio::awaitable<Result<size_t>> Exchange::ReadDirect(std::span<char> out) {
  auto [ec, n] = co_await direct_.Read(conn_.stream, out, options_.idle_timeout);
  if (ec) {
    failed_ = true;
    co_return Status::Unavailable("client stopped sending the body: " + ec.message());
  }
  co_return n;
}

asio::awaitable<void> Exchange::Send(bhttp::response<bhttp::string_body> res) {
  responded_ = true;
  if (failed_) co_return;
  const bool ka = keep_alive();
  Finalize(res, ka);
  res.keep_alive(ka);
  const bool no_body = is_head() || res.result() == bhttp::status::not_modified ||
                       res.result() == bhttp::status::no_content;
  if (no_body) {
    if (!res.has_content_length() && res.result() != bhttp::status::not_modified &&
        res.result() != bhttp::status::no_content) {
      res.content_length(res.body().size());
    }
    res.body().clear();
  } else {
    res.prepare_payload();
  }
  conn_.stream.expires_after(options_.idle_timeout);
  auto [ec, n] = co_await bhttp::async_write(conn_.stream, res, kTuple);
  if (ec) failed_ = true;
}

asio::awaitable<bool> Exchange::SendHead(const ResponseHead& response, uint64_t length,
                                         std::string_view first_bytes) {
  responded_ = true;
  if (failed_) co_return false;
  std::string& head = conn_.head;
  SerializeHead(response, length, keep_alive(), head);
  if (is_head()) first_bytes = {};
  const bool more_follows = !is_head() && length > first_bytes.size();

  const int sfd = conn_.stream.socket().native_handle();  // non-blocking since Serve
  // One sendmsg of the header and `first_bytes` (not copied); corked with
  // MSG_MORE when more of the body follows, so both leave in one segment.
  const size_t total = head.size() + first_bytes.size();
  size_t sent = 0;
  while (sent < total) {
    iovec iov[2];
    int parts = 0;
    if (sent < head.size()) iov[parts++] = {head.data() + sent, head.size() - sent};
    const size_t body_sent = sent > head.size() ? sent - head.size() : 0;
    if (body_sent < first_bytes.size()) {
      iov[parts++] = {const_cast<char*>(first_bytes.data()) + body_sent,
                      first_bytes.size() - body_sent};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(parts);
    ssize_t n = ::sendmsg(sfd, &msg, MSG_NOSIGNAL | (more_follows ? MSG_MORE : 0));
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const bool writable = co_await WaitWritable(conn_, options_.idle_timeout);
      if (!writable) {
        failed_ = true;
        co_return false;
      }
    } else {
      failed_ = true;
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<bool> Exchange::SendFileBytes(int fd, uint64_t offset, uint64_t length) {
  if (failed_) co_return false;
  const int sfd = conn_.stream.socket().native_handle();
  off_t off = static_cast<off_t>(offset);
  uint64_t left = length;
  while (left > 0) {
    ssize_t n = ::sendfile(sfd, fd, &off, std::min<uint64_t>(left, 1u << 30));
    if (n > 0) {
      left -= static_cast<uint64_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const bool writable = co_await WaitWritable(conn_, options_.idle_timeout);
      if (!writable) {
        failed_ = true;
        co_return false;
      }
    } else {
      // n == 0: the file is shorter than promised. The client sees a short body
      // and a closed connection, never a wrong one.
      spdlog::error("sendfile stopped with {} bytes left: {}", left,
                    n == 0 ? "file truncated" : std::strerror(errno));
      failed_ = true;
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<bool> Exchange::SendBytes(std::span<const char> bytes) {
  if (failed_) co_return false;
  conn_.stream.expires_after(options_.idle_timeout);
  auto [ec, n] = co_await asio::async_write(conn_.stream, asio::buffer(bytes.data(), bytes.size()),
                                            kTuple);
  if (ec) failed_ = true;
  co_return !ec;
}

std::string Exchange::remote_address() const {
  boost::system::error_code ec;
  auto ep = conn_.stream.socket().remote_endpoint(ec);
  return ec ? "" : ep.address().to_string();
}

asio::awaitable<void> Exchange::SendFile(const ResponseHead& head, int fd, uint64_t offset,
                                         uint64_t length, const std::string* in_memory) {
  if (in_memory != nullptr && offset + length <= in_memory->size()) {
    co_await SendHead(head, length, std::string_view(*in_memory).substr(offset, length));
    co_return;
  }
  // co_await stands alone in its statement (docs/ARCHITECTURE.md, g++ 12).
  const bool head_sent = co_await SendHead(head, length);
  if (head_sent && !is_head()) co_await SendFileBytes(fd, offset, length);
}

// ---------------------------------------------------------------- HttpServer

asio::awaitable<void> HttpServer::SendRateLimited(Exchange& ex, int64_t retry_after_s) {
  rate_limited_.fetch_add(1, std::memory_order_relaxed);
  bhttp::response<bhttp::string_body> res{bhttp::status::too_many_requests, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::retry_after, std::to_string(retry_after_s));
  res.body() = ErrorJson("rate_limited",
                         fmt::format("more than {} requests per second from {}; retry in {} s",
                                     limits_->options().rate, ex.conn_.client, retry_after_s));
  co_await ex.Send(std::move(res));
}

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.threads == 0) options_.threads = 1;
  if (options_.limits.any()) limits_ = std::make_unique<ClientLimits>(options_.limits);
  for (size_t i = 0; i < options_.threads; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
}

HttpServer::~HttpServer() {
  if (!threads_.empty()) Stop(std::chrono::milliseconds(0));
}

Status HttpServer::Start() {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return Status::Invalid("bad listen address " + options_.host + ": " + ec.message());
  tcp::endpoint endpoint(address, options_.port);
  acceptor_ = std::make_unique<tcp::acceptor>(*contexts_[0]);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError(fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port,
                                       ec.message()));
  }
  bound_port_ = acceptor_->local_endpoint().port();
  asio::co_spawn(*contexts_[0], AcceptLoop(), asio::detached);
  for (auto& ctx : contexts_) {
    threads_.emplace_back([ctx = ctx.get()] {
      auto guard = asio::make_work_guard(*ctx);
      ctx->run();
    });
  }
  return Status::Ok();
}

asio::awaitable<void> HttpServer::AcceptLoop() {
  while (!stopping_) {
    auto& ctx = *contexts_[next_context_++ % contexts_.size()];
    auto [ec, socket] = co_await acceptor_->async_accept(ctx, kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      // EMFILE and friends: back off instead of spinning.
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    // Room for a whole header and one read of Beast's (64 KiB) past it.
    auto conn = std::make_shared<Connection>(std::move(socket),
                                             size_t{options_.max_header_bytes} + 64 * 1024);
    asio::co_spawn(ctx, Serve(std::move(conn)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::SendError(Connection& conn, bhttp::status status,
                                            const std::string& code, const std::string& message,
                                            int64_t retry_after_s) {
  bhttp::response<bhttp::string_body> res{status, 11};
  if (retry_after_s > 0) res.set(bhttp::field::retry_after, std::to_string(retry_after_s));
  res.set(bhttp::field::server, "objstore");
  res.set(bhttp::field::date, CachedDate());
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::connection, "close");
  res.body() = ErrorJson(code, message);
  res.prepare_payload();
  conn.stream.expires_after(std::chrono::seconds(5));
  co_await bhttp::async_write(conn.stream, res, kTuple);
}

asio::awaitable<void> HttpServer::RefuseConnection(Connection& conn, ClientLimits::Admit why) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  const bool total = why == ClientLimits::Admit::kTooManyConnections;
  const std::string message =
      total ? fmt::format("the node has {} connections open, its limit",
                          limits_->options().max_connections)
            : fmt::format("{} has {} connections open, the limit per client", conn.client,
                          limits_->options().max_connections_per_client);
  co_await SendError(conn, bhttp::status::service_unavailable, "too_many_connections", message, 1);
  co_await Linger(conn);
}

asio::awaitable<void> HttpServer::Linger(Connection& conn) {
  // A client sending a large body at loopback speed finishes well within the
  // bounds; a slow or hostile one holds the connection for at most a second.
  constexpr auto kLingerTime = std::chrono::seconds(1);
  constexpr size_t kLingerBytes = 64 << 20;
  boost::system::error_code ignored;
  conn.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  conn.stream.expires_after(kLingerTime);
  std::array<char, 16384> sink;
  for (size_t drained = 0; drained < kLingerBytes;) {
    auto [ec, n] = co_await conn.stream.async_read_some(asio::buffer(sink), kTuple);
    if (ec) break;
    drained += n;
  }
}

asio::awaitable<void> HttpServer::Serve(std::shared_ptr<Connection> conn) {
  ++active_;
  {
    std::lock_guard lock(conns_mu_);
    conns_.insert(conn);
  }
  auto& stream = conn->stream;
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  // Once per connection, not per answer (an ioctl each time): SendHead and
  // SendFileBytes write to the descriptor directly and need EAGAIN.
  stream.socket().native_non_blocking(true, ignored);
  bool admitted = true;
  if (limits_) {
    if (limits_->options().per_client()) {
      auto peer = stream.socket().remote_endpoint(ignored);
      conn->client = ignored ? std::string("?") : ClientKey(peer.address());
    }
    const ClientLimits::Admit admit = limits_->Connect(conn->client);
    admitted = admit == ClientLimits::Admit::kOk;
    if (!admitted) co_await RefuseConnection(*conn, admit);
  }

  while (admitted && !stopping_) {
    conn->idle = true;
    if (conn->buffer.size() == 0) {
      // Between requests: wait for the first byte under the idle timeout.
      stream.expires_after(options_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(conn->buffer.prepare(4096), kTuple);
      if (ec) break;
      conn->buffer.commit(n);
    }
    conn->idle = false;
    ++busy_;
    bhttp::request_parser<bhttp::buffer_body> parser;
    parser.header_limit(options_.max_header_bytes);
    parser.body_limit(options_.max_body_bytes);
    // The header's deadline cancels the read and leaves the socket open for
    // the 408 (Beast's expiry would close it first).
    stream.expires_never();
    ArmDeadline(*conn, options_.header_timeout);
    auto [ec, n] = co_await bhttp::async_read_header(stream, conn->buffer, parser, kTuple);
    DisarmDeadline(*conn);
    if (ec == asio::error::operation_aborted && conn->timed_out) ec = beast::error::timeout;
    bool keep = false;
    // Whether the client may still be sending this request when we close
    // (an error answered before its end, or a body the handler did not read).
    // Not after a header's deadline: lingering would let a slow client hold
    // its connection (and its slot) past the deadline.
    bool unread = !ec || (ec != beast::error::timeout && ec != bhttp::error::end_of_stream &&
                          ec != asio::error::eof && ec != asio::error::connection_reset &&
                          ec != asio::error::operation_aborted);
    if (ec == bhttp::error::header_limit) {
      co_await SendError(*conn, bhttp::status::request_header_fields_too_large,
                         "headers_too_large",
                         fmt::format("request header exceeds {} bytes", options_.max_header_bytes));
    } else if (ec == bhttp::error::body_limit) {
      co_await SendError(*conn, bhttp::status::payload_too_large, "body_too_large",
                         fmt::format("request body exceeds the limit of {} bytes",
                                     options_.max_body_bytes));
    } else if (ec == beast::error::timeout) {
      co_await SendError(*conn, bhttp::status::request_timeout, "request_timeout",
                         "request header not received in time");
    } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
               ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      // The client closed or the server is stopping: nothing to answer.
    } else if (const std::string_view version = UnsupportedVersion(ec, conn->buffer);
               !version.empty()) {
      co_await SendError(*conn, bhttp::status::http_version_not_supported,
                         "http_version_not_supported",
                         fmt::format("{} is not supported: use HTTP/1.1", version));
    } else if (ec) {
      co_await SendError(*conn, bhttp::status::bad_request, "bad_request",
                         "malformed HTTP request: " + ec.message());
    } else if (static_cast<size_t>(std::distance(parser.get().begin(), parser.get().end())) >
               options_.max_header_count) {
      co_await SendError(*conn, bhttp::status::request_header_fields_too_large,
                         "headers_too_large",
                         fmt::format("more than {} header fields", options_.max_header_count));
    } else if (parser.get().count(bhttp::field::transfer_encoding) > 0 &&
               !beast::iequals(parser.get()[bhttp::field::transfer_encoding], "chunked")) {
      // RFC 9112 §6.3: a request whose final coding is not chunked cannot be
      // framed; any coding but chunked is not implemented here.
      co_await SendError(*conn, bhttp::status::not_implemented, "bad_request",
                         "unsupported Transfer-Encoding: only chunked alone is accepted");
    } else if (const size_t hosts = parser.get().count(bhttp::field::host);
               hosts > 1 || (hosts == 0 && parser.get().version() >= 11)) {
      // RFC 9112 §3.2: two Host fields leave the target's authority ambiguous,
      // which a proxy in front of us may have read otherwise.
      co_await SendError(*conn, bhttp::status::bad_request, "bad_request",
                         hosts == 0 ? "an HTTP/1.1 request needs a Host field"
                                    : "a request may carry one Host field only");
    } else {
      // RFC 9112 §3.2.2: a server accepts the absolute-form that clients send
      // to proxies, and routes it by its path and query.
      if (auto origin = OriginForm(parser.get().target())) parser.get().target(*origin);
      Exchange ex(*conn, parser, options_, stopping_);
      if (options_.max_requests_per_connection > 0 &&
          ++conn->requests >= options_.max_requests_per_connection) {
        ex.CloseAfterResponse();
      }
      int64_t retry_after_s = 0;
      const bool limited = limits_ && limits_->options().rate > 0 &&
                           !limits_->AllowRequest(conn->client, &retry_after_s);
      bool crashed = false;
      try {
        if (limited) {
          co_await SendRateLimited(ex, retry_after_s);
        } else {
          co_await handler_(ex);
        }
      } catch (const std::exception& e) {
        spdlog::error("handler failed on {}: {}", std::string_view(parser.get().target()),
                      e.what());
        crashed = true;
      }
      if (crashed) {
        ex.CloseAfterResponse();
        if (!ex.responded()) {
          bhttp::response<bhttp::string_body> res{bhttp::status::internal_server_error, 11};
          res.set(bhttp::field::content_type, "application/json");
          res.body() = ErrorJson("internal", "internal error");
          co_await ex.Send(std::move(res));
        }
      }
      keep = ex.responded() && ex.keep_alive();
      unread = !ex.body_done() && !ex.failed_;
    }
    --busy_;
    if (!keep) {
      if (unread && !stopping_) co_await Linger(*conn);
      break;
    }
  }
  // The slot is freed before the client can see the close and reconnect.
  if (limits_ && admitted) limits_->Disconnect(conn->client);
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
  {
    std::lock_guard lock(conns_mu_);
    conns_.erase(conn);
  }
  --active_;
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (threads_.empty()) return;
  stopping_ = true;
  asio::post(*contexts_[0], [this] {
    boost::system::error_code ec;
    acceptor_->close(ec);
  });
  auto close_idle = [this] {
    std::lock_guard lock(conns_mu_);
    for (const auto& conn : conns_) {
      asio::post(conn->stream.get_executor(), [conn] {
        if (!conn->idle) return;
        boost::system::error_code ec;
        conn->stream.socket().cancel(ec);
      });
    }
  };
  close_idle();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (active_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    close_idle();  // connections that finished a request and went idle since
  }
  if (active_.load() > 0) spdlog::warn("{} connections still open at stop", active_.load());
  for (auto& ctx : contexts_) ctx->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard lock(conns_mu_);
  conns_.clear();
}

}  // namespace objstore::http
