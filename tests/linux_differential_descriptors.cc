// See linux_differential_descriptors.h. A sequence is a list of DOps over descriptor
// slots; results are normalized as in the socket sequences (slots instead of descriptor
// numbers, errno names). Nothing here may block on the real kernel: descriptors are
// nonblocking, epoll_wait and poll use a zero timeout, and timerfd sequences compare
// expiration counts with intervals far longer than the sleeps around them.
#include "tests/linux_differential_descriptors.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "net/network.h"
#include "scheduler/random.h"
#include "scheduler/scheduler.h"

namespace dsim::differential {
namespace {

enum class D {
  kPipe,        // a, b = slots; c = pipe2 flags
  kPair,        // a, b = slots; c = type (with SOCK_NONBLOCK etc.); d = domain (0: AF_UNIX)
  kEventfd,     // a = slot; b = initial; c = flags
  kTimerfd,     // a = slot; b = flags
  kTimerSet,    // a = slot; b = initial ms; c = interval ms; d = flags
  kTimerGet,    // a = slot
  kEpoll,       // a = slot; b = epoll_create1 flags
  kCtl,         // a = epoll slot; b = op; c = target slot (-1: descriptor 999); d = events
  kWait,        // a = epoll slot; b = maxevents; c = 1: events sorted by slot
  kWrite,       // a = slot; b = bytes
  kRead,        // a = slot; b = bytes
  kSend,        // a = slot; b = bytes; c = flags
  kRecv,        // a = slot; b = bytes; c = flags
  kWrite8,      // a = slot; b = value (eventfd); c = buffer bytes
  kWriteMax,    // a = slot: writes 0xfffffffffffffffe - 1 (eventfd overflow setup)
  kRead8,       // a = slot; b = buffer bytes
  kShutdown,    // a = slot; b = how
  kClose,       // a = slot
  kPoll,        // a = slot mask; b = events
  kSelect,      // a = read slot mask; b = write slot mask
  kFcntl,       // a = slot (-1: 999); b = cmd; c = arg; d = slot for F_DUPFD results
  kDup,         // a = slot; b = variant (see Dup); c = target slot
  kGetOpt,      // a = slot; b = level; c = name
  kSetOpt,      // a = slot; b = level; c = name; d = value
  kFill,        // a = slot; b = chunk bytes: nonblocking writes until EAGAIN
  kDrain,       // a = slot: nonblocking reads until EAGAIN or EOF
  kSleep,       // a = milliseconds
  kInq,         // a = slot: FIONREAD
  kName,        // a = slot; b = peer
  kUnixCall,    // a = slot; b = variant (see UnixCall)
  kRecvTrunc,   // a = slot; b = bytes: recvmsg, reporting MSG_TRUNC
};

struct DOp {
  D kind;
  int a = 0, b = 0, c = 0, d = 0;
};

struct DSequence {
  std::string name;
  std::vector<DOp> ops;
};

constexpr int kSlots = 8;

std::string ErrnoText(int error) {
  const char* name = strerrorname_np(error);
  return name != nullptr ? name : absl::StrCat("errno", error);
}

std::string EventsText(uint32_t events) {
  static const std::pair<uint32_t, const char*> kNames[] = {
      {EPOLLIN, "IN"},         {EPOLLOUT, "OUT"},         {EPOLLERR, "ERR"},
      {EPOLLHUP, "HUP"},       {POLLNVAL, "NVAL"},        {EPOLLRDHUP, "RDHUP"},
      {EPOLLRDNORM, "RDNORM"}, {EPOLLWRNORM, "WRNORM"},   {EPOLLWRBAND, "WRBAND"},
      {EPOLLPRI, "PRI"},       {EPOLLRDBAND, "RDBAND"}};
  std::vector<std::string> parts;
  for (const auto& [bit, name] : kNames) {
    if (events & bit) parts.push_back(name);
  }
  return parts.empty() ? "0" : absl::StrJoin(parts, "|");
}

class Executor {
 public:
  Executor() {
    for (int& fd : fds_) fd = -1;
  }

  std::vector<std::string> Run(const DSequence& sequence) {
    std::vector<std::string> results;
    for (const DOp& op : sequence.ops) results.push_back(Do(op));
    for (int& fd : fds_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    return results;
  }

 private:
  static std::string Result(long r) {
    return r < 0 ? absl::StrCat("-1 ", ErrnoText(errno)) : absl::StrCat(r);
  }

  int Fd(int slot) const { return slot < 0 ? 999 : fds_[slot]; }

  void Put(int slot, int fd) {
    if (fds_[slot] >= 0 && fds_[slot] != fd) ::close(fds_[slot]);
    fds_[slot] = fd;
  }

  std::string FdText(int fd) {
    if (fd < 0) return Result(fd);
    for (int k = 0; k < kSlots; ++k) {
      if (fds_[k] == fd) return absl::StrCat("fd(s", k, ")");
    }
    return "fd";
  }

  std::string Payload(int slot, int bytes) {
    std::string data(bytes, '\0');
    for (int i = 0; i < bytes; ++i) data[i] = static_cast<char>('a' + (sent_[slot]++ % 26));
    return data;
  }

  static std::string Received(const char* data, ssize_t n) {
    if (n <= 0) return "";
    return absl::StrCat(" '", std::string(data, std::min<ssize_t>(n, 12)), n > 12 ? "..'" : "'");
  }

  static std::string FlagsText(int flags) {
    std::string text = absl::StrCat("acc", flags & O_ACCMODE);
    if (flags & O_NONBLOCK) absl::StrAppend(&text, "|NONBLOCK");
    if (flags & O_APPEND) absl::StrAppend(&text, "|APPEND");
    const int rest = flags & ~(O_ACCMODE | O_NONBLOCK | O_APPEND | O_LARGEFILE);
    if (rest != 0) absl::StrAppend(&text, "|0x", absl::Hex(rest));
    return text;
  }

  std::string Do(const DOp& op) {
    switch (op.kind) {
      case D::kPipe: {
        int fds[2];
        if (::pipe2(fds, op.c) < 0) return Result(-1);
        Put(op.a, fds[0]);
        Put(op.b, fds[1]);
        return "0";
      }
      case D::kPair: {
        int fds[2];
        if (::socketpair(op.d == 0 ? AF_UNIX : op.d, op.c, 0, fds) < 0) return Result(-1);
        Put(op.a, fds[0]);
        Put(op.b, fds[1]);
        return "0";
      }
      case D::kEventfd: {
        const int fd = ::eventfd(static_cast<unsigned>(op.b), op.c);
        if (fd < 0) return Result(-1);
        Put(op.a, fd);
        return "fd";
      }
      case D::kTimerfd: {
        const int fd = ::timerfd_create(CLOCK_MONOTONIC, op.b);
        if (fd < 0) return Result(-1);
        Put(op.a, fd);
        return "fd";
      }
      case D::kTimerSet: {
        itimerspec value{};
        value.it_value.tv_sec = op.b / 1000;
        value.it_value.tv_nsec = (op.b % 1000) * 1000000L;
        value.it_interval.tv_sec = op.c / 1000;
        value.it_interval.tv_nsec = (op.c % 1000) * 1000000L;
        itimerspec old{};
        const int r = ::timerfd_settime(Fd(op.a), op.d, &value, &old);
        if (r < 0) return Result(r);
        const bool old_armed = old.it_value.tv_sec != 0 || old.it_value.tv_nsec != 0;
        return absl::StrCat("0 old=", old_armed ? "armed" : "disarmed");
      }
      case D::kTimerGet: {
        itimerspec value{};
        if (::timerfd_gettime(Fd(op.a), &value) < 0) return Result(-1);
        const bool armed = value.it_value.tv_sec != 0 || value.it_value.tv_nsec != 0;
        return absl::StrCat(armed ? "armed" : "disarmed", " interval=",
                            value.it_interval.tv_sec * 1000 + value.it_interval.tv_nsec / 1000000,
                            "ms");
      }
      case D::kEpoll: {
        const int fd = ::epoll_create1(op.b);
        if (fd < 0) return Result(-1);
        Put(op.a, fd);
        return "fd";
      }
      case D::kCtl: {
        epoll_event event{};
        event.events = static_cast<uint32_t>(op.d);
        event.data.u64 = static_cast<uint64_t>(op.c < 0 ? 99 : op.c);
        return Result(::epoll_ctl(Fd(op.a), op.b, Fd(op.c), &event));
      }
      case D::kWait: {
        epoll_event events[kSlots + 2];
        const int r = ::epoll_wait(Fd(op.a), op.b > 0 ? events : nullptr, op.b, 0);
        if (r < 0) return Result(r);
        if (op.c == 1) {
          std::sort(events, events + r, [](const epoll_event& x, const epoll_event& y) {
            return x.data.u64 < y.data.u64;
          });
        }
        std::string text = absl::StrCat(r);
        for (int i = 0; i < r; ++i) {
          absl::StrAppend(&text, " s", events[i].data.u64, "=", EventsText(events[i].events));
        }
        return text;
      }
      case D::kWrite: {
        const std::string data = Payload(op.a, op.b);
        return Result(::write(Fd(op.a), data.data(), data.size()));
      }
      case D::kRead: {
        std::string buffer(std::max(op.b, 1), '\0');
        const ssize_t n = ::read(Fd(op.a), buffer.data(), op.b);
        return absl::StrCat(Result(n), Received(buffer.data(), n));
      }
      case D::kSend: {
        const std::string data = Payload(op.a, op.b);
        return Result(::send(Fd(op.a), data.data(), data.size(), op.c | MSG_NOSIGNAL));
      }
      case D::kRecv: {
        std::string buffer(std::max(op.b, 1), '\0');
        const ssize_t n = ::recv(Fd(op.a), buffer.data(), op.b, op.c);
        return absl::StrCat(Result(n), (op.c & MSG_TRUNC) ? "" : Received(buffer.data(), n));
      }
      case D::kRecvTrunc: {
        char buffer[64];
        iovec iov{buffer, static_cast<size_t>(op.b)};
        msghdr m{};
        sockaddr_storage name;
        m.msg_name = &name;
        m.msg_namelen = sizeof(name);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        const ssize_t n = ::recvmsg(Fd(op.a), &m, MSG_DONTWAIT);
        if (n < 0) return Result(n);
        return absl::StrCat(n, Received(buffer, n), " flags=",
                            (m.msg_flags & MSG_TRUNC) ? "TRUNC" : "0", " namelen=",
                            m.msg_namelen);
      }
      case D::kWrite8: {
        uint64_t value = static_cast<uint64_t>(op.b);
        char buffer[16] = {};
        std::memcpy(buffer, &value, sizeof(value));
        return Result(::write(Fd(op.a), buffer, op.c > 0 ? op.c : 8));
      }
      case D::kWriteMax: {
        const uint64_t value = 0xfffffffffffffffeull - 1;
        return Result(::write(Fd(op.a), &value, sizeof(value)));
      }
      case D::kRead8: {
        char buffer[16] = {};
        const ssize_t n = ::read(Fd(op.a), buffer, op.b > 0 ? op.b : 8);
        if (n < 0) return Result(n);
        uint64_t value;
        std::memcpy(&value, buffer, sizeof(value));
        return absl::StrCat(n, " value=", value);
      }
      case D::kShutdown: return Result(::shutdown(Fd(op.a), op.b));
      case D::kClose: {
        const int r = ::close(Fd(op.a));
        if (op.a >= 0) fds_[op.a] = -1;
        return Result(r);
      }
      case D::kPoll: {
        std::vector<pollfd> fds;
        std::vector<int> slots;
        for (int k = 0; k < kSlots; ++k) {
          if (!(op.a & (1 << k))) continue;
          // A closed slot polls -1 (ignored): an unused number would be a real descriptor
          // to //posix, and mixing real and simulated descriptors fails the run.
          fds.push_back(pollfd{fds_[k], static_cast<short>(op.b), 0});
          slots.push_back(k);
        }
        const int r = ::poll(fds.data(), fds.size(), 0);
        if (r < 0) return Result(r);
        std::string text = absl::StrCat(r);
        for (size_t i = 0; i < fds.size(); ++i) {
          absl::StrAppend(&text, " s", slots[i], "=",
                          EventsText(static_cast<uint16_t>(fds[i].revents)));
        }
        return text;
      }
      case D::kSelect: return Select(op);
      case D::kFcntl: {
        const int r = ::fcntl(Fd(op.a), op.b, static_cast<long>(op.c));
        if (r < 0) return Result(r);
        if (op.b == F_GETFL) return FlagsText(r);
        if (op.b == F_DUPFD || op.b == F_DUPFD_CLOEXEC) {
          const std::string text = FdText(r);
          Put(op.d, r);
          return text;
        }
        return Result(r);
      }
      case D::kDup: return Dup(op);
      case D::kGetOpt: {
        int value = 0;
        socklen_t length = sizeof(value);
        if (::getsockopt(Fd(op.a), op.b, op.c, &value, &length) < 0) return Result(-1);
        return absl::StrCat(value, "/", length);
      }
      case D::kSetOpt: {
        const int value = op.d;
        return Result(::setsockopt(Fd(op.a), op.b, op.c, &value, sizeof(value)));
      }
      case D::kFill: {
        const std::string chunk(op.b, 'f');
        size_t total = 0;
        int writes = 0;
        ssize_t n = 0;
        while (writes < 100000 &&
               (n = ::write(Fd(op.a), chunk.data(), chunk.size())) > 0) {
          total += n;
          ++writes;
        }
        return absl::StrCat("total=", total, " writes=", writes, " then ",
                            n < 0 ? ErrnoText(errno) : "0");
      }
      case D::kDrain: {
        std::string buffer(65536, '\0');
        size_t total = 0;
        ssize_t n = 0;
        int reads = 0;  // Bounded: a semaphore eventfd gives 8 bytes per read for ages.
        while (reads < 1000 && (n = ::read(Fd(op.a), buffer.data(), buffer.size())) > 0) {
          total += n;
          ++reads;
        }
        if (reads == 1000) return absl::StrCat("read=", total, " then still more");
        return absl::StrCat("read=", total, " then ", n < 0 ? ErrnoText(errno) : "EOF");
      }
      case D::kSleep:
        ::usleep(static_cast<useconds_t>(op.a) * 1000);
        return "";
      case D::kInq: {
        int value = -7;
        const int r = ::ioctl(Fd(op.a), FIONREAD, &value);
        if (r < 0) return Result(r);
        return absl::StrCat(value);
      }
      case D::kName: {
        sockaddr_storage s;
        std::memset(&s, 0x5a, sizeof(s));
        socklen_t length = sizeof(s);
        const int r = op.b ? ::getpeername(Fd(op.a), reinterpret_cast<sockaddr*>(&s), &length)
                           : ::getsockname(Fd(op.a), reinterpret_cast<sockaddr*>(&s), &length);
        if (r < 0) return Result(r);
        return absl::StrCat("family=", s.ss_family, " len=", length);
      }
      case D::kUnixCall: return UnixCall(op);
    }
    return "?";
  }

  std::string Select(const DOp& op) {
    fd_set readers, writers;
    FD_ZERO(&readers);
    FD_ZERO(&writers);
    int nfds = 0;
    for (int k = 0; k < kSlots; ++k) {
      if (fds_[k] < 0) continue;
      if (op.a & (1 << k)) FD_SET(fds_[k], &readers);
      if (op.b & (1 << k)) FD_SET(fds_[k], &writers);
      if ((op.a | op.b) & (1 << k)) nfds = std::max(nfds, fds_[k] + 1);
    }
    timeval zero{0, 0};
    const int r = ::select(nfds, &readers, &writers, nullptr, &zero);
    if (r < 0) return Result(r);
    std::string text = absl::StrCat(r, " r=");
    for (int k = 0; k < kSlots; ++k) {
      if (fds_[k] >= 0 && (op.a & (1 << k)) && FD_ISSET(fds_[k], &readers)) {
        absl::StrAppend(&text, "s", k, ",");
      }
    }
    absl::StrAppend(&text, " w=");
    for (int k = 0; k < kSlots; ++k) {
      if (fds_[k] >= 0 && (op.b & (1 << k)) && FD_ISSET(fds_[k], &writers)) {
        absl::StrAppend(&text, "s", k, ",");
      }
    }
    return text;
  }

  // Variants: 0 dup into slot c; 1 dup2 onto slot c's descriptor; 2 dup3 onto it with
  // O_CLOEXEC; 3 dup2 onto itself; 4 dup3 onto itself.
  std::string Dup(const DOp& op) {
    const int fd = Fd(op.a);
    int r = -1;
    switch (op.b) {
      case 0: r = ::dup(fd); break;
      case 1: r = ::dup2(fd, Fd(op.c)); break;
      case 2: r = ::dup3(fd, Fd(op.c), O_CLOEXEC); break;
      case 3: r = ::dup2(fd, fd); break;
      case 4: r = ::dup3(fd, fd, 0); break;
    }
    if (r < 0) return Result(r);
    const std::string text = FdText(r);
    if (op.b == 0) Put(op.c, r);
    return text;
  }

  // The calls a connected socketpair end refuses. Variants: 0 listen; 1 accept;
  // 2 connect AF_INET; 3 bind AF_INET; 4 connect AF_UNSPEC; 5 sendto with an AF_INET
  // address.
  std::string UnixCall(const DOp& op) {
    const int fd = Fd(op.a);
    sockaddr_storage s{};
    s.ss_family = AF_INET;
    switch (op.b) {
      case 0: return Result(::listen(fd, 4));
      case 1: return Result(::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK));
      case 2: return Result(::connect(fd, reinterpret_cast<sockaddr*>(&s), sizeof(sockaddr_in)));
      case 3: return Result(::bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof(sockaddr_in)));
      case 4: {
        s.ss_family = AF_UNSPEC;
        return Result(::connect(fd, reinterpret_cast<sockaddr*>(&s), sizeof(sockaddr)));
      }
      case 5:
        return Result(::sendto(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&s), sizeof(sockaddr_in)));
    }
    return "?";
  }

  int fds_[kSlots];
  int sent_[kSlots] = {};
};

// ---- Sequences -----------------------------------------------------------------------

constexpr int kNb = SOCK_NONBLOCK;
constexpr int kIn = EPOLLIN, kOut = EPOLLOUT;
constexpr int kAll = POLLIN | POLLOUT | POLLRDHUP;

std::vector<DSequence> Sequences() {
  std::vector<DSequence> all;
  auto add = [&](std::string name, std::vector<DOp> ops) {
    all.push_back(DSequence{std::move(name), std::move(ops)});
  };
  // ---- socketpair
  for (int type : {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET}) {
    const std::string t = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "seqpacket";
    add("socketpair/" + t + "/basics",
        {{D::kPair, 0, 1, type | kNb}, {D::kGetOpt, 0, SOL_SOCKET, SO_TYPE},
         {D::kGetOpt, 1, SOL_SOCKET, SO_DOMAIN}, {D::kGetOpt, 0, SOL_SOCKET, SO_PROTOCOL},
         {D::kGetOpt, 0, SOL_SOCKET, SO_SNDBUF}, {D::kGetOpt, 0, SOL_SOCKET, SO_RCVBUF},
         {D::kGetOpt, 0, SOL_SOCKET, SO_ERROR}, {D::kGetOpt, 0, SOL_SOCKET, SO_ACCEPTCONN},
         {D::kFcntl, 0, F_GETFL}, {D::kFcntl, 1, F_GETFD}, {D::kName, 0, 0}, {D::kName, 0, 1},
         {D::kPoll, 0b11, kAll}, {D::kRecv, 1, 4, 0}, {D::kSend, 0, 5}, {D::kPoll, 0b11, kAll},
         {D::kInq, 1}, {D::kRecv, 1, 3, MSG_PEEK}, {D::kRecv, 1, 3}, {D::kInq, 1},
         {D::kRecv, 1, 8}, {D::kSend, 1, 3}, {D::kSend, 1, 4}, {D::kRecv, 0, 16},
         {D::kRecvTrunc, 0, 2}, {D::kSend, 0, 0}, {D::kRecvTrunc, 1, 4},
         {D::kRecv, 1, 4}});
    add("socketpair/" + t + "/zero-length",
        {{D::kPair, 0, 1, type | kNb}, {D::kRead, 1, 0}, {D::kRecv, 1, 0}, {D::kWrite, 0, 0},
         {D::kPoll, 0b10, kAll}, {D::kRead, 1, 0}, {D::kRecv, 1, 0}, {D::kSend, 0, 2},
         {D::kRead, 1, 0}, {D::kRecv, 1, 0}, {D::kRecv, 1, 4}});
    add("socketpair/" + t + "/shutdown-wr",
        {{D::kPair, 0, 1, type | kNb}, {D::kSend, 0, 3}, {D::kShutdown, 0, SHUT_WR},
         {D::kPoll, 0b11, kAll}, {D::kSend, 0, 2}, {D::kRecv, 1, 8}, {D::kRecv, 1, 8},
         {D::kSend, 1, 2}, {D::kRecv, 0, 8}, {D::kPoll, 0b11, kAll}, {D::kShutdown, 1, SHUT_RD},
         {D::kPoll, 0b11, kAll}, {D::kSend, 0, 1}, {D::kShutdown, 0, 7}});
    add("socketpair/" + t + "/shutdown-rd",
        {{D::kPair, 0, 1, type | kNb}, {D::kShutdown, 1, SHUT_RD}, {D::kPoll, 0b11, kAll},
         {D::kSend, 0, 3}, {D::kRecv, 1, 8}, {D::kShutdown, 1, SHUT_RDWR},
         {D::kPoll, 0b11, kAll}, {D::kRecv, 0, 8}});
    add("socketpair/" + t + "/peer-closed",
        {{D::kPair, 0, 1, type | kNb}, {D::kSend, 0, 3}, {D::kClose, 0}, {D::kPoll, 0b10, kAll},
         {D::kRecv, 1, 8}, {D::kRecv, 1, 8}, {D::kSend, 1, 2}, {D::kSend, 1, 2},
         {D::kName, 1, 1}, {D::kGetOpt, 1, SOL_SOCKET, SO_ERROR}});
    add("socketpair/" + t + "/closed-with-unread",
        {{D::kPair, 0, 1, type | kNb}, {D::kSend, 1, 3}, {D::kClose, 0}, {D::kPoll, 0b10, kAll},
         {D::kGetOpt, 1, SOL_SOCKET, SO_ERROR}, {D::kRecv, 1, 8}, {D::kSend, 1, 1}});
    add("socketpair/" + t + "/closed-with-unread-recv",
        {{D::kPair, 0, 1, type | kNb}, {D::kSend, 1, 3}, {D::kClose, 0}, {D::kRecv, 1, 8},
         {D::kRecv, 1, 8}, {D::kPoll, 0b10, kAll}});
    add("socketpair/" + t + "/refused-calls",
        {{D::kPair, 0, 1, type | kNb}, {D::kUnixCall, 0, 0}, {D::kUnixCall, 0, 1},
         {D::kUnixCall, 0, 2}, {D::kUnixCall, 0, 3}, {D::kUnixCall, 0, 5},
         {D::kGetOpt, 0, IPPROTO_TCP, 1}, {D::kSetOpt, 0, IPPROTO_TCP, 1, 1},
         {D::kGetOpt, 0, SOL_SOCKET, 9999}});
    for (int chunk : {1, 100, 1000, 4096, 5000, 65536, 200000}) {
      add(absl::StrCat("socketpair/", t, "/fill-", chunk),
          {{D::kPair, 0, 1, type | kNb}, {D::kFill, 0, chunk}, {D::kPoll, 0b11, kAll},
           {D::kRecv, 1, 1}, {D::kPoll, 0b01, kAll}, {D::kDrain, 1}, {D::kPoll, 0b11, kAll},
           {D::kFill, 0, chunk}});
    }
    add("socketpair/" + t + "/sndbuf",
        {{D::kPair, 0, 1, type | kNb}, {D::kSetOpt, 0, SOL_SOCKET, SO_SNDBUF, 10000},
         {D::kGetOpt, 0, SOL_SOCKET, SO_SNDBUF}, {D::kFill, 0, 1000},
         {D::kSetOpt, 0, SOL_SOCKET, SO_SNDBUF, 1}, {D::kGetOpt, 0, SOL_SOCKET, SO_SNDBUF},
         {D::kSetOpt, 0, SOL_SOCKET, SO_RCVBUF, 1}, {D::kGetOpt, 0, SOL_SOCKET, SO_RCVBUF},
         {D::kSend, 0, 5000}});
  }
  add("socketpair/dgram/connect-unspec",
      {{D::kPair, 0, 1, SOCK_DGRAM | kNb}, {D::kUnixCall, 0, 4}, {D::kSend, 0, 1},
       {D::kName, 0, 1}});
  // unix_dgram_disconnected: losing the peer drops the queue; a live peer gets ECONNRESET.
  add("socketpair/dgram/disconnect-drops-queue",
      {{D::kPair, 0, 1, SOCK_DGRAM | kNb}, {D::kSend, 1, 3}, {D::kClose, 1}, {D::kPoll, 0b1, kAll},
       {D::kSend, 0, 1}, {D::kPoll, 0b1, kAll}, {D::kRecv, 0, 8}, {D::kPair, 2, 3, SOCK_DGRAM | kNb},
       {D::kSend, 3, 2}, {D::kUnixCall, 2, 4}, {D::kPoll, 0b1100, kAll},
       {D::kGetOpt, 3, SOL_SOCKET, SO_ERROR}, {D::kRecv, 2, 8}, {D::kSend, 2, 1}});
  add("socketpair/bad-arguments",
      {{D::kPair, 0, 1, SOCK_STREAM, AF_INET}, {D::kPair, 0, 1, SOCK_RAW},
       {D::kPair, 0, 1, SOCK_STREAM | 0x100000}, {D::kPair, 0, 1, SOCK_STREAM, 4242},
       {D::kPair, 0, 1, SOCK_STREAM | SOCK_CLOEXEC}, {D::kFcntl, 0, F_GETFD},
       {D::kFcntl, 0, F_GETFL}});
  add("socketpair/epoll-rdhup",
      {{D::kPair, 0, 1, SOCK_STREAM | kNb}, {D::kEpoll, 2}, {D::kCtl, 2, EPOLL_CTL_ADD, 1, static_cast<int>(kIn | EPOLLRDHUP | EPOLLET)},
       {D::kWait, 2, 4}, {D::kShutdown, 0, SHUT_WR}, {D::kWait, 2, 4}, {D::kWait, 2, 4},
       {D::kClose, 0}, {D::kWait, 2, 4}});
  // ---- pipe
  add("pipe/basics",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kFcntl, 0, F_GETFL}, {D::kFcntl, 1, F_GETFL},
       {D::kRead, 0, 4}, {D::kWrite, 1, 5}, {D::kInq, 0}, {D::kPoll, 0b11, kAll},
       {D::kRead, 0, 3}, {D::kRead, 0, 8}, {D::kRead, 1, 1}, {D::kWrite, 0, 1},
       {D::kSend, 1, 1}, {D::kClose, 1}, {D::kPoll, 0b01, kAll}, {D::kRead, 0, 8}});
  add("pipe/reader-closed",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kClose, 0}, {D::kPoll, 0b10, kAll}, {D::kWrite, 1, 3}});
  for (int chunk : {1000, 4096, 5000, 65536, 100000}) {
    add(absl::StrCat("pipe/fill-", chunk),
        {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kFill, 1, chunk}, {D::kPoll, 0b11, kAll},
         {D::kRead, 0, 4096}, {D::kPoll, 0b10, kAll}, {D::kDrain, 0}, {D::kFill, 1, chunk}});
  }
  add("pipe/bad-flags", {{D::kPipe, 0, 1, O_APPEND}, {D::kPipe, 0, 1, O_CLOEXEC},
                         {D::kFcntl, 0, F_GETFD}, {D::kFcntl, 1, F_GETFD}});
  // ---- eventfd
  add("eventfd/counter",
      {{D::kEventfd, 0, 3, EFD_NONBLOCK}, {D::kPoll, 0b1, kAll}, {D::kRead8, 0},
       {D::kRead8, 0}, {D::kPoll, 0b1, kAll}, {D::kWrite8, 0, 7}, {D::kWrite8, 0, 0},
       {D::kRead8, 0, 4}, {D::kWrite8, 0, 1, 4}, {D::kWrite8, 0, 1, 16}, {D::kRead8, 0, 16},
       {D::kInq, 0},
       {D::kFcntl, 0, F_GETFL}});
  add("eventfd/semaphore",
      {{D::kEventfd, 0, 2, EFD_NONBLOCK | EFD_SEMAPHORE}, {D::kRead8, 0}, {D::kRead8, 0},
       {D::kRead8, 0}, {D::kWrite8, 0, 5}, {D::kRead8, 0}, {D::kPoll, 0b1, kAll}});
  add("eventfd/overflow",
      {{D::kEventfd, 0, 0, EFD_NONBLOCK}, {D::kWriteMax, 0}, {D::kPoll, 0b1, kAll},
       {D::kWrite8, 0, 1}, {D::kPoll, 0b1, kAll}, {D::kWrite8, 0, 2}, {D::kWrite8, 0, -1},
       {D::kRead8, 0}, {D::kPoll, 0b1, kAll}});
  add("eventfd/bad-flags", {{D::kEventfd, 0, 0, 0x4242}, {D::kEventfd, 0, 0, EFD_CLOEXEC},
                            {D::kFcntl, 0, F_GETFD}});
  // ---- timerfd
  add("timerfd/oneshot",
      {{D::kTimerfd, 0, TFD_NONBLOCK}, {D::kTimerGet, 0}, {D::kRead8, 0}, {D::kPoll, 0b1, kAll},
       {D::kTimerSet, 0, 1, 0}, {D::kSleep, 30}, {D::kPoll, 0b1, kAll}, {D::kRead8, 0},
       {D::kRead8, 0}, {D::kTimerGet, 0}, {D::kRead8, 0, 4}});
  add("timerfd/interval",
      {{D::kTimerfd, 0, TFD_NONBLOCK}, {D::kTimerSet, 0, 1, 100000}, {D::kSleep, 30},
       {D::kTimerGet, 0}, {D::kRead8, 0}, {D::kRead8, 0}, {D::kTimerSet, 0, 0, 0},
       {D::kTimerGet, 0}, {D::kTimerSet, 0, 100000, 0}, {D::kTimerGet, 0},
       {D::kTimerSet, 0, 0, 0}, {D::kFcntl, 0, F_GETFL}, {D::kWrite8, 0, 1}});
  add("timerfd/epoll",
      {{D::kTimerfd, 0, TFD_NONBLOCK}, {D::kEpoll, 1}, {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn},
       {D::kWait, 1, 4}, {D::kTimerSet, 0, 1, 0}, {D::kSleep, 30}, {D::kWait, 1, 4},
       {D::kRead8, 0}, {D::kWait, 1, 4}});
  add("timerfd/abstime-past",
      {{D::kTimerfd, 0, TFD_NONBLOCK}, {D::kTimerSet, 0, 1, 0, TFD_TIMER_ABSTIME},
       {D::kPoll, 0b1, kAll}, {D::kRead8, 0}, {D::kTimerGet, 0}, {D::kRead8, 0},
       {D::kTimerSet, 0, 1, 100000, TFD_TIMER_ABSTIME}, {D::kTimerGet, 0}, {D::kRead8, 0, 7},
       {D::kTimerSet, 0, 0, 0, TFD_TIMER_ABSTIME}, {D::kTimerGet, 0}});
  add("timerfd/bad", {{D::kTimerfd, 0, 0x4242}, {D::kTimerfd, 0, TFD_NONBLOCK},
                      {D::kTimerSet, 0, 1, 0, 0x4242}});
  // ---- epoll
  add("epoll/level-triggered",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kEpoll, 2}, {D::kCtl, 2, EPOLL_CTL_ADD, 0, kIn},
       {D::kCtl, 2, EPOLL_CTL_ADD, 1, kOut}, {D::kWait, 2, 8}, {D::kWrite, 1, 3},
       {D::kWait, 2, 8}, {D::kWait, 2, 1}, {D::kWait, 2, 1}, {D::kRead, 0, 3}, {D::kWait, 2, 8},
       {D::kPoll, 0b100, kAll}});
  add("epoll/edge-triggered",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kEpoll, 2}, {D::kCtl, 2, EPOLL_CTL_ADD, 0, static_cast<int>(kIn | EPOLLET)},
       {D::kWait, 2, 8}, {D::kWrite, 1, 3}, {D::kWait, 2, 8}, {D::kWait, 2, 8},
       {D::kWrite, 1, 1}, {D::kWait, 2, 8}, {D::kRead, 0, 1}, {D::kWait, 2, 8},
       {D::kCtl, 2, EPOLL_CTL_MOD, 0, static_cast<int>(kIn | EPOLLET)}, {D::kWait, 2, 8}, {D::kWait, 2, 8}});
  add("epoll/oneshot",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEpoll, 1},
       {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn | EPOLLONESHOT}, {D::kWait, 1, 4}, {D::kWait, 1, 4},
       {D::kCtl, 1, EPOLL_CTL_MOD, 0, kIn | kOut}, {D::kWait, 1, 4}, {D::kWait, 1, 4}});
  add("epoll/ctl-errors",
      {{D::kEventfd, 0, 0, EFD_NONBLOCK}, {D::kEpoll, 1}, {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn},
       {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn}, {D::kCtl, 1, EPOLL_CTL_MOD, 2, kIn},
       {D::kCtl, 1, EPOLL_CTL_DEL, 2}, {D::kEventfd, 2, 0, EFD_NONBLOCK},
       {D::kCtl, 1, EPOLL_CTL_MOD, 2, kIn}, {D::kCtl, 1, EPOLL_CTL_DEL, 2},
       {D::kCtl, 1, EPOLL_CTL_ADD, -1, kIn}, {D::kCtl, 1, EPOLL_CTL_ADD, 1, kIn},
       {D::kCtl, 1, 42, 0, kIn}, {D::kCtl, 0, EPOLL_CTL_ADD, 2, kIn},
       {D::kCtl, -1, EPOLL_CTL_ADD, 2, kIn}, {D::kCtl, 1, EPOLL_CTL_DEL, 0},
       {D::kCtl, 1, EPOLL_CTL_DEL, 0}, {D::kWait, 1, 0}, {D::kWait, 0, 1},
       {D::kCtl, 1, EPOLL_CTL_MOD, 2, kIn | EPOLLEXCLUSIVE}, {D::kEpoll, 3, 0x4242},
       {D::kEpoll, 3, EPOLL_CLOEXEC}, {D::kFcntl, 3, F_GETFD}});
  add("epoll/nested",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEpoll, 1}, {D::kEpoll, 2},
       {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn}, {D::kCtl, 2, EPOLL_CTL_ADD, 1, kIn},
       {D::kWait, 2, 4}, {D::kPoll, 0b110, kAll}, {D::kRead8, 0}, {D::kWait, 2, 4}});
  add("epoll/close-removes",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEpoll, 1}, {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn},
       {D::kWait, 1, 4}, {D::kClose, 0}, {D::kWait, 1, 4}});
  add("epoll/dup-keeps-registration",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEpoll, 1}, {D::kCtl, 1, EPOLL_CTL_ADD, 0, kIn},
       {D::kDup, 0, 0, 2}, {D::kCtl, 1, EPOLL_CTL_ADD, 2, kIn}, {D::kWait, 1, 4},
       {D::kClose, 0}, {D::kWait, 1, 4}, {D::kCtl, 1, EPOLL_CTL_DEL, 2}, {D::kWait, 1, 4},
       {D::kClose, 2}, {D::kWait, 1, 4}});
  add("epoll/socketpair-hup",
      {{D::kPair, 0, 1, SOCK_STREAM | kNb}, {D::kEpoll, 2},
       {D::kCtl, 2, EPOLL_CTL_ADD, 0, kIn | kOut | EPOLLRDHUP}, {D::kWait, 2, 4},
       {D::kClose, 1}, {D::kWait, 2, 4}});
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    add(absl::StrCat("epoll/socketpair-writer-edge-", type),
        {{D::kPair, 0, 1, type | kNb}, {D::kEpoll, 2},
         {D::kCtl, 2, EPOLL_CTL_ADD, 0, static_cast<int>(kOut | EPOLLET)}, {D::kWait, 2, 4},
         {D::kFill, 0, 1000}, {D::kWait, 2, 4}, {D::kRecv, 1, 1000}, {D::kWait, 2, 4},
         {D::kPoll, 0b1, kAll}, {D::kDrain, 1}, {D::kWait, 2, 4}, {D::kWait, 2, 4}});
  }
  // ep_poll_callback ignores wakeups whose key does not match the entry's events.
  add("epoll/et-wakeup-keys",
      {{D::kPair, 0, 1, SOCK_DGRAM | kNb}, {D::kEventfd, 2, 0, EFD_NONBLOCK}, {D::kPipe, 3, 4, O_NONBLOCK},
       {D::kEpoll, 5}, {D::kCtl, 5, EPOLL_CTL_ADD, 1, static_cast<int>(kOut | EPOLLET)},
       {D::kCtl, 5, EPOLL_CTL_ADD, 2, static_cast<int>(kIn | kOut | EPOLLET)},
       {D::kCtl, 5, EPOLL_CTL_ADD, 4, static_cast<int>(kOut | EPOLLET)}, {D::kWait, 5, 8},
       {D::kSend, 0, 2}, {D::kWrite, 4, 3}, {D::kWait, 5, 8}, {D::kWrite8, 2, 0}, {D::kWait, 5, 8},
       {D::kRead, 3, 1}, {D::kWait, 5, 8}, {D::kRead8, 2}, {D::kWait, 5, 8}, {D::kRecv, 1, 8},
       {D::kWait, 5, 8}});
  // The ready list is in the order of the wakeups that put entries on it (not their
  // registration order); waits report it unsorted.
  add("epoll/ready-order-is-wakeup-order",
      {{D::kEventfd, 0, 0, EFD_NONBLOCK}, {D::kEventfd, 1, 0, EFD_NONBLOCK},
       {D::kPipe, 2, 3, O_NONBLOCK}, {D::kEpoll, 4}, {D::kCtl, 4, EPOLL_CTL_ADD, 0, kIn},
       {D::kCtl, 4, EPOLL_CTL_ADD, 1, kIn}, {D::kCtl, 4, EPOLL_CTL_ADD, 2, kIn},
       {D::kWrite8, 1, 1}, {D::kWrite, 3, 2}, {D::kWrite8, 0, 1}, {D::kWait, 4, 8},
       {D::kWait, 4, 1}, {D::kWait, 4, 8}, {D::kRead8, 2}, {D::kWait, 4, 8}});
  // MOD of an entry on the list keeps its place; DEL and ADD again puts it at the back;
  // maxevents 1 rotates level-triggered entries; entries not reached keep their place.
  add("epoll/ready-order-after-modifications",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEventfd, 1, 1, EFD_NONBLOCK},
       {D::kEventfd, 2, 1, EFD_NONBLOCK}, {D::kEpoll, 3}, {D::kCtl, 3, EPOLL_CTL_ADD, 0, kIn},
       {D::kCtl, 3, EPOLL_CTL_ADD, 1, kIn}, {D::kCtl, 3, EPOLL_CTL_ADD, 2, kIn},
       {D::kCtl, 3, EPOLL_CTL_MOD, 0, kIn | kOut}, {D::kWait, 3, 8},
       {D::kCtl, 3, EPOLL_CTL_DEL, 1}, {D::kCtl, 3, EPOLL_CTL_ADD, 1, kIn}, {D::kWait, 3, 8},
       {D::kWait, 3, 1}, {D::kWait, 3, 2}, {D::kWait, 3, 8}, {D::kRead8, 2},
       {D::kWait, 3, 8}, {D::kWrite8, 2, 1}, {D::kWait, 3, 8}});
  // A description closed while its entry is on the ready list is never reported again.
  add("epoll/closed-while-on-the-ready-list",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEventfd, 1, 1, EFD_NONBLOCK}, {D::kEpoll, 2},
       {D::kCtl, 2, EPOLL_CTL_ADD, 0, kIn}, {D::kCtl, 2, EPOLL_CTL_ADD, 1, kIn},
       {D::kClose, 0}, {D::kWait, 2, 8}, {D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kWait, 2, 8},
       {D::kCtl, 2, EPOLL_CTL_ADD, 0, kIn}, {D::kWait, 2, 8}});
  // EPOLLONESHOT: disabled after one report (wakeups do not queue it), re-armed by MOD,
  // which queues it at the back when ready.
  add("epoll/oneshot-rearm-order",
      {{D::kEventfd, 0, 1, EFD_NONBLOCK}, {D::kEventfd, 1, 0, EFD_NONBLOCK}, {D::kEpoll, 2},
       {D::kCtl, 2, EPOLL_CTL_ADD, 0, kIn | EPOLLONESHOT}, {D::kCtl, 2, EPOLL_CTL_ADD, 1, kIn},
       {D::kWait, 2, 8}, {D::kWrite8, 0, 1}, {D::kWrite8, 1, 1}, {D::kWait, 2, 8},
       {D::kCtl, 2, EPOLL_CTL_MOD, 0, kIn | EPOLLONESHOT}, {D::kWait, 2, 8}, {D::kWait, 2, 8}});
  // Edge-triggered entries join the list at each matching wakeup, in wakeup order.
  add("epoll/edge-triggered-wakeup-order",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kPipe, 2, 3, O_NONBLOCK}, {D::kEpoll, 4},
       {D::kCtl, 4, EPOLL_CTL_ADD, 0, static_cast<int>(kIn | EPOLLET)},
       {D::kCtl, 4, EPOLL_CTL_ADD, 2, static_cast<int>(kIn | EPOLLET)}, {D::kWait, 4, 8},
       {D::kWrite, 3, 1}, {D::kWrite, 1, 1}, {D::kWait, 4, 8}, {D::kWait, 4, 8},
       {D::kWrite, 1, 1}, {D::kWrite, 3, 1}, {D::kWait, 4, 8}});
  // ---- fcntl and dup
  add("fcntl/flags",
      {{D::kPipe, 0, 1, 0}, {D::kFcntl, 0, F_GETFL}, {D::kFcntl, 0, F_SETFL, O_NONBLOCK | O_APPEND},
       {D::kFcntl, 0, F_GETFL}, {D::kFcntl, 0, F_GETFD}, {D::kFcntl, 0, F_SETFD, FD_CLOEXEC},
       {D::kFcntl, 0, F_GETFD}, {D::kFcntl, 0, F_DUPFD, 0, 2}, {D::kFcntl, 2, F_GETFL},
       {D::kFcntl, 2, F_GETFD}, {D::kFcntl, 0, F_DUPFD_CLOEXEC, 0, 3}, {D::kFcntl, 3, F_GETFD},
       {D::kFcntl, 0, F_DUPFD, -1, 4}, {D::kFcntl, -1, F_GETFL}, {D::kRead, 2, 1},
       {D::kFcntl, 2, F_SETFL, 0}, {D::kFcntl, 0, F_GETFL}, {D::kFcntl, 1, F_SETFL, O_NONBLOCK}});
  add("dup/shared-description",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kDup, 1, 0, 2}, {D::kFcntl, 2, F_GETFL},
       {D::kFcntl, 1, F_SETFL, 0}, {D::kFcntl, 2, F_GETFL}, {D::kFcntl, 1, F_SETFL, O_NONBLOCK},
       {D::kClose, 1}, {D::kWrite, 2, 3}, {D::kRead, 0, 8}, {D::kPoll, 0b1, kAll},
       {D::kClose, 2}, {D::kPoll, 0b1, kAll}, {D::kRead, 0, 8}});
  add("dup/dup2-onto-open",
      {{D::kEventfd, 0, 5, EFD_NONBLOCK}, {D::kPipe, 1, 2, O_NONBLOCK}, {D::kDup, 0, 1, 1},
       {D::kRead8, 1}, {D::kFcntl, 2, F_GETFL}, {D::kPoll, 0b100, kAll}, {D::kDup, 0, 2, 2},
       {D::kFcntl, 2, F_GETFD}, {D::kDup, 0, 3}, {D::kDup, 0, 4}, {D::kRead8, 2}});
  add("dup/socketpair",
      {{D::kPair, 0, 1, SOCK_STREAM | kNb}, {D::kDup, 0, 0, 2}, {D::kClose, 0},
       {D::kSend, 2, 3}, {D::kRecv, 1, 8}, {D::kPoll, 0b010, kAll}, {D::kClose, 2},
       {D::kPoll, 0b010, kAll}, {D::kRecv, 1, 8}});
  add("dup/epoll-and-timerfd",
      {{D::kEpoll, 0}, {D::kDup, 0, 0, 1}, {D::kTimerfd, 2, TFD_NONBLOCK}, {D::kDup, 2, 0, 3},
       {D::kCtl, 1, EPOLL_CTL_ADD, 3, kIn}, {D::kCtl, 0, EPOLL_CTL_ADD, 3, kIn},
       {D::kTimerSet, 2, 1, 0}, {D::kSleep, 30}, {D::kWait, 0, 4}, {D::kRead8, 3}});
  // ---- select
  add("select/mixed",
      {{D::kPipe, 0, 1, O_NONBLOCK}, {D::kEventfd, 2, 1, EFD_NONBLOCK},
       {D::kPair, 3, 4, SOCK_DGRAM | kNb}, {D::kSelect, 0b11101, 0b11110},
       {D::kWrite, 1, 1}, {D::kSend, 3, 2}, {D::kSelect, 0b11101, 0}, {D::kClose, 1},
       {D::kRead, 0, 4}, {D::kSelect, 0b1, 0}, {D::kShutdown, 4, SHUT_RDWR},
       {D::kSelect, 0b10000, 0b10000}});
  return all;
}

// Seeded random sequences over a pipe, a socketpair (of a random type), an eventfd and
// an epoll instance watching some of them, with dup/dup2, close, shutdown, fcntl,
// reads and writes, poll and select mixed in. Every descriptor stays nonblocking (so
// nothing can hang the real side), epoll_wait asks for every ready entry and reports
// them in the order it gives (Linux's ready list: the order of the wakeups), and no
// timerfd (real time).
DSequence RandomSequence(uint64_t seed) {
  Random rng(seed);
  DSequence sequence{absl::StrCat("random-descriptors/seed-", seed), {}};
  const int pair_types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
  sequence.ops.push_back({D::kPipe, 0, 1, O_NONBLOCK});
  sequence.ops.push_back({D::kPair, 2, 3, pair_types[rng.Below(3)] | kNb});
  sequence.ops.push_back({D::kEventfd, 4, static_cast<int>(rng.Below(3)),
                          EFD_NONBLOCK | (rng.Bernoulli(0.3) ? EFD_SEMAPHORE : 0)});
  sequence.ops.push_back({D::kEpoll, 5});
  auto slot = [&] { return static_cast<int>(rng.Below(8)); };
  auto events = [&] {
    int e = 0;
    if (rng.Bernoulli(0.7)) e |= EPOLLIN;
    if (rng.Bernoulli(0.5)) e |= EPOLLOUT;
    if (rng.Bernoulli(0.3)) e |= EPOLLRDHUP;
    if (rng.Bernoulli(0.3)) e |= static_cast<int>(EPOLLET);
    if (rng.Bernoulli(0.2)) e |= EPOLLONESHOT;
    return e;
  };
  const int ops = 10 + static_cast<int>(rng.Below(25));
  for (int i = 0; i < ops; ++i) {
    const int s = slot();
    switch (rng.Below(18)) {
      case 0: case 1:
        sequence.ops.push_back({D::kWrite, s, 1 + static_cast<int>(rng.Below(8))});
        break;
      case 2: case 3:
        sequence.ops.push_back({D::kRead, s, static_cast<int>(rng.Below(10))});
        break;
      case 4: {
        const int flags[] = {0, MSG_PEEK, MSG_DONTWAIT, MSG_TRUNC, MSG_WAITALL};
        sequence.ops.push_back({D::kRecv, s, 1 + static_cast<int>(rng.Below(8)),
                                flags[rng.Below(5)]});
        break;
      }
      case 5: sequence.ops.push_back({D::kWrite8, s, 1 + static_cast<int>(rng.Below(3))}); break;
      case 6: sequence.ops.push_back({D::kShutdown, s, static_cast<int>(rng.Below(3))}); break;
      case 7:
        if (rng.Bernoulli(0.3)) sequence.ops.push_back({D::kClose, s});
        break;
      case 8: {
        const int variant = static_cast<int>(rng.Below(2));  // dup, or dup2 onto the target.
        sequence.ops.push_back({D::kDup, s, variant, 6 + static_cast<int>(rng.Below(2))});
        break;
      }
      case 9: case 10: {
        const int operations[] = {EPOLL_CTL_ADD, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
        sequence.ops.push_back({D::kCtl, 5, operations[rng.Below(4)], s, events()});
        break;
      }
      case 11: case 12: sequence.ops.push_back({D::kWait, 5, 16, 0}); break;
      case 13: sequence.ops.push_back({D::kPoll, 0xff, kAll}); break;
      case 14:
        sequence.ops.push_back({D::kSelect, static_cast<int>(rng.Below(256)),
                                static_cast<int>(rng.Below(256))});
        break;
      case 15:
        if (rng.Bernoulli(0.5)) {
          sequence.ops.push_back({D::kFcntl, s, F_GETFL});
        } else {
          sequence.ops.push_back({D::kInq, s});
        }
        break;
      case 16: {
        // Up to full buffers: the exact byte counts and the writable edges after.
        const int chunks[] = {1000, 4096, 65536};
        sequence.ops.push_back({D::kFill, s, chunks[rng.Below(3)]});
        break;
      }
      case 17: sequence.ops.push_back({D::kDrain, s}); break;
    }
  }
  sequence.ops.push_back({D::kWait, 5, 16, 0});
  return sequence;
}

int RandomSequenceCount() {
  const char* env = std::getenv("DSIM_DIFFERENTIAL_RANDOM_DESCRIPTORS");
  return env != nullptr ? std::atoi(env) : 150;
}

std::vector<std::string> RunSimulated(const DSequence& sequence) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  std::vector<std::string> results;
  host.Spawn("sequence", [&] {
    Executor executor;
    results = executor.Run(sequence);
  });
  const RunResult run = scheduler.Run();
  if (!run.ok()) results.push_back(absl::StrCat("RUN FAILED: ", run.ToString()));
  return results;
}

}  // namespace

std::vector<DescriptorRun> RunDescriptorSequences() {
  std::vector<DescriptorRun> runs;
  std::vector<DSequence> sequences = Sequences();
  for (int i = 0; i < RandomSequenceCount(); ++i) sequences.push_back(RandomSequence(20000 + i));
  for (const DSequence& sequence : sequences) {
    DescriptorRun run;
    run.name = sequence.name;
    {
      Executor executor;
      run.linux_results = executor.Run(sequence);
    }
    run.dsim_results = RunSimulated(sequence);
    for (const DOp& op : sequence.ops) {
      run.ops.push_back(absl::StrCat("kind=", static_cast<int>(op.kind), " ", op.a, ",", op.b,
                                     ",", op.c, ",", op.d));
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace dsim::differential
