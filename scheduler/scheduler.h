// Scheduler: runs tasks as fibers on one OS thread, under a virtual clock, in an order
// a seeded Strategy decides.
//
// Example:
//
//   dsim::Mutex mu;        // Objects tasks use come first: they must outlive the tasks,
//   int counter = 0;       // which the Scheduler's destructor unwinds.
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7});
//   for (int i = 0; i < 3; ++i) {
//     scheduler.Spawn(absl::StrCat("worker-", i), [&] {
//       dsim::SleepFor(absl::Milliseconds(10));   // virtual: returns at once in wall time
//       dsim::MutexLock lock(&mu);
//       ++counter;
//     });
//   }
//   dsim::RunResult result = scheduler.Run();     // until every task has finished
//   // result.ok(); scheduler.Now() == Scheduler::Epoch() + 10ms; counter == 3.
//
// Model. Tasks never run in parallel. A task runs until it reaches a scheduling point:
// any blocking call (a sleep, a mutex, a socket read), a synchronization operation, or
// SchedulingPoint(). There the Strategy picks the next runnable task, which may be the
// same one. Yield() instead hands the CPU to another runnable task. When no task is
// runnable, the clock jumps to the earliest timer. Tasks take no virtual time to compute.
//
// Determinism. Same program, same strategy and seed: the same sequence of decisions,
// task ids, timers and virtual times, on any machine. The scheduler keeps no global
// mutable state; each simulation owns its scheduler, and several may run on different
// OS threads at once. The thread running Run() is the "current" thread of that
// scheduler; task code reaches it through the free functions below (dsim::Now() ...).
//
// Threading. A Scheduler and everything it runs belong to the thread that calls Run.
// Never share a Scheduler, its tasks or its primitives across OS threads. While a run
// (or the unwinding at shutdown) is active, calling any Scheduler entry point (Spawn,
// AddTimer, CancelTimer, Run*, Kill*, Pause/ResumeGroup, Fail, ChooseValue, Annotate,
// listeners, Shutdown) from another OS thread is a misuse error that ends the process.
// Between runs a Scheduler may be handed to another thread.
#ifndef DSIM_SCHEDULER_SCHEDULER_H_
#define DSIM_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/clock.h"
#include "scheduler/internal/fiber.h"
#include "scheduler/internal/nanos.h"
#include "scheduler/internal/stack_pool.h"
#include "scheduler/internal/timer_queue.h"
#include "scheduler/internal/watchdog.h"
#include "scheduler/source_location.h"
#include "scheduler/strategy.h"

namespace dsim {

class Scheduler;
class TraceSink;
struct AnnotationKind;

namespace internal {
struct Task;
class WaitQueue;
// The scheduler whose run is active on this thread (Scheduler::Current()). __thread,
// not thread_local: no dynamic initialization, so reading it is one load, cheap
// enough for //posix to ask on every interposed libc call. Initial-exec: even in a
// shared library (Bazel links tests dynamically) reading it never calls
// __tls_get_addr, which ASan intercepts with a call to pthread_getspecific (interposed
// by //posix, which reads this variable: endless recursion otherwise).
extern __thread Scheduler* current_scheduler __attribute__((tls_model("initial-exec")));
bool RunMisuseFailed(const char* file, int line, TaskId first, TaskId second,
                     const std::string& message);
}  // namespace internal

// Default stack of a task: reserved, not committed. An idle task costs about one page.
#if defined(__SANITIZE_ADDRESS__) || defined(DSIM_ASAN)
inline constexpr size_t kDefaultStackSize = 512 * 1024;  // ASan frames are much larger.
#else
inline constexpr size_t kDefaultStackSize = 64 * 1024;
#endif

// What a task runs: any callable, called once. Move-only captures are fine (an accepted
// TcpStream, a std::unique_ptr): `Spawn("conn", [s = std::move(stream)]() mutable {...})`.
using TaskBody = absl::AnyInvocable<void() &&>;

using TimerId = uint64_t;
inline constexpr TimerId kNoTimer = 0;

// A group of tasks that pause, resume and die together: a simulated host. 0 is the
// default group, which cannot be paused or killed as a whole.
using GroupId = uint32_t;
inline constexpr GroupId kNoGroup = 0;

struct SpawnOptions {
  // Stack size in bytes; 0 means SchedulerOptions::default_stack_size.
  size_t stack_size = 0;
  // A daemon task (a server loop) does not keep Run() going, and being blocked forever
  // is not a deadlock for it.
  bool daemon = false;
  // The group (host) the task belongs to.
  GroupId group = kNoGroup;
};

struct SchedulerOptions {
  uint64_t seed = 1;
  // Decides every choice. Null means RandomStrategy(seed).
  std::shared_ptr<Strategy> strategy;
  // A run stops with kStepLimit after this many scheduling steps; 0 means no limit.
  uint64_t max_steps = 0;
  // A run stops with kTimeLimit before the clock passes Epoch() + max_virtual_time.
  absl::Duration max_virtual_time = absl::InfiniteDuration();
  size_t default_stack_size = kDefaultStackSize;
  // Makes dsim::SharedAccess() (shared_access.h) a scheduling point. Off by default, so
  // marked plain-memory accesses cost a thread-local read and a branch.
  bool shared_access_points = false;
  // Runaway-task watchdog: a task (or timer callback) that runs this long in wall-clock
  // time without reaching a scheduling point is reported on stderr with its name and
  // stack, once per stall; the run then goes on as before (the watchdog only observes).
  // Zero turns it off. The environment overrides both settings: DSIM_WATCHDOG=<seconds>
  // or 0/off, DSIM_WATCHDOG_ABORT=1 (abort after the report).
  absl::Duration watchdog = absl::Seconds(5);
  bool watchdog_abort = false;
};

enum class RunOutcome {
  kCompleted,    // Run(): every non-daemon task finished.
  kIdle,         // RunUntil(): nothing left to happen (no runnable task, no timer).
  kReachedTime,  // RunFor/RunUntil: the clock reached the requested time.
  kDeadlock,     // Non-daemon tasks blocked, nothing runnable, no timer pending.
  kStepLimit,    // SchedulerOptions::max_steps reached.
  kTimeLimit,    // SchedulerOptions::max_virtual_time reached.
  kTaskFailed,   // An exception escaped a task or a timer callback.
  kMisuse,       // A task or callback misused a primitive (see RunResult::failure).
};

const char* RunOutcomeName(RunOutcome outcome);
std::ostream& operator<<(std::ostream& os, RunOutcome outcome);

// One task, as a report shows it.
struct TaskReport {
  TaskId id = kNoTask;
  std::string name;
  GroupId group = kNoGroup;
  bool daemon = false;
  bool blocked = false;
  std::string blocked_in;  // "CondVar::Wait", when blocked.
  SourceLocation blocked_at;
  // The host the task runs on, when a layer above (Simulation) knows it; "" otherwise.
  std::string host;

  // `task "client-2" on host "kv-1" blocked in CondVar::Wait at kv.cc:88` or
  // `task "x" runnable`.
  std::string ToString() const;
};

// What a run ended with. Hangs and failures are results, never aborts.
struct RunResult {
  RunOutcome outcome = RunOutcome::kCompleted;
  absl::Time end_time;
  uint64_t steps = 0;  // Steps taken by this run.
  // kDeadlock: every blocked non-daemon task. kStepLimit, kTimeLimit: every live task.
  // kMisuse: the tasks involved (the one that misused the primitive first), as they
  // were when it happened.
  std::vector<TaskReport> tasks;
  // kTaskFailed: the task that threw (kNoTask for a timer callback) and what it threw.
  // kMisuse: the task that misused a primitive and the message naming the misuse.
  TaskId failed_task = kNoTask;
  std::string failed_task_name;
  std::string failure;
  // kTaskFailed through Scheduler::Fail (a checker, dsim::Fail, a diverged replay),
  // not an exception: `failure` is the checker's message, and status() leads with it.
  bool failed_check = false;

  // kCompleted, kIdle and kReachedTime are successes.
  bool ok() const;
  // OK, or an error whose message is ToString().
  absl::Status status() const;
  // Multi-line summary: outcome, virtual time, steps, and the task list.
  std::string ToString() const;
};

// Thrown into a task that is being stopped (a crashed host, Scheduler::Kill, Shutdown
// or the Scheduler's destructor) from its current or next scheduling point, so that the
// destructors on its stack run. Deliberately not derived from std::exception, so
// `catch (const std::exception&)` does not stop it. A `catch (...)` that does not
// rethrow swallows it; write
//
//   try { ServeOne(); }
//   catch (const dsim::TaskUnwind&) { throw; }   // dsim is stopping this task
//   catch (...) { LogAndContinue(); }
//
// A task that swallows it and reaches a scheduling point again is reported once on
// stderr (name, location, stack; inside a run the run also fails with
// RunOutcome::kMisuse) and unwound once more. If it swallows that one too, it is stopped
// at its next scheduling point: its remaining frames are abandoned and their destructors
// do not run.
struct TaskUnwind {};

// Why a blocked task woke.
enum class WakeReason : uint8_t { kWoken, kTimedOut };

// A read-only view of a task for listeners.
struct TaskView {
  TaskId id;
  absl::string_view name;
  GroupId group;
  bool daemon;
};

// The binary form of an annotation's detail, formatted into text only when someone
// reads it (a failure report, a text or Perfetto export). Hot paths (socket calls,
// packets) annotate this way, so a trace costs no text formatting while it records.
struct AnnotationPayload {
  static constexpr int kMaxWords = 10;
  // A static string the formatter uses (a call's name); never a temporary. Traces hash
  // its content, not its address.
  const char* text = nullptr;
  uint8_t word_count = 0;
  uint64_t words[kMaxWords];
};
// Appends the detail text of `payload` to `out`. One formatter per category.
using AnnotationFormatter = void (*)(const AnnotationPayload& payload, std::string* out);

// An event from a layer above the scheduler (sockets, network, faults), for traces.
struct Annotation {
  absl::string_view category;  // "net.send", "fault.partition", "socket.call", ...
  absl::string_view detail;    // Human-readable (unless `format` is set).
  GroupId group = kNoGroup;    // Host the event belongs to.
  // A flow links a send to its delivery: 0 none; phase 1 starts it, phase 2 ends it.
  uint64_t flow_id = 0;
  int flow_phase = 0;
  // Lazy detail: when set, the detail is format(payload) and `detail` is unused.
  AnnotationFormatter format = nullptr;
  AnnotationPayload payload;
  // With `format` and a flow: the payload is the one the flow's start (phase 1, same
  // flow_id) carried, as a delivery repeats its send's packet. A trace then records only
  // the reference (and shows the start's payload through this annotation's formatter).
  bool repeats_flow_start = false;

  // The detail as text: `detail`, or the formatted payload.
  std::string DetailText() const;
};

// Observes everything the scheduler does. Callbacks run inline and must not block or
// re-enter the scheduler. (A Trace hears the scheduler through its trace sink instead,
// scheduler/trace_sink.h, which costs no call per event; a second trace listens here.)
class SchedulerListener {
 public:
  virtual ~SchedulerListener() = default;
  virtual void OnDecision(const Decision& /*decision*/, uint64_t /*chosen*/) {}
  virtual void OnSpawn(const TaskView& /*task*/) {}
  // A task is given the CPU (every scheduling step).
  virtual void OnDispatch(const TaskView& /*task*/) {}
  virtual void OnBlock(const TaskView& /*task*/, const char* /*what*/,
                       SourceLocation /*where*/) {}
  virtual void OnWake(const TaskView& /*task*/, WakeReason /*reason*/) {}
  virtual void OnFinish(const TaskView& /*task*/) {}
  virtual void OnTimerFired(TimerId /*timer*/, absl::Time /*when*/) {}
  virtual void OnClockAdvanced(absl::Time /*from*/, absl::Time /*to*/) {}
  virtual void OnAnnotation(const Annotation& /*annotation*/) {}
};

// Refers to a spawned task. Cheap to copy. Must not outlive its scheduler.
class TaskHandle {
 public:
  TaskHandle() = default;

  TaskId id() const { return id_; }
  bool valid() const { return scheduler_ != nullptr; }
  // True once the task has finished (returned, threw, or was killed).
  bool done() const;
  // Blocks the calling task until this task has finished. Must be called from a task
  // other than this one.
  void Join(SourceLocation where = SourceLocation::Current()) const;

 private:
  friend class Scheduler;
  TaskHandle(Scheduler* scheduler, TaskId id) : scheduler_(scheduler), id_(id) {}

  Scheduler* scheduler_ = nullptr;
  TaskId id_ = kNoTask;
};

class Scheduler {
 public:
  // Virtual time starts here: 2000-01-01 00:00:00 UTC, in every simulation.
  static absl::Time Epoch() { return absl::FromUnixSeconds(946684800); }

  explicit Scheduler(SchedulerOptions options = {});
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Unwinds every unfinished task (destructors of objects on fiber stacks run), in
  // spawn order. Must not be called from inside a task or while a run is active.
  ~Scheduler();

  // ---- Building and running ------------------------------------------------------

  // Creates a task that will run `body`. May be called before a run, from a task, or
  // from a timer callback. The task first runs when the strategy picks it.
  TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options = {});

  // Runs until every non-daemon task has finished (kCompleted), or a deadlock, limit or
  // failure. With no non-daemon task alive when it starts, runs until nothing is left
  // to happen: no runnable task and no pending timer (kIdle).
  RunResult Run();
  // Runs until the clock reaches Now() + duration (kReachedTime), or nothing is left to
  // happen (kIdle), or a deadlock, limit or failure.
  RunResult RunFor(absl::Duration duration);
  // As RunFor, up to an absolute virtual time.
  RunResult RunUntil(absl::Time deadline);

  // ---- Time and timers -----------------------------------------------------------

  absl::Time Now() const { return now_; }
  // The same instant as nanoseconds since Epoch(), without absl::Time arithmetic.
  int64_t NowNanos() const { return now_ns_; }

  // Calls `callback` when the clock reaches `when` (at once, at the next scheduling
  // point, if `when` is not in the future). Callbacks run outside any task: they may
  // Spawn, wake tasks and add timers, but must not block. A timer of a paused group
  // fires only after the group resumes.
  TimerId AddTimer(absl::Time when, std::function<void()> callback, GroupId group = kNoGroup);
  // AddTimer for the hot paths of the layers above (packets in flight, TCP timers):
  // due `when_ns` nanoseconds after Epoch(), it calls function(context, argument). No
  // std::function to move and no absl::Time arithmetic; otherwise the same timer (same
  // order, same group rules, CancelTimer works).
  using TimerFunction = internal::TimerFunction;  // void (*)(void* context, uint64_t argument)
  TimerId AddTimerCall(int64_t when_ns, TimerFunction function, void* context,
                       uint64_t argument, GroupId group = kNoGroup) {
    CheckThread("AddTimerCall");
    DSIM_MISUSE(function != nullptr, "AddTimerCall with a null function");
    if (ABSL_PREDICT_FALSE(group >= groups_.size())) Group(group);
    return timers_.IdOf(timers_.AddCall(when_ns > now_ns_ ? when_ns : now_ns_, group, function,
                                        context, argument));
  }
  // Cancels a pending timer. Returns false if it already fired or was cancelled.
  bool CancelTimer(TimerId timer);
  size_t pending_timers() const { return timers_.size(); }

  // ---- Host clocks (scheduler/clock.h) ----------------------------------------------
  // Now() and timers are true virtual time. A group may have a HostClock; its tasks then
  // read the host's clocks through dsim::Now() and dsim::MonotonicNow(), and their
  // sleeps and deadlines are measured on it. Everything else sees true time.

  // Tasks of `group` use `clock` (not owned; null: true time again).
  void SetGroupClock(GroupId group, const HostClock* clock);
  // True once some group has a HostClock (SetGroupClock).
  bool has_group_clocks() const { return has_group_clocks_; }
  // The running task's host clock, or null (no task, no clock).
  const HostClock* CurrentClock() const {
    if (!has_group_clocks_ || current_ == nullptr) return nullptr;
    return CurrentClockSlow();
  }
  // The running task's wall clock (Now() when it has no clock).
  absl::Time LocalNow() const;
  // The running task's monotonic clock: time since its host booted (Now() - Epoch()
  // when it has no clock). Never decreases.
  absl::Duration MonotonicNow() const;
  // The true time at which the running task's wall clock reads `local`.
  absl::Time TrueTimeOfLocal(absl::Time local) const;
  // The true duration of `local` on the running task's clock.
  absl::Duration TrueDurationOfLocal(absl::Duration local) const;
  // The true instant at which `local` of the running task's clock has passed from now:
  // the deadline of a relative timeout, which clock steps do not move.
  absl::Time TrueDeadlineAfterLocal(absl::Duration local) const;
  // As TrueTimeOfLocal, for an absolute CLOCK_REALTIME deadline: while the running task
  // blocks with exactly the returned true deadline (in one wait, or again after a
  // spurious wake), a step of its host's clock moves the wait to the instant the stepped
  // clock reads `local`, as Linux moves absolute CLOCK_REALTIME timers. Tasks without a
  // clock get `local` unchanged.
  absl::Time TrueTimeOfRealtimeDeadline(absl::Time local);
  // Whether the running task's deadline `true_deadline` has passed: for a realtime one
  // (as returned by TrueTimeOfRealtimeDeadline), whether the host's wall clock, steps
  // included, has reached it; otherwise Now() >= true_deadline. For wait loops that
  // look at the clock after a wake.
  bool DeadlinePassed(absl::Time true_deadline) const;
  // For callbacks that belong to a host (its TCP timers, timerfds): `group`'s clock.
  absl::Duration TrueDurationOfLocal(GroupId group, absl::Duration local) const;
  absl::Duration LocalDurationOfTrue(GroupId group, absl::Duration true_duration) const;
  absl::Time WallNow(GroupId group) const;
  absl::Time TrueTimeOfWall(GroupId group, absl::Time wall) const;
  // `group`'s clock was stepped (`stepped`) or its drift changed: re-arms the realtime
  // waits of its blocked tasks (see TrueTimeOfRealtimeDeadline), then calls its clock
  // watchers. Simulation::StepClock and SetClockDrift call it; so must anyone who changes
  // a HostClock set with SetGroupClock.
  void GroupClockChanged(GroupId group, bool stepped = true);
  // Calls `callback(stepped)` (in the caller of GroupClockChanged; it must not block) at
  // every change of `group`'s clock, in the order watchers were added: timers kept on a
  // host's wall clock (a CLOCK_REALTIME timerfd) re-arm from it. Returns an id for
  // RemoveClockWatcher.
  uint64_t AddClockWatcher(GroupId group, std::function<void(bool stepped)> callback);
  void RemoveClockWatcher(uint64_t id);
  // Who owns the group clocks steps them (Simulation::StepClock, which calls
  // GroupClockChanged); the stepper returns false for a group it has no clock for.
  // StepCurrentClock steps the running task's host clock through it (clock_settime under
  // //posix); false without a stepper or a host.
  using ClockStepper = std::function<bool(GroupId group, absl::Duration offset)>;
  void SetClockStepper(ClockStepper stepper) { clock_stepper_ = std::move(stepper); }
  bool StepCurrentClock(absl::Duration offset);

  // ---- Inside a task (the free functions below forward here) -----------------------

  // Hands the CPU to another runnable task, as sched_yield() does: the strategy picks
  // among the *other* runnable tasks, and the caller goes to the back of the queue. With
  // no other task runnable, the caller continues. Spin loops that Yield make progress
  // under every strategy.
  void Yield();
  // A preemption point: the strategy picks among all runnable tasks, the caller
  // included, so the caller may simply continue. Every primitive operation and socket
  // call is one; this is where interleavings are explored.
  void SchedulingPoint();
  void SleepFor(absl::Duration duration, SourceLocation where = SourceLocation::Current());
  void SleepUntil(absl::Time deadline, SourceLocation where = SourceLocation::Current());
  bool InTask() const { return current_ != nullptr; }
  // std::uncaught_exceptions() of the running task, read without a call into the C++
  // runtime (socket calls ask on every call). Only inside a task.
  int UncaughtExceptions() const { return static_cast<int>(*uncaught_exceptions_); }
  // True while the calling task is being stopped (crash, Kill, Shutdown): its frames
  // are unwinding by dsim::TaskUnwind.
  bool CurrentTaskIsBeingStopped() const;
  // True when the current task has been killed (crash, shutdown) and is to unwind; code
  // that must not throw (inside a NoUnwindScope) checks it to stop waiting.
  bool CurrentTaskKilled() const;
  [[noreturn]] void FailOutsideTask(const char* operation) const;
  TaskId CurrentTaskId() const;
  // The running task (null on the main fiber and in callbacks), for listeners that read
  // its id inline (internal/task.h) on every event instead of calling CurrentTaskId.
  const internal::Task* current_task() const { return current_; }
  absl::string_view CurrentTaskName() const;
  GroupId CurrentGroup() const { return current_group_; }

  // ---- Groups (hosts) ---------------------------------------------------------------

  // Freezes a group: its tasks are not scheduled and its timers do not fire until
  // ResumeGroup. A running task of the group freezes at its next scheduling point.
  void PauseGroup(GroupId group);
  void ResumeGroup(GroupId group);
  bool GroupPaused(GroupId group) const {
    return group < groups_.size() && groups_[group].paused;
  }
  // Unwinds every task of the group (as a crash would): each throws an internal
  // unwinding exception from its current or next scheduling point, so destructors run.
  // Pending timers of the group are cancelled. Returns the number of tasks killed.
  size_t KillGroup(GroupId group);
  // Unwinds one task the same way.
  void Kill(TaskId task);

  // Stops the current run as a failure (RunOutcome::kTaskFailed) with `reason`, at the
  // next scheduling point. For checkers and strategies that find the run unusable (a
  // replay that no longer fits the program). Callable from tasks, callbacks and
  // strategies.
  void Fail(absl::string_view reason);

  // While alive, the current task's kill (crash, shutdown) is not delivered at its
  // scheduling points; it is delivered at the first one after the scope ends. Release
  // operations (Mutex::Unlock, CondVar::Signal, ...) use it, since they run in
  // destructors, which must not throw; so does CondVar::Wait while it reacquires its
  // mutex, so that a killed waiter still returns holding it.
  class NoUnwindScope {
   public:
    NoUnwindScope();
    ~NoUnwindScope();
    NoUnwindScope(const NoUnwindScope&) = delete;
    NoUnwindScope& operator=(const NoUnwindScope&) = delete;

   private:
    internal::Task* task_;
  };
  size_t live_tasks() const { return live_.size(); }
  bool IsDone(TaskId task) const { return task <= last_task_id_ && !live_.contains(task); }

  // ---- Decisions ----------------------------------------------------------------------

  // A value in [0, num_options) decided by the strategy (recorded, replayable). Models
  // draw every random value through this; `label` names the decision in schedules.
  uint64_t ChooseValue(uint64_t num_options, const char* label);
  // Random bits through the strategy, with dsim's distributions on top.
  BitSource& random() { return random_; }
  Strategy& strategy() { return *strategy_; }
  uint64_t seed() const { return options_.seed; }
  // Scheduling steps since construction.
  uint64_t steps() const { return steps_; }
  uint64_t decisions() const { return decision_index_; }
  // Whether dsim::SharedAccess() markers are scheduling points in this simulation.
  bool shared_access_points() const { return options_.shared_access_points; }

  // ---- Observation ------------------------------------------------------------------

  // Listeners are not owned and must outlive their registration.
  void AddListener(SchedulerListener* listener);
  // Registers `listener` for annotations only, and only those whose category starts
  // with `category_prefix` ("fault."): it is called for nothing else, so a listener
  // that counts a few kinds of annotations costs the hot paths no call per event.
  void AddAnnotationListener(SchedulerListener* listener, std::string category_prefix);
  // Removes a listener added by either call.
  void RemoveListener(SchedulerListener* listener);
  // Sends an annotation to every listener (no-op without listeners): first to the
  // annotation listeners whose prefix it matches, then to the trace sink, then to the
  // others.
  void Annotate(const Annotation& annotation);
  // True when anyone hears annotations (a listener of either kind, or a trace sink):
  // producers build annotations only then.
  bool has_listeners() const { return annotations_heard_; }

  // The trace sink (scheduler/trace_sink.h): at most one, not owned, written at every
  // event before the listeners hear it. False when another sink is attached (a second
  // trace then listens as an ordinary listener).
  bool AttachTraceSink(TraceSink* sink);
  void DetachTraceSink(TraceSink* sink);
  TraceSink* trace_sink() const { return trace_sink_; }
  // The trace sink when it alone would hear an annotation of `kind`, for producers that
  // write it raw; null otherwise (then annotate through Annotate, if has_listeners()).
  // Defined in scheduler/trace_sink.h.
  TraceSink* SoleTraceSink(const AnnotationKind& kind) const;

  // Reports on every live task, in spawn order.
  std::vector<TaskReport> LiveTaskReports() const;

  // Unwinds every unfinished task now, as the destructor would. Call it before
  // destroying objects that blocked tasks still use (or declare those objects before
  // the Scheduler). Must not be called from a task or during a run. A task being
  // unwound runs on through scheduling points that do not block (a free lock, an
  // unlock, a yield) until it finishes or blocks; a task that stays blocked while the
  // others cannot move, or passes a million such points without finishing, is a misuse
  // error ("a destructor must not block / loop forever").
  void Shutdown();

  // ---- Extensions -------------------------------------------------------------------
  // Layers above the scheduler (the network, the simulation) find their per-simulation
  // state here instead of in globals. Not owned.
  enum ExtensionSlot {
    kNetworkExtension = 0,
    kSimulationExtension = 1,
    kUserExtension = 2,
    kPosixExtension = 3,  // //posix: simulated pthread objects, escapes.
    kDiskExtension = 4,   // disk/disks.h
  };
  static constexpr int kExtensionSlots = 5;
  void SetExtension(int slot, void* value);
  // As SetExtension, but the scheduler owns `value`: it is destroyed with the scheduler,
  // after every task has unwound (so tasks may still use it while they unwind).
  void SetOwnedExtension(int slot, std::shared_ptr<void> value);
  void* extension(int slot) const {
    return slot >= 0 && slot < kExtensionSlots ? extensions_[slot] : nullptr;
  }

  // The scheduler whose run is active on this thread, or null.
  static Scheduler* Current() { return internal::current_scheduler; }

 private:
  friend class TaskHandle;
  friend bool internal::RunMisuseFailed(const char* file, int line, TaskId first,
                                        TaskId second, const std::string& message);
  // Fails the active run with RunOutcome::kMisuse (see internal/misuse.h).
  bool FailMisuse(const std::string& message, TaskId first, TaskId second);
  TaskReport ReportOf(TaskId id) const;
  friend class internal::WaitQueue;

  enum class RunMode { kUntilTasksDone, kUntilTime };
  struct GroupState {
    bool paused = false;
    const HostClock* clock = nullptr;          // The host's clock, if any.
    std::vector<internal::Task*> parked;       // Runnable while paused.
    std::vector<TimerId> deferred;             // Came due while paused.
  };

  RunResult RunLoop(RunMode mode, int64_t until_ns);
  RunResult MakeResult(uint64_t steps_before) const;

  // Run loop internals. All run on whichever fiber gives up the CPU.
  internal::Task* PickNext();
  internal::Task* PickNextSlow();
  internal::Task* PickOrAdvance();
  void FailInTimer();
  internal::Task* PickRunnable(bool from_yield = false);
  void AdvanceClockTo(int64_t ns);
  void FireDueTimers();
  void FireTimer(internal::TimerSlotId slot);
  void FireTimerSlow(internal::TimerSlotId slot);
  void CallTimer(internal::TimerFunction call, void* context, uint64_t argument);
  void Reschedule(internal::Task* self);
  void RescheduleInline(internal::Task* self);
  void SwitchAway(internal::Task* self, internal::Task* next);
  void YieldSlow(internal::Task* self);
  void SchedulingPointSlow();
  void SchedulingPointDecide(internal::Task* self);
  void YieldFast();
  friend void Yield();
  void NotifyDispatch(internal::Task* task);
  void NotifyDispatchSlow(internal::Task* task);
  void NotifySinkDispatch(internal::Task* task);
  void Beat() {
    heartbeat_.store(heartbeat_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void AfterSwitch();
  void Stop(RunOutcome outcome);
  void MakeRunnable(internal::Task* task);
  void TakeRunnable(size_t index);
  void RemoveFromRunnable(internal::Task* task);
  size_t DecideNextTask(bool from_yield = false);
  size_t DecideNextTaskSlow(bool from_yield);
  uint64_t Decide(DecisionKind kind, uint64_t num_options, absl::Span<const uint64_t> candidates,
                  const char* label, bool from_yield = false);
  uint64_t DecideInline(DecisionKind kind, uint64_t num_options,
                        absl::Span<const uint64_t> candidates, const char* label, bool from_yield);
  uint64_t DecideSlow(DecisionKind kind, uint64_t num_options,
                      absl::Span<const uint64_t> candidates, const char* label, bool from_yield);

  // Blocking, for primitives (through internal::WaitQueue).
  WakeReason Block(const char* what, SourceLocation where, int64_t deadline_ns);
  WakeReason TimeOutAtOnce(internal::Task* self, bool realtime);
  void ArmWakeTimer(internal::Task* self, int64_t deadline_ns);
  void CancelWakeTimer(internal::Task* self);
  bool Wake(internal::Task* task, WakeReason reason);
  bool WakeSlow(internal::Task* task, WakeReason reason);
  bool WakeRecord(internal::Task* task, WakeReason reason);
  void NotifyBlockListeners(internal::Task* task, const char* what, SourceLocation where);
  void NotifyWakeListeners(internal::Task* task, WakeReason reason);
  void CheckKilled(internal::Task* self, const SourceLocation* where = nullptr);
  [[noreturn]] void DeliverKill(internal::Task* self, const SourceLocation* where);
  void CheckKilledAt(internal::Task* self, SourceLocation where);
  [[noreturn]] void DeliverKillAt(internal::Task* self, SourceLocation where);
  bool HasDyingChild(const internal::Task* self) const;
  void ReportSwallowedUnwind(internal::Task* self, const SourceLocation* where);

  // Task lifecycle.
  static void TaskEntry(internal::Fiber* self, internal::Fiber* previous);
  void RunTaskBody(internal::Task* task);
  [[noreturn]] void FinishCurrentTask(internal::Task* self);
  void UnwindAllTasks();
  bool ResumeForUnwinding(internal::Task* task);
  internal::Task* ContinueUnwinding(internal::Task* self);
  void SwitchFromMain(internal::Task* next);
  internal::Task* FindTask(TaskId id) const;
  TaskView View(const internal::Task* task) const;
  void NotifyAnnotationListeners(const Annotation& annotation);
  void IndexAnnotationPrefixes();
  // Whether some prefix listener's prefix may start with `first_byte`.
  bool AnnotationListenersMayHear(char first_byte) const {
    const auto b = static_cast<uint8_t>(first_byte);
    return has_annotation_listeners_ && ((annotation_first_bytes_[b >> 6] >> (b & 63)) & 1) != 0;
  }
  void UpdateObserved() {
    has_listeners_ = !listeners_.empty();
    has_annotation_listeners_ = !annotation_listeners_.empty();
    observed_ = has_listeners_ || trace_sink_ != nullptr;
    annotations_heard_ = observed_ || has_annotation_listeners_;
  }
  // Decide's fast path, recorded in the trace sink.
  uint64_t DecideAndRecord(DecisionKind kind, uint64_t num_options,
                           absl::Span<const uint64_t> candidates, const char* label,
                           bool from_yield);
  GroupState& Group(GroupId group);
  internal::Task* CurrentTaskOrDie(const char* operation) const;
  // Misuse unless called from the thread running the simulation (or between runs).
  // Inside this scheduler's run, on its thread, one load and a compare.
  void CheckThread(const char* operation) const {
    if (ABSL_PREDICT_TRUE(internal::current_scheduler == this)) return;
    CheckThreadSlow(operation);
  }
  void CheckThreadSlow(const char* operation) const;
  void ClaimThread(const char* operation);

  int64_t ToNanos(absl::Time t) const { return internal::TimeToEpochNanos(t); }
  const HostClock* CurrentClockSlow() const;
  // The true deadline of `task`'s realtime wait on its host's clock as it reads now.
  int64_t RealtimeDeadlineNs(const internal::Task* task) const;

  // Random bits drawn through the strategy.
  class StrategyBits final : public BitSource {
   public:
    explicit StrategyBits(Scheduler* scheduler) : scheduler_(scheduler) {}
    uint64_t NextBits() override { return scheduler_->ChooseValue(0, "random"); }

   private:
    Scheduler* scheduler_;
  };

  SchedulerOptions options_;
  std::shared_ptr<Strategy> strategy_;
  bool observes_yields_ = false;  // strategy_->ObservesYields(), for the Yield paths.
  // strategy_ when it is the default RandomStrategy: with no listener, Decide draws from
  // it directly (the same draw, without a Decision or a virtual call).
  RandomStrategy* random_strategy_ = nullptr;
  StrategyBits random_{this};
  internal::StackPool stacks_;
  internal::Fiber main_fiber_;

  int64_t now_ns_ = 0;  // Virtual nanoseconds since Epoch(); the clock.
  absl::Time now_ = Epoch();  // The same instant, cached: decisions read it often.
  uint64_t step_limit_ = UINT64_MAX;
  int64_t max_time_ns_ = INT64_MAX;  // Epoch() + options_.max_virtual_time, in nanoseconds.
  uint64_t steps_ = 0;
  uint64_t decision_index_ = 0;
  // Bumped at every dispatch and timer; read by the watchdog thread, which only
  // observes. Relaxed stores: a plain move on the hot paths.
  std::atomic<uint64_t> heartbeat_{0};
  // The thread running (or unwinding) this scheduler, as the address of a thread-local
  // marker; null between runs. Atomic because misuse reads it from other threads.
  std::atomic<const void*> run_thread_{nullptr};
  internal::WatchdogSettings watchdog_;

  // Live tasks: by id for lookups, and in spawn order (intrusive list) for iteration.
  // The hash map is never iterated: its order is salted per process.
  absl::flat_hash_map<TaskId, internal::Task*> live_;
  internal::Task* live_head_ = nullptr;
  internal::Task* live_tail_ = nullptr;
  TaskId last_task_id_ = 0;
  size_t live_non_daemon_ = 0;

  // The run queue: a vector whose push can skip the growth check when the caller has
  // tested full() (Wake's fast path then makes no call and needs no frame).
  class RunQueue {
   public:
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    bool full() const { return size_ == slots_.size(); }
    internal::Task*& operator[](size_t index) { return slots_.data()[index]; }
    internal::Task* back() const { return slots_.data()[size_ - 1]; }
    void pop_back() { --size_; }
    void push_back(internal::Task* task) {
      if (ABSL_PREDICT_FALSE(full())) Grow();
      slots_.data()[size_++] = task;
    }
    void PushUnchecked(internal::Task* task) { slots_.data()[size_++] = task; }
    internal::Task* const* begin() const { return slots_.data(); }
    internal::Task* const* end() const { return slots_.data() + size_; }

   private:
    void Grow() { slots_.resize(slots_.size() < 8 ? 8 : 2 * slots_.size()); }
    std::vector<internal::Task*> slots_;
    size_t size_ = 0;
  };
  // Runnable tasks (the candidates of kNextTask).
  RunQueue runnable_;
  // Their ids for a strategy or listeners that see the candidates (DecideNextTask),
  // filled only then.
  std::vector<uint64_t> candidate_ids_;

  internal::TimerQueue timers_;
  std::vector<GroupState> groups_;
  std::vector<SchedulerListener*> listeners_;
  // AddAnnotationListener's: (listener, category prefix).
  std::vector<std::pair<SchedulerListener*, std::string>> annotation_listeners_;
  // Bit b is set when some prefix starts with byte b (all bits for an empty prefix):
  // Annotate calls no prefix compare for the other categories.
  uint64_t annotation_first_bytes_[4] = {0, 0, 0, 0};
  bool has_listeners_ = false;  // listeners_ is non-empty, for the hot paths.
  bool has_annotation_listeners_ = false;  // annotation_listeners_ is non-empty.
  bool observed_ = false;  // has_listeners_ or a trace sink: events are reported.
  bool annotations_heard_ = false;  // observed_ or has_annotation_listeners_.
  TraceSink* trace_sink_ = nullptr;
  bool has_group_clocks_ = false;  // Some group has a HostClock.
  struct ClockWatcher {
    uint64_t id;
    GroupId group;
    std::function<void(bool)> callback;
  };
  std::vector<ClockWatcher> clock_watchers_;  // By id (ascending).
  ClockStepper clock_stepper_;
  uint64_t last_clock_watcher_ = 0;

  // Run state.
  internal::Task* current_ = nullptr;         // Null on the main fiber and in callbacks.
  GroupId current_group_ = kNoGroup;          // current_'s group (see SetCurrent).
  void SetCurrent(internal::Task* task);
  internal::Task* finished_ = nullptr;        // Finished task whose stack awaits release.
  bool running_ = false;
  bool stop_ = false;
  bool unwinding_ = false;
  bool halt_ = false;  // stop_ || unwinding_: one flag for the hot paths to test.
  // Scheduling points the task being unwound at shutdown has passed without blocking
  // since it was resumed (see PickNextSlow).
  int64_t unwind_points_ = 0;
  int* errno_location_ = nullptr;  // This thread's errno, saved per task across switches.
  // This thread's C++ exception state (__cxa_eh_globals), saved per task across
  // switches as errno is: a task unwinding an exception may block in a destructor.
  void* eh_globals_ = nullptr;
  // Its count of uncaught exceptions (__cxa_eh_globals::uncaughtExceptions).
  const unsigned int* uncaught_exceptions_ = nullptr;
  RunMode mode_ = RunMode::kUntilTasksDone;
  int64_t until_ns_ = 0;
  RunOutcome outcome_ = RunOutcome::kCompleted;
  TaskId failed_task_ = kNoTask;
  std::string failed_task_name_;
  std::string failure_;
  std::vector<TaskReport> misuse_tasks_;  // kMisuse: the tasks involved.
  bool failed_check_ = false;
  internal::Fiber* previous_running_fiber_ = nullptr;
  void* extensions_[kExtensionSlots] = {};
  // Declared last: destroyed first, after the destructor has unwound every task.
  std::shared_ptr<void> owned_extensions_[kExtensionSlots];
};

// ---- Free functions for task code ---------------------------------------------------
// They act on the scheduler running on this thread. Calling a blocking one outside a
// task, or any of them outside a run, is a misuse error with a clear message.

// The current task's host wall clock (true virtual time for tasks without a host
// clock, and outside tasks). See scheduler/clock.h.
absl::Time Now();
// The current task's host monotonic clock (CLOCK_MONOTONIC): time since the host
// booted, at the host's drifted rate, never decreasing. Without a host clock: true time
// since Scheduler::Epoch().
absl::Duration MonotonicNow();
// Both measure the duration / deadline on the current task's host clock.
void SleepFor(absl::Duration duration, SourceLocation where = SourceLocation::Current());
void SleepUntil(absl::Time deadline, SourceLocation where = SourceLocation::Current());
// Hands the CPU to another runnable task (the strategy picks which), like sched_yield.
void Yield();
// A preemption point: the strategy may switch to another task here, or continue.
void SchedulingPoint();
TaskId CurrentTaskId();
absl::string_view CurrentTaskName();
// A task spawned from the current task runs in the current task's group.
TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options = {});

}  // namespace dsim

#endif  // DSIM_SCHEDULER_SCHEDULER_H_
