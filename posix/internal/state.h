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

struct SimThread {
  TaskHandle handle;
  void* result = nullptr;
  bool detached = false;
  bool joined = false;
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
  // Simulated threads by task.
  std::unordered_map<TaskId, SimThread> threads;
  // pthread_setspecific values of tasks: (task, key) -> value.
  struct KeyHash {
    size_t operator()(const std::pair<TaskId, pthread_key_t>& k) const {
      return std::hash<uint64_t>()(k.first * 1031 + k.second);
    }
  };
  std::unordered_map<std::pair<TaskId, pthread_key_t>, const void*, KeyHash> specific;
  std::vector<EscapedCall> escapes;
  uint64_t threads_created = 0;

  // Stable strings for reports ("Queue::Pop() in queue_test").
  const char* Intern(std::string text) { return interned_.insert(std::move(text)).first->c_str(); }

  void EraseMutexIfIdle(const void* address);
  void EraseWaitIfIdle(const void* address);

  Scheduler& scheduler() { return *scheduler_; }

 private:
  Scheduler* scheduler_;
  std::unordered_set<std::string> interned_;
};

// Set while //posix's own slow paths run (symbolizing a caller, recording an escape):
// the libc calls they make themselves (Abseil's symbolizer maps memory through
// syscall()) must reach the real libc, not recurse. Never set across a blocking call,
// so it cannot leak from one task to another.
inline thread_local bool in_internals = false;

class InternalsScope {
 public:
  InternalsScope() : saved_(in_internals) { in_internals = true; }
  ~InternalsScope() { in_internals = saved_; }
  InternalsScope(const InternalsScope&) = delete;
  InternalsScope& operator=(const InternalsScope&) = delete;

 private:
  bool saved_;
};

// The scheduler whose task is calling, or null (no run on this thread, the run loop, a
// timer callback, //posix's own internals). The one question every interposed function
// asks first.
inline Scheduler* TaskScheduler() {
  if (__builtin_expect(in_internals, 0)) return nullptr;
  Scheduler* scheduler = Scheduler::Current();
  return scheduler != nullptr && scheduler->InTask() ? scheduler : nullptr;
}

// The simulation's state, created on first use.
PosixState& State(Scheduler& scheduler);

// Where the interposed call came from: the first caller frame outside libc, libstdc++
// and //posix, as "function (object+offset)". Computed only on slow paths (blocking,
// escapes).
SourceLocation CallerLocation(PosixState& state);

// Records a call forwarded to the real libc from inside a task. `fatal` ones (fork,
// exec, raw socket syscalls, real addresses) also fail the run with a report naming
// the task, the call and its location.
void RecordEscape(Scheduler& scheduler, const char* call, std::string detail, bool fatal);

// A simulated thread is ending: runs its pthread_key destructors and drops its values.
void ForgetTaskKeys(PosixState& state, TaskId task);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_STATE_H_
