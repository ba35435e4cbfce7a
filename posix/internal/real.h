// The real libc functions behind dsim's interposed ones, found with dlsym(RTLD_NEXT).
//
// Every pointer is resolved once: all of them in a constructor that runs before main,
// and each lazily on first use too, for calls made by shared libraries' own
// initializers before that constructor ran. dlsym takes only glibc-internal locks and
// allocates with malloc, neither of which is interposed, so resolving cannot recurse.
// A function that cannot be found stops the process with its name.
//
// Speed. Every call made outside a task pays for the interposer (issue 9 allows 1.3x on
// a 3 ns pthread_mutex_lock), so the pass-through path must compile to a thread-local
// load, a branch and one indirect jump, with no stack frame. A slot of a function with a
// fixed parameter list therefore starts out pointing at a stub that resolves the real
// function, stores it and calls it: the pointer is never null, and the fast path needs
// no test and no call that would make the compiler save registers. A variadic function
// (fcntl, ioctl, open) cannot be forwarded by a stub; its slot starts null and is tested.
#ifndef DSIM_POSIX_INTERNAL_REAL_H_
#define DSIM_POSIX_INTERNAL_REAL_H_

#include <atomic>

namespace dsim::posix::internal {

// Finds `name` in the objects loaded after the one defining the interposers.
void* ResolveNext(const char* name);

// Whether F has a fixed parameter list (a stub can forward its calls).
template <typename F>
inline constexpr bool kFixedParameters = false;
template <typename R, typename... A>
inline constexpr bool kFixedParameters<R (*)(A...)> = true;
template <typename R, typename... A>
inline constexpr bool kFixedParameters<R (*)(A...) noexcept> = true;

// The first-call stub of a slot of type F, or null when F is variadic.
template <auto& Slot, typename F>
struct FirstCall {
  static constexpr F value = nullptr;
};
template <auto& Slot, typename R, typename... A>
struct FirstCall<Slot, R (*)(A...)> {
  static R Call(A... args) { return Slot.Resolve()(args...); }
  static constexpr R (*value)(A...) = &Call;
};
template <auto& Slot, typename R, typename... A>
struct FirstCall<Slot, R (*)(A...) noexcept> {
  static R Call(A... args) noexcept { return Slot.Resolve()(args...); }
  static constexpr R (*value)(A...) noexcept = &Call;
};

// A lazily resolved real function: `DSIM_REAL(clock_gettime)(CLOCK_MONOTONIC, &ts)`.
// The pointer is process-wide, but written only with the one value dlsym gives, so a
// race between two first calls is harmless.
// `kStub`: the slot starts at its FirstCall stub (DSIM_DECLARE_REAL); otherwise it
// starts null (a variadic function, or one whose name is built at run time).
template <typename F, bool kStub = kFixedParameters<F>>
class RealFunction {
 public:
  constexpr RealFunction(const char* name, F first_call) : name_(name), pointer_(first_call) {}
  explicit constexpr RealFunction(const char* name) : name_(name), pointer_(nullptr) {
    static_assert(!kStub, "a slot with a stub starts at it");
  }
  F get() {
    F f = pointer_.load(std::memory_order_relaxed);
    if (kStub) return f;  // Never null: the stub, then the real function.
    if (__builtin_expect(f != nullptr, 1)) return f;
    return Resolve();
  }
  // Resolves the real function now (before main, or on a stub's first call).
  __attribute__((noinline, cold)) F Resolve() {
    F f = reinterpret_cast<F>(ResolveNext(name_));
    pointer_.store(f, std::memory_order_relaxed);
    return f;
  }

 private:
  const char* name_;
  std::atomic<F> pointer_;
};

}  // namespace dsim::posix::internal

// Declares the real-function slot for a libc function (at namespace scope in a .cc).
#define DSIM_DECLARE_REAL(name)                                                      \
  ::dsim::posix::internal::RealFunction<decltype(&::name)> real_##name{               \
      #name, ::dsim::posix::internal::FirstCall<real_##name, decltype(&::name)>::value}; \
  [[maybe_unused]] static const bool real_##name##_resolved_early =                  \
      (real_##name.Resolve(), true)
#define DSIM_REAL(name) (real_##name.get())

#endif  // DSIM_POSIX_INTERNAL_REAL_H_
