// Node's cold fetch against a cold store that hands the body over in chosen
// pieces: which bytes readers may send while the transfer runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/random.h"
#include "base/test_util.h"
#include "coldstore/cold_store.h"
#include "node/node.h"

namespace objstore {
namespace {

// One object, handed to on_data in the pieces given, as libcurl hands over a
// response in reads of up to 16 KiB. After each piece it calls `after_piece`
// (the test's probe), on the fetching thread, while the transfer still runs.
class PiecewiseColdStore final : public ColdStore {
 public:
  PiecewiseColdStore(ColdObjectMeta meta, std::string body, std::vector<size_t> pieces)
      : meta_(std::move(meta)), body_(std::move(body)), pieces_(std::move(pieces)) {}

  std::function<void()> after_piece;

  std::string Describe() const override { return "pieces"; }
  Status Put(const ColdObjectMeta&, const std::string&) override { return Status::Ok(); }
  Status Delete(const std::string&, uint64_t) override { return Status::Ok(); }
  Status Get(const std::string& key, const std::function<Status(const ColdObjectMeta&)>& on_meta,
             const std::function<Status(std::span<const char>)>& on_data) override {
    if (key != meta_.key) return Status::NotFound("no " + key);
    if (Status s = on_meta(meta_); !s.ok()) return s;
    size_t at = 0;
    for (size_t n : pieces_) {
      if (Status s = on_data({body_.data() + at, n}); !s.ok()) return s;
      at += n;
      if (after_piece) after_piece();
    }
    return Status::Ok();
  }

 private:
  ColdObjectMeta meta_;
  std::string body_;
  std::vector<size_t> pieces_;
};

constexpr size_t kPiece = 16 * 1024;  // libcurl's largest piece

// Pieces: a full one and a short one (a read that ended early: published), then
// a full one and the short one that completes the body. The bytes of the
// completing read become sendable only with the verification, in one step.
TEST(NodeColdFetch, TheReadThatCompletesTheBodyIsSentOnlyWithTheVerification) {
  testing::TempDir dir;
  SystemClock clock;
  SystemRandom random;
  const std::vector<size_t> pieces{kPiece, 1000, kPiece, 6232};
  size_t total = 0;
  for (size_t n : pieces) total += n;
  std::string body(total, '\0');
  for (size_t i = 0; i < total; ++i) body[i] = static_cast<char>('a' + i % 23);

  ColdObjectMeta meta;
  meta.key = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  meta.name = "piece.bin";
  meta.size = total;  // no etag: an object written by something else, checked by size
  meta.version = HlcTimestamp::From(1'700'000'000'000, 0).packed;
  auto store = std::make_unique<PiecewiseColdStore>(meta, body, pieces);
  PiecewiseColdStore* pieces_store = store.get();

  NodeOptions options;
  options.files_dir = dir / "files";
  options.state_dir = dir / "state";
  options.blocking_threads = 2;
  auto node = Node::Open(options, clock, random, DefaultDisk(), std::move(store));
  ASSERT_TRUE(node.ok()) << node.status().ToString();

  std::vector<uint64_t> sendable_after_piece;
  pieces_store->after_piece = [&] {
    std::shared_ptr<ColdFetch> fetch = (*node)->FetchInFlight(meta.key);
    sendable_after_piece.push_back(fetch ? fetch->Current().sendable : ~0ull);
  };
  std::shared_ptr<ColdFetch> fetch = (*node)->FetchFromCold(meta.key, /*restore_unknown=*/true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*node)->FetchInFlight(meta.key) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ((*node)->FetchInFlight(meta.key), nullptr) << "the fetch did not end in 10 s";

  // Full pieces are gathered; the short one ends a read and is published; the
  // read that completes the body is not, though it ends with a short piece.
  const size_t first_read = kPiece + 1000;
  ASSERT_EQ(sendable_after_piece.size(), pieces.size());
  EXPECT_EQ(sendable_after_piece[0], 0u);
  EXPECT_EQ(sendable_after_piece[1], first_read);
  EXPECT_EQ(sendable_after_piece[2], first_read);
  EXPECT_EQ(sendable_after_piece[3], first_read)
      << "the completing read was published before the check";

  const ColdFetch::Progress done = fetch->Current();
  EXPECT_TRUE(done.status.ok()) << done.status.ToString();
  EXPECT_TRUE(done.complete);
  EXPECT_EQ(done.sendable, total);
  Node::RecordPtr rec = (*node)->Lookup(meta.key);
  ASSERT_NE(rec, nullptr);
  EXPECT_TRUE(rec->local_body);
  EXPECT_EQ(rec->size, total);
  auto fd = (*node)->OpenBody(*rec);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  std::string stored(total, '\0');
  ASSERT_EQ(::pread(fd->get(), stored.data(), total, 0), static_cast<ssize_t>(total));
  EXPECT_EQ(stored, body);
}

}  // namespace
}  // namespace objstore
