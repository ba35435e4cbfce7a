#include "scheduler/internal/wait_queue.h"

#include "absl/container/inlined_vector.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/misuse.h"
#include "scheduler/internal/task.h"

namespace dsim::internal {
namespace {

// Unlinks the waiters a blocked task left behind, on every exit path (kill included).
class WaiterGuard {
 public:
  explicit WaiterGuard(absl::Span<Waiter> waiters) : waiters_(waiters) {}
  ~WaiterGuard() {
    for (Waiter& w : waiters_) {
      if (w.queue != nullptr) w.queue->Remove(&w);
    }
  }

 private:
  absl::Span<Waiter> waiters_;
};

Scheduler& SchedulerForBlocking(const char* what) {
  Scheduler* scheduler = Scheduler::Current();
  DSIM_MISUSE(scheduler != nullptr, what, " was called with no simulation running on this thread");
  return *scheduler;
}

}  // namespace

WaitQueue::~WaitQueue() {
  if (head_ == nullptr) return;
  if (watchers_ != 0) UnlinkWatchers();
  if (head_ == nullptr) return;
  if (!DSIM_RUN_MISUSE(false, FirstWaiter(), kNoTask,
                       "a wait queue (mutex, condition variable, socket, ...) was destroyed "
                       "while task \"", head_->task->name, "\" waits on it. Objects that "
                       "tasks use must outlive the tasks: declare them before the Scheduler, "
                       "or call Scheduler::Shutdown() before destroying them")) {
    AbandonWaiters();
  }
}

TaskId WaitQueue::FirstWaiter() const {
  for (const Waiter* w = head_; w != nullptr; w = w->next) {
    if (w->task != nullptr) return w->task->id;
  }
  return kNoTask;
}

void WaitQueue::Watch(Waiter* watcher) {
  DSIM_DCHECK(watcher->task == nullptr && watcher->notify != nullptr);
  Link(watcher);
  ++watchers_;
}

// The watchers of a dying queue learn it from their null `queue` (the file they watch
// is gone).
void WaitQueue::UnlinkWatchers() {
  for (Waiter* w = head_; w != nullptr;) {
    Waiter* next = w->next;
    if (w->task == nullptr) Remove(w);
    w = next;
  }
}

void WaitQueue::AbandonWaiters() {
  while (head_ != nullptr) Remove(head_);
}

void WaitQueue::Link(Waiter* waiter) {
  waiter->queue = this;
  waiter->prev = tail_;
  waiter->next = nullptr;
  (tail_ ? tail_->next : head_) = waiter;
  tail_ = waiter;
  ++size_;
}

void WaitQueue::Remove(Waiter* waiter) {
  DSIM_DCHECK(waiter->queue == this);
  if (waiter->task == nullptr) --watchers_;
  (waiter->prev ? waiter->prev->next : head_) = waiter->next;
  (waiter->next ? waiter->next->prev : tail_) = waiter->prev;
  waiter->queue = nullptr;
  waiter->prev = waiter->next = nullptr;
  --size_;
}

namespace {
// Unlinks the one waiter of Wait, on every exit path (kill included).
class OneWaiterGuard {
 public:
  explicit OneWaiterGuard(Waiter* waiter) : waiter_(waiter) {}
  ~OneWaiterGuard() {
    if (waiter_->queue != nullptr) waiter_->queue->Remove(waiter_);
  }

 private:
  Waiter* waiter_;
};
}  // namespace

// One queue, the common case (a socket read, a mutex): one waiter on this frame.
WakeReason WaitQueue::Wait(const char* what, SourceLocation where, absl::Time deadline) {
  return WaitNanos(what, where, TimeToEpochNanos(deadline));  // A pure conversion.
}

WakeReason WaitQueue::WaitNanos(const char* what, SourceLocation where, int64_t deadline_ns) {
  Scheduler& scheduler = SchedulerForBlocking(what);
  Task* const self = scheduler.current_;  // CurrentTaskOrDie, inline.
  if (ABSL_PREDICT_FALSE(self == nullptr)) scheduler.FailOutsideTask(what);
  Waiter waiter;
  waiter.task = self;
  waiter.scheduler = &scheduler;
  OneWaiterGuard guard(&waiter);
  Link(&waiter);
  return scheduler.Block(what, where, deadline_ns);
}

WakeReason WaitQueue::WaitAny(absl::Span<WaitQueue* const> queues, const char* what,
                              SourceLocation where, absl::Time deadline) {
  Scheduler& scheduler = SchedulerForBlocking(what);
  Task* self = scheduler.CurrentTaskOrDie(what);
  absl::InlinedVector<Waiter, 4> waiters(queues.size());
  WaiterGuard guard(absl::MakeSpan(waiters));
  for (size_t i = 0; i < queues.size(); ++i) {
    waiters[i].task = self;
    waiters[i].scheduler = &scheduler;
    queues[i]->Link(&waiters[i]);
  }
  return scheduler.Block(what, where, scheduler.ToNanos(deadline));
}

bool WaitQueue::WakeOne() {
  // Candidates: the oldest waiters whose tasks are still blocked. Others were woken by
  // another queue or timed out and will unlink themselves when they run.
  Waiter* candidates[kWakeWindow];
  uint64_t ids[kWakeWindow];
  size_t count = 0;
  for (Waiter* w = head_; w != nullptr && count < kWakeWindow; w = w->next) {
    if (w->task == nullptr || w->task->state != TaskState::kBlocked) continue;
    candidates[count] = w;
    ids[count] = w->task->id;
    ++count;
  }
  if (count == 0) return false;
  Scheduler& scheduler = *candidates[0]->scheduler;
  const size_t pick =
      count == 1 ? 0 : scheduler.Decide(DecisionKind::kWakeOne, count, {ids, count}, "");
  Waiter* chosen = candidates[pick];
  Remove(chosen);
  scheduler.Wake(chosen->task, WakeReason::kWoken);
  return true;
}

size_t WaitQueue::WakeAll() {
  if (watchers_ != 0) return WakeAllAndNotify();
  // No watchers: every waiter is a task's. Remove(head_) without its general tests
  // (the head has no predecessor), the queue consistent at every Wake.
  size_t woken = 0;
  while (Waiter* w = head_) {
    DSIM_DCHECK(w->queue == this && w->prev == nullptr && w->task != nullptr);
    head_ = w->next;
    (head_ != nullptr ? head_->prev : tail_) = nullptr;
    w->queue = nullptr;
    w->next = nullptr;
    --size_;
    if (w->scheduler->Wake(w->task, WakeReason::kWoken)) ++woken;
  }
  return woken;
}

// WakeAll with watchers linked: they are notified in link order and stay. A watcher's
// notify must not wake this queue again (epoll guards against its own cycles).
// With //posix's hot code (posix/internal/state.h, DSIM_POSIX_HOT): only epoll's
// watchers bring it here.
__attribute__((section(".text.hot.dsim_posix"))) size_t WaitQueue::WakeAllAndNotify() {
  size_t woken = 0;
  for (Waiter* w = head_; w != nullptr;) {
    Waiter* next = w->next;
    if (w->task == nullptr) {
      w->notify(w);
    } else {
      Remove(w);
      if (w->scheduler->Wake(w->task, WakeReason::kWoken)) ++woken;
    }
    w = next;
  }
  return woken;
}

void ReleasePoint() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr || !scheduler->InTask()) return;
  Scheduler::NoUnwindScope no_unwind;
  scheduler->SchedulingPoint();
}

}  // namespace dsim::internal
