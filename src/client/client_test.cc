// The client library against a real node process (the built objstore binary).
#include "objstore/client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "base/loopback_listener.h"
#include "client/test_node.h"

namespace objstore::client {
namespace {

using objstore::testing::TestNode;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Local ports of this machine's established TCP connections to `port` on
// loopback, from /proc/net/tcp: which client connections a node has.
std::set<int> ConnectionsTo(int port) {
  std::set<int> local_ports;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state != "01") continue;  // ESTABLISHED
    if (std::stoi(remote.substr(remote.find(':') + 1), nullptr, 16) == port) {
      local_ports.insert(std::stoi(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return local_ports;
}

using objstore::testing::LoopbackListener;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error = node_.Start();
    ASSERT_EQ(error, "");
    ClientOptions options;
    options.url = node_.url();
    client_ = std::make_unique<Client>(options);
  }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "%s\n", node_.LogTail().c_str());
  }

  std::string NewId() {
    auto id = client_->NewId();
    EXPECT_TRUE(id.ok()) << id.error().ToString();
    return id.ok() ? *id : "";
  }

  TestNode node_{OBJSTORE_NODE_BINARY};
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, PutGetMetaRoundTrip) {
  const std::string id = NewId();
  ASSERT_EQ(id.size(), 26u);
  const std::string body = Pattern(300'000, 1);
  PutOptions put;
  put.level = 1;
  put.name = "report.txt";
  put.user_meta = {{"owner", "ops"}, {"note", "caf\xc3\xa9"}};
  auto stored = client_->Put(id, body, put);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->id, id);
  EXPECT_EQ(stored->size, body.size());
  EXPECT_EQ(stored->consistency, 1);
  EXPECT_EQ(stored->cold, "stored");

  std::string got;
  auto info = client_->Get(id, [&](std::string_view b) {
    got.append(b);
    return true;
  });
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(got, body);
  EXPECT_EQ(info->http_status, 200);
  EXPECT_EQ(info->content_length, body.size());
  EXPECT_EQ(info->name, "report.txt");
  EXPECT_EQ(info->etag, stored->etag);
  EXPECT_EQ(info->content_type, "text/plain; charset=utf-8");

  auto meta = client_->Meta(id);
  ASSERT_TRUE(meta.ok()) << meta.error().ToString();
  EXPECT_EQ(meta->user_meta, put.user_meta);
  EXPECT_EQ(meta->name, "report.txt");
  EXPECT_FALSE(meta->deleted);
}

TEST_F(ClientTest, RangesAndFiles) {
  TestNode& node = node_;
  const std::string id = NewId();
  const std::string body = Pattern(1'000'000, 2);
  const std::string src = node.dir() + "/src.bin";
  std::ofstream(src, std::ios::binary) << body;
  std::vector<uint64_t> progress;
  PutOptions put;
  put.progress = [&](uint64_t done, std::optional<uint64_t> total) {
    EXPECT_EQ(total, body.size());
    progress.push_back(done);
  };
  auto stored = client_->PutFile(id, src, put);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), body.size());
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));

  const std::string out = node.dir() + "/out.bin";
  auto whole = client_->GetToFile(id, out);
  ASSERT_TRUE(whole.ok()) << whole.error().ToString();
  EXPECT_EQ(ReadFile(out), body);

  const std::pair<const char*, std::string> cases[] = {
      {"10-19", body.substr(10, 10)},
      {"999990-", body.substr(999990)},
      {"-5", body.substr(body.size() - 5)},
  };
  for (const auto& [spec, expected] : cases) {
    GetOptions options;
    auto range = ByteRange::Parse(spec);
    ASSERT_TRUE(range.ok()) << spec;
    options.range = *range;
    auto part = client_->GetToFile(id, out, options);
    ASSERT_TRUE(part.ok()) << spec << ": " << part.error().ToString();
    EXPECT_EQ(part->http_status, 206) << spec;
    EXPECT_EQ(ReadFile(out), expected) << spec;
  }
  GetOptions beyond;
  beyond.range = *ByteRange::Parse("2000000-");
  auto unsatisfiable = client_->GetToFile(id, out, beyond);
  ASSERT_FALSE(unsatisfiable.ok());
  EXPECT_EQ(unsatisfiable.error().http_status, 416);
  EXPECT_EQ(ReadFile(out), body.substr(body.size() - 5)) << "a failed get left the file alone";
}

TEST_F(ClientTest, ChunkedStreamPut) {
  const std::string id = NewId();
  const std::string body = Pattern(700'001, 3);
  size_t pos = 0;
  SourceFn source = [&](char* buf, size_t capacity) -> Result<size_t> {
    size_t n = std::min({capacity, body.size() - pos, size_t{65'537}});
    std::memcpy(buf, body.data() + pos, n);
    pos += n;
    return n;
  };
  auto stored = client_->Put(id, source, std::nullopt);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->size, body.size());
  std::string got;
  ASSERT_TRUE(client_
                  ->Get(id,
                        [&](std::string_view b) {
                          got.append(b);
                          return true;
                        })
                  .ok());
  EXPECT_EQ(got, body);

  // A source that fails aborts the upload with its own error; nothing is stored.
  const std::string other = NewId();
  SourceFn failing = [](char*, size_t) -> Result<size_t> {
    return Error{Error::Kind::kLocalIo, 0, "", "disk read failed"};
  };
  auto aborted = client_->Put(other, failing, std::nullopt);
  ASSERT_FALSE(aborted.ok());
  EXPECT_EQ(aborted.error().kind, Error::Kind::kLocalIo);
  EXPECT_TRUE(client_->Meta(other).error().IsNotFound());
}

TEST_F(ClientTest, ErrorsCarryTheNodesMessage) {
  auto bad_id = client_->Meta("notaulid");
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.error().kind, Error::Kind::kHttp);
  EXPECT_EQ(bad_id.error().http_status, 400);
  EXPECT_EQ(bad_id.error().code, "bad_id");
  EXPECT_FALSE(bad_id.error().message.empty());

  // An id that would change the request itself is refused before it is sent.
  for (const std::string bad : {"a b", "x\r\nX-Meta-ConsistencyLevel: 2", "../stats", "", "a%2F"}) {
    auto sink = [](std::string_view) { return true; };
    for (const Error& e : {client_->Meta(bad).error(), client_->Delete(bad).error(),
                           client_->RaiseLevel(bad, 1).error(), client_->Get(bad, sink).error(),
                           client_->Put(bad, std::string_view("x")).error()}) {
      EXPECT_EQ(e.kind, Error::Kind::kInvalid) << bad << ": " << e.ToString();
    }
  }

  const std::string id = NewId();
  auto missing = client_->Get(id, [](std::string_view) { return true; });
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().IsNotFound());
  EXPECT_EQ(missing.error().code, "not_found");

  // Refused before the body (100-continue): the node's answer, not a broken pipe.
  PutOptions bad_level;
  bad_level.level = 7;
  auto refused = client_->Put(id, Pattern(5'000'000, 4), bad_level);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "bad_level") << refused.error().ToString();

  // The next call works (on a new connection: the refused one was closed).
  auto stored = client_->Put(id, std::string_view("x"));
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
}

TEST_F(ClientTest, DeleteRaiseLevelAndFetch) {
  const std::string id = NewId();
  ASSERT_TRUE(client_->Put(id, std::string_view("level zero")).ok());
  auto raised = client_->RaiseLevel(id, 1);
  ASSERT_TRUE(raised.ok()) << raised.error().ToString();
  EXPECT_EQ(raised->consistency, 1);
  EXPECT_EQ(raised->cold, "stored");
  auto lowered = client_->RaiseLevel(id, 0);
  ASSERT_FALSE(lowered.ok());
  EXPECT_EQ(lowered.error().code, "level_lowered");

  // A node that lost its state and files restores the object from the cold store.
  ASSERT_NE(node_.Stop(), -1);
  for (const auto& dir : {node_.state_dir(), node_.files_dir()}) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directory(dir);
  }
  ASSERT_EQ(node_.Start(), "");
  Client fresh(ClientOptions{node_.url()});
  std::string got;
  auto sink = [&](std::string_view b) {
    got.append(b);
    return true;
  };
  EXPECT_TRUE(fresh.Get(id, sink).error().IsNotFound()) << "without the fetch flag";
  GetOptions fetch;
  fetch.fetch = true;
  auto fetched = fresh.Get(id, sink, fetch);
  ASSERT_TRUE(fetched.ok()) << fetched.error().ToString();
  EXPECT_TRUE(fetched->fetched);
  EXPECT_EQ(got, "level zero");

  auto deleted = fresh.Delete(id);
  ASSERT_TRUE(deleted.ok()) << deleted.error().ToString();
  EXPECT_TRUE(deleted->deleted);
  auto gone = fresh.Get(id, sink, fetch);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, "deleted");
  auto tombstone = fresh.Meta(id);
  ASSERT_TRUE(tombstone.ok());
  EXPECT_TRUE(tombstone->deleted);
}

TEST_F(ClientTest, KeepsOneConnectionAndReconnectsAfterRestart) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client_->NewId().ok());
  const std::string id = NewId();
  ASSERT_TRUE(client_->Put(id, Pattern(2'000'000, 5)).ok());
  ASSERT_TRUE(client_->Get(id, [](std::string_view) { return true; }).ok());
  ASSERT_TRUE(client_->StatsJson().ok());
  EXPECT_EQ(ConnectionsTo(node_.port()).size(), 1u);

  // A restarted node closed the connection under the client: the next call
  // notices and reconnects by itself.
  ASSERT_NE(node_.Stop(), -1);
  ASSERT_EQ(node_.Start(), "");
  auto after = client_->Meta(id);
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  EXPECT_EQ(after->size, 2'000'000u);
}

// Another process took the node's port between the pick and the start: the
// node is started on new ports rather than failing (or a ping answered by
// that process being taken for the node's).
TEST(TestNodeStart, PicksOtherPortsWhenItsPortWasTaken) {
  TestNode node(OBJSTORE_NODE_BINARY);
  const int taken = node.port();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(taken));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_EQ(node.Start(), "");
  EXPECT_NE(node.port(), taken);
  EXPECT_TRUE(Client(ClientOptions{node.url()}).Ping().ok());
  ::close(fd);
}

TEST(ClientErrors, ConnectionRefusedAndTimeout) {
  ClientOptions refused;
  refused.url = "http://127.0.0.1:" + std::to_string(objstore::testing::FreeLoopbackPort());
  auto r = Client(refused).NewId();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kConnection);

  // A listener that never answers: the read times out.
  LoopbackListener listener;
  ClientOptions silent;
  silent.url = listener.url();
  silent.io_timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto t = Client(silent).Ping();
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().kind, Error::Kind::kTimeout) << t.error().ToString();
  EXPECT_LT(took, std::chrono::seconds(3));

  ClientOptions bad_url;
  bad_url.url = "https://example.com";
  auto b = Client(bad_url).Ping();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind, Error::Kind::kInvalid);
}

// A scripted loopback server: answers the first request on a connection, then
// closes that connection when the second request arrives, without answering;
// answers again on the next connection. That is the race of a node closing an
// idle keep-alive connection just as the client reuses it.
TEST(ClientErrors, RequestOnAConnectionClosedUnderItIsSentAgain) {
  LoopbackListener listener;
  listener.BoundWaits(5);  // bounds every accept and read of the script (inherited)

  auto read_request = [](int fd) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  auto answer = [](int fd, const std::string& body) {
    std::string out =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  };
  int connections = 0;
  std::thread server([&] {
    int first = ::accept(listener.fd(), nullptr, nullptr);
    if (first < 0) return;
    ++connections;
    if (read_request(first)) answer(first, "node-a");
    read_request(first);
    ::close(first);  // the second request on this connection gets no answer
    int second = ::accept(listener.fd(), nullptr, nullptr);
    if (second < 0) return;
    ++connections;
    if (read_request(second)) answer(second, "node-b");
    ::close(second);
  });
  ClientOptions options;
  options.url = listener.url();
  options.io_timeout = std::chrono::seconds(5);
  Client client(options);
  auto a = client.Ping();
  auto b = client.Ping();
  server.join();
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(*a, "node-a");
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  EXPECT_EQ(*b, "node-b");
  EXPECT_EQ(connections, 2);
}

TEST(ByteRangeTest, ParsesTheThreeForms) {
  EXPECT_EQ(ByteRange::Parse("0-9")->ToHeader(), "bytes=0-9");
  EXPECT_EQ(ByteRange::Parse("bytes=5-")->ToHeader(), "bytes=5-");
  EXPECT_EQ(ByteRange::Parse("-100")->ToHeader(), "bytes=-100");
  for (const char* bad : {"", "-", "-0", "9-1", "a-b", "1-2-3", "12", " 1-2"}) {
    EXPECT_FALSE(ByteRange::Parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace objstore::client
