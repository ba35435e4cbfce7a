// The Linux kernel as the oracle for the file calls: identical operation sequences run
// against a real directory (ext4 under the test's temporary directory) and against a
// simulated disk, and every return value and errno is compared. Non-crash semantics
// only: crashes have no kernel counterpart to compare with.
//
// Method. A sequence is a list of Ops over paths (relative to the root of the world: a
// fresh real directory, or the simulated disk's "/") and descriptor slots. One Executor
// template runs it against RealApi (libc) or SimApi (dsim, inside a task on a simulated
// host). Results are normalized: descriptors become "fd", errno becomes its name, stat
// becomes type/size/nlink, readdir becomes the sorted names. Hand-written sequences
// cover each call's error paths (as LTP and xfstests' generic tests check them); a
// seeded generator adds random sequences over a small namespace. The final line is
// `agreement: A of N sequences`; any divergence fails the test.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "files/file.h"
#include "scheduler/random.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

enum class K {
  kOpen,       // p1, a=flags, b=mode -> slot c
  kOpenat,     // a=dir slot (or -100 = AT_FDCWD), p1, b=flags -> slot c
  kClose,      // a=slot
  kWrite,      // a=slot b=bytes
  kPwrite,     // a=slot b=bytes c=offset
  kRead,       // a=slot b=bytes
  kPread,      // a=slot b=bytes c=offset
  kWritev,     // a=slot: "ab" + "cde"
  kReadv,      // a=slot: 2 + 3 bytes
  kLseek,      // a=slot b=offset c=whence
  kFsync,      // a=slot
  kFdatasync,  // a=slot
  kSyncRange,  // a=slot b=offset c=flags
  kFtruncate,  // a=slot b=length
  kTruncate,   // p1 b=length
  kFallocate,  // a=slot b=mode c=length
  kRename,     // p1 p2
  kRenameat2,  // p1 p2 a=flags
  kLink,       // p1 p2
  kUnlink,     // p1
  kUnlinkat,   // p1 a=flags
  kMkdir,      // p1
  kRmdir,      // p1
  kStat,       // p1
  kFstat,      // a=slot
  kFstatat,    // a=slot (dir) p1 b=flags
  kAccess,     // p1 a=mode
  kGetfl,      // a=slot
  kSetfl,      // a=slot b=flags
  kSetlk,      // a=slot b=type c=OFD
  kGetlk,      // a=slot b=type c=OFD
  kFlock,      // a=slot b=op
  kList,       // p1: sorted names of readdir
  kStatfs,     // p1: success only
};

struct Op {
  K kind;
  std::string p1, p2;
  long a = 0, b = 0, c = 0;
};

constexpr int kSlots = 6;
constexpr long kBadSlot = 99;     // A descriptor that is never open.
constexpr long kCwd = -100;       // AT_FDCWD.

std::string ErrnoName(int e) {
  const char* name = strerrorname_np(e);
  return name != nullptr ? name : absl::StrCat("errno", e);
}

std::string StatSummary(const struct stat& st, bool with_size = true) {
  const char* type = S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other";
  return with_size && S_ISREG(st.st_mode)
             ? absl::StrCat(type, " size=", st.st_size, " nlink=", st.st_nlink)
             : absl::StrCat(type, " nlink=", st.st_nlink);
}

struct RealApi {
  std::string root;
  std::string P(const std::string& p) const { return p.empty() ? "" : root + p; }
  int open(const std::string& p, int f, mode_t m) { return ::open(P(p).c_str(), f, m); }
  int openat(int d, const std::string& p, int f) {
    return ::openat(d, d == AT_FDCWD ? P(p).c_str() : p.c_str(), f, 0644);
  }
  int close(int fd) { return ::close(fd); }
  ssize_t write(int fd, const void* b, size_t n) { return ::write(fd, b, n); }
  ssize_t pwrite(int fd, const void* b, size_t n, off_t o) { return ::pwrite(fd, b, n, o); }
  ssize_t read(int fd, void* b, size_t n) { return ::read(fd, b, n); }
  ssize_t pread(int fd, void* b, size_t n, off_t o) { return ::pread(fd, b, n, o); }
  ssize_t writev(int fd, const iovec* v, int n) { return ::writev(fd, v, n); }
  ssize_t readv(int fd, const iovec* v, int n) { return ::readv(fd, v, n); }
  off_t lseek(int fd, off_t o, int w) { return ::lseek(fd, o, w); }
  int fsync(int fd) { return ::fsync(fd); }
  int fdatasync(int fd) { return ::fdatasync(fd); }
  int sync_file_range(int fd, off_t o, off_t n, unsigned f) { return ::sync_file_range(fd, o, n, f); }
  int ftruncate(int fd, off_t n) { return ::ftruncate(fd, n); }
  int truncate(const std::string& p, off_t n) { return ::truncate(P(p).c_str(), n); }
  int fallocate(int fd, int m, off_t o, off_t n) { return ::fallocate(fd, m, o, n); }
  int rename(const std::string& a, const std::string& b) {
    return ::rename(P(a).c_str(), P(b).c_str());
  }
  int renameat2(const std::string& a, const std::string& b, unsigned f) {
    return ::renameat2(AT_FDCWD, P(a).c_str(), AT_FDCWD, P(b).c_str(), f);
  }
  int link(const std::string& a, const std::string& b) { return ::link(P(a).c_str(), P(b).c_str()); }
  int unlink(const std::string& p) { return ::unlink(P(p).c_str()); }
  int unlinkat(const std::string& p, int f) { return ::unlinkat(AT_FDCWD, P(p).c_str(), f); }
  int mkdir(const std::string& p) { return ::mkdir(P(p).c_str(), 0755); }
  int rmdir(const std::string& p) { return ::rmdir(P(p).c_str()); }
  int stat(const std::string& p, struct stat* s) { return ::stat(P(p).c_str(), s); }
  int fstat(int fd, struct stat* s) { return ::fstat(fd, s); }
  int fstatat(int d, const std::string& p, struct stat* s, int f) {
    return ::fstatat(d, d == AT_FDCWD ? P(p).c_str() : p.c_str(), s, f);
  }
  int access(const std::string& p, int m) { return ::access(P(p).c_str(), m); }
  int fcntl_int(int fd, int cmd, long arg) { return ::fcntl(fd, cmd, arg); }
  int fcntl_lock(int fd, int cmd, struct flock* l) { return ::fcntl(fd, cmd, l); }
  int flock(int fd, int op) { return ::flock(fd, op); }
  int statfs(const std::string& p, struct statfs* s) { return ::statfs(P(p).c_str(), s); }
  DIR* opendir(const std::string& p) { return ::opendir(P(p).c_str()); }
  dirent* readdir(DIR* d) { return ::readdir(d); }
  int closedir(DIR* d) { return ::closedir(d); }
};

struct SimApi {
  int open(const std::string& p, int f, mode_t m) { return dsim::Open(p.c_str(), f, m); }
  int openat(int d, const std::string& p, int f) { return dsim::Openat(d, p.c_str(), f, 0644); }
  int close(int fd) { return dsim::Close(fd); }
  ssize_t write(int fd, const void* b, size_t n) { return dsim::Write(fd, b, n); }
  ssize_t pwrite(int fd, const void* b, size_t n, off_t o) { return dsim::Pwrite(fd, b, n, o); }
  ssize_t read(int fd, void* b, size_t n) { return dsim::Read(fd, b, n); }
  ssize_t pread(int fd, void* b, size_t n, off_t o) { return dsim::Pread(fd, b, n, o); }
  ssize_t writev(int fd, const iovec* v, int n) { return dsim::Writev(fd, v, n); }
  ssize_t readv(int fd, const iovec* v, int n) { return dsim::Readv(fd, v, n); }
  off_t lseek(int fd, off_t o, int w) { return dsim::Lseek(fd, o, w); }
  int fsync(int fd) { return dsim::Fsync(fd); }
  int fdatasync(int fd) { return dsim::Fdatasync(fd); }
  int sync_file_range(int fd, off_t o, off_t n, unsigned f) { return dsim::SyncFileRange(fd, o, n, f); }
  int ftruncate(int fd, off_t n) { return dsim::Ftruncate(fd, n); }
  int truncate(const std::string& p, off_t n) { return dsim::Truncate(p.c_str(), n); }
  int fallocate(int fd, int m, off_t o, off_t n) { return dsim::Fallocate(fd, m, o, n); }
  int rename(const std::string& a, const std::string& b) { return dsim::Rename(a.c_str(), b.c_str()); }
  int renameat2(const std::string& a, const std::string& b, unsigned f) {
    return dsim::Renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), f);
  }
  int link(const std::string& a, const std::string& b) { return dsim::Link(a.c_str(), b.c_str()); }
  int unlink(const std::string& p) { return dsim::Unlink(p.c_str()); }
  int unlinkat(const std::string& p, int f) { return dsim::Unlinkat(AT_FDCWD, p.c_str(), f); }
  int mkdir(const std::string& p) { return dsim::Mkdir(p.c_str(), 0755); }
  int rmdir(const std::string& p) { return dsim::Rmdir(p.c_str()); }
  int stat(const std::string& p, struct stat* s) { return dsim::Stat(p.c_str(), s); }
  int fstat(int fd, struct stat* s) { return dsim::Fstat(fd, s); }
  int fstatat(int d, const std::string& p, struct stat* s, int f) {
    return dsim::Fstatat(d, p.c_str(), s, f);
  }
  int access(const std::string& p, int m) { return dsim::Access(p.c_str(), m); }
  int fcntl_int(int fd, int cmd, long arg) { return dsim::Fcntl(fd, cmd, arg); }
  int fcntl_lock(int fd, int cmd, struct flock* l) { return dsim::Fcntl(fd, cmd, l); }
  int flock(int fd, int op) { return dsim::Flock(fd, op); }
  int statfs(const std::string& p, struct statfs* s) { return dsim::Statfs(p.c_str(), s); }
  DIR* opendir(const std::string& p) { return dsim::Opendir(p.c_str()); }
  dirent* readdir(DIR* d) { return dsim::Readdir(d); }
  int closedir(DIR* d) { return dsim::Closedir(d); }
};

template <typename Api>
std::vector<std::string> Execute(Api& api, const std::vector<Op>& ops) {
  std::vector<std::string> out;
  int slots[kSlots];
  std::fill(std::begin(slots), std::end(slots), -1);
  auto fd = [&](long slot) -> int {
    if (slot == kCwd) return AT_FDCWD;
    if (slot < 0 || slot >= kSlots) return 1000 + static_cast<int>(slot);
    return slots[slot] < 0 ? 1000 + static_cast<int>(slot) : slots[slot];
  };
  auto result = [&](int64_t r) {
    out.push_back(r < 0 ? absl::StrCat("-1 ", ErrnoName(errno)) : absl::StrCat(r));
  };
  const std::string data(8192, 'x');
  for (const Op& op : ops) {
    errno = 0;
    switch (op.kind) {
      case K::kOpen:
      case K::kOpenat: {
        const int r = op.kind == K::kOpen ? api.open(op.p1, op.a, op.b)
                                          : api.openat(fd(op.a), op.p1, op.b);
        if (r >= 0) {
          if (slots[op.c] >= 0) api.close(slots[op.c]);
          slots[op.c] = r;
          out.push_back("fd");
        } else {
          result(r);
        }
        break;
      }
      case K::kClose: {
        const int r = api.close(fd(op.a));
        if (r == 0 && op.a >= 0 && op.a < kSlots) slots[op.a] = -1;
        result(r);
        break;
      }
      case K::kWrite: result(api.write(fd(op.a), data.data(), op.b)); break;
      case K::kPwrite: result(api.pwrite(fd(op.a), data.data(), op.b, op.c)); break;
      case K::kRead:
      case K::kPread: {
        std::string buffer(std::max<long>(op.b, 1), '\0');
        const ssize_t r = op.kind == K::kRead ? api.read(fd(op.a), buffer.data(), op.b)
                                              : api.pread(fd(op.a), buffer.data(), op.b, op.c);
        result(r);
        if (r > 0) out.back() += absl::StrCat(" x=", std::count(buffer.begin(), buffer.begin() + r, 'x'));
        break;
      }
      case K::kWritev: {
        char a[] = "ab", b[] = "cde";
        iovec v[2] = {{a, 2}, {b, 3}};
        result(api.writev(fd(op.a), v, 2));
        break;
      }
      case K::kReadv: {
        char a[2], b[3];
        iovec v[2] = {{a, 2}, {b, 3}};
        result(api.readv(fd(op.a), v, 2));
        break;
      }
      case K::kLseek: result(api.lseek(fd(op.a), op.b, static_cast<int>(op.c))); break;
      case K::kFsync: result(api.fsync(fd(op.a))); break;
      case K::kFdatasync: result(api.fdatasync(fd(op.a))); break;
      case K::kSyncRange:
        result(api.sync_file_range(fd(op.a), op.b, 0, static_cast<unsigned>(op.c)));
        break;
      case K::kFtruncate: result(api.ftruncate(fd(op.a), op.b)); break;
      case K::kTruncate: result(api.truncate(op.p1, op.b)); break;
      case K::kFallocate: result(api.fallocate(fd(op.a), static_cast<int>(op.b), 0, op.c)); break;
      case K::kRename: result(api.rename(op.p1, op.p2)); break;
      case K::kRenameat2: result(api.renameat2(op.p1, op.p2, static_cast<unsigned>(op.a))); break;
      case K::kLink: result(api.link(op.p1, op.p2)); break;
      case K::kUnlink: result(api.unlink(op.p1)); break;
      case K::kUnlinkat: result(api.unlinkat(op.p1, static_cast<int>(op.a))); break;
      case K::kMkdir: result(api.mkdir(op.p1)); break;
      case K::kRmdir: result(api.rmdir(op.p1)); break;
      case K::kStat:
      case K::kFstat:
      case K::kFstatat: {
        struct stat st;
        const int r = op.kind == K::kStat    ? api.stat(op.p1, &st)
                      : op.kind == K::kFstat ? api.fstat(fd(op.a), &st)
                                             : api.fstatat(fd(op.a), op.p1, &st,
                                                           static_cast<int>(op.b));
        result(r);
        if (r == 0) out.back() += " " + StatSummary(st);
        break;
      }
      case K::kAccess: result(api.access(op.p1, static_cast<int>(op.a))); break;
      case K::kGetfl: {
        const int r = api.fcntl_int(fd(op.a), F_GETFL, 0);
        result(r);
        if (r >= 0) out.back() = absl::StrCat(r);
        break;
      }
      case K::kSetfl: result(api.fcntl_int(fd(op.a), F_SETFL, op.b)); break;
      case K::kSetlk:
      case K::kGetlk: {
        struct flock lock = {};
        lock.l_type = static_cast<short>(op.b);
        lock.l_whence = SEEK_SET;
        const int cmd = op.kind == K::kSetlk ? (op.c ? F_OFD_SETLK : F_SETLK)
                                             : (op.c ? F_OFD_GETLK : F_GETLK);
        result(api.fcntl_lock(fd(op.a), cmd, &lock));
        if (op.kind == K::kGetlk && errno == 0) out.back() += absl::StrCat(" type=", lock.l_type);
        break;
      }
      case K::kFlock: result(api.flock(fd(op.a), static_cast<int>(op.b))); break;
      case K::kList: {
        DIR* dir = api.opendir(op.p1);
        if (dir == nullptr) {
          result(-1);
          break;
        }
        std::vector<std::string> names;
        while (dirent* entry = api.readdir(dir)) names.push_back(entry->d_name);
        api.closedir(dir);
        std::sort(names.begin(), names.end());
        out.push_back(absl::StrJoin(names, ","));
        break;
      }
      case K::kStatfs: {
        struct statfs fs;
        result(api.statfs(op.p1, &fs));
        break;
      }
    }
  }
  for (int slot : slots) {
    if (slot >= 0) api.close(slot);
  }
  return out;
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

std::vector<std::string> RunReal(const std::vector<Op>& ops) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/dsimfs.XXXXXX");
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  RealApi api{dir};
  const mode_t old_umask = umask(022);
  std::vector<std::string> out = Execute(api, ops);
  umask(old_umask);
  nftw(dir, RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  return out;
}

std::vector<std::string> RunSim(const std::vector<Op>& ops) {
  Simulation sim(SimulationOptions{.seed = 1});
  std::vector<std::string> out;
  sim.AddHost({.name = "h", .start = [&] {
                 SimApi api;
                 out = Execute(api, ops);
               },
               .start_daemon = false});
  EXPECT_TRUE(sim.Run().ok());
  return out;
}

// ---- Hand-written sequences -----------------------------------------------------------

Op Open(std::string p, int flags, int slot = 0) { return {K::kOpen, std::move(p), "", flags, 0644, slot}; }

std::vector<std::vector<Op>> HandWritten() {
  const int C = O_CREAT | O_RDWR;
  std::vector<std::vector<Op>> s;
  // open(2)
  s.push_back({Open("/f", O_RDONLY)});
  s.push_back({Open("/f", C), Open("/f", C | O_EXCL, 1), Open("/f", O_RDONLY | O_DIRECTORY, 2)});
  s.push_back({Open("/f/", C)});
  s.push_back({Open("/f", C), Open("/f/", O_RDONLY, 1)});
  s.push_back({Open("/", O_RDWR), Open("/", O_RDONLY, 1), Open("/", O_WRONLY, 2)});
  s.push_back({Open("/", O_RDONLY | O_TRUNC), Open("/", O_CREAT | O_RDONLY, 1)});
  s.push_back({{K::kMkdir, "/d"}, Open("/d", O_CREAT | O_EXCL | O_RDONLY),
               Open("/d", O_CREAT | O_DIRECTORY, 1), Open("/d/.", O_CREAT | O_RDONLY, 2),
               Open("/d/", O_CREAT | O_EXCL | O_RDONLY, 3), Open("/d/", O_CREAT | O_RDONLY, 4)});
  s.push_back({Open("/nodir/f", C), Open("", O_RDONLY, 1)});
  s.push_back({Open("/f", C), Open("/f/g", C, 1), Open("/f/g", O_RDONLY, 2)});
  s.push_back({Open(std::string(300, 'n'), C), Open("/" + std::string(256, 'n'), C, 1)});
  s.push_back({Open("/f", C), {K::kWrite, "", "", 0, 100}, Open("/f", O_RDWR | O_TRUNC, 1),
               {K::kFstat, "", "", 1}, {K::kStat, "/f"}});
  s.push_back({Open("/f", C | O_APPEND), {K::kWrite, "", "", 0, 10}, {K::kPwrite, "", "", 0, 5, 0},
               {K::kStat, "/f"}, {K::kGetfl, "", "", 0}});
  s.push_back({Open("/f", C), {K::kGetfl, "", "", 0}, Open("/f", O_WRONLY | O_CLOEXEC, 1),
               {K::kGetfl, "", "", 1}, {K::kSetfl, "", "", 1, O_APPEND | O_NONBLOCK},
               {K::kGetfl, "", "", 1}, Open("/", O_RDONLY | O_DIRECTORY, 2), {K::kGetfl, "", "", 2}});
  s.push_back({Open("/f", O_CREAT | O_WRONLY | O_DSYNC), {K::kGetfl, "", "", 0},
               Open("/g", O_CREAT | O_WRONLY | O_SYNC, 1), {K::kGetfl, "", "", 1}});
  // openat
  s.push_back({{K::kMkdir, "/d"}, Open("/d", O_RDONLY | O_DIRECTORY, 0),
               {K::kOpenat, "x", "", 0, C, 1}, {K::kOpenat, "x", "", kBadSlot, C, 2},
               {K::kOpenat, "../d/x", "", 0, O_RDONLY, 4},
               {K::kOpenat, "y", "", 1, C, 5}, {K::kStat, "/d/x"}});
  // read/write
  s.push_back({Open("/f", C), {K::kWrite, "", "", 0, 4096}, {K::kRead, "", "", 0, 10},
               {K::kLseek, "", "", 0, 0, SEEK_SET}, {K::kRead, "", "", 0, 5000},
               {K::kRead, "", "", 0, 10}, {K::kPread, "", "", 0, 100, 4000},
               {K::kPread, "", "", 0, 100, -1}, {K::kPwrite, "", "", 0, 10, -5}});
  s.push_back({Open("/f", O_CREAT | O_WRONLY), {K::kRead, "", "", 0, 10}, {K::kRead, "", "", 0, 0},
               Open("/f", O_RDONLY, 1), {K::kWrite, "", "", 1, 10}, {K::kWrite, "", "", 1, 0},
               {K::kPwrite, "", "", 1, 5, 0}, {K::kPread, "", "", 0, 5, 0}});
  s.push_back({Open("/", O_RDONLY), {K::kRead, "", "", 0, 10}, {K::kRead, "", "", 0, 0},
               {K::kPread, "", "", 0, 10, 0}, {K::kWrite, "", "", 0, 1}});
  s.push_back({{K::kRead, "", "", kBadSlot, 1}, {K::kWrite, "", "", kBadSlot, 1},
               {K::kPread, "", "", kBadSlot, 1, 0}, {K::kClose, "", "", kBadSlot},
               {K::kFsync, "", "", kBadSlot}, {K::kLseek, "", "", kBadSlot, 0, SEEK_SET},
               {K::kFtruncate, "", "", kBadSlot, 0}, {K::kFstat, "", "", kBadSlot},
               {K::kFallocate, "", "", kBadSlot, 0, 10}, {K::kFlock, "", "", kBadSlot, LOCK_EX},
               {K::kGetfl, "", "", kBadSlot}, {K::kSyncRange, "", "", kBadSlot, 0, 0}});
  s.push_back({Open("/f", C), {K::kWritev, "", "", 0}, {K::kLseek, "", "", 0, 1, SEEK_SET},
               {K::kReadv, "", "", 0}, {K::kReadv, "", "", 0}, {K::kStat, "/f"}});
  // lseek
  s.push_back({Open("/f", C), {K::kWrite, "", "", 0, 100}, {K::kLseek, "", "", 0, -1, SEEK_SET},
               {K::kLseek, "", "", 0, 10, SEEK_END}, {K::kLseek, "", "", 0, -200, SEEK_END},
               {K::kLseek, "", "", 0, 5, SEEK_CUR}, {K::kLseek, "", "", 0, 0, 7},
               {K::kLseek, "", "", 0, 50, SEEK_DATA}, {K::kLseek, "", "", 0, 50, SEEK_HOLE},
               {K::kLseek, "", "", 0, 100, SEEK_DATA}, {K::kLseek, "", "", 0, 500, SEEK_HOLE},
               {K::kWrite, "", "", 0, 10}, {K::kStat, "/f"}});
  s.push_back({{K::kMkdir, "/d"}, Open("/d", O_RDONLY), {K::kLseek, "", "", 0, 0, SEEK_END},
               {K::kLseek, "", "", 0, -5, SEEK_END}, {K::kLseek, "", "", 0, 5, SEEK_END},
               {K::kLseek, "", "", 0, 10, SEEK_DATA}, {K::kLseek, "", "", 0, 10, SEEK_HOLE},
               {K::kLseek, "", "", 0, 7, SEEK_SET}, {K::kLseek, "", "", 0, 3, SEEK_CUR}});
  // fsync family
  s.push_back({Open("/f", C), {K::kFsync, "", "", 0}, {K::kFdatasync, "", "", 0},
               Open("/f", O_RDONLY, 1), {K::kFsync, "", "", 1}, Open("/", O_RDONLY, 2),
               {K::kFsync, "", "", 2}, {K::kFdatasync, "", "", 2},
               {K::kSyncRange, "", "", 0, 0, SYNC_FILE_RANGE_WRITE},
               {K::kSyncRange, "", "", 0, -1, SYNC_FILE_RANGE_WRITE},
               {K::kSyncRange, "", "", 0, 0, 8}, {K::kSyncRange, "", "", 2, 0, SYNC_FILE_RANGE_WRITE}});
  // truncate / fallocate
  s.push_back({Open("/f", C), {K::kFtruncate, "", "", 0, 100}, {K::kStat, "/f"},
               {K::kFtruncate, "", "", 0, -1}, Open("/f", O_RDONLY, 1),
               {K::kFtruncate, "", "", 1, 0}, Open("/", O_RDONLY, 2), {K::kFtruncate, "", "", 2, 0},
               {K::kTruncate, "/f", "", 0, 10}, {K::kTruncate, "/", "", 0, 10},
               {K::kTruncate, "/nope", "", 0, 10}, {K::kTruncate, "/f", "", 0, -1},
               {K::kTruncate, "/f/", "", 0, 1}, {K::kStat, "/f"}});
  s.push_back({Open("/f", C), {K::kFallocate, "", "", 0, 0, 8192}, {K::kStat, "/f"},
               {K::kFallocate, "", "", 0, FALLOC_FL_KEEP_SIZE, 65536}, {K::kStat, "/f"},
               {K::kFallocate, "", "", 0, 0, 0}, {K::kFallocate, "", "", 0, 0x400, 10},
               Open("/f", O_RDONLY, 1), {K::kFallocate, "", "", 1, 0, 10},
               Open("/", O_RDONLY, 2), {K::kFallocate, "", "", 2, 0, 10}});
  // rename
  s.push_back({Open("/a", C), {K::kClose, "", "", 0}, {K::kRename, "/a", "/b"}, {K::kStat, "/a"},
               {K::kStat, "/b"}, {K::kRename, "/a", "/c"}, {K::kRename, "/b", "/b"},
               {K::kRename, "/b", "/nodir/c"}, {K::kRename, "/b/", "/c"}, {K::kRename, "/b", "/c/"}});
  s.push_back({{K::kMkdir, "/d"}, {K::kMkdir, "/e"}, Open("/d/x", C), Open("/f", C, 1),
               {K::kRename, "/d", "/f"}, {K::kRename, "/f", "/e"}, {K::kRename, "/e", "/d"},
               {K::kRename, "/d", "/d/sub"}, {K::kRename, "/d", "/e"}, {K::kList, "/"},
               {K::kRename, "/e/.", "/z"}, {K::kRename, "/f", "/e/.."}});
  s.push_back({Open("/a", C), Open("/b", C, 1), {K::kRenameat2, "/a", "/b", RENAME_NOREPLACE},
               {K::kRenameat2, "/a", "/c", RENAME_EXCHANGE}, {K::kWrite, "", "", 0, 7},
               {K::kRenameat2, "/a", "/b", RENAME_EXCHANGE}, {K::kStat, "/a"}, {K::kStat, "/b"},
               {K::kRenameat2, "/a", "/b", RENAME_EXCHANGE | RENAME_NOREPLACE},
               {K::kRenameat2, "/a", "/b", 64}, {K::kRenameat2, "/a", "/c", RENAME_NOREPLACE},
               {K::kList, "/"}});
  s.push_back({{K::kMkdir, "/d"}, Open("/f", C), {K::kRenameat2, "/d", "/f", RENAME_EXCHANGE},
               {K::kStat, "/d"}, {K::kStat, "/f"}, {K::kMkdir, "/f/sub"},
               {K::kRenameat2, "/f", "/f/sub/x", RENAME_EXCHANGE}});
  // link / unlink
  s.push_back({Open("/a", C), {K::kLink, "/a", "/b"}, {K::kStat, "/a"}, {K::kLink, "/a", "/b"},
               {K::kLink, "/nope", "/c"}, {K::kMkdir, "/d"}, {K::kLink, "/d", "/e"},
               {K::kLink, "/a", "/nodir/x"}, {K::kLink, "/a/", "/x"}, {K::kLink, "/a", "/y/"},
               {K::kUnlink, "/a"}, {K::kStat, "/b"}, {K::kFstat, "", "", 0},
               {K::kUnlink, "/b"}, {K::kFstat, "", "", 0}, {K::kWrite, "", "", 0, 3},
               {K::kList, "/"}});
  s.push_back({{K::kMkdir, "/d"}, Open("/f", C), {K::kUnlink, "/d"}, {K::kUnlink, "/f/"},
               {K::kUnlink, "/nope"}, {K::kUnlink, "/nope/"}, {K::kUnlink, "/d/."},
               {K::kUnlinkat, "/d", "", AT_REMOVEDIR},
               {K::kUnlinkat, "/f", "", AT_REMOVEDIR}, {K::kUnlinkat, "/f", "", 1},
               {K::kUnlinkat, "/f", "", 0}, {K::kList, "/"}});
  // mkdir / rmdir
  s.push_back({{K::kMkdir, "/d"}, {K::kMkdir, "/d"}, {K::kMkdir, "/d/"}, {K::kMkdir, "/x/y"}, {K::kMkdir, "/d/."}, {K::kMkdir, "/d/.."}, {K::kMkdir, "/d/e/"},
               {K::kStat, "/d"}, {K::kStat, "/d/e"}, {K::kRmdir, "/d"}, {K::kRmdir, "/d/e/"},
               {K::kRmdir, "/d/."}, {K::kRmdir, "/d/.."}, {K::kRmdir, "/nope"},
               Open("/f", C), {K::kRmdir, "/f"}, {K::kRmdir, "/d"}, {K::kList, "/"}});
  // stat family / access
  s.push_back({Open("/f", C), {K::kStat, "/f/"}, {K::kStat, "/f/x"}, {K::kStat, ""},
               {K::kStat, "/"},
               {K::kFstatat, "", "", 0, AT_EMPTY_PATH}, {K::kFstatat, "f", "", 0, 0},
               {K::kFstatat, "/f", "", kCwd, 0x1}, {K::kAccess, "/f", "", R_OK | W_OK},
               {K::kAccess, "/f", "", X_OK}, {K::kAccess, "/", "", X_OK},
               {K::kAccess, "/f", "", 8}, {K::kAccess, "/nope", "", F_OK},
               {K::kAccess, "/f/", "", F_OK}, {K::kStatfs, "/"}, {K::kStatfs, "/nope"}});
  // directories
  s.push_back({{K::kMkdir, "/d"}, Open("/d/b", C), Open("/d/a", C, 1), {K::kMkdir, "/d/c"},
               {K::kList, "/d"}, {K::kList, "/d/a"}, {K::kList, "/nope"}, {K::kStat, "/d"}});
  // locks
  s.push_back({Open("/f", C), Open("/f", C, 1), {K::kSetlk, "", "", 0, F_WRLCK, 0},
               {K::kSetlk, "", "", 1, F_WRLCK, 0}, {K::kGetlk, "", "", 1, F_WRLCK, 0},
               {K::kSetlk, "", "", 1, F_WRLCK, 1}, {K::kGetlk, "", "", 1, F_RDLCK, 1},
               {K::kSetlk, "", "", 0, F_UNLCK, 0}, {K::kSetlk, "", "", 0, F_WRLCK, 1},
               {K::kSetlk, "", "", 1, F_RDLCK, 1}, {K::kSetlk, "", "", 0, 7, 0},
               {K::kGetlk, "", "", 0, F_UNLCK, 0}});
  s.push_back({Open("/f", O_CREAT | O_RDONLY), Open("/f", O_WRONLY, 1),
               {K::kSetlk, "", "", 0, F_WRLCK, 0}, {K::kSetlk, "", "", 1, F_RDLCK, 0},
               {K::kSetlk, "", "", 0, F_RDLCK, 1}, {K::kSetlk, "", "", 1, F_WRLCK, 1}});
  s.push_back({Open("/f", C), Open("/f", O_RDONLY, 1), {K::kFlock, "", "", 0, LOCK_EX | LOCK_NB},
               {K::kFlock, "", "", 1, LOCK_SH | LOCK_NB}, {K::kFlock, "", "", 0, LOCK_SH},
               {K::kFlock, "", "", 1, LOCK_SH | LOCK_NB}, {K::kFlock, "", "", 0, LOCK_EX | LOCK_NB},
               {K::kFlock, "", "", 1, LOCK_UN}, {K::kFlock, "", "", 0, LOCK_EX | LOCK_NB},
               {K::kFlock, "", "", 0, 0}, {K::kFlock, "", "", 0, LOCK_EX | LOCK_SH},
               {K::kClose, "", "", 0}, {K::kFlock, "", "", 1, LOCK_EX | LOCK_NB}});
  return s;
}

// ---- Random sequences -------------------------------------------------------------------

std::vector<Op> RandomSequence(uint64_t seed) {
  Random rng(seed);
  // Not "/": the real world's root is a directory with a name, whose removal or
  // renaming the kernel allows (dsim's root answers as Linux's root does: EBUSY).
  static const char* const kPaths[] = {"/a", "/b", "/d", "/d/x", "/d/y", "/a/", "/d/",
                                       "/nope/x", "/d/.", "/d/..", "/e", "/d/x/"};
  static const int kFlags[] = {O_RDONLY,          O_WRONLY,         O_RDWR,
                               O_CREAT | O_RDWR,  O_CREAT | O_EXCL | O_WRONLY,
                               O_RDWR | O_TRUNC,  O_RDONLY | O_DIRECTORY,
                               O_CREAT | O_WRONLY | O_APPEND};
  auto path = [&] { return std::string(kPaths[rng.Below(std::size(kPaths))]); };
  auto slot = [&] { return static_cast<long>(rng.Below(3)); };
  std::vector<Op> ops;
  const int n = 8 + static_cast<int>(rng.Below(16));
  for (int i = 0; i < n; ++i) {
    switch (rng.Below(16)) {
      case 0: case 1: ops.push_back(Open(path(), kFlags[rng.Below(std::size(kFlags))], slot())); break;
      case 2: ops.push_back({K::kWrite, "", "", slot(), static_cast<long>(rng.Below(6000))}); break;
      case 3: ops.push_back({K::kPread, "", "", slot(), 100, static_cast<long>(rng.Below(5000))}); break;
      case 4: ops.push_back({K::kMkdir, path()}); break;
      case 5: ops.push_back({K::kRename, path(), path()}); break;
      case 6: ops.push_back({K::kUnlink, path()}); break;
      case 7: ops.push_back({K::kRmdir, path()}); break;
      case 8: ops.push_back({K::kStat, path()}); break;
      case 9: ops.push_back({K::kLink, path(), path()}); break;
      case 10: ops.push_back({K::kFtruncate, "", "", slot(), static_cast<long>(rng.Below(3000))}); break;
      case 11: ops.push_back({K::kClose, "", "", slot()}); break;
      case 12: ops.push_back({K::kFsync, "", "", slot()}); break;
      case 13: ops.push_back({K::kLseek, "", "", slot(), static_cast<long>(rng.Below(200)) - 50,
                              static_cast<long>(rng.Below(3))}); break;
      case 14: ops.push_back({K::kList, path()}); break;
      default: ops.push_back({K::kRead, "", "", slot(), 64}); break;
    }
  }
  ops.push_back({K::kList, "/"});
  ops.push_back({K::kList, "/d"});
  return ops;
}

std::string Describe(const std::vector<Op>& ops, const std::vector<std::string>& real,
                     const std::vector<std::string>& sim) {
  std::string text;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    absl::StrAppend(&text, "  #", i, " kind=", static_cast<int>(op.kind), " p1=\"", op.p1,
                    "\" p2=\"", op.p2, "\" a=", op.a, " b=", op.b, " c=", op.c, "  real: ",
                    i < real.size() ? real[i] : "?", "  sim: ", i < sim.size() ? sim[i] : "?",
                    (i < real.size() && i < sim.size() && real[i] != sim[i]) ? "   <-- differs" : "",
                    "\n");
  }
  return text;
}

TEST(FilesDifferential, AgreesWithTheKernelOnEveryCallAndErrno) {
  if (geteuid() != 0) GTEST_SKIP() << "dsim's tasks act as root; run as root to compare";
  std::vector<std::vector<Op>> sequences = HandWritten();
  const int hand = static_cast<int>(sequences.size());
  const char* random_env = std::getenv("DSIM_FILES_DIFFERENTIAL_RANDOM");
  const int random = random_env != nullptr ? std::atoi(random_env) : 300;
  for (int i = 0; i < random; ++i) sequences.push_back(RandomSequence(1000 + i));
  int agree = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const std::vector<std::string> real = RunReal(sequences[i]);
    const std::vector<std::string> sim = RunSim(sequences[i]);
    if (real == sim) {
      ++agree;
    } else {
      ADD_FAILURE() << (static_cast<int>(i) < hand ? "hand-written" : "random")
                    << " sequence " << i << " differs:\n"
                    << Describe(sequences[i], real, sim);
    }
  }
  std::cout << "agreement: " << agree << " of " << sequences.size() << " sequences (" << hand
            << " hand-written, " << random << " random)" << std::endl;
}

}  // namespace
}  // namespace dsim
