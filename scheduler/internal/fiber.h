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

#include <cstdint>

#include "scheduler/internal/stack_pool.h"

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
// back to `from`, with that fiber.
Fiber* SwitchTo(Fiber* from, Fiber* to);
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

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_FIBER_H_
