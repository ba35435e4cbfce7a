#include "scheduler/scheduler.h"

#include <cxxabi.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/misuse.h"
#include "scheduler/internal/task.h"
#include "scheduler/trace_sink.h"

namespace dsim::internal {
// The scheduler whose run is active on this thread. The only thread-local state.
__thread Scheduler* current_scheduler __attribute__((tls_model("initial-exec"))) = nullptr;
}  // namespace dsim::internal

namespace dsim {
namespace {

using internal::Task;
using internal::current_scheduler;
using internal::TaskState;

constexpr int64_t kForever = INT64_MAX;
// Scheduler::PickOrAdvance's answer when it advanced the clock: never a task's address.
constexpr uintptr_t kAdvanced = 1;

// Its address identifies this thread (Scheduler::run_thread_). The only thread-local
// state besides internal::current_scheduler.
__thread char thread_marker;

// Rounds over all unfinished tasks, during shutdown, without any task finishing before
// the shutdown gives up: tasks that block while unwinding (a destructor waiting for a
// lock that another dying task holds) get several chances.
constexpr int kMaxStalledUnwindRounds = 8;
// Scheduling points a task being unwound at shutdown may pass without blocking or
// finishing before the shutdown gives up on it (a destructor spinning on sched_yield).
// Asio's io_context destructor passes two per socket and per pending handler it frees
// (a free lock and its unlock).
constexpr int64_t kMaxUnwindPointsWithoutBlocking = 1000000;

using internal::ExceptionState;

ExceptionState* ThreadExceptionState() {
  return reinterpret_cast<ExceptionState*>(abi::__cxa_get_globals());
}

// Saves the main fiber's errno and exception state for the length of a run slice and
// leaves the thread's exception state empty for the tasks (see SwitchAway).
class MainFiberThreadState {
 public:
  MainFiberThreadState(int* errno_location, void* exceptions)
      : errno_location_(errno_location),
        exceptions_(static_cast<ExceptionState*>(exceptions)),
        saved_errno_(*errno_location),
        saved_exceptions_(*exceptions_) {
    *exceptions_ = ExceptionState{};
  }
  ~MainFiberThreadState() {
    *errno_location_ = saved_errno_;
    *exceptions_ = saved_exceptions_;
  }

 private:
  int* errno_location_;
  ExceptionState* exceptions_;
  int saved_errno_;
  ExceptionState saved_exceptions_;
};

}  // namespace

// ---- Results ---------------------------------------------------------------------

const char* RunOutcomeName(RunOutcome outcome) {
  switch (outcome) {
    case RunOutcome::kCompleted: return "completed";
    case RunOutcome::kIdle: return "idle";
    case RunOutcome::kReachedTime: return "reached time";
    case RunOutcome::kDeadlock: return "deadlock";
    case RunOutcome::kStepLimit: return "step limit";
    case RunOutcome::kTimeLimit: return "virtual time limit";
    case RunOutcome::kTaskFailed: return "task failed";
    case RunOutcome::kMisuse: return "misuse";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, RunOutcome outcome) {
  return os << RunOutcomeName(outcome);
}

std::string TaskReport::ToString() const {
  std::string s = absl::StrCat("task \"", name, "\"");
  if (!host.empty()) absl::StrAppend(&s, " on host \"", host, "\"");
  if (blocked) {
    absl::StrAppend(&s, " blocked in ", blocked_in, " at ", blocked_at.ToString());
  } else {
    absl::StrAppend(&s, " runnable");
  }
  if (daemon) absl::StrAppend(&s, " (daemon)");
  return s;
}

bool RunResult::ok() const {
  return outcome == RunOutcome::kCompleted || outcome == RunOutcome::kIdle ||
         outcome == RunOutcome::kReachedTime;
}

absl::Status RunResult::status() const {
  if (ok()) return absl::OkStatus();
  switch (outcome) {
    case RunOutcome::kDeadlock: return absl::FailedPreconditionError(ToString());
    case RunOutcome::kStepLimit:
    case RunOutcome::kTimeLimit: return absl::DeadlineExceededError(ToString());
    default:
      // A checker's message comes first: it is what the report's headline shows.
      if (failed_check) return absl::AbortedError(absl::StrCat(failure, "\n", ToString()));
      return absl::AbortedError(ToString());
  }
}

std::string RunResult::ToString() const {
  std::string s = absl::StrCat(RunOutcomeName(outcome), " at virtual time +",
                               absl::FormatDuration(end_time - Scheduler::Epoch()), " after ",
                               steps, " steps");
  if (outcome == RunOutcome::kTaskFailed && failed_check) {
    absl::StrAppend(&s, ": ", failure,
                    failed_task == kNoTask ? std::string()
                                           : absl::StrCat(" (in task \"", failed_task_name, "\")"));
  } else if (outcome == RunOutcome::kTaskFailed) {
    absl::StrAppend(&s, ": ",
                    failed_task == kNoTask ? std::string("a timer callback")
                                           : absl::StrCat("task \"", failed_task_name, "\""),
                    " threw: ", failure);
  }
  if (outcome == RunOutcome::kMisuse) absl::StrAppend(&s, ": ", failure);
  if (!tasks.empty()) {
    absl::StrAppend(&s, outcome == RunOutcome::kDeadlock  ? "; blocked tasks:"
                        : outcome == RunOutcome::kMisuse ? "; tasks involved:"
                                                          : "; live tasks:");
    // A limit is about what kept running: blocked daemons (servers waiting for work)
    // are counted, not listed.
    size_t quiet_daemons = 0;
    for (const TaskReport& task : tasks) {
      if (outcome != RunOutcome::kDeadlock && outcome != RunOutcome::kMisuse &&
          task.daemon && task.blocked) {
        ++quiet_daemons;
        continue;
      }
      absl::StrAppend(&s, "\n  ", task.ToString());
    }
    if (quiet_daemons > 0) {
      absl::StrAppend(&s, "\n  (and ", quiet_daemons, " blocked daemon task",
                      quiet_daemons == 1 ? "" : "s", ")");
    }
  }
  return s;
}

// ---- TaskHandle ------------------------------------------------------------------

bool TaskHandle::done() const { return scheduler_ == nullptr || scheduler_->IsDone(id_); }

void TaskHandle::Join(SourceLocation where) const {
  DSIM_MISUSE(scheduler_ != nullptr, "Join on an empty TaskHandle");
  Task* self = scheduler_->CurrentTaskOrDie("TaskHandle::Join");
  if (!DSIM_RUN_MISUSE(self->id != id_, self->id, kNoTask, "task \"", self->name,
                       "\" joined itself; it would wait forever")) {
    return;
  }
  scheduler_->SchedulingPoint();  // Joining is one, even when the task is done.
  Task* target = scheduler_->FindTask(id_);
  while (target != nullptr) {
    target->joiners.Wait("TaskHandle::Join", where);
    target = scheduler_->FindTask(id_);
  }
}

// ---- Construction ----------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options) : options_(std::move(options)) {
  strategy_ = options_.strategy;
  if (strategy_ == nullptr) strategy_ = std::make_shared<RandomStrategy>(options_.seed);
  observes_yields_ = strategy_->ObservesYields();
  random_strategy_ = dynamic_cast<RandomStrategy*>(strategy_.get());
  if (options_.default_stack_size == 0) options_.default_stack_size = kDefaultStackSize;
  if (options_.max_steps != 0) step_limit_ = options_.max_steps;
  max_time_ns_ = ToNanos(Epoch() + options_.max_virtual_time);
  watchdog_ = internal::WatchdogFromEnvironment(
      internal::WatchdogSettings{options_.watchdog, options_.watchdog_abort});
  internal::InitMainFiber(&main_fiber_);
  internal::EnsureOverflowHandler();
  groups_.resize(1);
}

Scheduler::~Scheduler() {
  DSIM_MISUSE(!running_, "a Scheduler was destroyed during its own run");
  UnwindAllTasks();
  DSIM_CHECK(live_.empty());
  // Release what the timers still hold (callbacks may own resources).
  while (!timers_.empty()) {
    timers_.FillBatch(kForever);
    while (!timers_.batch_sequences().empty()) timers_.Release(timers_.TakeFromBatch(0));
  }
}

TaskHandle Scheduler::Spawn(std::string name, TaskBody body, SpawnOptions options) {
  CheckThread("Spawn");
  DSIM_MISUSE(body != nullptr, "Spawn(\"", name, "\") with an empty body");
  auto* task = new Task;
  task->id = ++last_task_id_;
  task->name = std::move(name);
  task->body = std::move(body);
  task->group = options.group;
  task->daemon = options.daemon;
  if (current_ != nullptr) {
    task->parent = current_->id;
    ++current_->live_children;
  }
  const size_t stack_size = options.stack_size ? options.stack_size : options_.default_stack_size;
  internal::InitFiber(&task->fiber, stacks_.Allocate(stack_size), &Scheduler::TaskEntry);
  task->fiber.name = task->name.c_str();
  task->fiber.id = task->id;
  Group(task->group);  // Make sure the group exists.

  live_.emplace(task->id, task);
  task->live_prev = live_tail_;
  (live_tail_ ? live_tail_->live_next : live_head_) = task;
  live_tail_ = task;
  if (!task->daemon) ++live_non_daemon_;

  if (observed_) {
    const TaskView view = View(task);
    if (trace_sink_ != nullptr) {
      trace_sink_->Spawn(view, current_ != nullptr ? current_->id : kNoTask, now_ns_);
    }
    for (SchedulerListener* l : listeners_) l->OnSpawn(view);
  }
  MakeRunnable(task);
  task->state = TaskState::kCreated;
  const TaskId id = task->id;  // The task may finish (and be freed) at the point below.
  // Spawning is a scheduling point, as thread creation is in the published schedulers:
  // the child may run first. Never one that delivers a kill (Spawn may run in a
  // destructor).
  if (current_ != nullptr && running_ && !unwinding_) {
    NoUnwindScope no_unwind;
    SchedulingPoint();
  }
  return TaskHandle(this, id);
}

// ---- Running ---------------------------------------------------------------------

RunResult Scheduler::Run() {
  return RunLoop(live_non_daemon_ > 0 ? RunMode::kUntilTasksDone : RunMode::kUntilTime, kForever);
}

RunResult Scheduler::RunFor(absl::Duration duration) { return RunUntil(Now() + duration); }

RunResult Scheduler::RunUntil(absl::Time deadline) {
  return RunLoop(RunMode::kUntilTime, std::max(ToNanos(deadline), now_ns_));
}

RunResult Scheduler::RunLoop(RunMode mode, int64_t until_ns) {
  ClaimThread("Run");
  DSIM_MISUSE(!running_, "Scheduler::Run called while a run is active (from a task?)");
  DSIM_MISUSE(current_scheduler == nullptr,
              "Scheduler::Run called while another scheduler runs on this thread");
  running_ = true;
  stop_ = false;
  halt_ = unwinding_;
  errno_location_ = &errno;
  eh_globals_ = ThreadExceptionState();
  uncaught_exceptions_ = &ThreadExceptionState()->uncaught_exceptions;
  mode_ = mode;
  until_ns_ = until_ns;
  outcome_ = RunOutcome::kCompleted;
  failed_task_ = kNoTask;
  failure_.clear();
  failed_task_name_.clear();
  misuse_tasks_.clear();
  failed_check_ = false;
  current_scheduler = this;
  previous_running_fiber_ = internal::ExchangeRunningFiber(&main_fiber_);
  const uint64_t steps_before = steps_;
  internal::WatchdogEntry* const watchdog = internal::Watch(&heartbeat_, watchdog_);

  Task* next = PickNext();
  if (next != nullptr) SwitchFromMain(next);
  internal::Unwatch(watchdog);
  run_thread_.store(nullptr, std::memory_order_release);
  DSIM_CHECK(stop_, "the run loop returned to main without a reason");
  SetCurrent(nullptr);
  running_ = false;
  current_scheduler = nullptr;
  internal::ExchangeRunningFiber(previous_running_fiber_);
  if (outcome_ != RunOutcome::kStepLimit) strategy_->OnRunEnd(steps_ - steps_before);
  return MakeResult(steps_before);
}

// Every change of the running task goes through here, so CurrentGroup() (asked by every
// socket call) is one load. A task's group never changes after Spawn.
inline void Scheduler::SetCurrent(Task* task) {
  current_ = task;
  current_group_ = task != nullptr ? task->group : kNoGroup;
}

void Scheduler::SwitchFromMain(Task* next) {
  SetCurrent(next);
  next->state = TaskState::kRunning;
  {
    MainFiberThreadState saved(errno_location_, eh_globals_);
    internal::SwitchTo(&main_fiber_, &next->fiber);
  }
  AfterSwitch();
}

RunResult Scheduler::MakeResult(uint64_t steps_before) const {
  RunResult result;
  result.outcome = outcome_;
  result.end_time = Now();
  result.steps = steps_ - steps_before;
  result.failed_task = failed_task_;
  result.failed_task_name = failed_task_name_;
  result.failure = failure_;
  result.failed_check = failed_check_;
  if (outcome_ == RunOutcome::kDeadlock) {
    for (TaskReport& report : LiveTaskReports()) {
      if (report.blocked && !report.daemon) result.tasks.push_back(std::move(report));
    }
  } else if (outcome_ == RunOutcome::kStepLimit || outcome_ == RunOutcome::kTimeLimit) {
    result.tasks = LiveTaskReports();
  } else if (outcome_ == RunOutcome::kMisuse) {
    result.tasks = misuse_tasks_;
  }
  return result;
}

TaskReport Scheduler::ReportOf(TaskId id) const {
  for (TaskReport& report : LiveTaskReports()) {
    if (report.id == id) return report;
  }
  TaskReport finished;
  finished.id = id;
  finished.name = absl::StrCat("(task ", id, ", finished)");
  return finished;
}

bool Scheduler::FailMisuse(const std::string& message, TaskId first, TaskId second) {
  if (!stop_) {
    failed_task_ = current_ != nullptr ? current_->id : kNoTask;
    failed_task_name_ = current_ != nullptr ? current_->name : "";
    failure_ = message;
    misuse_tasks_.clear();
    if (first != kNoTask) misuse_tasks_.push_back(ReportOf(first));
    if (second != kNoTask && second != first) misuse_tasks_.push_back(ReportOf(second));
    Stop(RunOutcome::kMisuse);
  }
  if (Task* self = current_; self != nullptr) {
    // Park the task: the run is over (stop_ is set), so this switches to the main
    // fiber, and the task resumes only to be unwound. No kill is delivered here:
    // misuse is often detected in a destructor, which must not throw.
    NoUnwindScope no_unwind;
    MakeRunnable(self);
    Reschedule(self);
  }
  return false;
}

namespace internal {

bool RunMisuseFailed(const char* file, int line, TaskId first, TaskId second,
                     const std::string& message) {
  Scheduler* scheduler = current_scheduler;
  if (scheduler != nullptr && scheduler->unwinding_) {
    std::fprintf(stderr, "dsim: misuse during teardown (ignored): %s (detected at %s:%d)\n",
                 message.c_str(), file, line);
    return false;
  }
  if (scheduler == nullptr || !scheduler->running_) MisuseFailed(file, line, message);
  return scheduler->FailMisuse(message, first, second);
}

}  // namespace internal

std::vector<TaskReport> Scheduler::LiveTaskReports() const {
  std::vector<TaskReport> reports;
  for (const Task* task = live_head_; task != nullptr; task = task->live_next) {
    TaskReport report;
    report.id = task->id;
    report.name = task->name;
    report.group = task->group;
    report.daemon = task->daemon;
    report.blocked = task->state == TaskState::kBlocked;
    if (report.blocked) {
      report.blocked_in = task->blocked_in ? task->blocked_in : "?";
      report.blocked_at = task->blocked_at;
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

void Scheduler::Stop(RunOutcome outcome) {
  if (stop_) return;
  stop_ = true;
  halt_ = true;
  outcome_ = outcome;
}

// Decides what runs next. Returns null (back to the main fiber) when the run is over;
// outcome_ then says why. Runs on whichever fiber is giving up the CPU.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Task* Scheduler::PickNext() {
  // The common case, kept short: a task is runnable, no timer is due, nothing special.
  const bool fast = !halt_ && !runnable_.empty() && steps_ < step_limit_ &&
                    !timers_.AnyDue(now_ns_) &&
                    (live_non_daemon_ != 0 || mode_ != RunMode::kUntilTasksDone);
  if (ABSL_PREDICT_TRUE(fast)) return PickRunnable();
  return PickNextSlow();
}

// Called when observed_: the trace sink alone (a Simulation) is written inline.
inline void Scheduler::NotifyDispatch(Task* task) {
  if (ABSL_PREDICT_TRUE(!has_listeners_)) {
    trace_sink_->Dispatch(task->id, task->group, now_ns_);
    return;
  }
  NotifyDispatchSlow(task);
}

inline Task* Scheduler::PickRunnable(bool from_yield) {
  const size_t index =
      runnable_.size() == 1
          ? 0
          : DecideNextTask(from_yield);
  Task* next = runnable_[index];
  TakeRunnable(index);
  ++steps_;
  Beat();
  if (ABSL_PREDICT_FALSE(observed_)) NotifyDispatch(next);
  return next;
}

// The trace sink's dispatch record (or step count) for `task`, out of line: a tail call
// from the frame-less SchedulingPoint.
ABSL_ATTRIBUTE_NOINLINE void Scheduler::NotifySinkDispatch(Task* task) {
  trace_sink_->Dispatch(task->id, task->group, now_ns_);
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::NotifyDispatchSlow(Task* task) {
  if (trace_sink_ != nullptr) trace_sink_->Dispatch(task->id, task->group, now_ns_);
  const TaskView view = View(task);
  for (SchedulerListener* l : listeners_) l->OnDispatch(view);
}

// Also the idle step: nothing runnable, so the clock advances to the earliest timer and
// the timers due then fire, in one pass of the loop (FireDueTimers inlined once).
Task* Scheduler::PickNextSlow() {
  for (;;) {
    if (ABSL_PREDICT_FALSE(halt_)) {  // stop_ || unwinding_
      if (unwinding_ && current_ != nullptr && current_->state == TaskState::kRunnable) {
        return ContinueUnwinding(current_);
      }
      return nullptr;
    }
    if (!timers_.AnyDue(now_ns_)) {
      Task* const next = PickOrAdvance();
      if (reinterpret_cast<uintptr_t>(next) != kAdvanced) return next;
      // The clock is at the earliest timer: it is due (a listener of the clock may have
      // stopped the run; FireDueTimers then fires nothing).
    }
    FireDueTimers();
  }
}

// PickNextSlow with no timer due: the task to run, null (the run is over), or kAdvanced
// when the clock moved to the earliest timer. Inlined into its one caller.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Task* Scheduler::PickOrAdvance() {
  {
    if (mode_ == RunMode::kUntilTasksDone && live_non_daemon_ == 0) {
      Stop(RunOutcome::kCompleted);
      return nullptr;
    }
    if (!runnable_.empty()) {
      if (steps_ >= step_limit_) {
        Stop(RunOutcome::kStepLimit);
        return nullptr;
      }
      return PickRunnable();
    }
    if (timers_.empty()) {
      bool blocked_non_daemon = false;
      for (const Task* t = live_head_; t != nullptr && !blocked_non_daemon; t = t->live_next) {
        blocked_non_daemon = !t->daemon && t->state == TaskState::kBlocked;
      }
      // Tasks parked in a paused group count as blocked: nothing can resume them.
      if (live_non_daemon_ > 0 && (blocked_non_daemon || mode_ == RunMode::kUntilTasksDone)) {
        Stop(RunOutcome::kDeadlock);
      } else {
        Stop(mode_ == RunMode::kUntilTime ? RunOutcome::kIdle : RunOutcome::kCompleted);
      }
      return nullptr;
    }
    const int64_t next_ns = timers_.EarliestNs();
    if (next_ns > until_ns_) {
      AdvanceClockTo(until_ns_);
      Stop(RunOutcome::kReachedTime);
      return nullptr;
    }
    if (next_ns > max_time_ns_) {
      Stop(RunOutcome::kTimeLimit);
      return nullptr;
    }
    AdvanceClockTo(next_ns);
    return reinterpret_cast<Task*>(kAdvanced);
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::AdvanceClockTo(int64_t ns) {
  DSIM_CHECK(ns >= now_ns_, "virtual time would go backwards");
  if (ns == now_ns_) return;
  // FromUnixNanos is inline; Time + Duration is an out-of-line call in a shared Abseil.
  constexpr int64_t kEpochUnixNanos = int64_t{946684800} * 1000000000;
  const absl::Time to = ns <= INT64_MAX - kEpochUnixNanos
                            ? absl::FromUnixNanos(kEpochUnixNanos + ns)
                            : Epoch() + absl::Nanoseconds(ns);
  if (trace_sink_ != nullptr) trace_sink_->Clock(now_ns_, ns);
  if (ABSL_PREDICT_FALSE(has_listeners_)) {
    for (SchedulerListener* l : listeners_) l->OnClockAdvanced(now_, to);
  }
  now_ns_ = ns;
  now_ = to;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t Scheduler::DecideInline(
    DecisionKind kind, uint64_t num_options, absl::Span<const uint64_t> candidates,
    const char* label, bool from_yield) {
  // The default strategy, nobody listening: what RandomStrategy::Choose would answer.
  if (ABSL_PREDICT_TRUE(random_strategy_ != nullptr && !has_listeners_ && num_options != 0)) {
    ++decision_index_;
    return random_strategy_->ChooseBelow(num_options);
  }
  return DecideSlow(kind, num_options, candidates, label, from_yield);
}

// Inlined into FireDueTimers, its only caller: a timer firing is the hot path of every
// packet delivery. The rare cases (a paused group, general listeners, a task's wake-up,
// a std::function callback) are out of line. A trace sink alone (a Simulation) gets its
// timer record here, as FireTimerSlow would write it.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::FireTimer(internal::TimerSlotId slot_id) {
  Beat();
  internal::TimerSlot& slot = timers_.slot(slot_id);
  if (ABSL_PREDICT_FALSE(slot.group != kNoGroup && GroupPaused(slot.group)) ||
      ABSL_PREDICT_FALSE(has_listeners_) || ABSL_PREDICT_FALSE(slot.call == nullptr)) {
    return FireTimerSlow(slot_id);
  }
  if (ABSL_PREDICT_FALSE(trace_sink_ != nullptr)) trace_sink_->Timer(timers_.IdOf(slot_id), now_ns_);
  const internal::TimerFunction call = slot.call;
  void* const context = slot.context;
  const uint64_t argument = slot.argument;
  timers_.Release(slot_id);
  CallTimer(call, context, argument);
}

namespace {
// The text of the exception being handled (called in a catch block): its what(), or a
// sentence for one not derived from std::exception. Out of line: only failures need it.
ABSL_ATTRIBUTE_NOINLINE std::string CurrentExceptionText() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}
}  // namespace

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::CallTimer(internal::TimerFunction call,
                                                          void* context, uint64_t argument) {
  try {
    call(context, argument);
  } catch (...) {
    FailInTimer();
  }
}

// In a catch block: a timer callback threw. Out of line, so the run loop's frame holds
// no std::string (and needs no stack protector).
ABSL_ATTRIBUTE_NOINLINE void Scheduler::FailInTimer() {
  failure_ = CurrentExceptionText();
  Stop(RunOutcome::kTaskFailed);
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::FireTimerSlow(internal::TimerSlotId slot_id) {
  internal::TimerSlot& slot = timers_.slot(slot_id);
  const TimerId id = timers_.IdOf(slot_id);
  if (slot.group != kNoGroup && GroupPaused(slot.group)) {
    Group(slot.group).deferred.push_back(id);
    return;
  }
  if (observed_) {
    if (trace_sink_ != nullptr) trace_sink_->Timer(id, now_ns_);
    for (SchedulerListener* l : listeners_) l->OnTimerFired(id, Now());
  }
  if (slot.task != nullptr) {
    Task* task = slot.task;
    timers_.Release(slot_id);
    task->wake_timer = kNoTimer;
    Wake(task, WakeReason::kTimedOut);
    return;
  }
  if (slot.call != nullptr) {
    const internal::TimerFunction call = slot.call;
    void* const context = slot.context;
    const uint64_t argument = slot.argument;
    timers_.Release(slot_id);
    CallTimer(call, context, argument);
    return;
  }
  std::function<void()> callback = std::move(slot.callback);
  timers_.Release(slot_id);
  try {
    callback();
  } catch (...) {
    FailInTimer();
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::FireDueTimers() {
  // Callbacks run outside any task.
  Task* const interrupted = current_;
  SetCurrent(nullptr);
  while (!stop_ && timers_.AnyDue(now_ns_)) {
    if (timers_.batch_empty()) {
      // The common case, one timer due and no other at the same instant: no tie to order.
      const internal::TimerSlotId lone = timers_.TakeLoneDue(now_ns_);
      if (lone != internal::TimerQueue::kNowhere) {
        FireTimer(lone);
        continue;
      }
      if (timers_.FillBatch(now_ns_) == 0) break;
    }
    const absl::Span<const uint64_t> due = timers_.batch_sequences();
    const size_t index = due.size() == 1
                             ? 0
                             : DecideInline(DecisionKind::kTimerOrder, due.size(), due, "", false);
    FireTimer(timers_.TakeFromBatch(index));
  }
  SetCurrent(interrupted);
}

uint64_t Scheduler::Decide(DecisionKind kind, uint64_t num_options,
                           absl::Span<const uint64_t> candidates, const char* label,
                           bool from_yield) {
  // The default strategy, nobody listening: what RandomStrategy::Choose would answer.
  if (ABSL_PREDICT_TRUE(random_strategy_ != nullptr && !has_listeners_ && num_options != 0)) {
    // Task and timer picks are no trace records: only value draws and wake-one picks.
    if (ABSL_PREDICT_FALSE(trace_sink_ != nullptr) &&
        (kind == DecisionKind::kValue || kind == DecisionKind::kWakeOne)) {
      return DecideAndRecord(kind, num_options, candidates, label, from_yield);
    }
    ++decision_index_;
    return random_strategy_->ChooseBelow(num_options);
  }
  return DecideSlow(kind, num_options, candidates, label, from_yield);
}

// Decide's fast path (the same draw), and the decision to the trace sink.
ABSL_ATTRIBUTE_NOINLINE uint64_t Scheduler::DecideAndRecord(DecisionKind kind,
                                                           uint64_t num_options,
                                                           absl::Span<const uint64_t> candidates,
                                                           const char* label, bool from_yield) {
  ++decision_index_;
  const uint64_t chosen = random_strategy_->ChooseBelow(num_options);
  trace_sink_->Decide(kind, current_ != nullptr ? current_->id : kNoTask, now_ns_, num_options,
                      candidates, label, from_yield, chosen);
  return chosen;
}

ABSL_ATTRIBUTE_NOINLINE uint64_t Scheduler::DecideSlow(DecisionKind kind, uint64_t num_options,
                                                       absl::Span<const uint64_t> candidates,
                                                       const char* label, bool from_yield) {
  Decision decision{kind,
                    decision_index_++,
                    steps_,
                    now_,
                    current_ != nullptr ? current_->id : kNoTask,
                    num_options,
                    candidates,
                    label,
                    from_yield};
  const uint64_t chosen = strategy_->Choose(decision);
  DSIM_CHECK(num_options == 0 || chosen < num_options, "strategy ", strategy_->Describe(),
             " chose option ", chosen, " of ", num_options, " at decision ", decision.index);
  if (ABSL_PREDICT_FALSE(observed_)) {
    if (trace_sink_ != nullptr) {
      trace_sink_->Decide(kind, decision.current, now_ns_, num_options, candidates, label,
                          from_yield, chosen);
    }
    for (SchedulerListener* l : listeners_) l->OnDecision(decision, chosen);
  }
  return chosen;
}

// Out of line on purpose: the hot paths with a single candidate never call it, and
// inlining it would give them a large stack frame.
ABSL_ATTRIBUTE_NOINLINE size_t Scheduler::DecideNextTask(bool from_yield) {
  if (ABSL_PREDICT_TRUE(random_strategy_ != nullptr && !has_listeners_)) {
    ++decision_index_;  // Decide's fast path, without the call.
    return random_strategy_->ChooseBelow(runnable_.size());
  }
  return DecideNextTaskSlow(from_yield);
}

// The general path, with the candidates' ids made here: the hot paths keep no id array
// in step with the run queue.
ABSL_ATTRIBUTE_NOINLINE size_t Scheduler::DecideNextTaskSlow(bool from_yield) {
  candidate_ids_.clear();
  for (const Task* task : runnable_) candidate_ids_.push_back(task->id);
  return Decide(DecisionKind::kNextTask, runnable_.size(), candidate_ids_, "", from_yield);
}

uint64_t Scheduler::ChooseValue(uint64_t num_options, const char* label) {
  CheckThread("ChooseValue");
  if (num_options == 1) return 0;
  return Decide(DecisionKind::kValue, num_options, {}, label);
}

// Gives up the CPU on behalf of `self`, whose state the caller has set. Returns when
// `self` is picked again. Inlined into the hot callers (Block, SchedulingPoint): one
// call level less on every switch (its saved registers cost as much as its body).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::RescheduleInline(Task* self) {
  Task* next = PickNext();
  if (next == self) {
    self->state = TaskState::kRunning;
    return;
  }
  SwitchAway(self, next);
}

void Scheduler::Reschedule(Task* self) { RescheduleInline(self); }

// Switches from `self` to `next` (the main fiber when null).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::SwitchAway(Task* self, Task* next) {
  SetCurrent(next);
  if (next != nullptr) next->state = TaskState::kRunning;
  // errno and the C++ exception state belong to the task, as they belong to a thread.
  // errno is always saved. The exception state is almost always empty, so it moves
  // into the task only when it is not, and the thread's copy stays empty between tasks.
  int* const errno_location = errno_location_;
  const int saved_errno = *errno_location;
  auto* const exceptions = static_cast<ExceptionState*>(eh_globals_);
  if (ABSL_PREDICT_FALSE(!exceptions->empty())) {
    self->saved_exceptions = *exceptions;
    self->has_saved_exceptions = true;
    *exceptions = ExceptionState{};
  }
  internal::SwitchTo(&self->fiber, next != nullptr ? &next->fiber : &main_fiber_);
  *errno_location = saved_errno;
  if (ABSL_PREDICT_FALSE(self->has_saved_exceptions)) {
    *exceptions = self->saved_exceptions;
    self->has_saved_exceptions = false;
  }
  AfterSwitch();
}

// Runs on the fiber that was just resumed.
inline void Scheduler::AfterSwitch() {
  if (ABSL_PREDICT_TRUE(finished_ == nullptr)) return;
  Task* task = finished_;
  finished_ = nullptr;
  internal::DestroyFiber(&task->fiber);
  stacks_.Release(task->fiber.stack);
  delete task;
}

// ---- Run queue -------------------------------------------------------------------

inline void Scheduler::MakeRunnable(Task* task) {
  task->state = TaskState::kRunnable;
  if (ABSL_PREDICT_FALSE(task->group != kNoGroup) && GroupPaused(task->group) &&
      !task->kill_requested) {
    Group(task->group).parked.push_back(task);
    return;
  }
  task->runnable_index = static_cast<uint32_t>(runnable_.size());
  runnable_.push_back(task);
}

inline void Scheduler::TakeRunnable(size_t index) {
  DSIM_DCHECK(index < runnable_.size());
  Task* taken = runnable_[index];
  Task* last = runnable_.back();
  runnable_[index] = last;
  last->runnable_index = static_cast<uint32_t>(index);
  runnable_.pop_back();
  taken->runnable_index = UINT32_MAX;
}

// Takes a runnable task out of the run queue, or out of its paused group's parking.
void Scheduler::RemoveFromRunnable(Task* task) {
  if (task->runnable_index != UINT32_MAX) {
    TakeRunnable(task->runnable_index);
    return;
  }
  if (task->group == kNoGroup) return;
  std::vector<Task*>& parked = Group(task->group).parked;
  parked.erase(std::remove(parked.begin(), parked.end(), task), parked.end());
}

// ---- Blocking --------------------------------------------------------------------

void Scheduler::FailOutsideTask(const char* operation) const {
  internal::MisuseFailed(__FILE__, __LINE__,
                         absl::StrCat(operation,
                                      " was called outside a task (from the main thread or a "
                                      "timer callback); blocking calls are only allowed inside "
                                      "tasks spawned on a dsim::Scheduler"));
}

void Scheduler::CheckThreadSlow(const char* operation) const {
  const void* owner = run_thread_.load(std::memory_order_acquire);
  if (ABSL_PREDICT_TRUE(owner == nullptr || owner == &thread_marker)) return;
  internal::MisuseFailed(
      __FILE__, __LINE__,
      absl::StrCat("Scheduler::", operation,
                   " was called from an OS thread other than the one running the "
                   "simulation. A Scheduler and everything it runs belong to the thread that "
                   "calls Run; tasks, timers and primitives must not be touched from other "
                   "threads (spawn from a task or a timer callback instead)"));
}

void Scheduler::ClaimThread(const char* operation) {
  const void* expected = nullptr;
  if (run_thread_.compare_exchange_strong(expected, &thread_marker, std::memory_order_acq_rel)) {
    return;
  }
  CheckThread(operation);  // Aborts when another thread runs it.
}

Task* Scheduler::CurrentTaskOrDie(const char* operation) const {
  if (ABSL_PREDICT_FALSE(current_ == nullptr)) FailOutsideTask(operation);
  return current_;
}

// CheckKilled with a location passed by value: its address is taken only in the cold
// DeliverKillAt, so the caller's frame needs no stack protector.
inline void Scheduler::CheckKilledAt(Task* self, SourceLocation where) {
  if (ABSL_PREDICT_FALSE(self->kill_requested) && self->no_unwind_depth == 0 &&
      std::uncaught_exceptions() == 0) {
    DeliverKillAt(self, where);
  }
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::DeliverKillAt(Task* self, SourceLocation where) {
  DeliverKill(self, &where);
}

inline void Scheduler::CheckKilled(Task* self, const SourceLocation* where) {
  if (ABSL_PREDICT_FALSE(self->kill_requested) && self->no_unwind_depth == 0 &&
      std::uncaught_exceptions() == 0) {
    DeliverKill(self, where);
  }
}

bool Scheduler::HasDyingChild(const Task* self) const {
  if (self->live_children == 0) return false;
  for (const Task* t = live_head_; t != nullptr; t = t->live_next) {
    if (t->parent == self->id && t->kill_requested) return true;
  }
  return false;
}

void Scheduler::DeliverKill(Task* self, const SourceLocation* where) {
  // Children first: a child's destructors may use objects on this task's stack (a
  // pthread-style main that owns the shared state), so this task's frames must outlive
  // the unwinding of every dying task it spawned.
  while (HasDyingChild(self)) {
    self->waiting_for_children = true;
    self->state = TaskState::kBlocked;
    self->blocked_in = "unwinding (waits for its children to unwind first)";
    self->blocked_at = where != nullptr ? *where : SourceLocation();
    Reschedule(self);
    self->waiting_for_children = false;
    self->blocked_in = nullptr;
  }
  const bool in_a_handler = !static_cast<ExceptionState*>(eh_globals_)->empty();
  if (self->unwind_thrown && !in_a_handler) {
    // The TaskUnwind thrown earlier did not get out: a catch (...) swallowed it, and
    // the task went on to another scheduling point. Report that once and unwind once
    // more (its destructors may still run); a task that swallows that too is stopped
    // where it is, instead of looping forever.
    if (self->swallow_reported) FinishCurrentTask(self);
    ReportSwallowedUnwind(self, where);
    self->swallow_reported = true;
  }
  self->unwind_thrown = true;
  throw internal::TaskUnwind{};
}

void Scheduler::ReportSwallowedUnwind(Task* self, const SourceLocation* where) {
  const std::string message = absl::StrCat(
      "task \"", self->name, "\" caught the exception dsim::TaskUnwind that stops it and "
      "went on to a scheduling point",
      where != nullptr ? absl::StrCat(" at ", where->ToString()) : std::string(),
      "; a catch (...) must rethrow it (catch (const dsim::TaskUnwind&) { throw; }). It is "
      "unwound once more; if it swallows that too, it is stopped at its next scheduling "
      "point and its remaining frames are abandoned without running their destructors");
  std::fprintf(stderr, "dsim: %s. Its stack:\n", message.c_str());
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  if (!unwinding_ && !stop_) {
    failed_task_ = self->id;
    failed_task_name_ = self->name;
    failure_ = message;
    misuse_tasks_ = {ReportOf(self->id)};
    Stop(RunOutcome::kMisuse);
  }
}

Scheduler::NoUnwindScope::NoUnwindScope() {
  Scheduler* scheduler = Scheduler::Current();
  task_ = scheduler != nullptr ? scheduler->current_ : nullptr;
  if (task_ != nullptr) ++task_->no_unwind_depth;
}

Scheduler::NoUnwindScope::~NoUnwindScope() {
  if (task_ != nullptr) --task_->no_unwind_depth;
}

void Scheduler::Fail(absl::string_view reason) {
  CheckThread("Fail");
  if (stop_) return;
  failed_task_ = current_ != nullptr ? current_->id : kNoTask;
  failed_task_name_ = current_ != nullptr ? current_->name : "";
  failure_ = std::string(reason);
  failed_check_ = true;
  Stop(RunOutcome::kTaskFailed);
}

// Block's rare parts, out of line (fewer saved registers on its usual path).
// Already past the deadline: time out at once, but still a scheduling point.
ABSL_ATTRIBUTE_NOINLINE WakeReason Scheduler::TimeOutAtOnce(Task* self, bool realtime) {
  if (realtime) self->realtime_key_ns = -1;
  SchedulingPoint();
  return WakeReason::kTimedOut;
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::ArmWakeTimer(Task* self, int64_t deadline_ns) {
  self->wake_timer = timers_.IdOf(timers_.Add(deadline_ns, self->group, self, nullptr));
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::CancelWakeTimer(Task* self) {
  timers_.Cancel(self->wake_timer);
  self->wake_timer = kNoTimer;
}

WakeReason Scheduler::Block(const char* what, SourceLocation where, int64_t deadline_ns) {
  Task* self = CurrentTaskOrDie(what);
  CheckKilledAt(self, where);
  // An absolute CLOCK_REALTIME deadline follows the host's clock, stepped since too.
  const bool realtime = ABSL_PREDICT_FALSE(deadline_ns == self->realtime_key_ns);
  if (realtime) deadline_ns = RealtimeDeadlineNs(self);
  if (deadline_ns <= now_ns_) return TimeOutAtOnce(self, realtime);
  self->state = TaskState::kBlocked;
  self->blocked_in = what;
  self->blocked_at = where;
  self->wake_reason = WakeReason::kWoken;
  self->realtime_blocked = realtime;
  if (deadline_ns != kForever) ArmWakeTimer(self, deadline_ns);
  if (observed_) {
    if (trace_sink_ != nullptr) trace_sink_->Block(self->id, self->group, now_ns_, what, where);
    if (has_listeners_) NotifyBlockListeners(self, what, where);
  }
  RescheduleInline(self);
  if (self->wake_timer != kNoTimer) CancelWakeTimer(self);
  // Once timed out, the deadline is spent: a later wait that happens to share its true
  // instant is not a realtime one.
  if (realtime && self->wake_reason == WakeReason::kTimedOut) self->realtime_key_ns = -1;
  self->realtime_blocked = false;
  self->blocked_in = nullptr;
  CheckKilledAt(self, where);
  return self->wake_reason;
}

// Frame-less for the usual case (no general listener, the group running, room in the
// run queue): MakeRunnable's effect, then the trace sink's record as a tail call.
bool Scheduler::Wake(Task* task, WakeReason reason) {
  if (task->state != TaskState::kBlocked) return false;
  task->wake_reason = reason;
  const bool unusual = has_listeners_ | runnable_.full() |
                       (task->group != kNoGroup && GroupPaused(task->group));
  if (ABSL_PREDICT_FALSE(unusual)) return WakeSlow(task, reason);
  task->state = TaskState::kRunnable;
  task->runnable_index = static_cast<uint32_t>(runnable_.size());
  runnable_.PushUnchecked(task);
  if (ABSL_PREDICT_FALSE(trace_sink_ != nullptr)) return WakeRecord(task, reason);
  return true;
}

ABSL_ATTRIBUTE_NOINLINE bool Scheduler::WakeRecord(Task* task, WakeReason reason) {
  trace_sink_->Wake(task->id, task->group, now_ns_, reason,
                    current_ != nullptr ? current_->id : kNoTask);
  return true;
}

ABSL_ATTRIBUTE_NOINLINE bool Scheduler::WakeSlow(Task* task, WakeReason reason) {
  MakeRunnable(task);
  if (observed_) {
    if (trace_sink_ != nullptr) {
      trace_sink_->Wake(task->id, task->group, now_ns_, reason,
                        current_ != nullptr ? current_->id : kNoTask);
    }
    if (has_listeners_) NotifyWakeListeners(task, reason);
  }
  return true;
}

// The listener calls of Block and Wake, out of line: a TaskView passed by reference
// would give the hot frames a stack slot and a stack protector.
ABSL_ATTRIBUTE_NOINLINE void Scheduler::NotifyBlockListeners(Task* task, const char* what,
                                                             SourceLocation where) {
  const TaskView view = View(task);
  for (SchedulerListener* l : listeners_) l->OnBlock(view, what, where);
}

ABSL_ATTRIBUTE_NOINLINE void Scheduler::NotifyWakeListeners(Task* task, WakeReason reason) {
  const TaskView view = View(task);
  for (SchedulerListener* l : listeners_) l->OnWake(view, reason);
}

void Scheduler::Yield() { YieldFast(); }

// Inlined into both Yield entry points, so the switch happens one call below task code.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Scheduler::YieldFast() {
  Task* self = current_;
  if (ABSL_PREDICT_FALSE(self == nullptr)) FailOutsideTask("Yield");
  // The fast path hands off to another runnable task when nothing unusual is going on:
  // no kill, no halt, no due timer, no step limit, no paused group, someone to run.
  // Bitwise on purpose: in the fast path every test is false, so one branch on the
  // combined result beats a chain of them.
  const bool unusual = halt_ | self->kill_requested | runnable_.empty() |
                       (steps_ >= step_limit_) | timers_.AnyDue(now_ns_) |
                       (self->group != kNoGroup && groups_[self->group].paused) |
                       (live_non_daemon_ == 0 && mode_ == RunMode::kUntilTasksDone);
  if (ABSL_PREDICT_FALSE(unusual)) return YieldSlow(self);
  if (ABSL_PREDICT_FALSE(observes_yields_)) strategy_->OnYield(self->id);
  const size_t count = runnable_.size();
  const size_t index =
      count == 1 ? 0 : DecideNextTask(/*from_yield=*/true);
  Task* next = runnable_[index];
  // The caller takes the picked task's place in the run queue: no pop and push.
  runnable_[index] = self;
  self->runnable_index = static_cast<uint32_t>(index);
  self->state = TaskState::kRunnable;
  next->runnable_index = UINT32_MAX;
  ++steps_;
  Beat();
  if (ABSL_PREDICT_FALSE(observed_)) NotifyDispatch(next);
  next->state = TaskState::kRunning;
  SwitchAway(self, next);
  CheckKilled(self);
}

void Scheduler::YieldSlow(Task* self) {
  CheckKilled(self);
  if (timers_.AnyDue(now_ns_)) {
    // Due timers may wake tasks that should compete for the hand-off.
    FireDueTimers();
  }
  const bool others_can_run = !halt_ && !runnable_.empty() && steps_ < step_limit_ &&
                              (live_non_daemon_ != 0 || mode_ != RunMode::kUntilTasksDone);
  if (!others_can_run) {
    // Nobody else to run (or the run is ending): an ordinary scheduling point.
    SchedulingPoint();
    return;
  }
  if (observes_yields_) strategy_->OnYield(self->id);
  Task* next = PickRunnable(/*from_yield=*/true);  // Among the others: not queued yet.
  MakeRunnable(self);
  SwitchAway(self, next);
  CheckKilled(self);
}

// The common cases first, in a function without a frame: the caller alone (no other
// task runnable, nothing unusual) keeps the CPU, one step and a heartbeat; with other
// tasks runnable, the strategy decides (SchedulingPointDecide, a tail call). Anything
// unusual (a kill, a due timer, a paused group, the run ending) goes the general way.
void Scheduler::SchedulingPoint() {
  Task* self = current_;
  if (ABSL_PREDICT_TRUE(self != nullptr)) {
    const bool usual = !halt_ & (steps_ < step_limit_) & !timers_.AnyDue(now_ns_) &
                       !self->kill_requested &
                       (live_non_daemon_ != 0 || mode_ != RunMode::kUntilTasksDone) &
                       !(self->group != kNoGroup && groups_[self->group].paused);
    if (ABSL_PREDICT_TRUE(usual)) {
      if (ABSL_PREDICT_FALSE(!runnable_.empty() || has_listeners_)) {
        return SchedulingPointDecide(self);
      }
      // Alone: one step. A trace sink counts it (a dispatch of the running task, as
      // PickRunnable would report it), without the decision path's frame.
      ++steps_;
      Beat();
      if (ABSL_PREDICT_FALSE(trace_sink_ != nullptr)) return NotifySinkDispatch(self);
      return;
    }
  }
  SchedulingPointSlow();
}

// A usual scheduling point with other tasks runnable (or listeners to tell).
ABSL_ATTRIBUTE_NOINLINE void Scheduler::SchedulingPointDecide(Task* self) {
  if (runnable_.empty()) {
    // Alone, with listeners: the dispatch event the general path would give.
    ++steps_;
    Beat();
    if (ABSL_PREDICT_FALSE(observed_)) NotifyDispatch(self);
    return;
  }
  if (random_strategy_ != nullptr && !has_listeners_) {
    // The default strategy, nobody listening: the general path's decision without its
    // queue traffic. The candidates are the run queue and then the caller (where
    // MakeRunnable would append it); the same draw as DecideNextTask. A task picked
    // from the middle is replaced by the caller, as TakeRunnable would move the
    // appended caller into its place.
    const size_t count = runnable_.size() + 1;
    ++decision_index_;
    const size_t index = random_strategy_->ChooseBelow(count);
    ++steps_;
    Beat();
    // The dispatch event PickRunnable gives, for the trace sink (listeners take the
    // general path).
    if (ABSL_PREDICT_FALSE(observed_)) {
      NotifyDispatch(index == count - 1 ? self : runnable_[index]);
    }
    if (index == count - 1) return;  // The caller again: it keeps the CPU.
    Task* next = runnable_[index];
    runnable_[index] = self;
    self->runnable_index = static_cast<uint32_t>(index);
    self->state = TaskState::kRunnable;
    next->runnable_index = UINT32_MAX;
    SwitchAway(self, next);
    CheckKilled(self);
    return;
  }
  MakeRunnable(self);
  RescheduleInline(self);
  CheckKilled(self);
}

// The general path: the caller joins the run queue and the strategy picks among all.
ABSL_ATTRIBUTE_NOINLINE void Scheduler::SchedulingPointSlow() {
  Task* self = CurrentTaskOrDie("SchedulingPoint");
  CheckKilled(self);
  MakeRunnable(self);
  RescheduleInline(self);
  CheckKilled(self);
}

void Scheduler::SleepFor(absl::Duration duration, SourceLocation where) {
  SleepUntil(Now() + duration, where);
}

void Scheduler::SleepUntil(absl::Time deadline, SourceLocation where) {
  const Task* self = CurrentTaskOrDie("SleepUntil");
  const int64_t deadline_ns = ToNanos(deadline);
  // A realtime deadline (TrueTimeOfRealtimeDeadline) moves with clock steps.
  const bool realtime = deadline_ns == self->realtime_key_ns;
  if (deadline_ns <= now_ns_) {
    if (realtime) current_->realtime_key_ns = -1;  // Spent.
    SchedulingPoint();  // A sleep that has already expired is still a scheduling point.
    return;
  }
  // Nothing but the deadline (or a kill, which throws) ends this block.
  Block("SleepUntil", where, deadline_ns);
  // Later than the deadline only if the task's group was paused when it came due.
  DSIM_DCHECK(realtime || now_ns_ >= deadline_ns, "a sleep woke before its deadline");
}

bool Scheduler::CurrentTaskKilled() const {
  return current_ != nullptr && current_->kill_requested;
}

TaskId Scheduler::CurrentTaskId() const { return current_ ? current_->id : kNoTask; }

bool Scheduler::CurrentTaskIsBeingStopped() const {
  return current_ != nullptr && current_->kill_requested && std::uncaught_exceptions() > 0;
}

absl::string_view Scheduler::CurrentTaskName() const {
  return current_ ? absl::string_view(current_->name) : absl::string_view();
}


// ---- Timers ----------------------------------------------------------------------

TimerId Scheduler::AddTimer(absl::Time when, std::function<void()> callback, GroupId group) {
  CheckThread("AddTimer");
  DSIM_MISUSE(callback != nullptr, "AddTimer with an empty callback");
  Group(group);
  const int64_t when_ns = std::max(ToNanos(when), now_ns_);
  return timers_.IdOf(timers_.Add(when_ns, group, nullptr, std::move(callback)));
}

bool Scheduler::CancelTimer(TimerId timer) {
  CheckThread("CancelTimer");
  const internal::TimerSlotId slot = timers_.SlotOf(timer);
  if (slot == internal::TimerQueue::kNowhere) return false;
  DSIM_MISUSE(timers_.slot(slot).task == nullptr, "CancelTimer on a task's internal timer");
  return timers_.Cancel(timer);
}

namespace internal {

int64_t TimeToEpochNanosSlow(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kForever;
  const absl::Duration since = t - Scheduler::Epoch();
  if (since < absl::ZeroDuration()) return 0;
  if (since >= absl::Nanoseconds(kForever)) return kForever;
  return absl::ToInt64Nanoseconds(since);
}

}  // namespace internal

// ---- Host clocks -----------------------------------------------------------------

void Scheduler::SetGroupClock(GroupId group, const HostClock* clock) {
  DSIM_MISUSE(group != kNoGroup, "SetGroupClock on the default group");
  Group(group).clock = clock;
  if (clock != nullptr) has_group_clocks_ = true;
}

const HostClock* Scheduler::CurrentClockSlow() const {
  const GroupId group = current_->group;
  return group < groups_.size() ? groups_[group].clock : nullptr;
}

absl::Time Scheduler::LocalNow() const {
  const HostClock* clock = CurrentClock();
  return clock == nullptr ? now_ : clock->WallAt(now_);
}

absl::Duration Scheduler::MonotonicNow() const {
  const HostClock* clock = CurrentClock();
  return clock == nullptr ? now_ - Epoch() : clock->MonotonicAt(now_);
}

absl::Time Scheduler::TrueTimeOfLocal(absl::Time local) const {
  const HostClock* clock = CurrentClock();
  return clock == nullptr ? local : clock->TrueTimeOfWall(local, now_);
}

absl::Duration Scheduler::TrueDurationOfLocal(absl::Duration local) const {
  const HostClock* clock = CurrentClock();
  return clock == nullptr ? local : clock->TrueDuration(local);
}

absl::Time Scheduler::TrueDeadlineAfterLocal(absl::Duration local) const {
  if (local == absl::InfiniteDuration()) return absl::InfiniteFuture();
  if (local <= absl::ZeroDuration()) return now_;
  return now_ + TrueDurationOfLocal(local);
}

absl::Time Scheduler::TrueTimeOfRealtimeDeadline(absl::Time local) {
  // Registered even on a host without a clock yet: a step creates one (Simulation).
  if (current_ == nullptr || local == absl::InfiniteFuture()) return local;
  const HostClock* clock = CurrentClock();
  const absl::Time true_deadline = clock == nullptr ? local : clock->TrueTimeOfWall(local, now_);
  current_->realtime_key_ns = ToNanos(true_deadline);
  current_->realtime_wall = local;
  return true_deadline;
}

bool Scheduler::DeadlinePassed(absl::Time true_deadline) const {
  const int64_t deadline_ns = ToNanos(true_deadline);
  if (current_ != nullptr && deadline_ns == current_->realtime_key_ns) {
    return now_ns_ >= RealtimeDeadlineNs(current_);
  }
  return now_ns_ >= deadline_ns;
}

int64_t Scheduler::RealtimeDeadlineNs(const Task* task) const {
  const HostClock* clock =
      task->group < groups_.size() ? groups_[task->group].clock : nullptr;
  if (clock == nullptr) return task->realtime_key_ns;
  return ToNanos(clock->TrueTimeOfWall(task->realtime_wall, now_));
}

absl::Duration Scheduler::TrueDurationOfLocal(GroupId group, absl::Duration local) const {
  const HostClock* clock = group < groups_.size() ? groups_[group].clock : nullptr;
  return clock == nullptr ? local : clock->TrueDuration(local);
}

absl::Duration Scheduler::LocalDurationOfTrue(GroupId group, absl::Duration true_duration) const {
  const HostClock* clock = group < groups_.size() ? groups_[group].clock : nullptr;
  return clock == nullptr ? true_duration : clock->LocalDuration(true_duration);
}

absl::Time Scheduler::WallNow(GroupId group) const {
  const HostClock* clock = group < groups_.size() ? groups_[group].clock : nullptr;
  return clock == nullptr ? now_ : clock->WallAt(now_);
}

absl::Time Scheduler::TrueTimeOfWall(GroupId group, absl::Time wall) const {
  const HostClock* clock = group < groups_.size() ? groups_[group].clock : nullptr;
  if (clock == nullptr) return std::max(wall, now_);
  return clock->TrueTimeOfWall(wall, now_);
}

uint64_t Scheduler::AddClockWatcher(GroupId group, std::function<void(bool)> callback) {
  clock_watchers_.push_back({++last_clock_watcher_, group, std::move(callback)});
  return last_clock_watcher_;
}

void Scheduler::RemoveClockWatcher(uint64_t id) {
  for (auto it = clock_watchers_.begin(); it != clock_watchers_.end(); ++it) {
    if (it->id == id) {
      clock_watchers_.erase(it);
      return;
    }
  }
}

bool Scheduler::StepCurrentClock(absl::Duration offset) {
  if (clock_stepper_ == nullptr || current_ == nullptr || current_->group == kNoGroup) return false;
  return clock_stepper_(current_->group, offset);
}

void Scheduler::GroupClockChanged(GroupId group, bool stepped) {
  CheckThread("GroupClockChanged");
  for (Task* t = live_head_; t != nullptr; t = t->live_next) {
    if (t->group != group || !t->realtime_blocked || t->wake_timer == kNoTimer) continue;
    if (t->state != TaskState::kBlocked) continue;
    timers_.Cancel(t->wake_timer);
    const int64_t when_ns = std::max(RealtimeDeadlineNs(t), now_ns_);
    t->wake_timer = timers_.IdOf(timers_.Add(when_ns, t->group, t, nullptr));
  }
  // Watchers may add or remove watchers: walk by id, not by position.
  std::vector<uint64_t> ids;
  for (const ClockWatcher& w : clock_watchers_) {
    if (w.group == group) ids.push_back(w.id);
  }
  for (uint64_t id : ids) {
    for (ClockWatcher& w : clock_watchers_) {
      if (w.id != id) continue;
      std::function<void(bool)> callback = w.callback;  // It may remove itself.
      callback(stepped);
      break;
    }
  }
}

// ---- Groups ----------------------------------------------------------------------

Scheduler::GroupState& Scheduler::Group(GroupId group) {
  if (group >= groups_.size()) groups_.resize(group + 1);
  return groups_[group];
}


void Scheduler::PauseGroup(GroupId group) {
  CheckThread("PauseGroup");
  DSIM_MISUSE(group != kNoGroup, "the default group cannot be paused");
  GroupState& state = Group(group);
  if (state.paused) return;
  state.paused = true;
  // Park the group's runnable tasks, keeping their relative order.
  std::vector<Task*> moving;
  for (Task* task : runnable_) {
    if (task->group == group && !task->kill_requested) moving.push_back(task);
  }
  for (Task* task : moving) {
    RemoveFromRunnable(task);
    state.parked.push_back(task);
  }
}

void Scheduler::ResumeGroup(GroupId group) {
  CheckThread("ResumeGroup");
  GroupState& state = Group(group);
  if (!state.paused) return;
  state.paused = false;
  std::vector<Task*> parked = std::move(state.parked);
  state.parked.clear();
  for (Task* task : parked) {
    const TaskState state_before = task->state;
    MakeRunnable(task);
    task->state = state_before;
  }
  std::vector<TimerId> deferred = std::move(state.deferred);
  state.deferred.clear();
  for (TimerId id : deferred) {
    const internal::TimerSlotId slot = timers_.SlotOf(id);
    if (slot == internal::TimerQueue::kNowhere) continue;  // Cancelled meanwhile.
    timers_.Reinsert(slot, std::max(timers_.slot(slot).when_ns, now_ns_));
  }
}

size_t Scheduler::KillGroup(GroupId group) {
  CheckThread("KillGroup");
  DSIM_MISUSE(group != kNoGroup, "the default group cannot be killed");
  std::vector<TaskId> victims;
  for (const Task* t = live_head_; t != nullptr; t = t->live_next) {
    if (t->group == group) victims.push_back(t->id);
  }
  for (TaskId id : victims) Kill(id);
  // Timers of the group die with it. Deferred ones first, then pending ones.
  GroupState& state = Group(group);
  for (TimerId id : state.deferred) timers_.Cancel(id);
  state.deferred.clear();
  for (TimerId id : timers_.CallbackTimersOf(group)) timers_.Cancel(id);
  return victims.size();
}

void Scheduler::Kill(TaskId id) {
  CheckThread("Kill");
  Task* task = FindTask(id);
  if (task == nullptr || task->kill_requested) return;
  task->kill_requested = true;
  switch (task->state) {
    case TaskState::kBlocked:
      Wake(task, WakeReason::kWoken);
      break;
    case TaskState::kCreated:
    case TaskState::kRunnable:
      // Parked tasks of a paused group must still unwind: move them to the run queue.
      if (task->runnable_index == UINT32_MAX) {
        const TaskState state_before = task->state;
        RemoveFromRunnable(task);
        MakeRunnable(task);
        task->state = state_before;
      }
      break;
    case TaskState::kRunning:
    case TaskState::kFinished:
      break;  // The running task unwinds at its next scheduling point.
  }
}

Task* Scheduler::FindTask(TaskId id) const {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

TaskView Scheduler::View(const Task* task) const {
  return TaskView{task->id, task->name, task->group, task->daemon};
}

// ---- Task lifecycle --------------------------------------------------------------

void Scheduler::TaskEntry(internal::Fiber* self_fiber, internal::Fiber* previous) {
  (void)previous;
  Scheduler* scheduler = current_scheduler;
  Task* self = scheduler->current_;
  DSIM_CHECK(self != nullptr && &self->fiber == self_fiber);
  // A new task starts with no exception in flight, whatever the fiber that started it
  // was doing; that fiber restores its own state when it resumes.
  *static_cast<ExceptionState*>(scheduler->eh_globals_) = ExceptionState{};
  scheduler->AfterSwitch();
  scheduler->RunTaskBody(self);
  scheduler->FinishCurrentTask(self);
}

void Scheduler::RunTaskBody(Task* task) {
  task->started = true;
  if (task->kill_requested) return;  // Killed before it ever ran.
  try {
    std::move(task->body)();
  } catch (const internal::TaskUnwind&) {
    // Killed: its destructors have run.
  } catch (...) {
    if (!stop_) {
      failed_task_ = task->id;
      failed_task_name_ = task->name;
      failure_ = CurrentExceptionText();
      Stop(RunOutcome::kTaskFailed);
    }
  }
}

void Scheduler::FinishCurrentTask(Task* self) {
  // The body (and its captures) die now, on this fiber, before the stack is released.
  self->body = nullptr;
  self->state = TaskState::kFinished;
  live_.erase(self->id);
  (self->live_prev ? self->live_prev->live_next : live_head_) = self->live_next;
  (self->live_next ? self->live_next->live_prev : live_tail_) = self->live_prev;
  if (!self->daemon) --live_non_daemon_;
  if (Task* parent = self->parent != kNoTask ? FindTask(self->parent) : nullptr) {
    DSIM_DCHECK(parent->live_children > 0);
    --parent->live_children;
    if (parent->waiting_for_children && parent->state == TaskState::kBlocked) {
      Wake(parent, WakeReason::kWoken);
    }
  }
  if (observed_) {
    if (trace_sink_ != nullptr) trace_sink_->Finish(self->id, self->group, now_ns_);
    if (has_listeners_) {
      const TaskView view = View(self);
      for (SchedulerListener* l : listeners_) l->OnFinish(view);
    }
  }
  self->joiners.WakeAll();
  Task* next = PickNext();
  SetCurrent(next);
  if (next != nullptr) next->state = TaskState::kRunning;
  DSIM_CHECK(finished_ == nullptr);
  finished_ = self;
  internal::SwitchToFinal(&self->fiber, next != nullptr ? &next->fiber : &main_fiber_);
}

void Scheduler::Shutdown() {
  DSIM_MISUSE(!running_ && current_scheduler != this,
              "Scheduler::Shutdown called during a run (from a task?)");
  UnwindAllTasks();
}

void Scheduler::SetOwnedExtension(int slot, std::shared_ptr<void> value) {
  SetExtension(slot, value.get());
  owned_extensions_[slot] = std::move(value);
}

void Scheduler::SetExtension(int slot, void* value) {
  CheckThread("SetExtension");
  DSIM_MISUSE(slot >= 0 && slot < kExtensionSlots, "extension slot ", slot, " out of range");
  extensions_[slot] = value;
}


void Scheduler::UnwindAllTasks() {
  if (live_head_ == nullptr) return;
  ClaimThread("Shutdown");
  errno_location_ = &errno;
  eh_globals_ = ThreadExceptionState();
  uncaught_exceptions_ = &ThreadExceptionState()->uncaught_exceptions;
  unwinding_ = true;
  halt_ = true;
  current_scheduler = this;
  previous_running_fiber_ = internal::ExchangeRunningFiber(&main_fiber_);
  internal::WatchdogEntry* const watchdog = internal::Watch(&heartbeat_, watchdog_);
  // In rounds, in reverse spawn order, and a task only after every task it spawned has
  // finished: children's destructors may use their parent's stack. A task that blocks
  // while unwinding (its destructor waits for a lock another dying task holds) gets
  // another chance once the others moved.
  for (Task* t = live_head_; t != nullptr; t = t->live_next) t->kill_requested = true;
  int stalled_rounds = 0;
  while (live_head_ != nullptr) {
    std::vector<TaskId> round;
    for (const Task* t = live_tail_; t != nullptr; t = t->live_prev) round.push_back(t->id);
    bool progress = false;
    for (TaskId id : round) {
      Task* task = FindTask(id);
      if (task != nullptr && task->live_children == 0) progress |= ResumeForUnwinding(task);
    }
    stalled_rounds = progress ? 0 : stalled_rounds + 1;
    if (stalled_rounds >= kMaxStalledUnwindRounds) {
      const Task* stuck = live_tail_;
      while (stuck->live_children != 0) stuck = stuck->live_prev;
      DSIM_MISUSE(false, "task \"", stuck->name, "\" keeps blocking while being unwound (in ",
                  stuck->blocked_in ? stuck->blocked_in : "?", " at ",
                  stuck->blocked_at.ToString(), "); a destructor must not block forever");
    }
  }
  internal::Unwatch(watchdog);
  run_thread_.store(nullptr, std::memory_order_release);
  current_scheduler = nullptr;
  internal::ExchangeRunningFiber(previous_running_fiber_);
  unwinding_ = false;
  halt_ = stop_;
}

// Resumes a task marked for killing until it finishes or blocks again. Returns whether
// it finished.
// At shutdown, the task being unwound passed a scheduling point that does not block (a
// free lock taken, an unlock, a yield): it goes on. Only UnwindAllTasks decides who runs
// then, so there is nobody to switch to, and going back to it would count as a round in
// which the task did not move ("keeps blocking"), although its destructors progress.
Task* Scheduler::ContinueUnwinding(Task* self) {
  DSIM_MISUSE(++unwind_points_ < kMaxUnwindPointsWithoutBlocking, "task \"", self->name,
              "\" keeps reaching scheduling points while being unwound, without blocking or "
              "finishing (", kMaxUnwindPointsWithoutBlocking,
              " in a row); a destructor must not loop forever");
  RemoveFromRunnable(self);
  return self;
}

bool Scheduler::ResumeForUnwinding(Task* task) {
  const TaskId id = task->id;
  unwind_points_ = 0;
  task->kill_requested = true;
  RemoveFromRunnable(task);
  if (task->state == TaskState::kBlocked) task->wake_reason = WakeReason::kWoken;
  Beat();
  running_ = true;
  SwitchFromMain(task);
  running_ = false;
  SetCurrent(nullptr);
  return FindTask(id) == nullptr;
}

// ---- Observation -----------------------------------------------------------------

void Scheduler::AddListener(SchedulerListener* listener) {
  CheckThread("AddListener");
  DSIM_MISUSE(listener != nullptr, "AddListener(nullptr)");
  listeners_.push_back(listener);
  UpdateObserved();
}

void Scheduler::AddAnnotationListener(SchedulerListener* listener, std::string category_prefix) {
  CheckThread("AddAnnotationListener");
  DSIM_MISUSE(listener != nullptr, "AddAnnotationListener(nullptr)");
  annotation_listeners_.emplace_back(listener, std::move(category_prefix));
  UpdateObserved();
  IndexAnnotationPrefixes();
}

void Scheduler::IndexAnnotationPrefixes() {
  for (uint64_t& bits : annotation_first_bytes_) bits = 0;
  for (const auto& entry : annotation_listeners_) {
    const std::string& prefix = entry.second;
    if (prefix.empty()) {  // Every category, also the empty one (first byte 0).
      for (uint64_t& bits : annotation_first_bytes_) bits = ~uint64_t{0};
      return;
    }
    const uint8_t first = static_cast<uint8_t>(prefix[0]);
    annotation_first_bytes_[first >> 6] |= uint64_t{1} << (first & 63);
  }
}

void Scheduler::RemoveListener(SchedulerListener* listener) {
  CheckThread("RemoveListener");
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
  annotation_listeners_.erase(
      std::remove_if(annotation_listeners_.begin(), annotation_listeners_.end(),
                     [listener](const auto& entry) { return entry.first == listener; }),
      annotation_listeners_.end());
  UpdateObserved();
  IndexAnnotationPrefixes();
}

bool Scheduler::AttachTraceSink(TraceSink* sink) {
  CheckThread("AttachTraceSink");
  DSIM_MISUSE(sink != nullptr, "AttachTraceSink(nullptr)");
  if (trace_sink_ != nullptr) return false;
  trace_sink_ = sink;
  UpdateObserved();
  return true;
}

void Scheduler::DetachTraceSink(TraceSink* sink) {
  CheckThread("DetachTraceSink");
  if (trace_sink_ == sink) trace_sink_ = nullptr;
  UpdateObserved();
}

std::string Annotation::DetailText() const {
  if (format == nullptr) return std::string(detail);
  std::string text;
  format(payload, &text);
  return text;
}

void Scheduler::Annotate(const Annotation& annotation) {
  // Inside this scheduler's run the thread is right by construction; CheckThread's
  // atomic load and call are for calls from outside a run.
  if (ABSL_PREDICT_FALSE(current_scheduler != this)) CheckThread("Annotate");
  // Prefix listeners first: only categories whose first byte starts some prefix go on
  // to the prefix compare.
  const absl::string_view category = annotation.category;
  const uint8_t first = category.empty() ? 0 : static_cast<uint8_t>(category[0]);
  if (ABSL_PREDICT_FALSE((annotation_first_bytes_[first >> 6] >> (first & 63)) & 1)) {
    NotifyAnnotationListeners(annotation);
  }
  if (trace_sink_ != nullptr) {
    trace_sink_->Annotate(annotation, current_ != nullptr ? current_->id : kNoTask, now_ns_);
  }
  for (SchedulerListener* l : listeners_) l->OnAnnotation(annotation);
}

void Scheduler::NotifyAnnotationListeners(const Annotation& annotation) {
  const absl::string_view category = annotation.category;
  for (const auto& [listener, prefix] : annotation_listeners_) {
    if (absl::StartsWith(category, prefix)) listener->OnAnnotation(annotation);
  }
}


// ---- Free functions --------------------------------------------------------------

namespace {

ABSL_ATTRIBUTE_ALWAYS_INLINE inline Scheduler& CurrentOrDie(const char* operation) {
  Scheduler* scheduler = current_scheduler;
  DSIM_MISUSE(scheduler != nullptr, "dsim::", operation,
              " was called with no simulation running on this thread");
  return *scheduler;
}

}  // namespace

absl::Time Now() { return CurrentOrDie("Now").LocalNow(); }

absl::Duration MonotonicNow() { return CurrentOrDie("MonotonicNow").MonotonicNow(); }

void SleepFor(absl::Duration duration, SourceLocation where) {
  Scheduler& scheduler = CurrentOrDie("SleepFor");
  scheduler.SleepFor(scheduler.TrueDurationOfLocal(duration), where);
}

void SleepUntil(absl::Time deadline, SourceLocation where) {
  Scheduler& scheduler = CurrentOrDie("SleepUntil");
  scheduler.SleepUntil(scheduler.TrueTimeOfRealtimeDeadline(deadline), where);
}

void Yield() { CurrentOrDie("Yield").YieldFast(); }

void SchedulingPoint() { CurrentOrDie("SchedulingPoint").SchedulingPoint(); }

TaskId CurrentTaskId() { return CurrentOrDie("CurrentTaskId").CurrentTaskId(); }

absl::string_view CurrentTaskName() { return CurrentOrDie("CurrentTaskName").CurrentTaskName(); }

TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options) {
  Scheduler& scheduler = CurrentOrDie("Spawn");
  if (options.group == kNoGroup) options.group = scheduler.CurrentGroup();
  return scheduler.Spawn(std::move(name), std::move(body), options);
}

}  // namespace dsim
