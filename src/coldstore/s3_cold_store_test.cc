// What moto cannot show, against servers scripted in this process: the socket
// options of the client's own connections (a one-shot server finds the
// client's socket among the process's descriptors, the one whose peer is the
// server, and reads its SO_RCVBUF), and how many requests a call made.
#include "coldstore/s3_cold_store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/loopback_listener.h"
#include "base/unique_fd.h"

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

// ---------------------------------------------------------------- scripted S3

// Answers each request (one per connection: every answer closes it) with the
// next of `answers`, the last one repeated, and keeps the request heads. A
// request body is read whole (by Content-Length) before the answer.
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

  static std::string Answer(const std::string& status_line, const std::string& headers = "",
                            const std::string& body = "") {
    return "HTTP/1.1 " + status_line + "\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
           body;
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
      const std::string& answer = answers_[std::min(n, answers_.size() - 1)];
      (void)!::write(conn.get(), answer.data(), answer.size());
    }
  }

  testing::LoopbackListener listener_;
  const std::vector<std::string> answers_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::string> heads_;  // lower-cased; guarded by mu_
  std::thread thread_;
};

S3ColdStore StoreOn(const ScriptedS3& server) {
  S3Options options;
  options.bucket = "bkt";
  options.endpoint = server.url();
  options.path_style = true;
  options.max_attempts = 3;
  options.base_backoff = std::chrono::milliseconds(1);
  return S3ColdStore(options, AwsCredentials{"AKIDEXAMPLE", "secret", "", "test"});
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
