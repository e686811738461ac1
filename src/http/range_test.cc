#include "http/range.h"

#include <gtest/gtest.h>

#include <ctime>

#include "http/mime.h"

namespace objstore::http {
namespace {

void ExpectPartial(std::string_view h, uint64_t size, uint64_t first, uint64_t last) {
  auto d = ParseRange(h, size);
  ASSERT_EQ(d.kind, RangeKind::kPartial) << h;
  EXPECT_EQ(d.range.first, first) << h;
  EXPECT_EQ(d.range.last, last) << h;
}

TEST(Range, SatisfiableForms) {
  ExpectPartial("bytes=0-0", 100, 0, 0);
  ExpectPartial("bytes=0-99", 100, 0, 99);
  ExpectPartial("bytes=0-1000", 100, 0, 99);  // clamped
  ExpectPartial("bytes=50-", 100, 50, 99);
  ExpectPartial("bytes=-10", 100, 90, 99);
  ExpectPartial("bytes=-1000", 100, 0, 99);
  ExpectPartial("BYTES = 10-19", 100, 10, 19);
  ExpectPartial("bytes=99-99", 100, 99, 99);
}

TEST(Range, Unsatisfiable) {
  EXPECT_EQ(ParseRange("bytes=100-", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=100-200", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-0", 100).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0).kind, RangeKind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-0", 0).kind, RangeKind::kUnsatisfiable);
}

TEST(Range, ASuffixOfAnEmptyBodyIsAnsweredWhole) {
  EXPECT_EQ(ParseRange("bytes=-5", 0).kind, RangeKind::kFull);
}

TEST(Range, IgnoredWhenMalformedOrMultiple) {
  for (const char* h : {"bytes=5-2", "items=0-1", "bytes=a-b", "bytes=0-1,5-6", "bytes",
                        "bytes=", "bytes=-", "bytes=1-2-3", "bytes=99999999999999999999999-",
                        "bytes= -x", "=0-1"}) {
    EXPECT_EQ(ParseRange(h, 100).kind, RangeKind::kFull) << h;
  }
}

TEST(Conditional, IfNoneMatch) {
  EXPECT_TRUE(IfNoneMatchMatches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(IfNoneMatchMatches("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(IfNoneMatchMatches("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(IfNoneMatchMatches("*", "\"abc\""));
  EXPECT_FALSE(IfNoneMatchMatches("\"abd\"", "\"abc\""));
  EXPECT_FALSE(IfNoneMatchMatches("abc", "\"abc\""));
  EXPECT_FALSE(IfNoneMatchMatches("", "\"abc\""));
}

TEST(Conditional, IfMatchComparesStrongly) {
  EXPECT_TRUE(IfMatchMatches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(IfMatchMatches(" \"x\" , \"abc\"", "\"abc\""));
  EXPECT_TRUE(IfMatchMatches("*", "\"abc\""));
  EXPECT_TRUE(IfMatchMatches("*", ""));  // the object exists, whatever its tag
  EXPECT_FALSE(IfMatchMatches("W/\"abc\"", "\"abc\""));
  EXPECT_FALSE(IfMatchMatches("\"abc\"", "W/\"abc\""));
  EXPECT_FALSE(IfMatchMatches("\"abd\"", "\"abc\""));
  EXPECT_FALSE(IfMatchMatches("\"\"", ""));
  EXPECT_FALSE(IfMatchMatches("", "\"abc\""));
}

TEST(HttpDate, FormatsAndParsesAllThreeForms) {
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_FALSE(ParseHttpDate("yesterday"));
  EXPECT_FALSE(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
}

// FormatHttpDate is written by hand: it must agree with strftime in the C
// locale on every day of the week and month, leap days and the epoch.
TEST(HttpDate, FormatAgreesWithStrftime) {
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  for (std::time_t t = 0; t < 4'200'000'000; t += 7'777'777) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ASSERT_EQ(FormatHttpDate(t), buf) << t;
    ASSERT_EQ(ParseHttpDate(buf), t);
  }
}

TEST(Mime, FromExtension) {
  EXPECT_EQ(ContentTypeForName("test.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(ContentTypeForName("A.PNG"), "image/png");
  EXPECT_EQ(ContentTypeForName("x.tar.gz"), "application/gzip");
  EXPECT_EQ(ContentTypeForName("noext"), "application/octet-stream");
  EXPECT_EQ(ContentTypeForName("trailing."), "application/octet-stream");
  EXPECT_EQ(ContentTypeForName("../../etc/passwd"), "application/octet-stream");
}

}  // namespace
}  // namespace objstore::http
