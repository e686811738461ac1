// S3ColdStore against moto_server (a real S3 endpoint, started here once for
// the suite) and, for what moto cannot show, against servers scripted in this
// process: the socket options of the client's own connections (a one-shot
// server finds the client's socket among the process's descriptors, the one
// whose peer is the server, and reads its SO_RCVBUF), another writer landing
// between two requests, an endpoint without conditional requests, and how
// many requests a call made.
#include "coldstore/s3_cold_store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/loopback_listener.h"
#include "base/test_util.h"
#include "base/unique_fd.h"
#include "coldstore/scripted_cold_store.h"

extern char** environ;

namespace objstore {
namespace {

// SO_RCVBUF of this process's TCP socket connected to 127.0.0.1:`port`, or -1.
int ReceiveBufferOfClientOf(uint16_t port) {
  DIR* fds = ::opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  int found = -1;
  while (dirent* e = ::readdir(fds)) {
    const int fd = std::atoi(e->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (fd <= 2 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
      continue;
    }
    int bytes = 0;
    socklen_t size = sizeof bytes;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, &size) == 0) found = bytes;
  }
  ::closedir(fds);
  return found;
}

// Serves one GET with a 5-byte body after noting the client's SO_RCVBUF.
// Every accept and read waits at most 5 s, so a client that never comes
// fails the test instead of hanging it.
struct OneShotServer {
  testing::LoopbackListener listener;
  int client_receive_buffer = -1;
  std::thread thread;

  OneShotServer() {
    listener.BoundWaits(5);
    thread = std::thread([this] {
      UniqueFd conn(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(conn.get(), buf, sizeof buf);
        if (n <= 0) return;
        request.append(buf, static_cast<size_t>(n));
      }
      client_receive_buffer = ReceiveBufferOfClientOf(listener.port());
      const std::string answer =
          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
      (void)!::write(conn.get(), answer.data(), answer.size());
    });
  }
  ~OneShotServer() {
    if (thread.joinable()) thread.join();
  }
};

// The receive buffer the client's socket had while its GET was open.
int ReceiveBufferDuringGet(int receive_buffer) {
  OneShotServer server;
  S3Options options;
  options.bucket = "bkt";
  options.endpoint = server.listener.url();
  options.path_style = true;
  options.max_attempts = 1;
  options.receive_buffer = receive_buffer;
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
  std::string body;
  Status s = store.Get(
      "key", [](const ColdObjectMeta&) { return Status::Ok(); },
      [&](std::span<const char> c) {
        body.append(c.data(), c.size());
        return Status::Ok();
      });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(body, "hello");
  server.thread.join();
  return server.client_receive_buffer;
}

uint64_t RmemMax() {
  uint64_t v = 0;
  std::ifstream("/proc/sys/net/core/rmem_max") >> v;
  return v;
}

TEST(S3ColdStore, DownloadSocketsGetTheConfiguredReceiveBuffer) {
  constexpr int kAsked = 1 << 20;
  // Linux doubles the value for its bookkeeping and caps it at rmem_max.
  const int expected = 2 * static_cast<int>(std::min<uint64_t>(kAsked, RmemMax()));
  ASSERT_GT(expected, 0) << "net.core.rmem_max unreadable";
  EXPECT_EQ(ReceiveBufferDuringGet(kAsked), expected);
  // Unset: the kernel's default, which autotuning then grows.
  const int by_default = ReceiveBufferDuringGet(0);
  EXPECT_GT(by_default, 0);
  EXPECT_NE(by_default, expected);
}

// ---------------------------------------------------------------- moto

// Status code of one HTTP/1.1 exchange with 127.0.0.1:`port`, or -1 when it
// could not be made (moto not listening yet).
int HttpStatus(uint16_t port, const std::string& method, const std::string& path) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  const std::string request = method + " " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n";
  if (::write(fd.get(), request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    return -1;
  }
  char buf[64] = {};
  if (::read(fd.get(), buf, sizeof buf - 1) < 12) return -1;  // "HTTP/1.1 200"
  return std::atoi(buf + 9);
}

// One moto_server for the suite (state in memory, signature checks off), on
// a free port, with bucket "bkt"; its log is in a temporary directory.
class S3ColdStoreOnMoto : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    log_dir_ = new testing::TempDir;
    port_ = testing::LoopbackListener().port();  // free once the listener closes
    const std::string port = std::to_string(port_);
    const std::string log = *log_dir_ / "moto.log";
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group, stopped as one
    const char* argv[] = {"moto_server", "-H", "127.0.0.1", "-p", port.c_str(), nullptr};
    const int err = posix_spawnp(&moto_pid_, "moto_server", &files, &attr,
                                 const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    ASSERT_EQ(err, 0) << "cannot start moto_server (see /work/shared/TESTING.md)";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (HttpStatus(port_, "GET", "/moto-api/data.json") != 200) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "moto_server not ready; " << log;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(HttpStatus(port_, "PUT", "/bkt"), 200);
  }
  static void TearDownTestSuite() {
    if (moto_pid_ > 0) {
      ::kill(-moto_pid_, SIGTERM);
      ::waitpid(moto_pid_, nullptr, 0);
      moto_pid_ = 0;
    }
    delete log_dir_;
    log_dir_ = nullptr;
  }

  // A store on moto; multipart from `multipart_threshold` bytes on.
  static S3ColdStore Store(uint64_t multipart_threshold = 64ull << 20) {
    S3Options options;
    options.bucket = "bkt";
    options.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    options.path_style = true;
    options.multipart_threshold = multipart_threshold;
    options.max_attempts = 2;
    return S3ColdStore(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
  }

  // Writes `bytes` to a file (returned in `path`) and returns meta for it.
  ColdObjectMeta Body(const std::string& key, const std::string& bytes, uint64_t version,
                      std::string* path) {
    *path = dir_ / (key + "." + std::to_string(version));
    std::ofstream(*path, std::ios::binary) << bytes;
    return ColdObjectMeta{key, "n.txt", 2, 123, "{}", bytes.size(), "\"x\"", version};
  }

  testing::TempDir dir_;
  static inline testing::TempDir* log_dir_ = nullptr;
  static inline uint16_t port_ = 0;
  static inline pid_t moto_pid_ = 0;
};

TEST_F(S3ColdStoreOnMoto, NewerVersionIsNeverReplacedByOlder) {
  // Single PUT, then CompleteMultipartUpload (every body is multipart at 1 byte).
  for (uint64_t threshold : {64ull << 20, 1ull}) {
    SCOPED_TRACE("multipart_threshold " + std::to_string(threshold));
    S3ColdStore store = Store(threshold);
    const std::string key = "newer-kept-" + std::to_string(threshold);
    std::string newer, older;
    ASSERT_TRUE(store.Put(Body(key, "new", 10, &newer), newer).ok());
    Status s = store.Put(Body(key, "older", 5, &older), older);
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto got = testing::ReadObject(store, key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->first.version, 10u);
    EXPECT_EQ(got->second, "new");
    // A version at least as new replaces it.
    ASSERT_TRUE(store.Put(Body(key, "newest", 11, &newer), newer).ok());
    EXPECT_EQ(testing::ReadObject(store, key)->second, "newest");
  }
}

// An empty body at a multipart threshold of 0 bytes goes up in one PUT: S3
// refuses a multipart upload without parts (MalformedXML), for good.
TEST_F(S3ColdStoreOnMoto, AnEmptyBodyIsNeverSentInParts) {
  S3ColdStore store = Store(0);
  std::string path;
  Status s = store.Put(Body("empty", "", 3, &path), path);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto got = testing::ReadObject(store, "empty");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->first.version, 3u);
  EXPECT_EQ(got->second, "");
}

TEST_F(S3ColdStoreOnMoto, OlderDeleteKeepsNewerObject) {
  S3ColdStore store = Store();
  std::string path;
  ASSERT_TRUE(store.Put(Body("del", "new", 10, &path), path).ok());
  ASSERT_TRUE(store.Delete("del", 5).ok());
  auto got = testing::ReadObject(store, "del");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->first.version, 10u);
  ASSERT_TRUE(store.Delete("del", 10).ok());
  EXPECT_EQ(testing::ReadObject(store, "del").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store.Delete("del", 11).ok());  // absent: not an error
}

// ---------------------------------------------------------------- scripted S3

// Answers each request (one per connection: every answer closes it) with the
// next of `answers`, the last one repeated, and keeps the request heads. A
// request body is read whole (by Content-Length) before the answer. Each
// kPause in an answer holds the rest of it back for half a second.
class ScriptedS3 {
 public:
  explicit ScriptedS3(std::vector<std::string> answers) : answers_(std::move(answers)) {
    listener_.BoundWaits(5);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedS3() {
    stopping_ = true;
    ::shutdown(listener_.fd(), SHUT_RDWR);  // wakes the accept
    thread_.join();
  }
  std::string url() const { return listener_.url(); }
  std::vector<std::string> heads() {
    std::lock_guard lock(mu_);
    return heads_;
  }

  static constexpr char kPause = '\x01';

  static std::string Answer(const std::string& status_line, const std::string& headers = "",
                            const std::string& body = "") {
    const auto length = body.size() - std::count(body.begin(), body.end(), kPause);
    return "HTTP/1.1 " + status_line + "\r\n" + headers +
           "Content-Length: " + std::to_string(length) + "\r\nConnection: close\r\n\r\n" + body;
  }

 private:
  void Serve() {
    for (size_t n = 0; !stopping_; ++n) {
      UniqueFd conn(::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;
      std::string request;
      char buf[4096];
      size_t end;
      while ((end = request.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t got = ::read(conn.get(), buf, sizeof buf);
        if (got <= 0) return;
        request.append(buf, static_cast<size_t>(got));
      }
      std::string head = request.substr(0, end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto length = head.find("content-length: ");
      const size_t body = length == std::string::npos ? 0 : std::atol(head.c_str() + length + 16);
      while (request.size() < end + 4 + body) {
        const ssize_t got = ::read(conn.get(), buf, sizeof buf);
        if (got <= 0) return;
        request.append(buf, static_cast<size_t>(got));
      }
      {
        std::lock_guard lock(mu_);
        heads_.push_back(head);
      }
      std::string_view answer = answers_[std::min(n, answers_.size() - 1)];
      for (size_t pause; (pause = answer.find(kPause)) != std::string_view::npos;) {
        (void)!::send(conn.get(), answer.data(), pause, MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        answer.remove_prefix(pause + 1);
      }
      (void)!::send(conn.get(), answer.data(), answer.size(),
                    MSG_NOSIGNAL);  // the client may be gone
    }
  }

  testing::LoopbackListener listener_;
  const std::vector<std::string> answers_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::string> heads_;  // lower-cased; guarded by mu_
  std::thread thread_;
};

S3Options OptionsFor(const ScriptedS3& server) {
  S3Options options;
  options.bucket = "bkt";
  options.endpoint = server.url();
  options.path_style = true;
  options.max_attempts = 3;
  options.base_backoff = std::chrono::milliseconds(1);
  return options;
}

S3ColdStore StoreOn(const ScriptedS3& server) {
  return S3ColdStore(OptionsFor(server), AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
}

bool Has(const std::string& head, const std::string& text) {
  return head.find(text) != std::string::npos;
}

// Another node's newer version lands between this Put's HEAD (nothing there)
// and its PUT: the PUT, made on condition that the key is still absent, fails
// with 412; the HEAD that follows sees the newer version, which stays.
TEST(S3ColdStore, PutLosingARaceToANewerVersionKeepsIt) {
  ScriptedS3 s3({ScriptedS3::Answer("404 Not Found"), ScriptedS3::Answer("412 Precondition Failed"),
                 ScriptedS3::Answer("200 OK", "ETag: \"e10\"\r\nx-amz-meta-version: 10\r\n")});
  S3ColdStore store = StoreOn(s3);
  testing::TempDir dir;
  std::ofstream(dir / "body") << "old";
  const ColdObjectMeta meta{"K", "n.txt", 2, 123, "{}", 3, "\"x\"", 5};
  Status s = store.Put(meta, dir / "body");
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_TRUE(heads[0].starts_with("head /bkt/k ")) << heads[0];
  EXPECT_TRUE(heads[1].starts_with("put /bkt/k ")) << heads[1];
  EXPECT_TRUE(Has(heads[1], "\r\nif-none-match: *\r\n")) << heads[1];
  EXPECT_TRUE(Has(heads[1], "if-none-match;")) << "not signed: " << heads[1];
  EXPECT_TRUE(heads[2].starts_with("head /bkt/k ")) << heads[2];
  EXPECT_TRUE(store.Health().reachable);
}

// The object a Delete saw (version 5) is replaced by version 10 before the
// DELETE, which is made on condition of the ETag it saw: 412, and the HEAD
// that follows sees the newer version, which stays.
TEST(S3ColdStore, DeleteLosingARaceToANewerVersionKeepsIt) {
  ScriptedS3 s3({ScriptedS3::Answer("200 OK", "ETag: \"e5\"\r\nx-amz-meta-version: 5\r\n"),
                 ScriptedS3::Answer("412 Precondition Failed"),
                 ScriptedS3::Answer("200 OK", "ETag: \"e10\"\r\nx-amz-meta-version: 10\r\n")});
  S3ColdStore store = StoreOn(s3);
  Status s = store.Delete("K", 5);
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_TRUE(heads[1].starts_with("delete /bkt/k ")) << heads[1];
  EXPECT_TRUE(Has(heads[1], "\r\nif-match: \"e5\"\r\n")) << heads[1];
  EXPECT_TRUE(heads[2].starts_with("head /bkt/k ")) << heads[2];
}

// An endpoint that answers 501 to a conditional PUT gets the same PUT
// without its condition.
TEST(S3ColdStore, PutFallsBackToUnconditionalOn501) {
  ScriptedS3 s3({ScriptedS3::Answer("200 OK", "ETag: \"e1\"\r\nx-amz-meta-version: 1\r\n"),
                 ScriptedS3::Answer("501 Not Implemented"), ScriptedS3::Answer("200 OK")});
  S3ColdStore store = StoreOn(s3);
  testing::TempDir dir;
  std::ofstream(dir / "body") << "new";
  Status s = store.Put({"K", "n.txt", 2, 123, "{}", 3, "\"x\"", 5}, dir / "body");
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_TRUE(Has(heads[1], "\r\nif-match: \"e1\"\r\n")) << heads[1];
  EXPECT_TRUE(heads[2].starts_with("put /bkt/k ")) << heads[2];
  EXPECT_FALSE(Has(heads[2], "if-match")) << heads[2];
}

// CompleteMultipartUpload answers 200 at once, then only whitespace while S3
// assembles the object, for longer than a transfer's low-speed limit allows:
// the upload waits for the result instead of giving up and sending it again.
// The answers to a one-part multipart upload of a new key: HEAD (absent),
// CreateMultipartUpload (upload u1), UploadPart, then `completions` in turn,
// and 500 to anything after them.
std::vector<std::string> OnePartUpload(const std::vector<std::string>& completions) {
  std::vector<std::string> answers{ScriptedS3::Answer("404 Not Found"),
                                   ScriptedS3::Answer("200 OK", "", "<UploadId>u1</UploadId>"),
                                   ScriptedS3::Answer("200 OK", "ETag: \"p1\"\r\n")};
  answers.insert(answers.end(), completions.begin(), completions.end());
  answers.push_back(ScriptedS3::Answer("500 Internal Server Error"));
  return answers;
}

// Puts a 5-byte body of key K through a store on `s3` whose multipart
// threshold is 4 bytes.
Status PutInParts(const ScriptedS3& s3, S3Options options) {
  options.multipart_threshold = 4;
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
  testing::TempDir dir;
  std::ofstream(dir / "body") << "large";
  return store.Put({"K", "n.txt", 2, 123, "{}", 5, "\"x\"", 5}, dir / "body");
}

TEST(S3ColdStore, ASlowMultipartAssemblyIsWaitedFor) {
  const std::string p(1, ScriptedS3::kPause);
  ScriptedS3 s3(OnePartUpload({ScriptedS3::Answer(
      "200 OK", "",
      " " + p + " " + p + " " + p + " " + p + " " + p + "<CompleteMultipartUploadResult/>")}));
  S3Options options = OptionsFor(s3);
  options.low_speed_seconds = 1;
  Status s = PutInParts(s3, options);
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_TRUE(heads[3].starts_with("post /bkt/k?uploadid=u1 ")) << heads[3];
}

// CompleteMultipartUpload answered 200 with an error AWS calls passing: the
// same completion is asked again, not the upload aborted and redone.
TEST(S3ColdStore, APassingErrorOfACompletionIsAskedAgain) {
  ScriptedS3 s3(OnePartUpload(
      {ScriptedS3::Answer("200 OK", "",
                          "<Error><Code>InternalError</Code><Message>try again</Message></Error>"),
       ScriptedS3::Answer("200 OK", "", "<CompleteMultipartUploadResult/>")}));
  Status s = PutInParts(s3, OptionsFor(s3));
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 5u);
  EXPECT_TRUE(heads[3].starts_with("post /bkt/k?uploadid=u1 ")) << heads[3];
  EXPECT_TRUE(heads[4].starts_with("post /bkt/k?uploadid=u1 ")) << heads[4];
}

// A 409 ConditionalRequestConflict (another conditional write of the key in
// flight) is decided again after a fresh HEAD, as a 412 is.
TEST(S3ColdStore, AConditionalConflictIsDecidedAgain) {
  ScriptedS3 s3({ScriptedS3::Answer("404 Not Found"),
                 ScriptedS3::Answer("409 Conflict", "",
                                    "<Error><Code>ConditionalRequestConflict</Code></Error>"),
                 ScriptedS3::Answer("200 OK", "ETag: \"e10\"\r\nx-amz-meta-version: 10\r\n")});
  S3ColdStore store = StoreOn(s3);
  testing::TempDir dir;
  std::ofstream(dir / "body") << "old";
  Status s = store.Put({"K", "n.txt", 2, 123, "{}", 3, "\"x\"", 5}, dir / "body");
  EXPECT_TRUE(s.ok()) << s.ToString();
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_TRUE(heads[2].starts_with("head /bkt/k ")) << heads[2];
}

TEST(S3ColdStore, PartsGrowSoAnUploadNeedsAtMostTenThousand) {
  EXPECT_EQ(MultipartPartSize(1ull << 30, 16ull << 20), 16ull << 20);
  EXPECT_EQ(MultipartPartSize(1ull << 30, 1), 5ull << 20);           // S3's minimum part
  EXPECT_EQ(MultipartPartSize(1ull << 30, 8ull << 30), 5ull << 30);  // and maximum
  const uint64_t huge = 400ull << 30;  // 400 GiB: 25,600 parts of 16 MiB
  const uint64_t part = MultipartPartSize(huge, 16ull << 20);
  EXPECT_LE((huge + part - 1) / part, kMaxParts);
  EXPECT_GT((huge + part - 2) / (part - 1), kMaxParts - 1);  // no larger than needed
}

// A key with dot segments is sent as signed, not normalised by curl.
TEST(S3ColdStore, DotSegmentsOfAKeyAreSentAsSigned) {
  ScriptedS3 s3({ScriptedS3::Answer("404 Not Found")});
  S3ColdStore store = StoreOn(s3);
  EXPECT_TRUE(store.Delete("a/./b/../c", 5).ok());
  ASSERT_EQ(s3.heads().size(), 1u);
  EXPECT_TRUE(s3.heads()[0].starts_with("head /bkt/a/./b/../c ")) << s3.heads()[0];
}

// An endpoint that names its scheme's default port: curl sends the Host
// header without it, so the request is signed without it too.
TEST(S3ColdStore, TheDefaultPortIsLeftOutOfTheSignedHost) {
  for (const auto& [endpoint, shown] : std::vector<std::pair<std::string, std::string>>{
           {"http://127.0.0.1:80", "http://127.0.0.1/bkt"},
           {"https://s3.example.com:443/", "https://s3.example.com/bkt"},
           {"http://127.0.0.1:443", "http://127.0.0.1:443/bkt"},
           {"https://[::1]:8443", "https://[::1]:8443/bkt"}}) {
    S3Options options;
    options.bucket = "bkt";
    options.endpoint = endpoint;
    options.path_style = true;
    S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
    EXPECT_NE(store.Describe().find(" at " + shown + " "), std::string::npos)
        << endpoint << ": " << store.Describe();
  }
}

// S3 refuses a session token that ran out: the store reads its credentials
// again and, as they changed, sends the call once more with the new ones.
TEST(S3ColdStore, ExpiredCredentialsAreReadAgainAndTheCallSentOnceMore) {
  const std::string expired = ScriptedS3::Answer(
      "400 Bad Request", "", "<Error><Code>ExpiredToken</Code><Message>old</Message></Error>");
  ScriptedS3 s3({expired, ScriptedS3::Answer("204 No Content")});
  S3Options options = OptionsFor(s3);
  int reads = 0;
  options.credential_source = [&reads]() -> Result<AwsCredentials> {
    ++reads;
    return AwsCredentials{"AKIDROTATED", "secret2", "token2", "test"};
  };
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "token1", "test"});
  Status s = store.Get(
      "K", [](const ColdObjectMeta&) { return Status::Ok(); },
      [](std::span<const char>) { return Status::Ok(); });
  EXPECT_EQ(reads, 1);
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 2u) << s.ToString();
  EXPECT_TRUE(Has(heads[0], "credential=akidexample/")) << heads[0];
  EXPECT_TRUE(Has(heads[0], "x-amz-security-token: token1")) << heads[0];
  EXPECT_TRUE(Has(heads[1], "credential=akidrotated/")) << heads[1];
  EXPECT_TRUE(Has(heads[1], "x-amz-security-token: token2")) << heads[1];
}

// Calls in flight when the credentials ran out: the first one refused reads
// them again; one refused after that is sent again with what is there now,
// since it was signed with older ones, without reading the source again.
TEST(S3ColdStore, ACallSignedWithReplacedCredentialsIsSentAgain) {
  const std::string p(1, ScriptedS3::kPause);
  ScriptedS3 s3(
      {ScriptedS3::Answer("400 Bad Request", "", p + "<Error><Code>ExpiredToken</Code></Error>"),
       ScriptedS3::Answer("204 No Content")});
  S3Options options = OptionsFor(s3);
  options.credentials_retry = std::chrono::hours(1);
  std::atomic<int> reads = 0;
  options.credential_source = [&reads]() -> Result<AwsCredentials> {
    ++reads;
    return AwsCredentials{"AKIDROTATED", "secret2", "", "test"};
  };
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
  auto call = std::async(std::launch::async, [&] {
    return store.Get(
        "K", [](const ColdObjectMeta&) { return Status::Ok(); },
        [](std::span<const char>) { return Status::Ok(); });
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (s3.heads().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(s3.heads().empty()) << "the GET never sent its HEAD";
  ASSERT_TRUE(store.ReloadCredentials().ok());  // another call's reload, or SIGHUP
  Status s = call.get();
  const auto heads = s3.heads();
  ASSERT_GE(heads.size(), 2u) << s.ToString();
  EXPECT_TRUE(Has(heads[0], "credential=akidexample/")) << heads[0];
  EXPECT_TRUE(Has(heads[1], "credential=akidrotated/")) << heads[1];
  EXPECT_EQ(reads, 1) << "read again although another call had";
}

// Put and Delete begin with a HEAD, whose 400 for an expired token has no
// body: a GET names the cause, and the credentials are read again.
TEST(S3ColdStore, AnExpiredTokenRefusingAHeadIsNamedAndReadAgain) {
  ScriptedS3 s3(
      {ScriptedS3::Answer("400 Bad Request"),
       ScriptedS3::Answer("400 Bad Request", "", "<Error><Code>ExpiredToken</Code></Error>"),
       ScriptedS3::Answer("404 Not Found"), ScriptedS3::Answer("200 OK")});
  S3Options options = OptionsFor(s3);
  int reads = 0;
  options.credential_source = [&reads]() -> Result<AwsCredentials> {
    ++reads;
    return AwsCredentials{"AKIDROTATED", "secret2", "token2", "test"};
  };
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "token1", "test"});
  testing::TempDir dir;
  std::ofstream(dir / "body") << "new";
  Status s = store.Put({"K", "n.txt", 2, 123, "{}", 3, "\"x\"", 5}, dir / "body");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(reads, 1);
  const auto heads = s3.heads();
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_TRUE(heads[1].starts_with("get /bkt/k ")) << heads[1];
  EXPECT_TRUE(heads[2].starts_with("head /bkt/k ")) << heads[2];
  EXPECT_TRUE(Has(heads[2], "credential=akidrotated/")) << heads[2];
}

// Credentials read again but unchanged: no second call (a wrong key stays
// wrong), and the error names S3's code.
TEST(S3ColdStore, UnchangedCredentialsAreNotTriedTwice) {
  ScriptedS3 s3({ScriptedS3::Answer(
      "403 Forbidden", "",
      "<Error><Code>InvalidAccessKeyId</Code><Message>unknown key</Message></Error>")});
  S3Options options = OptionsFor(s3);
  int reads = 0;
  options.credential_source = [&reads]() -> Result<AwsCredentials> {
    ++reads;
    return AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"};
  };
  S3ColdStore store(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
  Status s = store.Delete("K", 5);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("InvalidAccessKeyId"), std::string::npos) << s.ToString();
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(s3.heads().size(), 2u);  // the HEAD, and the GET that names the cause
}

// No credentials at start: calls read the source again (at most once per
// credentials_retry) and work once it has them.
TEST(S3ColdStore, CredentialsMissingAtStartAreReadAgainLater) {
  ScriptedS3 s3({ScriptedS3::Answer("204 No Content")});
  S3Options options = OptionsFor(s3);
  options.credentials_retry = std::chrono::milliseconds(0);
  bool written = false;
  options.credential_source = [&written]() -> Result<AwsCredentials> {
    if (!written) return Status::NotFound("no credentials yet");
    return AwsCredentials{"AKIDLATE", "secret", "", "test"};
  };
  S3ColdStore store(options, Status::NotFound("no credentials yet"));
  EXPECT_EQ(store.CheckBucket().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(s3.heads().empty());
  written = true;
  EXPECT_TRUE(store.CheckBucket().ok());
  ASSERT_EQ(s3.heads().size(), 1u);
  EXPECT_TRUE(Has(s3.heads()[0], "credential=akidlate/")) << s3.heads()[0];
}

// A caller's refusal of the answer (on_meta) ends the Get at once: one
// request, no retry, and S3 is not thought unreachable for it.
TEST(S3ColdStore, CallersRefusalIsFinal) {
  ScriptedS3 s3({ScriptedS3::Answer("200 OK", "x-amz-meta-version: 7\r\n", "hello")});
  S3ColdStore store = StoreOn(s3);
  Status s = store.Get(
      "K", [](const ColdObjectMeta&) { return Status::Unavailable("holds another version"); },
      [](std::span<const char>) { return Status::Ok(); });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "holds another version");
  EXPECT_EQ(s3.heads().size(), 1u);
  EXPECT_TRUE(store.Health().reachable);
  EXPECT_EQ(store.counters().retries.load(), 0u);
}

}  // namespace
}  // namespace objstore
