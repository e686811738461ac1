// The client library (include/objstore/client.h) on Boost.Beast.
//
// Design:
// - Synchronous calls over asynchronous operations: every socket operation is
//   started on a private io_context with a deadline (beast::tcp_stream's
//   expires_after) and the context is run until it completes. That is how a
//   blocking call gets a connect timeout and a per-read/write timeout; Asio's
//   plain synchronous calls have none.
// - One keep-alive connection. Before a request reuses it, a zero-timeout poll
//   checks whether the node closed it while it sat idle (idle timeout,
//   restart): then a fresh connection is opened first. A request that still
//   fails on a reused connection before any answer byte arrived is sent once
//   more on a fresh one when nothing of its body was consumed (the node may
//   have closed the connection in the same instant).
// - A PUT with a body sends `Expect: 100-continue` and waits for the node's
//   interim answer before the first body byte, so a refused request (bad id,
//   bad level, lowered level) comes back with the node's own error, not as a
//   broken pipe halfway through a large upload.
// - Bodies move through one 256 KiB buffer (buffer_body) in both directions.
#include "objstore/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

namespace objstore::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr size_t kChunk = 256 * 1024;
// Answers other than GET bodies are metadata, ids or error JSON: small.
constexpr uint64_t kSmallBodyLimit = 4 << 20;

Error MakeError(Error::Kind kind, std::string message) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

Error ErrnoError(const std::string& what) {
  return MakeError(Error::Kind::kLocalIo, what + ": " + std::strerror(errno));
}

Error FromNetwork(const beast::error_code& ec, const std::string& what) {
  Error::Kind kind = Error::Kind::kConnection;
  if (ec == beast::error::timeout) {
    kind = Error::Kind::kTimeout;
  } else if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    kind = Error::Kind::kProtocol;
  }
  return MakeError(kind, what + ": " + ec.message());
}

std::optional<uint64_t> ParseUint(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// The node's {"error": ..., "code": ...} answer; any other body is quoted.
Error HttpError(int status, std::string_view reason, const std::string& body) {
  Error e;
  e.kind = Error::Kind::kHttp;
  e.http_status = status;
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    e.message = j["error"].get<std::string>();
    if (j.contains("code") && j["code"].is_string()) e.code = j["code"].get<std::string>();
  } else {
    e.message = body.empty() ? std::string(reason) : body.substr(0, 300);
  }
  return e;
}

Result<ObjectInfo> ParseObjectInfo(std::string text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("id")) {
    return MakeError(Error::Kind::kProtocol,
                     "expected object metadata JSON, got: " + text.substr(0, 200));
  }
  ObjectInfo info;
  try {
    info.id = j.value("id", "");
    info.name = j.value("name", "");
    info.size = j.value("size", uint64_t{0});
    info.etag = j.value("etag", "");
    info.content_type = j.value("content_type", "");
    info.timestamp_ns = j.value("timestamp", int64_t{0});
    info.last_modified = j.value("last_modified", "");
    info.version = j.value("version", "");
    info.consistency = j.value("consistency", 0);
    info.deleted = j.value("deleted", false);
    info.local_body = j.value("local_body", false);
    info.cold = j.value("cold", "");
    if (j.contains("user_meta") && j["user_meta"].is_object()) {
      for (const auto& [k, v] : j["user_meta"].items()) {
        info.user_meta[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
  } catch (const json::exception& ex) {
    return MakeError(Error::Kind::kProtocol, std::string("bad metadata JSON: ") + ex.what());
  }
  info.json = std::move(text);
  return info;
}

struct Endpoint {
  std::string host;
  std::string port;
};

Result<Endpoint> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with("https://")) {
    return MakeError(
        Error::Kind::kInvalid,
        "https is not supported: objstore nodes speak plain HTTP (" + std::string(url) + ")");
  }
  if (url.starts_with(kScheme)) url.remove_prefix(kScheme.size());
  while (url.ends_with('/')) url.remove_suffix(1);
  if (url.find('/') != std::string_view::npos || url.empty()) {
    return MakeError(Error::Kind::kInvalid,
                     "bad node URL '" + std::string(url) + "': expected http://host[:port]");
  }
  Endpoint ep{std::string(url), "10999"};
  if (url.front() == '[') {  // [v6]:port
    auto close = url.find(']');
    if (close == std::string_view::npos) {
      return MakeError(Error::Kind::kInvalid, "bad node URL: unclosed [ in " + std::string(url));
    }
    ep.host = std::string(url.substr(1, close - 1));
    if (close + 1 < url.size()) {
      if (url[close + 1] != ':') return MakeError(Error::Kind::kInvalid, "bad node URL " + ep.host);
      ep.port = std::string(url.substr(close + 2));
    }
  } else if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    ep.host = std::string(url.substr(0, colon));
    ep.port = std::string(url.substr(colon + 1));
  }
  auto port = ParseUint(ep.port);
  if (ep.host.empty() || !port || *port == 0 || *port > 65535) {
    return MakeError(Error::Kind::kInvalid,
                     "bad node URL '" + std::string(url) + "': expected http://host[:port]");
  }
  return ep;
}

std::string UserMetaHeader(const UserMeta& meta) {
  json j = json::object();
  for (const auto& [k, v] : meta) j[k] = v;
  return j.dump(-1, ' ', /*ensure_ascii=*/true);
}

Result<void> WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------------ Error, ByteRange

std::string Error::ToString() const {
  switch (kind) {
    case Kind::kHttp:
      return "HTTP " + std::to_string(http_status) + (code.empty() ? "" : " " + code) + ": " +
             message;
    case Kind::kConnection:
      return "connection error: " + message;
    case Kind::kTimeout:
      return "timeout: " + message;
    case Kind::kProtocol:
      return "protocol error: " + message;
    case Kind::kLocalIo:
      return "local I/O error: " + message;
    case Kind::kInvalid:
      return "invalid argument: " + message;
  }
  return message;
}

Result<ByteRange> ByteRange::Parse(std::string_view text) {
  std::string_view spec = text;
  if (spec.starts_with("bytes=")) spec.remove_prefix(6);
  auto bad = [&] {
    return MakeError(Error::Kind::kInvalid,
                     "bad range '" + std::string(text) + "': expected A-B, A- or -N (bytes)");
  };
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return bad();
  std::string_view a = spec.substr(0, dash);
  std::string_view b = spec.substr(dash + 1);
  ByteRange r;
  if (!a.empty()) {
    r.first = ParseUint(a);
    if (!r.first) return bad();
  }
  if (!b.empty()) {
    r.last = ParseUint(b);
    if (!r.last) return bad();
  }
  if (!r.first && (!r.last || *r.last == 0)) return bad();  // "-" or "-0"
  if (r.first && r.last && *r.last < *r.first) return bad();
  return r;
}

std::string ByteRange::ToHeader() const {
  std::string out = "bytes=";
  if (first) out += std::to_string(*first);
  out += '-';
  if (last) out += std::to_string(*last);
  return out;
}

// ------------------------------------------------------------------ Connection

class Client::Connection {
 public:
  explicit Connection(ClientOptions options) : options_(std::move(options)), stream_(ioc_) {
    auto ep = ParseUrl(options_.url);
    if (ep.ok()) {
      endpoint_ = *ep;
    } else {
      config_error_ = ep.error();
    }
  }

  using StringResponse = http::response<http::string_body>;

  const ClientOptions& options() const { return options_; }

  // A request without a body; the whole (small) answer, whatever its status.
  Result<StringResponse> Exchange(http::verb verb, const std::string& target,
                                  const http::fields& extra = {},
                                  std::optional<std::chrono::milliseconds> answer_timeout = {}) {
    http::request<http::empty_body> req{verb, target, 11};
    Prepare(req, extra);
    req.prepare_payload();
    std::optional<http::response_parser<http::string_body>> parser;
    auto sent = SendWithOneRetry(std::string(http::to_string(verb)) + " " + target, [&] {
      parser.emplace();
      parser->body_limit(kSmallBodyLimit);
      auto ec = Run(options_.io_timeout,
                    [&](auto handler) { http::async_write(stream_, req, std::move(handler)); });
      if (!ec)
        ec = Run(answer_timeout.value_or(options_.io_timeout), [&](auto handler) {
          http::async_read(stream_, buffer_, *parser, std::move(handler));
        });
      return std::pair{ec, parser->got_some()};
    });
    if (!sent.ok()) return sent.error();
    return Finish(parser->release());
  }

  Result<ObjectInfo> Upload(const std::string& id, const SourceFn& source,
                            std::optional<uint64_t> size, const PutOptions& options) {
    http::request<http::buffer_body> req{http::verb::post, "/api/v1/put", 11};
    http::fields extra;
    extra.set("X-Meta-ID", id);
    extra.set("X-Meta-ConsistencyLevel", std::to_string(options.level));
    if (!options.name.empty()) extra.set("X-Meta-Name", options.name);
    if (!options.user_meta.empty()) extra.set("X-Meta-UserMeta", UserMetaHeader(options.user_meta));
    Prepare(req, extra);
    const bool has_body = !size || *size > 0;
    if (size) {
      req.content_length(*size);
    } else {
      req.chunked(true);
    }
    if (has_body) req.set(http::field::expect, "100-continue");
    req.body().data = nullptr;
    req.body().more = has_body;

    // Header, then the node's interim answer (100 Continue or a final refusal).
    std::optional<http::request_serializer<http::buffer_body>> serializer;
    std::optional<http::response_parser<http::string_body>> answer;
    auto header_sent = SendWithOneRetry("PUT " + id, [&] {
      serializer.emplace(req);
      answer.emplace();
      answer->body_limit(kSmallBodyLimit);
      auto ec = Run(options_.io_timeout, [&](auto handler) {
        http::async_write_header(stream_, *serializer, std::move(handler));
      });
      if (!ec && has_body)
        ec = Run(options_.io_timeout, [&](auto handler) {
          http::async_read_header(stream_, buffer_, *answer, std::move(handler));
        });
      return std::pair{ec, answer->got_some()};
    });
    if (!header_sent.ok()) return header_sent.error();
    if (has_body && answer->get().result() != http::status::continue_) {
      // Refused before the body: read the answer; the unsent body ends the connection.
      auto ec = Run(options_.io_timeout, [&](auto handler) {
        http::async_read(stream_, buffer_, *answer, std::move(handler));
      });
      Close();
      if (ec) return FromNetwork(ec, "PUT " + id);
      return PutAnswer(answer->release());
    }

    if (has_body) {
      auto sent = SendBody(req, *serializer, source, size, options.progress);
      if (!sent.ok()) {
        // The node may have answered and closed (body too large, disk full):
        // its answer says more than the broken pipe.
        if (sent.error().kind == Error::Kind::kConnection) {
          auto late = ReadSmallAnswer(options_.io_timeout);
          if (late.ok()) return PutAnswer(std::move(*late));
        }
        Close();
        return sent.error();
      }
    }
    // Level >= 1: the node uploads to the cold store before it answers.
    auto final_answer = ReadSmallAnswer(options_.commit_timeout);
    if (!final_answer.ok()) {
      Close();
      return final_answer.error();
    }
    return PutAnswer(std::move(*final_answer));
  }

  Result<GetInfo> Download(const std::string& id, const SinkFn& sink, const GetOptions& options) {
    http::fields extra;
    if (options.range) extra.set(http::field::range, options.range->ToHeader());
    if (options.fetch) extra.set("X-Meta-Fetch", "1");
    const std::string target = "/api/v1/get/" + id;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    Prepare(req, extra);
    std::optional<http::response_parser<http::buffer_body>> fresh;
    auto sent = SendWithOneRetry("GET " + target, [&] {
      fresh.emplace();
      fresh->body_limit(boost::none);
      auto ec = Run(options_.io_timeout,
                    [&](auto handler) { http::async_write(stream_, req, std::move(handler)); });
      if (!ec)
        ec = Run(options_.io_timeout, [&](auto handler) {
          http::async_read_header(stream_, buffer_, *fresh, std::move(handler));
        });
      return std::pair{ec, fresh->got_some()};
    });
    if (!sent.ok()) return sent.error();
    auto& parser = *fresh;

    const auto& head = parser.get();
    const int status = static_cast<int>(head.result_int());
    if (status != 200 && status != 206) {
      std::string body;
      auto read = ReadBody(parser,
                           [&](std::string_view bytes) {
                             if (body.size() < kSmallBodyLimit) body.append(bytes);
                             return true;
                           },
                           {});
      if (!read.ok() || !parser.keep_alive()) Close();
      if (!read.ok()) return read.error();
      return HttpError(status, head.reason(), body);
    }

    GetInfo info;
    info.http_status = status;
    info.content_length = parser.content_length().value_or(0);
    info.content_range = std::string(head[http::field::content_range]);
    info.content_type = std::string(head[http::field::content_type]);
    info.etag = std::string(head[http::field::etag]);
    info.last_modified = std::string(head[http::field::last_modified]);
    info.id = std::string(head["X-Meta-ID"]);
    info.name = std::string(head["X-Meta-Name"]);
    info.consistency = static_cast<int>(ParseUint(head["X-Meta-ConsistencyLevel"]).value_or(0));
    info.user_meta_json = std::string(head["X-Meta-UserMeta"]);
    info.fetched = head["X-Meta-Fetched"] == "true";
    info.symlink = head["X-Meta-Symlink"] == "true";

    std::optional<uint64_t> total;
    if (parser.content_length()) total = *parser.content_length();
    auto read = ReadBody(parser, sink, [&](uint64_t done) {
      if (options.progress) options.progress(done, total);
    });
    if (!read.ok() || !parser.keep_alive()) Close();
    if (!read.ok()) return read.error();
    return info;
  }

 private:
  template <class Request>
  void Prepare(Request& req, const http::fields& extra) {
    req.set(http::field::host, endpoint_.host + ":" + endpoint_.port);
    req.set(http::field::user_agent, "objstore-client");
    if (!options_.token.empty()) req.set(http::field::authorization, "Bearer " + options_.token);
    for (const auto& f : extra) req.set(f.name_string(), f.value());
  }

  // Starts one asynchronous operation with a deadline and runs it to completion.
  template <class Start>
  beast::error_code Run(std::chrono::milliseconds timeout, Start&& start) {
    beast::error_code result;
    stream_.expires_after(timeout);
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  // Runs `send` (write a request, read its answer's header) on a usable
  // connection; `send` returns the error and whether any answer byte arrived.
  // A failure on a reused connection before any answer byte means the node may
  // have closed it in the same instant: `send` runs once more on a fresh one.
  // Callers only use it for what can be sent twice (nothing of a body consumed).
  template <class Send>
  Result<void> SendWithOneRetry(const std::string& what, const Send& send) {
    for (int attempt = 0;; ++attempt) {
      auto connected = Connect();
      if (!connected.ok()) return connected.error();
      auto [ec, answered] = send();
      if (!ec) return {};
      Close();
      if (!*connected || attempt > 0 || answered) return FromNetwork(ec, what);
    }
  }

  // Makes sure a usable connection is open; true when an existing one is reused.
  Result<bool> Connect() {
    if (config_error_) return *config_error_;
    if (stream_.socket().is_open()) {
      if (!ClosedByPeer()) return true;
      Close();
    }
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(endpoint_.host, endpoint_.port, ec);
    if (ec) return FromNetwork(ec, "resolve " + endpoint_.host);
    ec = Run(options_.connect_timeout,
             [&](auto handler) { stream_.async_connect(results, std::move(handler)); });
    if (ec) {
      Close();
      return FromNetwork(ec, "connect to " + options_.url);
    }
    stream_.socket().set_option(tcp::no_delay(true), ec);
    return false;
  }

  // An idle connection has nothing to read; anything readable (EOF, a reset,
  // stray bytes) means it cannot carry the next request.
  bool ClosedByPeer() {
    pollfd p{stream_.socket().native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0 || buffer_.size() != 0;
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    buffer_.clear();
  }

  StringResponse Finish(StringResponse res) {
    if (!res.keep_alive()) Close();
    return res;
  }

  Result<StringResponse> ReadSmallAnswer(std::chrono::milliseconds timeout) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(kSmallBodyLimit);
    auto ec = Run(timeout, [&](auto handler) {
      http::async_read(stream_, buffer_, parser, std::move(handler));
    });
    if (ec) return FromNetwork(ec, "reading the answer");
    return Finish(parser.release());
  }

  Result<ObjectInfo> PutAnswer(StringResponse res) {
    const int status = static_cast<int>(res.result_int());
    if (status != 200) return HttpError(status, res.reason(), res.body());
    return ParseObjectInfo(std::move(res.body()));
  }

  Result<void> SendBody(http::request<http::buffer_body>& req,
                        http::request_serializer<http::buffer_body>& serializer,
                        const SourceFn& source, std::optional<uint64_t> size,
                        const ProgressFn& progress) {
    std::vector<char> buf(kChunk);
    uint64_t sent = 0;
    for (;;) {
      auto n = source(buf.data(), buf.size());
      if (!n.ok()) return n.error();
      if (size && (sent + *n > *size || (*n == 0 && sent < *size))) {
        return MakeError(Error::Kind::kLocalIo, "the source yielded " + std::to_string(sent + *n) +
                                                    " bytes where " + std::to_string(*size) +
                                                    " were announced");
      }
      sent += *n;
      req.body().data = *n ? buf.data() : nullptr;
      req.body().size = *n;
      req.body().more = *n != 0;
      auto ec = Run(options_.io_timeout, [&](auto handler) {
        http::async_write(stream_, serializer, std::move(handler));
      });
      if (ec && ec != http::error::need_buffer) return FromNetwork(ec, "sending the body");
      if (*n == 0) return {};
      if (progress) progress(sent, size);
    }
  }

  template <class Parser, class OnBytes>
  Result<void> ReadBody(Parser& parser, const OnBytes& on_bytes,
                        const std::function<void(uint64_t)>& progress) {
    std::vector<char> buf(kChunk);
    uint64_t received = 0;
    while (!parser.is_done()) {
      parser.get().body().data = buf.data();
      parser.get().body().size = buf.size();
      auto ec = Run(options_.io_timeout, [&](auto handler) {
        http::async_read(stream_, buffer_, parser, std::move(handler));
      });
      if (ec && ec != http::error::need_buffer) return FromNetwork(ec, "reading the body");
      const size_t n = buf.size() - parser.get().body().size;
      if (n == 0) continue;
      received += n;
      if (!on_bytes(std::string_view(buf.data(), n))) {
        return MakeError(Error::Kind::kLocalIo, "the destination refused the body");
      }
      if (progress) progress(received);
    }
    return {};
  }

  ClientOptions options_;
  Endpoint endpoint_;
  std::optional<Error> config_error_;
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

// ------------------------------------------------------------------ Client

Client::Client(ClientOptions options) : conn_(std::make_unique<Connection>(std::move(options))) {}
Client::~Client() = default;

namespace {

Result<std::string> TextAnswer(Result<http::response<http::string_body>> res) {
  if (!res.ok()) return res.error();
  const int status = static_cast<int>(res->result_int());
  if (status != 200) return HttpError(status, res->reason(), res->body());
  return std::move(res->body());
}

Result<ObjectInfo> MetaAnswer(Result<http::response<http::string_body>> res) {
  auto text = TextAnswer(std::move(res));
  if (!text.ok()) return text.error();
  return ParseObjectInfo(std::move(*text));
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// An id goes into a request target or a header, where a space, CR, LF, '/'
// or '%' would change the request: such an id is refused before anything is
// sent. The node checks the rest (that it is a ULID).
std::optional<Error> BadId(const std::string& id) {
  const bool ok =
      !id.empty() && id.size() <= 64 &&
      std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c); });
  if (ok) return std::nullopt;
  return MakeError(Error::Kind::kInvalid, "bad id: expected a ULID (26 letters and digits)");
}

}  // namespace

Result<std::string> Client::NewId() {
  auto text = TextAnswer(conn_->Exchange(http::verb::get, "/api/v1/id"));
  if (!text.ok()) return text;
  return Trimmed(std::move(*text));
}

Result<std::string> Client::Ping() {
  auto text = TextAnswer(conn_->Exchange(http::verb::get, "/api/v1/ping"));
  if (!text.ok()) return text;
  return Trimmed(std::move(*text));
}

Result<std::string> Client::Version() {
  return TextAnswer(conn_->Exchange(http::verb::get, "/api/v1/version"));
}

Result<std::string> Client::StatsJson() {
  return TextAnswer(conn_->Exchange(http::verb::get, "/api/v1/stats"));
}

Result<ObjectInfo> Client::PutFile(const std::string& id, const std::string& path,
                                   const PutOptions& options) {
  if (auto bad = BadId(id)) return *bad;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + path);
  struct stat st {};
  std::optional<Error> unusable;
  if (::fstat(fd, &st) != 0) {
    unusable = ErrnoError("stat " + path);
  } else if (S_ISDIR(st.st_mode)) {
    unusable = MakeError(Error::Kind::kLocalIo, path + " is a directory");
  }
  if (unusable) {
    ::close(fd);
    return *unusable;
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  SourceFn source = [fd, &path](char* buf, size_t capacity) -> Result<size_t> {
    for (;;) {
      ssize_t n = ::read(fd, buf, capacity);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return ErrnoError("read " + path);
    }
  };
  // A pipe or a device has no size to announce: its bytes go chunked.
  std::optional<uint64_t> size;
  if (S_ISREG(st.st_mode)) size = static_cast<uint64_t>(st.st_size);
  auto result = conn_->Upload(id, source, size, options);
  ::close(fd);
  return result;
}

Result<ObjectInfo> Client::Put(const std::string& id, const SourceFn& source,
                               std::optional<uint64_t> size, const PutOptions& options) {
  if (auto bad = BadId(id)) return *bad;
  return conn_->Upload(id, source, size, options);
}

Result<ObjectInfo> Client::Put(const std::string& id, std::string_view bytes,
                               const PutOptions& options) {
  if (auto bad = BadId(id)) return *bad;
  SourceFn source = [&bytes](char* buf, size_t capacity) -> Result<size_t> {
    size_t n = std::min(capacity, bytes.size());
    std::memcpy(buf, bytes.data(), n);
    bytes.remove_prefix(n);
    return n;
  };
  return conn_->Upload(id, source, bytes.size(), options);
}

Result<GetInfo> Client::Get(const std::string& id, const SinkFn& sink, const GetOptions& options) {
  if (auto bad = BadId(id)) return *bad;
  return conn_->Download(id, sink, options);
}

Result<GetInfo> Client::GetToFile(const std::string& id, const std::string& path,
                                  const GetOptions& options) {
  if (auto bad = BadId(id)) return *bad;
  namespace fs = std::filesystem;
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  const bool in_place = exists && !S_ISREG(st.st_mode);  // FIFO, device, /dev/stdout
  std::string temp;
  int fd = -1;
  if (in_place) {
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  } else {
    fs::path target(path);
    temp =
        (target.parent_path() / ("." + target.filename().string() + ".objstore-XXXXXX")).string();
    fd = ::mkstemp(temp.data());
    if (fd >= 0) {
      mode_t mask = ::umask(0);
      ::umask(mask);
      ::fchmod(fd, exists ? (st.st_mode & 07777) : (0666 & ~mask));
    }
  }
  if (fd < 0) return ErrnoError("open " + (in_place ? path : temp));

  std::optional<Error> write_error;
  SinkFn sink = [&](std::string_view bytes) {
    auto written = WriteAll(fd, bytes);
    if (!written.ok()) write_error = written.error();
    return written.ok();
  };
  auto result = conn_->Download(id, sink, options);
  if (result.ok() && !in_place && ::fsync(fd) != 0) write_error = ErrnoError("fsync " + temp);
  if (::close(fd) != 0 && !write_error) write_error = ErrnoError("close " + path);
  if (result.ok() && write_error) result = *write_error;
  if (!result.ok() && write_error && result.error().kind == Error::Kind::kLocalIo) {
    result = *write_error;  // the errno says more than "the destination refused"
  }
  if (!in_place) {
    if (result.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
      result = ErrnoError("rename to " + path);
    }
    if (!result.ok()) ::unlink(temp.c_str());
  }
  return result;
}

Result<ObjectInfo> Client::Meta(const std::string& id) {
  if (auto bad = BadId(id)) return *bad;
  return MetaAnswer(conn_->Exchange(http::verb::get, "/api/v1/meta/" + id));
}

Result<ObjectInfo> Client::RaiseLevel(const std::string& id, int level) {
  if (auto bad = BadId(id)) return *bad;
  http::fields extra;
  extra.set("X-Meta-ConsistencyLevel", std::to_string(level));
  return MetaAnswer(conn_->Exchange(http::verb::post, "/api/v1/meta/" + id, extra,
                                    conn_->options().commit_timeout));
}

Result<ObjectInfo> Client::Delete(const std::string& id) {
  if (auto bad = BadId(id)) return *bad;
  return MetaAnswer(conn_->Exchange(http::verb::post, "/api/v1/delete/" + id));
}

}  // namespace objstore::client
