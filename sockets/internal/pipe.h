// Pipe ends and eventfds as OpenFiles (see open_file.h).
#ifndef DSIM_SOCKETS_INTERNAL_PIPE_H_
#define DSIM_SOCKETS_INTERNAL_PIPE_H_

#include <cstdint>
#include <deque>
#include <memory>

#include "sockets/internal/byte_queue.h"
#include "sockets/internal/open_file.h"

namespace dsim::internal {

// Copies from `iov` into `out` up to `length` bytes; returns how many.
size_t GatherIovec(absl::Span<const iovec> iov, char* out, size_t length);
// Copies `length` bytes of `in` into `iov`; returns how many fit.
size_t ScatterIovec(absl::Span<const iovec> iov, const char* in, size_t length);
size_t IovecLength(absl::Span<const iovec> iov);

class PipeEnd;

// The buffer both ends share. It is accounted as Linux's is: 16 slots of one page each
// (65,536 bytes), a write first tops up the last page with the part of its length past
// a page multiple (if that part fits there), then fills fresh pages; the pipe is full
// when every slot holds a page. So how much a nonblocking writer gets in before EAGAIN
// matches the kernel's (64,000 bytes in 1,000-byte writes, not 65,536).
struct PipeBuffer {
  static constexpr size_t kPageBytes = 4096;
  static constexpr size_t kSlots = 16;  // Linux's default: 65,536 bytes.
  struct Page {
    size_t offset = 0;  // Where the unread bytes start in the page.
    size_t length = 0;  // Unread bytes.
  };
  ByteQueue data;
  std::deque<Page> pages;
  PipeEnd* read_end = nullptr;   // Null once its last descriptor closed.
  PipeEnd* write_end = nullptr;

  bool full() const { return pages.size() >= kSlots; }
  // Appends what a write of `total` bytes with `remaining` left can add now; returns it.
  size_t Append(const char* bytes, size_t remaining, size_t total, bool first_step);
  void Consume(size_t length);
};

class PipeEnd final : public OpenFile {
 public:
  // Makes both ends; `status_flags` may hold O_NONBLOCK.
  static void MakePair(int status_flags, std::shared_ptr<PipeEnd>* read_end,
                       std::shared_ptr<PipeEnd>* write_end);

  PipeEnd(std::shared_ptr<PipeBuffer> buffer, bool read_side, int status_flags);
  const char* kind() const override { return "pipe"; }
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  ssize_t Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  short PollMask() const override;
  void OnLastClose() override;
  int Ioctl(HostStack& stack, unsigned long request, void* arg) override;  // FIONREAD.

 private:
  // Wakes the other end; `key` as OpenFile::NotifyReadiness.
  void NotifyPeer(short key = 0);

  std::shared_ptr<PipeBuffer> buffer_;
  bool read_side_;
};

class EventFd final : public OpenFile {
 public:
  static constexpr uint64_t kMaxCount = 0xfffffffffffffffe;
  EventFd(uint64_t initial, bool semaphore, int status_flags)
      : OpenFile(status_flags), count_(initial), semaphore_(semaphore) {}
  const char* kind() const override { return "eventfd"; }
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  ssize_t Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  short PollMask() const override;

 private:
  uint64_t count_;
  bool semaphore_;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_PIPE_H_
