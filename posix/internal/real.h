// The real libc functions behind dsim's interposed ones, found with dlsym(RTLD_NEXT).
//
// Every pointer is resolved once: all of them in a constructor that runs before main,
// and each lazily on first use too, for calls made by shared libraries' own
// initializers before that constructor ran. dlsym takes only glibc-internal locks and
// allocates with malloc, neither of which is interposed, so resolving cannot recurse.
// A function that cannot be found stops the process with its name.
#ifndef DSIM_POSIX_INTERNAL_REAL_H_
#define DSIM_POSIX_INTERNAL_REAL_H_

#include <atomic>

namespace dsim::posix::internal {

// Finds `name` in the objects loaded after the one defining the interposers.
void* ResolveNext(const char* name);

// A lazily resolved real function: `DSIM_REAL(clock_gettime)(CLOCK_MONOTONIC, &ts)`.
// The pointer is process-wide, but written only with the one value dlsym gives, so a
// race between two first calls is harmless.
template <typename F>
class RealFunction {
 public:
  explicit constexpr RealFunction(const char* name) : name_(name) {}
  F get() {
    F f = pointer_.load(std::memory_order_relaxed);
    if (__builtin_expect(f != nullptr, 1)) return f;
    f = reinterpret_cast<F>(ResolveNext(name_));
    pointer_.store(f, std::memory_order_relaxed);
    return f;
  }

 private:
  const char* name_;
  std::atomic<F> pointer_{nullptr};
};

}  // namespace dsim::posix::internal

// Declares the real-function slot for a libc function (at namespace scope in a .cc).
#define DSIM_DECLARE_REAL(name)                                               \
  ::dsim::posix::internal::RealFunction<decltype(&::name)> real_##name{#name}; \
  [[maybe_unused]] static const bool real_##name##_resolved_early =           \
      (real_##name.get(), true)
#define DSIM_REAL(name) (real_##name.get())

#endif  // DSIM_POSIX_INTERNAL_REAL_H_
