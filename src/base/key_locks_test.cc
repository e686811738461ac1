#include "base/key_locks.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace objstore {
namespace {

TEST(KeyLocks, OtherKeysDoNotWaitAndTheSameKeyDoes) {
  KeyLocks locks;
  auto held = std::make_unique<KeyLocks::Guard>(locks, "a");
  // Another key: taken at once, whatever its hash.
  auto other = std::async(std::launch::async, [&] { KeyLocks::Guard g(locks, "b"); });
  EXPECT_EQ(other.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  // The same key: waits for the holder.
  auto same = std::async(std::launch::async, [&] { KeyLocks::Guard g(locks, "a"); });
  EXPECT_EQ(same.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  held.reset();
  EXPECT_EQ(same.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  same.get();
  EXPECT_EQ(locks.size(), 0u) << "a key's mutex outlived its users";
}

}  // namespace
}  // namespace objstore
