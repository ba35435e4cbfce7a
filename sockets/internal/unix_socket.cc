#include "sockets/internal/unix_socket.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "sockets/internal/pipe.h"
#include "sockets/internal/stack.h"

namespace dsim::internal {
namespace {

constexpr size_t kPageBytes = 4096;
constexpr size_t kSkbSharedInfoBytes = 320;   // SKB_DATA_ALIGN(sizeof(skb_shared_info)).
constexpr size_t kSkBuffBytes = 256;          // SKB_DATA_ALIGN(sizeof(struct sk_buff)).
constexpr size_t kMaxHead = kPageBytes - kSkbSharedInfoBytes;  // SKB_MAX_HEAD(0): 3,776.
constexpr size_t kStreamFragBytes = 32768;   // UNIX_SKB_FRAGS_SZ.
constexpr size_t kDatagramMaxAlloc = 4 * kPageBytes - kSkbSharedInfoBytes;  // SKB_MAX_ALLOC.
constexpr size_t kMaxSkbFrags = 17;
// sock_setsockopt's floors: 2 * TCP_SKB_MIN_TRUESIZE and TCP_SKB_MIN_TRUESIZE.
constexpr int kMinSendBufferBytes = 2 * (2048 + 256);
constexpr int kMinReceiveBufferBytes = 2048 + 256;
constexpr uint32_t kBufferBytesMax = 4194304;  // net.core.wmem_max / rmem_max here.

size_t PageAlign(size_t n) { return (n + kPageBytes - 1) & ~(kPageBytes - 1); }

size_t KmallocBucket(size_t n) {
  for (size_t bucket : {512, 1024, 2048, 4096, 8192}) {
    if (n <= bucket) return bucket;
  }
  size_t pages = kPageBytes;
  while (pages < n) pages *= 2;
  return pages;
}

int CopyOut(HostStack& stack, const void* data, int size, void* value, socklen_t* length) {
  if (length == nullptr) return stack.Fail(EFAULT, "getsockopt: the length pointer is null");
  int wanted = static_cast<int>(*length);
  if (wanted < 0) return stack.Fail(EINVAL, "getsockopt: negative length");
  wanted = std::min(wanted, size);
  if (wanted > 0 && value == nullptr) return stack.Fail(EFAULT, "getsockopt: null value");
  std::memcpy(value, data, wanted);
  *length = static_cast<socklen_t>(wanted);
  return 0;
}

timeval OptionTimeval(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return timeval{0, 0};
  return absl::ToTimeval(d);
}

}  // namespace

size_t UnixSocket::TruesizeOf(size_t linear, size_t paged) {
  const size_t head = ((linear + 63) & ~size_t{63}) + kSkbSharedInfoBytes;
  return KmallocBucket(head) + kSkBuffBytes + PageAlign(paged);
}

void UnixSocket::MakePair(int type, int status_flags, std::shared_ptr<UnixSocket>* first,
                          std::shared_ptr<UnixSocket>* second) {
  auto pair = std::make_shared<UnixPair>();
  pair->type = type;
  *first = std::make_shared<UnixSocket>(pair, 0, O_RDWR | status_flags);
  *second = std::make_shared<UnixSocket>(pair, 1, O_RDWR | status_flags);
  pair->ends[0].file = first->get();
  pair->ends[1].file = second->get();
}

UnixSocket::UnixSocket(std::shared_ptr<UnixPair> pair, int side, int status_flags)
    : OpenFile(status_flags), pair_(std::move(pair)), side_(side) {}

void UnixSocket::NotifyPeer(short key) {
  if (UnixSocket* other = peer().file; other != nullptr) other->NotifyReadiness(key);
}

void UnixSocket::ConsumeFront() {
  UnixPair::End& sender = peer();
  const size_t truesize = self().queue.front().truesize;
  self().queue.pop_front();
  DSIM_DCHECK(sender.wmem >= truesize);
  sender.wmem -= truesize;
  // sock_wfree -> unix_write_space wakes the sender (blocked writers, pollers, an edge
  // for EPOLLET) only once it is writable again: its charge down to a quarter.
  if ((sender.wmem + 1) * 4 <= static_cast<size_t>(sender.sndbuf)) NotifyPeer(POLLOUT);
}

absl::Time UnixSocket::Now(HostStack& stack) { return stack.host().network().scheduler().Now(); }

absl::Time UnixSocket::Deadline(absl::Time start, bool receive) const {
  const absl::Duration timeout = receive ? self().receive_timeout : self().send_timeout;
  const absl::Time absolute = receive ? self().read_deadline : self().write_deadline;
  if (timeout == absl::InfiniteDuration()) return absolute;
  return std::min(start + timeout, absolute);
}

void UnixSocket::SetDeadline(absl::Time deadline, bool read, bool write) {
  if (read) self().read_deadline = deadline;
  if (write) self().write_deadline = deadline;
  if (!readable().empty()) readable().WakeAll();
  if (!writable().empty()) writable().WakeAll();
}

short UnixSocket::PollMask() const {
  const UnixPair::End& me = self();
  short mask = 0;
  if (me.error != 0) mask |= POLLERR;
  if (me.shutdown & kRcvShutdown) mask |= POLLRDHUP | POLLIN | POLLRDNORM;
  if (me.shutdown == (kRcvShutdown | kSendShutdown)) mask |= POLLHUP;
  if (!me.queue.empty()) mask |= POLLIN | POLLRDNORM;
  // unix_writable(): sk_wmem_alloc (which counts one for the socket itself) at most a
  // quarter of the send buffer.
  if ((me.wmem + 1) * 4 <= static_cast<size_t>(me.sndbuf)) {
    mask |= POLLOUT | POLLWRNORM | POLLWRBAND;
  }
  return mask;
}

class UnixSocket::CallGuard {
 public:
  explicit CallGuard(UnixSocket* socket) : socket_(socket) { ++socket_->active_calls_; }
  ~CallGuard() {
    if (--socket_->active_calls_ == 0 && socket_->release_pending_) {
      socket_->release_pending_ = false;
      socket_->Release();
    }
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

 private:
  UnixSocket* socket_;
};

void UnixSocket::OnLastClose() {
  if (active_calls_ > 0) {
    release_pending_ = true;
    return;
  }
  Release();
}

void UnixSocket::Release() {
  UnixPair::End& me = self();
  const bool had_unread = !me.queue.empty();
  me.dead = true;
  me.file = nullptr;
  me.shutdown = kRcvShutdown | kSendShutdown;
  // The receive queue is purged: what the peer sent is uncharged from it.
  size_t freed = 0;
  for (const UnixPair::Skb& skb : me.queue) freed += skb.truesize;
  me.queue.clear();
  UnixPair::End& other = peer();
  other.wmem -= std::min(other.wmem, freed);
  if (connection_based()) {
    other.shutdown = kRcvShutdown | kSendShutdown;
    if (had_unread) other.error = ECONNRESET;
  }
  NotifyPeer();
  NotifyReadiness();  // Pollers of this description re-check.
}

// ---- Receiving -------------------------------------------------------------------------

ssize_t UnixSocket::Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  if (IovecLength(iov) == 0) return 0;  // sock_read_iter: "Match SYS5 behaviour".
  RecvArgs args;
  args.iov = iov;
  args.what = "read";
  return Recv(stack, args, where);
}

ssize_t UnixSocket::Recv(HostStack& stack, const RecvArgs& args, SourceLocation where) {
  if (args.flags & MSG_OOB) {
    return stack.Fail(EOPNOTSUPP, absl::StrCat(args.what, ": MSG_OOB is not simulated for "
                                               "AF_UNIX sockets"));
  }
  CallGuard guard(this);
  const size_t length = args.into != nullptr ? args.into_max : IovecLength(args.iov);
  std::string buffer(length, '\0');
  bool truncated = false;
  const ssize_t n = stream() ? StreamRecv(stack, args, buffer.data(), length, where)
                             : RecordRecv(stack, args, buffer.data(), length, where, &truncated);
  if (n < 0) return n;
  const size_t copied = std::min(static_cast<size_t>(n), length);
  if (args.into != nullptr) {
    args.into->assign(buffer.data(), copied);
  } else {
    ScatterIovec(args.iov, buffer.data(), copied);
  }
  // The peer of a socketpair is unnamed: no address is returned.
  if (args.name_length != nullptr) *args.name_length = 0;
  if (args.msg != nullptr) {
    args.msg->msg_namelen = 0;
    args.msg->msg_controllen = 0;
    args.msg->msg_flags = truncated ? MSG_TRUNC : 0;
  }
  return n;
}

ssize_t UnixSocket::StreamRecv(HostStack& stack, const RecvArgs& args, char* out,
                               size_t length, SourceLocation where) {
  const bool peek = (args.flags & MSG_PEEK) != 0;
  const size_t target = (args.flags & MSG_WAITALL) ? std::max<size_t>(length, 1) : 1;
  const absl::Time start = Now(stack);
  if (self().read_deadline <= start) {
    return stack.Fail(EAGAIN, absl::StrCat(args.what, ": the read deadline has passed"));
  }
  size_t copied = 0;
  for (;;) {
    UnixPair::End& me = self();
    // Copy across skbs (unix_stream_read_generic), consuming unless peeking.
    size_t peek_index = 0, peek_skip = 0;
    while (copied < length) {
      UnixPair::Skb* skb = nullptr;
      size_t skip = 0;
      if (peek) {
        if (peek_index >= me.queue.size()) break;
        skb = &me.queue[peek_index];
        skip = skb->consumed + peek_skip;
      } else {
        if (me.queue.empty()) break;
        skb = &me.queue.front();
        skip = skb->consumed;
      }
      const size_t n = std::min(skb->data.size() - skip, length - copied);
      std::memcpy(out + copied, skb->data.data() + skip, n);
      copied += n;
      if (peek) {
        ++peek_index;
        peek_skip = 0;
        continue;
      }
      skb->consumed += n;
      if (skb->consumed == skb->data.size()) ConsumeFront();
    }
    if (length == 0 && !me.queue.empty()) return 0;
    if (copied >= target || (peek && copied > 0)) return static_cast<ssize_t>(copied);
    if (me.error != 0) {
      if (copied > 0) return static_cast<ssize_t>(copied);
      const int error = me.error;
      me.error = 0;
      return stack.Fail(error, absl::StrCat(args.what, ": the peer closed with unread data"));
    }
    if (me.shutdown & kRcvShutdown) return static_cast<ssize_t>(copied);
    if (nonblocking() || (args.flags & MSG_DONTWAIT)) {
      if (copied > 0) return static_cast<ssize_t>(copied);
      return stack.Fail(EAGAIN, absl::StrCat(args.what, ": nothing to read"));
    }
    const absl::Time deadline = Deadline(start, true);
    if (Now(stack) >= deadline ||
        readable().Wait("recv(AF_UNIX)", where, deadline) == WakeReason::kTimedOut) {
      if (copied > 0) return static_cast<ssize_t>(copied);
      return stack.Fail(EAGAIN, absl::StrCat(args.what, ": SO_RCVTIMEO or the deadline passed"));
    }
  }
}

ssize_t UnixSocket::RecordRecv(HostStack& stack, const RecvArgs& args, char* out,
                               size_t length, SourceLocation where, bool* truncated) {
  const absl::Time start = Now(stack);
  if (self().read_deadline <= start) {
    return stack.Fail(EAGAIN, absl::StrCat(args.what, ": the read deadline has passed"));
  }
  for (;;) {
    UnixPair::End& me = self();
    // __skb_try_recv_datagram: a pending error comes before queued data.
    if (me.error != 0) {
      const int error = me.error;
      me.error = 0;
      return stack.Fail(error, absl::StrCat(args.what, ": a pending socket error"));
    }
    if (!me.queue.empty()) {
      const UnixPair::Skb& skb = me.queue.front();
      const size_t size = skb.data.size();
      const size_t n = std::min(size, length);
      std::memcpy(out, skb.data.data(), n);
      *truncated = n < size;
      if (!(args.flags & MSG_PEEK)) ConsumeFront();
      return static_cast<ssize_t>((args.flags & MSG_TRUNC) ? size : n);
    }
    const bool dont_wait = nonblocking() || (args.flags & MSG_DONTWAIT);
    if (me.shutdown & kRcvShutdown) {
      // End of file, except for a nonblocking SOCK_DGRAM receive, which says EAGAIN.
      if (pair_->type == SOCK_SEQPACKET || !dont_wait) return 0;
    }
    if (dont_wait) return stack.Fail(EAGAIN, absl::StrCat(args.what, ": no datagram queued"));
    const absl::Time deadline = Deadline(start, true);
    if (Now(stack) >= deadline ||
        readable().Wait("recv(AF_UNIX)", where, deadline) == WakeReason::kTimedOut) {
      return stack.Fail(EAGAIN, absl::StrCat(args.what, ": SO_RCVTIMEO or the deadline passed"));
    }
  }
}

// ---- Sending ---------------------------------------------------------------------------

ssize_t UnixSocket::Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) {
  SendArgs args;
  args.iov = iov;
  args.what = "write";
  return Send(stack, args, where);
}

int UnixSocket::WaitForSendSpace(HostStack& stack, int flags, SourceLocation where) {
  const absl::Time start = Now(stack);
  for (;;) {
    UnixPair::End& me = self();
    if (me.error != 0) {
      const int error = me.error;
      me.error = 0;
      return stack.Fail(error, "send: a pending socket error");
    }
    if (me.shutdown & kSendShutdown) {
      return stack.Fail(EPIPE, "send: the socket is shut down for writing (no SIGPIPE)");
    }
    if (me.wmem < static_cast<size_t>(me.sndbuf)) return 0;
    if (nonblocking() || (flags & MSG_DONTWAIT)) {
      return stack.Fail(EAGAIN, "send: the send buffer is full");
    }
    const absl::Time deadline = Deadline(start, false);
    if (Now(stack) >= deadline ||
        writable().Wait("send(AF_UNIX)", where, deadline) == WakeReason::kTimedOut) {
      return stack.Fail(EAGAIN, "send: SO_SNDTIMEO or the write deadline passed");
    }
  }
}

ssize_t UnixSocket::Send(HostStack& stack, const SendArgs& args, SourceLocation where) {
  if (args.flags & MSG_OOB) {
    return stack.Fail(EOPNOTSUPP, "send: MSG_OOB is not simulated for AF_UNIX sockets");
  }
  CallGuard guard(this);
  if (self().write_deadline <= Now(stack)) {
    return stack.Fail(EAGAIN, "send: the write deadline has passed");
  }
  std::string bytes(IovecLength(args.iov), '\0');
  GatherIovec(args.iov, bytes.data(), bytes.size());
  if (stream()) {
    if (args.name != nullptr && args.name_length > 0) {
      return stack.Fail(EISCONN, "send: a socketpair stream is connected; no address");
    }
    return StreamSend(stack, bytes, args.flags, where);
  }
  if (args.name != nullptr && args.name_length > 0 && pair_->type == SOCK_DGRAM) {
    return Unsupported(stack, "sendto", args.name, args.name_length);
  }
  return RecordSend(stack, std::move(bytes), args.flags, where);
}

ssize_t UnixSocket::StreamSend(HostStack& stack, const std::string& bytes, int flags,
                               SourceLocation where) {
  if (self().shutdown & kSendShutdown) {
    return stack.Fail(EPIPE, "send: the socket is shut down for writing (no SIGPIPE)");
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    UnixPair::End& me = self();
    size_t size = bytes.size() - sent;
    size = std::min(size, static_cast<size_t>(me.sndbuf / 2 - 64));
    size = std::min(size, kMaxHead + kStreamFragBytes);
    const size_t paged = std::min(size, PageAlign(size > kMaxHead ? size - kMaxHead : 0));
    if (const int r = WaitForSendSpace(stack, flags, where); r < 0) {
      return sent > 0 ? static_cast<ssize_t>(sent) : r;
    }
    UnixPair::End& other = peer();
    if (other.dead || (other.shutdown & kRcvShutdown)) {
      if (sent > 0) return static_cast<ssize_t>(sent);
      return stack.Fail(EPIPE, "send: the peer is closed or shut down for reading (no SIGPIPE)");
    }
    UnixPair::Skb skb;
    skb.data = bytes.substr(sent, size);
    skb.truesize = TruesizeOf(size - paged, paged);
    self().wmem += skb.truesize;
    other.queue.push_back(std::move(skb));
    sent += size;
    NotifyPeer(POLLIN);  // sk_data_ready.
  }
  return static_cast<ssize_t>(sent);
}

ssize_t UnixSocket::RecordSend(HostStack& stack, std::string bytes, int flags,
                               SourceLocation where) {
  if (!self().has_peer) return stack.Fail(ENOTCONN, "send: the peer is gone");
  if (bytes.size() > static_cast<size_t>(std::max(self().sndbuf - 32, 0))) {
    return stack.Fail(EMSGSIZE, absl::StrCat("send: a ", bytes.size(),
                                             "-byte message exceeds SO_SNDBUF - 32"));
  }
  size_t paged = 0;
  if (bytes.size() > kDatagramMaxAlloc) {
    paged = PageAlign(std::min(bytes.size() - kDatagramMaxAlloc, kMaxSkbFrags * kPageBytes));
  }
  if (const int r = WaitForSendSpace(stack, flags, where); r < 0) return r;
  UnixPair::End& other = peer();
  if (other.dead) {
    if (pair_->type == SOCK_SEQPACKET) return stack.Fail(EPIPE, "send: the peer is closed");
    Disconnect();  // The next send says ENOTCONN.
    return stack.Fail(ECONNREFUSED, "send: the peer is closed");
  }
  if (other.shutdown & kRcvShutdown) {
    return stack.Fail(EPIPE, "send: the peer is shut down for reading (no SIGPIPE)");
  }
  UnixPair::Skb skb;
  skb.truesize = TruesizeOf(bytes.size() - std::min(paged, bytes.size()), paged);
  const size_t size = bytes.size();
  skb.data = std::move(bytes);
  self().wmem += skb.truesize;
  other.queue.push_back(std::move(skb));
  NotifyPeer(POLLIN);  // sk_data_ready.
  return static_cast<ssize_t>(size);
}

// ---- Control ---------------------------------------------------------------------------

// unix_dgram_disconnected: a datagram end that loses its peer drops what it had received
// from it, and a live peer still connected to it learns with ECONNRESET.
void UnixSocket::Disconnect() {
  UnixPair::End& me = self();
  me.has_peer = false;
  if (me.queue.empty()) return;
  size_t freed = 0;
  for (const UnixPair::Skb& skb : me.queue) freed += skb.truesize;
  me.queue.clear();
  UnixPair::End& other = peer();
  other.wmem -= std::min(other.wmem, freed);
  if (!other.dead && other.has_peer) {
    other.error = ECONNRESET;
    NotifyPeer();  // sk_error_report.
  }
}

int UnixSocket::Shutdown(HostStack& stack, int how) {
  if (how < SHUT_RD || how > SHUT_RDWR) {
    return stack.Fail(EINVAL, absl::StrCat("shutdown: how = ", how));
  }
  const int mode = how + 1;  // SHUT_RD -> RCV_SHUTDOWN, SHUT_WR -> SEND_SHUTDOWN.
  self().shutdown |= mode;
  if (connection_based() && !peer().dead) {
    int peer_mode = 0;
    if (mode & kRcvShutdown) peer_mode |= kSendShutdown;
    if (mode & kSendShutdown) peer_mode |= kRcvShutdown;
    peer().shutdown |= peer_mode;
    NotifyPeer();  // Only connection-based pairs tell the peer (unix_shutdown).
  }
  NotifyReadiness();
  return 0;
}

int UnixSocket::GetName(HostStack& stack, sockaddr* address, socklen_t* length, bool peer_name) {
  if (peer_name && !self().has_peer) {
    return stack.Fail(ENOTCONN, "getpeername: the datagram socket lost its peer");
  }
  if (length == nullptr) return stack.Fail(EFAULT, "getsockname: the length pointer is null");
  if (static_cast<int>(*length) < 0) return stack.Fail(EINVAL, "getsockname: negative length");
  // Unnamed: just the family (sizeof(sa_family_t)).
  const sa_family_t family = AF_UNIX;
  const socklen_t n = std::min<socklen_t>(*length, sizeof(family));
  if (n > 0) std::memcpy(address, &family, n);
  *length = sizeof(family);
  return 0;
}

int UnixSocket::Getsockopt(HostStack& stack, int level, int name, void* value,
                           socklen_t* length) {
  if (level != SOL_SOCKET) {
    return stack.Fail(EOPNOTSUPP, absl::StrCat("getsockopt: level ", level,
                                               " does not exist for AF_UNIX sockets"));
  }
  if (length != nullptr && static_cast<int>(*length) < 0) {
    return stack.Fail(EINVAL, "getsockopt: negative length");
  }
  UnixPair::End& me = self();
  int v = 0;
  switch (name) {
    case SO_TYPE: v = pair_->type; break;
    case SO_DOMAIN: v = AF_UNIX; break;
    case SO_PROTOCOL: v = 0; break;
    case SO_ERROR: v = me.error; me.error = 0; break;
    case SO_ACCEPTCONN: v = 0; break;
    case SO_SNDBUF: v = me.sndbuf; break;
    case SO_RCVBUF: v = me.rcvbuf; break;
    case SO_REUSEADDR: case SO_KEEPALIVE: case SO_PASSCRED: case SO_BROADCAST:
      v = 0;
      break;
    case SO_RCVTIMEO:
    case SO_SNDTIMEO: {
      const timeval tv = OptionTimeval(name == SO_RCVTIMEO ? me.receive_timeout : me.send_timeout);
      return CopyOut(stack, &tv, sizeof(tv), value, length);
    }
    default:
      return stack.Fail(ENOPROTOOPT, absl::StrCat("getsockopt: SOL_SOCKET option ", name,
                                                  " is not simulated for AF_UNIX sockets"));
  }
  return CopyOut(stack, &v, sizeof(v), value, length);
}

int UnixSocket::Setsockopt(HostStack& stack, int level, int name, const void* value,
                           socklen_t length) {
  if (level != SOL_SOCKET) {
    return stack.Fail(EOPNOTSUPP, absl::StrCat("setsockopt: level ", level,
                                               " does not exist for AF_UNIX sockets"));
  }
  if (name == SO_RCVTIMEO || name == SO_SNDTIMEO) {
    if (value == nullptr) return stack.Fail(EFAULT, "setsockopt: null value");
    if (length < sizeof(timeval)) {
      return stack.Fail(EINVAL, "setsockopt: SO_RCVTIMEO/SO_SNDTIMEO need a struct timeval");
    }
    timeval tv;
    std::memcpy(&tv, value, sizeof(tv));
    if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
      return stack.Fail(EDOM, "setsockopt: tv_usec must be in [0, 1000000)");
    }
    absl::Duration d = absl::Seconds(tv.tv_sec) + absl::Microseconds(tv.tv_usec);
    if (tv.tv_sec < 0) d = absl::ZeroDuration();
    if (tv.tv_sec == 0 && tv.tv_usec == 0) d = absl::InfiniteDuration();
    (name == SO_RCVTIMEO ? self().receive_timeout : self().send_timeout) = d;
    return 0;
  }
  if (length < sizeof(int)) return stack.Fail(EINVAL, "setsockopt: the value needs an int");
  if (value == nullptr) return stack.Fail(EFAULT, "setsockopt: null value");
  int v;
  std::memcpy(&v, value, sizeof(v));
  switch (name) {
    case SO_SNDBUF: {
      const uint32_t clamped = std::min<uint32_t>(static_cast<uint32_t>(v), kBufferBytesMax);
      self().sndbuf = std::max<int>(static_cast<int>(clamped) * 2, kMinSendBufferBytes);
      NotifyReadiness(POLLOUT);  // sk_write_space.
      return 0;
    }
    case SO_RCVBUF: {
      const uint32_t clamped = std::min<uint32_t>(static_cast<uint32_t>(v), kBufferBytesMax);
      self().rcvbuf = std::max<int>(static_cast<int>(clamped) * 2, kMinReceiveBufferBytes);
      return 0;
    }
    case SO_TYPE: case SO_ERROR: case SO_ACCEPTCONN: case SO_DOMAIN: case SO_PROTOCOL:
      return stack.Fail(ENOPROTOOPT, absl::StrCat("setsockopt: option ", name, " is read-only"));
    default:
      return stack.Fail(ENOPROTOOPT, absl::StrCat("setsockopt: SOL_SOCKET option ", name,
                                                  " is not simulated for AF_UNIX sockets"));
  }
}

int UnixSocket::Ioctl(HostStack& stack, unsigned long request, void* arg) {
  int value = 0;
  if (request == SIOCINQ) {
    const UnixPair::End& me = self();
    if (pair_->type == SOCK_DGRAM) {
      value = me.queue.empty() ? 0 : static_cast<int>(me.queue.front().data.size());
    } else {
      for (const UnixPair::Skb& skb : me.queue) {
        value += static_cast<int>(skb.data.size() - skb.consumed);
      }
    }
  } else if (request == SIOCOUTQ) {
    value = static_cast<int>(self().wmem);  // sk_wmem_alloc: truesize, as Linux reports.
  } else {
    return -ENOTTY;
  }
  if (arg == nullptr) return stack.Fail(EFAULT, "ioctl: the argument pointer is null");
  std::memcpy(arg, &value, sizeof(value));
  return 0;
}

int UnixSocket::Unsupported(HostStack& stack, const char* call, const sockaddr* address,
                            socklen_t length) {
  const std::string name(call);
  if (name == "listen") {
    if (pair_->type == SOCK_DGRAM) {
      return stack.Fail(EOPNOTSUPP, "listen: a datagram socket cannot listen");
    }
    return stack.Fail(EINVAL, "listen: the socketpair socket is unbound (and connected)");
  }
  if (name == "accept") {
    if (pair_->type == SOCK_DGRAM) {
      return stack.Fail(EOPNOTSUPP, "accept: a datagram socket cannot accept");
    }
    return stack.Fail(EINVAL, "accept: the socket is not listening");
  }
  // bind, connect, sendto: an address. Linux checks its family and length first.
  if (address == nullptr || length < sizeof(sa_family_t) || length > sizeof(sockaddr_un) ||
      address->sa_family != AF_UNIX) {
    if (name == "connect" && address != nullptr && length >= sizeof(sa_family_t) &&
        address->sa_family == AF_UNSPEC && pair_->type == SOCK_DGRAM) {
      // AF_UNSPEC dissolves a datagram association (unix_dgram_connect).
      if (self().has_peer) Disconnect();
      return 0;
    }
    return stack.Fail(EINVAL, absl::StrCat(call, ": AF_UNIX sockets take a sockaddr_un"));
  }
  if (name == "connect" && pair_->type != SOCK_DGRAM) {
    return stack.Fail(EISCONN, "connect: the socketpair socket is already connected");
  }
  return stack.Fail(EOPNOTSUPP,
                    absl::StrCat(call, ": AF_UNIX addresses (paths, abstract names) are not "
                                       "simulated; only socketpair() pairs are"));
}

}  // namespace dsim::internal
