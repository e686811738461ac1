#include "base/disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace objstore {

int PosixDisk::Open(const char* path, int flags, mode_t mode) {
  int fd = ::open(path, flags | O_CLOEXEC, mode);
  return fd >= 0 ? fd : -errno;
}

ssize_t PosixDisk::Write(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

ssize_t PosixDisk::WriteAt(int fd, const void* data, size_t len, off_t offset) {
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, p + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

int PosixDisk::Fsync(int fd) { return ::fsync(fd) == 0 ? 0 : -errno; }

int PosixDisk::Rename(const char* from, const char* to) {
  return ::rename(from, to) == 0 ? 0 : -errno;
}

int PosixDisk::Unlink(const char* path) { return ::unlink(path) == 0 ? 0 : -errno; }

int PosixDisk::SyncDir(const char* path) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = ::fsync(fd) == 0 ? 0 : -errno;
  ::close(fd);
  return rc;
}

Disk& DefaultDisk() {
  static PosixDisk disk;
  return disk;
}

}  // namespace objstore
