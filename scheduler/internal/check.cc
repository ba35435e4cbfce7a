#include "scheduler/internal/check.h"

#include <cstdio>
#include <cstdlib>

namespace dsim::internal {

void MisuseFailed(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "dsim: misuse: %s (detected at %s:%d)\n", message.c_str(), file, line);
  std::fflush(stderr);
  std::abort();
}

void CheckFailed(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "dsim: internal check failed at %s:%d: %s%s%s\n", file, line, condition,
               message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace dsim::internal
