// WaitQueue: the one blocking mechanism under every primitive and socket.
//
// A task blocks on one or more queues (Wait, WaitAny) until some other task or timer
// callback wakes it through a queue (WakeOne, WakeAll), its deadline passes, or it is
// killed. The waiter records live on the blocked task's own stack, so blocking
// allocates nothing. WakeOne asks the strategy which waiter to wake when several wait
// (among the first kWakeWindow, oldest first): real kernels promise no order, and races
// often hide in which waiter wins.
//
// Example (a one-shot event):
//
//   internal::WaitQueue waiters;
//   bool fired = false;
//   // waiting task:
//   while (!fired) waiters.Wait("Event::Wait", SourceLocation::Current());
//   // another task:
//   fired = true;
//   waiters.WakeAll();
#ifndef DSIM_SCHEDULER_INTERNAL_WAIT_QUEUE_H_
#define DSIM_SCHEDULER_INTERNAL_WAIT_QUEUE_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "scheduler/internal/nanos.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"

namespace dsim::internal {

class WaitQueue;

struct Waiter {
  Task* task = nullptr;
  Scheduler* scheduler = nullptr;
  WaitQueue* queue = nullptr;  // Null once unlinked.
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  // A watcher (see WaitQueue::Watch) instead of a blocked task: `task` is null.
  void (*notify)(Waiter*) = nullptr;
};

class WaitQueue {
 public:
  // How many of the oldest waiters WakeOne chooses among.
  static constexpr size_t kWakeWindow = 8;

  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;
  // Destroying a queue that tasks still wait on is a misuse error.
  ~WaitQueue();

  // Blocks the calling task until it is woken through this queue or `deadline` passes.
  // `what` ("CondVar::Wait") and `where` appear in deadlock reports. A deadline at or
  // before Now() times out at once (after a scheduling point). Must be called from a task.
  WakeReason Wait(const char* what, SourceLocation where, absl::Time deadline);
  // No deadline: Wait(what, where, absl::InfiniteFuture()) without the conversion of
  // the time to nanoseconds (every blocking read without a timeout comes here).
  WakeReason Wait(const char* what, SourceLocation where) {
    return WaitNanos(what, where, kNeverNanos);
  }
  // Wait with the deadline in nanoseconds since Scheduler::Epoch() (kNeverNanos: none).
  WakeReason WaitNanos(const char* what, SourceLocation where, int64_t deadline_ns);
  // Blocks on several queues at once; a wake through any of them ends the wait.
  static WakeReason WaitAny(absl::Span<WaitQueue* const> queues, const char* what,
                            SourceLocation where, absl::Time deadline = absl::InfiniteFuture());

  // Wakes one blocked waiter (the strategy picks). Returns false if none was blocked.
  bool WakeOne();
  // Wakes every blocked waiter, oldest first. Returns how many woke.
  size_t WakeAll();

  // Links a watcher: no task blocks; `watcher->notify(watcher)` runs on every WakeAll of
  // this queue (in link order among the waiters) and the watcher stays linked, until
  // Remove() or the queue's destruction, which unlinks it (its `queue` becomes null).
  // epoll's entries watch their files this way, as Linux's ep_poll_callback does.
  // WakeOne never picks a watcher and does not notify them.
  void Watch(Waiter* watcher);

  // Waiters linked (watchers included), including ones already woken that have not run yet.
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }

  // Unlinks a waiter (done for the waiting task when it resumes).
  void Remove(Waiter* waiter);

  // The task of the oldest waiter that is a task, or kNoTask.
  TaskId FirstWaiter() const;
  // Unlinks every waiter without waking it: the queue is about to die under misuse, and
  // its waiters must not touch it when they resume (to be unwound).
  void AbandonWaiters();

 private:
  void Link(Waiter* waiter);
  void UnlinkWatchers();
  size_t WakeAllAndNotify();

  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  size_t size_ = 0;
  uint32_t watchers_ = 0;
};

// The scheduling point that follows a release operation (Unlock, Signal, Notify,
// Release, Done): none when called from a timer callback or outside a run, and never one
// that delivers a kill, because releases run in destructors, which must not throw.
void ReleasePoint();

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_WAIT_QUEUE_H_
