// glibc functions that wrap other libc calls internally (their inner calls bypass the
// symbol table, so interposing the inner call is not enough): each is interposed
// itself and reaches the task's simulated descriptors.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

namespace {

// gRPC's wakeup descriptor uses eventfd_write/eventfd_read. glibc implements them with
// its internal __write/__read: without their own interposers they reached the real
// descriptor with the simulated number (EBADF, or someone else's file).
TEST(PosixLibcWrappers, EventfdReadAndWriteUseTheSimulatedEventfd) {
  int real[2];
  ASSERT_EQ(pipe(real), 0);  // The real process holds low numbers too.
  int write_result = -2, read_result = -2, nonblocking_read = -2, nonblocking_errno = 0;
  eventfd_t value = 0;
  {
    dsim::Simulation sim({.seed = 1});
    sim.AddHost({.name = "host",
                 .start =
                     [&] {
                       const int fd = eventfd(0, EFD_NONBLOCK);
                       write_result = eventfd_write(fd, 5);
                       (void)eventfd_write(fd, 2);
                       read_result = eventfd_read(fd, &value);
                       eventfd_t empty = 0;
                       nonblocking_read = eventfd_read(fd, &empty);
                       nonblocking_errno = errno;
                       close(fd);
                     },
                 .start_daemon = false,
                 .addresses = {"10.0.0.1"}});
    ASSERT_TRUE(sim.Run().ok());
    EXPECT_TRUE(dsim::posix::EscapedCalls(sim.scheduler()).empty());
  }
  EXPECT_EQ(write_result, 0);
  EXPECT_EQ(read_result, 0);
  EXPECT_EQ(value, 7u);  // The counter's sum, reset by the read.
  EXPECT_EQ(nonblocking_read, -1);
  EXPECT_EQ(nonblocking_errno, EAGAIN);
  close(real[0]);
  close(real[1]);
}

}  // namespace
