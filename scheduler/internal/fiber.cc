#include "scheduler/internal/fiber.h"

#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "scheduler/internal/check.h"

#if defined(__x86_64__) && defined(__linux__)
// See JumpContext in fiber.h. Entered by `call`: the stack holds the caller's return
// address. Pushing .Lresume makes jump_fcontext save it as this fiber's resume point;
// when some fiber later jumps back here, `ret` pops the caller's return address, the
// same entry the predictor pushed for that `call`. Registers: rdi = target context,
// rsi = data, as for jump_fcontext; its transfer_t result (rax, rdx) passes through.
asm(R"(
    .text
    .globl dsim_jump_fcontext
    .type dsim_jump_fcontext, @function
    .p2align 4
dsim_jump_fcontext:
    .cfi_startproc
    leaq .Ldsim_resume(%rip), %rax
    pushq %rax
    .cfi_adjust_cfa_offset 8
    jmp jump_fcontext@PLT
.Ldsim_resume:
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size dsim_jump_fcontext, .-dsim_jump_fcontext
    .section .note.GNU-stack,"",@progbits
    .text
)");
#endif

namespace dsim::internal {

__thread Fiber* running_fiber = nullptr;

namespace ctx = boost::context::detail;

void AsanFinishSwitch(Fiber* self, Fiber* previous) {
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

namespace {

// First code on a new fiber's stack. The switching side set running_fiber to the fiber
// it resumes, which is how a new fiber finds itself.
void Trampoline(ctx::transfer_t transfer) {
  Fiber* self = running_fiber;
  Fiber* previous = CompleteSwitch(self, transfer);
  self->entry(self, previous);
  DSIM_CHECK(false, "fiber entry returned; it must end with SwitchToFinal");
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

// How far below its stack a task's stack pointer or a fault may be and still count as
// that task's overflow: a frame larger than this is not plausible.
constexpr size_t kMaxOverflowReach = size_t{64} << 20;

// The stack pointer of the interrupted code, or null where unknown.
const char* InterruptedStackPointer(void* context) {
#if defined(__x86_64__) && defined(__linux__)
  const auto* uc = static_cast<const ucontext_t*>(context);
  return reinterpret_cast<const char*>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__) && defined(__linux__)
  const auto* uc = static_cast<const ucontext_t*>(context);
  return reinterpret_cast<const char*>(uc->uc_mcontext.sp);
#else
  (void)context;
  return nullptr;
#endif
}

bool Below(const char* p, const char* lo) {
  return p != nullptr && p < lo && static_cast<size_t>(lo - p) <= kMaxOverflowReach;
}

// A fault is the running task's stack overflow when it hits the task's guard or its
// reservation, or lies below it with the stack pointer below the stack too (a large
// frame can step over a guard page when code is built without
// -fstack-clash-protection), or when the stack pointer itself left the stack.
bool IsStackOverflow(const Fiber* fiber, const char* address, void* context) {
  const Stack& stack = fiber->stack;
  const char* sp = InterruptedStackPointer(context);
  const bool sp_below = Below(sp, stack.lo);
  if (address >= stack.guard_lo && address < stack.guard_hi) return true;
  if (stack.guarded && address >= stack.guard_lo && address < stack.top()) return true;
  if (sp_below && (Below(address, stack.lo) || (address >= stack.lo && address < stack.top()))) {
    return true;
  }
  return false;
}

void OnFault(int signal, siginfo_t* info, void* context) {
  Fiber* fiber = running_fiber;
  const char* address = static_cast<const char*>(info->si_addr);
  if (fiber != nullptr && !fiber->is_main && IsStackOverflow(fiber, address, context)) {
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

void SwitchToFinal(Fiber* from, Fiber* to) {
  Jump(from, to, /*from_finishing=*/true);  // Never returns.
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
