// KeyLocks: one mutex per key, for work on a key that must run one at a time
// but may take long (an upload to S3), where a fixed array of mutexes picked
// by hash would make unrelated keys wait for each other. A key's mutex exists
// only while someone holds or waits for it, so memory follows the keys in
// use, not the keys ever seen.
//
// Thread-safe. A Guard is the lock of one key, released on destruction.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace objstore {

class KeyLocks {
  struct Entry {
    std::mutex mu;
    size_t users = 0;  // holders and waiters; guarded by KeyLocks::mu_
  };

 public:
  class Guard {
   public:
    Guard(KeyLocks& locks, const std::string& key) : locks_(locks), key_(key) {
      {
        std::lock_guard lock(locks_.mu_);
        std::shared_ptr<Entry>& e = locks_.entries_[key_];
        if (!e) e = std::make_shared<Entry>();
        ++e->users;
        entry_ = e;
      }
      entry_->mu.lock();
    }
    ~Guard() {
      entry_->mu.unlock();
      std::lock_guard lock(locks_.mu_);
      if (--entry_->users == 0) locks_.entries_.erase(key_);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    KeyLocks& locks_;
    const std::string key_;
    std::shared_ptr<Entry> entry_;
  };

  // Keys with a mutex now (held or waited for).
  size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
};

}  // namespace objstore
