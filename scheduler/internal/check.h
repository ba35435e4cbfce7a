// Two tiers of checks, as DEVELOPERS.md asks:
//
//   DSIM_MISUSE(cond, ...)  always on. For API misuse by users (unlocking a mutex you
//                           do not hold, blocking outside a task). Prints a clear message
//                           naming the misuse and aborts.
//   DSIM_CHECK(cond, ...)   always on. Internal invariants that are cheap to test.
//   DSIM_DCHECK(cond, ...)  debug builds only. Invariants on hot paths.
//
// The variadic arguments are concatenated with absl::StrCat into the message.
#ifndef DSIM_SCHEDULER_INTERNAL_CHECK_H_
#define DSIM_SCHEDULER_INTERNAL_CHECK_H_

#include <string>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"

namespace dsim::internal {

[[noreturn]] void MisuseFailed(const char* file, int line, const std::string& message);
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& message);

}  // namespace dsim::internal

// The failure paths are cold, non-inlined lambdas: building the message must not cost
// the checking function a larger stack frame (or a stack protector) on its hot path.
#define DSIM_MISUSE(cond, ...)                                                        \
  do {                                                                                \
    if (ABSL_PREDICT_FALSE(!(cond))) {                                                \
      [&]() __attribute__((noinline, cold)) {                                         \
        ::dsim::internal::MisuseFailed(__FILE__, __LINE__, ::absl::StrCat(__VA_ARGS__)); \
      }();                                                                            \
    }                                                                                 \
  } while (0)

#define DSIM_CHECK(cond, ...)                                                       \
  do {                                                                              \
    if (ABSL_PREDICT_FALSE(!(cond))) {                                              \
      [&]() __attribute__((noinline, cold)) {                                       \
        ::dsim::internal::CheckFailed(__FILE__, __LINE__, #cond,                    \
                                      ::absl::StrCat("" __VA_OPT__(, ) __VA_ARGS__)); \
      }();                                                                          \
    }                                                                               \
  } while (0)

#ifdef NDEBUG
#define DSIM_DCHECK(cond, ...) \
  do {                         \
  } while (false && (cond))
#else
#define DSIM_DCHECK(cond, ...) DSIM_CHECK(cond __VA_OPT__(, ) __VA_ARGS__)
#endif

#endif  // DSIM_SCHEDULER_INTERNAL_CHECK_H_
