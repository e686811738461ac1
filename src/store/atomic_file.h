// AtomicFile: write a file so that it is either absent or complete.
//
// Bytes go to a temporary file in a scratch directory on the same filesystem;
// Commit() fsyncs it, renames it over the final path and fsyncs the final
// directory, so after Commit returns the file survives a crash, and before it
// no reader can see a partial file. Destroying an uncommitted AtomicFile
// removes the temporary. A content hash (XXH3-128) is computed while writing.
//
// Not thread-safe: one writer owns it (WriteAt aside).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/disk.h"
#include "base/status.h"
#include "store/content_hash.h"

namespace objstore {

// Suffix of temporary files; start-up removes every file that has it.
inline constexpr const char* kTempSuffix = ".part";

class AtomicFile {
 public:
  // Creates `<tmp_dir>/<random><suffix>`. `tmp_dir` must exist.
  static Result<std::unique_ptr<AtomicFile>> Create(Disk& disk, const std::string& tmp_dir,
                                                    const char* suffix = kTempSuffix);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes. NoSpace on ENOSPC; the object is then unusable (Abort it).
  Status Append(std::span<const char> data);
  // Writes bytes at `offset` >= size(), past what is appended, without
  // hashing them: for writers filling later parts of the file while the
  // owner appends the first. Thread-safe against the owner's calls (a
  // pwrite), until Commit, CommitUnrecorded or Abort.
  Status WriteAt(uint64_t offset, std::span<const char> data) const;
  // Takes the next `length` bytes, written by WriteAt, as appended: reads
  // them back (from the page cache, as a rule), hashes them and moves the
  // end past them. Corruption if the file ends before them.
  Status AdoptWritten(uint64_t length);
  uint64_t size() const { return size_; }
  // The content hash of everything appended (ContentHash::ETag).
  std::string ETag() const { return hash_.ETag(); }
  // fsync, rename to `final_path` (whose directory must exist), fsync that dir.
  // A failure after the rename (the directory fsync) leaves the file at
  // `final_path`, where readers see it but a crash may undo the rename:
  // renamed() tells the caller which case it has to clean up after.
  Status Commit(const std::string& final_path);
  // The cheaper commit of a file that nothing refers to until the caller
  // records `final_path` durably elsewhere afterwards (a body, then its journal
  // record): rename first, then fsync the file and each of `dirs` (the final
  // directory and the parents of directories made for it). The first sync
  // then carries the data and every name in one filesystem commit, and the
  // later ones find it done. A crash before the syncs end may leave a partial
  // file at `final_path`, which the caller must delete at start-up as
  // unrecorded. On failure the file is removed and the status returned.
  Status CommitUnrecorded(const std::string& final_path, const std::vector<std::string>& dirs);
  // Removes the temporary file. Idempotent; called by the destructor.
  void Abort();
  // Whether a commit renamed the file to its final path (true after a Commit
  // that failed only at the directory fsync; false after a CommitUnrecorded
  // that failed, as it removes the file).
  bool renamed() const { return renamed_; }
  const std::string& temp_path() const { return path_; }

 private:
  AtomicFile(Disk& disk, int fd, std::string temp_path);
  Disk& disk_;
  int fd_;
  std::string path_;  // the temporary, or where CommitUnrecorded renamed it
  uint64_t size_ = 0;
  std::vector<char> adopt_buffer_;  // AdoptWritten's read-back
  ContentHash hash_;
  bool done_ = false;
  bool renamed_ = false;
};

// `dir` without "." / ".." components or trailing slashes ("files/" -> "files").
std::string NormalizeDir(const std::string& dir);
// NormalizeDir(dir) for a store's own directory; Invalid when that is empty
// or the root, where a store's start-up sweep would reach everything.
Result<std::string> StoreDir(const std::string& dir);

// Makes `path` and its parents exist, fsyncing each parent it creates.
Status MakeDirsDurable(Disk& disk, const std::string& path);

// Calls fn(entry) for every entry of `dir` (".", ".." aside), never throwing:
// a directory that cannot be listed, or whose listing fails midway, is logged
// as a warning and ends the walk, which then returns false. For the start-up
// walks, which must not stop the node on one stray entry: fn checks what it
// needs with the error_code overloads (an entry whose stat fails, such as a
// symbolic link loop, is skipped, not thrown).
bool ForEachEntry(const std::string& dir,
                  const std::function<void(const std::filesystem::directory_entry&)>& fn);

}  // namespace objstore
