// Node::CheckDirectories: the directory flags a node refuses at start.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "base/test_util.h"
#include "node/node.h"

namespace objstore {
namespace {

NodeOptions Dirs(const std::string& files, const std::string& state,
                 std::optional<std::string> cold) {
  NodeOptions options;
  options.files_dir = files;
  options.state_dir = state;
  options.cold_dir = std::move(cold);
  return options;
}

// The message of a refusal, "" when the directories are accepted.
std::string Refusal(const NodeOptions& options) {
  Status s = Node::CheckDirectories(options);
  EXPECT_TRUE(s.ok() || s.code() == StatusCode::kInvalid) << s.ToString();
  return s.ok() ? "" : s.message();
}

TEST(NodeDirectories, SeparateDirectoriesAreAcceptedWhetherOrNotTheyExist) {
  testing::TempDir t;
  EXPECT_EQ(Refusal(Dirs(t / "files", t / "state", t / "cold")), "");
  EXPECT_EQ(Refusal(Dirs(t / "files/", t / "files2", t / "files-cold")), "");  // prefixes only
  EXPECT_EQ(Refusal(Dirs(t / "files", t / "state", std::nullopt)), "");        // a bucket
  EXPECT_EQ(Refusal(Dirs(t / "data/files", t / "data", t / "data/cold")), "");
}

TEST(NodeDirectories, EmptyOrRootDirectoriesAreRefusedByName) {
  testing::TempDir t;
  EXPECT_NE(Refusal(Dirs("", t / "state", t / "cold")).find("--files-dir is empty"),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", "", t / "cold")).find("--state-dir is empty"),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", t / "state", "")).find("--cold-dir is empty"),
            std::string::npos);
  for (const std::string root : {"/", "//", "/.", "/tmp/.."}) {
    EXPECT_NE(Refusal(Dirs(root, t / "state", t / "cold")).find("--files-dir"), std::string::npos)
        << root;
    EXPECT_NE(Refusal(Dirs(t / "files", root, t / "cold")).find("--state-dir"), std::string::npos)
        << root;
    EXPECT_NE(Refusal(Dirs(t / "files", t / "state", root)).find("--cold-dir"), std::string::npos)
        << root;
  }
}

// Start-up sweeps the files directory for orphan bodies, and the budget takes
// its disk as the bodies': no other store of the node may live inside it, nor
// it inside the cold store.
TEST(NodeDirectories, DirectoriesInsideTheFilesDirectoryOrItInsideTheColdStoreAreRefused) {
  testing::TempDir t;
  std::filesystem::create_directories(t / "files");
  std::filesystem::create_symlink(t / "files", t / "alias");
  const std::string cold = "--cold-dir", state = "--state-dir";
  EXPECT_NE(Refusal(Dirs(t / "files", t / "state", t / "files/cold")).find(cold),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files/", t / "state", t / "files")).find(cold), std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", t / "state", t / "x/../files/ab")).find(cold),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", t / "state", t / "alias/cold")).find(cold),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "cold/files", t / "state", t / "cold")).find(cold), std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", t / "files/state", t / "cold")).find(state),
            std::string::npos);
  EXPECT_NE(Refusal(Dirs(t / "files", t / "files", std::nullopt)).find(state), std::string::npos);
}

}  // namespace
}  // namespace objstore
