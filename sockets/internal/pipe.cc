#include "sockets/internal/pipe.h"

#include <limits.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "sockets/internal/stack.h"

namespace dsim::internal {

size_t IovecLength(absl::Span<const iovec> iov) {
  size_t total = 0;
  for (const iovec& v : iov) total += v.iov_len;
  return total;
}

size_t GatherIovec(absl::Span<const iovec> iov, char* out, size_t length) {
  size_t done = 0;
  for (const iovec& v : iov) {
    if (done == length) break;
    const size_t n = std::min(v.iov_len, length - done);
    std::memcpy(out + done, v.iov_base, n);
    done += n;
  }
  return done;
}

size_t ScatterIovec(absl::Span<const iovec> iov, const char* in, size_t length) {
  size_t done = 0;
  for (const iovec& v : iov) {
    if (done == length) break;
    const size_t n = std::min(v.iov_len, length - done);
    std::memcpy(v.iov_base, in + done, n);
    done += n;
  }
  return done;
}

// ---- Pipes ---------------------------------------------------------------------------

void PipeEnd::MakePair(int status_flags, std::shared_ptr<PipeEnd>* read_end,
                       std::shared_ptr<PipeEnd>* write_end) {
  auto buffer = std::make_shared<PipeBuffer>();
  const int nonblock = status_flags & O_NONBLOCK;
  *read_end = std::make_shared<PipeEnd>(buffer, true, O_RDONLY | nonblock);
  *write_end = std::make_shared<PipeEnd>(buffer, false, O_WRONLY | nonblock);
  buffer->read_end = read_end->get();
  buffer->write_end = write_end->get();
}

PipeEnd::PipeEnd(std::shared_ptr<PipeBuffer> buffer, bool read_side, int status_flags)
    : OpenFile(status_flags), buffer_(std::move(buffer)), read_side_(read_side) {}

void PipeEnd::NotifyPeer(short key) {
  PipeEnd* peer = read_side_ ? buffer_->write_end : buffer_->read_end;
  if (peer != nullptr) peer->NotifyReadiness(key);
}

size_t PipeBuffer::Append(const char* bytes, size_t remaining, size_t total,
                          bool first_step) {
  size_t done = 0;
  // pipe_write(): the part of the length past a page multiple merges into the last page
  // when it fits there (only at the start of the write).
  const size_t tail = total % kPageBytes;
  if (first_step && tail != 0 && !pages.empty()) {
    Page& last = pages.back();
    if (last.offset + last.length + tail <= kPageBytes) {
      data.Append(bytes, tail);
      last.length += tail;
      done = tail;
    }
  }
  while (done < remaining && !full()) {
    const size_t n = std::min(kPageBytes, remaining - done);
    data.Append(bytes + done, n);
    pages.push_back(Page{0, n});
    done += n;
  }
  return done;
}

void PipeBuffer::Consume(size_t length) {
  data.Consume(length);
  while (length > 0) {
    Page& front = pages.front();
    const size_t n = std::min(length, front.length);
    front.offset += n;
    front.length -= n;
    length -= n;
    if (front.length == 0) pages.pop_front();
  }
}

ssize_t PipeEnd::Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  const size_t want = IovecLength(iov);
  for (;;) {
    if (!buffer_->data.empty()) {
      const size_t n = std::min(want, buffer_->data.size());
      std::string bytes(n, '\0');
      buffer_->data.Peek(0, bytes.data(), n);
      const bool was_full = buffer_->full();
      buffer_->Consume(n);
      ScatterIovec(iov, bytes.data(), n);
      // pipe_read wakes writers (and their epoll entries) only if the pipe was full: a
      // writer blocks only then.
      if (was_full) NotifyPeer(POLLOUT);
      return static_cast<ssize_t>(n);
    }
    if (buffer_->write_end == nullptr) return 0;  // End of file: no writer left.
    if (want == 0) return 0;
    if (nonblocking()) {
      return stack.Fail(EAGAIN, "read: the pipe is empty and O_NONBLOCK is set");
    }
    readable().Wait("read(pipe)", where);
  }
}

ssize_t PipeEnd::Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  const size_t total = IovecLength(iov);
  std::string bytes(total, '\0');
  GatherIovec(iov, bytes.data(), total);
  size_t written = 0;
  for (;;) {
    if (buffer_->read_end == nullptr) {
      if (written > 0) return static_cast<ssize_t>(written);
      return stack.Fail(EPIPE, "write: the pipe has no reader (SIGPIPE is not raised)");
    }
    if (written == total) return static_cast<ssize_t>(written);
    const size_t n = buffer_->Append(bytes.data() + written, total - written, total,
                                     /*first_step=*/written == 0);
    if (n > 0) {
      written += n;
      NotifyPeer(POLLIN);
      continue;
    }
    if (nonblocking()) {
      if (written > 0) return static_cast<ssize_t>(written);
      // pipe_write wakes the readers on the way out even when it wrote nothing ("Epoll
      // nonsensically wants a wakeup"): an edge-triggered reader entry reports again.
      NotifyPeer(POLLIN);
      return stack.Fail(EAGAIN, "write: the pipe is full and O_NONBLOCK is set");
    }
    writable().Wait("write(pipe)", where);
  }
}

short PipeEnd::PollMask() const {
  short mask = 0;
  if (read_side_) {
    if (!buffer_->data.empty()) mask |= POLLIN | POLLRDNORM;
    if (buffer_->write_end == nullptr) mask |= POLLHUP;
  } else {
    if (!buffer_->full()) mask |= POLLOUT | POLLWRNORM;
    if (buffer_->read_end == nullptr) mask |= POLLERR;
  }
  return mask;
}

int PipeEnd::Ioctl(HostStack& stack, unsigned long request, void* arg) {
  if (request != FIONREAD) return -ENOTTY;
  if (arg == nullptr) return stack.Fail(EFAULT, "ioctl(FIONREAD): the argument pointer is null");
  const int count = static_cast<int>(buffer_->data.size());  // Either end (pipe_ioctl).
  std::memcpy(arg, &count, sizeof(count));
  return 0;
}

void PipeEnd::OnLastClose() {
  (read_side_ ? buffer_->read_end : buffer_->write_end) = nullptr;
  NotifyPeer();
  NotifyReadiness();  // Tasks still blocked on this end re-check.
}

// ---- eventfd -------------------------------------------------------------------------

ssize_t EventFd::Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  if (IovecLength(iov) < sizeof(uint64_t)) {
    return stack.Fail(EINVAL, "read: an eventfd read needs an 8-byte buffer");
  }
  while (count_ == 0) {
    if (nonblocking()) return stack.Fail(EAGAIN, "read: the eventfd counter is 0");
    readable().Wait("read(eventfd)", where);
  }
  const uint64_t value = semaphore_ ? 1 : count_;
  count_ -= value;
  ScatterIovec(iov, reinterpret_cast<const char*>(&value), sizeof(value));
  NotifyReadiness(POLLOUT);  // eventfd_read: wake_up_locked_poll(..., EPOLLOUT).
  return sizeof(value);
}

ssize_t EventFd::Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  // Linux 6.x's eventfd_write takes exactly 8 bytes (reads take at least 8).
  if (IovecLength(iov) != sizeof(uint64_t)) {
    return stack.Fail(EINVAL, "write: an eventfd write takes exactly 8 bytes");
  }
  uint64_t value = 0;
  GatherIovec(iov, reinterpret_cast<char*>(&value), sizeof(value));
  if (value == UINT64_MAX) return stack.Fail(EINVAL, "write: 0xffffffffffffffff to an eventfd");
  while (kMaxCount - count_ < value) {
    if (nonblocking()) return stack.Fail(EAGAIN, "write: the eventfd counter would overflow");
    writable().Wait("write(eventfd)", where);
  }
  count_ += value;
  NotifyReadiness(POLLIN);  // eventfd_write wakes with EPOLLIN, even for a 0 added.
  return sizeof(value);
}

short EventFd::PollMask() const {
  short mask = 0;
  if (count_ > 0) mask |= POLLIN | POLLRDNORM;
  if (count_ < kMaxCount) mask |= POLLOUT | POLLWRNORM;
  return mask;
}

}  // namespace dsim::internal
