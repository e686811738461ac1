#include "coldstore/dir_cold_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <filesystem>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/random.h"
#include "base/unique_fd.h"
#include "store/atomic_file.h"
#include "store/body_store.h"

namespace objstore {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr size_t kChunk = 256 * 1024;
// How many bodies a read tries to open (OpenBody). A retry needs another
// Put's rename and unlink to land in the instant between the read of a .meta
// and the open right after it, so a second retry is already rare; running out
// means the key is rewritten faster than it can be read.
constexpr int kBodyOpenAttempts = 4;
}  // namespace

Result<std::unique_ptr<DirColdStore>> DirColdStore::Open(const std::string& dir, Disk& disk) {
  auto normal = StoreDir(dir);
  if (!normal.ok()) return normal.status();
  const std::string d = std::move(normal).value();
  std::unique_ptr<DirColdStore> store(new DirColdStore(d, disk));
  const std::string tmp_root = d + "/tmp";
  const std::string locks = d + "/locks";
  if (Status s = MakeDirsDurable(disk, tmp_root); !s.ok()) return s;
  if (Status s = MakeDirsDurable(disk, locks); !s.ok()) return s;
  // Several nodes may share the directory (it stands in for a bucket): each
  // writes its temporaries in tmp/<owner>/ while it holds locks/<owner>.lock
  // (flock, released by the kernel when the process dies). Temporaries whose
  // owner holds no lock are leftovers of interrupted Puts.
  ForEachEntry(tmp_root, [&](const fs::directory_entry& e) {
    const std::string owner = e.path().filename().string();
    const std::string lock_path = locks + "/" + owner + ".lock";
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    if (lock.valid() && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return;  // a live owner
    std::error_code ec;
    fs::remove_all(e.path(), ec);
    if (lock.valid()) disk.Unlink(lock_path.c_str());
  });
  uint8_t raw[8];
  SystemRandom().Fill(raw);
  char owner[17];
  for (int i = 0; i < 8; ++i) std::snprintf(owner + 2 * i, 3, "%02x", raw[i]);
  const std::string lock_path = locks + "/" + owner + ".lock";
  store->owner_lock_ = UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!store->owner_lock_.valid() || ::flock(store->owner_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::FromErrno(errno, "lock " + lock_path);
  }
  store->tmp_dir_ = tmp_root + "/" + owner;
  if (Status s = MakeDirsDurable(disk, store->tmp_dir_); !s.ok()) return s;
  return store;
}

DirColdStore::~DirColdStore() {
  std::error_code ec;
  fs::remove_all(tmp_dir_, ec);
  if (owner_lock_.valid()) {
    disk_.Unlink((dir_ + "/locks/" + fs::path(tmp_dir_).filename().string() + ".lock").c_str());
  }
}

std::string DirColdStore::ShardDir(const std::string& key) const {
  uint64_t h = XXH64(key.data(), key.size(), 0);
  char buf[4];
  std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(h >> 56));
  return dir_ + "/" + buf;
}

std::mutex& DirColdStore::KeyLock(const std::string& key) {
  return key_locks_[XXH64(key.data(), key.size(), 1) % key_locks_.size()];
}

Result<UniqueFd> DirColdStore::LockKeyFile(const std::string& key) {
  char name[24];
  std::snprintf(name, sizeof name, "/locks/key-%02x.lock",
                static_cast<unsigned>(XXH64(key.data(), key.size(), 1) % 256));
  const std::string path = dir_ + name;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Status::FromErrno(errno, "lock " + path);
  }
  return fd;  // closing it releases the lock
}

Status DirColdStore::Put(const ColdObjectMeta& meta, const std::string& body_path) {
  {
    ColdObjectMeta stored;  // a newer version already there: nothing to copy
    if (ReadMetaFile(meta.key, &stored).ok() && stored.version > meta.version) return Status::Ok();
  }
  const std::string shard = ShardDir(meta.key);
  if (Status s = MakeDirsDurable(disk_, shard); !s.ok()) return s;
  const std::string fname = BodyStore::FileNameKey(meta.key);

  // 1. The body, under a name no other Put uses.
  UniqueFd in(::open(body_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Status::FromErrno(errno, "open " + body_path);
  auto body = AtomicFile::Create(disk_, tmp_dir_);
  if (!body.ok()) return body.status();
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + body_path);
    }
    if (n == 0) break;
    if (Status s = (*body)->Append({buf.data(), static_cast<size_t>(n)}); !s.ok()) return s;
  }
  if ((*body)->size() != meta.size || (*body)->ETag() != meta.etag) {
    return Status::Corruption("body of " + meta.key + " does not match its size or etag");
  }
  char stamp[40];
  std::snprintf(stamp, sizeof stamp, "@%llx-%llx",
                static_cast<unsigned long long>(
                    std::chrono::system_clock::now().time_since_epoch().count()),
                static_cast<unsigned long long>(put_seq_.fetch_add(1)));
  const std::string body_name = fname + stamp;
  const std::string body_file = shard + "/" + body_name;
  if (Status s = (*body)->Commit(body_file); !s.ok()) {
    if ((*body)->renamed()) disk_.Unlink(body_file.c_str());  // nothing names it yet
    return s;
  }

  // 2. Under the key's lock, unless a newer version landed meanwhile: the
  // metadata, replacing the previous object in one rename.
  std::lock_guard lock(KeyLock(meta.key));
  auto file_lock = LockKeyFile(meta.key);
  ColdObjectMeta previous;
  auto previous_body = ReadMetaFile(meta.key, &previous);
  if (!file_lock.ok() || (previous_body.ok() && previous.version > meta.version)) {
    disk_.Unlink(body_file.c_str());
    return file_lock.ok() ? Status::Ok() : file_lock.status();
  }
  json doc = {{"key", meta.key},
              {"name", meta.name},
              {"consistency", meta.consistency},
              {"timestamp_ns", meta.timestamp_ns},
              {"user_meta", meta.user_meta},
              {"size", meta.size},
              {"etag", meta.etag},
              {"version", meta.version},
              {"body", body_name}};
  auto meta_file = AtomicFile::Create(disk_, tmp_dir_);
  Status written = meta_file.ok() ? (*meta_file)->Append(doc.dump()) : meta_file.status();
  if (written.ok()) written = (*meta_file)->Commit(shard + "/" + fname + ".meta");
  if (!written.ok()) {
    // Renamed but not made durable (the directory fsync failed): the .meta in
    // place names the new body and a crash may bring back the previous .meta,
    // which names the previous body, so both bodies stay. Otherwise nothing
    // names the new body; a retry writes another.
    if (!meta_file.ok() || !(*meta_file)->renamed()) disk_.Unlink(body_file.c_str());
    return written;
  }

  // 3. The previous body is unreachable now.
  if (previous_body.ok() && *previous_body != body_name) {
    disk_.Unlink((shard + "/" + *previous_body).c_str());
  }
  return Status::Ok();
}

Result<std::string> DirColdStore::ReadMetaFile(const std::string& key,
                                               ColdObjectMeta* meta) const {
  const std::string path = ShardDir(key) + "/" + BodyStore::FileNameKey(key) + ".meta";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    // Only "no such file" means the object is absent; anything else (the
    // directory gone, EIO, EACCES) is an outage, and must not be taken for
    // "deleted" or "never stored".
    if (errno == ENOENT) return Status::NotFound("cold store has no " + key);
    return Status::Unavailable(std::string("cold store directory: ") + std::strerror(errno));
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  if (n < 0) return Status::Unavailable(std::string("cold store read: ") + std::strerror(errno));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("key", "") != key) {
    return Status::Corruption("cold store metadata of " + key + " is unreadable");
  }
  try {
    meta->key = key;
    meta->name = doc.at("name").get<std::string>();
    meta->consistency = doc.at("consistency").get<int>();
    meta->timestamp_ns = doc.at("timestamp_ns").get<int64_t>();
    meta->user_meta = doc.at("user_meta").get<std::string>();
    meta->size = doc.at("size").get<uint64_t>();
    meta->etag = doc.at("etag").get<std::string>();
    meta->version = doc.at("version").get<uint64_t>();
    return doc.at("body").get<std::string>();
  } catch (const json::exception& e) {
    return Status::Corruption("cold store metadata of " + key + ": " + e.what());
  }
}

Result<UniqueFd> DirColdStore::OpenBody(const std::string& key, ColdObjectMeta* meta,
                                        std::string* path) const {
  // Readers take no lock, so a Put (this node's or another's sharing the
  // directory) may replace the .meta and remove the body it named between
  // the read of the .meta and the open. A missing body then means the object
  // was superseded, not lost: read the .meta again and follow it. No .meta is
  // an object deleted meanwhile; a .meta that still names the missing body is
  // a damaged store, which must not be taken for an absent object either.
  auto body_name = ReadMetaFile(key, meta);
  for (int attempt = 1;; ++attempt) {
    if (!body_name.ok()) return body_name.status();
    *path = ShardDir(key) + "/" + *body_name;
    int fd = disk_.Open(path->c_str(), O_RDONLY, 0);
    if (fd >= 0) return UniqueFd(fd);
    if (fd != -ENOENT) return Status::FromErrno(-fd, "open cold body " + *path);
    auto now_named = ReadMetaFile(key, meta);
    if (now_named.ok() && *now_named == *body_name) {
      return Status::Unavailable("cold body " + *path + ", named by its .meta, is missing");
    }
    if (now_named.ok() && attempt == kBodyOpenAttempts) {
      return Status::Unavailable("cold object " + key + " replaced " +
                                 std::to_string(kBodyOpenAttempts) + " times while read");
    }
    body_name = std::move(now_named);
  }
}

Status DirColdStore::Get(const std::string& key,
                         const std::function<Status(const ColdObjectMeta&)>& on_meta,
                         const std::function<Status(std::span<const char>)>& on_data) {
  ColdObjectMeta meta;
  std::string path;
  auto in = OpenBody(key, &meta, &path);
  if (!in.ok()) return in.status();
  if (Status s = on_meta(meta); !s.ok()) return s;
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(in->get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + path);
    }
    if (n == 0) return Status::Ok();
    if (Status s = on_data({buf.data(), static_cast<size_t>(n)}); !s.ok()) return s;
  }
}

Status DirColdStore::GetRange(const std::string& key, uint64_t offset, uint64_t length,
                              const std::function<Status(const ColdObjectMeta&)>& on_meta,
                              const std::function<Status(std::span<const char>)>& on_data) {
  ColdObjectMeta meta;
  std::string path;
  auto in = OpenBody(key, &meta, &path);
  if (!in.ok()) return in.status();
  if (length == 0 || offset > meta.size || meta.size - offset < length) {
    return Status::Invalid("range outside the object " + key);
  }
  if (Status s = on_meta(meta); !s.ok()) return s;
  std::vector<char> buf(std::min<uint64_t>(kChunk, length));
  for (uint64_t done = 0; done < length;) {
    ssize_t n = ::pread(in->get(), buf.data(), std::min<uint64_t>(buf.size(), length - done),
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + path);
    }
    if (n == 0) return Status::Corruption("cold body " + path + " is shorter than its metadata");
    if (Status s = on_data({buf.data(), static_cast<size_t>(n)}); !s.ok()) return s;
    done += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status DirColdStore::Delete(const std::string& key, uint64_t version) {
  std::lock_guard lock(KeyLock(key));
  auto file_lock = LockKeyFile(key);
  if (!file_lock.ok()) return file_lock.status();
  ColdObjectMeta meta;
  auto body_name = ReadMetaFile(key, &meta);
  if (!body_name.ok()) {
    return body_name.status().code() == StatusCode::kNotFound ? Status::Ok()
                                                              : body_name.status();
  }
  if (meta.version > version) return Status::Ok();
  const std::string shard = ShardDir(key);
  const std::string meta_path = shard + "/" + BodyStore::FileNameKey(key) + ".meta";
  if (int rc = disk_.Unlink(meta_path.c_str()); rc < 0 && rc != -ENOENT) {
    return Status::FromErrno(-rc, "unlink " + meta_path);
  }
  if (int rc = disk_.SyncDir(shard.c_str()); rc < 0) {
    return Status::FromErrno(-rc, "fsync dir " + shard);
  }
  disk_.Unlink((shard + "/" + *body_name).c_str());
  return Status::Ok();
}

}  // namespace objstore
