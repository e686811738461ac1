// objstore-cli: the public API of a node from a shell, on the client library
// (include/objstore/client.h). One command per run; the answer goes to stdout,
// diagnostics and the progress bar to stderr, and the exit code says what kind
// of failure happened so scripts can branch on it (kExitCodes below, also in
// --help and the README).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/finite_number.h"
#include "objstore/client.h"

#ifndef OBJSTORE_VERSION
#define OBJSTORE_VERSION "dev"
#endif

namespace {

using objstore::client::Client;
using objstore::client::Error;

enum ExitCode {
  kOk = 0,
  kUsage = 1,       // bad arguments or input; nothing was sent
  kNotFound = 2,    // the node answered 404: unknown id or deleted object
  kRefused = 3,     // the node answered another 4xx/5xx (its message is printed)
  kNoNode = 4,      // no answer: cannot connect, timeout, broken connection
  kLocalError = 5,  // reading the input file or writing the output failed
};

constexpr const char* kExitCodes =
    "Exit codes: 0 ok, 1 bad usage or input, 2 not found (unknown id or deleted),\n"
    "3 refused or failed by the node (its message is printed), 4 node unreachable\n"
    "(connect, timeout, broken connection), 5 local file error.";

int ExitCodeFor(const Error& e) {
  switch (e.kind) {
    case Error::Kind::kHttp:
      return e.IsNotFound() ? kNotFound : kRefused;
    case Error::Kind::kConnection:
    case Error::Kind::kTimeout:
    case Error::Kind::kProtocol:
      return kNoNode;
    case Error::Kind::kLocalIo:
      return kLocalError;
    case Error::Kind::kInvalid:
      return kUsage;
  }
  return kRefused;
}

int Fail(const Error& e) {
  std::fprintf(stderr, "objstore-cli: %s\n", e.ToString().c_str());
  return ExitCodeFor(e);
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "objstore-cli: %s\n", message.c_str());
  return kUsage;
}

// ------------------------------------------------------------------ progress

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

// A one-line bar with percentage, bytes, rate and ETA, redrawn in place on
// stderr at most ten times a second. Only on a terminal (a log or a pipe gets
// no carriage-return noise) and only for transfers past kMinBytes (small ones
// finish before a bar could be read).
class ProgressBar {
 public:
  static constexpr uint64_t kMinBytes = 4 << 20;

  ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}
  ~ProgressBar() { Finish(); }

  void Update(uint64_t done, std::optional<uint64_t> total) {
    if (!enabled_ || (total ? *total : done) < kMinBytes) return;
    const auto now = Clock::now();
    const bool complete = total && done >= *total;
    if (drawn_ && !complete && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    drawn_ = true;
    const double seconds = std::max(1e-3, std::chrono::duration<double>(now - start_).count());
    const double rate = done / seconds;
    std::string line;
    if (total && *total > 0) {
      constexpr int kWidth = 24;
      const double fraction = std::min(1.0, static_cast<double>(done) / *total);
      const int filled = static_cast<int>(fraction * kWidth);
      const auto eta =
          static_cast<uint64_t>(rate > 0 ? (*total - std::min(done, *total)) / rate : 0);
      line =
          fmt::format("[{}{}] {:3.0f}%  {} / {}  {}/s  ETA {}:{:02}", std::string(filled, '#'),
                      std::string(kWidth - filled, ' '), std::floor(fraction * 100),
                      HumanBytes(done), HumanBytes(*total), HumanBytes(rate), eta / 60, eta % 60);
    } else {
      line = fmt::format("{}  {}/s", HumanBytes(done), HumanBytes(rate));
    }
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
  }

  // Ends the bar's line so later messages start on their own.
  void Finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

  objstore::client::ProgressFn Callback() {
    return [this](uint64_t done, std::optional<uint64_t> total) { Update(done, total); };
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

// ------------------------------------------------------------------ commands

struct PutArgs {
  std::string file;
  std::string id;
  int level = 0;
  std::optional<std::string> name;
  std::vector<std::string> meta;
};

struct GetArgs {
  std::string id;
  std::string output;
  std::string range;
  bool fetch = false;
};

int RunPut(Client& client, const PutArgs& args) {
  objstore::client::PutOptions options;
  options.level = args.level;
  for (const std::string& kv : args.meta) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Usage("bad --meta '" + kv + "': expected KEY=VALUE");
    }
    options.user_meta[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const bool from_stdin = args.file == "-";
  if (args.name) {
    options.name = *args.name;
  } else if (!from_stdin) {
    options.name = std::filesystem::path(args.file).filename().string();
  }
  // An input that cannot be read fails as such (exit 5), before the node is asked for an id.
  if (!from_stdin && ::access(args.file.c_str(), R_OK) != 0) {
    return Fail(Error{Error::Kind::kLocalIo, 0, "",
                      "cannot read " + args.file + ": " + std::strerror(errno)});
  }
  std::string id = args.id;
  if (id.empty()) {
    auto fresh = client.NewId();
    if (!fresh.ok()) return Fail(fresh.error());
    id = *fresh;
  }
  ProgressBar bar;
  options.progress = bar.Callback();
  objstore::client::Result<objstore::client::ObjectInfo> put = Error{};
  if (from_stdin) {
    objstore::client::SourceFn source = [](char* buf,
                                           size_t capacity) -> objstore::client::Result<size_t> {
      size_t n = std::fread(buf, 1, capacity, stdin);
      if (n == 0 && std::ferror(stdin)) {
        return Error{Error::Kind::kLocalIo, 0, "", "reading standard input failed"};
      }
      return n;
    };
    put = client.Put(id, source, std::nullopt, options);
  } else {
    put = client.PutFile(id, args.file, options);
  }
  bar.Finish();
  if (!put.ok()) return Fail(put.error());
  std::printf("%s\n", put->id.c_str());
  return kOk;
}

int RunGet(Client& client, const GetArgs& args) {
  objstore::client::GetOptions options;
  options.fetch = args.fetch;
  if (!args.range.empty()) {
    auto range = objstore::client::ByteRange::Parse(args.range);
    if (!range.ok()) return Usage(range.error().message);
    options.range = *range;
  }
  ProgressBar bar;
  options.progress = bar.Callback();
  objstore::client::Result<objstore::client::GetInfo> got = Error{};
  if (args.output.empty()) {
    objstore::client::SinkFn to_stdout = [](std::string_view bytes) {
      return std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size();
    };
    got = client.Get(args.id, to_stdout, options);
    if (std::fflush(stdout) != 0 && got.ok()) {
      got = Error{Error::Kind::kLocalIo, 0, "", "writing standard output failed"};
    }
  } else {
    got = client.GetToFile(args.id, args.output, options);
  }
  bar.Finish();
  if (!got.ok()) return Fail(got.error());
  return kOk;
}

// Pretty-prints the node's JSON for people; scripts can still parse it.
int PrintJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::printf("%s\n", j.is_discarded() ? text.c_str() : j.dump(2).c_str());
  return kOk;
}

template <typename T>
int PrintOr(const objstore::client::Result<T>& r, int (*print)(const T&)) {
  return r.ok() ? print(*r) : Fail(r.error());
}

int PrintLine(const std::string& s) {
  std::printf("%s\n", s.c_str());
  return kOk;
}

int PrintMeta(const objstore::client::ObjectInfo& info) { return PrintJson(info.json); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"objstore-cli: store and read objects on an objstore node.", "objstore-cli"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", OBJSTORE_VERSION);
  app.require_subcommand(1);

  objstore::client::ClientOptions client_options;
  double connect_timeout = 5;
  double io_timeout = 60;
  client_options.url = "http://127.0.0.1:10999";
  app.add_option("--node", client_options.url, "Node URL, http://host[:port]")
      ->envname("OBJSTORE_URL")
      ->capture_default_str();
  app.add_option("--token", client_options.token,
                 "Bearer token for a node that requires one (--auth-tokens-file)")
      ->envname("OBJSTORE_TOKEN");
  app.add_option("--connect-timeout", connect_timeout, "Seconds to wait for the connection")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout", io_timeout, "Seconds a single read or write may stall")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::PositiveNumber);

  PutArgs put;
  auto* put_cmd = app.add_subcommand("put", "Store FILE (- for standard input); prints the id");
  put_cmd->add_option("FILE", put.file, "File to store, or - for standard input")->required();
  put_cmd->add_option("--level", put.level, "Consistency level: 0 local, 1 s3, 2 full")
      ->capture_default_str();
  put_cmd->add_option("--name", put.name, "Object name (default: the file's name)");
  put_cmd->add_option("--meta", put.meta, "User metadata KEY=VALUE (repeatable)");
  put_cmd->add_option("--id", put.id, "Store under this id (default: a fresh one from the node)");

  GetArgs get;
  auto* get_cmd = app.add_subcommand("get", "Write an object's body to stdout or -o FILE");
  get_cmd->add_option("ID", get.id, "Object id")->required();
  get_cmd->add_option("-o,--output", get.output, "Write to FILE (atomically) instead of stdout");
  get_cmd->add_option("--range", get.range, "Bytes A-B, A- or -N (last N)");
  get_cmd->add_flag("--fetch", get.fetch,
                    "Restore an id this node does not know from the cold store");

  std::string id;
  auto* meta_cmd = app.add_subcommand("meta", "Print an object's metadata as JSON");
  meta_cmd->add_option("ID", id, "Object id")->required();
  auto* delete_cmd = app.add_subcommand("delete", "Delete an object (leaves a tombstone)");
  delete_cmd->add_option("ID", id, "Object id")->required();
  int level = 0;
  auto* level_cmd = app.add_subcommand("level", "Raise an object's consistency level");
  level_cmd->add_option("ID", id, "Object id")->required();
  level_cmd->add_option("LEVEL", level, "New level, 1 or 2")->required();
  auto* stats_cmd = app.add_subcommand("stats", "Print the node's statistics as JSON");
  auto* id_cmd = app.add_subcommand("id", "Print a fresh object id");
  auto* ping_cmd = app.add_subcommand("ping", "Print the node's id (a health check)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  client_options.connect_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(connect_timeout * 1000));
  client_options.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(io_timeout * 1000));
  Client client(client_options);

  if (*put_cmd) return RunPut(client, put);
  if (*get_cmd) return RunGet(client, get);
  if (*meta_cmd) return PrintOr(client.Meta(id), PrintMeta);
  if (*level_cmd) return PrintOr(client.RaiseLevel(id, level), PrintMeta);
  if (*delete_cmd) {
    auto deleted = client.Delete(id);
    return deleted.ok() ? kOk : Fail(deleted.error());
  }
  if (*stats_cmd) return PrintOr(client.StatsJson(), PrintJson);
  if (*id_cmd) return PrintOr(client.NewId(), PrintLine);
  if (*ping_cmd) return PrintOr(client.Ping(), PrintLine);
  return kUsage;
}
