#include "api/token_auth.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/beast/core/string.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "cluster/auth.h"
#include "coldstore/sigv4.h"

namespace objstore::api {

namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr int64_t kCheckEveryNs = 1'000'000'000;

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool IsB64Token(std::string_view t) {
  size_t i = 0;
  while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) ||
                          std::string_view("-._~+/").find(t[i]) != std::string_view::npos)) {
    ++i;
  }
  if (i == 0) return false;
  while (i < t.size() && t[i] == '=') ++i;
  return i == t.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TokenAuth::FileStamp TokenAuth::StampOf(const struct stat& st) {
  return {int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size, st.st_ino};
}

Result<std::vector<TokenEntry>> ParseTokenFile(std::string_view text) {
  std::vector<TokenEntry> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    const size_t gap = line.find_first_of(" \t");
    std::string_view token = line.substr(0, gap);
    std::string_view access = gap == std::string_view::npos ? "" : Trim(line.substr(gap));
    if (!IsB64Token(token)) {
      return Status::Invalid(fmt::format(
          "line {}: a token may only contain letters, digits and -._~+/ (then =)", line_no));
    }
    if (token.size() < kMinTokenLength) {
      return Status::Invalid(
          fmt::format("line {}: a token needs at least {} characters", line_no, kMinTokenLength));
    }
    TokenEntry e;
    if (access.empty() || access == "rw") {
      e.access = Access::kReadWrite;
    } else if (access == "ro") {
      e.access = Access::kRead;
    } else {
      return Status::Invalid(fmt::format(
          "line {}: after the token only 'rw' (read-write) or 'ro' (read-only) may follow",
          line_no));
    }
    e.sha256_hex = sigv4::Sha256Hex(token);
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::unique_ptr<TokenAuth>> TokenAuth::Open(std::string path) {
  std::unique_ptr<TokenAuth> auth(new TokenAuth(std::move(path)));
  auto loaded = auth->Load();
  if (!loaded.ok()) return loaded.status();
  auth->tokens_.store(*loaded);
  auth->seen_ = (*loaded)->stamp;
  auth->next_check_ns_.store(SteadyNanos() + kCheckEveryNs);
  return auth;
}

Result<std::shared_ptr<const TokenAuth::Snapshot>> TokenAuth::Load() const {
  auto snap = std::make_shared<Snapshot>();
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return Status::IOError(
        fmt::format("cannot read the token file {}: {}", path_, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    return Status::Invalid(
        fmt::format("the token file {} is not a regular file of at most {} "
                    "bytes",
                    path_, kMaxFileBytes));
  }
  std::ifstream in(path_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return Status::IOError(fmt::format("cannot read the token file {}", path_));
  }
  auto entries = ParseTokenFile(text.str());
  if (!entries.ok()) return Status::Invalid(path_ + ": " + entries.status().message());
  snap->entries = std::move(entries).value();
  snap->stamp = StampOf(st);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

Status TokenAuth::Reload() {
  auto loaded = Load();
  if (!loaded.ok()) {
    spdlog::error("token file not reloaded, the previous tokens stay in force: {}",
                  loaded.status().message());
    return loaded.status();
  }
  const size_t n = (*loaded)->entries.size();
  {
    std::lock_guard lock(seen_mu_);
    seen_ = (*loaded)->stamp;
  }
  tokens_.store(*loaded);
  spdlog::info("token file {} loaded: {} tokens", path_, n);
  if (n == 0) spdlog::warn("the token file has no tokens: every authenticated route answers 401");
  return Status::Ok();
}

void TokenAuth::ReloadIfChanged() {
  int64_t due = next_check_ns_.load(std::memory_order_relaxed);
  const int64_t now = SteadyNanos();
  if (now < due || !next_check_ns_.compare_exchange_strong(due, now + kCheckEveryNs)) return;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return;  // a file being replaced: keep the tokens
  {
    // A version that failed to load is not tried (and logged) again every second.
    std::lock_guard lock(seen_mu_);
    if (StampOf(st) == seen_) return;
    seen_ = StampOf(st);
  }
  (void)Reload();
}

size_t TokenAuth::size() const { return tokens_.load()->entries.size(); }

TokenAuth::Verdict TokenAuth::Check(std::string_view authorization, bool write) {
  ReloadIfChanged();
  static constexpr std::string_view kRealm = R"(Bearer realm="objstore")";
  authorization = Trim(authorization);
  if (authorization.empty()) {
    return {401, "unauthorized",
            "this node requires a bearer token (Authorization: Bearer <token>)",
            std::string(kRealm)};
  }
  const size_t gap = authorization.find(' ');
  if (gap == std::string_view::npos ||
      !boost::beast::iequals(authorization.substr(0, gap), "bearer")) {
    return {401, "unauthorized", "only the Bearer authorization scheme is accepted",
            std::string(kRealm)};
  }
  const std::string presented = sigv4::Sha256Hex(Trim(authorization.substr(gap + 1)));
  auto snap = tokens_.load();
  // Every entry is compared, match or not (see the design note).
  const TokenEntry* match = nullptr;
  for (const TokenEntry& e : snap->entries) {
    const bool same = cluster::ConstantTimeEquals(e.sha256_hex, presented);
    if (same) match = &e;
  }
  if (match == nullptr) {
    return {401, "unauthorized", "the bearer token is not valid for this node",
            std::string(kRealm) + R"(, error="invalid_token")"};
  }
  if (write && match->access != Access::kReadWrite) {
    return {403, "forbidden", "this token is read-only",
            std::string(kRealm) + R"(, error="insufficient_scope")"};
  }
  return {};
}

}  // namespace objstore::api
