#include "posix/internal/real.h"

#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>

namespace dsim::posix::internal {

void* ResolveNext(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    // stdio, not write(): write is interposed, and glibc's stdio calls its own.
    std::fprintf(stderr, "dsim //posix: cannot find the real %s\n", name);
    std::abort();
  }
  return f;
}

}  // namespace dsim::posix::internal
