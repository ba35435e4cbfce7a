// Fiber: a stackful execution context on Boost.Context's fcontext.
//
// A switch saves only callee-saved registers and the stack pointer (fcontext). It does
// not preserve or change: the signal mask (fibers share their thread's), thread-local
// storage (all fibers of a scheduler run on one thread, so TLS is shared and stable), or
// the floating-point environment beyond what fcontext saves (MXCSR and the x87 control
// word). That is safe here because every fiber of a simulation is code the same program
// runs under the same settings; a task that changes its rounding mode changes it for all.
//
// Every switch is annotated for AddressSanitizer (__sanitizer_start_switch_fiber /
// __sanitizer_finish_switch_fiber) and ThreadSanitizer (__tsan_switch_to_fiber), so both
// understand that the stack changed.
#ifndef DSIM_SCHEDULER_INTERNAL_FIBER_H_
#define DSIM_SCHEDULER_INTERNAL_FIBER_H_

#include <boost/context/detail/fcontext.hpp>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "scheduler/internal/stack_pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define DSIM_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DSIM_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define DSIM_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DSIM_HAVE_TSAN 1
#endif
#endif
#ifdef DSIM_HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef DSIM_HAVE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace dsim::internal {

struct Fiber;
// The entry point of a new fiber, called with the fiber itself and the fiber that
// switched to it first. It must never return: it ends with SwitchToFinal.
using FiberEntry = void (*)(Fiber* self, Fiber* previous);

struct Fiber {
  void* context = nullptr;  // boost::context::detail::fcontext_t of a suspended fiber.
  Stack stack;              // Empty for a thread's main fiber.
  const char* name = "";    // For overflow reports; owned by the task.
  uint64_t id = 0;
  // Sanitizer bookkeeping.
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;
  size_t asan_size = 0;
  void* tsan_fiber = nullptr;
  FiberEntry entry = nullptr;
  bool is_main = false;
};

// Describes the calling thread's own stack as a fiber, to switch back to.
void InitMainFiber(Fiber* fiber);
// Prepares `fiber` to run `entry` on `stack` at its first switch.
void InitFiber(Fiber* fiber, const Stack& stack, FiberEntry entry);
// Releases sanitizer state of a fiber that has finished or will never run.
void DestroyFiber(Fiber* fiber);

// Suspends `from` (the running fiber) and resumes `to`. Returns when some fiber switches
// back to `from`, with that fiber. Inline on purpose: Boost's jump_fcontext leaves the
// CPU's return-stack predictor one entry off, so every function return between the
// switch and the task's own code costs a misprediction. Keeping the switch in the
// caller's frame keeps that chain short.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Fiber* SwitchTo(Fiber* from, Fiber* to);
// Like SwitchTo, for a fiber that is finished and will never be resumed.
[[noreturn]] void SwitchToFinal(Fiber* from, Fiber* to);

// The fiber running on this thread, or null outside dsim's fibers. For the SIGSEGV
// handler's report.
Fiber* RunningFiber();
// Sets the running fiber when a run loop starts or ends on this thread; returns the old.
Fiber* ExchangeRunningFiber(Fiber* fiber);

// Installs the process-wide SIGSEGV/SIGBUS handler (once) and this thread's alternate
// signal stack (once per thread), so stack overflows in fibers are reported by name.
void EnsureOverflowHandler();

// Aborts with a message naming the fiber when its slab stack shows an overflow.
[[noreturn]] void ReportStackOverflow(const Fiber* fiber);

// ---- Inline switch ------------------------------------------------------------

// __thread, not thread_local: no dynamic initialization, so no TLS wrapper call per use.
extern __thread Fiber* running_fiber;

// Boost's jump_fcontext returns into the resumed fiber with `pop; jmp` instead of `ret`,
// so the return address its caller pushed stays on the CPU's return-stack predictor:
// after every switch, each function return mispredicts (about 20 cycles apiece).
// JumpContext enters jump_fcontext with a resume address pushed by hand and resumes
// through a single `ret`, which keeps the predictor balanced. It is still Boost's
// jump_fcontext that switches; this only changes how it is entered. x86-64 SysV only;
// elsewhere JumpContext is jump_fcontext itself.
#if defined(__x86_64__) && defined(__linux__)
extern "C" boost::context::detail::transfer_t dsim_jump_fcontext(
    boost::context::detail::fcontext_t to, void* data);
inline boost::context::detail::transfer_t JumpContext(boost::context::detail::fcontext_t to,
                                                       void* data) {
  return dsim_jump_fcontext(to, data);
}
#else
inline boost::context::detail::transfer_t JumpContext(boost::context::detail::fcontext_t to,
                                                       void* data) {
  return boost::context::detail::jump_fcontext(to, data);
}
#endif

inline void AsanStartSwitch(Fiber* from, Fiber* to, bool from_finishing) {
#ifdef DSIM_HAVE_ASAN
  __sanitizer_start_switch_fiber(from_finishing ? nullptr : &from->asan_fake_stack,
                                 to->asan_bottom, to->asan_size);
#else
  (void)from, (void)to, (void)from_finishing;
#endif
}

void AsanFinishSwitch(Fiber* self, Fiber* previous);

inline void TsanSwitch(Fiber* to) {
#ifdef DSIM_HAVE_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
  (void)to;
#endif
}

inline void CheckStackBeforeLeaving(Fiber* from) {
  if (ABSL_PREDICT_FALSE(!from->stack.Intact(__builtin_frame_address(0)))) {
    ReportStackOverflow(from);
  }
}

// Completes a switch on the resumed side: records where the previous fiber stopped.
inline Fiber* CompleteSwitch(Fiber* self, boost::context::detail::transfer_t transfer) {
  Fiber* previous = static_cast<Fiber*>(transfer.data);
  previous->context = transfer.fctx;
#ifdef DSIM_HAVE_ASAN
  AsanFinishSwitch(self, previous);
#else
  (void)self;
#endif
  return previous;
}

inline boost::context::detail::transfer_t Jump(Fiber* from, Fiber* to, bool from_finishing) {
  CheckStackBeforeLeaving(from);
  AsanStartSwitch(from, to, from_finishing);
  TsanSwitch(to);
  running_fiber = to;
  return JumpContext(to->context, from);
}

inline Fiber* SwitchTo(Fiber* from, Fiber* to) {
  return CompleteSwitch(from, Jump(from, to, /*from_finishing=*/false));
}

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_FIBER_H_
