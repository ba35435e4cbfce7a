// Every timeout a host sets runs on the host's own clock (scheduler/clock.h), and
// absolute CLOCK_REALTIME waits follow steps of that clock, as in Linux. Each case
// compares exact true virtual times: a host whose clock runs 10% fast (+100,000 ppm)
// measures one second in 1/1.1 s = 909,090,910 ns of true time (rounded up).
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <iostream>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/clock.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/scheduler.h"
#include "scheduler/semaphore.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

const absl::Time kEpoch = Scheduler::Epoch();
// One second of a clock 10% fast, in true time.
const absl::Duration kFastSecond = absl::Nanoseconds(909090910);
const bool kNever = false;
const Condition kFalse(&kNever);

// Runs `body` on host "h" (address 10.0.0.1) whose clock drifts by `drift_ppm`, and
// returns the true time `body` took.
absl::Duration TrueDurationOnHost(int64_t drift_ppm, std::function<void()> body) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "h", .drift_ppm = drift_ppm});
  Simulation sim(options);
  absl::Duration took = absl::InfiniteDuration();
  sim.AddHost({.name = "h",
               .start = [&] {
                 const absl::Time start = sim.Now();
                 body();
                 took = sim.Now() - start;
               },
               .start_daemon = false,
               .addresses = {"10.0.0.1"}});
  const RunResult result = sim.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  return took;
}

int BoundUdpSocket() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(9000);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

timespec Add(timespec t, absl::Duration d) {
  return absl::ToTimespec(absl::DurationFromTimespec(t) + d);
}

// ---- 1. Relative timeouts last their length on the host's clock -----------------------

TEST(HostClockTimeouts, PollTimeoutIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              pollfd p{BoundUdpSocket(), POLLIN, 0};
              EXPECT_EQ(poll(&p, 1, 1000), 0);
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, SoRcvtimeoIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              const int fd = BoundUdpSocket();
              timeval timeout{1, 0};
              ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
              char c;
              EXPECT_EQ(recv(fd, &c, 1, 0), -1);
              EXPECT_EQ(errno, EAGAIN);
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, EpollWaitTimeoutIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              const int fd = BoundUdpSocket();
              const int ep = epoll_create1(0);
              epoll_event event{EPOLLIN, {}};
              ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event), 0);
              EXPECT_EQ(epoll_wait(ep, &event, 1, 1000), 0);
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, FutexRelativeTimeoutIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              uint32_t word = 0;
              const timespec one_second{1, 0};
              EXPECT_EQ(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &one_second, nullptr, 0),
                        -1);
              EXPECT_EQ(errno, ETIMEDOUT);
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, TimerfdRelativeValueAndIntervalAreOnTheHostsClock) {
  std::vector<absl::Duration> reads;
  TrueDurationOnHost(100'000, [&] {
    const absl::Time start = dsim::Now();
    const int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    const itimerspec value{{1, 0}, {1, 0}};
    ASSERT_EQ(timerfd_settime(fd, 0, &value, nullptr), 0);
    for (int i = 0; i < 2; ++i) {
      uint64_t expirations = 0;
      ASSERT_EQ(read(fd, &expirations, sizeof(expirations)), 8);
      EXPECT_EQ(expirations, 1u);
      reads.push_back(dsim::Now() - start);  // Host time.
    }
  });
  ASSERT_EQ(reads.size(), 2u);
  // Host time elapsed at each expiry: one and two seconds (to the nanosecond rounding).
  EXPECT_GE(reads[0], absl::Seconds(1));
  EXPECT_LT(reads[0], absl::Seconds(1) + absl::Nanoseconds(3));
  EXPECT_GE(reads[1], absl::Seconds(2));
  EXPECT_LT(reads[1], absl::Seconds(2) + absl::Nanoseconds(3));
}

TEST(HostClockTimeouts, MonotonicCondTimedwaitIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              pthread_condattr_t attr;
              pthread_condattr_init(&attr);
              pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
              pthread_cond_t cond;
              pthread_cond_init(&cond, &attr);
              pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
              timespec deadline;
              clock_gettime(CLOCK_MONOTONIC, &deadline);
              deadline = Add(deadline, absl::Seconds(1));
              pthread_mutex_lock(&mu);
              EXPECT_EQ(pthread_cond_timedwait(&cond, &mu, &deadline), ETIMEDOUT);
              pthread_mutex_unlock(&mu);
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, MutexAwaitTimeoutIsOnTheHostsClock) {
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              Mutex mu;
              MutexLock lock(&mu);
              EXPECT_FALSE(mu.AwaitWithTimeout(kFalse, absl::Seconds(1)));
            }),
            kFastSecond);
  EXPECT_EQ(TrueDurationOnHost(100'000, [] {
              Mutex mu;
              MutexLock lock(&mu);
              EXPECT_FALSE(mu.AwaitWithDeadline(kFalse, dsim::Now() + absl::Seconds(1)));
            }),
            kFastSecond);
}

TEST(HostClockTimeouts, TcpSynRetransmissionsAreOnTheHostsClock) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "client", .drift_ppm = 100'000});
  Simulation sim(options);
  Host& server = sim.AddHost({.name = "server", .start = [] {}, .addresses = {"10.0.0.2"}});
  absl::Duration took;
  Host& client = sim.AddHost({.name = "client",
                              .start = [&] {
                                const int fd = socket(AF_INET, SOCK_STREAM, 0);
                                sockaddr_in address{};
                                address.sin_family = AF_INET;
                                address.sin_port = htons(80);
                                inet_pton(AF_INET, "10.0.0.2", &address.sin_addr);
                                const absl::Time start = sim.Now();
                                EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address),
                                                  sizeof(address)),
                                          -1);
                                EXPECT_EQ(errno, ETIMEDOUT);
                                took = sim.Now() - start;
                              },
                              .start_daemon = false,
                              .addresses = {"10.0.0.1"}});
  sim.Partition({client.id()}, {server.id()});
  ASSERT_TRUE(sim.Run().ok());
  // 1 + 2 + ... + 64 s of the client's clock, each timer rounded up to the nanosecond.
  EXPECT_EQ(took, absl::Nanoseconds(int64_t{909090910} + 1818181819 + 3636363637 + 7272727273 +
                                    14545454546 + 29090909091 + 58181818182));
}

TEST(HostClockTimeouts, TcpKeepaliveIsOnTheHostsClock) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "client", .drift_ppm = 100'000});
  Simulation sim(options);
  Host& server = sim.AddHost({.name = "server",
                              .start = [] {
                                const int listener = socket(AF_INET, SOCK_STREAM, 0);
                                sockaddr_in address{};
                                address.sin_family = AF_INET;
                                address.sin_port = htons(80);
                                bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address));
                                listen(listener, 8);
                                const int fd = accept(listener, nullptr, nullptr);
                                EXPECT_GE(fd, 0);
                                dsim::SleepFor(absl::Hours(1));
                              },
                              .addresses = {"10.0.0.2"}});
  absl::Duration idle_to_error;
  HostId client_id = 0;
  Host& client = sim.AddHost({.name = "client",
                              .start = [&] {
                                dsim::SleepFor(absl::Milliseconds(1));
                                const int fd = socket(AF_INET, SOCK_STREAM, 0);
                                const int on = 1, idle = 10, interval = 2, count = 3;
                                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
                                setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
                                setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
                                setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
                                sockaddr_in address{};
                                address.sin_family = AF_INET;
                                address.sin_port = htons(80);
                                inet_pton(AF_INET, "10.0.0.2", &address.sin_addr);
                                ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address),
                                                  sizeof(address)),
                                          0);
                                // Idle from the handshake's last segment, which arrives
                                // as connect returns.
                                const absl::Time start = sim.Now();
                                dsim::SleepFor(absl::Milliseconds(100));
                                sim.Partition({client_id}, {server.id()});
                                char c;
                                EXPECT_EQ(read(fd, &c, 1), -1);
                                EXPECT_EQ(errno, ETIMEDOUT);
                                idle_to_error = sim.Now() - start;
                              },
                              .start_daemon = false,
                              .addresses = {"10.0.0.1"}});
  client_id = client.id();
  ASSERT_TRUE(sim.Run().ok());
  // KEEPIDLE 10 s, then KEEPCNT 3 probes KEEPINTVL 2 s apart, on the client's clock.
  EXPECT_EQ(idle_to_error, absl::Nanoseconds(int64_t{9090909091} + 3 * int64_t{1818181819}));
}

TEST(HostClockTimeouts, SoSndtimeoOnConnectIsOnTheHostsClock) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "client", .drift_ppm = 100'000});
  Simulation sim(options);
  Host& server = sim.AddHost({.name = "server", .start = [] {}, .addresses = {"10.0.0.2"}});
  absl::Duration took;
  Host& client = sim.AddHost({.name = "client",
                              .start = [&] {
                                const int fd = socket(AF_INET, SOCK_STREAM, 0);
                                timeval timeout{1, 0};
                                ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout,
                                                     sizeof(timeout)),
                                          0);
                                sockaddr_in address{};
                                address.sin_family = AF_INET;
                                address.sin_port = htons(80);
                                inet_pton(AF_INET, "10.0.0.2", &address.sin_addr);
                                const absl::Time start = sim.Now();
                                EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address),
                                                  sizeof(address)),
                                          -1);
                                EXPECT_EQ(errno, EINPROGRESS);  // Linux: the handshake goes on.
                                took = sim.Now() - start;
                              },
                              .start_daemon = false,
                              .addresses = {"10.0.0.1"}});
  sim.Partition({client.id()}, {server.id()});
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(took, kFastSecond);
}

// TIME_WAIT (60 s) on a host 10% fast lasts 54.545454546 s of true time: a listener can
// bind the port again at true 56 s after the close, not before 54 s.
TEST(HostClockTimeouts, TcpTimeWaitIsOnTheHostsClock) {
  std::vector<int> bind_errors;  // At true close + 54 s and close + 56 s.
  TrueDurationOnHost(100'000, [&] {
    auto listen_on_80 = [] {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(80);
      inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
      if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        const int error = errno;
        close(fd);
        return -error;
      }
      EXPECT_EQ(listen(fd, 8), 0);
      return fd;
    };
    const int listener = listen_on_80();
    ASSERT_GE(listener, 0);
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(80);
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    const int child = accept(listener, nullptr, nullptr);
    ASSERT_GE(child, 0);
    close(listener);
    close(child);  // The server side closes first: its port 80 goes to TIME_WAIT.
    dsim::SleepFor(absl::Milliseconds(10));
    close(client);
    Scheduler& scheduler = *Scheduler::Current();
    const absl::Time closed = scheduler.Now();
    scheduler.SleepUntil(closed + absl::Seconds(54));  // True time.
    int fd = listen_on_80();
    bind_errors.push_back(fd < 0 ? -fd : 0);
    if (fd >= 0) close(fd);
    scheduler.SleepUntil(closed + absl::Seconds(56));
    fd = listen_on_80();
    bind_errors.push_back(fd < 0 ? -fd : 0);
    if (fd >= 0) close(fd);
  });
  EXPECT_EQ(bind_errors, (std::vector<int>{EADDRINUSE, 0}));
}

// Not a timeout, but a host-side clock reading: file times come from the host's wall
// clock, as the kernel stamps them from CLOCK_REALTIME.
TEST(HostClockTimeouts, FileTimesAreTheHostsWallClock) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "h", .offset = absl::Hours(1)});
  Simulation sim(options);
  sim.AddHost({.name = "h",
               .start = [] {
                 const int fd = open("/host_clock_file", O_CREAT | O_WRONLY, 0644);
                 ASSERT_GE(fd, 0);
                 ASSERT_EQ(write(fd, "x", 1), 1);
                 struct stat st;
                 ASSERT_EQ(fstat(fd, &st), 0);
                 EXPECT_EQ(absl::TimeFromTimespec(st.st_mtim), dsim::Now());
                 EXPECT_EQ(dsim::Now(), kEpoch + absl::Hours(1));
                 close(fd);
               },
               .start_daemon = false});
  ASSERT_TRUE(sim.Run().ok());
}

// ---- 2. Clock steps during a wait: absolute REALTIME waits move, the rest do not -----

// Runs `body` on host "h" (no drift); at true 2 s its clock is stepped by `step`.
// Returns the true time at which `body` finished.
absl::Time FinishWithStep(absl::Duration step, std::function<void()> body) {
  Simulation sim(SimulationOptions{.seed = 1});
  absl::Time finished = absl::InfiniteFuture();
  Host& h = sim.AddHost({.name = "h",
                         .start = [&] {
                           body();
                           finished = sim.Now();
                         },
                         .start_daemon = false});
  sim.Spawn("ntp", [&] {
    dsim::SleepFor(absl::Seconds(2));
    sim.StepClock(h.id(), step);
  });
  const RunResult result = sim.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  return finished;
}

TEST(HostClockSteps, SleepUntilFollowsStepsOfTheWallClock) {
  auto sleep_ten = [] { dsim::SleepUntil(dsim::Now() + absl::Seconds(10)); };
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), sleep_ten), kEpoch + absl::Seconds(5));
  EXPECT_EQ(FinishWithStep(absl::Seconds(-3), sleep_ten), kEpoch + absl::Seconds(13));
  // A step past the deadline ends the wait at once.
  EXPECT_EQ(FinishWithStep(absl::Seconds(20), sleep_ten), kEpoch + absl::Seconds(2));
}

TEST(HostClockSteps, RelativeWaitsIgnoreSteps) {
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), [] { dsim::SleepFor(absl::Seconds(10)); }),
            kEpoch + absl::Seconds(10));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             Mutex mu;
                             CondVar cv;
                             MutexLock lock(&mu);
                             EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Seconds(10)));
                           }),
            kEpoch + absl::Seconds(10));
  EXPECT_EQ(FinishWithStep(absl::Seconds(-3),
                           [] {
                             Notification n;
                             EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Seconds(10)));
                           }),
            kEpoch + absl::Seconds(10));
}

TEST(HostClockSteps, DsimDeadlinesFollowSteps) {
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             Mutex mu;
                             CondVar cv;
                             MutexLock lock(&mu);
                             EXPECT_TRUE(cv.WaitWithDeadline(&mu, dsim::Now() + absl::Seconds(10)));
                           }),
            kEpoch + absl::Seconds(5));
  EXPECT_EQ(FinishWithStep(absl::Seconds(-3),
                           [] {
                             Semaphore s(0);
                             EXPECT_FALSE(s.AcquireWithDeadline(dsim::Now() + absl::Seconds(10)));
                           }),
            kEpoch + absl::Seconds(13));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             Mutex mu;
                             MutexLock lock(&mu);
                             EXPECT_FALSE(mu.AwaitWithDeadline(kFalse,
                                                               dsim::Now() + absl::Seconds(10)));
                           }),
            kEpoch + absl::Seconds(5));
}

// Without a Simulation: whoever steps a HostClock given to SetGroupClock calls
// GroupClockChanged, and the group's realtime waits move.
TEST(HostClockSteps, BareSchedulerReArmsOnGroupClockChanged) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  HostClock clock(scheduler.Now());
  constexpr GroupId kHost = 1;
  scheduler.SetGroupClock(kHost, &clock);
  absl::Time woke;
  scheduler.Spawn("sleeper", [&] {
    dsim::SleepUntil(dsim::Now() + absl::Seconds(10));
    woke = scheduler.Now();
  }, {.group = kHost});
  scheduler.AddTimer(kEpoch + absl::Seconds(2), [&] {
    clock.Step(scheduler.Now(), absl::Seconds(4));
    scheduler.GroupClockChanged(kHost);
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(woke, kEpoch + absl::Seconds(6));
}

// After a backward step, a wake before the moved deadline does not end the wait: B's
// condition holds for a moment at 11 s (C sets and clears it), after the deadline's first
// conversion (10 s) but before the stepped clock reads it (13 s). B either saw it hold
// (true at 11 s) or times out at 13 s; never false at 11 s.
TEST(HostClockSteps, AWakeBeforeTheMovedDeadlineDoesNotEndTheWait) {
  int saw_true = 0, timed_out = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    Mutex mu;
    bool flag = false;
    bool result = false;
    absl::Time returned;
    Host& h = sim.AddHost({.name = "h",
                           .start = [&] {
                             Spawn("C", [&] {
                               dsim::SleepFor(absl::Seconds(11));
                               mu.Lock();
                               flag = true;
                               mu.Unlock();
                               mu.Lock();
                               flag = false;
                               mu.Unlock();
                             });
                             MutexLock lock(&mu);
                             result = mu.AwaitWithDeadline(Condition(&flag),
                                                           dsim::Now() + absl::Seconds(10));
                             returned = sim.Now();
                           },
                           .start_daemon = false});
    sim.Spawn("ntp", [&] {
      dsim::SleepFor(absl::Seconds(2));
      sim.StepClock(h.id(), absl::Seconds(-3));
    });
    ASSERT_TRUE(sim.Run().ok());
    if (result) {
      ++saw_true;
      EXPECT_EQ(returned, kEpoch + absl::Seconds(11)) << "seed " << seed;
    } else {
      ++timed_out;
      EXPECT_EQ(returned, kEpoch + absl::Seconds(13)) << "seed " << seed;
    }
  }
  std::cerr << "saw the condition " << saw_true << ", timed out " << timed_out << "\n";
}

timespec RealtimeIn(absl::Duration d) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return Add(now, d);
}

TEST(HostClockSteps, ClockNanosleepAbsoluteRealtimeMovesAndMonotonicDoesNot) {
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             const timespec deadline = RealtimeIn(absl::Seconds(10));
                             EXPECT_EQ(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline,
                                                       nullptr),
                                       0);
                           }),
            kEpoch + absl::Seconds(5));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             timespec deadline;
                             clock_gettime(CLOCK_MONOTONIC, &deadline);
                             deadline = Add(deadline, absl::Seconds(10));
                             EXPECT_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline,
                                                       nullptr),
                                       0);
                           }),
            kEpoch + absl::Seconds(10));
  // A relative clock_nanosleep on CLOCK_REALTIME does not move either.
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             const timespec ten{10, 0};
                             EXPECT_EQ(clock_nanosleep(CLOCK_REALTIME, 0, &ten, nullptr), 0);
                           }),
            kEpoch + absl::Seconds(10));
}

TEST(HostClockSteps, PthreadCondTimedwaitOnRealtimeFollowsSteps) {
  EXPECT_EQ(FinishWithStep(absl::Seconds(-3),
                           [] {
                             pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
                             pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
                             const timespec deadline = RealtimeIn(absl::Seconds(10));
                             pthread_mutex_lock(&mu);
                             EXPECT_EQ(pthread_cond_timedwait(&cond, &mu, &deadline), ETIMEDOUT);
                             pthread_mutex_unlock(&mu);
                           }),
            kEpoch + absl::Seconds(13));
}

TEST(HostClockSteps, SemTimedwaitAndMutexTimedlockFollowSteps) {
  EXPECT_EQ(FinishWithStep(absl::Seconds(5),
                           [] {
                             sem_t sem;
                             sem_init(&sem, 0, 0);
                             const timespec deadline = RealtimeIn(absl::Seconds(10));
                             EXPECT_EQ(sem_timedwait(&sem, &deadline), -1);
                             EXPECT_EQ(errno, ETIMEDOUT);
                           }),
            kEpoch + absl::Seconds(5));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), [] {
              pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
              std::atomic<bool> locked{false};
              Notification release;
              TaskHandle holder = Spawn("holder", [&] {
                pthread_mutex_lock(&mu);
                locked = true;
                release.WaitForNotification();
                pthread_mutex_unlock(&mu);
              });
              while (!locked) dsim::SleepFor(absl::Milliseconds(1));
              const timespec deadline = RealtimeIn(absl::Seconds(10));
              EXPECT_EQ(pthread_mutex_timedlock(&mu, &deadline), ETIMEDOUT);
              release.Notify();
              holder.Join();
            }),
            kEpoch + absl::Seconds(5) + absl::Milliseconds(1));  // It began at 1 ms.
}

// Reads one expiration of `fd`; returns read's result (errno on failure).
int ReadTimer(int fd) {
  uint64_t expirations = 0;
  const ssize_t n = read(fd, &expirations, sizeof(expirations));
  if (n < 0) return -errno;
  EXPECT_EQ(n, 8);
  return static_cast<int>(expirations);
}

TEST(HostClockSteps, AbsoluteRealtimeTimerfdFollowsStepsAndOthersDoNot) {
  auto timer = [](clockid_t clock, int flags) {
    return [clock, flags] {
      const int fd = timerfd_create(clock, 0);
      itimerspec value{};
      if (flags & TFD_TIMER_ABSTIME) {
        clock_gettime(clock, &value.it_value);
      }
      value.it_value = Add(value.it_value, absl::Seconds(10));
      ASSERT_EQ(timerfd_settime(fd, flags, &value, nullptr), 0);
      EXPECT_EQ(ReadTimer(fd), 1);
    };
  };
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), timer(CLOCK_REALTIME, TFD_TIMER_ABSTIME)),
            kEpoch + absl::Seconds(5));
  EXPECT_EQ(FinishWithStep(absl::Seconds(-3), timer(CLOCK_REALTIME, TFD_TIMER_ABSTIME)),
            kEpoch + absl::Seconds(13));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), timer(CLOCK_REALTIME, 0)), kEpoch + absl::Seconds(10));
  EXPECT_EQ(FinishWithStep(absl::Seconds(5), timer(CLOCK_MONOTONIC, TFD_TIMER_ABSTIME)),
            kEpoch + absl::Seconds(10));
}

TEST(HostClockSteps, TimerfdCancelOnSetFailsTheReadWithEcanceledAtTheStep) {
  std::vector<std::pair<int, absl::Time>> reads;
  const absl::Time finished = FinishWithStep(absl::Seconds(5), [&] {
    const int fd = timerfd_create(CLOCK_REALTIME, 0);
    itimerspec value{};
    clock_gettime(CLOCK_REALTIME, &value.it_value);
    value.it_value = Add(value.it_value, absl::Seconds(10));
    ASSERT_EQ(timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &value, nullptr), 0);
    for (int i = 0; i < 2; ++i) {
      const int result = ReadTimer(fd);
      pollfd p{fd, POLLIN, 0};
      EXPECT_EQ(poll(&p, 1, 0), 0);  // Nothing more to read.
      timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      reads.push_back({result, absl::TimeFromTimespec(now)});
    }
  });
  ASSERT_EQ(reads.size(), 2u);
  // The step at 2 s (wall 7 s after it) cancels the blocked read; the timer stays
  // armed for wall 10 s, which the stepped clock reads at true 5 s.
  EXPECT_EQ(reads[0].first, -ECANCELED);
  EXPECT_EQ(reads[0].second, absl::UnixEpoch() + (kEpoch - absl::UnixEpoch()) + absl::Seconds(7));
  EXPECT_EQ(reads[1].first, 1);
  EXPECT_EQ(finished, kEpoch + absl::Seconds(5));
}

// clock_settime on a host steps that host's clock (never the machine's): a
// CANCEL_ON_SET timerfd sees it, and an absolute REALTIME sleep moves with it.
TEST(HostClockSteps, ClockSettimeOnAHostStepsItsClock) {
  Simulation sim(SimulationOptions{.seed = 1});
  int read_result = 0;
  absl::Time read_at, slept_until, wall_after_set;
  sim.AddHost({.name = "h",
               .start = [&] {
                 TaskHandle setter = Spawn("setter", [&] {
                   dsim::SleepFor(absl::Seconds(2));
                   timespec now;
                   clock_gettime(CLOCK_REALTIME, &now);
                   const timespec later = Add(now, absl::Seconds(5));
                   EXPECT_EQ(clock_settime(CLOCK_REALTIME, &later), 0);
                   clock_gettime(CLOCK_REALTIME, &now);
                   wall_after_set = absl::TimeFromTimespec(now);
                   EXPECT_EQ(clock_settime(CLOCK_MONOTONIC, &later), -1);
                   EXPECT_EQ(errno, EINVAL);
                 });
                 TaskHandle sleeper = Spawn("sleeper", [&] {
                   const timespec deadline = RealtimeIn(absl::Seconds(10));
                   clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline, nullptr);
                   slept_until = sim.Now();
                 });
                 const int fd = timerfd_create(CLOCK_REALTIME, 0);
                 itimerspec value{};
                 value.it_value = RealtimeIn(absl::Hours(1));
                 timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &value, nullptr);
                 read_result = ReadTimer(fd);
                 read_at = sim.Now();
                 setter.Join();
                 sleeper.Join();
               },
               .start_daemon = false});
  int driver_result = 0, driver_errno = 0;
  sim.Spawn("driver", [&] {  // Not on a host: no clock of its own to set.
    const timespec t{946684800, 0};
    driver_result = clock_settime(CLOCK_REALTIME, &t);
    driver_errno = errno;
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(read_result, -ECANCELED);
  EXPECT_EQ(read_at, kEpoch + absl::Seconds(2));
  EXPECT_EQ(wall_after_set, kEpoch + absl::Seconds(7));
  EXPECT_EQ(slept_until, kEpoch + absl::Seconds(5));
  EXPECT_EQ(driver_result, -1);
  EXPECT_EQ(driver_errno, EPERM);
}

// ---- 4. Mutex::LockWhenWithTimeout bounds the whole call ---------------------------------

// A holds the mutex for 2 s; B asks for LockWhenWithTimeout(false, 1 s) at 1 ms and C
// for Lock at 1.5 s. When A unlocks, B or C gets the mutex (no FIFO, as in Abseil).
// When B gets it, its deadline has passed: it must return at once, holding the mutex,
// without letting C in first (C would hold it for a further second).
TEST(MutexLockWhen, AnExpiredDeadlineReturnsWithTheLockWithoutReleasingIt) {
  int b_first = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    Mutex mu;
    absl::Time b_locked = absl::InfiniteFuture();  // B's first look at the condition.
    absl::Time b_returned;
    bool b_result = true;
    auto never = [&] {
      if (b_locked == absl::InfiniteFuture()) b_locked = dsim::Now();
      return false;
    };
    const Condition condition(&never);
    scheduler.Spawn("A", [&] {
      MutexLock lock(&mu);
      dsim::SleepFor(absl::Seconds(2));
    });
    scheduler.Spawn("B", [&] {
      dsim::SleepFor(absl::Milliseconds(1));
      b_result = mu.LockWhenWithTimeout(condition, absl::Seconds(1));
      b_returned = dsim::Now();
      mu.Unlock();
    });
    scheduler.Spawn("C", [&] {
      dsim::SleepFor(absl::Milliseconds(1500));
      MutexLock lock(&mu);
      dsim::SleepFor(absl::Seconds(1));
    });
    ASSERT_TRUE(scheduler.Run().ok());
    EXPECT_FALSE(b_result);
    if (b_locked == kEpoch + absl::Seconds(2)) {
      ++b_first;
      EXPECT_EQ(b_returned, kEpoch + absl::Seconds(2)) << "seed " << seed;
    } else {
      EXPECT_EQ(b_returned, kEpoch + absl::Seconds(3)) << "seed " << seed;
    }
  }
  EXPECT_GT(b_first, 0);  // The case that matters was reached.
}

}  // namespace
}  // namespace dsim
