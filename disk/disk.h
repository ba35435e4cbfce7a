// Disk: one simulated host's disk: a file system whose writes land in a page cache and
// become durable only as ext4 (data=ordered) makes them durable, and whose non-durable
// state a crash resolves, write by write, as the seed decides.
//
// The file calls (files/file.h) are the way user code reaches a disk; this class is the
// model under them, as net/network.h is under sockets/socket.h. Tests use it directly to
// look at durable state or to drive crashes without a Simulation.
//
// Example:
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 3});
//   dsim::Disks disks(&scheduler);
//   dsim::Disk& disk = disks.disk(disks.AddDisk("db"));
//   ... tasks bound to the disk (Disks::BindGroup) call dsim::Open, dsim::Pwrite, ...
//   disks.Crash(disk.id());                    // power loss: the seed resolves the cache
//   std::string content = disk.DurableContent("/data/log");   // what survived
//
// The durability model (ext4, data=ordered, without the auto_da_alloc heuristic):
//   - Every change lands in the cache first: what reads, stat and readdir see. Nothing
//     is durable until one of the following makes it so.
//   - fsync(fd) makes the file's data, size and timestamps durable. fdatasync(fd) makes
//     its data and size durable, NOT its timestamps (mtime, ctime, atime). Neither
//     makes the file's directory entry durable: a new file, a link, an unlink or a
//     rename is durable only once its directory (either directory, for a rename) is
//     fsynced, or sync()/syncfs() runs. O_SYNC and O_DSYNC make every write(2) an
//     fsync or fdatasync of the range; O_DIRECT writes are durable data at once (as
//     O_DIRECT|O_DSYNC; plain O_DIRECT leaves the size update to a later fsync in Linux,
//     dsim makes the size durable too, see README).
//   - StorageFaults::fsync_commits_directory_operations switches to ext4's behaviour
//     in practice, where any fsync commits the journal and so every earlier directory
//     operation (a new file fsynced is then found after a crash with its name).
//   - Directory operations are journaled: the durable ones are always a prefix of them
//     in the order they happened (fsyncing a directory commits every earlier directory
//     operation too, as ext4's journal commit does).
//   - File data (writes, truncates, fallocates) reaches the disk per operation, in any
//     order, sector by sector (512 bytes). A file's size grows only with data that
//     reached the disk (data=ordered): a crash never exposes stale or garbage blocks,
//     only zeros where a later write landed and an earlier one did not.
//
// Crash (Disks::Crash, or a Simulation host crash). Each pending operation's fate is a
// "fault.disk.*" decision of the seed, so replay reproduces it and shrinking removes it:
//   1. "fault.disk.crash_mode": 0 keeps everything pending (as if the cache were
//      flushed: the fault-free outcome), 1 loses everything pending, 2 keeps a prefix of
//      the pending operations in issue order (cut chosen by "fault.disk.crash_cut"; the
//      operation at the cut may be torn), 3 keeps a journal prefix of the directory
//      operations and decides each data operation on its own ("fault.disk.crash_write":
//      kept, lost, or torn), which reorders writes.
//   2. A torn overwrite keeps an arbitrary subset of its sectors; a torn append keeps a
//      prefix of its sectors.
//   3. Inodes no durable directory entry reaches are freed (as e2fsck's orphan cleanup).
// These states include the ones ALICE (OSDI'14) and CrashMonkey (OSDI'18) found
// application and file-system bugs with: a renamed file whose data never arrived (no
// fsync before rename), a new file fsynced but lost because its directory was not, a
// rename or unlink undone, a torn or partial append, appends persisted out of order (a
// zero-filled gap), a truncate kept while the following write was lost, and a file whose
// data was fdatasynced but whose mtime went back.
//
// Threading. A Disk belongs to its scheduler's thread. It keeps no global state.
#ifndef DSIM_DISK_DISK_H_
#define DSIM_DISK_DISK_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "disk/storage_faults.h"
#include "scheduler/scheduler.h"

namespace dsim {

using DiskId = uint32_t;
using Ino = uint64_t;
inline constexpr Ino kNoIno = 0;
inline constexpr Ino kRootIno = 2;  // As ext4's root directory.
inline constexpr size_t kDiskSectorBytes = 512;
inline constexpr size_t kDiskBlockBytes = 4096;

// One inode as the cache holds it. Regular files and directories only.
struct Inode {
  Ino ino = kNoIno;
  mode_t mode = 0;  // S_IFREG or S_IFDIR | permission bits.
  std::string data;                        // Regular files: the contents.
  std::map<std::string, Ino> entries;      // Directories: name -> inode (sorted).
  Ino parent = kNoIno;                     // Directories: "..".
  nlink_t nlink = 0;                       // Entries naming it (+ "." and subdirs).
  absl::Time atime, mtime, ctime;
  uint64_t allocated_bytes = 0;            // fallocate'd size beyond data (blocks).
  int open_count = 0;                      // Open file descriptions (files layer).
  uint64_t writeback_error_seq = 0;        // errseq_t: bumped by each failed fsync.

  bool is_dir() const { return S_ISDIR(mode); }
  bool is_file() const { return S_ISREG(mode); }
};

class Disk {
 public:
  Disk(Scheduler* scheduler, DiskId id, std::string name);
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;

  DiskId id() const { return id_; }
  const std::string& name() const { return name_; }
  // The group annotations are filed under (the host's current incarnation).
  void set_group(GroupId group) { group_ = group; }
  GroupId group() const { return group_; }
  const StorageFaults& faults() const { return faults_; }
  void set_faults(const StorageFaults& faults) { faults_ = faults; }

  // ---- The cache: what calls see ---------------------------------------------------
  Inode* Find(Ino ino);
  // The entry `name` of directory `dir`, or kNoIno.
  Ino Lookup(Ino dir, absl::string_view name);
  // New inode named `name` in `dir` (which must not have it). Returns its number.
  Ino Create(Ino dir, absl::string_view name, mode_t mode);
  void Link(Ino dir, absl::string_view name, Ino target);
  void Unlink(Ino dir, absl::string_view name);
  // rename(2) after validation: moves the entry, replacing a target (which the caller
  // checked); `exchange` swaps two entries (RENAME_EXCHANGE).
  void Rename(Ino from_dir, absl::string_view from, Ino to_dir, absl::string_view to,
              bool exchange);
  // Writes into the cache, capped by the capacity: returns the bytes written (0 if the
  // disk is full). `durable` writes are also made durable at once (O_DIRECT, O_SYNC).
  size_t Write(Ino ino, uint64_t offset, absl::string_view bytes);
  void Truncate(Ino ino, uint64_t size);
  // fallocate(mode 0 or FALLOC_FL_KEEP_SIZE): reserves space; false if it does not fit.
  bool Allocate(Ino ino, uint64_t offset, uint64_t length, bool keep_size);
  // Copies up to `length` bytes at `offset`; returns the count.
  size_t Read(Ino ino, uint64_t offset, char* out, size_t length);
  // The inode is no longer named and no longer open: free it (cache only; the durable
  // image forgets it when its unlink becomes durable).
  void MaybeFree(Ino ino);

  // ---- Durability --------------------------------------------------------------------
  // fsync (data_only = false) or fdatasync of a file or directory. Returns 0, or -EIO
  // when an fsync error fault fires (the file's pending data is then dropped).
  int Sync(Ino ino, bool data_only);
  // sync(2): everything pending becomes durable (faults still apply per file).
  void SyncAll();
  // Bytes used, as statfs and ENOSPC count them.
  uint64_t used_bytes() const { return image_.used_bytes; }
  size_t pending_operations() const { return image_.pending_live; }
  // Entries in the pending queue, live or not yet compacted away (tests bound it).
  size_t pending_queue_length() const { return image_.pending.size(); }

  // ---- Crash, wipe, swap ---------------------------------------------------------------
  // Power loss: resolves every pending operation as the seed decides (see above), then
  // the cache restarts from the durable image. Open counts are reset (the files layer
  // drops its descriptors first).
  void Crash();
  // Erases everything: an empty root directory, durable.
  void Wipe();
  // Exchanges contents (cache, durable image, pending state) with `other`.
  void SwapContents(Disk& other);
  // Becomes a copy of `other` (cache, durable image, pending state): with Crash()
  // after, the disk `other` would leave behind if the power failed now, while `other`
  // itself runs on (crash states explored as CrashMonkey and ALICE do, by snapshot).
  void CopyContentsFrom(const Disk& other);

  // ---- Inspection (tests) ----------------------------------------------------------
  // Contents of a regular file by absolute path in the durable image; "" with *exists
  // false if there is none.
  std::string DurableContent(absl::string_view path, bool* exists = nullptr) const;
  // Same in the cache.
  std::string CachedContent(absl::string_view path, bool* exists = nullptr) const;
  // Every path of the durable image, sorted, directories with a trailing '/'.
  std::vector<std::string> DurableTree() const;

  // Faults (used by the files layer).
  bool FaultChance(double probability, const char* label);
  void AnnotateFault(const char* category, const std::string& detail);
  Scheduler& scheduler() { return *scheduler_; }
  absl::Time Now() const { return scheduler_->Now(); }

 private:
  // A durable inode: what the disk holds.
  struct DurableInode {
    mode_t mode = 0;
    std::string data;
    std::map<std::string, Ino> entries;
    Ino parent = kNoIno;
    absl::Time mtime, ctime;
  };
  // One entry change of a directory operation: entries[dir][name] = ino (kNoIno erases).
  struct EntryEdit {
    Ino dir;
    std::string name;
    Ino ino;
    mode_t mode;   // Of `ino`, so the durable image can create it.
    Ino parent;    // Of `ino` when it is a directory.
  };
  enum class OpKind : uint8_t { kWrite, kTruncate, kDirectory };
  // A pending (not yet durable) operation, in issue order.
  struct PendingOp {
    OpKind kind;
    bool live = true;  // False once durable or dropped.
    Ino ino = kNoIno;              // kWrite, kTruncate.
    uint64_t offset = 0;           // kWrite: where; kTruncate: the new size.
    std::string bytes;             // kWrite.
    std::vector<EntryEdit> edits;  // kDirectory: applied atomically.
  };
  struct Image {
    std::map<Ino, Inode> cache;
    std::map<Ino, DurableInode> durable;
    std::deque<PendingOp> pending;
    Ino next_ino = kRootIno + 1;
    uint64_t used_bytes = 0;
    size_t pending_live = 0;
  };

  void Reset();
  void Push(PendingOp op);
  void Compact();
  void ApplyToDurable(const PendingOp& op);
  void ApplyWriteToDurable(Ino ino, uint64_t offset, absl::string_view bytes);
  void ApplyTornToDurable(const PendingOp& op);
  void ApplyDataWithFaults(PendingOp& op);
  uint64_t FileBytes(const Inode& inode) const;
  void CommitDirectoryPrefix(Ino dir);
  void CommitAllDirectoryOperations();
  void CollectUnreachable();
  void RebuildCacheFromDurable();
  static uint64_t Blocks(uint64_t bytes);
  const std::map<Ino, Inode>& cache() const { return image_.cache; }

  Scheduler* scheduler_;
  DiskId id_;
  std::string name_;
  GroupId group_ = kNoGroup;
  StorageFaults faults_;
  Image image_;
};

}  // namespace dsim

#endif  // DSIM_DISK_DISK_H_
