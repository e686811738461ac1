// What moto cannot show: the socket options of the S3 client's own
// connections. A one-shot HTTP server in this process answers one GET; while
// the request is open it finds the client's socket among the process's
// descriptors (the one whose peer is the server) and reads its SO_RCVBUF.
#include "coldstore/s3_cold_store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

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

}  // namespace
}  // namespace objstore
