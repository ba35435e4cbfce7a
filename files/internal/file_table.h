// FileTable: one host incarnation's file state (the process's side of the files layer):
// record locks, directory streams, mappings and messages.
// It lives as the incarnation's DiskAttachment (disk/disks.h), so a crash destroys it.
//
// Descriptors live in the host's one descriptor table (sockets/internal/stack.h), next
// to sockets and pipes: a DiskFile is the open file description there.
#ifndef DSIM_FILES_INTERNAL_FILE_TABLE_H_
#define DSIM_FILES_INTERNAL_FILE_TABLE_H_

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>

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
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"

namespace dsim::internal {

class FileTable;

// An open regular file or directory of a simulated disk, as it sits in the host's
// descriptor table (sockets/internal/open_file.h) next to sockets and pipes.
class DiskFile final : public OpenFile {
 public:
  static const char kKind[];  // kind(): compare pointers to recognize a DiskFile.
  DiskFile(FileTable* table, Ino ino, int flags, uint64_t id, uint64_t writeback_error_seq)
      : OpenFile(flags),
        table_(table),
        ino_(ino),
        flags_(flags),
        id_(id),
        writeback_error_seq_(writeback_error_seq) {}

  const char* kind() const override { return kKind; }
  // read(2), readv(2), write(2), writev(2) at the file offset.
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  ssize_t Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  off_t Seek(off_t offset, int whence) override;
  // Regular files are always ready, as poll(2) reports them.
  short PollMask() const override { return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM; }
  void OnLastClose() override;
  // F_GETFD, F_SETFD, F_GETFL and F_SETFL with a file's flags; the rest to the host table.
  int Fcntl(HostStack& stack, int cmd, long arg) override;

  FileTable* table() const { return table_; }
  Ino ino() const { return ino_; }
  uint64_t id() const { return id_; }  // The owner of OFD and flock locks.
  // Access mode | O_APPEND | O_NONBLOCK | O_DIRECT | O_DSYNC | O_SYNC | O_NOATIME.
  int flags() const { return (flags_ & ~O_NONBLOCK) | (nonblocking() ? O_NONBLOCK : 0); }
  void set_flags(int flags) {
    flags_ = flags;
    set_nonblocking((flags & O_NONBLOCK) != 0);
  }
  bool readable() const { return (flags_ & O_ACCMODE) != O_WRONLY; }
  bool writable() const { return (flags_ & O_ACCMODE) != O_RDONLY; }
  uint64_t offset = 0;
  uint64_t& writeback_error_seq() { return writeback_error_seq_; }  // errseq_t (f_wb_err).
  bool cloexec = false;  // Per description here (dup is not modelled for files).

 private:
  FileTable* table_;
  Ino ino_;
  int flags_;
  uint64_t id_;
  uint64_t writeback_error_seq_;
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
  // The process died: its locks go; its descriptors die with its host stack (their
  // OnLastClose then does nothing); mappings and directory streams stay allocated
  // until the table is destroyed (unwinding tasks may still touch them).
  void Detach() override;

  Disk& disk() { return *disk_; }
  GroupId group() const { return group_; }

  bool detached() const { return disk_ == nullptr; }
  // The host stack (descriptor table) of the call in progress.
  HostStack* stack() const { return stack_; }
  void set_stack(HostStack* stack) { stack_ = stack; }
  uint64_t NextFileId() { return ++last_file_id_; }
  // A description was closed: releases its locks and the process's POSIX locks on the
  // file (POSIX's rule: any close by the process drops them), and maybe frees the inode.
  void OnFileClosed(Ino ino, uint64_t file_id);

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
  HostStack* stack_ = nullptr;
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
