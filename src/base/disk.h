// Disk: the file operations the stores use to make bodies durable, behind an
// interface so tests can inject the faults a real disk produces rarely
// (ENOSPC in the middle of a write, a failing fsync) without luck.
// Every method returns 0 or a positive count on success and -errno on failure,
// like the system calls they wrap. Implementations are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace objstore {

class Disk {
 public:
  virtual ~Disk() = default;
  virtual int Open(const char* path, int flags, mode_t mode) = 0;
  virtual ssize_t Write(int fd, const void* data, size_t len) = 0;
  // Writes at `offset` without moving the descriptor's position (pwrite).
  virtual ssize_t WriteAt(int fd, const void* data, size_t len, off_t offset) = 0;
  virtual int Fsync(int fd) = 0;
  virtual int Rename(const char* from, const char* to) = 0;
  virtual int Unlink(const char* path) = 0;
  // fsyncs a directory, making renames and unlinks in it durable.
  virtual int SyncDir(const char* path) = 0;
};

// The real thing: thin wrappers over the POSIX calls.
class PosixDisk final : public Disk {
 public:
  int Open(const char* path, int flags, mode_t mode) override;
  ssize_t Write(int fd, const void* data, size_t len) override;
  ssize_t WriteAt(int fd, const void* data, size_t len, off_t offset) override;
  int Fsync(int fd) override;
  int Rename(const char* from, const char* to) override;
  int Unlink(const char* path) override;
  int SyncDir(const char* path) override;
};

// The process-wide PosixDisk.
Disk& DefaultDisk();

}  // namespace objstore
