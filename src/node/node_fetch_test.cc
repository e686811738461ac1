// Node against cold stores a test scripts: which bytes readers of a cold fetch
// may send while the transfer runs, how broken or changed transfers end, and
// an upload that something overtakes while it runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/random.h"
#include "base/test_util.h"
#include "coldstore/cold_store.h"
#include "coldstore/dir_cold_store.h"
#include "coldstore/scripted_cold_store.h"
#include "node/node.h"
#include "store/atomic_file.h"

namespace objstore {
namespace {

using testing::ScriptedColdStore;
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

constexpr size_t kPiece = 16 * 1024;  // libcurl's largest piece

// `size` bytes of a pattern that repeats at no power of two.
std::string PatternBody(size_t size) {
  std::string body(size, '\0');
  for (size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
  return body;
}

// The etag objstore gives `body`, by writing it through an AtomicFile in `dir`.
std::string EtagOf(const std::string& dir, const std::string& body) {
  auto file = AtomicFile::Create(DefaultDisk(), dir);
  if (!file.ok()) return "";
  (void)(*file)->Append(body);
  return (*file)->ETag();  // the temporary is removed with the object
}

// A node in a temporary directory, with the cold store (and disk) a test gives.
struct NodeFixture {
  testing::TempDir dir;
  SystemClock clock;
  SystemRandom random;

  // The cold store's metadata of `body` under `key`: with objstore's etag, or
  // none (an object written by something else, checked by size).
  ColdObjectMeta Meta(const std::string& key, const std::string& body, bool with_etag) const {
    ColdObjectMeta meta;
    meta.key = key;
    meta.size = body.size();
    meta.version = HlcTimestamp::From(1'700'000'000'000, 0).packed;
    if (with_etag) meta.etag = EtagOf(dir.path(), body);
    return meta;
  }
  NodeOptions Options() const {
    NodeOptions options;
    options.files_dir = dir / "files";
    options.state_dir = dir / "state";
    options.blocking_threads = 2;
    return options;
  }
  Result<std::unique_ptr<Node>> Open(std::unique_ptr<ColdStore> cold, Disk& disk = DefaultDisk()) {
    return Node::Open(Options(), clock, random, disk, std::move(cold));
  }
  Result<std::unique_ptr<Node>> Open(const NodeOptions& options, std::unique_ptr<ColdStore> cold) {
    return Node::Open(options, clock, random, DefaultDisk(), std::move(cold));
  }
};

// Waits (at most 10 s) until no fetch of `key` runs on `node`.
bool FetchEnded(Node& node, const std::string& key) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (node.FetchInFlight(key) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return node.FetchInFlight(key) == nullptr;
}

// Runs one fetch of `key` on `node` to its end and returns how it ended.
ColdFetch::Progress FetchToEnd(Node& node, const std::string& key) {
  std::shared_ptr<ColdFetch> fetch = node.FetchFromCold(key, /*restore_unknown=*/true);
  EXPECT_TRUE(FetchEnded(node, key)) << "the fetch did not end in 10 s";
  return fetch->Current();
}

// The body `node` stored for `key`: its record must say it is here.
std::string StoredBody(Node& node, const std::string& key) {
  Node::RecordPtr rec = node.Lookup(key);
  if (rec == nullptr || !rec->local_body) return "<no local body>";
  auto fd = node.OpenBody(*rec);
  if (!fd.ok()) return "<" + fd.status().ToString() + ">";
  std::string stored(rec->size, '\0');
  if (::pread(fd->get(), stored.data(), stored.size(), 0) != static_cast<ssize_t>(stored.size())) {
    return "<short read>";
  }
  return stored;
}

// Pieces: a full one and a short one (a read that ended early: published), then
// a full one and the short one that completes the body. The bytes of the
// completing read become sendable only with the verification, in one step.
TEST(NodeColdFetch, TheReadThatCompletesTheBodyIsSentOnlyWithTheVerification) {
  NodeFixture fx;
  const std::vector<size_t> pieces{kPiece, 1000, kPiece, 6232};
  size_t total = 0;
  for (size_t n : pieces) total += n;
  const std::string body = PatternBody(total);
  const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/false);
  auto store = std::make_unique<ScriptedColdStore>(meta, body);
  ScriptedColdStore* pieces_store = store.get();
  pieces_store->pieces = pieces;
  auto node = fx.Open(std::move(store));
  ASSERT_TRUE(node.ok()) << node.status().ToString();

  std::vector<uint64_t> sendable_after_piece;
  pieces_store->after_piece = [&] {
    std::shared_ptr<ColdFetch> fetch = (*node)->FetchInFlight(meta.key);
    sendable_after_piece.push_back(fetch ? fetch->Current().sendable : ~0ull);
  };
  const ColdFetch::Progress done = FetchToEnd(**node, meta.key);

  // Full pieces are gathered; the short one ends a read and is published; the
  // read that completes the body is not, though it ends with a short piece.
  const size_t first_read = kPiece + 1000;
  ASSERT_EQ(sendable_after_piece.size(), pieces.size());
  EXPECT_EQ(sendable_after_piece[0], 0u);
  EXPECT_EQ(sendable_after_piece[1], first_read);
  EXPECT_EQ(sendable_after_piece[2], first_read);
  EXPECT_EQ(sendable_after_piece[3], first_read)
      << "the completing read was published before the check";

  EXPECT_TRUE(done.status.ok()) << done.status.ToString();
  EXPECT_TRUE(done.complete);
  EXPECT_EQ(done.sendable, total);
  EXPECT_EQ(StoredBody(**node, meta.key), body);
}

// The real disk, except that while held every file fsync waits for Release:
// a commit stopped between the verification of a fetched body and its record.
class HeldFsyncDisk final : public testing::PassThroughDisk {
 public:
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  int Fsync(int fd) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !held_; });
    lock.unlock();
    return real_.Fsync(fd);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
};

// A GET right after the miss that fetched a body finds it verified while the
// commit's fsyncs run: VerifiedFetch hands it over, whole, for the record the
// journal holds (none yet, for a restored id), and not for another version;
// not for an object without our etag (its etag comes with the commit). The
// hits it hands over reach the eviction policy at the commit.
TEST(NodeColdFetch, AVerifiedBodyIsServableBeforeItsCommit) {
  for (bool with_etag : {true, false}) {
    SCOPED_TRACE(with_etag ? "etag from objstore" : "object written by something else");
    NodeFixture fx;
    HeldFsyncDisk disk;
    const std::string body = PatternBody(3 * kPiece + 100);
    const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAW", body, with_etag);
    auto store = std::make_unique<ScriptedColdStore>(meta, body);
    store->pieces = {kPiece};
    auto node = fx.Open(std::move(store), disk);
    ASSERT_TRUE(node.ok()) << node.status().ToString();

    disk.Hold();
    std::shared_ptr<ColdFetch> fetch = (*node)->FetchFromCold(meta.key, /*restore_unknown=*/true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!fetch->Current().verified && fetch->Current().status.ok() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const ColdFetch::Progress held = fetch->Current();
    ASSERT_TRUE(held.status.ok()) << held.status.ToString();
    ASSERT_TRUE(held.verified) << "the body was not verified in 10 s";
    EXPECT_FALSE(held.complete) << "the commit ran past a held fsync";
    EXPECT_EQ((*node)->Lookup(meta.key), nullptr) << "recorded before its body was synced";

    std::shared_ptr<ColdFetch> servable = (*node)->VerifiedFetch(meta.key, nullptr);
    if (with_etag) {
      ASSERT_EQ(servable, fetch);
      EXPECT_EQ(servable->record().etag, meta.etag);
      std::string got(body.size(), '\0');
      ASSERT_EQ(::pread(servable->fd(), got.data(), got.size(), 0),
                static_cast<ssize_t>(got.size()));
      EXPECT_EQ(got, body);
      ObjectRecord same = fetch->record();
      EXPECT_EQ((*node)->VerifiedFetch(meta.key, &same), fetch);
      ObjectRecord newer = same;
      newer.version = HlcTimestamp::From(1'700'000'000'001, 0);
      EXPECT_EQ((*node)->VerifiedFetch(meta.key, &newer), nullptr) << "served another version";
      ObjectRecord deleted = same;
      deleted.deleted = true;
      EXPECT_EQ((*node)->VerifiedFetch(meta.key, &deleted), nullptr) << "served a tombstone";
    } else {
      EXPECT_EQ(servable, nullptr) << "served without the etag the commit will add";
    }

    disk.Release();
    ASSERT_TRUE(FetchEnded(**node, meta.key)) << "the fetch did not end in 10 s";
    EXPECT_TRUE(fetch->Current().complete);
    EXPECT_EQ((*node)->VerifiedFetch(meta.key, nullptr), nullptr);
    EXPECT_EQ(StoredBody(**node, meta.key), body);
    ASSERT_NE((*node)->Lookup(meta.key), nullptr);
    EXPECT_EQ((*node)->Lookup(meta.key)->etag, EtagOf(fx.dir.path(), body));
    // The two GETs served before the commit reach the eviction policy with it.
    EXPECT_EQ((*node)->capacity().Stats().policy_hits, with_etag ? 2u : 0u);
  }
}

// A transfer broken off mid-body goes on from its first missing byte when the
// resumed answer is of the same object; not when the object changed meanwhile,
// and not for an object without our etag (nothing would tell the two apart).
TEST(NodeColdFetch, ABrokenTransferResumesFromTheFirstMissingByteOfTheSameObject) {
  const size_t break_at = 40'000;
  const std::string body = PatternBody(100'000);
  enum class Case { kSameObject, kChangedObject, kNoEtag };
  for (Case c : {Case::kSameObject, Case::kChangedObject, Case::kNoEtag}) {
    SCOPED_TRACE(static_cast<int>(c));
    NodeFixture fx;
    const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, c != Case::kNoEtag);
    auto store = std::make_unique<ScriptedColdStore>(meta, body);
    ScriptedColdStore* breaking = store.get();
    breaking->breaks = 1'000;  // every whole-object GET; not the ranges that resume it
    breaking->break_at_offset = 0;
    breaking->break_after = break_at;
    if (c == Case::kChangedObject) {
      breaking->changed_meta = meta;
      breaking->changed_meta->etag = EtagOf(fx.dir.path(), body + "x");
    }
    auto node = fx.Open(std::move(store));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    const ColdFetch::Progress done = FetchToEnd(**node, meta.key);
    Node::RecordPtr rec = (*node)->Lookup(meta.key);

    if (c == Case::kSameObject) {
      EXPECT_TRUE(done.status.ok()) << done.status.ToString();
      EXPECT_EQ(breaking->ranges, (Ranges{{break_at, body.size() - break_at}}));
      EXPECT_EQ((*node)->Stats().cold_fetch_resumes, 1u);
      EXPECT_EQ(StoredBody(**node, meta.key), body);
    } else {
      EXPECT_FALSE(done.status.ok());
      const Ranges resumed =
          c == Case::kChangedObject ? Ranges{{break_at, body.size() - break_at}} : Ranges{};
      EXPECT_EQ(breaking->ranges, resumed);
      EXPECT_TRUE(rec == nullptr || !rec->local_body) << "a body kept from two objects";
    }
  }
}

// An object the journal knows, larger than one part, is fetched in parts over
// parallel ranged GETs (the first part streamed, a broken part resumed) and
// stored byte-identical; a part of another object fails the fetch and keeps
// no body; one stream means one whole GET.
TEST(NodeColdFetch, ALargeKnownObjectComesInPartsOverParallelRangedGets) {
  const uint64_t part = 1 << 20, total = 5 * part + 1234;
  const std::string body = PatternBody(total);
  enum class Case { kParts, kChangedPart, kOneStream };
  for (Case c : {Case::kParts, Case::kChangedPart, Case::kOneStream}) {
    SCOPED_TRACE(static_cast<int>(c));
    NodeFixture fx;
    const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/true);
    NodeOptions options = fx.Options();
    options.cold_fetch_part_size = part;
    options.cold_fetch_streams = c == Case::kOneStream ? 1 : 3;
    {  // the first fetch restores an unknown id: one whole GET, then a record
      auto node = fx.Open(options, std::make_unique<ScriptedColdStore>(meta, body));
      ASSERT_TRUE(node.ok()) << node.status().ToString();
      ASSERT_TRUE(FetchToEnd(**node, meta.key).status.ok());
      EXPECT_EQ((*node)->Stats().cold_fetch_parts, 0u);
    }
    std::filesystem::remove_all(fx.dir / "files");  // evicted: the record stays
    auto store = std::make_unique<ScriptedColdStore>(meta, body);
    ScriptedColdStore* ranged = store.get();
    ranged->pause = std::chrono::microseconds(300);  // a connection of limited rate
    ranged->breaks = 1;
    ranged->break_at_offset = 2 * part;
    ranged->break_after = 300'000;
    if (c == Case::kChangedPart) {
      ranged->changed_meta = meta;
      ranged->changed_meta->etag = "\"another\"";
      ranged->changed_at_offset = 4 * part;
    }
    auto node = fx.Open(options, std::move(store));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    ASSERT_NE((*node)->Lookup(meta.key), nullptr);
    ASSERT_FALSE((*node)->Lookup(meta.key)->local_body);

    const ColdFetch::Progress done = FetchToEnd(**node, meta.key);
    Node::RecordPtr rec = (*node)->Lookup(meta.key);
    ASSERT_NE(rec, nullptr);
    std::lock_guard lock(ranged->mu);
    if (c == Case::kOneStream) {
      EXPECT_TRUE(done.status.ok()) << done.status.ToString();
      EXPECT_EQ(ranged->gets, 1);
      EXPECT_TRUE(ranged->ranges.empty());
      EXPECT_TRUE(rec->local_body);
      continue;
    }
    EXPECT_EQ(ranged->gets, 0);
    EXPECT_GE(ranged->most_running, 2) << "the parts were not fetched at once";
    if (c == Case::kChangedPart) {
      EXPECT_FALSE(done.status.ok());
      EXPECT_FALSE(rec->local_body) << "a body kept from two objects";
      continue;
    }
    EXPECT_TRUE(done.status.ok()) << done.status.ToString();
    std::sort(ranged->ranges.begin(), ranged->ranges.end());
    const Ranges want{
        {0, part},        {part, part},     {2 * part, part}, {2 * part + 300'000, part - 300'000},
        {3 * part, part}, {4 * part, part}, {5 * part, 1234}};
    EXPECT_EQ(ranged->ranges, want);
    EXPECT_LE(ranged->most_running, 3);
    EXPECT_EQ((*node)->Stats().cold_fetch_parts, 5u);
    EXPECT_EQ((*node)->Stats().cold_fetch_resumes, 1u);
    EXPECT_TRUE(StoredBody(**node, meta.key) == body) << "the stored body differs";
  }
}

// A copy without our etag (written to the bucket by another tool) of an object
// the journal knows is checked against the record's etag: another object of
// the same size there fails the fetch before its last byte is sendable.
TEST(NodeColdFetch, AnEtaglessCopyOfAKnownObjectIsCheckedAgainstItsRecord) {
  NodeFixture fx;
  const std::string body = PatternBody(3 * kPiece + 100);
  const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/false);
  {  // restored once: the record's etag is the hash of these bytes
    auto node = fx.Open(std::make_unique<ScriptedColdStore>(meta, body));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    ASSERT_TRUE(FetchToEnd(**node, meta.key).status.ok());
  }
  std::filesystem::remove_all(fx.dir / "files");  // evicted: the record stays
  std::string other = body;
  other[other.size() - 1] ^= 1;  // rewritten in the bucket since
  auto store = std::make_unique<ScriptedColdStore>(meta, other);
  // The transfer waits in its first piece until a reader waits for the last
  // byte, so that the reader sees what the fetch releases, not how it ended.
  std::promise<void> reader_waits;
  std::shared_future<void> reader_waiting = reader_waits.get_future().share();
  store->after_piece = [reader_waiting] { reader_waiting.wait_for(std::chrono::seconds(10)); };
  auto node = fx.Open(std::move(store));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  std::shared_ptr<ColdFetch> fetch = (*node)->FetchFromCold(meta.key, /*restore_unknown=*/false);
  boost::asio::io_context io;
  std::optional<ColdFetch::Progress> woken;
  boost::asio::co_spawn(
      io, [&]() -> boost::asio::awaitable<void> { woken = co_await fetch->Wait(body.size() - 1); },
      boost::asio::detached);
  io.poll();  // parked
  reader_waits.set_value();
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(woken.has_value()) << "the reader was not woken";
  EXPECT_FALSE(woken->status.ok());
  EXPECT_FALSE(woken->verified) << "bytes of another object were released as the record's";
  ASSERT_TRUE(FetchEnded(**node, meta.key));
  EXPECT_FALSE((*node)->Lookup(meta.key)->local_body);
}

// Opens a node on `fx` whose cold store holds `body` under `meta`, restores
// that object (unknown to the node) and returns the node, or null.
std::unique_ptr<Node> NodeAfterRestore(NodeFixture& fx, const ColdObjectMeta& meta,
                                       const std::string& body) {
  auto node = fx.Open(std::make_unique<ScriptedColdStore>(meta, body));
  if (!node.ok()) {
    ADD_FAILURE() << node.status().ToString();
    return nullptr;
  }
  const ColdFetch::Progress done = FetchToEnd(**node, meta.key);
  if (!done.status.ok()) {
    ADD_FAILURE() << done.status.ToString();
    return nullptr;
  }
  return std::move(node).value();
}

// An object another tool put in the bucket carries no version of ours: its
// restore is stamped here, by this node, as a PUT would be; a record of
// version 0 (and no maker) would be refused by every peer it is sent to.
TEST(NodeColdFetch, ARestoredObjectWithoutAVersionGetsOneHere) {
  NodeFixture fx;
  const std::string body = PatternBody(1000);
  ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/false);
  meta.version = 0;
  std::unique_ptr<Node> node = NodeAfterRestore(fx, meta, body);
  ASSERT_NE(node, nullptr);
  Node::RecordPtr rec = node->Lookup(meta.key);
  ASSERT_NE(rec, nullptr);
  EXPECT_NE(rec->version.packed, 0u);
  EXPECT_EQ(rec->version_node, node->node_id());
  EXPECT_EQ(StoredBody(*node, meta.key), body);
}

// Such a copy's version comes from its own time, the same on every node: a
// delete made anywhere since (stamped later) wins over any node's restore of
// it, even one that commits after the delete.
TEST(NodeColdFetch, ACopyWithoutAVersionIsStampedFromItsOwnTime) {
  NodeFixture fx;
  const std::string body = PatternBody(1000);
  ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/false);
  meta.version = 0;
  meta.timestamp_ns = 1'700'000'000'123'456'789;  // from Last-Modified
  std::unique_ptr<Node> node = NodeAfterRestore(fx, meta, body);
  ASSERT_NE(node, nullptr);
  Node::RecordPtr rec = node->Lookup(meta.key);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->version, HlcTimestamp::From(1'700'000'000'123, 0));

  ObjectRecord tomb = *rec;  // another node's delete, made after the copy was written
  tomb.deleted = true;
  tomb.version = HlcTimestamp::From(1'700'000'000'124, 0);
  tomb.version_node = "another-node";
  tomb.local_body = false;
  ASSERT_TRUE(node->ApplyRemote({tomb}).ok());
  EXPECT_TRUE(node->Lookup(meta.key)->deleted);
}

// A cold fetch that takes its time (a slow S3) holds no thread that PUTs,
// deletes and commits need: with one blocking thread, blocking work still
// runs while the transfer waits.
TEST(NodeColdFetch, ASlowFetchLeavesTheBlockingPoolFree) {
  NodeFixture fx;
  const std::string body = PatternBody(3 * kPiece);
  const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/true);
  auto store = std::make_unique<ScriptedColdStore>(meta, body);
  store->pieces = {kPiece};
  std::promise<void> transfer_waits;
  std::promise<void> open_gate;
  std::shared_future<void> gate = open_gate.get_future().share();
  bool first = true;
  store->after_piece = [&] {
    if (!std::exchange(first, false)) return;
    transfer_waits.set_value();
    gate.wait_for(std::chrono::seconds(10));
  };
  NodeOptions options = fx.Options();
  options.blocking_threads = 1;
  std::promise<void> ran;  // outlives the node, whose pools run the task at the latest on close
  auto node = fx.Open(options, std::move(store));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  std::shared_ptr<ColdFetch> fetch = (*node)->FetchFromCold(meta.key, /*restore_unknown=*/true);
  ASSERT_EQ(transfer_waits.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  boost::asio::post((*node)->blocking_pool(), [&ran] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(2)), std::future_status::ready)
      << "blocking work waited for a cold transfer";
  open_gate.set_value();
  ASSERT_TRUE(FetchEnded(**node, meta.key)) << "the fetch did not end in 10 s";
  EXPECT_TRUE(fetch->Current().complete) << fetch->Current().status.ToString();
}

// The record of a known object is deleted and its tombstone purged while its
// body's fetch runs: the fetch must not bring the object back as a restore.
TEST(NodeColdFetch, AFetchOutlivedByItsObjectsPurgeDoesNotRestoreIt) {
  NodeFixture fx;
  const std::string body = PatternBody(3 * kPiece);
  const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/true);
  auto store = std::make_unique<ScriptedColdStore>(meta, body);
  store->pieces = {kPiece};
  ScriptedColdStore* scripted = store.get();
  auto node = fx.Open(std::move(store));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  ObjectRecord known;  // another node's object, whose body is only in the cold store
  known.key = meta.key;
  known.size = meta.size;
  known.etag = meta.etag;
  known.version = HlcTimestamp{meta.version};
  known.version_node = "another-node";
  known.consistency = 1;
  known.cold = ColdState::kStored;
  ASSERT_TRUE((*node)->ApplyRemote({known}).ok());

  bool purged = false;
  scripted->after_piece = [&] {
    if (purged) return;
    purged = true;
    auto tomb = (*node)->Delete(meta.key);
    ASSERT_TRUE(tomb.ok()) << tomb.status().ToString();
    ASSERT_TRUE(tomb->to_cold);
    ASSERT_TRUE((*node)->ToColdStore(*tomb->record).cold_status.ok());
    ASSERT_TRUE((*node)->MarkTombstoneStable(*tomb->record, 1).ok());
    auto gone = (*node)->PurgeTombstones({(*node)->Lookup(meta.key)});
    ASSERT_TRUE(gone.ok() && gone->size() == 1u);
  };
  std::shared_ptr<ColdFetch> fetch = (*node)->FetchFromCold(meta.key, /*restore_unknown=*/false);
  ASSERT_TRUE(FetchEnded(**node, meta.key)) << "the fetch did not end in 10 s";
  EXPECT_TRUE(purged);
  EXPECT_EQ(fetch->Current().status.code(), StatusCode::kDeleted)
      << fetch->Current().status.ToString();
  EXPECT_EQ((*node)->Lookup(meta.key), nullptr) << "the fetch brought a purged object back";
}

// A DELETE of a version stamped further ahead than this node's clock follows
// loses to it: refused, and the object (and its body) stays.
TEST(NodeDelete, AVersionTooFarAheadIsNotDeletedInAppearance) {
  NodeFixture fx;
  auto node = fx.Open(std::make_unique<ScriptedColdStore>(ColdObjectMeta{}, ""));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  ObjectRecord ahead;
  ahead.key = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  ahead.size = 3;
  ahead.etag = "\"e\"";
  ahead.version = HlcTimestamp::From(
      static_cast<uint64_t>(fx.clock.NowNanos() / 1'000'000) + 2 * HybridLogicalClock::kMaxAheadMs,
      0);
  ahead.version_node = "another-node";
  ahead.consistency = 1;
  ahead.cold = ColdState::kStored;
  ASSERT_TRUE((*node)->ApplyRemote({ahead}).ok());
  auto deleted = (*node)->Delete(ahead.key);
  EXPECT_EQ(deleted.status().code(), StatusCode::kConflict)
      << (deleted.ok() ? "answered with the record" : deleted.status().ToString());
  ASSERT_NE((*node)->Lookup(ahead.key), nullptr);
  EXPECT_FALSE((*node)->Lookup(ahead.key)->deleted);
}

// Two nodes restored one cold copy: each stamped it with the copy's version
// and its own id. The record of the node whose id wins replaces this one's,
// and the body, the same bytes under the same version's name, stays.
TEST(NodeColdFetch, AnotherRestoreOfTheSameCopyKeepsTheBodyHere) {
  NodeFixture fx;
  const std::string body = PatternBody(1000);
  const ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/true);
  std::unique_ptr<Node> node = NodeAfterRestore(fx, meta, body);
  ASSERT_NE(node, nullptr);
  ObjectRecord theirs = *node->Lookup(meta.key);
  theirs.version_node = "~" + node->node_id();  // sorts after this node's id
  theirs.local_body = false;
  ASSERT_TRUE(node->ApplyRemote({theirs}).ok());
  Node::RecordPtr rec = node->Lookup(meta.key);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->version_node, theirs.version_node);
  EXPECT_EQ(StoredBody(*node, meta.key), body);

  // Another version under the same stamp (other bytes) still retires it.
  ObjectRecord other = theirs;
  other.version_node = "~~" + node->node_id();
  other.etag = "\"other\"";
  ASSERT_TRUE(node->ApplyRemote({other}).ok());
  EXPECT_FALSE(node->Lookup(meta.key)->local_body);
}

// A disk whose first unlink of a path containing `victim` fails (an eviction's
// unlink, here), and which says so. It counts the unlinks of such paths.
class OneFailedUnlinkDisk final : public testing::PassThroughDisk {
 public:
  std::string victim;
  std::promise<std::string> failed;  // the path
  std::atomic<int> unlinks{0};

  int Unlink(const char* path) override {
    if (!victim.empty() && std::string_view(path).find(victim) != std::string_view::npos) {
      ++unlinks;
      if (!failed_once_.exchange(true)) {
        failed.set_value(path);
        return -EIO;
      }
    }
    return PassThroughDisk::Unlink(path);
  }

 private:
  std::atomic<bool> failed_once_{false};
};

// A node on `disk` with a 10'000-byte budget and a directory cold store.
Result<std::unique_ptr<Node>> OpenSmallBudget(NodeFixture& fx, Disk& disk) {
  auto cold = DirColdStore::Open(fx.dir / "cold", DefaultDisk());
  if (!cold.ok()) return cold.status();
  NodeOptions options = fx.Options();
  options.max_size_bytes = 10'000;
  return Node::Open(options, fx.clock, fx.random, disk, std::move(cold).value());
}

// Stores a body (level 1) and then another that takes the budget over its
// watermark: the eviction of the first marks it gone in the journal, and its
// unlink fails, which leaves the file and its 6000 bytes in the budget. Then
// `replace` supersedes that object: the file and its bytes must go.
void ExpectSupersedingRemovesAFailedEvictionsBody(
    const std::function<void(Node&, const std::string& key)>& replace) {
  NodeFixture fx;
  OneFailedUnlinkDisk disk;
  auto node = OpenSmallBudget(fx, disk);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  auto put = [&](const std::string& key, size_t size) {
    auto body = (*node)->BeginPut();
    ASSERT_TRUE(body.ok()) << body.status().ToString();
    ASSERT_TRUE((*body)->Append(std::string(size, 'b')).ok());
    auto out = (*node)->FinishPut(PutSpec{key, "b.bin", 1}, **body);
    ASSERT_TRUE(out.ok() && out->to_cold) << "PUT of " << key;
    ASSERT_TRUE((*node)->ToColdStore(*out->record).cold_status.ok()) << "upload of " << key;
  };
  const std::string victim = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  disk.victim = victim + "@";
  std::future<std::string> failed = disk.failed.get_future();
  ASSERT_NO_FATAL_FAILURE(put(victim, 6000));
  ASSERT_NO_FATAL_FAILURE(put("01ARZ3NDEKTSV4RRFFQ69G5FAW", 5000));
  ASSERT_EQ(failed.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "no eviction tried to unlink " << victim;
  const std::string path = failed.get();
  ASSERT_FALSE((*node)->Lookup(victim)->local_body);
  ASSERT_NO_FATAL_FAILURE(replace(**node, victim));
  EXPECT_FALSE(std::filesystem::exists(path)) << "the body was left behind";
  EXPECT_LE((*node)->capacity().Stats().used_bytes, 5000u) << "its bytes are still counted";
}

// An eviction that marked the body gone in the journal but could not unlink
// it: a delete of the object still removes the file and its bytes from the
// budget, instead of leaving both until a restart.
TEST(NodeDelete, RemovesABodyAFailedEvictionLeftBehind) {
  ExpectSupersedingRemovesAFailedEvictionsBody(
      [](Node& node, const std::string& key) { ASSERT_TRUE(node.Delete(key).ok()); });
}

// The same body left behind: a peer's newer version of the object removes it.
TEST(NodeApplyRemote, ANewerVersionRemovesABodyAFailedEvictionLeftBehind) {
  ExpectSupersedingRemovesAFailedEvictionsBody([](Node& node, const std::string& key) {
    ObjectRecord newer = *node.Lookup(key);
    newer.version = HlcTimestamp::From(newer.version.Millis() + 1000, 0);
    newer.version_node = "another-node";
    ASSERT_TRUE(node.ApplyRemote({newer}).ok());
  });
}

// A record with no body here and none counted in the budget (what
// anti-entropy mostly brings): its newer version, and a delete, unlink nothing.
TEST(NodeApplyRemote, AVersionWithoutABodyHereCostsNoUnlink) {
  NodeFixture fx;
  OneFailedUnlinkDisk disk;
  auto node = OpenSmallBudget(fx, disk);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  ObjectRecord theirs;
  theirs.key = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  theirs.size = 3;
  theirs.etag = "\"e\"";
  theirs.version = HlcTimestamp::From(1'700'000'000'000, 0);
  theirs.version_node = "another-node";
  theirs.consistency = 1;
  theirs.cold = ColdState::kStored;
  disk.victim = theirs.key + "@";
  ASSERT_TRUE((*node)->ApplyRemote({theirs}).ok());
  theirs.version = HlcTimestamp::From(1'700'000'001'000, 0);
  ASSERT_TRUE((*node)->ApplyRemote({theirs}).ok());
  ASSERT_TRUE((*node)->Delete(theirs.key).ok());
  EXPECT_EQ(disk.unlinks.load(), 0) << "a body that is not here was unlinked";
}

// The metadata of a restored object comes from whoever wrote the bucket: a
// name, user meta or etag that would break a response header or JSON is
// dropped, and the body is still served.
TEST(NodeColdFetch, RestoredMetadataThatAPutWouldRefuseIsDropped) {
  NodeFixture fx;
  const std::string body = PatternBody(1000);
  ColdObjectMeta meta = fx.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAV", body, /*with_etag=*/false);
  meta.name = "a\r\nSet-Cookie: s=1";
  meta.user_meta = "{\"k\": 1}";
  meta.etag = "\"x\r\ny\"";
  std::unique_ptr<Node> node = NodeAfterRestore(fx, meta, body);
  ASSERT_NE(node, nullptr);
  Node::RecordPtr rec = node->Lookup(meta.key);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->name, "");
  EXPECT_EQ(rec->user_meta, "{}");
  EXPECT_EQ(rec->etag, EtagOf(fx.dir.path(), body));
  EXPECT_EQ(StoredBody(*node, meta.key), body);

  // Valid metadata passes unchanged (the user meta compacted).
  NodeFixture fx2;
  ColdObjectMeta good = fx2.Meta("01ARZ3NDEKTSV4RRFFQ69G5FAW", body, /*with_etag=*/true);
  good.name = "h\xc3\xa9llo.txt";
  good.user_meta = "{ \"k\" : \"v\" }";
  std::unique_ptr<Node> node2 = NodeAfterRestore(fx2, good, body);
  ASSERT_NE(node2, nullptr);
  Node::RecordPtr rec2 = node2->Lookup(good.key);
  ASSERT_NE(rec2, nullptr);
  EXPECT_EQ(rec2->name, good.name);
  EXPECT_EQ(rec2->user_meta, "{\"k\":\"v\"}");
  EXPECT_EQ(rec2->etag, good.etag);
}

// A directory cold store whose uploads wait until the test opens the gate, so
// that something can happen to the object while its upload runs. The body is
// taken (copied to `staging`) before the wait, as an S3 upload that has the
// file open keeps sending it after the node unlinks it.
class GatedColdStore final : public ColdStore {
 public:
  GatedColdStore(std::unique_ptr<ColdStore> store, std::string staging)
      : store_(std::move(store)), staging_(std::move(staging)) {}
  std::promise<void> upload_started;
  std::shared_future<void> gate;

  std::string Describe() const override { return "gated " + store_->Describe(); }
  Status Put(const ColdObjectMeta& meta, const std::string& body_path) override {
    std::filesystem::copy_file(body_path, staging_,
                               std::filesystem::copy_options::overwrite_existing);
    upload_started.set_value();
    gate.wait_for(std::chrono::seconds(10));
    return store_->Put(meta, staging_);
  }
  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override {
    return store_->Get(key, on_meta, on_data);
  }
  Status Delete(const std::string& key, uint64_t version) override {
    return store_->Delete(key, version);
  }

 private:
  std::unique_ptr<ColdStore> store_;
  std::string staging_;
};

// A delete made on another node while this node's upload of the object runs
// (that node's own cold delete found nothing yet): the upload's copy is taken
// back out of the cold store once it lands, so no fetch can bring the object
// back after its tombstone is purged.
TEST(NodeColdUpload, ABodyCommittedForTheColdStoreIsWaitedForBeforeItsUploadStarts) {
  // Between a level-1 PUT's commit and its upload (queued on the cold write
  // pool) the body is neither reserved nor evictable: a reservation that
  // needs its room must wait for the upload, not answer NoSpace (507) at once.
  NodeFixture fx;
  NodeOptions options = fx.Options();
  options.max_size_bytes = 10'000;
  auto cold = DirColdStore::Open(fx.dir / "cold", DefaultDisk());
  ASSERT_TRUE(cold.ok()) << cold.status().ToString();
  auto node = fx.Open(options, std::move(cold).value());
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  auto body = (*node)->BeginPut();
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  ASSERT_TRUE((*body)->Append(std::string(8'000, 'c')).ok());
  auto committed = (*node)->FinishPut(PutSpec{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "c.bin", 1}, **body);
  ASSERT_TRUE(committed.ok() && committed->to_cold) << committed.status().ToString();

  Capacity& capacity = (*node)->capacity();
  Reservation room = capacity.NewReservation();
  auto reserved = std::async(std::launch::async, [&] { return capacity.Reserve(room, 5'000); });
  EXPECT_EQ(reserved.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "answered before the upload: " << reserved.get().ToString();
  EXPECT_TRUE((*node)->ToColdStore(*committed->record).cold_status.ok());
  EXPECT_TRUE(reserved.get().ok()) << "the uploaded body was not evicted for the reservation";
}

TEST(NodeColdUpload, AnUploadSupersededByARemoteDeleteLeavesNothingInTheColdStore) {
  NodeFixture fx;
  auto dir = DirColdStore::Open(fx.dir / "cold", DefaultDisk());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  auto gated = std::make_unique<GatedColdStore>(std::move(dir).value(), fx.dir / "staged");
  GatedColdStore* store = gated.get();
  std::promise<void> open_gate;
  store->gate = open_gate.get_future().share();
  std::future<void> started = store->upload_started.get_future();
  auto node = fx.Open(std::move(gated));
  ASSERT_TRUE(node.ok()) << node.status().ToString();

  const std::string key = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  auto body = (*node)->BeginPut();
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  ASSERT_TRUE((*body)->Append(std::string(5000, 'u')).ok());
  std::thread put([&] {
    auto out = (*node)->FinishPut(PutSpec{key, "u.bin", 1}, **body);
    ASSERT_TRUE(out.ok() && out->to_cold) << out.status().ToString();
    EXPECT_TRUE((*node)->ToColdStore(*out->record).cold_status.ok());
  });
  ASSERT_EQ(started.wait_for(std::chrono::seconds(10)), std::future_status::ready);

  ObjectRecord tomb = *(*node)->Lookup(key);  // another node's delete of it
  tomb.deleted = true;
  tomb.version = HlcTimestamp::From(tomb.version.Millis() + 1000, 0);
  tomb.version_node = "another-node";
  tomb.local_body = false;
  tomb.cold = ColdState::kNone;
  ASSERT_TRUE((*node)->ApplyRemote({tomb}).ok());
  open_gate.set_value();
  put.join();

  auto cold = DirColdStore::Open(fx.dir / "cold", DefaultDisk());
  ASSERT_TRUE(cold.ok()) << cold.status().ToString();
  const Status fetched = (*cold)->Get(
      key, [](const ColdObjectMeta&) { return Status::Ok(); },
      [](std::span<const char>) { return Status::Ok(); });
  EXPECT_EQ(fetched.code(), StatusCode::kNotFound) << "the upload outlived the delete";
}

}  // namespace
}  // namespace objstore
