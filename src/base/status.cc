#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace objstore {

Status Status::FromErrno(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return NoSpace(std::move(msg));
  if (err == ENOENT) return NotFound(std::move(msg));
  return IOError(std::move(msg));
}

std::string Status::ToString() const {
  const char* kind = "ok";
  switch (code_) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kNotFound: kind = "not found"; break;
    case StatusCode::kDeleted: kind = "deleted"; break;
    case StatusCode::kInvalid: kind = "invalid"; break;
    case StatusCode::kConflict: kind = "conflict"; break;
    case StatusCode::kNoSpace: kind = "no space"; break;
    case StatusCode::kIOError: kind = "I/O error"; break;
    case StatusCode::kCorruption: kind = "corruption"; break;
    case StatusCode::kUnavailable: kind = "unavailable"; break;
    case StatusCode::kTooLarge: kind = "too large"; break;
  }
  return std::string(kind) + ": " + message_;
}

}  // namespace objstore
