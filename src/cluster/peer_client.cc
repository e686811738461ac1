#include "cluster/peer_client.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace objstore::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxAnswerBytes = 512u << 20;  // a sync answer of many records

bool SplitAddr(const std::string& addr, std::string* host, std::string* port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) return false;
  *host = addr.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = addr.substr(colon + 1);
  return !host->empty();
}

// The error code a refusing peer put in its JSON body, or its status.
std::string Refusal(int status, const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("code") && j["code"].is_string()) {
    std::string msg = j.value("error", "");
    return j["code"].get<std::string>() + (msg.empty() ? "" : ": " + msg);
  }
  return "HTTP " + std::to_string(status);
}

}  // namespace

PeerClient::PeerClient(CallAuthenticator& auth, std::string self_id,
                       std::chrono::milliseconds timeout)
    : auth_(auth), self_id_(std::move(self_id)), timeout_(timeout) {}

PeerClient::~PeerClient() { Clear(); }

void PeerClient::Clear() {
  std::lock_guard lock(mu_);
  closed_ = true;
  idle_.clear();
}

void PeerClient::Release(const std::string& addr, std::unique_ptr<Stream> stream) {
  const void* loop = &stream->get_executor().context();
  std::lock_guard lock(mu_);
  if (closed_) return;
  auto& idle = idle_[{loop, addr}];
  if (idle.size() < 8) idle.push_back(std::move(stream));
}

asio::awaitable<Result<std::unique_ptr<PeerClient::Stream>>> PeerClient::Connect(
    const std::string& addr, Deadline deadline, bool* reused) {
  auto ex = co_await asio::this_coro::executor;
  const void* loop = &asio::query(ex, asio::execution::context);
  {
    std::lock_guard lock(mu_);
    auto it = idle_.find({loop, addr});
    if (it != idle_.end() && !it->second.empty()) {
      std::unique_ptr<Stream> s = std::move(it->second.back());
      it->second.pop_back();
      *reused = true;
      co_return s;
    }
  }
  *reused = false;
  std::string host, port;
  if (!SplitAddr(addr, &host, &port)) co_return Status::Invalid("bad peer address " + addr);
  // A name's resolution is bounded by the call's deadline too: the resolver
  // has no timeout of its own, so a timer cancels it. The timer's handler may
  // run after this frame ended (fired just as the resolution completed): it
  // holds the resolver weakly.
  auto resolver = std::make_shared<tcp::resolver>(ex);
  asio::steady_timer resolve_deadline(ex, deadline);
  resolve_deadline.async_wait([weak = std::weak_ptr(resolver)](boost::system::error_code ec) {
    if (auto r = weak.lock(); r && !ec) r->cancel();
  });
  auto [rec, endpoints] = co_await resolver->async_resolve(host, port, kTuple);
  resolve_deadline.cancel();
  if (rec) co_return Status::Unavailable("cannot resolve " + addr + ": " + rec.message());
  auto stream = std::make_unique<Stream>(ex);
  stream->expires_at(deadline);
  auto [cec, ep] = co_await stream->async_connect(endpoints, kTuple);
  if (cec) co_return Status::Unavailable("cannot connect to " + addr + ": " + cec.message());
  stream->socket().set_option(tcp::no_delay(true));
  co_return stream;
}

std::string PeerClient::SetCallHeaders(bhttp::request_header<>& req, std::string_view method,
                                       const std::string& target, const std::string& addr,
                                       std::string_view body) {
  SignedHeaders sig = auth_.SignRequest(method, target, self_id_, body);
  req.set(bhttp::field::host, addr);
  req.set(kTagHeader, auth_.tag());
  req.set(kNodeHeader, self_id_);
  req.set(kTimeHeader, sig.time_ms);
  req.set(kNonceHeader, sig.nonce);
  if (!sig.signature.empty()) req.set(kSignatureHeader, sig.signature);
  return sig.nonce;  // HTTP/1.1: the connection stays open by default
}

asio::awaitable<Result<nlohmann::json>> PeerClient::Call(std::string addr, std::string target,
                                                         std::string body,
                                                         std::chrono::milliseconds timeout,
                                                         size_t* answer_bytes) {
  traffic_.calls.fetch_add(1, std::memory_order_relaxed);
  // One deadline for the whole call, resolution, connection and a retry on a
  // fresh connection included.
  const Deadline deadline = std::chrono::steady_clock::now() + std::max(timeout, timeout_);
  Status last = Status::Unavailable("no attempt");
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    auto conn = co_await Connect(addr, deadline, &reused);
    if (!conn.ok()) {
      last = conn.status();
      break;
    }
    std::unique_ptr<Stream> stream = std::move(conn).value();
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
    req.set(bhttp::field::content_type, "application/json");
    const std::string nonce = SetCallHeaders(req, "POST", target, addr, body);
    req.body() = body;
    req.prepare_payload();
    stream->expires_at(deadline);
    auto [wec, wn] = co_await bhttp::async_write(*stream, req, kTuple);
    if (wec) {
      last = Status::Unavailable("send to " + addr + " failed: " + wec.message());
      if (reused) continue;  // a stale pooled connection: once more, fresh
      break;
    }
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxAnswerBytes);
    auto [rec, rn] = co_await bhttp::async_read(*stream, buffer, parser, kTuple);
    if (rec) {
      last = Status::Unavailable("no answer from " + addr + ": " + rec.message());
      if (reused && rec != beast::error::timeout) continue;
      break;
    }
    traffic_.bytes_sent.fetch_add(wn, std::memory_order_relaxed);
    traffic_.bytes_received.fetch_add(rn, std::memory_order_relaxed);
    auto res = parser.release();
    const int status = res.result_int();
    const std::string signature(res[kSignatureHeader]);
    const bool keep = res.keep_alive();
    if (status != 200) {
      traffic_.failures.fetch_add(1, std::memory_order_relaxed);
      if (keep) Release(addr, std::move(stream));
      co_return Status::Unavailable(addr + " refused " + target + ": " +
                                    Refusal(status, res.body()));
    }
    if (!auth_.VerifyResponse(status, nonce, res.body(), signature)) {
      traffic_.failures.fetch_add(1, std::memory_order_relaxed);
      co_return Status::Unavailable("the answer of " + addr + " is not signed with our secret");
    }
    if (keep) Release(addr, std::move(stream));
    if (answer_bytes) *answer_bytes = res.body().size();
    auto json = nlohmann::json::parse(res.body(), nullptr, false);
    if (json.is_discarded()) co_return Status::Unavailable(addr + " answered malformed JSON");
    co_return json;
  }
  traffic_.failures.fetch_add(1, std::memory_order_relaxed);
  co_return last;
}

asio::awaitable<Result<std::unique_ptr<PeerBodyStream>>> PeerClient::OpenBody(std::string addr,
                                                                              std::string target,
                                                                              std::string range,
                                                                              bool head_only) {
  traffic_.calls.fetch_add(1, std::memory_order_relaxed);
  // Until the header: one deadline, as for Call.
  const Deadline deadline = std::chrono::steady_clock::now() + timeout_;
  Status last = Status::Unavailable("no attempt");
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    auto conn = co_await Connect(addr, deadline, &reused);
    if (!conn.ok()) {
      last = conn.status();
      break;
    }
    auto out = std::make_unique<PeerBodyStream>();
    out->client_ = this;
    out->addr_ = addr;
    out->stream_ = std::move(conn).value();
    const bhttp::verb verb = head_only ? bhttp::verb::head : bhttp::verb::get;
    bhttp::request<bhttp::empty_body> req{verb, target, 11};
    if (!range.empty()) req.set(bhttp::field::range, range);
    SetCallHeaders(req, bhttp::to_string(verb), target, addr, "");
    out->stream_->expires_at(deadline);
    auto [wec, wn] = co_await bhttp::async_write(*out->stream_, req, kTuple);
    if (wec) {
      last = Status::Unavailable("send to " + addr + " failed: " + wec.message());
      if (reused) continue;
      break;
    }
    out->parser_ = std::make_unique<bhttp::response_parser<bhttp::buffer_body>>();
    out->parser_->body_limit(boost::none);
    out->parser_->skip(head_only);  // a HEAD answer's Content-Length announces no bytes
    auto [rec, rn] = co_await bhttp::async_read_header(*out->stream_, out->buffer_, *out->parser_,
                                                       kTuple);
    if (rec) {
      last = Status::Unavailable("no answer from " + addr + ": " + rec.message());
      if (reused && rec != beast::error::timeout) continue;
      break;
    }
    traffic_.bytes_sent.fetch_add(wn, std::memory_order_relaxed);
    out->status_ = out->parser_->get().result_int();
    out->content_length_ = out->parser_->content_length().value_or(0);
    co_return out;
  }
  traffic_.failures.fetch_add(1, std::memory_order_relaxed);
  co_return last;
}

PeerBodyStream::~PeerBodyStream() {
  // Only a stream read to its end with keep-alive goes back to the pool.
  if (stream_ && parser_ && BodyDone() && !failed_ && parser_->get().keep_alive()) {
    client_->Release(addr_, std::move(stream_));
  }
}

asio::awaitable<Result<size_t>> PeerBodyStream::Read(std::span<char> out) {
  if (failed_) co_return Status::Unavailable("the stream from " + addr_ + " failed");
  if (direct_.Begin(*parser_, buffer_)) {
    auto [ec, n] = co_await direct_.Read(*stream_, out, client_->timeout_);
    if (ec) {
      failed_ = true;
      co_return Status::Unavailable("reading a body from " + addr_ + " failed: " + ec.message());
    }
    client_->traffic_.bytes_received.fetch_add(n, std::memory_order_relaxed);
    co_return n;
  }
  while (!parser_->is_done()) {
    auto& body = parser_->get().body();
    body.data = out.data();
    body.size = out.size();
    stream_->expires_after(client_->timeout_);
    auto [ec, n] = co_await bhttp::async_read_some(*stream_, buffer_, *parser_, kTuple);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      failed_ = true;
      co_return Status::Unavailable("reading a body from " + addr_ + " failed: " + ec.message());
    }
    const size_t got = out.size() - body.size;
    if (got > 0) {
      client_->traffic_.bytes_received.fetch_add(got, std::memory_order_relaxed);
      co_return got;
    }
  }
  co_return 0;
}

}  // namespace objstore::cluster
