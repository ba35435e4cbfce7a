// absl::Now() and absl::GetCurrentTimeNanos(), interposed.
//
// Debian's Abseil (20220623) computes absl::Now() from the CPU's cycle counter,
// calibrated against clock_gettime every so often, with the calibration kept in a
// process-wide cache. Inside a task that would mix real cycles into virtual time, and
// virtual samples would leak into the cache that real code outside tasks reads (a test
// saw absl::Now() outside a simulation report the year 2000). So both entry points are
// defined here: inside a task they read the virtual clock; outside they are Abseil's
// own, untouched. absl::Clock-based waits (absl::Mutex timeouts, absl::SleepFor) reach
// these or nanosleep, both simulated.
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "posix/internal/clock.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;

// Abseil's own definitions, by their mangled names, with Abseil's inline namespace
// ("debian3" on Debian) when it has one.
#define DSIM_STRINGIFY2(x) #x
#define DSIM_STRINGIFY(x) DSIM_STRINGIFY2(x)
using NowFn = absl::Time (*)();
using NanosFn = int64_t (*)();

std::string Mangled(const char* function) {
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const char* inline_namespace = DSIM_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return absl::StrCat("_ZN4absl", std::strlen(inline_namespace), inline_namespace, function);
#else
  return absl::StrCat("_ZN4absl", function);
#endif
}

pi::RealFunction<NowFn, false>& RealNow() {
  static const std::string* const name = new std::string(Mangled("3NowEv"));
  static pi::RealFunction<NowFn, false> f(name->c_str());
  return f;
}
pi::RealFunction<NanosFn, false>& RealNanos() {
  static const std::string* const name = new std::string(Mangled("19GetCurrentTimeNanosEv"));
  static pi::RealFunction<NanosFn, false> f(name->c_str());
  return f;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Time Now() {
  if (pi::TaskScheduler() != nullptr) return dsim::Now();
  return RealNow().get()();
}

int64_t GetCurrentTimeNanos() {
  if (pi::TaskScheduler() != nullptr) return absl::ToUnixNanos(dsim::Now());
  return RealNanos().get()();
}

ABSL_NAMESPACE_END
}  // namespace absl
