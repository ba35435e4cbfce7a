// Code built with _FORTIFY_SOURCE (Bazel's -c opt, Debian's libraries) calls glibc's
// checked entry points (__read_chk, __recv_chk, __poll_chk, __open_2, ...), which glibc
// implements with internal calls no interposer sees. //posix defines them: in a task,
// a fortified call on a simulated descriptor reaches the simulated one, and the buffer
// checks still end the process. This file is compiled with -O2 -D_FORTIFY_SOURCE=2, so
// every call below with a length the compiler cannot see is a fortified one.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

#if !defined(_FORTIFY_SOURCE) || _FORTIFY_SOURCE < 2 || !defined(__OPTIMIZE__)
#error "this test must be built with -O2 -D_FORTIFY_SOURCE=2 (see tests/BUILD.bazel)"
#endif

namespace {

// Lengths and flags the compiler cannot fold, so that the fortified entry points are
// called (a constant length that fits the buffer calls the plain function).
volatile size_t opaque_length = 5;
volatile int opaque_flags = O_RDONLY;
volatile nfds_t opaque_count = 1;

void RunOnOneHost(std::function<void()> body) {
  dsim::Simulation sim({.seed = 1});
  sim.AddHost({.name = "fortified", .start = std::move(body), .addresses = {"10.0.0.1"}});
  sim.Run();
  EXPECT_TRUE(dsim::posix::EscapedCalls(sim.scheduler()).empty());
}

TEST(PosixFortify, FortifiedReadReachesTheSimulatedDescriptor) {
  std::string got;
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ASSERT_EQ(fds[0], 3);  // A number the process surely has open for real too.
    ASSERT_EQ(write(fds[0], "hello", 5), 5);
    char buffer[16];
    const ssize_t n = read(fds[1], buffer, opaque_length);  // __read_chk
    ASSERT_EQ(n, 5) << std::strerror(errno);
    got.assign(buffer, n);
  });
  EXPECT_EQ(got, "hello");
}

TEST(PosixFortify, FortifiedRecvAndRecvfromReachTheSimulatedSocket) {
  std::string first, second;
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
    ASSERT_EQ(send(fds[0], "one", 3, 0), 3);
    ASSERT_EQ(send(fds[0], "two", 3, 0), 3);
    char buffer[8];
    const ssize_t n1 = recv(fds[1], buffer, opaque_length, 0);  // __recv_chk
    ASSERT_EQ(n1, 3) << std::strerror(errno);
    first.assign(buffer, n1);
    sockaddr_storage from;
    socklen_t from_length = sizeof from;
    const ssize_t n2 = recvfrom(fds[1], buffer, opaque_length, 0,  // __recvfrom_chk
                                reinterpret_cast<sockaddr*>(&from), &from_length);
    ASSERT_EQ(n2, 3) << std::strerror(errno);
    second.assign(buffer, n2);
  });
  EXPECT_EQ(first, "one");
  EXPECT_EQ(second, "two");
}

TEST(PosixFortify, FortifiedPollWaitsOnTheSimulatedDescriptor) {
  int ready = -1;
  short revents = 0;
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    dsim::Spawn("writer", [w = fds[1]] {
      dsim::SleepFor(absl::Milliseconds(5));
      ASSERT_EQ(write(w, "x", 1), 1);
    });
    pollfd polls[1] = {{fds[0], POLLIN, 0}};
    ready = poll(polls, opaque_count, 1000);  // __poll_chk: blocks in virtual time
    revents = polls[0].revents;
    EXPECT_EQ(dsim::Now(), dsim::Scheduler::Epoch() + absl::Milliseconds(5));
  });
  EXPECT_EQ(ready, 1);
  EXPECT_EQ(revents, POLLIN);
}

TEST(PosixFortify, FortifiedOpenWithUnknownFlagsOpensTheSimulatedDevice) {
  int fd = -1;
  RunOnOneHost([&] {
    fd = open("/dev/urandom", opaque_flags);  // __open_2
    ASSERT_GE(fd, 0) << std::strerror(errno);
    unsigned char bytes[8];
    EXPECT_EQ(read(fd, bytes, opaque_length), 5);
    EXPECT_EQ(close(fd), 0);
  });
  EXPECT_EQ(fd, 3);  // A host number: the simulated device, not a real file.
}

TEST(PosixFortify, FortifiedGethostnameNamesTheHost) {
  std::string name;
  RunOnOneHost([&] {
    char buffer[64];
    volatile size_t length = sizeof buffer;
    ASSERT_EQ(gethostname(buffer, length), 0);  // __gethostname_chk
    name = buffer;
  });
  EXPECT_EQ(name, "fortified");
}

TEST(PosixFortifyDeathTest, AReadPastTheBufferStillEndsTheProcess) {
  EXPECT_DEATH(
      {
        dsim::Simulation sim({.seed = 1});
        sim.AddHost({.name = "h", .start = [] {
          int fds[2];
          socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
          char buffer[4];
          opaque_length = 64;
          (void)!read(fds[1], buffer, opaque_length);
        }, .addresses = {"10.0.0.1"}});
        sim.Run();
      },
      "buffer overflow detected");
}

TEST(PosixFortifyDeathTest, AnOpenThatNeedsAModeStillEndsTheProcess) {
  EXPECT_DEATH(
      {
        dsim::Simulation sim({.seed = 1});
        sim.AddHost({.name = "h", .start = [] {
          opaque_flags = O_CREAT | O_WRONLY;
          (void)!open("/tmp/x", opaque_flags);
        }, .addresses = {"10.0.0.1"}});
        sim.Run();
      },
      "O_CREAT or O_TMPFILE without mode");
}

}  // namespace
