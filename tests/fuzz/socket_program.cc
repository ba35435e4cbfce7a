#include "tests/fuzz/socket_program.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/faults.h"
#include "sim/simulation.h"
#include "sockets/socket.h"

namespace dsim::fuzz {
namespace {

// Reads the input as a stream of small numbers; an exhausted input reads as zeros
// (and `done()` says so, which ends every op list).
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Next() { return position_ < size_ ? data_[position_++] : 0; }
  // A value in [0, n).
  uint32_t Below(uint32_t n) { return n == 0 ? 0 : Next() % n; }
  uint16_t Next16() { return static_cast<uint16_t>(Next() | (Next() << 8)); }
  bool done() const { return position_ >= size_; }
  // The rest of the input, split off for a task (each task reads its own slice, so the
  // order in which tasks run does not change what they decode).
  Bytes Take(size_t n) {
    const size_t start = std::min(position_, size_);
    const size_t length = std::min(n, size_ - start);
    position_ = start + length;
    return Bytes(data_ + start, length);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

constexpr int kSlots = 6;
constexpr int kHosts = 3;
const char* const kHostAddresses[kHosts][2] = {
    {"10.0.0.1", "fd00::1"}, {"10.0.0.2", "fd00::2"}, {"10.0.0.3", nullptr}};

// Descriptor slots shared by the tasks of one host incarnation, so tasks race on them.
struct HostSlots {
  std::array<int, kSlots> fds;
  HostSlots() { fds.fill(-1); }
};

// An address out of a small set: every host, loopback, wildcards, nobody's, IPv6.
socklen_t PickAddress(Bytes& in, sockaddr_storage* out, const HostSlots& slots) {
  static const char* const kTexts[] = {"10.0.0.1", "10.0.0.2",  "10.0.0.3", "127.0.0.1",
                                       "0.0.0.0",  "10.0.0.99", "::1",      "::",
                                       "fd00::1",  "fd00::2",   "::ffff:127.0.0.1",
                                       "::ffff:10.0.0.1"};
  const uint16_t ports[] = {80, 81, 53, 0};
  uint16_t port = ports[in.Below(4)];
  const uint32_t pick = in.Below(16);
  if (pick >= 14) {
    // The port of a slot's socket (a connected or listening one, maybe).
    sockaddr_storage local;
    socklen_t length = sizeof(local);
    const int fd = slots.fds[in.Below(kSlots)];
    if (fd >= 0 && Getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      port = ntohs(local.ss_family == AF_INET6
                       ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    }
  }
  socklen_t length = MakeSockaddr(kTexts[pick % 12], port, out);
  switch (in.Below(16)) {
    case 0: length = static_cast<socklen_t>(in.Below(32)); break;  // Odd lengths.
    case 1: out->ss_family = static_cast<sa_family_t>(in.Below(12)); break;
    default: break;
  }
  return length;
}

// Mostly an open descriptor (so calls get past EBADF), sometimes any slot or a bad one.
int PickFd(Bytes& in, const HostSlots& slots) {
  const uint32_t pick = in.Below(16);
  if (pick < 10) {
    int open[kSlots];
    int count = 0;
    for (int fd : slots.fds) {
      if (fd >= 0) open[count++] = fd;
    }
    if (count > 0) return open[in.Below(count)];
  }
  if (pick < 12 + kSlots - 6) return slots.fds[in.Below(kSlots)];
  const int odd[] = {-1, 0, 999, 1 << 30};
  return odd[in.Below(4)];
}

// Whole steps that get a program somewhere: a listener on :80 or :81, a client
// connected to one (blocking, with a deadline), a bound datagram socket on :53.
void Macro(Bytes& in, HostSlots& slots, int slot) {
  const bool v6 = in.Below(4) == 0;
  const uint16_t port = in.Below(2) == 0 ? 80 : 81;
  sockaddr_storage address;
  socklen_t length;
  int fd = -1;
  switch (in.Below(3)) {
    case 0: {
      fd = Socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
      const int on = 1;
      if (in.Below(2) == 0) Setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
      length = MakeSockaddr(v6 ? "::" : "0.0.0.0", port, &address);
      Bind(fd, reinterpret_cast<sockaddr*>(&address), length);
      Listen(fd, static_cast<int>(in.Below(4)));
      break;
    }
    case 1: {
      static const char* const kV4[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1"};
      static const char* const kV6[] = {"fd00::1", "fd00::2", "::1", "::ffff:10.0.0.3"};
      fd = Socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | (in.Below(3) == 0 ? SOCK_NONBLOCK : 0),
                  0);
      length = MakeSockaddr(v6 ? kV6[in.Below(4)] : kV4[in.Below(4)], port, &address);
      SetWriteDeadline(fd, dsim::Now() + absl::Milliseconds(10 + in.Below(500)));
      Connect(fd, reinterpret_cast<sockaddr*>(&address), length);
      SetWriteDeadline(fd, absl::InfiniteFuture());
      break;
    }
    default:
      fd = Socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
      length = MakeSockaddr(v6 ? "::" : "0.0.0.0", 53, &address);
      Bind(fd, reinterpret_cast<sockaddr*>(&address), length);
      break;
  }
  if (fd >= 0) slots.fds[slot] = fd;
}

// A buffer argument: a real one, null, or one past the end of user space (EFAULT).
char* PickBuffer(Bytes& in, char* real) {
  switch (in.Below(12)) {
    case 0: return nullptr;
    case 1: return reinterpret_cast<char*>(~uintptr_t{0} - 64);
    default: return real;
  }
}

// One call, decoded from the input; the result goes nowhere but the trace (every socket
// call is annotated with its result).
void OneCall(Bytes& in, HostSlots& slots) {
  char buffer[256];
  std::memset(buffer, 'x', sizeof(buffer));
  const int slot = static_cast<int>(in.Below(kSlots));
  const int fd = PickFd(in, slots);
  const size_t length = in.Below(6) == 0 ? in.Next16() % sizeof(buffer) : in.Below(16);
  sockaddr_storage address;
  std::memset(&address, 0, sizeof(address));
  switch (in.Below(44)) {
    case 0:
    case 1: {
      const int domains[] = {AF_INET, AF_INET6, AF_UNIX, -1};
      const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, 77};
      const int flags[] = {0, SOCK_NONBLOCK, SOCK_CLOEXEC, 0x100000};
      const int protocols[] = {0, IPPROTO_TCP, IPPROTO_UDP, -1};
      const bool odd = in.Below(6) == 0;
      const int r = Socket(domains[odd ? in.Below(4) : in.Below(2)],
                           types[odd ? in.Below(4) : in.Below(2)] |
                               flags[odd ? in.Below(4) : in.Below(3)],
                           protocols[odd ? in.Below(4) : 0]);
      if (r >= 0) {
        if (slots.fds[slot] >= 0 && in.Below(2) == 0) Close(slots.fds[slot]);
        slots.fds[slot] = r;
      }
      break;
    }
    case 2: {
      const socklen_t l = PickAddress(in, &address, slots);
      Bind(fd, in.Below(16) == 0 ? nullptr : reinterpret_cast<sockaddr*>(&address), l);
      break;
    }
    case 3: Listen(fd, static_cast<int>(in.Below(6)) - 1); break;
    case 4:
    case 5: {
      socklen_t l = static_cast<socklen_t>(in.Below(4) == 0 ? in.Below(40) : sizeof(address));
      const bool with_address = in.Below(2) == 0;
      const int flags[] = {0, SOCK_NONBLOCK, SOCK_CLOEXEC, 0x4000};
      if (in.Below(2) == 0) SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(in.Next()));
      const int r = Accept4(fd, with_address ? reinterpret_cast<sockaddr*>(&address) : nullptr,
                            with_address && in.Below(8) != 0 ? &l : nullptr, flags[in.Below(4)]);
      if (r >= 0) slots.fds[slot] = r;
      break;
    }
    case 6:
    case 7: {
      const socklen_t l = PickAddress(in, &address, slots);
      if (in.Below(2) == 0) SetWriteDeadline(fd, dsim::Now() + absl::Milliseconds(in.Next()));
      Connect(fd, reinterpret_cast<sockaddr*>(&address), l);
      break;
    }
    case 8: {
      const int flags[] = {0, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_OOB, MSG_MORE};
      Send(fd, PickBuffer(in, buffer), length, flags[in.Below(5)]);
      break;
    }
    case 9: {
      const int flags[] = {0, MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL | MSG_DONTWAIT, MSG_TRUNC,
                           MSG_OOB, MSG_ERRQUEUE};
      if (in.Below(2) == 0) SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(in.Next()));
      Recv(fd, PickBuffer(in, buffer), length, flags[in.Below(7)]);
      break;
    }
    case 10: Write(fd, PickBuffer(in, buffer), length); break;
    case 11:
      if (in.Below(2) == 0) SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(in.Next()));
      Read(fd, PickBuffer(in, buffer), length);
      break;
    case 12: {
      const socklen_t l = PickAddress(in, &address, slots);
      Sendto(fd, PickBuffer(in, buffer), length, in.Below(2) == 0 ? 0 : MSG_DONTWAIT,
             in.Below(8) == 0 ? nullptr : reinterpret_cast<sockaddr*>(&address), l);
      break;
    }
    case 13: {
      socklen_t l = static_cast<socklen_t>(in.Below(3) == 0 ? in.Below(40) : sizeof(address));
      Recvfrom(fd, PickBuffer(in, buffer), length, MSG_DONTWAIT,
               reinterpret_cast<sockaddr*>(&address), in.Below(8) == 0 ? nullptr : &l);
      break;
    }
    case 14:
    case 15: {
      // sendmsg/recvmsg/writev/readv over up to 4 iovecs, some null.
      iovec iov[4];
      const int count = static_cast<int>(in.Below(5));
      for (int i = 0; i < 4; ++i) {
        iov[i] = {in.Below(6) == 0 ? nullptr : buffer + 64 * i, in.Below(64)};
      }
      msghdr message{};
      message.msg_iov = in.Below(10) == 0 ? nullptr : iov;
      message.msg_iovlen = static_cast<size_t>(count);
      const socklen_t l = PickAddress(in, &address, slots);
      if (in.Below(3) == 0) {
        message.msg_name = &address;
        message.msg_namelen = l;
      }
      switch (in.Below(4)) {
        case 0: Sendmsg(fd, in.Below(12) == 0 ? nullptr : &message, MSG_DONTWAIT); break;
        case 1: Recvmsg(fd, &message, MSG_DONTWAIT | (in.Below(3) == 0 ? MSG_PEEK : 0)); break;
        case 2: Writev(fd, message.msg_iov, in.Below(10) == 0 ? -1 : count); break;
        default: Readv(fd, message.msg_iov, in.Below(10) == 0 ? 2000 : count); break;
      }
      break;
    }
    case 16:
    case 17: {
      // sendmmsg/recvmmsg over up to 3 messages.
      iovec iov[3];
      mmsghdr messages[3];
      std::memset(messages, 0, sizeof(messages));
      for (int i = 0; i < 3; ++i) {
        iov[i] = {buffer + 32 * i, in.Below(32)};
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
      }
      const unsigned count = in.Below(4);
      if (in.Below(2) == 0) {
        Sendmmsg(fd, in.Below(10) == 0 ? nullptr : messages, count, MSG_DONTWAIT);
      } else {
        timespec timeout{0, static_cast<long>(in.Next()) * 1'000'000};
        if (in.Below(8) == 0) timeout.tv_nsec = -1;
        const int flags[] = {MSG_DONTWAIT, MSG_WAITFORONE | MSG_DONTWAIT, MSG_PEEK | MSG_DONTWAIT};
        Recvmmsg(fd, messages, count, flags[in.Below(3)], in.Below(2) == 0 ? &timeout : nullptr);
      }
      break;
    }
    case 18: Shutdown(fd, static_cast<int>(in.Below(4))); break;
    case 19:
      Close(fd);
      for (int& f : slots.fds) {
        if (f == fd) f = -1;
      }
      break;
    case 20:
    case 21: {
      socklen_t l = static_cast<socklen_t>(in.Below(3) == 0 ? in.Below(40) : sizeof(address));
      if (in.Below(2) == 0) {
        Getsockname(fd, reinterpret_cast<sockaddr*>(&address), in.Below(10) == 0 ? nullptr : &l);
      } else {
        Getpeername(fd, reinterpret_cast<sockaddr*>(&address), &l);
      }
      break;
    }
    case 22:
    case 23: {
      const int levels[] = {SOL_SOCKET, IPPROTO_TCP, IPPROTO_IPV6, IPPROTO_IP, 12345};
      const int names[] = {SO_TYPE,    SO_ERROR,     SO_ACCEPTCONN, SO_RCVBUF,  SO_SNDBUF,
                           SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_LINGER, SO_RCVTIMEO,
                           SO_SNDTIMEO, TCP_NODELAY,  TCP_KEEPIDLE, TCP_KEEPINTVL,
                           TCP_KEEPCNT, IPV6_V6ONLY,  9999};
      const int level = levels[in.Below(5)];
      const int name = names[in.Below(17)];
      char value[64];
      std::memset(value, 0, sizeof(value));
      const int v = static_cast<int>(in.Next16()) - 100;
      std::memcpy(value, &v, sizeof(v));
      socklen_t l = static_cast<socklen_t>(in.Below(5) == 0 ? in.Below(64) : 16);
      if (in.Below(2) == 0) {
        Getsockopt(fd, level, name, in.Below(10) == 0 ? nullptr : value,
                   in.Below(10) == 0 ? nullptr : &l);
      } else {
        Setsockopt(fd, level, name, in.Below(10) == 0 ? nullptr : value, l);
      }
      break;
    }
    case 24: {
      pollfd fds[4];
      const nfds_t count = in.Below(5);
      for (nfds_t i = 0; i < 4; ++i) {
        fds[i] = {PickFd(in, slots), static_cast<short>(in.Next()), 0};
      }
      Poll(in.Below(12) == 0 ? nullptr : fds, count, static_cast<int>(in.Below(30)) - 1);
      break;
    }
    case 25: {
      const int cmds[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD, F_DUPFD_CLOEXEC, 9999};
      const long args[] = {0, O_NONBLOCK, FD_CLOEXEC, O_APPEND | O_NONBLOCK, O_DIRECT, 5, -1};
      const int r = Fcntl(fd, cmds[in.Below(7)], args[in.Below(7)]);
      (void)r;
      break;
    }
    case 26: {
      const unsigned long requests[] = {FIONREAD, SIOCOUTQ, FIONBIO, FIOASYNC, FIOCLEX,
                                        FIONCLEX, 0x5401};
      int value = static_cast<int>(in.Below(3));
      Ioctl(fd, requests[in.Below(7)], in.Below(10) == 0 ? nullptr : &value);
      break;
    }
    case 27: {
      int r = -1;
      const int target = PickFd(in, slots);
      switch (in.Below(3)) {
        case 0: r = Dup(fd); break;
        case 1: r = Dup2(fd, target); break;
        default: r = Dup3(fd, target, in.Below(3) == 0 ? 0x40 : O_CLOEXEC); break;
      }
      if (r >= 0 && r != target) slots.fds[slot] = r;
      break;
    }
    case 28: SetNonblock(fd, in.Below(2) == 0); break;
    case 29: SetDeadline(fd, dsim::Now() + absl::Milliseconds(in.Next())); break;
    case 30: GetFlags(fd); break;
    case 31: dsim::SleepFor(absl::Milliseconds(in.Below(50))); break;
    case 32: dsim::Yield(); break;
    case 33:
    case 34:
    case 35:
    case 36:
    case 37:
    case 38: Macro(in, slots, slot); break;
    default: {
      // A whole exchange on one socket: write then read what came.
      Write(fd, buffer, length);
      SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(20));
      Read(fd, buffer, sizeof(buffer));
      break;
    }
  }
  (void)LastSocketErrorMessage();
}

void RunCalls(Bytes in, const std::shared_ptr<HostSlots>& slots) {
  for (int i = 0; i < 48 && !in.done(); ++i) OneCall(in, *slots);
}

// The chaos task: faults between the hosts, with sleeps between them.
void Chaos(Bytes in, Simulation& sim, const std::vector<HostId>& hosts) {
  std::vector<PartitionId> cuts;
  for (int i = 0; i < 12 && !in.done(); ++i) {
    dsim::SleepFor(absl::Milliseconds(1 + in.Below(200)));
    const HostId a = hosts[in.Below(kHosts)];
    const HostId b = hosts[in.Below(kHosts)];
    switch (in.Below(9)) {
      case 0: cuts.push_back(sim.Partition({a}, {b}, in.Below(2) == 0)); break;
      case 1:
        if (!cuts.empty()) {
          sim.Heal(cuts.back());
          cuts.pop_back();
        }
        break;
      case 2: sim.Hold(a, b); break;
      case 3: sim.Release(a, b); break;
      case 4: sim.Pause(a); break;
      case 5: sim.Resume(a); break;
      case 6: sim.Crash(a); break;
      case 7: sim.Restart(a); break;
      default: sim.InjectReset(a, b); break;
    }
  }
}

}  // namespace

uint64_t RunSocketProgram(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  SimulationOptions options;
  options.seed = in.Next();
  options.max_steps = 200'000;
  LinkFaults& link = options.faults.link;
  const uint8_t faults = in.Next();
  if (faults & 1) {
    link.latency = LatencyModel::Exponential(absl::Microseconds(50), absl::Microseconds(500))
                       .WithJitter(absl::Microseconds(20));
  }
  if (faults & 2) link.segment_loss_probability = 0.1;
  if (faults & 4) link.datagram_loss_probability = 0.2;
  if (faults & 8) link.datagram_duplicate_probability = 0.1;
  if (faults & 16) link.bandwidth_bytes_per_second = 1'000'000;
  options.faults.buggify = (faults & 32) != 0;
  options.network.descriptors_per_host_max = 4 + in.Below(12);
  options.network.held_datagram_bytes_per_link_max = 4096;

  // Each host runs `tasks` tasks, each with its own slice of the input.
  const int tasks = 1 + static_cast<int>(in.Below(3));
  std::vector<std::string> slices;
  for (int h = 0; h < kHosts * tasks + 1; ++h) {
    const size_t n = 8 + in.Below(200);
    Bytes slice = in.Take(n);
    std::string bytes;
    while (!slice.done()) bytes.push_back(static_cast<char>(slice.Next()));
    slices.push_back(std::move(bytes));
  }

  Simulation sim(options);
  std::vector<HostId> ids;
  for (int h = 0; h < kHosts; ++h) {
    std::vector<std::string> addresses = {kHostAddresses[h][0]};
    if (kHostAddresses[h][1] != nullptr) addresses.push_back(kHostAddresses[h][1]);
    auto start = [&slices, h, tasks] {
      // Fresh slots per incarnation, shared by its tasks (they keep them alive).
      auto slots = std::make_shared<HostSlots>();
      for (int t = 1; t < tasks; ++t) {
        const std::string& mine = slices[h * tasks + t];
        dsim::Spawn(absl::StrCat("task", t), [slots, &mine] {
          RunCalls(Bytes(reinterpret_cast<const uint8_t*>(mine.data()), mine.size()), slots);
        });
      }
      const std::string& mine = slices[h * tasks];
      RunCalls(Bytes(reinterpret_cast<const uint8_t*>(mine.data()), mine.size()), slots);
    };
    ids.push_back(sim.AddHost({.name = absl::StrCat("h", h), .start = start,
                               .addresses = addresses})
                      .id());
  }
  const std::string& chaos = slices.back();
  sim.Spawn("chaos", [&] {
    Chaos(Bytes(reinterpret_cast<const uint8_t*>(chaos.data()), chaos.size()), sim, ids);
  });
  const RunResult result = sim.RunFor(absl::Seconds(5));
  if (std::getenv("DSIM_FUZZ_VERBOSE") != nullptr) {
    size_t calls = 0, failed = 0;
    for (const TraceEvent& e : sim.trace().events()) {
      if (e.category != "socket.call") continue;
      ++calls;
      if (e.detail.find("= -1") != std::string::npos) ++failed;
    }
    std::fprintf(stderr, "input %zu bytes: %s, %llu steps, %llu events, %zu socket calls "
                 "(%zu failed), %llu packets\n",
                 size, RunOutcomeName(result.outcome),
                 static_cast<unsigned long long>(result.steps),
                 static_cast<unsigned long long>(sim.trace().event_count()), calls, failed,
                 static_cast<unsigned long long>(sim.network().stats().packets_sent));
  }
  // The outcome joins the fingerprint: a run that ends differently is a different run.
  uint64_t fingerprint = sim.trace().fingerprint();
  fingerprint ^= static_cast<uint64_t>(result.outcome) * 0x9E3779B97F4A7C15ull;
  fingerprint ^= result.steps * 0xBF58476D1CE4E5B9ull;
  return fingerprint;
}

}  // namespace dsim::fuzz
