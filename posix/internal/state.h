// PosixState: what //posix keeps per simulation (in the scheduler's kPosixExtension
// slot, owned by the scheduler): simulated pthread objects, threads, thread-specific
// values, and the list of calls that escaped to the real libc from inside tasks.
//
// Simulated mutexes, condition variables and futex words are found by their address in
// side tables: the same object may be used by real threads before or after the
// simulation (a global std::mutex), and its real contents (the mutex kind, the
// condition variable's clock) stay glibc's. Entries live as long as the simulation (an
// idle entry is the same as none). The tables are looked up, never iterated: no
// decision depends on an address.
//
// One exception, for speed: a pthread mutex also carries a tag in its own bytes that
// says where its entry is, so a lock or unlock in a task skips the hash lookup (see
// MutexOf in sync.cc). The tag is only a cache: it is checked against the entry's
// address before use, so a stale tag (from an earlier simulation, or from a simulation
// on another thread that uses the same mutex) costs one lookup, never a wrong entry.
#ifndef DSIM_POSIX_INTERNAL_STATE_H_
#define DSIM_POSIX_INTERNAL_STATE_H_

#include <pthread.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "posix/posix.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

using ::dsim::internal::WaitQueue;

// pthread_t values of simulated threads: a tag no real pthread_t (a pointer into the
// process's memory) carries, plus the task id. Deterministic, unlike a pointer.
inline constexpr uint64_t kThreadTag = 0xd51d000000000000ull;
inline constexpr uint64_t kThreadTagMask = 0xffff000000000000ull;
inline bool IsSimThread(pthread_t thread) {
  return (static_cast<uint64_t>(thread) & kThreadTagMask) == kThreadTag;
}
inline pthread_t SimThreadId(TaskId task) { return static_cast<pthread_t>(kThreadTag | task); }
inline TaskId SimThreadTask(pthread_t thread) {
  return static_cast<TaskId>(static_cast<uint64_t>(thread) & ~kThreadTagMask);
}

struct SimMutex {
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  TaskId owner = kNoTask;
  uint32_t count = 0;  // Recursion depth.
  int readers = 0;     // rwlocks: read holders.
  uint32_t slot = kNoSlot;  // pthread mutexes: index in PosixState::mutex_slots.
  WaitQueue waiters;
};

// A pthread barrier's simulated state; its count is read from glibc's object, which
// pthread_barrier_init (always the real one) filled.
struct SimBarrier {
  unsigned arrived = 0;
  uint64_t round = 0;  // Completed rounds: a waiter leaves when this changes.
  WaitQueue waiters;
};

struct SimThread {
  TaskHandle handle;
  void* result = nullptr;
  bool detached = false;
  bool joined = false;
  bool done = false;   // The thread's body has ended (returned, exited or unwound).
  WaitQueue joiners;
};

// Thrown by pthread_exit in a simulated thread; caught by the thread's task body.
struct ThreadExit {
  void* value;
};

class PosixState {
 public:
  explicit PosixState(Scheduler* scheduler) : scheduler_(scheduler) {}

  // Locked or waited-on objects, by address. Entries live as long as the simulation.
  std::unordered_map<const void*, SimMutex> mutexes;
  std::unordered_map<const void*, WaitQueue> waits;  // Condition variables, futexes.
  // pthread mutexes' entries (nodes of `mutexes`) by the index their tag holds.
  std::vector<std::pair<const void*, SimMutex*>> mutex_slots;
  // The wait queue of a condition variable or futex word (`waits`, created on demand),
  // or null when none exists and `create` is false. A direct-mapped cache in front of
  // the map: the address is only a cache key, and entries are never erased.
  WaitQueue* WaitsOf(const void* address, bool create) {
    const uintptr_t key = reinterpret_cast<uintptr_t>(address);
    WaitSlot& slot = wait_cache_[(key ^ (key >> 9)) % kWaitSlots];
    if (__builtin_expect(slot.address == address, 1)) return slot.queue;
    return WaitsOfSlow(slot, address, create);
  }
  std::unordered_map<const void*, SimBarrier> barriers;  // While a round is open.
  // Simulated threads by task.
  // Shared with the thread's own body, which may run (Spawn is a scheduling point)
  // before pthread_create has filed the record here.
  std::unordered_map<TaskId, std::shared_ptr<SimThread>> threads;
  // pthread_setspecific values of tasks: (task, key) -> value.
  struct KeyHash {
    size_t operator()(const std::pair<TaskId, pthread_key_t>& k) const {
      return std::hash<uint64_t>()(k.first * 1031 + k.second);
    }
  };
  // A value is visible only while its key's generation is the one it was set under:
  // pthread_key_delete bumps the generation, so a re-created key starts empty.
  struct KeyValue {
    const void* value;
    uint64_t generation;
  };
  std::unordered_map<std::pair<TaskId, pthread_key_t>, KeyValue, KeyHash> specific;
  std::vector<EscapedCall> escapes;
  std::unordered_set<std::string> forwarded_keys;  // Forwarded calls listed once each.
  // Return address of the interposed call in progress (set on the simulated path of
  // blocking calls), and what each such address was described as.
  void* call_site = nullptr;
  std::unordered_map<void*, SourceLocation> call_sites;
  // A direct-mapped cache in front of `call_sites` (every simulated read and write
  // asks): an address is only a cache key here, never a decision.
  struct CallSiteSlot {
    void* address = nullptr;
    SourceLocation location;
  };
  static constexpr size_t kCallSiteSlots = 64;
  // Fibonacci hashing: the top bits of key * 2^64/phi. Return addresses a few bytes
  // apart (the calls of one loop) land in different slots; (key ^ key >> 7) % 64 put
  // two of the echo benchmark's five call sites in one slot, so each call described its
  // site again.
  static size_t CallSiteSlotOf(uintptr_t key) {
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ull) >> 58);
  }
  CallSiteSlot call_site_cache[kCallSiteSlots];
  uint64_t threads_created = 0;

  // A stable copy of `text` for SourceLocations in reports. Process-wide and never
  // freed: a RunResult (and its report) outlives the simulation that made it. It only
  // caches symbol descriptions; nothing is decided by it.
  static const char* Intern(std::string text);

  void EraseMutexIfIdle(const void* address);
  void EraseWaitIfIdle(const void* address);

  Scheduler& scheduler() { return *scheduler_; }

 private:
  struct WaitSlot {
    const void* address = nullptr;
    WaitQueue* queue = nullptr;
  };
  static constexpr size_t kWaitSlots = 32;
  WaitQueue* WaitsOfSlow(WaitSlot& slot, const void* address, bool create);

  Scheduler* scheduler_;
  WaitSlot wait_cache_[kWaitSlots];
};

// Set while //posix's own slow paths run (symbolizing a caller, recording an escape):
// the libc calls they make themselves (Abseil's symbolizer maps memory through
// syscall()) must reach the real libc, not recurse. Never set across a blocking call,
// so it cannot leak from one task to another.
// Initial-exec for the reason given at Scheduler::Current().
inline thread_local bool in_internals __attribute__((tls_model("initial-exec"))) = false;

class InternalsScope {
 public:
  InternalsScope() : saved_(in_internals) { in_internals = true; }
  ~InternalsScope() { in_internals = saved_; }
  InternalsScope(const InternalsScope&) = delete;
  InternalsScope& operator=(const InternalsScope&) = delete;

 private:
  bool saved_;
};

// Executable address ranges of the sanitizer runtimes loaded in this process (found once,
// before main; none in a build without sanitizers). Fixed storage: the check runs inside
// the runtimes' own calls and must not allocate.
struct RuntimeRanges {
  static constexpr int kMaxRanges = 16;
  int count = 0;
  uintptr_t begin[kMaxRanges] = {};
  uintptr_t end[kMaxRanges] = {};
};
extern RuntimeRanges runtime_ranges;

// Whether a shared object's file name (a path or a base name) is a sanitizer runtime.
bool IsSanitizerRuntimeName(const char* file_name);

// Adds [begin, end) as runtime code. For tests, which have no sanitizer to point at.
void AddRuntimeRangeForTesting(const void* begin, const void* end);

// Whether `address` lies in a sanitizer runtime's code.
inline bool IsRuntimeCode(const void* address) {
  const uintptr_t value = reinterpret_cast<uintptr_t>(address);
  for (int i = 0; i < runtime_ranges.count; ++i) {
    if (value >= runtime_ranges.begin[i] && value < runtime_ranges.end[i]) return true;
  }
  return false;
}

// The return address of the last interposed call a task made (set by TaskScheduler()):
// where stack walks for reports start, since //posix's own frames live in the same
// executable as the user's.
inline thread_local void* entry_caller __attribute__((tls_model("initial-exec"))) = nullptr;

// The scheduler whose task is calling, or null (no run on this thread, the run loop, a
// timer callback, //posix's own internals). The one question every interposed function
// asks first.
//
// A call made by a sanitizer runtime (libasan, libubsan, ...) is not the user's and gets
// the real function: UBSan probes memory with pipe() and write(), ASan reads its thread
// key with pthread_getspecific, both from inside tasks. always_inline matters: the
// return address read here is the one of the interposer it is inlined into, i.e. the
// address in the code that called the interposed function.
__attribute__((always_inline)) inline Scheduler* TaskScheduler() {
  // Outside any simulation (the pass-through path every test binary pays): one
  // thread-local load and a branch.
  Scheduler* scheduler = Scheduler::Current();
  if (__builtin_expect(scheduler == nullptr, 1)) return nullptr;
  if (!scheduler->InTask() || in_internals) return nullptr;
  void* caller = __builtin_return_address(0);
  if (IsRuntimeCode(caller)) return nullptr;
  entry_caller = caller;
  return scheduler;
}

// The hottest interposers (mutexes, clocks, read and write) are split in two, so that
// their pass-through path compiles to a thread-local load, a branch and a jump through
// the real function's pointer, with no stack frame (GCC will not shrink-wrap a frame
// whose slow path rejoins the fast one, as TaskScheduler's "not in a task" answer does):
//
//   int pthread_mutex_lock(pthread_mutex_t* m) noexcept {
//     if (__builtin_expect(pi::NoRunOnThread(), 1)) return DSIM_REAL(pthread_mutex_lock)(m);
//     return LockInRun(m, __builtin_return_address(0));  // noinline: TaskSchedulerOf(caller)
//   }
// The simulated hot path of the libc-named socket calls (read, write, epoll_wait and
// what they reach in //posix), kept together in .text.hot (the linker groups those
// sections): scattered, its few dozen cache lines land on L1i sets the engine's hot
// code already fills, and the echo through epoll missed the instruction cache on
// every call.
#define DSIM_POSIX_HOT __attribute__((section(".text.hot.dsim_posix")))

__attribute__((always_inline)) inline bool NoRunOnThread() {
  return Scheduler::Current() == nullptr;
}

// TaskScheduler() for the out-of-line half of a split interposer, given the return
// address of the interposer itself.
inline Scheduler* TaskSchedulerOf(void* caller) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr || !scheduler->InTask() || in_internals) return nullptr;
  if (IsRuntimeCode(caller)) return nullptr;
  entry_caller = caller;
  return scheduler;
}

// The simulation's state, created on first use.
PosixState& CreateState(Scheduler& scheduler);
inline PosixState& State(Scheduler& scheduler) {
  void* state = scheduler.extension(Scheduler::kPosixExtension);
  if (__builtin_expect(state != nullptr, 1)) return *static_cast<PosixState*>(state);
  return CreateState(scheduler);
}

// Where the interposed call came from, as "function (object+offset)", for reports.
// By default this is the function that made the call (state.call_site), described once
// per address and cached: a std::mutex lock inlined into user code names the user's
// function; a std::condition_variable wait names libstdc++'s wait. With
// DSIM_POSIX_CALLERS=full in the environment, every blocking call walks the stack to
// the first frame outside libc, libstdc++ and //posix instead (precise, about a
// microsecond per call).
SourceLocation CallerLocation(PosixState& state);
// Set before main from DSIM_POSIX_CALLERS; read-only afterwards.
extern const bool full_caller_walks;
// CallerLocation's cached case, inline: every simulated read and write asks.
inline SourceLocation CachedCallerLocation(PosixState& state) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(state.call_site);
  const PosixState::CallSiteSlot& slot =
      state.call_site_cache[PosixState::CallSiteSlotOf(key)];
  if (__builtin_expect(slot.address == state.call_site && key != 0 && !full_caller_walks, 1)) {
    return slot.location;
  }
  return CallerLocation(state);
}
// Always the full walk (escapes, which fail the run anyway).
SourceLocation FullCallerLocation(PosixState& state);

// Marks the simulated path of an interposed call: its return address is the call site.
#define DSIM_CALL_SITE(scheduler) \
  (::dsim::posix::internal::State(scheduler).call_site = __builtin_return_address(0))
// The same in the out-of-line half of a split interposer.
#define DSIM_CALL_SITE_AT(scheduler, caller) \
  (::dsim::posix::internal::State(scheduler).call_site = (caller))

// Records a call forwarded to the real libc from inside a task. `fatal` ones (fork,
// exec, raw socket syscalls, real addresses) also fail the run with a report naming
// the task, the call and its location.
void RecordEscape(Scheduler& scheduler, const char* call, std::string detail, bool fatal);

// A simulated thread is ending: runs its pthread_key destructors and drops its values.
void ForgetTaskKeys(PosixState& state, TaskId task);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_STATE_H_
