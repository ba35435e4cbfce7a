#include "files/file.h"

#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "disk/disks.h"
#include "files/internal/file_table.h"
#include "scheduler/internal/check.h"
#include "scheduler/scheduler.h"
#include "sockets/internal/stack.h"

namespace dsim {
namespace {

using internal::DirStream;
using internal::FileTable;
using internal::DiskFile;
using internal::HostStack;

constexpr size_t kPathMax = 4096;  // PATH_MAX, counting the terminating NUL.
constexpr size_t kNameMax = 255;
constexpr mode_t kUmask = 022;
constexpr int kMaxIovecs = 1024;
constexpr uint64_t kMaxFileBytes = uint64_t{16} << 40;  // ext4 with 4 KiB blocks.
constexpr uintptr_t kUserAddressLimit = (uintptr_t{1} << 47) - 4096;
// The flags an open file description keeps (F_GETFL shows them).
// The kernel's O_LARGEFILE on x86-64 (glibc defines O_LARGEFILE as 0 there): 64-bit
// kernels force it on every open, and F_GETFL shows it.
constexpr int kKernelLargefile = 0100000;
// The open flags a description keeps (F_GETFL shows them): all but the ones that act
// only at open time.
constexpr int kKeptFlags = ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
constexpr int kSettableFlags = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;

bool AccessOk(const void* buffer, size_t length) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(buffer);
  return length <= kUserAddressLimit && start <= kUserAddressLimit - length;
}

std::string& OutsideMessage() {
  thread_local std::string message;
  return message;
}

FileTable* TableOf(Scheduler& scheduler, GroupId group, bool create) {
  auto* disks = static_cast<Disks*>(scheduler.extension(Scheduler::kDiskExtension));
  if (disks == nullptr) return nullptr;
  Disk* disk = disks->DiskOfGroup(group);
  if (disk == nullptr) return nullptr;
  std::unique_ptr<DiskAttachment>& slot = disks->attachment(group);
  if (slot == nullptr) {
    if (!create) return nullptr;
    slot = std::make_unique<FileTable>(disk, group);
  }
  return static_cast<FileTable*>(slot.get());
}

// Finds the calling task's host stack (descriptors) and file table (disk), after the
// scheduling point every call is.
FileTable* Enter(const char* call) {
  HostStack* stack = internal::EnterHost(call);
  if (stack == nullptr) {
    OutsideMessage() = LastSocketErrorMessage();
    return nullptr;
  }
  Scheduler& scheduler = stack->host().network().scheduler();
  if (FileTable* table = TableOf(scheduler, scheduler.CurrentGroup(), true)) {
    table->set_stack(stack);
    return table;
  }
  OutsideMessage() = absl::StrCat("dsim::", call, " was called outside a simulated task: ",
                                  scheduler.extension(Scheduler::kDiskExtension) == nullptr
                                      ? "no dsim::Disks is attached to this scheduler"
                                      : "the calling task's host has no disk");
  errno = EPERM;
  return nullptr;
}

template <typename T>
T Finish(FileTable* table, const char* call, int fd, T result) {
  Scheduler& scheduler = table->disk().scheduler();
  if (ABSL_PREDICT_FALSE(scheduler.has_listeners())) {
    const std::string detail =
        result < 0 ? absl::StrCat(call, "(", fd, ") = -1 ",
                                  strerrorname_np(static_cast<int>(-result)))
                   : absl::StrCat(call, "(", fd, ") = ", static_cast<int64_t>(result));
    scheduler.Annotate(Annotation{"file.call", detail, table->group(), 0, 0});
  }
  if (result < 0) {
    errno = static_cast<int>(-result);
    return -1;
  }
  return result;
}

// ---- Faults ----------------------------------------------------------------------------

void Delay(Disk& disk, const DiskLatency& latency, const char* what) {
  if (latency.IsZero()) return;
  Scheduler& scheduler = disk.scheduler();
  absl::Duration delay = latency.min;
  if (latency.max > latency.min) {
    delay = scheduler.random().UniformDuration(latency.min, latency.max);
  }
  if (disk.FaultChance(latency.stall_probability, "fault.disk.stall")) {
    const absl::Duration stall =
        scheduler.random().UniformDuration(latency.stall_min, latency.stall_max);
    disk.AnnotateFault("fault.disk.stall", absl::StrCat(disk.name(), ": ", what, " stalls ",
                                                        absl::FormatDuration(stall)));
    delay += stall;
  }
  if (delay > absl::ZeroDuration()) scheduler.SleepFor(delay);
}

// ---- Paths ---------------------------------------------------------------------------

struct Resolved {
  Ino parent = kNoIno;     // The directory holding the last component.
  std::string last;        // "" for "/", else the last component ("." and ".." too).
  Ino ino = kNoIno;        // What the path names now, or kNoIno.
  bool trailing_slash = false;
  bool normal_last() const { return !last.empty() && last != "." && last != ".."; }
};

int StartDirectory(FileTable* table, int dirfd, const char* path, Ino* out) {
  if (path[0] == '/' || dirfd == AT_FDCWD) {
    *out = kRootIno;
    return 0;
  }
  HostStack* stack = table->stack();
  internal::OpenFile* open = stack->LookupFile(dirfd);
  if (open == nullptr && !stack->CheckOpen(dirfd)) {
    return table->Fail(EBADF, absl::StrCat("dirfd ", dirfd, " is not open"));
  }
  auto* file = open != nullptr && open->kind() == DiskFile::kKind ? static_cast<DiskFile*>(open)
                                                                  : nullptr;
  Inode* inode = file == nullptr ? nullptr : table->disk().Find(file->ino());
  if (inode == nullptr || !inode->is_dir()) {
    return table->Fail(ENOTDIR, absl::StrCat("dirfd ", dirfd, " is not a directory"));
  }
  *out = file->ino();
  return 0;
}

int CheckPath(FileTable* table, const char* path) {
  if (path == nullptr || !AccessOk(path, 1)) return table->Fail(EFAULT, "the path is null");
  if (strnlen(path, kPathMax) >= kPathMax) {
    return table->Fail(ENAMETOOLONG, "the path is 4096 bytes or longer");
  }
  return 0;
}

// Resolves a path as Linux's namei does (no symbolic links exist).
int Resolve(FileTable* table, int dirfd, const char* path, Resolved* out) {
  if (int r = CheckPath(table, path); r < 0) return r;
  if (path[0] == '\0') return table->Fail(ENOENT, "the path is empty");
  Disk& disk = table->disk();
  Ino current;
  if (int r = StartDirectory(table, dirfd, path, &current); r < 0) return r;
  std::vector<absl::string_view> parts;
  absl::string_view rest(path);
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    absl::string_view part = rest.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    if (slash == absl::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  out->trailing_slash = !parts.empty() && absl::string_view(path).back() == '/';
  if (parts.empty()) {  // "/" or "///".
    out->parent = current;
    out->ino = current;
    return 0;
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const absl::string_view part = parts[i];
    Inode* dir = disk.Find(current);
    if (!dir->is_dir()) {
      return table->Fail(ENOTDIR, absl::StrCat("a component before \"", part,
                                               "\" is not a directory"));
    }
    if (part.size() > kNameMax) {
      return table->Fail(ENAMETOOLONG, "a path component is longer than 255 bytes");
    }
    Ino next;
    if (part == ".") {
      next = current;
    } else if (part == "..") {
      next = dir->parent;
    } else {
      next = disk.Lookup(current, part);
    }
    if (i + 1 == parts.size()) {
      out->parent = current;
      out->last = std::string(part);
      out->ino = next;
      return 0;
    }
    if (next == kNoIno) {
      return table->Fail(ENOENT, absl::StrCat("no directory \"", part, "\" on the path"));
    }
    current = next;
  }
  return 0;
}

// ---- Descriptors -----------------------------------------------------------------------

// The disk file at `fd`: EBADF if nothing is open there, `not_a_file` (Linux's answer
// for a socket, pipe or eventfd in that call) if something else is.
int LookupFile(FileTable* table, int fd, DiskFile** out, int not_a_file = EINVAL) {
  HostStack* stack = table->stack();
  internal::OpenFile* open = stack->LookupFile(fd);
  if (open == nullptr || open->kind() != DiskFile::kKind) {
    if (open == nullptr && !stack->CheckOpen(fd)) {
      return table->Fail(EBADF, absl::StrCat("descriptor ", fd, " is not open"));
    }
    return table->Fail(not_a_file, absl::StrCat("descriptor ", fd, " is not a disk file"));
  }
  *out = static_cast<DiskFile*>(open);
  return 0;
}

int OpenResolved(FileTable* table, const Resolved& r, int flags, mode_t mode) {
  Disk& disk = table->disk();
  const int access = flags & O_ACCMODE;
  Ino ino = r.ino;
  // O_CREAT of "name/" is EISDIR whether or not the name exists.
  if ((flags & O_CREAT) && r.trailing_slash && r.normal_last()) {
    return table->Fail(EISDIR, "O_CREAT of a name ending in '/'");
  }
  if (ino == kNoIno) {
    if (!(flags & O_CREAT)) return table->Fail(ENOENT, "no such file");
    if (r.trailing_slash) return table->Fail(EISDIR, "O_CREAT of a name ending in '/'");
    if (disk.faults().capacity_bytes != 0 &&
        disk.used_bytes() >= disk.faults().capacity_bytes) {
      disk.AnnotateFault("fault.disk.enospc", absl::StrCat(disk.name(), ": create: disk full"));
      return table->Fail(ENOSPC, "the disk is full");
    }
    ino = disk.Create(r.parent, r.last, S_IFREG | (mode & 07777 & ~kUmask));
  } else {
    Inode* inode = disk.Find(ino);
    if ((flags & O_CREAT) && (flags & O_EXCL)) return table->Fail(EEXIST, "the file exists");
    if (inode->is_dir()) {
      if ((flags & O_CREAT) || access != O_RDONLY || (flags & O_TRUNC)) {
        return table->Fail(EISDIR, "a directory cannot be opened for writing");
      }
    } else {
      if ((flags & O_DIRECTORY) || r.trailing_slash) {
        return table->Fail(ENOTDIR, "not a directory");
      }
      if ((flags & O_TRUNC) && inode->data.size() > 0) disk.Truncate(ino, 0);
    }
  }
  Inode* inode = disk.Find(ino);
  auto file = std::make_shared<DiskFile>(table, ino, (flags & kKeptFlags) | kKernelLargefile,
                                         table->NextFileId(), inode->writeback_error_seq);
  file->cloexec = (flags & O_CLOEXEC) != 0;
  ++inode->open_count;
  const int fd = table->stack()->InstallFile(file);
  if (fd < 0) table->OnFileClosed(ino, file->id());
  return fd;
}

int DoOpenat(FileTable* table, int dirfd, const char* path, int flags, mode_t mode) {
  if ((flags & __O_TMPFILE) == __O_TMPFILE) {
    return table->Fail(EOPNOTSUPP, "O_TMPFILE is not simulated");
  }
  if ((flags & O_CREAT) && (flags & O_DIRECTORY)) {
    return table->Fail(EINVAL, "O_CREAT with O_DIRECTORY");
  }
  if (flags & O_PATH) return table->Fail(EINVAL, "O_PATH is not simulated");
  if ((flags & O_ACCMODE) == O_ACCMODE) return table->Fail(EINVAL, "access mode 3");
  Resolved r;
  if (int e = Resolve(table, dirfd, path, &r); e < 0) return e;
  return OpenResolved(table, r, flags, mode);
}

// ---- Data ------------------------------------------------------------------------------

// The part of the call both read paths share: checks, faults, the copy.
ssize_t ReadAt(FileTable* table, DiskFile* file, char* buffer, size_t length, int64_t offset,
               bool positional) {
  if (!file->readable()) return table->Fail(EBADF, "the descriptor is not open for reading");
  if (!AccessOk(buffer, length)) return table->Fail(EFAULT, "the buffer is outside memory");
  if (positional && offset < 0) return table->Fail(EINVAL, "negative offset");
  Disk& disk = table->disk();
  Inode* inode = disk.Find(file->ino());
  if (inode->is_dir()) return table->Fail(EISDIR, "read of a directory");
  if (length == 0) return 0;
  const uint64_t at = positional ? static_cast<uint64_t>(offset) : file->offset;
  if ((file->flags() & O_DIRECT) &&
      (at % kDiskSectorBytes != 0 || length % kDiskSectorBytes != 0 ||
       reinterpret_cast<uintptr_t>(buffer) % kDiskSectorBytes != 0)) {
    return table->Fail(EINVAL, "O_DIRECT needs 512-byte aligned offset, length and buffer");
  }
  const StorageFaults& faults = disk.faults();
  if (!faults.IsNone()) {
    Delay(disk, faults.read_latency, "read");
    if (disk.FaultChance(faults.read_error_probability, "fault.disk.read_eio")) {
      disk.AnnotateFault("fault.disk.read_eio",
                         absl::StrCat(disk.name(), ": read of ino ", file->ino(), " fails"));
      return table->Fail(EIO, "injected read error");
    }
    inode = disk.Find(file->ino());
    if (inode == nullptr) return 0;
  }
  const uint64_t available = at >= inode->data.size() ? 0 : inode->data.size() - at;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(length, available));
  if (n > 0 && buffer == nullptr) return table->Fail(EFAULT, "the buffer is null");
  disk.Read(file->ino(), at, buffer, n);
  if (n > 0 && disk.FaultChance(faults.read_bit_flip_probability, "fault.disk.bit_flip")) {
    const uint64_t bit = disk.scheduler().random().Below(n * 8);
    buffer[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    disk.AnnotateFault("fault.disk.bit_flip",
                       absl::StrCat(disk.name(), ": read of ino ", file->ino(), " at ", at,
                                    " flips bit ", bit % 8, " of byte ", at + bit / 8));
  }
  if (!positional) file->offset = at + n;
  return static_cast<ssize_t>(n);
}

// Syncs after an O_SYNC, O_DSYNC or O_DIRECT write, with errseq reporting.
int SyncFile(FileTable* table, DiskFile* file, bool data_only) {
  Disk& disk = table->disk();
  Delay(disk, disk.faults().fsync_latency, "fsync");
  const int r = disk.Sync(file->ino(), data_only);
  Inode* inode = disk.Find(file->ino());
  const uint64_t seq = inode == nullptr ? file->writeback_error_seq() : inode->writeback_error_seq;
  if (seq != file->writeback_error_seq()) {
    file->writeback_error_seq() = seq;
    return table->Fail(EIO, "writeback of the file failed (the dirty data is lost)");
  }
  return r < 0 ? table->Fail(-r, "writeback failed") : 0;
}

ssize_t WriteAt(FileTable* table, DiskFile* file, const char* buffer, size_t length,
                int64_t offset, bool positional) {
  if (!file->writable()) return table->Fail(EBADF, "the descriptor is not open for writing");
  if (!AccessOk(buffer, length)) return table->Fail(EFAULT, "the buffer is outside memory");
  if (positional && offset < 0) return table->Fail(EINVAL, "negative offset");
  if (length == 0) return 0;
  if (buffer == nullptr) return table->Fail(EFAULT, "the buffer is null");
  Disk& disk = table->disk();
  Inode* inode = disk.Find(file->ino());
  // pwrite on an O_APPEND descriptor appends too (a documented Linux bug).
  uint64_t at = (file->flags() & O_APPEND) ? inode->data.size()
                : positional             ? static_cast<uint64_t>(offset)
                                         : file->offset;
  if ((file->flags() & O_DIRECT) &&
      (at % kDiskSectorBytes != 0 || length % kDiskSectorBytes != 0 ||
       reinterpret_cast<uintptr_t>(buffer) % kDiskSectorBytes != 0)) {
    return table->Fail(EINVAL, "O_DIRECT needs 512-byte aligned offset, length and buffer");
  }
  if (at >= kMaxFileBytes) return table->Fail(EFBIG, "past the largest file size");
  length = static_cast<size_t>(std::min<uint64_t>(length, kMaxFileBytes - at));
  const StorageFaults& faults = disk.faults();
  if (!faults.IsNone()) {
    Delay(disk, faults.write_latency, "write");
    if (disk.FaultChance(faults.write_error_probability, "fault.disk.write_eio")) {
      disk.AnnotateFault("fault.disk.write_eio",
                         absl::StrCat(disk.name(), ": write to ino ", file->ino(), " fails"));
      return table->Fail(EIO, "injected write error");
    }
    if (disk.Find(file->ino()) == nullptr) return table->Fail(EIO, "the file is gone");
    if (file->flags() & O_APPEND) at = disk.Find(file->ino())->data.size();
  }
  const size_t n = disk.Write(file->ino(), at, absl::string_view(buffer, length));
  if (n == 0) return table->Fail(ENOSPC, "the disk is full");
  if (!positional) file->offset = at + n;
  if (file->flags() & (O_SYNC | O_DSYNC | O_DIRECT)) {
    const bool data_only = (file->flags() & O_SYNC) != O_SYNC;
    if (int r = SyncFile(table, file, data_only); r < 0) return r;
  }
  return static_cast<ssize_t>(n);
}

// Gathers iovecs as Linux's import_iovec checks them.
int GatherIovecs(FileTable* table, const iovec* iov, int count, size_t* total) {
  if (count < 0 || count > kMaxIovecs) return table->Fail(EINVAL, "iovec count out of range");
  if (count > 0 && (iov == nullptr || !AccessOk(iov, sizeof(iovec) * count))) {
    return table->Fail(EFAULT, "the iovec array is outside memory");
  }
  size_t sum = 0;
  for (int i = 0; i < count; ++i) {
    if (static_cast<ssize_t>(iov[i].iov_len) < 0) return table->Fail(EINVAL, "iov_len < 0");
    if (!AccessOk(iov[i].iov_base, iov[i].iov_len)) {
      return table->Fail(EFAULT, "an iovec is outside memory");
    }
    if (iov[i].iov_len > static_cast<size_t>(SSIZE_MAX) - sum) {
      return table->Fail(EINVAL, "the iovecs add up past SSIZE_MAX");
    }
    sum += iov[i].iov_len;
  }
  *total = sum;
  return 0;
}

ssize_t ReadvAt(FileTable* table, DiskFile* file, absl::Span<const iovec> span,
                int64_t offset, bool positional) {
  const iovec* iov = span.data();
  const int count = static_cast<int>(span.size());
  if (!file->readable()) return table->Fail(EBADF, "the descriptor is not open for reading");
  size_t total;
  if (int e = GatherIovecs(table, iov, count, &total); e < 0) return e;
  std::string buffer(total, '\0');
  const ssize_t n = ReadAt(table, file, buffer.data(), total, offset, positional);
  if (n <= 0) return n;
  size_t copied = 0;
  for (int i = 0; i < count && copied < static_cast<size_t>(n); ++i) {
    const size_t take = std::min(iov[i].iov_len, static_cast<size_t>(n) - copied);
    if (take > 0) std::memcpy(iov[i].iov_base, buffer.data() + copied, take);
    copied += take;
  }
  return n;
}

ssize_t WritevAt(FileTable* table, DiskFile* file, absl::Span<const iovec> span,
                 int64_t offset, bool positional) {
  const iovec* iov = span.data();
  const int count = static_cast<int>(span.size());
  if (!file->writable()) return table->Fail(EBADF, "the descriptor is not open for writing");
  size_t total;
  if (int e = GatherIovecs(table, iov, count, &total); e < 0) return e;
  std::string buffer;
  buffer.reserve(total);
  for (int i = 0; i < count; ++i) {
    if (iov[i].iov_len > 0 && iov[i].iov_base == nullptr) {
      return table->Fail(EFAULT, "an iovec is null");
    }
    buffer.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  return WriteAt(table, file, buffer.data(), total, offset, positional);
}

// The descriptor-level entry points: a pipe or socket answers ESPIPE to pread/pwrite.
ssize_t DoRead(FileTable* table, int fd, char* buffer, size_t length, int64_t offset,
               bool positional) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file, ESPIPE); e < 0) return e;
  return ReadAt(table, file, buffer, length, offset, positional);
}

ssize_t DoWrite(FileTable* table, int fd, const char* buffer, size_t length, int64_t offset,
                bool positional) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file, ESPIPE); e < 0) return e;
  return WriteAt(table, file, buffer, length, offset, positional);
}

ssize_t DoReadv(FileTable* table, int fd, const iovec* iov, int count, int64_t offset,
                bool positional) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file, ESPIPE); e < 0) return e;
  if (count < 0) return table->Fail(EINVAL, "negative iovec count");
  return ReadvAt(table, file, absl::MakeConstSpan(iov, static_cast<size_t>(count)), offset,
                 positional);
}

ssize_t DoWritev(FileTable* table, int fd, const iovec* iov, int count, int64_t offset,
                 bool positional) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file, ESPIPE); e < 0) return e;
  if (count < 0) return table->Fail(EINVAL, "negative iovec count");
  return WritevAt(table, file, absl::MakeConstSpan(iov, static_cast<size_t>(count)), offset,
                  positional);
}

// ---- Names ---------------------------------------------------------------------------

bool IsAncestor(Disk& disk, Ino ancestor, Ino dir) {
  for (Ino at = dir;;) {
    if (at == ancestor) return true;
    if (at == kRootIno) return false;
    at = disk.Find(at)->parent;
  }
}

int DoRenameat2(FileTable* table, int from_dirfd, const char* from, int to_dirfd,
                const char* to, unsigned int flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
    return table->Fail(EINVAL, "unknown rename flags");
  }
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))) {
    return table->Fail(EINVAL, "RENAME_EXCHANGE with another flag");
  }
  if (flags & RENAME_WHITEOUT) return table->Fail(EINVAL, "RENAME_WHITEOUT is not simulated");
  Resolved a, b;
  if (int e = Resolve(table, from_dirfd, from, &a); e < 0) return e;
  if (int e = Resolve(table, to_dirfd, to, &b); e < 0) return e;
  if (!a.normal_last() || !b.normal_last()) return table->Fail(EBUSY, "rename of . or .. or /");
  if ((flags & RENAME_NOREPLACE) && b.ino != kNoIno) return table->Fail(EEXIST, "target exists");
  Disk& disk = table->disk();
  if (a.ino == kNoIno) return table->Fail(ENOENT, "no such source");
  Inode* source = disk.Find(a.ino);
  if (flags & RENAME_EXCHANGE) {
    if (b.ino == kNoIno) return table->Fail(ENOENT, "no such target to exchange with");
  }
  Inode* target = b.ino == kNoIno ? nullptr : disk.Find(b.ino);
  if (!source->is_dir() && a.trailing_slash) return table->Fail(ENOTDIR, "source is not a dir");
  if (b.trailing_slash && !source->is_dir() &&
      ((flags & RENAME_EXCHANGE) == 0 || target == nullptr || !target->is_dir())) {
    return table->Fail(ENOTDIR, "target name ends in '/' but the source is a file");
  }
  // A directory cannot move into its own subtree.
  if (source->is_dir() && IsAncestor(disk, a.ino, b.parent)) {
    return table->Fail(EINVAL, "a directory cannot move into itself");
  }
  if ((flags & RENAME_EXCHANGE) && target->is_dir() && IsAncestor(disk, b.ino, a.parent)) {
    return table->Fail(EINVAL, "a directory cannot move into itself");
  }
  if (target != nullptr && !(flags & RENAME_EXCHANGE) && IsAncestor(disk, b.ino, a.parent)) {
    return table->Fail(ENOTEMPTY, "the target contains the source");
  }
  if (a.ino == b.ino) return 0;  // Two names of one inode: nothing happens.
  if (target != nullptr && !(flags & RENAME_EXCHANGE)) {
    if (source->is_dir() && !target->is_dir()) return table->Fail(ENOTDIR, "target is a file");
    if (!source->is_dir() && target->is_dir()) return table->Fail(EISDIR, "target is a dir");
    if (target->is_dir() && !target->entries.empty()) {
      return table->Fail(ENOTEMPTY, "target directory is not empty");
    }
  }
  disk.Rename(a.parent, a.last, b.parent, b.last, (flags & RENAME_EXCHANGE) != 0);
  return 0;
}

int DoLinkat(FileTable* table, int from_dirfd, const char* from, int to_dirfd, const char* to) {
  Resolved a, b;
  if (int e = Resolve(table, from_dirfd, from, &a); e < 0) return e;
  if (a.ino == kNoIno) return table->Fail(ENOENT, "no such file");
  Disk& disk = table->disk();
  if (a.trailing_slash && !disk.Find(a.ino)->is_dir()) return table->Fail(ENOTDIR, "not a dir");
  if (int e = Resolve(table, to_dirfd, to, &b); e < 0) return e;
  if (b.ino != kNoIno) return table->Fail(EEXIST, "the new name exists");
  if (!b.normal_last()) return table->Fail(EEXIST, "the new name exists");
  if (b.trailing_slash) return table->Fail(ENOENT, "the new name ends in '/'");
  if (disk.Find(a.ino)->is_dir()) return table->Fail(EPERM, "hard link to a directory");
  disk.Link(b.parent, b.last, a.ino);
  return 0;
}

int DoUnlinkat(FileTable* table, int dirfd, const char* path, int flags) {
  if (flags & ~AT_REMOVEDIR) return table->Fail(EINVAL, "unknown unlinkat flags");
  Resolved r;
  if (int e = Resolve(table, dirfd, path, &r); e < 0) return e;
  Disk& disk = table->disk();
  if (flags & AT_REMOVEDIR) {
    if (r.last == ".") return table->Fail(EINVAL, "rmdir of .");
    if (r.last == "..") return table->Fail(ENOTEMPTY, "rmdir of ..");
    if (r.last.empty()) return table->Fail(EBUSY, "rmdir of /");
    if (r.ino == kNoIno) return table->Fail(ENOENT, "no such directory");
    Inode* inode = disk.Find(r.ino);
    if (!inode->is_dir()) return table->Fail(ENOTDIR, "not a directory");
    if (!inode->entries.empty()) return table->Fail(ENOTEMPTY, "the directory is not empty");
    disk.Unlink(r.parent, r.last);
    return 0;
  }
  if (!r.normal_last()) return table->Fail(EISDIR, "unlink of . or .. or /");
  if (r.ino == kNoIno) return table->Fail(ENOENT, "no such file");
  Inode* inode = disk.Find(r.ino);
  if (inode->is_dir()) return table->Fail(EISDIR, "unlink of a directory");
  if (r.trailing_slash) return table->Fail(ENOTDIR, "the name ends in '/'");
  disk.Unlink(r.parent, r.last);
  return 0;
}

int DoMkdirat(FileTable* table, int dirfd, const char* path, mode_t mode) {
  Resolved r;
  if (int e = Resolve(table, dirfd, path, &r); e < 0) return e;
  if (r.ino != kNoIno || !r.normal_last()) return table->Fail(EEXIST, "the name exists");
  Disk& disk = table->disk();
  if (disk.faults().capacity_bytes != 0 &&
      disk.used_bytes() + kDiskBlockBytes > disk.faults().capacity_bytes) {
    disk.AnnotateFault("fault.disk.enospc", absl::StrCat(disk.name(), ": mkdir: disk full"));
    return table->Fail(ENOSPC, "the disk is full");
  }
  disk.Create(r.parent, r.last, S_IFDIR | (mode & 07777 & ~kUmask));
  return 0;
}

// ---- Metadata ---------------------------------------------------------------------------

void FillStat(Disk& disk, const Inode& inode, struct stat* out) {
  std::memset(out, 0, sizeof(*out));
  out->st_dev = 0xfd00 + disk.id();
  out->st_ino = inode.ino;
  out->st_mode = inode.mode;
  out->st_nlink = inode.nlink;
  out->st_size = inode.is_dir() ? kDiskBlockBytes : inode.data.size();
  out->st_blksize = kDiskBlockBytes;
  const uint64_t bytes =
      inode.is_dir() ? kDiskBlockBytes
                     : (std::max<uint64_t>(inode.data.size(), inode.allocated_bytes) +
                        kDiskBlockBytes - 1) / kDiskBlockBytes * kDiskBlockBytes;
  out->st_blocks = bytes / 512;
  out->st_atim = absl::ToTimespec(inode.atime);
  out->st_mtim = absl::ToTimespec(inode.mtime);
  out->st_ctim = absl::ToTimespec(inode.ctime);
}

int DoFstatat(FileTable* table, int dirfd, const char* path, struct stat* out, int flags) {
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)) {
    return table->Fail(EINVAL, "unknown fstatat flags");
  }
  Disk& disk = table->disk();
  Ino ino;
  if ((flags & AT_EMPTY_PATH) && path != nullptr && path[0] == '\0') {
    if (dirfd == AT_FDCWD) {
      ino = kRootIno;
    } else {
      DiskFile* file;
      if (int e = LookupFile(table, dirfd, &file); e < 0) return e;
      ino = file->ino();
    }
  } else {
    Resolved r;
    if (int e = Resolve(table, dirfd, path, &r); e < 0) return e;
    if (r.ino == kNoIno) return table->Fail(ENOENT, "no such file");
    if (r.trailing_slash && !disk.Find(r.ino)->is_dir()) {
      return table->Fail(ENOTDIR, "the name ends in '/' but is a file");
    }
    ino = r.ino;
  }
  if (out == nullptr || !AccessOk(out, sizeof(*out))) return table->Fail(EFAULT, "null stat");
  FillStat(disk, *disk.Find(ino), out);
  return 0;
}

void FillStatfs(Disk& disk, struct statfs* out) {
  std::memset(out, 0, sizeof(*out));
  const uint64_t capacity =
      disk.faults().capacity_bytes != 0 ? disk.faults().capacity_bytes : uint64_t{1} << 40;
  out->f_type = 0xEF53;  // EXT4_SUPER_MAGIC
  out->f_bsize = kDiskBlockBytes;
  out->f_frsize = kDiskBlockBytes;
  out->f_blocks = capacity / kDiskBlockBytes;
  const uint64_t used = std::min(disk.used_bytes(), capacity);
  out->f_bfree = (capacity - used) / kDiskBlockBytes;
  out->f_bavail = out->f_bfree;
  out->f_files = 1 << 20;
  out->f_ffree = out->f_files / 2;
  out->f_namelen = kNameMax;
}

// ---- Locks -------------------------------------------------------------------------------

int LockRange(FileTable* table, const DiskFile& file, const struct flock& lock, uint64_t* start,
              uint64_t* end) {
  int64_t base;
  switch (lock.l_whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = static_cast<int64_t>(file.offset); break;
    case SEEK_END: base = static_cast<int64_t>(table->disk().Find(file.ino())->data.size()); break;
    default: return table->Fail(EINVAL, "bad l_whence");
  }
  int64_t from = base + lock.l_start;
  int64_t to;  // Exclusive; INT64_MAX for "to the end".
  if (lock.l_len > 0) {
    to = from + lock.l_len;
  } else if (lock.l_len < 0) {
    to = from;
    from += lock.l_len;
  } else {
    to = INT64_MAX;
  }
  if (from < 0) return table->Fail(EINVAL, "the range starts before the file");
  *start = static_cast<uint64_t>(from);
  *end = to == INT64_MAX ? UINT64_MAX : static_cast<uint64_t>(to);
  return 0;
}

int DoLock(FileTable* table, int fd, int command, struct flock* lock) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  if (lock == nullptr || !AccessOk(lock, sizeof(*lock))) return table->Fail(EFAULT, "null flock");
  const bool ofd = command == F_OFD_GETLK || command == F_OFD_SETLK || command == F_OFD_SETLKW;
  const bool get = command == F_GETLK || command == F_OFD_GETLK;
  const bool wait = command == F_SETLKW || command == F_OFD_SETLKW;
  if (ofd && lock->l_pid != 0) return table->Fail(EINVAL, "OFD locks need l_pid 0");
  if (lock->l_type != F_RDLCK && lock->l_type != F_WRLCK &&
      (get || lock->l_type != F_UNLCK)) {
    return table->Fail(EINVAL, "bad l_type");
  }
  uint64_t start, end;
  if (int e = LockRange(table, *file, *lock, &start, &end); e < 0) return e;
  const uint64_t owner = ofd ? file->id() : 0;
  if (get) {
    const internal::RangeLock* conflict =
        table->FindConflict(file->ino(), owner, lock->l_type, start, end);
    if (conflict == nullptr) {
      lock->l_type = F_UNLCK;
      return 0;
    }
    lock->l_type = conflict->type;
    lock->l_whence = SEEK_SET;
    lock->l_start = static_cast<off_t>(conflict->start);
    lock->l_len = conflict->end == UINT64_MAX ? 0 : static_cast<off_t>(conflict->end - conflict->start);
    lock->l_pid = -1;  // Owned by an open file description (or, for OFD, this process).
    return 0;
  }
  if (lock->l_type == F_RDLCK && !file->readable()) return table->Fail(EBADF, "not readable");
  if (lock->l_type == F_WRLCK && !file->writable()) return table->Fail(EBADF, "not writable");
  if (lock->l_type != F_UNLCK) {
    while (table->FindConflict(file->ino(), owner, lock->l_type, start, end) != nullptr) {
      if (!wait) return table->Fail(EAGAIN, "a conflicting lock is held");
      table->lock_waiters().Wait(ofd ? "fcntl(F_OFD_SETLKW)" : "fcntl(F_SETLKW)",
                                 SourceLocation::Current());
      if (table->stack()->LookupFile(fd) != file) {
        return table->Fail(EBADF, "the descriptor was closed while waiting");
      }
    }
  }
  table->SetRangeLock(file->ino(), owner, lock->l_type, start, end);
  return 0;
}

int DoFlock(FileTable* table, int fd, int operation) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  const int type = operation & ~LOCK_NB;
  if (type != LOCK_SH && type != LOCK_EX && type != LOCK_UN) {
    return table->Fail(EINVAL, "bad flock operation");
  }
  if (type != LOCK_UN) {
    while (table->FlockConflict(file->ino(), file->id(), type == LOCK_EX)) {
      if (operation & LOCK_NB) return table->Fail(EWOULDBLOCK, "a conflicting flock is held");
      table->lock_waiters().Wait("flock", SourceLocation::Current());
      if (table->stack()->LookupFile(fd) != file) {
        return table->Fail(EBADF, "the descriptor was closed while waiting");
      }
    }
  }
  table->SetFlock(file->ino(), file->id(), type);
  return 0;
}

int DoFcntl(FileTable* table, int fd, int command, long argument) {
  DiskFile* d;
  if (int e = LookupFile(table, fd, &d); e < 0) return e;
  switch (command) {
    case F_GETFD: return d->cloexec ? FD_CLOEXEC : 0;
    case F_SETFD: d->cloexec = (argument & FD_CLOEXEC) != 0; return 0;
    case F_GETFL: return d->flags();
    case F_SETFL: {
      DiskFile& file = *d;
      if ((argument & O_DIRECT) && table->disk().Find(file.ino())->is_dir()) {
        return table->Fail(EINVAL, "O_DIRECT on a directory");
      }
      file.set_flags((file.flags() & ~kSettableFlags) |
                     (static_cast<int>(argument) & kSettableFlags));
      return 0;
    }
    default: return table->Fail(EINVAL, absl::StrCat("fcntl command ", command,
                                                     " is not simulated for files"));
  }
}

}  // namespace

// ---- Public calls --------------------------------------------------------------------------

#define DSIM_FILE_CALL(name, fd, expression)          \
  FileTable* table = Enter(name);                     \
  if (table == nullptr) return -1;                    \
  return Finish(table, name, fd, (expression))

int Open(const char* path, int flags, mode_t mode) {
  DSIM_FILE_CALL("Open", -1, DoOpenat(table, AT_FDCWD, path, flags, mode));
}
int Openat(int dirfd, const char* path, int flags, mode_t mode) {
  DSIM_FILE_CALL("Openat", dirfd, DoOpenat(table, dirfd, path, flags, mode));
}
int Creat(const char* path, mode_t mode) {
  DSIM_FILE_CALL("Creat", -1,
                 DoOpenat(table, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode));
}

ssize_t Pread(int fd, void* buffer, size_t length, off_t offset) {
  DSIM_FILE_CALL("Pread", fd,
                 DoRead(table, fd, static_cast<char*>(buffer), length, offset, true));
}
ssize_t Pwrite(int fd, const void* buffer, size_t length, off_t offset) {
  DSIM_FILE_CALL("Pwrite", fd,
                 DoWrite(table, fd, static_cast<const char*>(buffer), length, offset, true));
}
ssize_t Preadv(int fd, const iovec* iov, int count, off_t offset) {
  DSIM_FILE_CALL("Preadv", fd, DoReadv(table, fd, iov, count, offset, true));
}
ssize_t Pwritev(int fd, const iovec* iov, int count, off_t offset) {
  DSIM_FILE_CALL("Pwritev", fd, DoWritev(table, fd, iov, count, offset, true));
}

namespace {

off_t DoLseek(FileTable* table, int fd, off_t offset, int whence);

}  // namespace

off_t SeekFile(FileTable* table, DiskFile* file, off_t offset, int whence) {
  // An ext4 directory (hashed, as every directory is with dir_index) ends at INT64_MAX.
  const Inode* inode = table->disk().Find(file->ino());
  const int64_t size = inode->is_dir() ? INT64_MAX : static_cast<int64_t>(inode->data.size());
  int64_t base;
  switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = static_cast<int64_t>(file->offset); break;
    case SEEK_END: base = size; break;
    case SEEK_DATA:
    case SEEK_HOLE:
      if (offset < 0 || offset >= size) return table->Fail(ENXIO, "past the end of the file");
      file->offset = static_cast<uint64_t>(whence == SEEK_DATA ? offset : size);
      return static_cast<off_t>(file->offset);
    default: return table->Fail(EINVAL, "bad whence");
  }
  int64_t target;
  if (__builtin_add_overflow(base, static_cast<int64_t>(offset), &target) || target < 0) {
    return table->Fail(EINVAL, "the resulting offset is negative or overflows");
  }
  file->offset = static_cast<uint64_t>(target);
  return static_cast<off_t>(target);
}

namespace {

off_t DoLseek(FileTable* table, int fd, off_t offset, int whence) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file, ESPIPE); e < 0) return e;
  return SeekFile(table, file, offset, whence);
}

int DoFsync(FileTable* table, int fd, bool data_only) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  return SyncFile(table, file, data_only);
}

int DoTruncate(FileTable* table, Ino ino, off_t length) {
  Disk& disk = table->disk();
  if (static_cast<uint64_t>(length) > kMaxFileBytes) return table->Fail(EFBIG, "too large");
  Delay(disk, disk.faults().write_latency, "truncate");
  disk.Truncate(ino, static_cast<uint64_t>(length));
  return 0;
}

int DoFtruncate(FileTable* table, int fd, off_t length) {
  if (length < 0) return table->Fail(EINVAL, "negative length");
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  if (!file->writable() || !table->disk().Find(file->ino())->is_file()) {
    return table->Fail(EINVAL, "not a regular file open for writing");
  }
  return DoTruncate(table, file->ino(), length);
}

int DoPathTruncate(FileTable* table, const char* path, off_t length) {
  if (length < 0) return table->Fail(EINVAL, "negative length");
  Resolved r;
  if (int e = Resolve(table, AT_FDCWD, path, &r); e < 0) return e;
  if (r.ino == kNoIno) return table->Fail(ENOENT, "no such file");
  Inode* inode = table->disk().Find(r.ino);
  if (inode->is_dir()) return table->Fail(EISDIR, "truncate of a directory");
  if (r.trailing_slash) return table->Fail(ENOTDIR, "the name ends in '/'");
  return DoTruncate(table, r.ino, length);
}

int DoFallocate(FileTable* table, int fd, int mode, off_t offset, off_t length) {
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  if (offset < 0 || length <= 0) return table->Fail(EINVAL, "bad range");
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE |
               FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE)) {
    return table->Fail(EOPNOTSUPP, "unknown fallocate mode");
  }
  if (!file->writable()) return table->Fail(EBADF, "not open for writing");
  Disk& disk = table->disk();
  if (disk.Find(file->ino())->is_dir()) return table->Fail(EISDIR, "fallocate of a directory");
  if (mode & ~FALLOC_FL_KEEP_SIZE) {
    return table->Fail(EOPNOTSUPP, "only modes 0 and FALLOC_FL_KEEP_SIZE are simulated");
  }
  if (static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > kMaxFileBytes) {
    return table->Fail(EFBIG, "too large");
  }
  if (!disk.Allocate(file->ino(), offset, length, (mode & FALLOC_FL_KEEP_SIZE) != 0)) {
    return table->Fail(ENOSPC, "the disk is full");
  }
  return 0;
}

int DoSyncFileRange(FileTable* table, int fd, off_t offset, off_t length, unsigned int flags) {
  constexpr unsigned int kValid =
      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
  if (flags & ~kValid) return table->Fail(EINVAL, "bad flags");
  if (offset < 0 || length < 0 || offset + length < offset) {
    return table->Fail(EINVAL, "bad range");
  }
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return e;
  // Starts (or waits for) writeback of the range; promises no durability: nothing here
  // flushes metadata or the device cache, so dsim makes nothing durable.
  return 0;
}

int DoAccess(FileTable* table, int dirfd, const char* path, int mode, int flags) {
  if (mode & ~(R_OK | W_OK | X_OK)) return table->Fail(EINVAL, "bad mode");
  if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return table->Fail(EINVAL, "bad flags");
  }
  Resolved r;
  if (int e = Resolve(table, dirfd, path, &r); e < 0) return e;
  if (r.ino == kNoIno) return table->Fail(ENOENT, "no such file");
  Inode* inode = table->disk().Find(r.ino);
  if (r.trailing_slash && !inode->is_dir()) return table->Fail(ENOTDIR, "not a directory");
  // Root: read and write always; execute if any execute bit is set (or a directory).
  if ((mode & X_OK) && !inode->is_dir() && (inode->mode & 0111) == 0) {
    return table->Fail(EACCES, "no execute permission bit is set");
  }
  return 0;
}

void* DoMmap(FileTable* table, size_t length, int protection, int flags, int fd, off_t offset,
             int* error) {
  auto fail = [&](int e, const char* why) -> void* {
    *error = -table->Fail(e, why);
    return MAP_FAILED;
  };
  if (length == 0) return fail(EINVAL, "zero length");
  if (offset % 4096 != 0 || offset < 0) return fail(EINVAL, "unaligned offset");
  const int type = flags & MAP_TYPE;
  if (type != MAP_SHARED && type != MAP_PRIVATE && type != MAP_SHARED_VALIDATE) {
    return fail(EINVAL, "neither MAP_SHARED nor MAP_PRIVATE");
  }
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) {
    *error = -e;
    return MAP_FAILED;
  }
  Disk& disk = table->disk();
  if (disk.Find(file->ino())->is_dir()) return fail(ENODEV, "mmap of a directory");
  if (!file->readable()) return fail(EACCES, "not open for reading");
  if (type != MAP_PRIVATE && (protection & PROT_WRITE)) {
    if (!file->writable()) return fail(EACCES, "shared writable mapping of a read-only fd");
    return fail(EINVAL, "shared writable mappings are not simulated");
  }
  const size_t rounded = (length + 4095) / 4096 * 4096;
  void* memory = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
  if (memory == MAP_FAILED) return fail(ENOMEM, "out of memory");
  disk.Read(file->ino(), static_cast<uint64_t>(offset), static_cast<char*>(memory), length);
  mprotect(memory, rounded, protection);
  table->AddMapping(memory, rounded);
  return memory;
}

}  // namespace

off_t Lseek(int fd, off_t offset, int whence) {
  DSIM_FILE_CALL("Lseek", fd, DoLseek(table, fd, offset, whence));
}
int Ftruncate(int fd, off_t length) {
  DSIM_FILE_CALL("Ftruncate", fd, DoFtruncate(table, fd, length));
}
int Truncate(const char* path, off_t length) {
  DSIM_FILE_CALL("Truncate", -1, DoPathTruncate(table, path, length));
}
int Fallocate(int fd, int mode, off_t offset, off_t length) {
  DSIM_FILE_CALL("Fallocate", fd, DoFallocate(table, fd, mode, offset, length));
}
int PosixFallocate(int fd, off_t offset, off_t length) {
  const int saved = errno;
  const int r = Fallocate(fd, 0, offset, length);
  const int error = r < 0 ? errno : 0;
  errno = saved;
  return error;
}
int Fsync(int fd) { DSIM_FILE_CALL("Fsync", fd, DoFsync(table, fd, false)); }
int Fdatasync(int fd) { DSIM_FILE_CALL("Fdatasync", fd, DoFsync(table, fd, true)); }
int SyncFileRange(int fd, off_t offset, off_t length, unsigned int flags) {
  DSIM_FILE_CALL("SyncFileRange", fd, DoSyncFileRange(table, fd, offset, length, flags));
}
void Sync() {
  FileTable* table = Enter("Sync");
  if (table == nullptr) return;
  table->disk().SyncAll();
}
int Syncfs(int fd) {
  FileTable* table = Enter("Syncfs");
  if (table == nullptr) return -1;
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) return Finish(table, "Syncfs", fd, e);
  table->disk().SyncAll();
  return Finish(table, "Syncfs", fd, 0);
}

int Rename(const char* from, const char* to) {
  DSIM_FILE_CALL("Rename", -1, DoRenameat2(table, AT_FDCWD, from, AT_FDCWD, to, 0));
}
int Renameat(int from_dirfd, const char* from, int to_dirfd, const char* to) {
  DSIM_FILE_CALL("Renameat", from_dirfd, DoRenameat2(table, from_dirfd, from, to_dirfd, to, 0));
}
int Renameat2(int from_dirfd, const char* from, int to_dirfd, const char* to,
              unsigned int flags) {
  DSIM_FILE_CALL("Renameat2", from_dirfd,
                 DoRenameat2(table, from_dirfd, from, to_dirfd, to, flags));
}
int Link(const char* existing, const char* name) {
  DSIM_FILE_CALL("Link", -1, DoLinkat(table, AT_FDCWD, existing, AT_FDCWD, name));
}
int Unlink(const char* path) {
  DSIM_FILE_CALL("Unlink", -1, DoUnlinkat(table, AT_FDCWD, path, 0));
}
int Unlinkat(int dirfd, const char* path, int flags) {
  DSIM_FILE_CALL("Unlinkat", dirfd, DoUnlinkat(table, dirfd, path, flags));
}
int Mkdir(const char* path, mode_t mode) {
  DSIM_FILE_CALL("Mkdir", -1, DoMkdirat(table, AT_FDCWD, path, mode));
}
int Mkdirat(int dirfd, const char* path, mode_t mode) {
  DSIM_FILE_CALL("Mkdirat", dirfd, DoMkdirat(table, dirfd, path, mode));
}
int Rmdir(const char* path) {
  DSIM_FILE_CALL("Rmdir", -1, DoUnlinkat(table, AT_FDCWD, path, AT_REMOVEDIR));
}

int Stat(const char* path, struct stat* out) {
  DSIM_FILE_CALL("Stat", -1, DoFstatat(table, AT_FDCWD, path, out, 0));
}
int Lstat(const char* path, struct stat* out) {
  DSIM_FILE_CALL("Lstat", -1, DoFstatat(table, AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW));
}
int Fstat(int fd, struct stat* out) {
  DSIM_FILE_CALL("Fstat", fd, DoFstatat(table, fd, "", out, AT_EMPTY_PATH));
}
int Fstatat(int dirfd, const char* path, struct stat* out, int flags) {
  DSIM_FILE_CALL("Fstatat", dirfd, DoFstatat(table, dirfd, path, out, flags));
}
int Access(const char* path, int mode) {
  DSIM_FILE_CALL("Access", -1, DoAccess(table, AT_FDCWD, path, mode, 0));
}
int Faccessat(int dirfd, const char* path, int mode, int flags) {
  DSIM_FILE_CALL("Faccessat", dirfd, DoAccess(table, dirfd, path, mode, flags));
}

namespace {
int DoStatfs(FileTable* table, const char* path, int fd, struct statfs* out) {
  if (path != nullptr || fd < 0) {
    Resolved r;
    if (int e = Resolve(table, AT_FDCWD, path, &r); e < 0) return e;
    if (r.ino == kNoIno) return table->Fail(ENOENT, "no such file");
  } else {
    DiskFile* file;
    if (int e = LookupFile(table, fd, &file); e < 0) return e;
  }
  if (out == nullptr || !AccessOk(out, sizeof(*out))) return table->Fail(EFAULT, "null statfs");
  FillStatfs(table->disk(), out);
  return 0;
}
}  // namespace

int Statfs(const char* path, struct statfs* out) {
  DSIM_FILE_CALL("Statfs", -1, DoStatfs(table, path, -1, out));
}
int Fstatfs(int fd, struct statfs* out) {
  DSIM_FILE_CALL("Fstatfs", fd, DoStatfs(table, nullptr, fd, out));
}

int Fcntl(int fd, int command, struct flock* lock) {
  FileTable* table = Enter("Fcntl");
  if (table == nullptr) return -1;
  switch (command) {
    case F_GETLK: case F_SETLK: case F_SETLKW:
    case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
      return Finish(table, "Fcntl", fd, DoLock(table, fd, command, lock));
    default:
      return Finish(table, "Fcntl", fd,
                    DoFcntl(table, fd, command, static_cast<long>(reinterpret_cast<intptr_t>(lock))));
  }
}
int Flock(int fd, int operation) {
  DSIM_FILE_CALL("Flock", fd, DoFlock(table, fd, operation));
}

void* Mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset) {
  FileTable* table = Enter("Mmap");
  if (table == nullptr) return MAP_FAILED;
  int error = 0;
  void* result = DoMmap(table, length, protection, flags, fd, offset, &error);
  if (result == MAP_FAILED) errno = error;
  return result;
}
int Munmap(void* address, size_t length) {
  FileTable* table = Enter("Munmap");
  if (table == nullptr) return -1;
  const size_t mapped = table->TakeMapping(address);
  if (mapped == 0) return Finish(table, "Munmap", -1, table->Fail(EINVAL, "not a dsim mapping"));
  munmap(address, mapped);
  return Finish(table, "Munmap", -1, 0);
}

// ---- Directory streams ------------------------------------------------------------------

namespace {

void Snapshot(FileTable* table, DirStream* stream) {
  Disk& disk = table->disk();
  DiskFile* file;
  if (LookupFile(table, stream->fd, &file) < 0) return;
  const Ino ino = file->ino();
  Inode* dir = disk.Find(ino);
  stream->entries.clear();
  stream->entries.push_back({".", ino, DT_DIR});
  stream->entries.push_back({"..", dir->parent, DT_DIR});
  for (const auto& [name, child] : dir->entries) {
    Inode* inode = disk.Find(child);
    stream->entries.push_back({name, child, inode != nullptr && inode->is_dir() ? DT_DIR : DT_REG});
  }
  stream->next = 0;
}

DIR* MakeStream(FileTable* table, int fd) {
  DirStream* stream = table->NewDirStream();
  stream->fd = fd;
  Snapshot(table, stream);
  return reinterpret_cast<DIR*>(stream);
}

}  // namespace

DIR* Opendir(const char* path) {
  FileTable* table = Enter("Opendir");
  if (table == nullptr) return nullptr;
  const int fd = DoOpenat(table, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) {
    errno = -fd;
    return nullptr;
  }
  return MakeStream(table, fd);
}

DIR* Fdopendir(int fd) {
  FileTable* table = Enter("Fdopendir");
  if (table == nullptr) return nullptr;
  DiskFile* file;
  if (int e = LookupFile(table, fd, &file); e < 0) {
    errno = -e;
    return nullptr;
  }
  if (!table->disk().Find(file->ino())->is_dir()) {
    errno = ENOTDIR;
    return nullptr;
  }
  return MakeStream(table, fd);
}

dirent* Readdir(DIR* dir) {
  FileTable* table = Enter("Readdir");
  if (table == nullptr) return nullptr;
  auto* stream = reinterpret_cast<DirStream*>(dir);
  if (stream == nullptr || !table->OwnsDirStream(stream)) {
    errno = EBADF;
    return nullptr;
  }
  if (stream->next >= stream->entries.size()) return nullptr;
  const DirStream::Entry& entry = stream->entries[stream->next++];
  dirent& out = stream->current;
  std::memset(&out, 0, sizeof(out));
  out.d_ino = entry.ino;
  out.d_off = static_cast<off_t>(stream->next);
  out.d_reclen = sizeof(out);
  out.d_type = entry.type;
  std::memcpy(out.d_name, entry.name.c_str(), entry.name.size() + 1);
  return &out;
}

void Rewinddir(DIR* dir) {
  FileTable* table = Enter("Rewinddir");
  if (table == nullptr) return;
  auto* stream = reinterpret_cast<DirStream*>(dir);
  if (stream != nullptr && table->OwnsDirStream(stream)) {
    Snapshot(table, stream);
  }
}

int Closedir(DIR* dir) {
  FileTable* table = Enter("Closedir");
  if (table == nullptr) return -1;
  auto* stream = reinterpret_cast<DirStream*>(dir);
  if (stream == nullptr || !table->OwnsDirStream(stream)) {
    errno = EBADF;
    return -1;
  }
  const int fd = stream->fd;
  table->DeleteDirStream(stream);
  return Finish(table, "Closedir", fd, table->stack()->Close(fd));
}

int Dirfd(DIR* dir) {
  auto* stream = reinterpret_cast<DirStream*>(dir);
  if (stream == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return stream->fd;
}

const std::string& LastFileErrorMessage() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr || !scheduler->InTask()) return OutsideMessage();
  FileTable* table = TableOf(*scheduler, scheduler->CurrentGroup(), false);
  if (table == nullptr) return OutsideMessage();
  return table->LastMessage(scheduler->CurrentTaskId());
}

// ---- DiskFile: the calls every descriptor kind answers -----------------------------------

namespace internal {

const char DiskFile::kKind[] = "file";

int DiskFile::Fcntl(HostStack&, int cmd, long arg) {
  switch (cmd) {
    case F_GETFD: return cloexec ? FD_CLOEXEC : 0;
    case F_SETFD: cloexec = (arg & FD_CLOEXEC) != 0; return 0;
    case F_GETFL: return flags();
    case F_SETFL: {
      if (table_->detached()) return -EIO;
      if ((arg & O_DIRECT) && table_->disk().Find(ino_)->is_dir()) {
        return table_->Fail(EINVAL, "O_DIRECT on a directory");
      }
      set_flags((flags() & ~kSettableFlags) | (static_cast<int>(arg) & kSettableFlags));
      return 0;
    }
    default: return kFcntlNotHandled;
  }
}

ssize_t DiskFile::Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  if (table_->detached()) return -EIO;
  table_->set_stack(&stack);
  if (iov.size() == 1) {
    return ReadAt(table_, this, static_cast<char*>(iov[0].iov_base), iov[0].iov_len, 0, false);
  }
  return ReadvAt(table_, this, iov, 0, false);
}

ssize_t DiskFile::Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  if (table_->detached()) return -EIO;
  table_->set_stack(&stack);
  if (iov.size() == 1) {
    return WriteAt(table_, this, static_cast<const char*>(iov[0].iov_base), iov[0].iov_len, 0,
                   false);
  }
  return WritevAt(table_, this, iov, 0, false);
}

off_t DiskFile::Seek(off_t offset, int whence) {
  if (table_->detached()) return -EIO;
  return SeekFile(table_, this, offset, whence);
}

void DiskFile::OnLastClose() { table_->OnFileClosed(ino_, id_); }

}  // namespace internal
}  // namespace dsim
