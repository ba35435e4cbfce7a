// Descriptor kinds //posix adds to a host's table (see sockets/internal/open_file.h):
// epoll instances and timerfds on the virtual clock.
#ifndef DSIM_POSIX_INTERNAL_FILES_H_
#define DSIM_POSIX_INTERNAL_FILES_H_

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <vector>

#include "posix/internal/clock.h"
#include "scheduler/scheduler.h"
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"

namespace dsim::posix::internal {

using ::dsim::internal::HostStack;
using ::dsim::internal::OpenFile;

// epoll(7). Level-triggered entries report while ready; edge-triggered (EPOLLET) ones
// when the descriptor's readiness changed (an edge) since they were last reported, or
// once after ADD/MOD if ready then; EPOLLONESHOT disables an entry after one report
// until EPOLL_CTL_MOD. Ready entries are reported in registration order, and a reported
// entry moves to the back, so a small maxevents still reaches every ready descriptor
// (Linux rotates its ready list the same way). EPOLLEXCLUSIVE is accepted and has no
// effect (every waiter is woken; each wakeup is a scheduler decision anyway). An entry
// whose descriptor was closed (or whose number now names another description) is
// dropped, as Linux drops it when the description's last descriptor closes.
class EpollFile final : public OpenFile {
 public:
  explicit EpollFile(HostStack* stack) : OpenFile(O_RDWR), stack_(stack) {}
  const char* kind() const override { return "epoll"; }
  short PollMask() const override;

  int Control(int op, int fd, const epoll_event* event);  // 0 or a negative errno.
  // Fills up to `max` events; blocks up to `deadline`. A count or a negative errno.
  // The caller holds a reference to this file (FileRef) across the call.
  int Wait(epoll_event* events, int max, absl::Time deadline, SourceLocation where);

 private:
  struct Interest {
    int fd;
    const void* identity;
    uint32_t events;
    epoll_data_t data;
    uint64_t seen_edges;
    bool pending;   // Check readiness once after ADD/MOD (edge-triggered).
    bool disabled;  // EPOLLONESHOT fired.
  };
  int Collect(epoll_event* events, int max);
  uint32_t Ready(const Interest& interest) const;
  // Ready() for an entry whose description is known to be still open.
  uint32_t ReadyOpen(const Interest& interest) const;

  HostStack* stack_;
  std::vector<Interest> interests_;
  std::vector<Interest> reported_;  // Collect's scratch, kept to avoid allocating.
};

// timerfd_create(2) on the host's clock (scheduler/clock.h). Relative values and
// intervals last their length on that clock. An absolute CLOCK_REALTIME (or TAI) timer
// stays on the wall clock: a step moves it, and with TFD_TIMER_CANCEL_ON_SET a step makes
// the next read fail with ECANCELED (and the descriptor readable), as in Linux.
class TimerFd final : public OpenFile {
 public:
  TimerFd(Scheduler* scheduler, GroupId group, ClockKind clock, int status_flags)
      : OpenFile(status_flags), scheduler_(scheduler), group_(group), clock_(clock) {}
  ~TimerFd() override {
    Disarm();
    Unwatch();
  }
  const char* kind() const override { return "timerfd"; }
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  short PollMask() const override {
    return expirations_ > 0 || canceled_ ? (POLLIN | POLLRDNORM) : 0;
  }
  void OnLastClose() override {
    Disarm();
    Unwatch();
  }

  int Set(int flags, const itimerspec* value, itimerspec* old);  // 0 or negative errno.
  void Get(itimerspec* value) const;

 private:
  void Arm(absl::Time when);
  void Disarm();
  void Fire();
  void Unwatch();
  void OnClockChanged(bool stepped);

  Scheduler* scheduler_;
  GroupId group_;
  ClockKind clock_;
  absl::Time next_ = absl::InfiniteFuture();
  // An absolute REALTIME/TAI timer: its next expiry on the host's wall clock.
  bool on_wall_ = false;
  absl::Time next_wall_ = absl::InfiniteFuture();
  bool cancel_on_set_ = false;
  bool canceled_ = false;  // A step happened since; the next read fails with ECANCELED.
  uint64_t watcher_ = 0;
  absl::Duration interval_ = absl::ZeroDuration();
  uint64_t expirations_ = 0;
  TimerId timer_ = kNoTimer;
};

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_FILES_H_
