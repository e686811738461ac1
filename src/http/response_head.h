// ResponseHead: the header of an answer whose body is sent after it (a file
// with sendfile, a relayed or fetched body), written field by field straight
// into bytes.
//
// Why not a Beast response: building, setting (each `set` looks the name up
// first) and destroying Beast's field list was about a quarter of a cache
// hit's instructions (docs/BENCHMARKS.md, issue 6). Here a field is one append.
//
// Contract: the caller adds each field at most once, in the order it should be
// sent, with a name and a value free of CR and LF (the values come from
// validated records, as with Beast, which does not check them either).
// Exchange::SendHead writes the status line, these fields, then Server, Date,
// Connection (when closing) and Content-Length, and the blank line.
//
// Thread safety: a value type owned by one request.
#pragma once

#include <string>
#include <string_view>

namespace objstore::http {

class ResponseHead {
 public:
  // 200 or 206 (the statuses of an answer with a body).
  explicit ResponseHead(unsigned status = 200) : status_(status) { fields_.reserve(512); }

  void Add(std::string_view name, std::string_view value) {
    fields_.append(name);
    fields_.append(": ", 2);
    fields_.append(value);
    fields_.append("\r\n", 2);
  }

  unsigned status() const { return status_; }
  void set_status(unsigned status) { status_ = status; }
  // "Name: value\r\n" for every field added, in order.
  std::string_view fields() const { return fields_; }

 private:
  unsigned status_;
  std::string fields_;
};

}  // namespace objstore::http
