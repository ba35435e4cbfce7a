// Temporary files in a task: mkstemp and its variants, mkdtemp and tmpfile. glibc opens
// them through its internal open, which no interposer sees. With //posix:files they are
// made on the host's disk (names drawn from the strategy, so a seed replays them);
// otherwise the real ones are made and their descriptors moved to the real range
// (posix/internal/real_descriptors.h), as real files are.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "posix/internal/real.h"
#include "posix/internal/real_descriptors.h"
#include "posix/internal/state.h"
#include "posix/internal/temp_names.h"
#include "posix/internal/streams.h"
#include "sockets/socket.h"

namespace {
namespace pi = ::dsim::posix::internal;

DSIM_DECLARE_REAL(mkstemp);
DSIM_DECLARE_REAL(mkstemp64);
DSIM_DECLARE_REAL(mkostemp);
DSIM_DECLARE_REAL(mkostemp64);
DSIM_DECLARE_REAL(mkstemps);
DSIM_DECLARE_REAL(mkstemps64);
DSIM_DECLARE_REAL(mkostemps);
DSIM_DECLARE_REAL(mkostemps64);
DSIM_DECLARE_REAL(mkdtemp);
DSIM_DECLARE_REAL(tmpfile);
DSIM_DECLARE_REAL(tmpfile64);


// Fills the six X's before `suffix_length` characters with letters from the strategy and
// calls `make` until it does not fail with EEXIST. EINVAL for a bad template, as glibc.
template <typename Make>
int MakeUnique(dsim::Scheduler& scheduler, char* name_template, int suffix_length, Make make) {
  const size_t length = std::strlen(name_template);
  if (suffix_length < 0 || length < 6 + static_cast<size_t>(suffix_length)) {
    errno = EINVAL;
    return -1;
  }
  char* x = name_template + length - suffix_length - 6;
  if (std::memcmp(x, "XXXXXX", 6) != 0) {
    errno = EINVAL;
    return -1;
  }
  for (int attempt = 0; attempt < pi::kTempNameAttempts; ++attempt) {
    pi::DrawTempNameLetters(scheduler, x);
    const int result = make();
    if (result >= 0 || errno != EEXIST) return result;
  }
  errno = EEXIST;
  return -1;
}

// mkostemps on the host's disk: O_RDWR | O_CREAT | O_EXCL, mode 0600, plus `flags`
// (O_APPEND, O_CLOEXEC, O_SYNC, ...).
int DiskTempFile(dsim::Scheduler& scheduler, char* name_template, int suffix_length,
                 int flags) {
  return MakeUnique(scheduler, name_template, suffix_length, [&] {
    return open(name_template, (flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600);
  });
}

// In a task: on the disk when paths are simulated, else the real call's descriptor moved.
template <typename Real>
int TempFileInTask(const char* call, char* name_template, int suffix_length, int flags,
                   Real real) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return real();
  if (pi::PathsAreSimulated()) return DiskTempFile(*scheduler, name_template, suffix_length, flags);
  return pi::MoveToRealRange(*scheduler, call, real());
}

FILE* TmpfileInTask(dsim::Scheduler& scheduler) {
  char name[] = "/tmp/tmpfXXXXXX";
  const int fd = DiskTempFile(scheduler, name, 0, 0);
  if (fd < 0) return nullptr;
  unlink(name);  // Nameless, as O_TMPFILE's: gone when closed.
  FILE* stream = pi::StreamOverSimulatedDescriptor(fd, "w+");
  if (stream == nullptr) dsim::Close(fd);
  return stream;
}

}  // namespace

extern "C" {

int mkstemp(char* name_template) {
  return TempFileInTask("mkstemp", name_template, 0, 0,
                        [&] { return DSIM_REAL(mkstemp)(name_template); });
}
int mkstemp64(char* name_template) {
  return TempFileInTask("mkstemp64", name_template, 0, 0,
                        [&] { return DSIM_REAL(mkstemp64)(name_template); });
}
int mkostemp(char* name_template, int flags) {
  return TempFileInTask("mkostemp", name_template, 0, flags,
                        [&] { return DSIM_REAL(mkostemp)(name_template, flags); });
}
int mkostemp64(char* name_template, int flags) {
  return TempFileInTask("mkostemp64", name_template, 0, flags,
                        [&] { return DSIM_REAL(mkostemp64)(name_template, flags); });
}
int mkstemps(char* name_template, int suffix_length) {
  return TempFileInTask("mkstemps", name_template, suffix_length, 0,
                        [&] { return DSIM_REAL(mkstemps)(name_template, suffix_length); });
}
int mkstemps64(char* name_template, int suffix_length) {
  return TempFileInTask("mkstemps64", name_template, suffix_length, 0,
                        [&] { return DSIM_REAL(mkstemps64)(name_template, suffix_length); });
}
int mkostemps(char* name_template, int suffix_length, int flags) {
  return TempFileInTask("mkostemps", name_template, suffix_length, flags, [&] {
    return DSIM_REAL(mkostemps)(name_template, suffix_length, flags);
  });
}
int mkostemps64(char* name_template, int suffix_length, int flags) {
  return TempFileInTask("mkostemps64", name_template, suffix_length, flags, [&] {
    return DSIM_REAL(mkostemps64)(name_template, suffix_length, flags);
  });
}

char* mkdtemp(char* name_template) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr || !pi::PathsAreSimulated()) return DSIM_REAL(mkdtemp)(name_template);
  const int made = MakeUnique(*scheduler, name_template, 0,
                              [&] { return mkdir(name_template, 0700); });
  return made == 0 ? name_template : nullptr;
}

FILE* tmpfile(void) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(tmpfile)();
  if (pi::PathsAreSimulated()) return TmpfileInTask(*scheduler);
  return pi::MoveStreamToRealRange(*scheduler, "tmpfile", DSIM_REAL(tmpfile)());
}
FILE* tmpfile64(void) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(tmpfile64)();
  if (pi::PathsAreSimulated()) return TmpfileInTask(*scheduler);
  return pi::MoveStreamToRealRange(*scheduler, "tmpfile64", DSIM_REAL(tmpfile64)());
}

}  // extern "C"
