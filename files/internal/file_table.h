// FileTable: one host incarnation's open files (the process's side of the files layer):
// descriptors, open file descriptions, record locks, directory streams and mappings.
// It lives as the incarnation's DiskAttachment (disk/disks.h), so a crash destroys it.
//
// Descriptor numbers are shared with the host's sockets through the router in
// sockets/internal/other_descriptors.h. OpenFile is the open file description; a
// descriptor table generalized over kinds (the unmodified-code issue) can hold it as is.
#ifndef DSIM_FILES_INTERNAL_FILE_TABLE_H_
#define DSIM_FILES_INTERNAL_FILE_TABLE_H_

#include <dirent.h>
#include <fcntl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "disk/disk.h"
#include "disk/disks.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"

namespace dsim::internal {

// An open file description (struct file).
struct OpenFile {
  uint64_t id = 0;            // Unique in the table: the owner of OFD and flock locks.
  Ino ino = kNoIno;
  int flags = 0;              // Access mode | O_APPEND | O_NONBLOCK | O_DIRECT | O_*SYNC.
  uint64_t offset = 0;
  uint64_t writeback_error_seq = 0;  // errseq_t sample (f_wb_err).
  bool readable() const { return (flags & O_ACCMODE) != O_WRONLY; }
  bool writable() const { return (flags & O_ACCMODE) != O_RDONLY; }
};

struct Descriptor {
  std::unique_ptr<OpenFile> file;
  bool cloexec = false;
};

// A byte-range lock. owner 0 is the process (POSIX locks); others are OpenFile ids.
struct RangeLock {
  uint64_t owner;
  short type;      // F_RDLCK or F_WRLCK.
  uint64_t start;
  uint64_t end;    // Exclusive; UINT64_MAX for "to the end, forever".
};

struct DirStream {
  int fd = -1;
  struct Entry {
    std::string name;
    Ino ino;
    unsigned char type;
  };
  std::vector<Entry> entries;
  size_t next = 0;
  dirent current{};
};

class FileTable final : public DiskAttachment {
 public:
  FileTable(Disk* disk, GroupId group) : disk_(disk), group_(group) {}
  ~FileTable() override;
  // The process died: every descriptor is closed; mappings and directory streams stay
  // allocated until the table is destroyed (unwinding tasks may still touch them).
  void Detach() override;

  Disk& disk() { return *disk_; }
  GroupId group() const { return group_; }

  // Descriptors.
  Descriptor* Lookup(int fd) {
    auto it = descriptors_.find(fd);
    return it == descriptors_.end() ? nullptr : &it->second;
  }
  bool Holds(int fd) const { return descriptors_.count(fd) != 0; }
  // The lowest free number (>= 3) no socket holds; -EMFILE past the limit.
  int Install(std::unique_ptr<OpenFile> file, bool cloexec, Scheduler& scheduler);
  // Closes: releases the description's locks and the process's POSIX locks on the file.
  int Remove(int fd);
  uint64_t NextFileId() { return ++last_file_id_; }

  // Locks. Conflict: another owner's overlapping lock where either writes.
  const RangeLock* FindConflict(Ino ino, uint64_t owner, short type, uint64_t start,
                                uint64_t end) const;
  void SetRangeLock(Ino ino, uint64_t owner, short type, uint64_t start, uint64_t end);
  bool FlockConflict(Ino ino, uint64_t owner, bool exclusive) const;
  void SetFlock(Ino ino, uint64_t owner, int type);  // LOCK_SH, LOCK_EX or LOCK_UN.
  WaitQueue& lock_waiters() { return lock_waiters_; }

  // Directory streams and mappings this process holds.
  DirStream* NewDirStream();
  bool OwnsDirStream(DirStream* stream) const { return dir_streams_.count(stream) != 0; }
  void DeleteDirStream(DirStream* stream) { dir_streams_.erase(stream); }
  void AddMapping(void* address, size_t length) { mappings_[address] = length; }
  // Returns the mapping's length, or 0 if `address` starts no mapping of this table.
  size_t TakeMapping(void* address);

  // Messages.
  int Fail(int error, std::string message);
  const std::string& LastMessage(TaskId task) const;

 private:
  void ReleaseLocks(Ino ino, uint64_t file_id);

  Disk* disk_;
  GroupId group_;
  std::map<int, Descriptor> descriptors_;
  uint64_t last_file_id_ = 0;
  std::map<Ino, std::vector<RangeLock>> range_locks_;
  std::map<Ino, std::map<uint64_t, int>> flocks_;  // ino -> owner -> LOCK_SH/LOCK_EX.
  WaitQueue lock_waiters_;
  std::map<DirStream*, std::unique_ptr<DirStream>> dir_streams_;  // Looked up only.
  std::map<void*, size_t> mappings_;                               // Looked up only.
  // Per task; looked up only, never iterated (salted order).
  absl::flat_hash_map<TaskId, std::string> messages_;
};

}  // namespace dsim::internal

#endif  // DSIM_FILES_INTERNAL_FILE_TABLE_H_
