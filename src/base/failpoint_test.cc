#include "base/failpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

namespace objstore {
namespace {

// Each case runs in a forked child (death test), so arming never leaks into
// other tests of this binary.
TEST(FailpointDeathTest, KillsAtTheNamedPointOnTheCountedHit) {
  EXPECT_EXIT(
      {
        ::setenv("OBJSTORE_FAILPOINTS", "other,body.after_fsync:3", 1);
        failpoint::Init();
        failpoint::Hit("body.after_fsync");
        failpoint::Hit("body.after_write");
        failpoint::Hit("body.after_fsync");
        failpoint::Hit("body.after_fsync");
        ::exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "failpoint body.after_fsync reached");
}

TEST(FailpointDeathTest, UnarmedPointsNeverFire) {
  EXPECT_EXIT(
      {
        // gtest ignores EXPECT_* failures inside the child: the exit code says
        // which check failed.
        ::setenv("OBJSTORE_FAILPOINTS", "journal.mid_transaction:2", 1);
        if (failpoint::Init().empty()) ::exit(1);
        failpoint::Hit("journal.mid_transaction");
        failpoint::Hit("body.after_write");
        ::unsetenv("OBJSTORE_FAILPOINTS");
        if (!failpoint::Init().empty()) ::exit(2);
        failpoint::Hit("journal.mid_transaction");
        ::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

}  // namespace
}  // namespace objstore
