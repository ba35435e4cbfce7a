#include "posix/internal/files.h"

#include <errno.h>

#include <algorithm>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "sockets/internal/pipe.h"

namespace dsim::posix::internal {

// ---- epoll ------------------------------------------------------------------------------

short EpollFile::PollMask() const {
  for (const Interest& interest : interests_) {
    if (Ready(interest) != 0) return POLLIN | POLLRDNORM;
  }
  return 0;
}

uint32_t EpollFile::Ready(const Interest& interest) const {
  if (stack_->Identity(interest.fd) != interest.identity) return 0;
  return ReadyOpen(interest);
}

uint32_t EpollFile::ReadyOpen(const Interest& interest) const {
  if (interest.disabled) return 0;
  const uint32_t mask = static_cast<uint16_t>(stack_->Readiness(interest.fd));
  // poll and epoll share bit values; EPOLLERR and EPOLLHUP are always reported.
  const uint32_t wanted = (interest.events & ~(EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE |
                                               EPOLLWAKEUP)) | EPOLLERR | EPOLLHUP;
  const uint32_t ready = mask & wanted;
  if (ready == 0) return 0;
  if ((interest.events & EPOLLET) && !interest.pending &&
      stack_->Edges(interest.fd) == interest.seen_edges) {
    return 0;
  }
  return ready;
}

int EpollFile::Control(int op, int fd, const epoll_event* event) {
  if (!stack_->IsOpen(fd)) return -EBADF;
  if (stack_->LookupFile(fd) == this) return -EINVAL;
  const void* identity = stack_->Identity(fd);
  auto it = std::find_if(interests_.begin(), interests_.end(), [&](const Interest& i) {
    return i.fd == fd && i.identity == identity;
  });
  switch (op) {
    case EPOLL_CTL_ADD:
      if (it != interests_.end()) return -EEXIST;
      if (event == nullptr) return -EFAULT;
      interests_.push_back(Interest{fd, identity, event->events, event->data,
                                    stack_->Edges(fd), true, false});
      break;
    case EPOLL_CTL_MOD:
      if (it == interests_.end()) return -ENOENT;
      if (event == nullptr) return -EFAULT;
      if (event->events & EPOLLEXCLUSIVE) return -EINVAL;  // As Linux: not with MOD.
      it->events = event->events;
      it->data = event->data;
      it->pending = true;
      it->disabled = false;
      it->seen_edges = stack_->Edges(fd);
      break;
    case EPOLL_CTL_DEL:
      if (it == interests_.end()) return -ENOENT;
      interests_.erase(it);
      break;
    default:
      return -EINVAL;
  }
  NotifyReadiness();  // Waiters in epoll_wait re-evaluate.
  return 0;
}

int EpollFile::Collect(epoll_event* events, int max) {
  // One pass, no allocation once warm: entries whose description is gone are dropped,
  // the ones not reported keep their order, and the reported ones go to the back in the
  // order reported (reported_ is scratch kept between calls).
  int count = 0;
  size_t kept = 0;
  reported_.clear();
  for (size_t i = 0; i < interests_.size(); ++i) {
    Interest& interest = interests_[i];
    if (stack_->Identity(interest.fd) != interest.identity) continue;  // Dropped.
    const uint32_t ready = count < max ? ReadyOpen(interest) : 0;
    if (ready == 0) {
      if (kept != i) interests_[kept] = interest;
      ++kept;
      continue;
    }
    events[count].events = ready;
    events[count].data = interest.data;
    ++count;
    interest.pending = false;
    // Only edge-triggered entries compare edges (EPOLL_CTL_MOD re-reads them).
    if (interest.events & EPOLLET) interest.seen_edges = stack_->Edges(interest.fd);
    if (interest.events & EPOLLONESHOT) interest.disabled = true;
    reported_.push_back(interest);
  }
  // Entries before `kept` are the kept ones, compacted; the reported ones follow.
  interests_.erase(interests_.begin() + static_cast<ptrdiff_t>(kept + reported_.size()),
                   interests_.end());  // Only shrinks (drops).
  for (size_t j = 0; j < reported_.size(); ++j) interests_[kept + j] = reported_[j];
  return count;
}

int EpollFile::Wait(epoll_event* events, int max, absl::Time deadline, SourceLocation where) {
  if (max <= 0) return -EINVAL;
  Scheduler& scheduler = *Scheduler::Current();
  for (;;) {
    const int count = Collect(events, max);
    if (count > 0 || scheduler.Now() >= deadline) return count;
    absl::InlinedVector<int, 16> fds;  // On the stack: another task may wait here too.
    for (const Interest& interest : interests_) fds.push_back(interest.fd);
    // epoll_ctl from another task wakes this wait too (Control notifies readiness). The
    // caller keeps this file alive while it waits.
    stack_->WaitForAny(fds, deadline, "epoll_wait", where, &readable());
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
  NotifyReadiness();
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

}  // namespace dsim::posix::internal
