#include "scheduler/internal/fiber.h"

#include <signal.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "scheduler/internal/check.h"

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
namespace {

namespace ctx = boost::context::detail;

thread_local Fiber* running_fiber = nullptr;

inline void AsanStartSwitch(Fiber* from, Fiber* to, bool from_finishing) {
#ifdef DSIM_HAVE_ASAN
  __sanitizer_start_switch_fiber(from_finishing ? nullptr : &from->asan_fake_stack,
                                 to->asan_bottom, to->asan_size);
#else
  (void)from, (void)to, (void)from_finishing;
#endif
}

inline void AsanFinishSwitch(Fiber* self, Fiber* previous) {
#ifdef DSIM_HAVE_ASAN
  const void* previous_bottom = nullptr;
  size_t previous_size = 0;
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &previous_bottom, &previous_size);
  // A thread's main stack is learned the first time we leave it.
  if (previous != nullptr && previous->is_main && previous->asan_bottom == nullptr) {
    previous->asan_bottom = previous_bottom;
    previous->asan_size = previous_size;
  }
#else
  (void)self, (void)previous;
#endif
}

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
inline Fiber* CompleteSwitch(Fiber* self, ctx::transfer_t transfer) {
  Fiber* previous = static_cast<Fiber*>(transfer.data);
  previous->context = transfer.fctx;
  AsanFinishSwitch(self, previous);
  return previous;
}

// First code on a new fiber's stack. The switching side set running_fiber to the fiber
// it resumes, which is how a new fiber finds itself.
void Trampoline(ctx::transfer_t transfer) {
  Fiber* self = running_fiber;
  Fiber* previous = CompleteSwitch(self, transfer);
  self->entry(self, previous);
  DSIM_CHECK(false, "fiber entry returned; it must end with SwitchToFinal");
}

inline ctx::transfer_t Jump(Fiber* from, Fiber* to, bool from_finishing) {
  CheckStackBeforeLeaving(from);
  AsanStartSwitch(from, to, from_finishing);
  TsanSwitch(to);
  running_fiber = to;
  return ctx::jump_fcontext(to->context, from);
}

// Writes a decimal number with write(2): the overflow report runs in a signal handler.
void WriteNumber(uint64_t value) {
  char buffer[24];
  int i = sizeof(buffer);
  do {
    buffer[--i] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  (void)!write(STDERR_FILENO, buffer + i, sizeof(buffer) - i);
}

void WriteString(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

struct sigaction previous_segv_action;
struct sigaction previous_bus_action;

void ChainToPrevious(const struct sigaction& previous, int signal, siginfo_t* info,
                     void* context) {
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(signal, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal);
    return;
  }
  // Restore the default action and return: the faulting instruction runs again and the
  // kernel applies the default (a core dump), exactly as without dsim.
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  sigaction(signal, &default_action, nullptr);
}

void OnFault(int signal, siginfo_t* info, void* context) {
  Fiber* fiber = running_fiber;
  const char* address = static_cast<const char*>(info->si_addr);
  if (fiber != nullptr && !fiber->is_main && address >= fiber->stack.guard_lo &&
      address < fiber->stack.guard_hi) {
    ReportStackOverflow(fiber);
  }
  ChainToPrevious(signal == SIGSEGV ? previous_segv_action : previous_bus_action, signal, info,
                  context);
}

// Frees a thread's alternate signal stack when the thread exits.
struct AltStack {
  void* memory = nullptr;
  size_t bytes = 0;
  ~AltStack() {
    if (memory == nullptr) return;
    stack_t disable;
    std::memset(&disable, 0, sizeof(disable));
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, nullptr);
    std::free(memory);
  }
};

thread_local AltStack alt_stack;

}  // namespace

void InitMainFiber(Fiber* fiber) {
  fiber->is_main = true;
  fiber->name = "(main)";
#ifdef DSIM_HAVE_TSAN
  fiber->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void InitFiber(Fiber* fiber, const Stack& stack, FiberEntry entry) {
  fiber->stack = stack;
  fiber->asan_bottom = stack.lo;
  fiber->asan_size = stack.size;
  fiber->entry = entry;
  fiber->context = ctx::make_fcontext(stack.top(), stack.size, &Trampoline);
  fiber->asan_fake_stack = nullptr;
#ifdef DSIM_HAVE_TSAN
  fiber->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void DestroyFiber(Fiber* fiber) {
#ifdef DSIM_HAVE_TSAN
  if (fiber->tsan_fiber != nullptr && !fiber->is_main) __tsan_destroy_fiber(fiber->tsan_fiber);
#endif
  fiber->tsan_fiber = nullptr;
  fiber->context = nullptr;
}

Fiber* SwitchTo(Fiber* from, Fiber* to) {
  DSIM_DCHECK(from != to);
  return CompleteSwitch(from, Jump(from, to, /*from_finishing=*/false));
}

void SwitchToFinal(Fiber* from, Fiber* to) {
  Jump(from, to, /*from_finishing=*/true);
  DSIM_CHECK(false, "a finished fiber was resumed");
  std::abort();
}

Fiber* RunningFiber() { return running_fiber; }

Fiber* ExchangeRunningFiber(Fiber* fiber) {
  Fiber* previous = running_fiber;
  running_fiber = fiber;
  return previous;
}

void ReportStackOverflow(const Fiber* fiber) {
  WriteString("dsim: stack overflow in task \"");
  WriteString(fiber->name);
  WriteString("\" (id ");
  WriteNumber(fiber->id);
  WriteString(", stack ");
  WriteNumber(fiber->stack.size);
  WriteString(" bytes). Give the task a larger stack with SpawnOptions::stack_size.\n");
  std::abort();
}

void EnsureOverflowHandler() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_sigaction = &OnFault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous_segv_action);
    sigaction(SIGBUS, &action, &previous_bus_action);
  });
  if (alt_stack.memory != nullptr) return;
  stack_t current;
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
  alt_stack.bytes = 64 * 1024;
  alt_stack.memory = std::malloc(alt_stack.bytes);
  DSIM_CHECK(alt_stack.memory != nullptr);
  stack_t stack;
  std::memset(&stack, 0, sizeof(stack));
  stack.ss_sp = alt_stack.memory;
  stack.ss_size = alt_stack.bytes;
  DSIM_CHECK(sigaltstack(&stack, nullptr) == 0, "sigaltstack failed");
}

}  // namespace dsim::internal
