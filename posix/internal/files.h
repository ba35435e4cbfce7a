// Descriptor kinds //posix adds to a host's table (see sockets/internal/open_file.h):
// epoll instances and timerfds on the virtual clock.
#ifndef DSIM_POSIX_INTERNAL_FILES_H_
#define DSIM_POSIX_INTERNAL_FILES_H_

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "posix/internal/clock.h"
#include "scheduler/scheduler.h"
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"

namespace dsim::posix::internal {

using ::dsim::internal::HostStack;
using ::dsim::internal::OpenFile;

// epoll(7), with Linux's ready list. Each entry watches the wait queues of its
// description (WaitQueue::Watch, as ep_poll_callback hooks the file's wait queue): a
// wakeup whose key matches the entry's events puts it on the back of the ready list
// unless it is already there, and wakes the epoll's own waiters. epoll_wait then looks
// only at the ready list, from the front (ep_send_events): an entry no longer ready
// leaves it; a reported level-triggered entry goes back on the end, so a small
// maxevents still reaches every ready descriptor; edge-triggered and one-shot entries
// leave until their next wakeup; entries not reached keep their place at the front.
// So the order is Linux's: entries in the order of their wakeups. Edge-triggered
// (EPOLLET) entries report when the descriptor's readiness changed (an edge) since they
// were last reported, or once after ADD/MOD if ready then; EPOLLONESHOT disables an
// entry after one report until EPOLL_CTL_MOD. EPOLLEXCLUSIVE is accepted and has no
// effect (every waiter is woken; each wakeup is a scheduler decision anyway). Entries
// are keyed on (descriptor number, open file description) as Linux's are: closing the
// number keeps the entry while a dup of the description stays open, and the entry goes
// when the description's last descriptor closes.
class EpollFile final : public OpenFile {
 public:
  ~EpollFile() override;
  // kind() answers this very array: comparing the pointer tells an EpollFile apart with
  // one virtual call (epoll_wait asks on every call).
  static constexpr char kKind[] = "epoll";
  const char* kind() const override { return kKind; }
  short PollMask() const override;
  // ep_eventpoll_ioctl (Linux 6.9+) answers requests other than its busy-poll ones with
  // EINVAL (FIONBIO and FIOCLEX never reach it).
  int Ioctl(HostStack& stack, unsigned long request, void*) override {
    return stack.Fail(EINVAL, absl::StrCat("ioctl: request ", request, " on an epoll descriptor"));
  }

  int Control(int op, int fd, const epoll_event* event);  // 0 or a negative errno.
  // Fills up to `max` events; blocks up to `deadline`. A count or a negative errno.
  // The caller holds a Pin on this file across the call.
  int Wait(epoll_event* events, int max, absl::Time deadline, SourceLocation where);

  // Keeps the instance alive across a blocking epoll_wait (another task may close its
  // last descriptor meanwhile). Instances are made with Create, whose deleter waits for
  // the last pin: a plain count, where a shared_ptr copy would cost two atomic
  // operations on every epoll_wait.
  class Pin {
   public:
    explicit Pin(EpollFile* epoll) : epoll_(epoll) { ++epoll_->pins_; }
    ~Pin() {
      if (--epoll_->pins_ == 0 && epoll_->released_) delete epoll_;
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

   private:
    EpollFile* epoll_;
  };
  static std::shared_ptr<EpollFile> Create(HostStack* stack) {
    return std::shared_ptr<EpollFile>(new EpollFile(stack), &EpollFile::Release);
  }

 private:
  struct Interest;
  // An entry's hook in one wait queue of its description.
  struct Watch : ::dsim::internal::Waiter {
    Interest* interest = nullptr;
  };
  struct Interest {
    EpollFile* epoll;
    int fd;
    const void* identity;
    // The description (one of the two): read directly, as Linux's epitem holds its
    // file; valid while `readable` is linked (a dying description unlinks it).
    const ::dsim::internal::SocketState* socket;
    const OpenFile* file;
    uint32_t events;
    epoll_data_t data;
    uint64_t seen_edges = 0;
    bool pending = true;    // Report once after ADD/MOD if ready (edge-triggered).
    bool disabled = false;  // EPOLLONESHOT fired.
    bool listed = false;    // On the ready list.
    Interest* prev = nullptr;  // Ready list links.
    Interest* next = nullptr;
    Watch readable;  // The description's queues; unlinked (queue null) once it is gone.
    Watch writable;
  };
  explicit EpollFile(HostStack* stack) : OpenFile(O_RDWR), stack_(stack) {}
  // The shared_ptr deleter: deletes now, or at the last Pin's end.
  static void Release(EpollFile* epoll) {
    if (epoll->pins_ > 0) {
      epoll->released_ = true;
    } else {
      delete epoll;
    }
  }
  static void OnWake(::dsim::internal::Waiter* waiter);
  int Collect(epoll_event* events, int max);
  uint32_t Ready(const Interest& interest) const;
  uint64_t Edges(const Interest& interest) const {
    return interest.socket != nullptr ? interest.socket->edges
                                      : interest.file->edges(interest.events);
  }
  // The description was freed (its queues unlinked the entry), or its last descriptor
  // closed (Linux releases the file then, and the entry with it).
  bool Gone(const Interest& interest) const {
    if (interest.readable.queue == nullptr) return true;
    return interest.socket != nullptr ? interest.socket->descriptors == 0
                                      : interest.file->descriptor_count() == 0;
  }
  void Enqueue(Interest* interest);
  void Dequeue(Interest* interest);
  // Unhooks and deletes an entry (EPOLL_CTL_DEL, or its description is gone).
  void Forget(Interest* interest);
  static void Unwatch(Interest* interest);

  HostStack* stack_;
  std::vector<std::unique_ptr<Interest>> interests_;  // In registration order.
  Interest* ready_head_ = nullptr;
  Interest* ready_tail_ = nullptr;
  bool notifying_ = false;  // Waking this epoll's waiters (nested epolls: no cycles).
  int pins_ = 0;
  bool released_ = false;  // The last reference went while pinned.
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

// /dev/urandom and /dev/random opened by a task: reads draw from the simulation's
// strategy, so they replay by seed like getrandom(); writes are accepted and change
// nothing (Linux mixes them into its pool without crediting entropy); reads never block
// (Linux's /dev/random stops blocking once the pool is initialized).
class RandomDevice final : public OpenFile {
 public:
  RandomDevice(Scheduler* scheduler, const char* name, int status_flags)
      : OpenFile(status_flags), scheduler_(scheduler), name_(name) {}
  const char* kind() const override { return name_; }
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  ssize_t Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  off_t Seek(off_t, int) override { return 0; }  // noop_llseek.
  short PollMask() const override { return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM; }

 private:
  Scheduler* scheduler_;
  const char* name_;
};

// The calling task's host stack for a call that creates a descriptor; without a host
// the run fails (a real descriptor would escape) and null is returned, errno EPERM.
HostStack* HostOrFail(Scheduler& scheduler, const char* call);

// open(), openat() and fopen() of "/dev/urandom" or "/dev/random" from a task: a
// simulated RandomDevice descriptor, or -1 with errno. kNotADevice for other paths.
inline constexpr int kNotADevice = -2;
int OpenDevice(Scheduler& scheduler, const char* call, const char* path, int flags);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_FILES_H_
