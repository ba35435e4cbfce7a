// //posix descriptors beyond sockets: socketpair, dup of every kind, and what blocks
// between tasks (the kernel comparison of single calls is //tests:linux_differential_test).
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "net/network.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"
#include "sockets/files.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

// Runs `body` in a task on a simulated host.
RunResult OnHost(std::function<void()> body, uint64_t seed = 1) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  host.Spawn("main", std::move(body));
  return scheduler.Run();
}

TEST(PosixSocketpair, StreamWriterBlocksWhenFullAndReaderGetsEveryByteThenEof) {
  constexpr size_t kTotal = 1 << 20;
  size_t received = 0;
  bool order_ok = true;
  RunResult result = OnHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    std::thread writer([w = fds[0]] {
      std::string data(kTotal, '\0');
      for (size_t i = 0; i < kTotal; ++i) data[i] = static_cast<char>(i % 251);
      size_t sent = 0;
      while (sent < kTotal) {
        const ssize_t n = write(w, data.data() + sent, kTotal - sent);
        ASSERT_GT(n, 0);
        sent += n;
      }
      ASSERT_EQ(shutdown(w, SHUT_WR), 0);
    });
    std::vector<char> buffer(10000);
    ssize_t n;
    while ((n = read(fds[1], buffer.data(), buffer.size())) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] != static_cast<char>((received + i) % 251)) order_ok = false;
      }
      received += n;
    }
    EXPECT_EQ(n, 0);  // SHUT_WR on the writer's end: end of file here.
    writer.join();
    close(fds[0]);
    close(fds[1]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(received, kTotal);
  EXPECT_TRUE(order_ok);
}

TEST(PosixSocketpair, NonblockingWriterQueuesLinuxsByteCountThenPollSaysWritableAgain) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    const std::string chunk(1000, 'x');
    size_t total = 0;
    ssize_t n;
    while ((n = send(fds[0], chunk.data(), chunk.size(), 0)) > 0) total += n;
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(total, 93000u);  // Measured on Linux 6.18 with the default SO_SNDBUF.
    pollfd p{fds[0], POLLOUT, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);
    std::string sink(200000, '\0');
    EXPECT_EQ(read(fds[1], sink.data(), sink.size()), 93000);
    EXPECT_EQ(poll(&p, 1, 0), 1);
    close(fds[0]);
    close(fds[1]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, DatagramsKeepBoundariesAndSeqpacketEndsWithEof) {
  RunResult result = OnHost([] {
    for (int type : {SOCK_DGRAM, SOCK_SEQPACKET}) {
      int fds[2];
      ASSERT_EQ(socketpair(AF_UNIX, type, 0, fds), 0);
      ASSERT_EQ(send(fds[0], "hello", 5, 0), 5);
      ASSERT_EQ(send(fds[0], "", 0, 0), 0);
      ASSERT_EQ(send(fds[0], "world!", 6, 0), 6);
      char buffer[16];
      EXPECT_EQ(recv(fds[1], buffer, 3, 0), 3);  // The rest of "hello" is discarded.
      EXPECT_EQ(std::string(buffer, 3), "hel");
      EXPECT_EQ(recv(fds[1], buffer, sizeof(buffer), 0), 0);  // The empty datagram.
      EXPECT_EQ(recv(fds[1], buffer, 2, MSG_TRUNC), 6);       // Its real length.
      close(fds[0]);
      if (type == SOCK_SEQPACKET) {
        EXPECT_EQ(recv(fds[1], buffer, sizeof(buffer), 0), 0);
        EXPECT_EQ(send(fds[1], "x", 1, MSG_NOSIGNAL), -1);
        EXPECT_EQ(errno, EPIPE);
      } else {
        EXPECT_EQ(send(fds[1], "x", 1, 0), -1);
        EXPECT_EQ(errno, ECONNREFUSED);
      }
      close(fds[1]);
    }
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, BlockedReaderWakesWithEofWhenThePeerCloses) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    std::thread closer([fd = fds[0]] {
      usleep(5000);
      close(fd);
    });
    char c;
    const auto start = Now();
    EXPECT_EQ(read(fds[1], &c, 1), 0);
    EXPECT_EQ(Now() - start, absl::Milliseconds(5));
    EXPECT_EQ(write(fds[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    closer.join();
    close(fds[1]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, ClosingTheDescriptorOfABlockedReceiveDoesNotEndIt) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    char c = 0;
    std::thread reader([&c, fd = fds[1]] { EXPECT_EQ(recv(fd, &c, 1, 0), 1); });
    usleep(1000);
    ASSERT_EQ(close(fds[1]), 0);  // As on Linux, the blocked recv keeps the socket.
    usleep(1000);
    EXPECT_EQ(send(fds[0], "z", 1, 0), 1);
    reader.join();
    EXPECT_EQ(c, 'z');
    EXPECT_EQ(send(fds[0], "z", 1, MSG_NOSIGNAL), -1);  // Now it is released.
    EXPECT_EQ(errno, EPIPE);
    close(fds[0]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, EpollWaitWakesWithHangupWhenAnotherThreadClosesThePeer) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    EXPECT_EQ(fcntl(fds[0], F_GETFD), FD_CLOEXEC);
    const int epoll = epoll_create1(0);
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ASSERT_EQ(epoll_ctl(epoll, EPOLL_CTL_ADD, fds[1], &event), 0);
    std::thread closer([fd = fds[0]] {
      usleep(1000);
      close(fd);
    });
    epoll_event out[4];
    ASSERT_EQ(epoll_wait(epoll, out, 4, -1), 1);
    EXPECT_EQ(out[0].events, static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP | EPOLLHUP));
    EXPECT_EQ(epoll_wait(epoll, out, 4, 0), 0);  // Edge-triggered: reported once.
    closer.join();
    close(fds[1]);
    close(epoll);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, TheDsimCallWorksWithoutPosixNames) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(Socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, fds), 0);
    EXPECT_EQ(Send(fds[0], "ab", 2, 0), 2);
    char buffer[4];
    EXPECT_EQ(Recv(fds[1], buffer, sizeof(buffer), 0), 2);
    EXPECT_EQ(Recv(fds[1], buffer, sizeof(buffer), 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    // The mmsg calls take the pending error of any socket kind (a pair end too).
    ASSERT_EQ(Send(fds[0], "cde", 3, 0), 3);
    iovec v{buffer, sizeof(buffer)};
    mmsghdr message{};
    message.msg_hdr.msg_iov = &v;
    message.msg_hdr.msg_iovlen = 1;
    EXPECT_EQ(Recvmmsg(fds[1], &message, 1, MSG_DONTWAIT, nullptr), 1);
    EXPECT_EQ(message.msg_len, 3u);
    EXPECT_EQ(Socketpair(AF_INET, SOCK_STREAM, 0, fds), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    EXPECT_EQ(Close(fds[0]), 0);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, TimeoutsAndDeadlinesEndBlockedCallsAtTheirVirtualTime) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    timeval three_ms{0, 3000};
    ASSERT_EQ(setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &three_ms, sizeof(three_ms)), 0);
    char c;
    absl::Time start = Now();
    EXPECT_EQ(recv(fds[1], &c, 1, 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(Now() - start, absl::Milliseconds(3));
    // dsim's absolute deadline comes first here, and a later call fails at once.
    start = Now();
    ASSERT_EQ(SetReadDeadline(fds[1], start + absl::Milliseconds(1)), 0);
    EXPECT_EQ(Read(fds[1], &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(Now() - start, absl::Milliseconds(1));
    ASSERT_EQ(send(fds[0], "q", 1, 0), 1);
    EXPECT_EQ(recv(fds[1], &c, 1, 0), -1);  // Data is ready, but the deadline passed.
    EXPECT_EQ(errno, EAGAIN);
    ASSERT_EQ(SetReadDeadline(fds[1], absl::InfiniteFuture()), 0);
    EXPECT_EQ(recv(fds[1], &c, 1, 0), 1);
    close(fds[0]);
    close(fds[1]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSocketpair, NamedUnixSocketsFailTheRunNamingTheCall) {
  RunResult result = OnHost([] { EXPECT_EQ(socket(AF_UNIX, SOCK_STREAM, 0), -1); });
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("called socket"), std::string::npos) << result.ToString();
  EXPECT_NE(result.ToString().find("AF_UNIX"), std::string::npos) << result.ToString();

  RunResult bound = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, "/tmp/x.sock");
    EXPECT_EQ(bind(fds[0], reinterpret_cast<sockaddr*>(&address), sizeof(address)), -1);
  });
  EXPECT_EQ(bound.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(bound.ToString().find("called bind"), std::string::npos) << bound.ToString();

  RunResult sent = OnHost([] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, "/tmp/y.sock");
    EXPECT_EQ(sendto(fds[0], "x", 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              -1);
  });
  EXPECT_EQ(sent.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(sent.ToString().find("called sendto"), std::string::npos) << sent.ToString();
}

TEST(PosixDup, DupOfAPipeSharesFlagsAndKeepsTheDescriptionOpen) {
  RunResult result = OnHost([] {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    const int copy = dup(fds[1]);
    ASSERT_GT(copy, fds[1]);
    EXPECT_EQ(fcntl(copy, F_GETFL), O_WRONLY | O_NONBLOCK);
    ASSERT_EQ(fcntl(fds[1], F_SETFL, 0), 0);
    EXPECT_EQ(fcntl(copy, F_GETFL), O_WRONLY);  // One description: flags are shared.
    ASSERT_EQ(close(fds[1]), 0);
    EXPECT_EQ(write(copy, "ab", 2), 2);  // Still open through the copy.
    char buffer[4];
    EXPECT_EQ(read(fds[0], buffer, sizeof(buffer)), 2);
    pollfd p{fds[0], POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);
    ASSERT_EQ(close(copy), 0);
    EXPECT_EQ(poll(&p, 1, 0), 1);  // The last writer closed: hang-up.
    EXPECT_EQ(p.revents, POLLHUP);
    const int high = fcntl(fds[0], F_DUPFD_CLOEXEC, 50);
    EXPECT_EQ(high, 50);
    EXPECT_EQ(fcntl(high, F_GETFD), FD_CLOEXEC);
    EXPECT_EQ(fcntl(fds[0], F_GETFD), 0);
    close(high);
    close(fds[0]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixDup, Dup2OntoAnOpenDescriptorClosesItSilently) {
  RunResult result = OnHost([] {
    const int counter = eventfd(7, EFD_NONBLOCK);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    // fds[0] (the read end, its last descriptor) is closed: the writer sees no reader.
    ASSERT_EQ(dup2(counter, fds[0]), fds[0]);
    uint64_t value = 0;
    EXPECT_EQ(read(fds[0], &value, sizeof(value)), 8);
    EXPECT_EQ(value, 7u);
    EXPECT_EQ(write(fds[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    EXPECT_EQ(dup3(counter, counter, 0), -1);
    EXPECT_EQ(errno, EINVAL);
    close(counter);
    close(fds[0]);
    close(fds[1]);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixDup, EpollRegistrationFollowsTheDescriptionNotTheNumber) {
  RunResult result = OnHost([] {
    const int counter = eventfd(1, EFD_NONBLOCK);
    const int epoll = epoll_create1(0);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = 42;
    ASSERT_EQ(epoll_ctl(epoll, EPOLL_CTL_ADD, counter, &event), 0);
    const int copy = dup(counter);
    ASSERT_EQ(close(counter), 0);
    epoll_event out[2];
    ASSERT_EQ(epoll_wait(epoll, out, 2, 0), 1);  // Linux keeps it: the copy is open.
    EXPECT_EQ(out[0].data.u32, 42u);
    ASSERT_EQ(close(copy), 0);
    EXPECT_EQ(epoll_wait(epoll, out, 2, 0), 0);
    close(epoll);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

}  // namespace
}  // namespace dsim
