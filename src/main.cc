// objstore: one node of the near-cache. main only parses flags and wires the
// subsystems together (docs/ARCHITECTURE.md); all behaviour lives in them.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "api/public_api.h"
#include "base/clock.h"
#include "base/disk.h"
#include "base/failpoint.h"
#include "base/finite_number.h"
#include "base/random.h"
#include "cluster/cluster.h"
#include "coldstore/aws_credentials.h"
#include "coldstore/dir_cold_store.h"
#include "coldstore/s3_cold_store.h"
#include "http/server.h"
#include "node/node.h"

#ifndef OBJSTORE_VERSION
#define OBJSTORE_VERSION "dev"
#endif

namespace {

struct Flags {
  int debug = 0;
  std::string nodes;
  std::string tag = "default";
  std::string private_addr = "0.0.0.0:11999";
  std::string debug_addr;
  std::string public_addr = "0.0.0.0:10999";
  std::string state_dir = "state/";
  std::string files_dir = "files/";
  std::string cold_dir = "coldstore/";
  std::string region = "us-east-1";
  std::string bucket;
  std::string s3_endpoint;
  bool s3_path_style = false;
  uint64_t s3_multipart_threshold = 64ull << 20;
  uint64_t s3_part_size = 16ull << 20;
  uint64_t s3_receive_buffer = 0;
  std::string s3_ca_bundle;
  int cold_fetch_streams = 4;
  uint64_t cold_fetch_part_size = 8ull << 20;
  size_t threads = 0;
  size_t blocking_threads = 16;
  uint64_t max_body_size = 5ull << 30;
  uint64_t max_size = 0;
  std::string eviction = objstore::kDefaultPolicy;
  uint32_t max_header_size = 16384;
  uint32_t max_header_count = 100;
  size_t max_connections = 10000;
  size_t max_connections_per_client = 0;
  double rate_limit = 0;
  double rate_burst = 0;
  uint32_t max_requests_per_connection = 0;
  std::string auth_tokens_file;
  double header_timeout = 10;
  double idle_timeout = 60;
  double shutdown_grace = 10;
  double retry_interval = 5;
  std::string advertise_addr;
  std::string cluster_secret;
  double gossip_interval = 0.5;
  double suspect_timeout = 3;
  double sync_interval = 10;
  double peer_timeout = 2;
  double tombstone_purge_after = 86400;
};

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

// Splits a listen address "host:port" (IPv6 as "[::1]:port"; an empty host is
// every IPv4 address). A host name is resolved here, once, to its first
// address (IPv4 first), as Go's net.Listen did for the original. False, with
// `why`, for a port that is not a number in 0..65535 or a name that does not
// resolve.
bool SplitHostPort(const std::string& addr, std::string* host, uint16_t* port, std::string* why) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    *why = "expected host:port";
    return false;
  }
  std::string h = addr.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = addr.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(p) > 65535) {
    *why = "the port must be a number from 0 to 65535";
    return false;
  }
  *port = static_cast<uint16_t>(std::stoul(p));
  if (h.empty()) {
    *host = "0.0.0.0";
    return true;
  }
  // A numeric host resolves to itself without a lookup.
  boost::asio::io_context io;
  boost::system::error_code ec;
  auto found = boost::asio::ip::tcp::resolver(io).resolve(h, "", ec);
  if (ec || found.empty()) {
    *why = "cannot resolve '" + h + "': " + (ec ? ec.message() : "no address");
    return false;
  }
  auto pick = found.begin();
  for (auto it = found.begin(); it != found.end(); ++it) {
    if (it->endpoint().address().is_v4()) {
      pick = it;
      break;
    }
  }
  *host = pick->endpoint().address().to_string();
  return true;
}

// --help in the original's shape: usage, description, then one line per option
// with its default and its environment variable.
class OriginalStyleHelp : public CLI::Formatter {
 public:
  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const override {
    std::string out = "\nUsage: objstore [OPTIONS]\n\n" + app->get_description() + "\n\nOptions:\n";
    for (const CLI::Option* opt : app->get_options()) {
      std::string names;
      for (const auto& s : opt->get_snames()) names += "-" + s + ", ";
      for (const auto& l : opt->get_lnames()) names += "--" + l + ", ";
      names.resize(names.size() - 2);
      if (!opt->get_default_str().empty()) names += "=\"" + opt->get_default_str() + "\"";
      std::string text = opt->get_description();
      if (!opt->get_envname().empty()) text += " ($" + opt->get_envname() + ")";
      out += fmt::format("  {:<36}{}\n", names, text);
    }
    return out;
  }
};

// Unsigned options: CLI11 reads "-1" with strtoull, i.e. as 2^64 - 1 (no body
// limit, 2^64 threads); refused here, before any size suffix is read.
const CLI::Validator kNotNegative(
    [](std::string& value) -> std::string {
      const size_t first = value.find_first_not_of(" \t");
      if (first != std::string::npos && value[first] == '-') return "a negative number";
      return "";
    },
    "NOT NEGATIVE");

// Durations in seconds, at most ten years: a longer one (a "never" such as
// 1e10) would overflow the clock's nanoseconds into the past.
const CLI::Range kDuration(0.0, 10 * 365 * 86400.0);

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"A multi-master distributed caching layer for Amazon S3.\nVersion " OBJSTORE_VERSION,
               "objstore"};
  app.formatter(std::make_shared<OriginalStyleHelp>());
  app.add_option("-d,--debug", f.debug, "Debug level to use, 0 or 1")
      ->envname("APP_DEBUG_LEVEL")
      ->capture_default_str()
      ->check(CLI::Range(0, 1));
  app.add_option("-N,--nodes", f.nodes,
                 "A list of cluster nodes to join for discovery and journal updates")
      ->envname("APP_CLUSTER_NODES");
  app.add_option("-T,--tag", f.tag, "Cluster tag name")
      ->envname("APP_CLUSTER_TAGNAME")
      ->capture_default_str();
  app.add_option("--private-addr", f.private_addr,
                 "Listen address for cluster discovery and private API")
      ->envname("NET_PRIVATE_ADDR")
      ->capture_default_str();
  app.add_option("--advertise-addr", f.advertise_addr,
                 "Private address other nodes use to reach this one (default: --private-addr)")
      ->envname("NET_ADVERTISE_ADDR");
  app.add_option("--cluster-secret", f.cluster_secret,
                 "Shared secret that signs every private call (empty: calls are not signed)")
      ->envname("APP_CLUSTER_SECRET");
  app.add_option("--gossip-interval", f.gossip_interval,
                 "Seconds between failure-detector probes of cluster members")
      ->envname("APP_GOSSIP_INTERVAL")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::Range(0.01, 60.0));
  app.add_option("--suspect-timeout", f.suspect_timeout,
                 "Seconds a suspected member has to answer before it is declared dead")
      ->envname("APP_SUSPECT_TIMEOUT")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--sync-interval", f.sync_interval,
                 "Seconds between anti-entropy journal exchanges with a random member")
      ->envname("APP_SYNC_INTERVAL")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::Range(0.05, 86400.0));
  app.add_option("--peer-timeout", f.peer_timeout,
                 "Seconds any call to another node may take (bounds public requests too)")
      ->envname("APP_PEER_TIMEOUT")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::Range(0.05, 600.0));
  app.add_option("--tombstone-purge-after", f.tombstone_purge_after,
                 "Seconds a tombstone every member holds is kept (deleted ids answer 404 with "
                 "X-Meta-Deleted meanwhile); 0 keeps tombstones forever")
      ->envname("APP_TOMBSTONE_PURGE_AFTER")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(kDuration);
  app.add_option("--debug-addr", f.debug_addr,
                 "Accepted for compatibility with the original, not served (a warning says so): "
                 "stats and metrics are on the public API")
      ->envname("NET_DEBUG_ADDR");
  app.add_option("--public-addr", f.public_addr, "Listen address for the public HTTP API")
      ->envname("NET_PUBLIC_ADDR")
      ->capture_default_str();
  app.add_option("--state-dir", f.state_dir, "Directory where to keep local state and journals")
      ->envname("APP_STATE_DIR")
      ->capture_default_str();
  app.add_option("--files-dir", f.files_dir, "Directory where to keep local files")
      ->envname("APP_FILES_DIR")
      ->capture_default_str();
  app.add_option("--cold-dir", f.cold_dir,
                 "Directory used as the cold store when no bucket is set (embedded default)")
      ->envname("APP_COLD_DIR")
      ->capture_default_str();
  app.add_option("-R,--region", f.region, "Amazon S3 region name")
      ->envname("S3_REGION_NAME")
      ->capture_default_str();
  app.add_option("-B,--bucket", f.bucket, "Amazon S3 bucket name (empty: use --cold-dir)")
      ->envname("S3_BUCKET_NAME");
  app.add_option("--s3-endpoint", f.s3_endpoint,
                 "S3-compatible endpoint, e.g. http://127.0.0.1:9000 (also AWS_ENDPOINT_URL_S3, "
                 "AWS_ENDPOINT_URL); empty: AWS")
      ->envname("S3_ENDPOINT");
  app.add_flag("--s3-path-style", f.s3_path_style,
               "Path-style bucket addressing (endpoint/bucket/key), for custom endpoints")
      ->envname("S3_PATH_STYLE");
  app.add_option("--s3-multipart-threshold", f.s3_multipart_threshold,
                 "Objects this large or larger are uploaded in parts (K, M, G suffixes)")
      ->envname("S3_MULTIPART_THRESHOLD")
      ->check(kNotNegative)
      ->default_str("64M")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--s3-part-size", f.s3_part_size, "Size of multipart upload parts, at least 5M")
      ->envname("S3_PART_SIZE")
      ->check(kNotNegative)
      ->default_str("16M")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--s3-ca-bundle", f.s3_ca_bundle,
                 "PEM file of the certificate authorities an https endpoint's certificate must "
                 "chain to (e.g. a private CA); empty: the system's")
      ->envname("AWS_CA_BUNDLE");
  app.add_option("--s3-receive-buffer", f.s3_receive_buffer,
                 "Socket receive buffer of downloads from S3 (SO_RCVBUF, at most "
                 "net.core.rmem_max; K, M suffixes); 0: the kernel's autotuning. A few MiB "
                 "speed up misses of large objects from a nearby endpoint")
      ->envname("S3_RECEIVE_BUFFER")
      ->check(kNotNegative)
      ->default_str("0")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  app.add_option("--cold-fetch-streams", f.cold_fetch_streams,
                 "Connections a miss of an object larger than --cold-fetch-part-size reads its "
                 "parts over at once (1: one GET for the whole object)")
      ->envname("APP_COLD_FETCH_STREAMS")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--cold-fetch-part-size", f.cold_fetch_part_size,
                 "Size of the parts of a miss fetched over parallel connections (K, M suffixes)")
      ->envname("APP_COLD_FETCH_PART_SIZE")
      ->check(kNotNegative)
      ->default_str("8M")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{64} << 10, uint64_t{5} << 30));
  app.add_option("--threads", f.threads, "Event-loop threads for the public API (0: one per core)")
      ->envname("APP_THREADS")
      ->check(kNotNegative)
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--blocking-threads", f.blocking_threads,
                 "Threads for blocking work (fsync, journal commits), and as many again for "
                 "cold fetches and again for cold-store uploads and deletes. Half of the first "
                 "may wait for writes in flight to make room in the budget; with 1, none does "
                 "(a PUT that finds the budget full of writes in flight gets 507 at once)")
      ->envname("APP_BLOCKING_THREADS")
      ->check(kNotNegative)
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-body-size", f.max_body_size,
                 "Largest object accepted, bytes (K, M, G, T suffixes)")
      ->envname("APP_MAX_BODY_SIZE")
      ->check(kNotNegative)
      ->default_str("5G")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--max-size", f.max_size,
                 "Byte budget for cached bodies (K, M, G, T suffixes); past it, bodies the cold "
                 "store holds are evicted. Default: 90% of the free disk at start plus the bodies "
                 "already stored, half of that when --cold-dir is on the same disk")
      ->envname("APP_MAX_SIZE")
      ->check(kNotNegative)
      ->transform(CLI::AsSizeValue(false));
  std::vector<std::string> evictions = objstore::PolicyNames();
  evictions.push_back(objstore::kNoEviction);
  app.add_option("--eviction", f.eviction,
                 "Eviction policy: s3fifo, lru, sieve, fifo, or none (never evict; 507 when full)")
      ->envname("APP_EVICTION")
      ->capture_default_str()
      ->check(CLI::IsMember(evictions));
  app.add_option("--max-header-size", f.max_header_size, "Largest request header, bytes")
      ->envname("NET_MAX_HEADER_SIZE")
      ->check(kNotNegative)
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 20));
  app.add_option("--max-header-count", f.max_header_count, "Most header fields in a request")
      ->envname("NET_MAX_HEADER_COUNT")
      ->check(kNotNegative)
      ->capture_default_str()
      ->check(CLI::Range(8, 10000));
  app.add_option("--max-connections", f.max_connections,
                 "Most open connections, each of the public and private API (0: no cap); "
                 "more get 503")
      ->envname("NET_MAX_CONNECTIONS")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--max-connections-per-client", f.max_connections_per_client,
                 "Most open public connections from one client IP (0: no cap); more get 503")
      ->envname("NET_MAX_CONNECTIONS_PER_CLIENT")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--rate-limit", f.rate_limit,
                 "Public requests per second allowed from one client IP (0: no limit); "
                 "more get 429 with Retry-After")
      ->envname("NET_RATE_LIMIT")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rate-burst", f.rate_burst,
                 "Requests one client IP may send at once above --rate-limit "
                 "(0: one second's worth)")
      ->envname("NET_RATE_BURST")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-requests-per-connection", f.max_requests_per_connection,
                 "Public requests served on one keep-alive connection before it closes (0: no cap)")
      ->envname("NET_MAX_REQUESTS_PER_CONNECTION")
      ->check(kNotNegative)
      ->capture_default_str();
  app.add_option("--auth-tokens-file", f.auth_tokens_file,
                 "File of bearer tokens the public API requires, one per line, 'ro' after a "
                 "read-only one (empty: no authentication); reloaded on SIGHUP and on change")
      ->envname("APP_AUTH_TOKENS_FILE");
  app.add_option("--header-timeout", f.header_timeout,
                 "Seconds a client has to send a whole request header")
      ->envname("NET_HEADER_TIMEOUT")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::PositiveNumber)
      ->check(kDuration);
  app.add_option("--idle-timeout", f.idle_timeout,
                 "Seconds an idle keep-alive connection or a stalled transfer is kept")
      ->envname("NET_IDLE_TIMEOUT")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::PositiveNumber)
      ->check(kDuration);
  app.add_option("--shutdown-grace", f.shutdown_grace,
                 "Seconds requests in flight get to finish at SIGTERM/SIGINT")
      ->envname("APP_SHUTDOWN_GRACE")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(kDuration);
  app.add_option("--cold-retry-interval", f.retry_interval,
                 "Seconds between retries of pending cold-store uploads and deletes")
      ->envname("APP_COLD_RETRY_INTERVAL")
      ->capture_default_str()
      ->check(objstore::kFiniteNumber)
      ->check(CLI::Range(0.001, 86400.0));
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(f.debug >= 1 ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] %v");

  // Signals are taken synchronously by the main thread (sigwait); every
  // other thread inherits the mask and never sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // reloads the token file and the S3 credentials
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  objstore::http::ServerOptions server_options;
  std::string why;
  if (!SplitHostPort(f.public_addr, &server_options.host, &server_options.port, &why)) {
    spdlog::error("bad --public-addr '{}': {}", f.public_addr, why);
    return 2;
  }
  objstore::cluster::ClusterOptions cluster_options;
  if (!SplitHostPort(f.private_addr, &cluster_options.private_host, &cluster_options.private_port,
                     &why)) {
    spdlog::error("bad --private-addr '{}': {}", f.private_addr, why);
    return 2;
  }
  cluster_options.seeds = SplitList(f.nodes);
  if (cluster_options.seeds.empty()) {
    spdlog::info("no additional cluster nodes specified, current node starts solo");
  }
  if (!f.debug_addr.empty()) {
    spdlog::warn(
        "--debug-addr {} is accepted for compatibility and not served: see "
        "/api/v1/stats and /metrics on the public address",
        f.debug_addr);
  }
  cluster_options.tag = f.tag;
  cluster_options.secret = f.cluster_secret;
  cluster_options.advertise_addr = f.advertise_addr.empty() ? f.private_addr : f.advertise_addr;
  cluster_options.public_addr = f.public_addr;
  cluster_options.gossip_interval = Millis(f.gossip_interval);
  cluster_options.suspect_timeout = Millis(f.suspect_timeout);
  cluster_options.sync_interval = Millis(f.sync_interval);
  cluster_options.peer_timeout = Millis(f.peer_timeout);
  cluster_options.tombstone_purge_after = Millis(f.tombstone_purge_after);
  cluster_options.max_connections = f.max_connections;
  // For tests: a small answer bound makes a truncated exchange cheap to build.
  if (auto records = objstore::ProcessEnv("OBJSTORE_SYNC_ANSWER_RECORDS")) {
    cluster_options.max_records_per_answer =
        std::max<size_t>(1, std::strtoull(records->c_str(), nullptr, 10));
    spdlog::warn("OBJSTORE_SYNC_ANSWER_RECORDS: anti-entropy answers carry at most {} records",
                 cluster_options.max_records_per_answer);
  }

  std::unique_ptr<objstore::api::TokenAuth> auth;
  if (!f.auth_tokens_file.empty()) {
    auto opened = objstore::api::TokenAuth::Open(f.auth_tokens_file);
    if (!opened.ok()) {
      spdlog::error("--auth-tokens-file: {}", opened.status().message());
      return 2;
    }
    auth = std::move(opened).value();
    spdlog::info("public API requires bearer tokens: {} in {}", auth->size(), auth->path());
  }

  // Fault injection for tests: this node's wall clock shifted (HLC and
  // timestamps; timeouts and the private API's replay window use real time).
  int64_t clock_offset_ms = 0;
  if (auto offset = objstore::ProcessEnv("OBJSTORE_CLOCK_OFFSET_MS")) {
    clock_offset_ms = std::strtoll(offset->c_str(), nullptr, 10);
    spdlog::warn("OBJSTORE_CLOCK_OFFSET_MS: this node's clock is shifted by {} ms",
                 clock_offset_ms);
  }
  objstore::SystemClock clock(clock_offset_ms * 1'000'000);
  if (std::string armed = objstore::failpoint::Init(); !armed.empty()) {
    spdlog::warn("OBJSTORE_FAILPOINTS: this process kills itself at {}", armed);
  }
  objstore::SystemClock real_clock;
  objstore::SystemRandom random;
  objstore::Disk& disk = objstore::DefaultDisk();
  objstore::NodeOptions node_options;
  node_options.files_dir = f.files_dir;
  node_options.state_dir = f.state_dir;
  if (f.bucket.empty()) node_options.cold_dir = f.cold_dir;
  node_options.blocking_threads = f.blocking_threads;
  node_options.max_body_bytes = f.max_body_size;
  node_options.max_size_bytes = f.max_size;
  node_options.eviction_policy = f.eviction;
  node_options.cold_fetch_streams = f.cold_fetch_streams;
  node_options.cold_fetch_part_size = f.cold_fetch_part_size;
  if (objstore::Status s = objstore::Node::CheckDirectories(node_options); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  std::unique_ptr<objstore::ColdStore> cold;
  objstore::S3ColdStore* s3_store = nullptr;  // owned by the node; SIGHUP reloads its credentials
  if (f.bucket.empty()) {
    auto dir = objstore::DirColdStore::Open(f.cold_dir, disk);
    if (!dir.ok()) {
      spdlog::error("cannot open the cold store directory {}: {}", f.cold_dir,
                    dir.status().ToString());
      return 1;
    }
    spdlog::info("no bucket configured: cold store is the {}", (*dir)->Describe());
    cold = std::move(dir).value();
  } else {
    objstore::S3Options s3;
    s3.bucket = f.bucket;
    s3.region = f.region;
    s3.endpoint = f.s3_endpoint;
    for (const char* var : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
      if (s3.endpoint.empty()) s3.endpoint = objstore::ProcessEnv(var).value_or("");
    }
    s3.path_style = f.s3_path_style;
    s3.multipart_threshold = f.s3_multipart_threshold;
    s3.part_size = f.s3_part_size;  // MultipartPartSize keeps it within S3's bounds
    s3.receive_buffer = static_cast<int>(f.s3_receive_buffer);
    // Checked only with a bucket: a machine-wide AWS_CA_BUNDLE naming a
    // missing file must not stop a node that never talks to S3.
    if (std::error_code ec;
        !f.s3_ca_bundle.empty() && !std::filesystem::is_regular_file(f.s3_ca_bundle, ec)) {
      spdlog::error("--s3-ca-bundle (AWS_CA_BUNDLE) {} is not a readable file{}", f.s3_ca_bundle,
                    ec ? ": " + ec.message() : std::string());
      return 2;
    }
    s3.ca_bundle = f.s3_ca_bundle;
    s3.credential_source = [] { return objstore::LoadAwsCredentials(); };
    auto credentials = objstore::LoadAwsCredentials();
    if (credentials.ok()) {
      spdlog::info("S3 credentials from {}", credentials->source);
    } else {
      spdlog::error("{}; level 1 and 2 objects will be refused with 503 until this is fixed",
                    credentials.status().message());
    }
    auto store = std::make_unique<objstore::S3ColdStore>(s3, std::move(credentials));
    spdlog::info("cold store is the {}", store->Describe());
    // A node serves level 0 whatever S3's state: a failed check only warns.
    if (objstore::Status s = store->CheckBucket(); !s.ok()) {
      spdlog::warn("S3 bucket check failed: {}", s.message());
    }
    s3_store = store.get();
    cold = std::move(store);
  }

  auto node = objstore::Node::Open(node_options, clock, random, disk, std::move(cold));
  if (!node.ok()) {
    spdlog::error("cannot open the node: {}", node.status().ToString());
    return 1;
  }
  spdlog::info("node ID: {}", (*node)->node_id());

  objstore::api::ApiOptions api_options;
  api_options.version = OBJSTORE_VERSION;
  api_options.build = std::string("g++ ") + __VERSION__ + ", built " + __DATE__;
  api_options.auth = auth.get();
  auto cluster =
      std::make_unique<objstore::cluster::Cluster>(**node, cluster_options, random, real_clock);
  cluster->RegisterMetrics((*node)->metrics());
  if (objstore::Status s = cluster->Start(); !s.ok()) {
    spdlog::error("cannot start the cluster service: {}", s.ToString());
    return 1;
  }
  objstore::api::PublicApi api(**node, api_options, cluster.get());

  server_options.threads =
      f.threads ? f.threads : std::max(1u, std::thread::hardware_concurrency());
  server_options.max_header_bytes = f.max_header_size;
  server_options.max_header_count = f.max_header_count;
  server_options.max_body_bytes = f.max_body_size;
  server_options.header_timeout = Millis(f.header_timeout);
  server_options.idle_timeout = Millis(f.idle_timeout);
  server_options.limits = {.max_connections = f.max_connections,
                           .max_connections_per_client = f.max_connections_per_client,
                           .rate = f.rate_limit,
                           .burst = f.rate_burst};
  server_options.max_requests_per_connection = f.max_requests_per_connection;
  auto server = std::make_unique<objstore::http::HttpServer>(
      server_options, [&api](objstore::http::Exchange& ex) { return api.Handle(ex); });
  objstore::http::HttpServer* public_server = server.get();
  (*node)->metrics().AddCounterFn(
      "objstore_http_limited_total", "Public requests and connections refused by a client limit.",
      [public_server] { return public_server->rate_limited(); }, "reason=\"rate\"");
  (*node)->metrics().AddCounterFn(
      "objstore_http_limited_total", "Public requests and connections refused by a client limit.",
      [public_server] { return public_server->connections_refused(); }, "reason=\"connections\"");
  if (objstore::Status s = server->Start(); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  spdlog::info("listening on {}:{} ({} threads)", server_options.host, server->port(),
               server_options.threads);

  // Pending cold-store work (uploads that got a 503, deletes) is retried from
  // the journal, which holds it durably; this thread only paces the retries.
  std::mutex retry_mu;
  std::condition_variable retry_cv;
  bool stopping = false;
  // While the cold store keeps failing, the pause doubles up to 32 intervals
  // (exponential backoff), and falls back to one interval after a success.
  std::thread retry([&] {
    std::unique_lock lock(retry_mu);
    int backoff = 1;
    while (!retry_cv.wait_for(lock, Millis(f.retry_interval * backoff), [&] { return stopping; })) {
      const auto counts = (*node)->Stats().journal;
      const uint64_t pending = counts.pending_cold + counts.pending_deletes;
      if (pending == 0) {
        backoff = 1;
        continue;
      }
      lock.unlock();
      size_t left = (*node)->RetryPendingColdWork();
      lock.lock();
      if (left == 0) {
        backoff = 1;
        spdlog::info("cold-store queue drained ({} objects)", pending);
      } else {
        backoff = left < pending ? 1 : std::min(backoff * 2, 32);
        spdlog::info("{} objects still wait for the cold store; next try in {:.1f} s", left,
                     f.retry_interval * backoff);
      }
    }
  });

  int sig = 0;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    if (auth) {
      (void)auth->Reload();  // logs the outcome; a bad file keeps the old tokens
    } else {
      spdlog::info("SIGHUP: no --auth-tokens-file, no tokens to reload");
    }
    // Logs the outcome; credentials that cannot be read keep the old ones.
    if (s3_store != nullptr) (void)s3_store->ReloadCredentials();
  }
  spdlog::info("signal {} received: finishing requests in flight", sig);
  server->Stop(Millis(f.shutdown_grace));
  cluster->Stop();
  {
    std::lock_guard lock(retry_mu);
    stopping = true;
  }
  retry_cv.notify_all();
  retry.join();
  // Blocking work still running (an upload, a peer's body being pulled)
  // posts its completion to the server's or the cluster's event loop: let it
  // finish while those loops exist. Node's destructor joins them again (a no-op).
  (*node)->cold_write_pool().join();
  (*node)->blocking_pool().join();
  // Destroyed in this order: public requests still parked may hold peer
  // streams (cluster), and everything holds the node.
  server.reset();
  cluster.reset();
  node->reset();  // joins the blocking pool, then closes the journal
  spdlog::info("stopped cleanly");
  return 0;
}
