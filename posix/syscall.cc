// syscall(2): futex (std::atomic::wait, std::counting_semaphore, glibc-independent
// locks), getrandom and the clocks are simulated inside tasks; socket-family system
// calls and io_uring are escapes that fail the run; anything else is forwarded and
// listed (EscapedCalls).
#include <errno.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "posix/internal/clock.h"
#include "posix/internal/machine.h"
#include "posix/internal/random.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace dsim::posix::internal {
namespace {

long Fail(int error) {
  errno = error;
  return -1;
}

long FutexWait(Scheduler& scheduler, const uint32_t* word, uint32_t expected,
               absl::Time deadline) {
  PosixState& state = State(scheduler);
  Scheduler::NoUnwindScope no_unwind;  // syscall() is noexcept.
  scheduler.SchedulingPoint();
  if (reinterpret_cast<const std::atomic<uint32_t>*>(word)->load(std::memory_order_relaxed) !=
      expected) {
    return Fail(EAGAIN);
  }
  if (scheduler.Now() >= deadline) return Fail(ETIMEDOUT);
  // Killed: a futex wait may always return early (EINTR); the kill lands later.
  if (scheduler.CurrentTaskKilled()) return Fail(EINTR);
  const WakeReason reason = state.waits[word].Wait("futex", CallerLocation(state), deadline);
  state.EraseWaitIfIdle(word);
  return reason == WakeReason::kTimedOut ? Fail(ETIMEDOUT) : 0;
}

long FutexWake(Scheduler& scheduler, const uint32_t* word, uint64_t count) {
  PosixState& state = State(scheduler);
  auto it = state.waits.find(word);
  long woken = 0;
  if (it != state.waits.end()) {
    while (static_cast<uint64_t>(woken) < count && it->second.WakeOne()) ++woken;
  }
  ::dsim::internal::ReleasePoint();
  return woken;
}

long Futex(Scheduler& scheduler, const long* a) {
  const auto* word = reinterpret_cast<const uint32_t*>(a[0]);
  const int op = static_cast<int>(a[1]);
  const uint32_t value = static_cast<uint32_t>(a[2]);
  const auto* timeout = reinterpret_cast<const timespec*>(a[3]);
  const int command = op & FUTEX_CMD_MASK;
  switch (command) {
    case FUTEX_WAIT: {
      absl::Time deadline = absl::InfiniteFuture();
      // A relative timeout, on the host's CLOCK_MONOTONIC (scheduler/clock.h).
      if (timeout != nullptr) {
        deadline = scheduler.TrueDeadlineAfterLocal(absl::DurationFromTimespec(*timeout));
      }
      return FutexWait(scheduler, word, value, deadline);
    }
    case FUTEX_WAIT_BITSET: {
      // Bitsets are treated as "all": waking more waiters than asked is allowed, since
      // futex users must tolerate spurious wakeups.
      absl::Time deadline = absl::InfiniteFuture();
      if (timeout != nullptr) {
        const ClockKind kind =
            (op & FUTEX_CLOCK_REALTIME) ? ClockKind::kRealtime : ClockKind::kMonotonic;
        deadline = InstantOf(scheduler, kind, *timeout);
      }
      return FutexWait(scheduler, word, value, deadline);
    }
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET:
      return FutexWake(scheduler, word, value);
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE: {
      if (command == FUTEX_CMP_REQUEUE &&
          reinterpret_cast<const std::atomic<uint32_t>*>(word)->load() !=
              static_cast<uint32_t>(a[5])) {
        return Fail(EAGAIN);
      }
      // Waking every waiter instead of moving them is a spurious wakeup, which users of
      // requeue handle.
      return FutexWake(scheduler, word, UINT64_MAX);
    }
    default:
      RecordEscape(scheduler, "syscall(SYS_futex)",
                   absl::StrCat("futex operation ", command, " is not simulated"), true);
      return Fail(ENOSYS);
  }
}

bool IsSocketSyscall(long number) {
  switch (number) {
    case SYS_socket: case SYS_socketpair: case SYS_bind: case SYS_listen: case SYS_accept:
    case SYS_accept4: case SYS_connect: case SYS_sendto: case SYS_recvfrom:
    case SYS_sendmsg: case SYS_recvmsg: case SYS_sendmmsg: case SYS_recvmmsg:
    case SYS_shutdown: case SYS_getsockopt: case SYS_setsockopt: case SYS_getsockname:
    case SYS_getpeername: case SYS_epoll_create: case SYS_epoll_create1:
    case SYS_epoll_ctl: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_io_uring_setup:
    case SYS_io_uring_enter: case SYS_io_uring_register: case SYS_fork: case SYS_vfork:
    case SYS_clone: case SYS_clone3: case SYS_execve: case SYS_execveat:
      return true;
    default:
      return false;
  }
}

}  // namespace
}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(syscall);
}  // namespace

extern "C" long syscall(long number, ...) noexcept {
  long a[6];
  va_list args;
  va_start(args, number);
  for (long& v : a) v = va_arg(args, long);
  va_end(args);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
  switch (number) {
    case SYS_futex:
      DSIM_CALL_SITE(*scheduler);
      return pi::Futex(*scheduler, a);
    case SYS_getrandom:
      return pi::FillRandom(*scheduler, reinterpret_cast<void*>(a[0]),
                            static_cast<size_t>(a[1]), static_cast<unsigned>(a[2]));
    case SYS_clock_gettime:
      return clock_gettime(static_cast<clockid_t>(a[0]), reinterpret_cast<timespec*>(a[1]));
    // The simulated identity (posix/signals.cc).
    case SYS_getpid:
      return pi::SimulatedPid(*scheduler);
    case SYS_gettid:
      return pi::SimulatedTid(*scheduler);
    case SYS_getppid:
      return 1;
    // Signals would reach real processes and threads (posix/signals.cc).
    case SYS_kill:
    case SYS_tkill:
    case SYS_tgkill:
    case SYS_rt_sigqueueinfo:
    case SYS_rt_tgsigqueueinfo:
    case SYS_pidfd_open:
    case SYS_pidfd_send_signal:
      pi::RecordEscape(*scheduler, "syscall", absl::StrCat("raw system call ", number,
                       " sends a signal or names a process: not simulated"), true);
      errno = EPERM;
      return -1;
    // Deterministic or process-local: forwarded without being listed.
    case SYS_mmap:
    case SYS_munmap:
    case SYS_mprotect:
    case SYS_madvise:
    case SYS_mremap:
    case SYS_membarrier:
    case SYS_rt_sigprocmask:
      return DSIM_REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    default:
      break;
  }
  if (pi::IsSocketSyscall(number)) {
    pi::RecordEscape(*scheduler, "syscall", absl::StrCat("raw system call ", number,
                     " would reach the real kernel (use the libc function instead)"), true);
    errno = ENOSYS;
    return -1;
  }
  pi::RecordEscape(*scheduler, "syscall",
                   absl::StrCat("system call ", number, " forwarded to the kernel"), false);
  return DSIM_REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
