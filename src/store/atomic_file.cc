#include "store/atomic_file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "base/failpoint.h"
#include "base/random.h"

namespace objstore {
namespace {

std::string RandomName() {
  static SystemRandom random;
  uint8_t b[12];
  random.Fill(b);
  char out[25];
  for (int i = 0; i < 12; ++i) std::snprintf(out + 2 * i, 3, "%02x", b[i]);
  return out;
}

}  // namespace

Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(Disk& disk, const std::string& tmp_dir,
                                                       const char* suffix) {
  std::string path = tmp_dir + "/" + RandomName() + suffix;
  // Read-write: AdoptWritten reads back what WriteAt wrote.
  int fd = disk.Open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return Status::FromErrno(-fd, "create " + path);
  return std::unique_ptr<AtomicFile>(new AtomicFile(disk, fd, std::move(path)));
}

AtomicFile::AtomicFile(Disk& disk, int fd, std::string temp_path)
    : disk_(disk), fd_(fd), path_(std::move(temp_path)) {}

AtomicFile::~AtomicFile() { Abort(); }

Status AtomicFile::Append(std::span<const char> data) {
  if (done_) return Status::IOError("append to a finished file");
  if (data.empty()) return Status::Ok();
  ssize_t n = disk_.Write(fd_, data.data(), data.size());
  if (n < 0) return Status::FromErrno(static_cast<int>(-n), "write " + path_);
  hash_.Update(data);
  size_ += data.size();
  return Status::Ok();
}

Status AtomicFile::WriteAt(uint64_t offset, std::span<const char> data) const {
  // No check of size_ or done_ here: the owner changes them meanwhile.
  ssize_t n = disk_.WriteAt(fd_, data.data(), data.size(), static_cast<off_t>(offset));
  if (n < 0) return Status::FromErrno(static_cast<int>(-n), "write " + path_);
  return Status::Ok();
}

Status AtomicFile::AdoptWritten(uint64_t length) {
  if (done_) return Status::IOError("adopt in a finished file");
  // One buffer for all the adoptions of a file: a fetch adopts a large body
  // 1 MiB at a time.
  adopt_buffer_.resize(std::max<size_t>(adopt_buffer_.size(), std::min<uint64_t>(length, 1 << 20)));
  uint64_t end = size_ + length;
  while (size_ < end) {
    ssize_t n =
        ::pread(fd_, adopt_buffer_.data(), std::min<uint64_t>(adopt_buffer_.size(), end - size_),
                static_cast<off_t>(size_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read " + path_);
    if (n == 0) return Status::Corruption(path_ + " ends before the bytes to adopt");
    hash_.Update(std::span<const char>(adopt_buffer_.data(), static_cast<size_t>(n)));
    size_ += static_cast<uint64_t>(n);
  }
  // Later appends go after the adopted bytes.
  if (::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) {
    return Status::FromErrno(errno, "seek " + path_);
  }
  return Status::Ok();
}

Status AtomicFile::Commit(const std::string& final_path) {
  if (done_) return Status::IOError("commit of a finished file");
  failpoint::Hit("body.after_write");
  if (int rc = disk_.Fsync(fd_); rc < 0) return Status::FromErrno(-rc, "fsync " + path_);
  failpoint::Hit("body.after_fsync");
  ::close(fd_);
  fd_ = -1;
  if (int rc = disk_.Rename(path_.c_str(), final_path.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "rename to " + final_path);
  }
  done_ = true;
  renamed_ = true;
  failpoint::Hit("body.after_rename");
  std::string dir = std::filesystem::path(final_path).parent_path().string();
  if (int rc = disk_.SyncDir(dir.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "fsync dir " + dir);
  }
  return Status::Ok();
}

Status AtomicFile::CommitUnrecorded(const std::string& final_path,
                                    const std::vector<std::string>& dirs) {
  if (done_) return Status::IOError("commit of a finished file");
  failpoint::Hit("body.after_write");
  if (int rc = disk_.Rename(path_.c_str(), final_path.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "rename to " + final_path);
  }
  path_ = final_path;  // from here on Abort removes it there
  failpoint::Hit("body.after_rename");
  if (int rc = disk_.Fsync(fd_); rc < 0) {
    Abort();
    return Status::FromErrno(-rc, "fsync " + final_path);
  }
  failpoint::Hit("body.after_fsync");
  for (const std::string& dir : dirs) {
    if (int rc = disk_.SyncDir(dir.c_str()); rc < 0) {
      Abort();
      return Status::FromErrno(-rc, "fsync dir " + dir);
    }
  }
  ::close(fd_);
  fd_ = -1;
  done_ = true;
  renamed_ = true;
  return Status::Ok();
}

void AtomicFile::Abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!done_) {
    disk_.Unlink(path_.c_str());
    done_ = true;
  }
}

std::string NormalizeDir(const std::string& dir) {
  std::string d = std::filesystem::path(dir).lexically_normal().string();
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

Result<std::string> StoreDir(const std::string& dir) {
  std::string d = NormalizeDir(dir);
  if (d.empty() || d == "/") return Status::Invalid("a store's directory may not be '" + dir + "'");
  return d;
}

Status MakeDirsDurable(Disk& disk, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return Status::Ok();
  if (p.has_parent_path() && p.parent_path() != p) {
    if (Status s = MakeDirsDurable(disk, p.parent_path().string()); !s.ok()) return s;
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "mkdir " + path);
  }
  std::string parent = p.has_parent_path() ? p.parent_path().string() : ".";
  if (int rc = disk.SyncDir(parent.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "fsync dir " + parent);
  }
  return Status::Ok();
}

bool ForEachEntry(const std::string& dir,
                  const std::function<void(const std::filesystem::directory_entry&)>& fn) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) fn(*it);
  if (ec) spdlog::warn("cannot list {}: {}", dir, ec.message());
  return !ec;
}

}  // namespace objstore
