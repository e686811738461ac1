// DirectBody: reads the rest of an HTTP body of known length from the socket
// straight into the caller's buffer, past Beast's parser. Used by the server
// for request bodies and by the peer client for response bodies.
//
// Why: through Beast's parser a body arrives via the stream's flat_buffer in
// pieces of its capacity — 4 KiB on the server (sized for headers), a few
// hundred bytes on the peer client — so a 1 MiB PUT took 256 reads, file
// writes and hash updates, and a relayed 32 MiB GET was ~3x slower than a
// direct one (docs/BENCHMARKS.md, issue 6). Read directly, a piece is as
// large as the caller's buffer and what the socket holds.
//
// Contract: call Begin before each read that goes through the parser; it
// engages once every byte read with the header has been handed over (the
// stream's buffer is empty) and the body has a Content-Length (a chunked body
// or one read to the close stays with the parser). Once engaged, Read never
// reads past the body's end, so a pipelined request behind it stays in the
// socket for the next parse.
//
// Thread safety: one per message, used by the coroutine that owns the stream.
#pragma once

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <tuple>

namespace objstore::http {

class DirectBody {
 public:
  // Engages when `buffer` holds no body bytes and `parser` knows how many are
  // left. Returns whether reads now go past the parser.
  template <class Parser>
  bool Begin(const Parser& parser, const boost::beast::flat_buffer& buffer) {
    if (!left_ && buffer.size() == 0 && !parser.is_done() && !parser.chunked()) {
      if (auto left = parser.content_length_remaining()) left_ = *left;
    }
    return engaged();
  }
  bool engaged() const { return left_.has_value(); }
  bool done() const { return left_ && *left_ == 0; }

  // Up to out.size() bytes, never past the body's end; 0 once it is read or
  // `out` is empty. An error is the socket's (the client or peer went away or
  // stalled past `timeout`): past its header a body cannot be malformed.
  template <class Duration>
  boost::asio::awaitable<std::tuple<boost::system::error_code, size_t>> Read(
      boost::beast::tcp_stream& stream, std::span<char> out, Duration timeout) {
    if (*left_ == 0 || out.empty()) co_return std::tuple{boost::system::error_code{}, size_t{0}};
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), *left_));
    stream.expires_after(timeout);
    auto [ec, n] = co_await stream.async_read_some(
        boost::asio::buffer(out.data(), want),
        boost::asio::as_tuple(boost::asio::use_awaitable));
    *left_ -= n;
    co_return std::tuple{ec, n};
  }

 private:
  std::optional<uint64_t> left_;  // engaged once past the parser: bytes still to read
};

}  // namespace objstore::http
