#include "api/token_auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "base/test_util.h"
#include "coldstore/sigv4.h"

namespace objstore::api {
namespace {

const std::string kRw = "rw-token-0123456789abcdef";
const std::string kRo = "ro-token-0123456789abcdef";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// A TokenAuth over the file `path`, written with `text` first.
std::unique_ptr<TokenAuth> OpenWith(const std::string& path, const std::string& text) {
  WriteFile(path, text);
  auto auth = TokenAuth::Open(path);
  EXPECT_TRUE(auth.ok()) << auth.status().ToString();
  return auth.ok() ? std::move(auth).value() : nullptr;
}

TEST(TokenFile, ParsesTokensAccessAndComments) {
  auto r = ParseTokenFile("# operators\n\n" + kRw + "\n  " + kRo + "\tro  \r\n" +
                          "abcdefghijklmnop+/_~.-== rw\n# end");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].sha256_hex, sigv4::Sha256Hex(kRw));  // only the hash is kept
  EXPECT_EQ((*r)[0].access, Access::kReadWrite);
  EXPECT_EQ((*r)[1].sha256_hex, sigv4::Sha256Hex(kRo));
  EXPECT_EQ((*r)[1].access, Access::kRead);
  EXPECT_EQ((*r)[2].access, Access::kReadWrite);
  EXPECT_TRUE(ParseTokenFile("").ok());
  EXPECT_TRUE(ParseTokenFile("# nothing\n\n").value().empty());
}

TEST(TokenFile, RejectsBadLinesWithTheirNumber) {
  for (const auto& [text, line] : std::vector<std::pair<std::string, std::string>>{
           {"short\n", "line 1"},
           {kRw + "\n" + kRo + " admin\n", "line 2"},
           {"\n\n" + kRw + "ü\n", "line 3"},
           {"token=with=inner=equals-sign\n", "line 1"},
           {kRw + " ro extra\n", "line 1"},
           {"=" + kRw + "\n", "line 1"}}) {
    auto r = ParseTokenFile(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
    EXPECT_NE(r.status().message().find(line), std::string::npos) << r.status().message();
  }
}

TEST(TokenAuth, ChecksBearerTokensAndAccess) {
  testing::TempDir dir;
  auto auth = OpenWith(dir / "tokens", kRw + "\n" + kRo + " ro\n");
  ASSERT_NE(auth, nullptr);
  auto& a = *auth;
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.Check("Bearer " + kRw, true).status, 0);
  EXPECT_EQ(a.Check("bearer  " + kRw + " ", false).status, 0);
  EXPECT_EQ(a.Check("Bearer " + kRo, false).status, 0);
  auto ro_write = a.Check("Bearer " + kRo, true);
  EXPECT_EQ(ro_write.status, 403);
  EXPECT_NE(ro_write.challenge.find("insufficient_scope"), std::string::npos);
  auto none = a.Check("", false);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.challenge, R"(Bearer realm="objstore")");
  EXPECT_EQ(a.Check("Basic " + kRw, false).status, 401);
  EXPECT_EQ(a.Check("Bearer", false).status, 401);
  auto wrong = a.Check("Bearer " + kRw + "x", false);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.challenge.find("invalid_token"), std::string::npos);
  EXPECT_EQ(a.Check("Bearer " + sigv4::Sha256Hex(kRw), false).status, 401);  // the hash is no token
}

TEST(TokenAuth, OpenFailsOnMissingOrBadFile) {
  testing::TempDir dir;
  EXPECT_EQ(TokenAuth::Open(dir / "absent").status().code(), StatusCode::kIOError);
  WriteFile(dir / "bad", "tiny\n");
  EXPECT_EQ(TokenAuth::Open(dir / "bad").status().code(), StatusCode::kInvalid);
  EXPECT_EQ(TokenAuth::Open(dir.path()).status().code(), StatusCode::kInvalid);  // a directory
}

TEST(TokenAuth, ReloadSwapsTokensAndKeepsThemOnABadFile) {
  testing::TempDir dir;
  const std::string path = dir / "tokens";
  auto auth = OpenWith(path, kRw + "\n");
  ASSERT_NE(auth, nullptr);
  auto& a = *auth;
  WriteFile(path, kRo + "\n");
  ASSERT_TRUE(a.Reload().ok());
  EXPECT_EQ(a.Check("Bearer " + kRw, false).status, 401);
  EXPECT_EQ(a.Check("Bearer " + kRo, false).status, 0);
  WriteFile(path, "not a token file\n");
  EXPECT_FALSE(a.Reload().ok());
  EXPECT_EQ(a.Check("Bearer " + kRo, false).status, 0);  // the previous set stays
  std::remove(path.c_str());
  EXPECT_FALSE(a.Reload().ok());
  EXPECT_EQ(a.Check("Bearer " + kRo, false).status, 0);
}

TEST(TokenAuth, ReloadsWhenTheFileChanges) {
  testing::TempDir dir;
  const std::string path = dir / "tokens";
  auto auth = OpenWith(path, kRw + "\n");
  ASSERT_NE(auth, nullptr);
  auto& a = *auth;
  // Replaced the way editors and config tools do: a new file renamed over.
  WriteFile(path + ".new", kRo + "\n");
  ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
  // The file is looked at no more than once a second.
  bool swapped = false;
  for (int i = 0; i < 30 && !swapped; ++i) {
    swapped = a.Check("Bearer " + kRo, false).status == 0;
    if (!swapped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(swapped);
  EXPECT_EQ(a.Check("Bearer " + kRw, false).status, 401);
}

}  // namespace
}  // namespace objstore::api
