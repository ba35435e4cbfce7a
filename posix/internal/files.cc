#include "posix/internal/files.h"

#include <errno.h>
#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "scheduler/internal/check.h"
#include "posix/internal/random.h"
#include "posix/internal/state.h"
#include "sockets/internal/pipe.h"

namespace dsim::posix::internal {

// ---- epoll ------------------------------------------------------------------------------

namespace {

// Whether a wakeup with poll `key` concerns an entry waiting for `events`
// (ep_poll_callback's filter). Keys and events are compared by side, as OpenFile::edges
// counts them: any input bit against any input bit, output against output. A key of 0
// (hang-up, error, shutdown, any wakeup of a socket) concerns everyone, and so does an
// entry with neither side (it counts every edge).
bool KeyConcerns(short key, uint32_t events) {
  constexpr uint32_t kIn = POLLIN | POLLRDNORM | POLLPRI;
  constexpr uint32_t kOut = POLLOUT | POLLWRNORM;
  if (key == 0) return true;
  const bool in = (events & kIn) != 0;
  const bool out = (events & kOut) != 0;
  if (in == out && !in) return true;
  if ((key & kIn) && in) return true;
  if ((key & kOut) && out) return true;
  return (key & (POLLERR | POLLHUP)) != 0;
}

}  // namespace

EpollFile::~EpollFile() {
  for (auto& interest : interests_) Unwatch(interest.get());
}

void EpollFile::Unwatch(Interest* interest) {
  for (Watch* watch : {&interest->readable, &interest->writable}) {
    if (watch->queue != nullptr) watch->queue->Remove(watch);
  }
}

// ep_poll_callback: runs inside the WakeAll of a watched description's queue.
DSIM_POSIX_HOT void EpollFile::OnWake(::dsim::internal::Waiter* waiter) {
  Interest& interest = *static_cast<Watch*>(waiter)->interest;
  if (interest.disabled) return;  // A fired EPOLLONESHOT waits for EPOLL_CTL_MOD.
  if (interest.file != nullptr && !KeyConcerns(interest.file->wake_key(), interest.events)) {
    return;
  }
  EpollFile& epoll = *interest.epoll;
  epoll.Enqueue(&interest);
  if (epoll.notifying_) return;  // An epoll nested in itself through others.
  epoll.notifying_ = true;
  epoll.NotifyReadiness(POLLIN);  // Tasks in epoll_wait, and epolls watching this one.
  epoll.notifying_ = false;
}

DSIM_POSIX_HOT void EpollFile::Enqueue(Interest* interest) {
  if (interest->listed) return;
  interest->listed = true;
  interest->prev = ready_tail_;
  interest->next = nullptr;
  (ready_tail_ != nullptr ? ready_tail_->next : ready_head_) = interest;
  ready_tail_ = interest;
}

void EpollFile::Dequeue(Interest* interest) {
  if (!interest->listed) return;
  (interest->prev != nullptr ? interest->prev->next : ready_head_) = interest->next;
  (interest->next != nullptr ? interest->next->prev : ready_tail_) = interest->prev;
  interest->listed = false;
  interest->prev = interest->next = nullptr;
}

void EpollFile::Forget(Interest* interest) {
  Unwatch(interest);
  Dequeue(interest);
  auto it = std::find_if(interests_.begin(), interests_.end(),
                         [&](const auto& i) { return i.get() == interest; });
  interests_.erase(it);
}

// ep_eventpoll_poll: readable when an entry on the ready list is ready.
short EpollFile::PollMask() const {
  for (const Interest* i = ready_head_; i != nullptr; i = i->next) {
    if (!Gone(*i) && Ready(*i) != 0) return POLLIN | POLLRDNORM;
  }
  return 0;
}

// ep_item_poll: the description's readiness, asked directly (not through a descriptor
// number, which may have been closed while a dup keeps the description). The caller
// checked Gone().
DSIM_POSIX_HOT uint32_t EpollFile::Ready(const Interest& interest) const {
  if (interest.disabled) return 0;
  const uint32_t mask = static_cast<uint16_t>(
      interest.socket != nullptr ? stack_->SocketReadiness(*interest.socket)
                                 : interest.file->PollMask());
  // poll and epoll share bit values; EPOLLERR and EPOLLHUP are always reported.
  const uint32_t wanted = (interest.events & ~(EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE |
                                               EPOLLWAKEUP)) | EPOLLERR | EPOLLHUP;
  const uint32_t ready = mask & wanted;
  if (ready == 0) return 0;
  if ((interest.events & EPOLLET) && !interest.pending && Edges(interest) == interest.seen_edges) {
    return 0;
  }
  return ready;
}

int EpollFile::Control(int op, int fd, const epoll_event* event) {
  if (!stack_->IsOpen(fd)) return -EBADF;
  if (stack_->LookupFile(fd) == this) return -EINVAL;
  // do_epoll_ctl: EPOLLEXCLUSIVE is refused with MOD, and with ADD of an epoll
  // descriptor or beside other flags than the wakeup ones, before the lookup.
  if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event != nullptr &&
      (event->events & EPOLLEXCLUSIVE)) {
    constexpr uint32_t kExclusiveOk = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP |
                                      EPOLLET | EPOLLEXCLUSIVE;
    if (op == EPOLL_CTL_MOD) return -EINVAL;
    if (dynamic_cast<EpollFile*>(stack_->LookupFile(fd)) != nullptr ||
        (event->events & ~kExclusiveOk) != 0) {
      return -EINVAL;
    }
  }
  // Entries whose description went away since (its last descriptor closed) are gone,
  // as Linux drops them when the file is released. Checked before any comparison: the
  // address of a freed description may be a new one's.
  for (size_t i = 0; i < interests_.size();) {
    if (Gone(*interests_[i])) {
      Forget(interests_[i].get());
    } else {
      ++i;
    }
  }
  const void* identity = stack_->Identity(fd);
  auto it = std::find_if(interests_.begin(), interests_.end(), [&](const auto& i) {
    return i->fd == fd && i->identity == identity;
  });
  Interest* interest = it == interests_.end() ? nullptr : it->get();
  switch (op) {
    case EPOLL_CTL_ADD: {
      if (interest != nullptr) return -EEXIST;
      if (event == nullptr) return -EFAULT;
      ::dsim::internal::WaitQueue* readable;
      ::dsim::internal::WaitQueue* writable;
      ::dsim::internal::SocketState* socket;
      OpenFile* file;
      const bool open = stack_->ReadinessQueues(fd, &readable, &writable, &socket, &file);
      DSIM_CHECK(open);
      interests_.push_back(std::make_unique<Interest>());
      interest = interests_.back().get();
      interest->epoll = this;
      interest->fd = fd;
      interest->identity = identity;
      interest->socket = socket;
      interest->file = file;
      interest->events = event->events;
      interest->data = event->data;
      interest->seen_edges = Edges(*interest);
      for (Watch* watch : {&interest->readable, &interest->writable}) {
        watch->interest = interest;
        watch->notify = &EpollFile::OnWake;
      }
      readable->Watch(&interest->readable);
      writable->Watch(&interest->writable);
      break;
    }
    case EPOLL_CTL_MOD:
      if (interest == nullptr) return -ENOENT;
      if (event == nullptr) return -EFAULT;
      interest->events = event->events;
      interest->data = event->data;
      interest->pending = true;
      interest->disabled = false;
      interest->seen_edges = Edges(*interest);
      break;
    case EPOLL_CTL_DEL:
      if (interest == nullptr) return -ENOENT;
      Forget(interest);
      NotifyReadiness();  // Waiters in epoll_wait re-evaluate.
      return 0;
    default:
      return -EINVAL;
  }
  // ep_insert and ep_modify: an entry ready now joins the ready list at once.
  if (Ready(*interest) != 0) Enqueue(interest);
  NotifyReadiness();  // Waiters in epoll_wait re-evaluate.
  return 0;
}

// ep_send_events: the ready list is taken whole; entries are reported from its front
// until `max`; those not reached go back to the front, ahead of the reported
// level-triggered entries, which rejoin the back.
DSIM_POSIX_HOT int EpollFile::Collect(epoll_event* events, int max) {
  Interest* scan = ready_head_;
  Interest* const scan_tail = ready_tail_;
  ready_head_ = ready_tail_ = nullptr;
  int count = 0;
  while (scan != nullptr && count < max) {
    Interest* interest = scan;
    scan = interest->next;
    interest->listed = false;
    interest->prev = interest->next = nullptr;
    if (__builtin_expect(Gone(*interest), 0)) {
      Forget(interest);
      continue;
    }
    const uint32_t mask = Ready(*interest);
    if (mask == 0) continue;
    events[count].events = mask;
    events[count].data = interest->data;
    ++count;
    interest->pending = false;
    if (interest->events & EPOLLET) {
      interest->seen_edges = Edges(*interest);
    }
    if (interest->events & EPOLLONESHOT) {
      interest->disabled = true;
    } else if (!(interest->events & EPOLLET)) {
      Enqueue(interest);  // Level-triggered: back on the end.
    }
  }
  if (scan != nullptr) {
    // Not reached: they keep their place (and `listed`), in front of the re-queued.
    scan->prev = nullptr;
    scan_tail->next = ready_head_;
    (ready_head_ != nullptr ? ready_head_->prev : ready_tail_) = scan_tail;
    ready_head_ = scan;
  }
  return count;
}

DSIM_POSIX_HOT int EpollFile::Wait(epoll_event* events, int max, absl::Time deadline,
                                   SourceLocation where) {
  if (max <= 0) return -EINVAL;
  for (;;) {
    const int count = Collect(events, max);
    if (count > 0 || Scheduler::Current()->Now() >= deadline) return count;
    // Woken by a watched description (OnWake), epoll_ctl, or the deadline. The caller
    // keeps this file alive while it waits.
    readable().Wait("epoll_wait", where, deadline);
  }
}

// ---- timerfd ---------------------------------------------------------------------------

void TimerFd::Arm(absl::Time when) {
  Disarm();
  next_ = when;
  timer_ = scheduler_->AddTimer(when, [this] {
    timer_ = kNoTimer;
    Fire();
  }, group_);
}

void TimerFd::Disarm() {
  if (timer_ != kNoTimer) scheduler_->CancelTimer(timer_);
  timer_ = kNoTimer;
}

void TimerFd::Unwatch() {
  if (watcher_ != 0) scheduler_->RemoveClockWatcher(watcher_);
  watcher_ = 0;
}

void TimerFd::OnClockChanged(bool stepped) {
  if (stepped && cancel_on_set_ && !canceled_) {
    canceled_ = true;
    NotifyReadiness();
  }
  if (on_wall_ && timer_ != kNoTimer) Arm(scheduler_->TrueTimeOfWall(group_, next_wall_));
}

void TimerFd::Fire() {
  const absl::Time now = scheduler_->Now();
  uint64_t count = 1;
  if (on_wall_ && interval_ > absl::ZeroDuration()) {
    // Expiries stay on the wall clock: count the intervals it has passed.
    const absl::Time wall = scheduler_->WallNow(group_);
    if (wall > next_wall_) count += static_cast<uint64_t>((wall - next_wall_) / interval_);
    next_wall_ += interval_ * static_cast<int64_t>(count);
    Arm(scheduler_->TrueTimeOfWall(group_, next_wall_));
  } else if (interval_ > absl::ZeroDuration()) {
    // Expirations missed while the host was paused count too, as the kernel's overrun.
    // The interval is on the host's clock (scheduler/clock.h).
    const absl::Duration interval = scheduler_->TrueDurationOfLocal(group_, interval_);
    count += static_cast<uint64_t>((now - next_) / interval);
    next_ += interval * static_cast<int64_t>(count);
    Arm(next_);
  } else {
    next_ = absl::InfiniteFuture();
  }
  expirations_ += count;
  NotifyReadiness(POLLIN);
}

int TimerFd::Set(int flags, const itimerspec* value, itimerspec* old) {
  if ((flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) != 0) return -EINVAL;
  auto valid = [](const timespec& t) { return t.tv_nsec >= 0 && t.tv_nsec < 1000000000 && t.tv_sec >= 0; };
  if (!valid(value->it_value) || !valid(value->it_interval)) return -EINVAL;
  if (old != nullptr) Get(old);
  Disarm();
  Unwatch();
  expirations_ = 0;
  canceled_ = false;
  const bool wall_clock = clock_ == ClockKind::kRealtime || clock_ == ClockKind::kTai;
  on_wall_ = wall_clock && (flags & TFD_TIMER_ABSTIME) != 0;
  cancel_on_set_ = on_wall_ && (flags & TFD_TIMER_CANCEL_ON_SET) != 0;
  interval_ = absl::DurationFromTimespec(value->it_interval);
  const absl::Duration initial = absl::DurationFromTimespec(value->it_value);
  if (on_wall_) {  // Disarmed too: a cancelable one still reports steps.
    next_wall_ = absl::UnixEpoch() + initial -
                 (clock_ == ClockKind::kTai ? absl::Seconds(37) : absl::ZeroDuration());
    watcher_ = scheduler_->AddClockWatcher(group_, [this](bool stepped) { OnClockChanged(stepped); });
  }
  if (initial == absl::ZeroDuration()) {
    next_ = absl::InfiniteFuture();
    return 0;
  }
  // A relative value lasts its length on the host's clock.
  Arm(flags & TFD_TIMER_ABSTIME
          ? InstantOf(*scheduler_, clock_, value->it_value, /*for_wait=*/false)
          : scheduler_->Now() + scheduler_->TrueDurationOfLocal(group_, initial));
  return 0;
}

void TimerFd::Get(itimerspec* value) const {
  value->it_interval = absl::ToTimespec(interval_);
  if (next_ == absl::InfiniteFuture()) {
    value->it_value = timespec{0, 0};
  } else {
    // What is left on the timer's own clock.
    const absl::Duration left = std::max(
        on_wall_ ? next_wall_ - scheduler_->WallNow(group_)
                 : scheduler_->LocalDurationOfTrue(group_, next_ - scheduler_->Now()),
        absl::Nanoseconds(1));
    value->it_value = absl::ToTimespec(left);
  }
}

ssize_t TimerFd::Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  if (dsim::internal::IovecLength(iov) < sizeof(uint64_t)) {
    return stack.Fail(EINVAL, "read: a timerfd read needs an 8-byte buffer");
  }
  while (expirations_ == 0 && !canceled_) {
    if (nonblocking()) return stack.Fail(EAGAIN, "read: the timerfd has not expired");
    readable().Wait("read(timerfd)", where);
  }
  if (canceled_) {  // TFD_TIMER_CANCEL_ON_SET and the clock was stepped (timerfd_read).
    canceled_ = false;
    expirations_ = 0;
    return stack.Fail(ECANCELED, "read: the timerfd's clock was stepped");
  }
  const uint64_t value = expirations_;
  expirations_ = 0;
  dsim::internal::ScatterIovec(iov, reinterpret_cast<const char*>(&value), sizeof(value));
  return sizeof(value);
}

// ---- /dev/urandom, /dev/random -------------------------------------------------------

ssize_t RandomDevice::Read(HostStack&, absl::Span<const iovec> iov, SourceLocation) {
  size_t total = 0;
  for (const iovec& v : iov) {
    if (v.iov_len == 0) continue;
    FillRandom(*scheduler_, v.iov_base, v.iov_len, 0);
    total += v.iov_len;
  }
  return static_cast<ssize_t>(total);
}

ssize_t RandomDevice::Write(HostStack&, absl::Span<const iovec> iov, SourceLocation) {
  return static_cast<ssize_t>(::dsim::internal::IovecLength(iov));
}

int OpenDevice(Scheduler& scheduler, const char* call, const char* path, int flags) {
  if (path == nullptr) return kNotADevice;
  const char* name = nullptr;
  if (std::strcmp(path, "/dev/urandom") == 0) name = "/dev/urandom";
  if (std::strcmp(path, "/dev/random") == 0) name = "/dev/random";
  if (name == nullptr) return kNotADevice;
  HostStack* stack = HostOrFail(scheduler, call);
  if (stack == nullptr) return -1;
  if (flags & (O_DIRECTORY | O_TMPFILE)) {
    errno = (flags & O_DIRECTORY) ? ENOTDIR : EINVAL;
    return -1;
  }
  if (::dsim::internal::EnterHost(call) == nullptr) return -1;
  const int status = (flags & O_ACCMODE) | (flags & (O_NONBLOCK | O_APPEND));
  const int fd = stack->InstallFile(std::make_shared<RandomDevice>(&scheduler, name, status),
                                    (flags & O_CLOEXEC) != 0);
  if (fd < 0) {
    errno = -fd;
    return -1;
  }
  return fd;
}

}  // namespace dsim::posix::internal
