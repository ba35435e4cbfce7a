// Notification: a one-shot event, shaped like absl::Notification.
//
// Example:
//
//   dsim::Notification server_ready;
//   scheduler.Spawn("server", [&] { Listen(); server_ready.Notify(); Serve(); });
//   scheduler.Spawn("client", [&] {
//     if (!server_ready.WaitForNotificationWithTimeout(absl::Seconds(5))) return;  // gave up
//     Connect();
//   });
//
// Notify may be called once, from a task or a timer callback; a second Notify is a
// misuse error, as in Abseil. Waiting is a scheduling point.
#ifndef DSIM_SCHEDULER_NOTIFICATION_H_
#define DSIM_SCHEDULER_NOTIFICATION_H_

#include "absl/time/time.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/source_location.h"

namespace dsim {

class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  // Wakes every waiter; later waits return at once.
  void Notify();
  bool HasBeenNotified() const { return notified_; }
  // Blocks until Notify.
  void WaitForNotification(SourceLocation where = SourceLocation::Current());
  // Blocks until Notify or `timeout` of virtual time. Returns true if notified.
  bool WaitForNotificationWithTimeout(absl::Duration timeout,
                                      SourceLocation where = SourceLocation::Current());
  // Blocks until Notify or `deadline`. Returns true if notified.
  bool WaitForNotificationWithDeadline(absl::Time deadline,
                                       SourceLocation where = SourceLocation::Current());

 private:
  bool notified_ = false;
  internal::WaitQueue waiters_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_NOTIFICATION_H_
