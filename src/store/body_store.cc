#include "store/body_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace objstore {
namespace fs = std::filesystem;

namespace {

bool IsPlainKey(const std::string& key) {
  if (key.empty() || key.size() > 128) return false;
  for (unsigned char c : key) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// "<dir>/ab" of a leaf directory "<dir>/ab/cd" (ShardDir).
std::string LeafParent(const std::string& leaf) { return leaf.substr(0, leaf.size() - 3); }

bool IsLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Whether `name` is the name of a directory of either level ShardDir makes.
bool IsShardDirName(const std::string& name) { return name.size() == 2 && IsLowerHex(name); }

// Whether `name` is one FileNameKey makes: a plain key, or '~' and 32 hex.
bool IsFileNameKey(const std::string& name) {
  if (IsPlainKey(name)) return true;
  return name.size() == 33 && name[0] == '~' && IsLowerHex(std::string_view(name).substr(1));
}

}  // namespace

size_t BodyStore::DefaultOpenBodies() {
  constexpr size_t kMost = 4096;
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kMost;
  return std::min<size_t>(kMost, limit.rlim_cur / 4);
}

Result<std::unique_ptr<BodyStore>> BodyStore::Open(const std::string& dir, Disk& disk,
                                                   size_t open_bodies) {
  auto normal = StoreDir(dir);
  if (!normal.ok()) return normal.status();
  std::unique_ptr<BodyStore> store(new BodyStore(std::move(normal).value(), disk, open_bodies));
  store->tmp_dir_ = store->dir_ + "/tmp";
  if (Status s = MakeDirsDurable(disk, store->tmp_dir_); !s.ok()) return s;
  // The first level whole, ahead (256 directories, one sync): a PUT then never
  // syncs the top directory, and syncs a leaf's parent only for the first
  // body of that leaf since start.
  for (unsigned top = 0; top < 256; ++top) {
    const std::string path = LeafParent(store->ShardDir(static_cast<uint16_t>(top << 8)));
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "mkdir " + path);
    }
  }
  if (int rc = disk.SyncDir(store->dir_.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "fsync dir " + store->dir_);
  }
  return store;
}

std::string BodyStore::FileNameKey(const std::string& key) {
  if (IsPlainKey(key)) return key;
  XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char buf[34];
  std::snprintf(buf, sizeof buf, "~%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

uint16_t BodyStore::ShardOf(const std::string& key) {
  return static_cast<uint16_t>(XXH64(key.data(), key.size(), 0) >> 48);
}

std::string BodyStore::ShardDir(uint16_t shard) const {
  // "<dir>/ab/cd" from the top 16 bits of the key's hash; by hand, not
  // snprintf, as every GET of a local body builds its path.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(dir_.size() + 160);  // and the file name PathFor appends
  out += dir_;
  out += '/';
  out += kHex[(shard >> 12) & 0xf];
  out += kHex[(shard >> 8) & 0xf];
  out += '/';
  out += kHex[(shard >> 4) & 0xf];
  out += kHex[shard & 0xf];
  return out;
}

std::string BodyStore::PathFor(const std::string& key, HlcTimestamp version) const {
  std::string path = ShardDir(key);
  path += '/';
  path += FileNameKey(key);
  path += '@';
  path += version.ToString();
  return path;
}

Result<std::unique_ptr<AtomicFile>> BodyStore::NewBody() {
  {
    std::lock_guard lock(spares_mu_);
    if (!spares_.empty()) {
      std::unique_ptr<AtomicFile> spare = std::move(spares_.back());
      spares_.pop_back();
      return spare;
    }
  }
  return AtomicFile::Create(disk_, tmp_dir_);
}

bool BodyStore::WantsSpares() const {
  std::lock_guard lock(spares_mu_);
  return spares_.size() < kSpareBodies;
}

void BodyStore::RefillSpares() {
  while (WantsSpares()) {
    // Outside the lock: creating the file is the slow part.
    auto spare = AtomicFile::Create(disk_, tmp_dir_, kSpareSuffix);
    if (!spare.ok()) return;
    {
      std::lock_guard lock(spares_mu_);
      if (spares_.size() < kSpareBodies) {
        spares_.push_back(std::move(spare).value());
        continue;
      }
    }
    return;  // a concurrent refill got there first: this one is removed
  }
}

Status BodyStore::Commit(AtomicFile& body, const std::string& key, HlcTimestamp version) {
  const uint16_t shard = ShardOf(key);
  std::vector<std::string> dirs{ShardDir(shard)};
  const bool made = shard_durable_[shard].load(std::memory_order_acquire);
  if (!made) {
    // Made here or by a concurrent commit that may not have synced the parent
    // yet: this commit syncs it too before it reports success.
    if (::mkdir(dirs[0].c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "mkdir " + dirs[0]);
    }
    dirs.push_back(LeafParent(dirs[0]));
  }
  if (Status s = body.CommitUnrecorded(PathFor(key, version), dirs); !s.ok()) return s;
  if (!made) shard_durable_[shard].store(true, std::memory_order_release);
  // The rename may have replaced a file of that name (a peer's version with
  // an equal stamp): a descriptor of the replaced file must not be served.
  open_.Invalidate(key, version);
  return Status::Ok();
}

namespace {

// The whole content of a body of at most kInMemoryBodyMax bytes; nullopt for
// a larger one, or when it cannot be read whole (it is then sent from `fd`,
// whose own errors the sender reports).
std::optional<std::string> ReadSmallBody(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) > kInMemoryBodyMax) {
    return std::nullopt;
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<size_t>(n);
  }
  return bytes;
}

}  // namespace

Result<SharedBody> BodyStore::OpenBody(const std::string& key, HlcTimestamp version) {
  OpenBodyCache::Lookup cached = open_.Get(key, version);
  if (cached.body.valid()) return std::move(cached.body);
  std::string path = PathFor(key, version);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  std::optional<std::string> bytes;
  if (open_.caching()) bytes = ReadSmallBody(fd);  // read once, answered from memory after
  return open_.Insert(key, version, SharedBody(UniqueFd(fd), std::move(bytes)), cached.ticket);
}

Result<uint64_t> BodyStore::BodySize(const std::string& key, HlcTimestamp version) const {
  struct stat st;
  std::string path = PathFor(key, version);
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return static_cast<uint64_t>(st.st_size);
}

Status BodyStore::LinkVersion(const std::string& key, HlcTimestamp from, HlcTimestamp to) {
  std::string src = PathFor(key, from), dst = PathFor(key, to);
  if (::link(src.c_str(), dst.c_str()) != 0) return Status::FromErrno(errno, "link " + dst);
  std::string dir = ShardDir(key);
  if (int rc = disk_.SyncDir(dir.c_str()); rc < 0) return Status::FromErrno(-rc, "fsync " + dir);
  return Status::Ok();
}

Status BodyStore::Remove(const std::string& key, HlcTimestamp version) {
  std::string path = PathFor(key, version);
  int rc = disk_.Unlink(path.c_str());
  open_.Invalidate(key, version);  // after the unlink: see OpenBodyCache
  if (rc < 0 && rc != -ENOENT) return Status::FromErrno(-rc, "unlink " + path);
  return Status::Ok();
}

size_t BodyStore::RemoveTemporaries() {
  size_t removed = 0;
  ForEachEntry(tmp_dir_, [&](const fs::directory_entry& e) {
    const std::string ext = e.path().extension().string();
    if ((ext == kTempSuffix || ext == kSpareSuffix) && disk_.Unlink(e.path().c_str()) == 0) {
      ++removed;
    }
  });
  return removed;
}

BodyStore::Sweep BodyStore::RemoveUnreferenced(
    const std::function<bool(const std::string&, HlcTimestamp)>& keep) {
  Sweep sweep;
  // The first few are named; the count is in the caller's summary (a
  // directory of foreign files must not flood the log at every start).
  constexpr size_t kNamedLeftAlone = 10;
  auto leave_alone = [&](const fs::directory_entry& e, const std::string& why) {
    if (++sweep.left_alone <= kNamedLeftAlone) {
      spdlog::info("left alone {} under the files directory: {}{}", e.path().string(), why,
                   sweep.left_alone == kNamedLeftAlone ? " (further ones are only counted)" : "");
    }
  };
  // A directory of the layout: a shard name, and a directory (following a
  // symbolic link; one whose stat fails is left alone).
  auto is_shard_dir = [&](const fs::directory_entry& e) {
    if (!IsShardDirName(e.path().filename().string())) {
      leave_alone(e, "not a shard directory of the body store");
      return false;
    }
    std::error_code ec;
    if (!e.is_directory(ec)) {
      leave_alone(e, ec ? ec.message() : "not a directory");
      return false;
    }
    return true;
  };
  ForEachEntry(dir_, [&](const fs::directory_entry& top) {
    if (top.path().filename() == "tmp" || !is_shard_dir(top)) return;
    ForEachEntry(top.path(), [&](const fs::directory_entry& leaf) {
      if (!is_shard_dir(leaf)) return;
      ForEachEntry(leaf.path(), [&](const fs::directory_entry& f) {
        const std::string name = f.path().filename().string();
        const auto at = name.find('@');
        HlcTimestamp version;
        if (at == std::string::npos || !IsFileNameKey(name.substr(0, at)) ||
            !HlcTimestamp::Parse(name.substr(at + 1), &version)) {
          leave_alone(f, "not a body's file name");
          return;
        }
        if (!keep(name.substr(0, at), version) && disk_.Unlink(f.path().c_str()) == 0) {
          ++sweep.removed;
        }
      });
    });
  });
  // File names hold a hash of long keys, not the keys: drop every descriptor.
  if (sweep.removed > 0) open_.Clear();
  return sweep;
}

DiskUsage BodyStore::Usage() const {
  struct statvfs st;
  DiskUsage u;
  if (::statvfs(dir_.c_str(), &st) == 0) {
    u.bytes_all = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    u.bytes_free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    u.bytes_used = u.bytes_all - static_cast<uint64_t>(st.f_bfree) * st.f_frsize;
  }
  return u;
}

}  // namespace objstore
