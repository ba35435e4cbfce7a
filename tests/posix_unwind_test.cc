// Tasks of plain interposed programs that are killed (a host crash, the end of a
// simulation) unwind through their destructors, which make libc calls: lock and
// unlock free mutexes, close descriptors. What those calls do while the task unwinds.
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/notification.h"
#include "sim/simulation.h"

namespace {

// Takes and releases a free std::mutex `times` times in its destructor, as a library's
// shutdown does for every object it frees (Asio's io_context: a lock per socket and
// per pending handler). Each lock and unlock is a scheduling point.
struct LocksInDestructor {
  std::mutex* mu;
  int times;
  int* done;
  ~LocksInDestructor() {
    for (int i = 0; i < times; ++i) {
      mu->lock();
      ++*done;
      mu->unlock();
    }
  }
};

// A plain epoll server loop that never returns: at the end of the simulation its task is
// unwound out of epoll_wait.
void BlockInEpollForever() {
  const int epfd = epoll_create1(0);
  epoll_event events[4];
  for (;;) epoll_wait(epfd, events, 4, -1);
}

TEST(PosixUnwind, DestructorTakingManyFreeLocksFinishesAtTeardown) {
  std::mutex mu;
  int done = 0;
  {
    dsim::Simulation sim({.seed = 1});
    sim.AddHost({.name = "server",
                 .start =
                     [&] {
                       LocksInDestructor cleanup{&mu, 50, &done};
                       BlockInEpollForever();
                     },
                 .addresses = {"10.0.0.1"}});
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
    // ~Simulation unwinds the server task: 100 scheduling points in its destructor, none
    // of them blocking. (Shutdown used to count each as a round "without progress" and
    // end the process after 8 with "keeps blocking while being unwound".)
  }
  EXPECT_EQ(done, 50);
}

TEST(PosixUnwindDeathTest, DestructorThatBlocksForeverIsStillReported) {
  EXPECT_DEATH(
      {
        std::mutex mu;
        std::condition_variable cv;
        dsim::Simulation sim({.seed = 1});
        sim.AddHost({.name = "server",
                     .start =
                         [&] {
                           struct WaitsInDestructor {
                             std::mutex* mu;
                             std::condition_variable* cv;
                             ~WaitsInDestructor() {
                               std::unique_lock<std::mutex> lock(*mu);
                               for (;;) cv->wait(lock);  // Nobody ever signals.
                             }
                           } waits{&mu, &cv};
                           BlockInEpollForever();
                         },
                     .addresses = {"10.0.0.1"}});
        (void)sim.RunFor(absl::Seconds(1));
      },
      "task \"server/start\" keeps blocking while being unwound");
}

TEST(PosixUnwindDeathTest, DestructorThatYieldsForeverIsReported) {
  EXPECT_DEATH(
      {
        dsim::Simulation sim({.seed = 1});
        sim.AddHost({.name = "server",
                     .start =
                         [&] {
                           struct SpinsInDestructor {
                             ~SpinsInDestructor() {
                               for (;;) sched_yield();
                             }
                           } spins;
                           BlockInEpollForever();
                         },
                     .addresses = {"10.0.0.1"}});
        (void)sim.RunFor(absl::Seconds(1));
      },
      "task \"server/start\" keeps reaching scheduling points while being unwound");
}

// A crashed host's descriptors died with it. Its tasks' destructors that close them
// (or any number) get EPERM: the same number in the real process belongs to someone
// else, and closing it would break the test binary.
TEST(PosixUnwind, CrashedHostsTasksCannotTouchTheProcesssRealDescriptors) {
  int real[2];
  ASSERT_EQ(pipe(real), 0);  // Low numbers, which the host's descriptors also use.
  std::vector<int> closes;   // close() results in the dying task's destructor.
  int close_errno = 0;
  {
    dsim::Simulation sim({.seed = 1});
    dsim::Host& server = sim.AddHost(
        {.name = "server",
         .start =
             [&] {
               struct ClosesInDestructor {
                 std::vector<int> fds;
                 std::vector<int>* results;
                 int* error;
                 ~ClosesInDestructor() {
                   for (int fd : fds) {
                     results->push_back(close(fd));
                     *error = errno;
                   }
                 }
               } cleanup{{}, &closes, &close_errno};
               const int listener = socket(AF_INET, SOCK_STREAM, 0);
               sockaddr_in address{};
               address.sin_family = AF_INET;
               address.sin_port = htons(80);
               bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address));
               listen(listener, 8);
               cleanup.fds = {listener, real[0], real[1]};
               EXPECT_TRUE(listener == real[0] || listener == real[1] || listener < real[0])
                   << "the host's descriptor should share a number with the real pipe";
               for (;;) accept(listener, nullptr, nullptr);
             },
         .addresses = {"10.0.0.1"}});
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Milliseconds(10));
      sim.Crash(server.id());
    });
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
    EXPECT_TRUE(dsim::posix::EscapedCalls(sim.scheduler()).empty());
  }
  EXPECT_EQ(closes, std::vector<int>({-1, -1, -1}));
  EXPECT_EQ(close_errno, EPERM);
  // The real pipe is intact.
  EXPECT_EQ(write(real[1], "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(real[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  close(real[0]);
  close(real[1]);
}

// read and write have their own pass-through path (posix/io.cc, split for speed); a
// crashed host's task must get EPERM from them too, not the real descriptor.
TEST(PosixUnwind, CrashedHostsTasksCannotReadOrWriteTheProcesssRealDescriptors) {
  int real[2];
  ASSERT_EQ(pipe(real), 0);
  ASSERT_EQ(fcntl(real[0], F_SETFL, O_NONBLOCK), 0);  // A forwarded read must not hang.
  std::vector<long> results;
  std::vector<int> errors;
  {
    dsim::Simulation sim({.seed = 1});
    dsim::Host& server = sim.AddHost(
        {.name = "server",
         .start =
             [&] {
               struct UsesInDestructor {
                 int read_fd, write_fd;
                 std::vector<long>* results;
                 std::vector<int>* errors;
                 ~UsesInDestructor() {
                   char byte = 'x';
                   results->push_back(write(write_fd, &byte, 1));
                   errors->push_back(errno);
                   results->push_back(read(read_fd, &byte, 1));
                   errors->push_back(errno);
                 }
               } cleanup{real[0], real[1], &results, &errors};
               const int listener = socket(AF_INET, SOCK_STREAM, 0);
               sockaddr_in address{};
               address.sin_family = AF_INET;
               address.sin_port = htons(80);
               bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address));
               listen(listener, 8);
               for (;;) accept(listener, nullptr, nullptr);
             },
         .addresses = {"10.0.0.1"}});
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Milliseconds(10));
      sim.Crash(server.id());
    });
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  }
  EXPECT_EQ(results, std::vector<long>({-1, -1}));
  EXPECT_EQ(errors, std::vector<int>({EPERM, EPERM}));
  char c = 0;
  EXPECT_EQ(read(real[0], &c, 1), -1);  // Nothing was written to the real pipe.
  EXPECT_EQ(errno, EAGAIN);
  close(real[0]);
  close(real[1]);
}

}  // namespace

// The libc calls declared noexcept (__THROW: socket, bind, getsockopt, pipe, eventfd,
// epoll_ctl, ...) pass a scheduling point, where a crash of the host may be delivered.
// The kill must wait for the task's next blocking point: thrown through the noexcept
// interposer it would end the process (std::terminate).
TEST(PosixUnwind, ACrashDuringANoexceptCallIsDeliveredAfterIt) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    dsim::Simulation sim({.seed = seed});
    int calls = 0;
    dsim::Host& server = sim.AddHost(
        {.name = "server",
         .start =
             [&] {
               for (;;) {
                 const int fd = socket(AF_INET, SOCK_STREAM, 0);
                 int type = 0;
                 socklen_t length = sizeof type;
                 getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length);
                 sockaddr_in address{};
                 address.sin_family = AF_INET;
                 bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
                 int pair[2];
                 if (pipe(pair) == 0) {
                   close(pair[0]);
                   close(pair[1]);
                 }
                 close(fd);
                 ++calls;
               }
             },
         .addresses = {"10.0.0.1"}});
    sim.Spawn("chaos", [&] {
      for (int i = 0; i < 1 + static_cast<int>(seed % 7); ++i) dsim::Yield();
      sim.Crash(server.id());
    });
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok()) << "seed " << seed;
    EXPECT_GE(calls, 0);
  }
}
