// Pipes and eventfds in a host's descriptor table (sockets/files.h), next to sockets.
#include "sockets/files.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  Scheduler scheduler_{SchedulerOptions{.seed = 3}};
  Network network_{&scheduler_};
  NetworkHost& host_ = network_.AddHost("h", {"10.0.0.1"});

  void RunOnHost(std::function<void()> body) {
    host_.Spawn("main", std::move(body));
    RunResult result = scheduler_.Run();
    ASSERT_TRUE(result.ok()) << result.ToString();
  }
};

TEST_F(FilesTest, PipeSharesTheDescriptorTableWithSockets) {
  RunOnHost([] {
    const int socket_fd = Socket(AF_INET, SOCK_STREAM, 0);
    int fds[2];
    ASSERT_EQ(Pipe(fds), 0);
    EXPECT_EQ(socket_fd, 3);
    EXPECT_EQ(fds[0], 4);
    EXPECT_EQ(fds[1], 5);
    ASSERT_EQ(Close(socket_fd), 0);
    const int efd = Eventfd(0, 0);
    EXPECT_EQ(efd, 3);  // The lowest free number, whatever kind held it.
    // Socket calls on a pipe: ENOTSOCK, as Linux.
    EXPECT_EQ(Listen(fds[0], 1), -1);
    EXPECT_EQ(errno, ENOTSOCK);
    EXPECT_EQ(Close(fds[0]), 0);
    EXPECT_EQ(Close(fds[0]), -1);
    EXPECT_EQ(errno, EBADF);
  });
}

TEST_F(FilesTest, PipeReadBlocksUntilAWriteThenSeesEndOfFile) {
  RunOnHost([] {
    int fds[2];
    ASSERT_EQ(Pipe(fds), 0);
    const absl::Time start = Now();
    Spawn("writer", [w = fds[1]] {
      dsim::SleepFor(absl::Milliseconds(5));
      EXPECT_EQ(Write(w, "hello", 5), 5);
      EXPECT_EQ(Close(w), 0);
    });
    char buffer[16];
    EXPECT_EQ(Read(fds[0], buffer, sizeof(buffer)), 5);
    EXPECT_EQ(std::string(buffer, 5), "hello");
    EXPECT_EQ(Now() - start, absl::Milliseconds(5));
    EXPECT_EQ(Read(fds[0], buffer, sizeof(buffer)), 0);
  });
}

TEST_F(FilesTest, PipeWriteWithoutReaderIsEpipe) {
  RunOnHost([] {
    int fds[2];
    ASSERT_EQ(Pipe(fds), 0);
    ASSERT_EQ(Close(fds[0]), 0);
    EXPECT_EQ(Write(fds[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    pollfd p{fds[1], POLLOUT, 0};
    EXPECT_EQ(Poll(&p, 1, 0), 1);
    EXPECT_EQ(p.revents, POLLOUT | POLLERR);
  });
}

TEST_F(FilesTest, NonblockingPipeFillsToCapacityThenEagain) {
  RunOnHost([] {
    int fds[2];
    ASSERT_EQ(Pipe2(fds, O_NONBLOCK), 0);
    EXPECT_EQ(GetFlags(fds[0]), O_RDONLY | O_NONBLOCK);
    EXPECT_EQ(GetFlags(fds[1]), O_WRONLY | O_NONBLOCK);
    std::string chunk(1000, 'a');
    size_t total = 0;
    for (;;) {
      const ssize_t n = Write(fds[1], chunk.data(), chunk.size());
      if (n < 0) {
        EXPECT_EQ(errno, EAGAIN);
        break;
      }
      total += static_cast<size_t>(n);
    }
    EXPECT_EQ(total, 64000u);  // Linux's page accounting: four 1000-byte writes a page.
    std::string big(5000, 'b');
    int more[2];
    ASSERT_EQ(Pipe2(more, O_NONBLOCK), 0);
    total = 0;
    for (ssize_t n; (n = Write(more[1], big.data(), big.size())) > 0;) total += n;
    EXPECT_EQ(total, 54096u);  // As measured on Linux 6.x.
    char buffer[8];
    EXPECT_EQ(Read(fds[1], buffer, 1), -1);  // The write end is not readable.
    EXPECT_EQ(errno, EBADF);
    ASSERT_EQ(Pipe2(fds, 0x4000000), -1);
    EXPECT_EQ(errno, EINVAL);
  });
}

TEST_F(FilesTest, PollWakesOnPipeWriteFromAnotherTask) {
  RunOnHost([] {
    int fds[2];
    ASSERT_EQ(Pipe(fds), 0);
    Spawn("waker", [w = fds[1]] {
      dsim::SleepFor(absl::Seconds(1));
      Write(w, "x", 1);
    });
    pollfd p{fds[0], POLLIN, 0};
    const absl::Time start = Now();
    EXPECT_EQ(Poll(&p, 1, -1), 1);
    EXPECT_EQ(p.revents, POLLIN);
    EXPECT_EQ(Now() - start, absl::Seconds(1));
  });
}

TEST_F(FilesTest, EventfdCountsAndSemaphoreMode) {
  RunOnHost([] {
    const int efd = Eventfd(2, EFD_NONBLOCK);
    uint64_t value = 3;
    EXPECT_EQ(Write(efd, &value, 8), 8);
    EXPECT_EQ(Read(efd, &value, 8), 8);
    EXPECT_EQ(value, 5u);
    EXPECT_EQ(Read(efd, &value, 8), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(Read(efd, &value, 4), -1);
    EXPECT_EQ(errno, EINVAL);
    value = UINT64_MAX;
    EXPECT_EQ(Write(efd, &value, 8), -1);
    EXPECT_EQ(errno, EINVAL);

    const int sem = Eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    EXPECT_EQ(Read(sem, &value, 8), 8);
    EXPECT_EQ(value, 1u);
    EXPECT_EQ(Read(sem, &value, 8), 8);
    EXPECT_EQ(Read(sem, &value, 8), -1);
    EXPECT_EQ(errno, EAGAIN);
  });
}

TEST_F(FilesTest, BlockedEventfdReaderShowsInDeadlockReport) {
  host_.Spawn("reader", [] {
    const int efd = Eventfd(0, 0);
    uint64_t value;
    Read(efd, &value, 8);
  });
  RunResult result = scheduler_.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kDeadlock);
  EXPECT_NE(result.ToString().find("read(eventfd)"), std::string::npos) << result.ToString();
}

}  // namespace
}  // namespace dsim
