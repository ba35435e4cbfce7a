// Temporary file NAMES in a task: mktemp, tmpnam, tmpnam_r and tempnam. glibc makes the
// six random characters from the real clock (through an internal clock_gettime), so the
// names differ from run to run. In a task they are drawn from the strategy (replayed
// with the seed), in the characters glibc uses; a name that exists (lstat: the host's
// disk with //posix:files, else the real file system) is drawn again, as glibc does.
// Outside tasks each is glibc's.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cstring>
#include <string>

#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "posix/internal/temp_names.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(mktemp);
DSIM_DECLARE_REAL(tmpnam);
DSIM_DECLARE_REAL(tmpnam_r);
DSIM_DECLARE_REAL(tempnam);


// Replaces the trailing "XXXXXX" of `name` with a name that does not exist. False (errno
// set: EINVAL for a bad template, EEXIST when every attempt exists) otherwise.
bool DrawFreeName(dsim::Scheduler& scheduler, char* name) {
  const size_t length = std::strlen(name);
  if (length < 6 || std::memcmp(name + length - 6, "XXXXXX", 6) != 0) {
    errno = EINVAL;
    return false;
  }
  char* x = name + length - 6;
  for (int attempt = 0; attempt < pi::kTempNameAttempts; ++attempt) {
    pi::DrawTempNameLetters(scheduler, x);
    struct stat ignored;
    if (lstat(name, &ignored) != 0) {
      if (errno == ENOENT) return true;
      return false;
    }
  }
  errno = EEXIST;
  return false;
}

bool IsDirectory(const char* path) {
  struct stat info;
  return path != nullptr && stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

// tmpnam(NULL)'s buffer: glibc's is one static array; one per OS thread here.
thread_local char tmpnam_buffer[L_tmpnam];

char* TmpnamInTask(dsim::Scheduler& scheduler, char* out) {
  char name[] = P_tmpdir "/fileXXXXXX";
  static_assert(sizeof(name) <= L_tmpnam, "L_tmpnam holds tmpnam's names");
  if (!DrawFreeName(scheduler, name)) return nullptr;
  std::memcpy(out, name, sizeof(name));
  return out;
}

}  // namespace

extern "C" {

char* mktemp(char* name_template) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(mktemp)(name_template);
  if (!DrawFreeName(*scheduler, name_template)) name_template[0] = '\0';
  return name_template;
}

char* tmpnam(char* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(tmpnam)(out);
  return TmpnamInTask(*scheduler, out != nullptr ? out : tmpnam_buffer);
}

char* tmpnam_r(char* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(tmpnam_r)(out);
  if (out == nullptr) return nullptr;
  return TmpnamInTask(*scheduler, out);
}

// The directory is glibc's choice: $TMPDIR if it is a directory, else `dir` if it is
// one, else P_tmpdir, else /tmp; the prefix is at most five characters ("file" if none).
char* tempnam(const char* dir, const char* prefix) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(tempnam)(dir, prefix);
  const char* from_env = getenv("TMPDIR");
  const char* chosen = IsDirectory(from_env) ? from_env
                       : IsDirectory(dir)    ? dir
                       : IsDirectory(P_tmpdir) ? P_tmpdir
                                               : "/tmp";
  std::string name = chosen;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  name += '/';
  name += std::string(prefix != nullptr ? prefix : "file").substr(0, 5);
  name += "XXXXXX";
  char* result = strdup(name.c_str());
  if (result == nullptr) return nullptr;
  if (!DrawFreeName(*scheduler, result)) {
    free(result);
    return nullptr;
  }
  return result;
}

}  // extern "C"
