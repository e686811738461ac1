// Failpoints: named places in the node where a test can kill the process.
//
// Crash safety is only tested without luck when the crash lands exactly
// between two steps of a protocol (body written but not synced, journal
// transaction half done, S3 upload half sent). A failpoint is a call
//   failpoint::Hit("body.after_fsync");
// at such a place. The environment variable OBJSTORE_FAILPOINTS arms points:
//   OBJSTORE_FAILPOINTS=name[:count][,name[:count]...]
// The count-th time (default 1) an armed point is reached, the process writes
// one line "failpoint <name> reached: killing the process" to stderr and is
// killed at once by SIGKILL: no destructor, no flush, no atexit handler runs,
// just as with `kill -9` or a power cut of the process (the page cache stays).
//
// Cost when unset: Hit() is inline and tests one static bool that is written
// once, by Init(), before any other thread starts; the name lookup runs only
// when some point is armed. The list of points is in docs/TESTING-FAULTS.md.
#pragma once

#include <string>

namespace objstore::failpoint {

namespace internal {
extern bool armed;
void Reached(const char* name);
}  // namespace internal

// Reads OBJSTORE_FAILPOINTS. Call once from main before starting threads.
// Returns a description of what was armed ("" if nothing), for the log.
std::string Init();

inline void Hit(const char* name) {
  if (__builtin_expect(internal::armed, false)) internal::Reached(name);
}

}  // namespace objstore::failpoint
