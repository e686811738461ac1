// TestNode: a real objstore process for C++ tests that drive a node through the
// client library. It runs the built binary on free loopback ports with its own
// temporary directories (state, files, cold store) and a log file, waits until
// the node answers a ping, and stops it (SIGTERM, SIGKILL after 10 s) when
// destroyed, so no test leaves a process behind.
//
// Thread safety: one owner thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "objstore/client.h"

namespace objstore::testing {

// A loopback port nobody listens on right now (the kernel's pick for port 0)
// and not handed out before by this process: two nodes made before either
// starts must not get the same one. Another process may still take it before
// the node binds it; TestNode::Start notices that and picks again.
inline int FreeLoopbackPort() {
  static std::mutex mu;
  static std::set<int> handed_out;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    const int port = ntohs(addr.sin_port);
    std::lock_guard lock(mu);
    if (handed_out.insert(port).second) return port;
  }
}

class TestNode {
 public:
  explicit TestNode(std::string binary)
      : binary_(std::move(binary)), port_(FreeLoopbackPort()), private_port_(FreeLoopbackPort()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "objstore-node-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    for (const char* sub : {"state", "files", "cold"})
      std::filesystem::create_directory(dir_ + "/" + sub);
  }
  ~TestNode() {
    Stop();
    std::error_code ec;
    if (!std::getenv("OBJSTORE_KEEP_TMP")) std::filesystem::remove_all(dir_, ec);
  }
  TestNode(const TestNode&) = delete;
  TestNode& operator=(const TestNode&) = delete;

  // Starts the node (on the same ports every time once it has run) and waits
  // up to 10 s for it to answer a ping. Returns an empty string on success,
  // else what went wrong and the log. Before its first successful start, a
  // node whose port another process took meanwhile gets new ports and is
  // started again (up to 3 times); a ping answered while the node's own log
  // does not say it listens on its port came from someone else and is not
  // taken for an answer.
  std::string Start() {
    for (int attempt = 1;; ++attempt) {
      std::string error = StartOnce();
      if (error.empty()) {
        started_ = true;
        return "";
      }
      if (started_ || attempt == 3 || error.find("Address already in use") == std::string::npos) {
        return error;
      }
      port_ = FreeLoopbackPort();
      private_port_ = FreeLoopbackPort();
    }
  }

  // SIGTERM and wait (SIGKILL after 10 s). Returns the wait status, or -1 when
  // the node was not running.
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return status;
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::string state_dir() const { return dir_ + "/state"; }
  std::string files_dir() const { return dir_ + "/files"; }
  std::string cold_dir() const { return dir_ + "/cold"; }
  const std::string& dir() const { return dir_; }

  std::string LogTail() const {
    std::string log = Log();
    return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
  }

 private:
  std::string Log() const {
    std::ifstream in(dir_ + "/node.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string StartOnce() {
    const size_t log_start = Log().size();
    const std::string listening = "listening on 127.0.0.1:" + std::to_string(port_) + " ";
    std::vector<std::string> args = {binary_,
                                     "--public-addr",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--private-addr",
                                     "127.0.0.1:" + std::to_string(private_port_),
                                     "--state-dir",
                                     state_dir(),
                                     "--files-dir",
                                     files_dir(),
                                     "--cold-dir",
                                     cold_dir(),
                                     "--threads",
                                     "2"};
    pid_ = ::fork();
    if (pid_ == 0) {
      int log = ::open((dir_ + "/node.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    client::ClientOptions options;
    options.url = url();
    options.connect_timeout = std::chrono::milliseconds(500);
    options.io_timeout = std::chrono::milliseconds(1000);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "objstore exited during start-up (status " + std::to_string(status) + ")\n" +
               LogTail();
      }
      client::Client probe(options);
      if (probe.Ping().ok() && Log().find(listening, log_start) != std::string::npos) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Stop();
    return "objstore did not answer a ping within 10 s\n" + LogTail();
  }

  std::string binary_;
  std::string dir_;
  int port_;
  int private_port_;
  pid_t pid_ = -1;
  bool started_ = false;  // once it has run, the node keeps its ports
};

}  // namespace objstore::testing
