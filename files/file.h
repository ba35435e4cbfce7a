// The POSIX file API over dsim's simulated disks (disk/disk.h), with Linux's results and
// errno.
//
// Example (the classic atomic replace, which survives every crash seed):
//
//   dsim::Simulation sim(dsim::SimulationOptions{.seed = 7});
//   dsim::Host& db = sim.AddHost({.name = "db", .start = [] {
//     int fd = dsim::Open("/data.tmp", O_CREAT | O_WRONLY | O_TRUNC, 0644);
//     dsim::Write(fd, "v2", 2);
//     dsim::Fsync(fd);                          // the data is durable
//     dsim::Close(fd);
//     dsim::Rename("/data.tmp", "/data");       // atomic, but not yet durable
//     int dir = dsim::Open("/", O_RDONLY | O_DIRECTORY);
//     dsim::Fsync(dir);                         // now the new name is durable
//     dsim::Close(dir);
//   }});
//   sim.Spawn("chaos", [&] { dsim::SleepFor(absl::Milliseconds(1)); sim.Crash(db.id()); });
//
// Contract. Every call has the POSIX signature and result convention: -1 (or null) and
// errno exactly as Linux (ext4) sets it in the same situation; the differential test
// (//tests:files_differential_test) checks this against the kernel. Descriptors share
// the host's number space with sockets (sockets/socket.h): Read, Write and Close (and
// GetFlags, SetNonblock) declared there work on files too. Paths are resolved from the
// root of the calling task's host's disk; the working directory is "/". Tasks act as
// root (permission bits are kept and reported but never refuse).
//
// Scheduling. Every call is a scheduling point. Calls take virtual time only when the
// disk's StorageFaults give them a latency; record locks wait (F_SETLKW, F_OFD_SETLKW,
// flock without LOCK_NB) in virtual time and show in deadlock reports.
//
// Durability. See disk/disk.h: writes land in the page cache; Fsync, Fdatasync,
// O_SYNC/O_DSYNC and O_DIRECT make file data durable; a new, linked, unlinked or renamed
// name is durable only after its directory is fsynced. SyncFileRange starts writeback
// but promises nothing: as in Linux (it flushes neither metadata nor the device
// cache), nothing becomes durable through it.
//
// Not simulated: symbolic links, chdir (the working directory is "/"), permission
// checks, writable shared mappings (Mmap gives EINVAL for PROT_WRITE with MAP_SHARED),
// inotify, xattrs, O_TMPFILE (EOPNOTSUPP), O_PATH (EINVAL), dup/dup2 (the
// unmodified-code issue brings them), Poll on file descriptors.
#ifndef DSIM_FILES_FILE_H_
#define DSIM_FILES_FILE_H_

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <string>

#include "sockets/socket.h"  // Read, Write, Close, GetFlags, SetNonblock: shared.

namespace dsim {

// ---- Opening and closing ---------------------------------------------------------------
// Flags: O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY,
// O_CLOEXEC, O_NONBLOCK (no effect on files), O_NOFOLLOW, O_NOATIME, O_LARGEFILE,
// O_DIRECT (offset, length and buffer 512-byte aligned, else EINVAL; data is durable on
// return), O_DSYNC and O_SYNC (each write is fdatasync'ed or fsync'ed).
int Open(const char* path, int flags, mode_t mode = 0);
int Openat(int dirfd, const char* path, int flags, mode_t mode = 0);
int Creat(const char* path, mode_t mode);

// ---- Data --------------------------------------------------------------------------------
ssize_t Pread(int fd, void* buffer, size_t length, off_t offset);
ssize_t Pwrite(int fd, const void* buffer, size_t length, off_t offset);
// Readv and Writev (sockets/socket.h) work on files too: one call for every descriptor.
ssize_t Preadv(int fd, const iovec* iov, int count, off_t offset);
ssize_t Pwritev(int fd, const iovec* iov, int count, off_t offset);
// SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE (the whole file is data).
off_t Lseek(int fd, off_t offset, int whence);
int Ftruncate(int fd, off_t length);
int Truncate(const char* path, off_t length);
// Mode 0 or FALLOC_FL_KEEP_SIZE; other modes give EOPNOTSUPP.
int Fallocate(int fd, int mode, off_t offset, off_t length);
int PosixFallocate(int fd, off_t offset, off_t length);  // Returns the error number.

// ---- Durability --------------------------------------------------------------------------
int Fsync(int fd);
int Fdatasync(int fd);
// Flags: SYNC_FILE_RANGE_WAIT_BEFORE, _WRITE, _WAIT_AFTER. Makes nothing durable.
int SyncFileRange(int fd, off_t offset, off_t length, unsigned int flags);
void Sync();        // Everything on the host's disk becomes durable.
int Syncfs(int fd);

// ---- Names -------------------------------------------------------------------------------
int Rename(const char* from, const char* to);
int Renameat(int from_dirfd, const char* from, int to_dirfd, const char* to);
// Flags: RENAME_NOREPLACE, RENAME_EXCHANGE (RENAME_WHITEOUT gives EINVAL).
int Renameat2(int from_dirfd, const char* from, int to_dirfd, const char* to,
              unsigned int flags);
int Link(const char* existing, const char* name);
int Unlink(const char* path);
int Unlinkat(int dirfd, const char* path, int flags);  // Flags: 0 or AT_REMOVEDIR.
int Mkdir(const char* path, mode_t mode);
int Mkdirat(int dirfd, const char* path, mode_t mode);
int Rmdir(const char* path);

// ---- Directories ----------------------------------------------------------------------
// "." and ".." first, then the entries in name order. The stream reads a snapshot taken
// at Opendir (or Rewinddir). DIR is opaque; only these calls accept it.
DIR* Opendir(const char* path);
DIR* Fdopendir(int fd);
dirent* Readdir(DIR* dir);
void Rewinddir(DIR* dir);
int Closedir(DIR* dir);
int Dirfd(DIR* dir);

// ---- Metadata ---------------------------------------------------------------------------
int Stat(const char* path, struct stat* out);
int Lstat(const char* path, struct stat* out);
int Fstat(int fd, struct stat* out);
// Flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, AT_NO_AUTOMOUNT.
int Fstatat(int dirfd, const char* path, struct stat* out, int flags);
int Access(const char* path, int mode);
int Faccessat(int dirfd, const char* path, int mode, int flags);
int Statfs(const char* path, struct statfs* out);
int Fstatfs(int fd, struct statfs* out);

// ---- Descriptor flags and locks ------------------------------------------------------------
// Fcntl(fd, command, long) (sockets/socket.h) serves every descriptor; on a file:
// F_GETFD, F_SETFD, F_GETFL, F_SETFL (O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME).
// F_GETLK, F_SETLK, F_SETLKW (POSIX record locks, owned by the host's process: they
// never conflict with each other, since a host is one process) and F_OFD_GETLK,
// F_OFD_SETLK, F_OFD_SETLKW (owned by the open file description: they conflict between
// descriptions, and with the process's POSIX locks).
int Fcntl(int fd, int command, struct flock* lock);
// LOCK_SH, LOCK_EX, LOCK_UN, optionally | LOCK_NB: owned by the open file description.
int Flock(int fd, int operation);

// ---- Mappings --------------------------------------------------------------------------
// A private snapshot of the file's bytes (read-only, or copy-on-write for MAP_PRIVATE
// with PROT_WRITE): later writes to the file do not show in it. Bytes past the end of
// the file read as zeros (Linux raises SIGBUS for whole pages past it).
void* Mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset);
int Munmap(void* address, size_t length);

// Why the calling task's last failed file call failed, in words.
const std::string& LastFileErrorMessage();

}  // namespace dsim

#endif  // DSIM_FILES_FILE_H_
