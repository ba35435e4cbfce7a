// Local time inside tasks is UTC. glibc converts with the machine's time zone (TZ, or
// /etc/localtime read through an internal open no interposer sees), so a task that
// prints local time would print differently on machines in different zones. In a task
// localtime, localtime_r, mktime (and timelocal), ctime and ctime_r convert as if TZ
// were "UTC": tm_gmtoff 0, tm_isdst 0, tm_zone "UTC". Outside tasks each is glibc's.
// Not covered: the globals tzname, timezone and daylight (set by tzset from the
// machine's zone) and strftime of a struct tm made outside the task.
#include <time.h>

#include <cstring>

#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(localtime);
DSIM_DECLARE_REAL(localtime_r);
DSIM_DECLARE_REAL(mktime);
DSIM_DECLARE_REAL(timelocal);
DSIM_DECLARE_REAL(ctime);
DSIM_DECLARE_REAL(ctime_r);

// A static string, as glibc's tm_zone points at one.
constexpr char kUtc[] = "UTC";

struct tm* AsLocal(struct tm* out) {
  if (out == nullptr) return nullptr;
  out->tm_isdst = 0;
  out->tm_gmtoff = 0;
  out->tm_zone = kUtc;
  return out;
}

time_t FromLocal(struct tm* value) {
  const time_t result = timegm(value);  // Normalizes the fields, as mktime does.
  if (result != static_cast<time_t>(-1)) AsLocal(value);
  return result;
}

}  // namespace

extern "C" {

struct tm* localtime(const time_t* time) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(localtime)(time);
  return AsLocal(gmtime(time));
}

struct tm* localtime_r(const time_t* time, struct tm* out) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(localtime_r)(time, out);
  return AsLocal(gmtime_r(time, out));
}

time_t mktime(struct tm* value) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(mktime)(value);
  return FromLocal(value);
}

time_t timelocal(struct tm* value) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(timelocal)(value);
  return FromLocal(value);
}

char* ctime(const time_t* time) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(ctime)(time);
  struct tm* local = gmtime(time);
  return local == nullptr ? nullptr : asctime(local);
}

char* ctime_r(const time_t* time, char* buffer) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(ctime_r)(time, buffer);
  struct tm local;
  if (gmtime_r(time, &local) == nullptr) return nullptr;
  return asctime_r(&local, buffer);
}

}  // extern "C"
