// WaitGroup: waits for a collection of tasks to finish, like Go's sync.WaitGroup.
//
// Example:
//
//   dsim::WaitGroup done;
//   for (int i = 0; i < 3; ++i) {
//     done.Add(1);
//     dsim::Spawn(absl::StrCat("worker-", i), [&] { Work(); done.Done(); });
//   }
//   done.Wait();  // in the spawning task: returns once all three called Done
//
// (To wait for one task, TaskHandle::Join does the same.) A counter that goes negative
// is a misuse error. Done may be called from a task or a timer callback.
#ifndef DSIM_SCHEDULER_WAIT_GROUP_H_
#define DSIM_SCHEDULER_WAIT_GROUP_H_

#include <cstdint>

#include "absl/time/time.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/source_location.h"

namespace dsim {

class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // Adds `delta` (may be negative) to the counter; waiters wake when it reaches zero.
  void Add(int64_t delta);
  void Done() { Add(-1); }
  // Blocks until the counter is zero.
  void Wait(SourceLocation where = SourceLocation::Current());
  // As Wait, giving up after `timeout`. Returns true if the counter reached zero.
  bool WaitWithTimeout(absl::Duration timeout, SourceLocation where = SourceLocation::Current());
  int64_t count() const { return count_; }

 private:
  int64_t count_ = 0;
  internal::WaitQueue waiters_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_WAIT_GROUP_H_
