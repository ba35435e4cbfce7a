// Threads: pthread_create starts a dsim task on the caller's host, so std::thread,
// std::jthread and std::async(std::launch::async) create tasks. Also join, detach,
// self, exit, once, keys (per task), sched_yield, and the pthread_t-taking calls that
// would otherwise dereference a simulated pthread_t.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "posix/internal/machine.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace dsim::posix::internal {
namespace {

// Simulated threads get larger stacks than dsim's default: unmodified code was written
// for 8 MiB thread stacks. Reserved, not committed.
#if defined(__SANITIZE_ADDRESS__) || defined(DSIM_ASAN)
constexpr size_t kThreadStackBytes = 1024 * 1024;
#else
constexpr size_t kThreadStackBytes = 256 * 1024;
#endif

// Destructors registered with pthread_key_create, by key. Keys are process-wide, as in
// glibc; this mirrors glibc's own key table (written once per key creation).
std::atomic<void (*)(void*)> key_destructors[PTHREAD_KEYS_MAX];
// Bumped by pthread_key_delete: values set under an older generation are gone, as glibc
// hides them behind its key sequence numbers.
std::atomic<uint64_t> key_generation[PTHREAD_KEYS_MAX];

uint64_t Generation(pthread_key_t key) {
  return key_generation[key].load(std::memory_order_relaxed);
}

}  // namespace

// Keys a sanitizer runtime created for itself. Their get/set always reach the real
// functions, also inside tasks: ASan's runtime reads its thread key from inside tasks
// while allocating, and must neither see a per-task value nor make //posix allocate
// (which recursed into ASan's allocator until the stack overflowed). Every other key,
// including keys user code creates before the simulation, holds one value per task.
// Written once per key creation.
std::atomic<bool> key_of_runtime[PTHREAD_KEYS_MAX];

// Whether `address` lies in a sanitizer runtime. By file name, not by
// IsRuntimeCode(): ASan creates its key while it initializes, before //posix's
// constructors found the runtimes' ranges. Once per key creation, not per access.
bool IsSanitizerRuntime(const void* address) {
  Dl_info info;
  return dladdr(address, &info) != 0 && IsSanitizerRuntimeName(info.dli_fname);
}

namespace {

void RunKeyDestructors(PosixState& state, TaskId task) {
  for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; ++round) {
    bool any = false;
    for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key) {
      auto it = state.specific.find({task, key});
      if (it == state.specific.end()) continue;
      void* value = const_cast<void*>(it->second.value);
      const bool live = it->second.generation == Generation(key);
      state.specific.erase(it);
      if (!live) continue;  // The key was deleted: no destructor (as glibc).
      void (*destructor)(void*) = key_destructors[key].load(std::memory_order_relaxed);
      if (value != nullptr && destructor != nullptr) {
        destructor(value);
        any = true;
      }
    }
    if (!any) return;
  }
}

}  // namespace

void ForgetTaskKeys(PosixState& state, TaskId task) {
  if (state.specific.empty()) return;
  RunKeyDestructors(state, task);
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(pthread_create);
DSIM_DECLARE_REAL(pthread_join);
DSIM_DECLARE_REAL(pthread_detach);
DSIM_DECLARE_REAL(pthread_self);
DSIM_DECLARE_REAL(pthread_exit);
DSIM_DECLARE_REAL(pthread_once);
DSIM_DECLARE_REAL(pthread_key_create);
DSIM_DECLARE_REAL(pthread_key_delete);
DSIM_DECLARE_REAL(pthread_barrier_init);
DSIM_DECLARE_REAL(pthread_barrier_wait);
DSIM_DECLARE_REAL(pthread_barrier_destroy);
DSIM_DECLARE_REAL(pthread_getspecific);
DSIM_DECLARE_REAL(pthread_setspecific);
DSIM_DECLARE_REAL(sched_yield);
DSIM_DECLARE_REAL(pthread_setname_np);
DSIM_DECLARE_REAL(pthread_getname_np);
DSIM_DECLARE_REAL(pthread_kill);
DSIM_DECLARE_REAL(pthread_cancel);
DSIM_DECLARE_REAL(pthread_getattr_np);
DSIM_DECLARE_REAL(pthread_setschedparam);
DSIM_DECLARE_REAL(pthread_getschedparam);
DSIM_DECLARE_REAL(pthread_setaffinity_np);
DSIM_DECLARE_REAL(pthread_getaffinity_np);
DSIM_DECLARE_REAL(pthread_getcpuclockid);
DSIM_DECLARE_REAL(pthread_tryjoin_np);
DSIM_DECLARE_REAL(pthread_timedjoin_np);

// A simulated pthread_t passed to a real function would be dereferenced: refuse it.
// always_inline: TaskScheduler() must see the return address of the interposer.
__attribute__((always_inline)) inline int RefuseSimThread(const char* call) {
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    pi::RecordEscape(*scheduler, call, "not simulated for simulated threads", true);
  }
  return ENOSYS;
}

}  // namespace

extern "C" {

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                   void* arg) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_create)(thread, attr, start, arg);
  pi::PosixState& state = pi::State(*scheduler);
  int detach_state = PTHREAD_CREATE_JOINABLE;
  if (attr != nullptr) pthread_attr_getdetachstate(attr, &detach_state);
  const std::string name = absl::StrCat(scheduler->CurrentTaskName(), "/thread-",
                                        ++state.threads_created);
  dsim::SpawnOptions options;
  options.group = scheduler->CurrentGroup();
  options.stack_size = pi::kThreadStackBytes;
  auto record = std::make_shared<pi::SimThread>();
  record->detached = detach_state == PTHREAD_CREATE_DETACHED;
  dsim::TaskHandle handle;
  {
    dsim::Scheduler::NoUnwindScope no_unwind;  // pthread_create is noexcept.
    handle = scheduler->Spawn(name, [&state, start, arg, record] {
      const dsim::TaskId self = dsim::CurrentTaskId();
      // Runs however the body ends, unwinding included: joiners must learn of it.
      struct Finish {
        pi::PosixState& state;
        pi::SimThread& record;
        dsim::TaskId self;
        void* result = nullptr;
        ~Finish() {
          pi::ForgetTaskKeys(state, self);
          record.done = true;
          record.result = result;
          if (!record.joiners.empty()) {
            record.joiners.WakeAll();
          } else if (record.detached) {
            state.threads.erase(self);
          }
        }
      } finish{state, *record, self};
      try {
        finish.result = start(arg);
      } catch (const pi::ThreadExit& exit) {
        finish.result = exit.value;
      }
    }, options);
  }
  record->handle = handle;
  if (!(record->done && record->detached)) state.threads.emplace(handle.id(), record);
  *thread = pi::SimThreadId(handle.id());
  return 0;
}

int pthread_join(pthread_t thread, void** result) {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_join)(thread, result);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return ESRCH;  // A simulated thread outside its simulation.
  pi::PosixState& state = pi::State(*scheduler);
  DSIM_CALL_SITE(*scheduler);
  const dsim::TaskId task = pi::SimThreadTask(thread);
  auto it = state.threads.find(task);
  if (it == state.threads.end() || it->second->detached || it->second->joined) return EINVAL;
  if (task == scheduler->CurrentTaskId()) return EDEADLK;
  std::shared_ptr<pi::SimThread> keep = it->second;
  pi::SimThread& record = *keep;
  record.joined = true;
  {
    // pthread_join never throws, even for a joiner that is killed (a crash, or the
    // scheduler unwinding a finished run): std::thread::join would leave the thread
    // joinable and its destructor would call std::terminate. It keeps waiting instead;
    // the target, killed too, finishes as it unwinds. Returning early would let the
    // joiner run on and free what the target still uses. The kill lands at the
    // joiner's next scheduling point.
    dsim::Scheduler::NoUnwindScope no_unwind;
    const dsim::SourceLocation where = pi::CallerLocation(state);
    // handle.done(): a thread killed before it ever ran never runs its body's cleanup.
    while (!record.done && !record.handle.done()) record.joiners.Wait("pthread_join", where);
    record.done = true;
  }
  if (result != nullptr) *result = record.result;
  if (record.joiners.empty()) state.threads.erase(task);
  return 0;
}

int pthread_tryjoin_np(pthread_t thread, void** result) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_tryjoin_np)(thread, result);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return ESRCH;
  pi::PosixState& state = pi::State(*scheduler);
  auto it = state.threads.find(pi::SimThreadTask(thread));
  if (it == state.threads.end() || it->second->detached) return EINVAL;
  if (!it->second->done && !it->second->handle.done()) return EBUSY;
  if (result != nullptr) *result = it->second->result;
  state.threads.erase(it);
  return 0;
}

int pthread_timedjoin_np(pthread_t thread, void** result, const struct timespec* abstime) {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_timedjoin_np)(thread, result, abstime);
  return RefuseSimThread("pthread_timedjoin_np");
}

int pthread_detach(pthread_t thread) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_detach)(thread);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return ESRCH;
  pi::PosixState& state = pi::State(*scheduler);
  auto it = state.threads.find(pi::SimThreadTask(thread));
  if (it == state.threads.end() || it->second->detached) return EINVAL;
  if (it->second->done && it->second->joiners.empty()) {
    state.threads.erase(it);
  } else {
    it->second->detached = true;
  }
  return 0;
}

pthread_t pthread_self(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(pthread_self)();
  return pi::SimThreadId(scheduler->CurrentTaskId());
}

void pthread_exit(void* value) {
  if (pi::TaskScheduler() == nullptr) DSIM_REAL(pthread_exit)(value);
  throw pi::ThreadExit{value};
}

int pthread_once(pthread_once_t* once, void (*init)(void)) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(pthread_once)(once, init);
  // glibc's encoding: bit 1 done, bit 0 in progress. A real thread that finished the
  // initialization before the simulation left it done; that is what we check first.
  auto* word = reinterpret_cast<std::atomic<int>*>(once);
  for (;;) {
    const int value = word->load(std::memory_order_acquire);
    if (value & 2) return 0;
    if (value == 0) break;
    dsim::Yield();  // Another task is initializing: let it finish.
  }
  word->store(1, std::memory_order_relaxed);
  try {
    init();
  } catch (...) {
    word->store(0, std::memory_order_release);  // As glibc's cancellation cleanup does.
    throw;
  }
  word->store(2, std::memory_order_release);
  return 0;
}

int pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) noexcept {
  const int result = DSIM_REAL(pthread_key_create)(key, destructor);
  if (result == 0 && *key < PTHREAD_KEYS_MAX) {
    pi::key_destructors[*key].store(destructor, std::memory_order_relaxed);
    pi::key_of_runtime[*key].store(pi::IsSanitizerRuntime(__builtin_return_address(0)),
                                   std::memory_order_relaxed);
  }
  return result;
}

void* pthread_getspecific(pthread_key_t key) noexcept {
  // The key test comes first and touches no allocation: a sanitizer runtime calls this
  // for its own key from inside tasks.
  if (key >= PTHREAD_KEYS_MAX || pi::key_of_runtime[key].load(std::memory_order_relaxed)) {
    return DSIM_REAL(pthread_getspecific)(key);
  }
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_getspecific)(key);
  pi::PosixState& state = pi::State(*scheduler);
  auto it = state.specific.find({scheduler->CurrentTaskId(), key});
  if (it == state.specific.end() || it->second.generation != pi::Generation(key)) {
    return nullptr;
  }
  return const_cast<void*>(it->second.value);
}

int pthread_setspecific(pthread_key_t key, const void* value) noexcept {
  if (key >= PTHREAD_KEYS_MAX || pi::key_of_runtime[key].load(std::memory_order_relaxed)) {
    return DSIM_REAL(pthread_setspecific)(key, value);
  }
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_setspecific)(key, value);
  pi::PosixState& state = pi::State(*scheduler);
  const std::pair<dsim::TaskId, pthread_key_t> slot{scheduler->CurrentTaskId(), key};
  if (value == nullptr) {
    state.specific.erase(slot);
  } else {
    state.specific[slot] = pi::PosixState::KeyValue{value, pi::Generation(key)};
  }
  return 0;
}

// Process-wide, in or out of a task: the key number may be handed out again, and every
// value set under it (in any simulation) becomes unreachable.
int pthread_key_delete(pthread_key_t key) noexcept {
  const int result = DSIM_REAL(pthread_key_delete)(key);
  if (result == 0 && key < PTHREAD_KEYS_MAX && !pi::key_of_runtime[key].load()) {
    pi::key_destructors[key].store(nullptr, std::memory_order_relaxed);
    pi::key_generation[key].fetch_add(1, std::memory_order_relaxed);
  }
  return result;
}

// ---- Barriers --------------------------------------------------------------------------
// pthread_barrier_init is always the real one (it validates the count and stores it in
// the object, where a simulated wait reads it: a barrier may be made before the
// simulation). Waits in tasks are simulated: the last of `count` arrivals ends the round
// and gets PTHREAD_BARRIER_SERIAL_THREAD, the others 0.

int pthread_barrier_init(pthread_barrier_t* barrier, const pthread_barrierattr_t* attr,
                         unsigned count) noexcept {
  return DSIM_REAL(pthread_barrier_init)(barrier, attr, count);
}

int pthread_barrier_wait(pthread_barrier_t* barrier) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_barrier_wait)(barrier);
  DSIM_CALL_SITE(*scheduler);
  pi::PosixState& state = pi::State(*scheduler);
  // glibc's struct pthread_barrier: in, current_round, count, shared, out.
  unsigned count;
  std::memcpy(&count, reinterpret_cast<const char*>(barrier) + 2 * sizeof(unsigned),
              sizeof(count));
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  scheduler->SchedulingPoint();
  pi::SimBarrier& simulated = state.barriers[barrier];  // Stable: a node of the map.
  if (++simulated.arrived >= count) {
    simulated.arrived = 0;
    ++simulated.round;
    if (!simulated.waiters.empty()) simulated.waiters.WakeAll();
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  const uint64_t round = simulated.round;
  const dsim::SourceLocation where = pi::CallerLocation(state);
  while (simulated.round == round) {
    simulated.waiters.Wait("pthread_barrier_wait", where);
    // Killed while the round may never complete: leave (the task unwinds at its next
    // scheduling point); its arrival no longer counts.
    if (simulated.round == round && scheduler->CurrentTaskKilled()) {
      --simulated.arrived;
      return 0;
    }
  }
  return 0;
}

int pthread_barrier_destroy(pthread_barrier_t* barrier) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler != nullptr) {
    pi::PosixState& state = pi::State(*scheduler);
    auto it = state.barriers.find(barrier);
    if (it != state.barriers.end()) {
      if (it->second.arrived > 0) return EBUSY;  // Tasks still wait in this round.
      state.barriers.erase(it);
    }
  }
  return DSIM_REAL(pthread_barrier_destroy)(barrier);
}

int sched_yield(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sched_yield)();
  dsim::Scheduler::NoUnwindScope no_unwind;  // sched_yield is noexcept.
  scheduler->Yield();
  return 0;
}

int pthread_setname_np(pthread_t thread, const char* name) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_setname_np)(thread, name);
  return 0;  // Tasks keep the names dsim gave them (reports and traces use those).
}

int pthread_getname_np(pthread_t thread, char* name, size_t length) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_getname_np)(thread, name, length);
  if (length < 1) return ERANGE;
  name[0] = '\0';
  return 0;
}

int pthread_kill(pthread_t thread, int signal) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_kill)(thread, signal);
  return RefuseSimThread("pthread_kill");
}

int pthread_cancel(pthread_t thread) {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_cancel)(thread);
  return RefuseSimThread("pthread_cancel");
}

int pthread_getattr_np(pthread_t thread, pthread_attr_t* attr) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_getattr_np)(thread, attr);
  return pthread_attr_init(attr);
}

int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param* param) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_setschedparam)(thread, policy, param);
  return 0;  // Priorities mean nothing to the strategy.
}

int pthread_getschedparam(pthread_t thread, int* policy, struct sched_param* param) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_getschedparam)(thread, policy, param);
  *policy = SCHED_OTHER;
  param->sched_priority = 0;
  return 0;
}

int pthread_setaffinity_np(pthread_t thread, size_t size, const cpu_set_t* set) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_setaffinity_np)(thread, size, set);
  return 0;
}

int pthread_getaffinity_np(pthread_t thread, size_t size, cpu_set_t* set) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_getaffinity_np)(thread, size, set);
  memset(set, 0, size);
  // The simulated CPUs (posix/internal/machine.h), as sched_getaffinity answers.
  for (int cpu = 0; cpu < pi::kSimulatedCpus; ++cpu) CPU_SET_S(cpu, size, set);
  return 0;
}

int pthread_getcpuclockid(pthread_t thread, clockid_t* clock) noexcept {
  if (!pi::IsSimThread(thread)) return DSIM_REAL(pthread_getcpuclockid)(thread, clock);
  *clock = CLOCK_THREAD_CPUTIME_ID;
  return 0;
}

}  // extern "C"
