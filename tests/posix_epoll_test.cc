// A plain POSIX epoll echo server (no dsim calls in it) with an eventfd wakeup and a
// timerfd tick, against several clients under latency and loss, all inside a
// simulation through //posix. Level- and edge-triggered.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <cstdint>
#include <cstring>
#include <map>
#include <netdb.h>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"
#include "sockets/socket.h"

namespace {

struct ServerStats {
  int ticks = 0;
  int wakeups = 0;
  int connections = 0;
  size_t bytes = 0;
};

// The server, written as one would without dsim: nonblocking sockets, one epoll loop.
void EpollServer(bool edge_triggered, ServerStats* stats, int* wake_fd_out) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(7000);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) abort();
  if (listen(listener, 64) != 0) abort();
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  const int wake = eventfd(0, EFD_NONBLOCK);
  *wake_fd_out = wake;
  const int tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  itimerspec every{{0, 100000000}, {0, 100000000}};  // 100 ms.
  timerfd_settime(tick, 0, &every, nullptr);
  const uint32_t et = edge_triggered ? static_cast<uint32_t>(EPOLLET) : 0u;
  for (int fd : {listener, wake, tick}) {
    epoll_event event{};
    event.events = EPOLLIN | et;
    event.data.fd = fd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
  }
  std::map<int, std::string> pending;  // Unsent echo bytes per connection.
  for (;;) {
    epoll_event events[4];  // Fewer than the descriptors: the ready list must rotate.
    const int n = epoll_wait(epfd, events, 4, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        for (;;) {
          const int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
          if (c < 0) break;
          ++stats->connections;
          epoll_event event{};
          event.events = EPOLLIN | EPOLLRDHUP | et;
          event.data.fd = c;
          epoll_ctl(epfd, EPOLL_CTL_ADD, c, &event);
          if (!edge_triggered) break;  // Level-triggered: the rest come next round.
        }
      } else if (fd == wake) {
        uint64_t value;
        if (read(wake, &value, 8) == 8) stats->wakeups += static_cast<int>(value);
      } else if (fd == tick) {
        uint64_t expirations;
        if (read(tick, &expirations, 8) == 8) stats->ticks += static_cast<int>(expirations);
      } else {
        char buffer[512];
        bool closed = false;
        for (;;) {
          const ssize_t got = read(fd, buffer, sizeof(buffer));
          if (got > 0) {
            stats->bytes += static_cast<size_t>(got);
            pending[fd].append(buffer, static_cast<size_t>(got));
            if (!edge_triggered) break;
            continue;
          }
          closed = got == 0 || errno != EAGAIN;
          break;
        }
        std::string& out = pending[fd];
        while (!out.empty()) {
          const ssize_t sent = write(fd, out.data(), out.size());
          if (sent <= 0) break;  // The peer reads slowly; the rest goes next time.
          out.erase(0, static_cast<size_t>(sent));
        }
        if (closed && out.empty()) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          pending.erase(fd);
        }
      }
    }
  }
}

// A blocking client: sends `messages` lines, reads each echo back.
bool Client(int id, int messages) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(7000);
  inet_pton(AF_INET, "10.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return false;
  for (int m = 0; m < messages; ++m) {
    const std::string line = "client " + std::to_string(id) + " message " + std::to_string(m) +
                             std::string(static_cast<size_t>(m * 37 % 900), 'x') + "\n";
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = write(fd, line.data() + done, line.size() - done);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    std::string echo;
    while (echo.size() < line.size()) {
      char buffer[256];
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) return false;
      echo.append(buffer, static_cast<size_t>(n));
    }
    if (echo != line) return false;
    usleep(5000);
  }
  close(fd);
  return true;
}

struct Outcome {
  ServerStats stats;
  int clients_ok = 0;
  std::string fingerprint;
  std::vector<dsim::posix::EscapedCall> escapes;
};

Outcome RunEchoSimulation(uint64_t seed, bool edge_triggered) {
  dsim::SimulationOptions options{.seed = seed};
  options.faults.link = {
      .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200), absl::Microseconds(500)),
      .segment_loss_probability = 0.05,
  };
  Outcome outcome;
  int wake_fd = -1;
  dsim::Simulation sim(options);
  dsim::Host& server = sim.AddHost({.name = "server",
               .start = [&] { EpollServer(edge_triggered, &outcome.stats, &wake_fd); },
               .addresses = {"10.0.0.1"}});
  constexpr int kClients = 4;
  for (int c = 0; c < kClients; ++c) {
    sim.AddHost({.name = "client" + std::to_string(c),
                 .start = [&outcome, c] { outcome.clients_ok += Client(c, 6); },
                 .start_daemon = false,
                 .addresses = {"10.0.0." + std::to_string(10 + c)}});
  }
  server.Spawn("waker", [&] {
    for (int i = 0; i < 3; ++i) {
      usleep(150000);
      const uint64_t one = 1;
      write(wake_fd, &one, 8);  // Another task of the server's host wakes the loop.
    }
  });
  dsim::RunResult result = sim.RunFor(absl::Seconds(1));
  EXPECT_TRUE(result.ok() || result.outcome == dsim::RunOutcome::kReachedTime)
      << result.ToString();
  outcome.fingerprint = std::to_string(sim.trace().fingerprint());
  outcome.escapes = dsim::posix::EscapedCalls(sim.scheduler());
  return outcome;
}

class PosixEpoll : public ::testing::TestWithParam<bool> {};

TEST_P(PosixEpoll, EchoServerServesEveryClientUnderLatencyAndLoss) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Outcome outcome = RunEchoSimulation(seed, GetParam());
    EXPECT_EQ(outcome.clients_ok, 4) << "seed " << seed;
    EXPECT_EQ(outcome.stats.connections, 4);
    EXPECT_EQ(outcome.stats.wakeups, 3);
    EXPECT_EQ(outcome.stats.ticks, 10);  // 100 ms ticks over one virtual second.
    for (const auto& escape : outcome.escapes) ADD_FAILURE() << escape.ToString();
  }
}

TEST_P(PosixEpoll, SameSeedSameFingerprintDifferentSeedsDiffer) {
  EXPECT_EQ(RunEchoSimulation(7, GetParam()).fingerprint,
            RunEchoSimulation(7, GetParam()).fingerprint);
  EXPECT_NE(RunEchoSimulation(7, GetParam()).fingerprint,
            RunEchoSimulation(8, GetParam()).fingerprint);
}

INSTANTIATE_TEST_SUITE_P(Triggers, PosixEpoll, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "EdgeTriggered" : "LevelTriggered");
                         });

}  // namespace

namespace {

TEST(PosixNames, HostNamesResolveToSimulatedAddresses) {
  dsim::Simulation sim(dsim::SimulationOptions{.seed = 1});
  bool checked = false;
  sim.AddHost({.name = "db", .start = [] {}, .addresses = {"10.0.0.7", "fd00::7"}});
  sim.AddHost({.name = "app",
               .start = [&] {
                 char name[64];
                 ASSERT_EQ(gethostname(name, sizeof(name)), 0);
                 EXPECT_STREQ(name, "app");
                 addrinfo hints{};
                 hints.ai_family = AF_UNSPEC;
                 hints.ai_socktype = SOCK_STREAM;
                 addrinfo* result = nullptr;
                 ASSERT_EQ(getaddrinfo("db", "6379", &hints, &result), 0);
                 std::vector<std::string> found;
                 for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
                   char host[64], service[16];
                   ASSERT_EQ(getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof(host), service,
                                         sizeof(service), NI_NUMERICHOST), 0);
                   found.push_back(std::string(host) + " " + service);
                 }
                 freeaddrinfo(result);  // The real one: entries are allocated as glibc does.
                 EXPECT_EQ(found, (std::vector<std::string>{"10.0.0.7 6379", "fd00::7 6379"}));
                 EXPECT_EQ(getaddrinfo("no-such-host", "1", &hints, &result), EAI_NONAME);
                 sockaddr_storage address;
                 const socklen_t length = dsim::MakeSockaddr("10.0.0.7", 80, &address);
                 char host[64];
                 ASSERT_EQ(getnameinfo(reinterpret_cast<sockaddr*>(&address), length, host,
                                       sizeof(host), nullptr, 0, 0), 0);
                 EXPECT_STREQ(host, "db");
                 checked = true;
               },
               .start_daemon = false,
               .addresses = {"10.0.0.8"}});
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_TRUE(checked);
}

}  // namespace

namespace {

// epoll_wait takes a scheduling point (as every simulated call) after it found the epoll
// instance; a task that runs there and closes the descriptor must not leave the waiter
// on a destroyed instance. Linux answers a call on a closed descriptor with EBADF.
TEST(PosixEpollClose, DescriptorClosedAtTheWaitsSchedulingPointGivesEbadf) {
  int ebadf_without_escape = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    dsim::Simulation sim(dsim::SimulationOptions{.seed = seed});
    int result = 0, error = 0;
    sim.AddHost({.name = "h",
                 .start = [&] {
                   const int epfd = epoll_create1(0);
                   const int efd = eventfd(0, EFD_NONBLOCK);
                   epoll_event event{};
                   event.events = EPOLLIN;
                   event.data.fd = efd;
                   ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &event), 0);
                   std::thread closer([epfd] { close(epfd); });
                   epoll_event out;
                   result = epoll_wait(epfd, &out, 1, 10);
                   error = errno;
                   closer.join();
                   close(efd);
                 },
                 .start_daemon = false,
                 .addresses = {"10.0.0.1"}});
    ASSERT_TRUE(sim.Run().ok());
    // Closed before the call, the number is not the host's and the call is forwarded
    // (listed as an escape); closed while the call waits, it times out with 0.
    const bool forwarded = !dsim::posix::EscapedCalls(sim.scheduler()).empty();
    if (result == -1 && error == EBADF && !forwarded) ++ebadf_without_escape;
    if (!forwarded) {
      EXPECT_TRUE(result == 0 || (result == -1 && error == EBADF)) << seed;
    }
  }
  EXPECT_GT(ebadf_without_escape, 0);
}

}  // namespace

namespace {

// Runs `body` in a task on a host and returns its virtual elapsed time.
absl::Duration RunOnHost(const std::function<void()>& body) {
  dsim::Simulation sim(dsim::SimulationOptions{.seed = 7});
  absl::Duration elapsed;
  sim.AddHost({.name = "h",
               .start = [&] {
                 const absl::Time start = dsim::Now();
                 body();
                 elapsed = dsim::Now() - start;
               },
               .start_daemon = false,
               .addresses = {"10.0.0.1"}});
  EXPECT_TRUE(sim.Run().ok());
  return elapsed;
}

// A blocked epoll_wait is woken by the watched descriptor's wakeup (the entry's watcher
// puts it on the ready list), at the virtual instant of the write.
TEST(PosixEpollReadyList, BlockedWaitWakesAtTheWatchedDescriptorsWakeup) {
  int result = -1;
  uint64_t data = 0;
  const absl::Duration elapsed = RunOnHost([&] {
    const int epfd = epoll_create1(0);
    const int efd = eventfd(0, EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = 42;
    ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &event), 0);
    std::thread writer([efd] {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      uint64_t one = 1;
      ASSERT_EQ(write(efd, &one, sizeof(one)), 8);
    });
    epoll_event out{};
    result = epoll_wait(epfd, &out, 1, 1000);
    data = out.data.u64;
    writer.join();
    close(efd);
    close(epfd);
  });
  EXPECT_EQ(result, 1);
  EXPECT_EQ(data, 42u);
  EXPECT_EQ(elapsed, absl::Milliseconds(10));
}

// A wakeup of an inner epoll's entry reaches a task blocked on an outer epoll that
// watches it (ep_poll_callback wakes the epoll's own pollers), at the write's instant.
TEST(PosixEpollReadyList, NestedEpollWaiterWakesWhenAnInnerDescriptorBecomesReady) {
  int result = -1;
  const absl::Duration elapsed = RunOnHost([&] {
    const int inner = epoll_create1(0);
    const int outer = epoll_create1(0);
    const int efd = eventfd(0, EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    ASSERT_EQ(epoll_ctl(inner, EPOLL_CTL_ADD, efd, &event), 0);
    ASSERT_EQ(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &event), 0);
    std::thread writer([efd] {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      uint64_t one = 1;
      ASSERT_EQ(write(efd, &one, sizeof(one)), 8);
    });
    epoll_event out{};
    result = epoll_wait(outer, &out, 1, 1000);
    writer.join();
    for (int fd : {efd, inner, outer}) close(fd);
  });
  EXPECT_EQ(result, 1);
  EXPECT_EQ(elapsed, absl::Milliseconds(10));
}

// The last descriptor of an epoll closed by another task while a wait blocks on it: the
// instance lives until the wait returns (Linux holds the file for the call), which times
// out normally; the watched socket's wakeups meanwhile reach nothing freed.
TEST(PosixEpollReadyList, InstanceClosedDuringABlockedWaitLivesUntilTheWaitReturns) {
  int result = -1;
  const absl::Duration elapsed = RunOnHost([&] {
    const int epfd = epoll_create1(0);
    const int efd = eventfd(0, EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN | EPOLLET;
    ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &event), 0);
    std::thread closer([epfd, efd] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      close(epfd);
      uint64_t one = 1;
      ASSERT_EQ(write(efd, &one, sizeof(one)), 8);  // Wakes the closed instance's entry.
    });
    epoll_event out{};
    result = epoll_wait(epfd, &out, 1, 20);
    closer.join();
    close(efd);
  });
  // The write woke the instance's waiter (its entry is still watched), and the call
  // reports the ready entry, as Linux does for a call already inside epoll_wait.
  EXPECT_EQ(result, 1);
  EXPECT_EQ(elapsed, absl::Milliseconds(5));
}

}  // namespace
