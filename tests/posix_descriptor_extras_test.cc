// The rarer descriptor calls (posix/descriptor_extras.cc): each either acts on the
// simulated descriptor or fails the run; none reaches the process's real descriptor of
// a simulated number.
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "net/network.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"

namespace dsim {
namespace {

RunResult OnHost(std::function<void()> body, Scheduler* scheduler) {
  Network network(scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  host.Spawn("main", std::move(body));
  return scheduler->Run();
}

RunResult OnHost(std::function<void()> body) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  return OnHost(std::move(body), &scheduler);
}

std::string RealDataFile(const std::string& name, const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

TEST(PosixMmsg, SendmmsgAndRecvmmsgMoveSeveralDatagramsAtOnce) {
  std::vector<std::string> received;
  int sent = -1, got = -1;
  RunResult result = OnHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
    char a[] = "first", b[] = "second";
    iovec out_iov[2] = {{a, 5}, {b, 6}};
    mmsghdr out[2] = {};
    for (int i = 0; i < 2; ++i) {
      out[i].msg_hdr.msg_iov = &out_iov[i];
      out[i].msg_hdr.msg_iovlen = 1;
    }
    sent = sendmmsg(fds[0], out, 2, 0);
    EXPECT_EQ(out[1].msg_len, 6u);
    char buffers[3][16];
    iovec in_iov[3];
    mmsghdr in[3] = {};
    for (int i = 0; i < 3; ++i) {
      in_iov[i] = {buffers[i], sizeof buffers[i]};
      in[i].msg_hdr.msg_iov = &in_iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    got = recvmmsg(fds[1], in, 3, MSG_DONTWAIT, nullptr);
    for (int i = 0; i < got; ++i) received.emplace_back(buffers[i], in[i].msg_len);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(sent, 2);
  EXPECT_EQ(got, 2);
  EXPECT_EQ(received, (std::vector<std::string>{"first", "second"}));
}

TEST(PosixTerminals, ASimulatedDescriptorIsNotATerminal) {
  RunResult result = OnHost([&] {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(fd, 3);
    errno = 0;
    EXPECT_EQ(isatty(fd), 0);
    EXPECT_EQ(errno, ENOTTY);
    termios settings;
    EXPECT_EQ(tcgetattr(fd, &settings), -1);
    EXPECT_EQ(errno, ENOTTY);
    char name[64];
    EXPECT_EQ(ttyname_r(fd, name, sizeof name), ENOTTY);
    EXPECT_EQ(ttyname(fd), nullptr);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixCloseRange, ClosesTheHostsDescriptorsAndLeavesTheProcesssOpen) {
  int real_pipe[2];
  ASSERT_EQ(pipe(real_pipe), 0);  // The process's, below any floor.
  int reused = -1, kept_type = -1;
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  RunResult result = OnHost(
      [&] {
        const int a = socket(AF_INET, SOCK_STREAM, 0);
        const int b = socket(AF_INET, SOCK_DGRAM, 0);
        const int c = socket(AF_INET, SOCK_DGRAM, 0);
        ASSERT_EQ(a, 3);
        ASSERT_EQ(c, 5);
        ASSERT_EQ(close_range(b, ~0U, 0), 0);
        reused = socket(AF_INET, SOCK_STREAM, 0);  // The lowest free: b's number.
        int type = 0;
        socklen_t length = sizeof type;
        getsockopt(a, SOL_SOCKET, SO_TYPE, &type, &length);
        kept_type = type;
        errno = 0;
        EXPECT_EQ(close_range(5, 4, 0), -1);
        EXPECT_EQ(errno, EINVAL);
      },
      &scheduler);
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(reused, 4);
  EXPECT_EQ(kept_type, SOCK_STREAM);
  EXPECT_GE(fcntl(real_pipe[0], F_GETFD), 0);  // Still open.
  EXPECT_GE(fcntl(real_pipe[1], F_GETFD), 0);
  close(real_pipe[0]);
  close(real_pipe[1]);
}

TEST(PosixCloseRange, CloexecMarksInsteadOfClosing) {
  RunResult result = OnHost([&] {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(fcntl(fd, F_GETFD), 0);
    ASSERT_EQ(close_range(fd, fd, CLOSE_RANGE_CLOEXEC), 0);
    EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSendfile, FromARealFileToASimulatedSocket) {
  const std::string path = RealDataFile("sendfile.txt", "0123456789");
  std::string received;
  off_t offset_after = -1;
  RunResult result = OnHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    const int file = open(path.c_str(), O_RDONLY);
    ASSERT_GE(file, 0);
    off_t offset = 2;
    EXPECT_EQ(sendfile(fds[0], file, &offset, 3), 3);  // "234", file position untouched
    offset_after = offset;
    EXPECT_EQ(sendfile(fds[0], file, nullptr, 4), 4);  // "0123" from the position
    EXPECT_EQ(lseek(file, 0, SEEK_CUR), 4);
    close(fds[0]);
    char buffer[16];
    ssize_t n;
    while ((n = read(fds[1], buffer, sizeof buffer)) > 0) received.append(buffer, n);
    close(file);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(received, "2340123");
  EXPECT_EQ(offset_after, 5);
}

TEST(PosixSendfile, FromASimulatedPipeIsEinval) {
  RunResult result = OnHost([&] {
    int pipe_fds[2], socket_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, socket_fds), 0);
    ASSERT_EQ(write(pipe_fds[1], "x", 1), 1);
    errno = 0;
    EXPECT_EQ(sendfile(socket_fds[0], pipe_fds[0], nullptr, 1), -1);
    EXPECT_EQ(errno, EINVAL);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSplice, WithASimulatedDescriptorFailsTheRunNamingTheCall) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  RunResult result = OnHost(
      [&] {
        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        EXPECT_EQ(splice(fds[0], nullptr, 1, nullptr, 1, 0), -1);
        EXPECT_EQ(errno, EINVAL);
      },
      &scheduler);
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("called splice"), std::string::npos) << result.ToString();
}

TEST(PosixRealDescriptors, MemfdAndDupOfARealDescriptorGoToTheRealRange) {
  int memfd = -1, copy = -1, next_socket = -1;
  RunResult result = OnHost([&] {
    memfd = memfd_create("scratch", MFD_CLOEXEC);
    copy = dup(2);  // Saving stderr.
    next_socket = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(write(memfd, "abc", 3), 3);  // A real descriptor: forwarded.
    close(memfd);
    close(copy);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_GE(memfd, posix::RealDescriptorFloor());
  EXPECT_GE(copy, posix::RealDescriptorFloor());
  EXPECT_EQ(next_socket, 3);
}

}  // namespace
}  // namespace dsim
