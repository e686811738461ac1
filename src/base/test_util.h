// Helpers for unit tests: a temporary directory removed at the end of a test,
// and a Disk that fails on command (the faults real disks produce rarely).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "base/disk.h"

namespace objstore::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "objstore-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// The real disk, every call passed through: derive and override the calls a
// test holds back or counts.
class PassThroughDisk : public Disk {
 public:
  int Open(const char* path, int flags, mode_t mode) override {
    return real_.Open(path, flags, mode);
  }
  ssize_t Write(int fd, const void* data, size_t len) override {
    return real_.Write(fd, data, len);
  }
  ssize_t WriteAt(int fd, const void* data, size_t len, off_t offset) override {
    return real_.WriteAt(fd, data, len, offset);
  }
  int Fsync(int fd) override { return real_.Fsync(fd); }
  int Rename(const char* from, const char* to) override { return real_.Rename(from, to); }
  int Unlink(const char* path) override { return real_.Unlink(path); }
  int SyncDir(const char* path) override { return real_.SyncDir(path); }

 protected:
  PosixDisk real_;
};

// Passes through to the real disk until told to fail writes with ENOSPC once
// more than `write_budget` bytes were written, or every fsync with EIO.
class FaultyDisk final : public Disk {
 public:
  std::atomic<int64_t> write_budget{-1};  // -1: unlimited
  std::atomic<bool> fail_fsync{false};

  int Open(const char* path, int flags, mode_t mode) override {
    return real_.Open(path, flags, mode);
  }
  ssize_t Write(int fd, const void* data, size_t len) override {
    return Spend(len) ? real_.Write(fd, data, len) : -ENOSPC;
  }
  ssize_t WriteAt(int fd, const void* data, size_t len, off_t offset) override {
    return Spend(len) ? real_.WriteAt(fd, data, len, offset) : -ENOSPC;
  }
  int Fsync(int fd) override { return fail_fsync ? -EIO : real_.Fsync(fd); }
  int Rename(const char* from, const char* to) override { return real_.Rename(from, to); }
  int Unlink(const char* path) override { return real_.Unlink(path); }
  int SyncDir(const char* path) override { return fail_fsync ? -EIO : real_.SyncDir(path); }

 private:
  bool Spend(size_t len) {
    int64_t budget = write_budget.load();
    while (budget >= 0) {
      if (static_cast<int64_t>(len) > budget) return false;
      if (write_budget.compare_exchange_weak(budget, budget - static_cast<int64_t>(len))) break;
    }
    return true;
  }
  PosixDisk real_;
};

}  // namespace objstore::testing
