// TokenAuth: optional bearer-token authentication of the public API
// (--auth-tokens-file; docs/SECURITY.md, docs/API.md).
//
// Design:
// - The token file has one token per line, optionally followed by its access,
//   `rw` (default: read and write) or `ro` (GET and HEAD only); blank lines and
//   lines starting with `#` are ignored. Tokens are RFC 6750 b64token strings
//   of at least kMinTokenLength characters; any other line makes the whole
//   file invalid (a typo must not silently lock out or let in).
// - Only the SHA-256 of each token is kept in memory. A presented token is
//   hashed and compared with every stored hash in constant time, without an
//   early exit, so neither the comparison nor the position of a match leaks.
// - Reload: on SIGHUP (main calls Reload) and when the file's mtime, size or
//   inode changed, checked at most once a second from Check. A file that
//   fails to load leaves the previous set in force (and is logged).
// - The token set is an immutable snapshot behind an atomic shared_ptr:
//   requests read it without a lock while a reload swaps it.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct stat;

namespace objstore::api {

enum class Access { kRead, kReadWrite };

struct TokenEntry {
  std::string sha256_hex;  // of the token; the token itself is not kept
  Access access = Access::kReadWrite;
};

inline constexpr size_t kMinTokenLength = 16;

// Parses a token file's text. Invalid, naming the line, for a malformed line.
Result<std::vector<TokenEntry>> ParseTokenFile(std::string_view text);

class TokenAuth {
 public:
  struct Verdict {
    int status = 0;  // 0: allowed; else 401 or 403
    std::string code;
    std::string message;
    std::string challenge;  // the WWW-Authenticate value
  };

  // Reads `path`; IOError or Invalid when it cannot be used.
  static Result<std::unique_ptr<TokenAuth>> Open(std::string path);

  // Reads the file again; on failure the previous tokens stay in force.
  Status Reload();
  // `authorization`: the request's Authorization header (may be empty);
  // `write`: the request changes data.
  Verdict Check(std::string_view authorization, bool write);
  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  // What identifies one version of the file.
  struct FileStamp {
    int64_t mtime_ns = 0;
    int64_t size = 0;
    uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };
  struct Snapshot {
    std::vector<TokenEntry> entries;
    FileStamp stamp;
  };
  explicit TokenAuth(std::string path) : path_(std::move(path)) {}
  static FileStamp StampOf(const struct stat& st);
  Result<std::shared_ptr<const Snapshot>> Load() const;
  void ReloadIfChanged();

  std::string path_;
  std::atomic<std::shared_ptr<const Snapshot>> tokens_;
  std::atomic<int64_t> next_check_ns_{0};
  std::mutex seen_mu_;
  FileStamp seen_;  // the version last loaded or tried, guarded by seen_mu_
};

}  // namespace objstore::api
