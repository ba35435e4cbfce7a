// Semaphore: a counting semaphore for code running in a dsim simulation.
//
// Example (at most two concurrent requests):
//
//   dsim::Semaphore slots(2);
//   // in each worker task:
//   slots.Acquire();
//   DoRequest();
//   slots.Release();
//
// Acquire blocks while the count is zero; Release may be called from a task or a timer
// callback. Every operation called from a task is a scheduling point.
#ifndef DSIM_SCHEDULER_SEMAPHORE_H_
#define DSIM_SCHEDULER_SEMAPHORE_H_

#include <cstdint>

#include "absl/time/time.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/source_location.h"

namespace dsim {

class Semaphore {
 public:
  // `initial` must not be negative.
  explicit Semaphore(int64_t initial = 0);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Blocks until the count is positive, then decrements it.
  void Acquire(SourceLocation where = SourceLocation::Current());
  // Decrements the count if positive; never blocks. Returns whether it did.
  bool TryAcquire();
  // As Acquire, giving up after `timeout`. Returns true if acquired.
  bool AcquireWithTimeout(absl::Duration timeout,
                          SourceLocation where = SourceLocation::Current());
  bool AcquireWithDeadline(absl::Time deadline, SourceLocation where = SourceLocation::Current());
  // Adds `count` (positive) and wakes up to that many waiters.
  void Release(int64_t count = 1);
  int64_t count() const { return count_; }

 private:
  // Until `deadline` on the host's wall clock, or for `timeout` on its clock.
  bool AcquireUntil(absl::Time deadline, absl::Duration timeout, SourceLocation where);

  int64_t count_;
  internal::WaitQueue waiters_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_SEMAPHORE_H_
