// Fuzz target: raw bytes as an HTTP/1.1 request, through Beast's request
// parser with the server's limits (http/server.cc), then through what the
// public API does with a parsed header before it touches the node
// (api/public_api.cc Handle and Put): the route by path, the id in the path,
// every X-Meta-* header, Range and the conditionals, and the JSON a stored
// record becomes. Crashes, sanitizer reports and exceptions fail.
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/request_checks.h"
#include "cluster/codec.h"
#include "http/range.h"
#include "http/server.h"

namespace bhttp = boost::beast::http;
using namespace objstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(http::ServerOptions{}.max_header_bytes);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::system::error_code ec;
  boost::asio::const_buffer input(data, size);
  while (input.size() > 0 && !parser.is_done()) {
    const size_t used = parser.put(input, ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) return 0;
    if (used == 0) break;
    input += used;
  }
  if (!parser.is_header_done()) return 0;
  const auto& req = parser.get();

  std::string_view target = req.target();
  std::string_view path = target.substr(0, target.find('?'));
  for (std::string_view prefix : {"/api/v1/get/", "/api/v1/meta/", "/api/v1/delete/"}) {
    if (path.starts_with(prefix)) (void)api::ParseId(path.substr(prefix.size()));
  }

  ObjectRecord record;
  auto id = api::ParseId(req["X-Meta-ID"]);
  auto level = api::ParseLevel(req["X-Meta-ConsistencyLevel"]);
  auto user_meta = ParseUserMeta(req["X-Meta-UserMeta"]);
  const std::string name(req["X-Meta-Name"]);
  if (id.ok() && level.ok() && user_meta.ok() && CheckName(name).ok()) {
    // What a PUT stores, replicates and answers: it must serialise.
    record.key = *id;
    record.name = name;
    record.consistency = *level;
    record.user_meta = *user_meta;
    record.version.packed = 1;
    (void)cluster::RecordToJson(record).dump();
  }
  for (uint64_t body_size : {uint64_t{0}, uint64_t{1}, uint64_t{1000}}) {
    (void)http::ParseRange(req[bhttp::field::range], body_size);
  }
  (void)http::IfNoneMatchMatches(req[bhttp::field::if_none_match], "\"0123456789abcdef\"");
  (void)http::ParseHttpDate(req[bhttp::field::if_modified_since]);
  return 0;
}
