// PosixState: what //posix keeps per simulation (in the scheduler's kPosixExtension
// slot, owned by the scheduler): simulated pthread objects, threads, thread-specific
// values, and the list of calls that escaped to the real libc from inside tasks.
//
// Simulated mutexes, condition variables and futex words are found by their address in
// side tables, never by writing into the user's pthread object: the same object may be
// used by real threads before or after the simulation (a global std::mutex), and its
// real contents (the mutex kind, the condition variable's clock) stay glibc's. An entry
// exists only while the object is locked or has waiters, so a destroyed object (a
// std::mutex has a trivial destructor) leaves nothing behind. The tables are looked up,
// never iterated: no decision depends on an address.
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
  TaskId owner = kNoTask;
  uint32_t count = 0;  // Recursion depth.
  int readers = 0;     // rwlocks: read holders.
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

  // Locked or waited-on objects, by address. Entries are erased when idle.
  std::unordered_map<const void*, SimMutex> mutexes;
  std::unordered_map<const void*, WaitQueue> waits;  // Condition variables, futexes.
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
  uint64_t threads_created = 0;

  // A stable copy of `text` for SourceLocations in reports. Process-wide and never
  // freed: a RunResult (and its report) outlives the simulation that made it. It only
  // caches symbol descriptions; nothing is decided by it.
  static const char* Intern(std::string text);

  void EraseMutexIfIdle(const void* address);
  void EraseWaitIfIdle(const void* address);

  Scheduler& scheduler() { return *scheduler_; }

 private:
  Scheduler* scheduler_;
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

// The simulation's state, created on first use.
PosixState& State(Scheduler& scheduler);

// Where the interposed call came from, as "function (object+offset)", for reports.
// By default this is the function that made the call (state.call_site), described once
// per address and cached: a std::mutex lock inlined into user code names the user's
// function; a std::condition_variable wait names libstdc++'s wait. With
// DSIM_POSIX_CALLERS=full in the environment, every blocking call walks the stack to
// the first frame outside libc, libstdc++ and //posix instead (precise, about a
// microsecond per call).
SourceLocation CallerLocation(PosixState& state);
// Always the full walk (escapes, which fail the run anyway).
SourceLocation FullCallerLocation(PosixState& state);

// Marks the simulated path of an interposed call: its return address is the call site.
#define DSIM_CALL_SITE(scheduler) \
  (::dsim::posix::internal::State(scheduler).call_site = __builtin_return_address(0))

// Records a call forwarded to the real libc from inside a task. `fatal` ones (fork,
// exec, raw socket syscalls, real addresses) also fail the run with a report naming
// the task, the call and its location.
void RecordEscape(Scheduler& scheduler, const char* call, std::string detail, bool fatal);

// A simulated thread is ending: runs its pthread_key destructors and drops its values.
void ForgetTaskKeys(PosixState& state, TaskId task);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_STATE_H_
