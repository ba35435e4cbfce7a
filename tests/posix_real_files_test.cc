// Real files a task opens (the test's data files, //posix without //posix:files) and the
// host's simulated descriptors never share a number: the real descriptor is moved to the
// real range at once, so reads reach the right object and simulated numbers stay the
// same whatever the process has open.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

namespace {

std::string WriteDataFile(const std::string& name, const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

int SocketType(int fd) {
  int type = 0;
  socklen_t length = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 ? type : -errno;
}

void RunOnOneHost(std::function<void()> body) {
  dsim::Simulation sim({.seed = 1});
  sim.AddHost({.name = "host", .start = std::move(body), .addresses = {"10.0.0.1"}});
  sim.Run();
}

TEST(PosixRealFiles, AFileOpenedAfterASocketClosedReadsTheFileNotTheNextSocket) {
  const std::string path = WriteDataFile("after_socket.txt", "hello");
  std::string contents;
  int file_fd = -1, socket_fd = -1;
  RunOnOneHost([&] {
    close(socket(AF_INET, SOCK_STREAM, 0));  // The host's 3 is free again.
    file_fd = open(path.c_str(), O_RDONLY);
    socket_fd = socket(AF_INET, SOCK_STREAM, 0);  // Lowest free host number.
    char buffer[16] = {};
    const ssize_t n = read(file_fd, buffer, sizeof buffer);
    contents.assign(buffer, n > 0 ? n : 0);
    EXPECT_EQ(SocketType(socket_fd), SOCK_STREAM);
    EXPECT_EQ(close(file_fd), 0);
  });
  EXPECT_EQ(contents, "hello");
  EXPECT_EQ(socket_fd, 3);
  EXPECT_GE(file_fd, dsim::posix::RealDescriptorFloor());
}

TEST(PosixRealFiles, AFileOpenedWhileTheHostHoldsTheNumberIsReachable) {
  const std::string path = WriteDataFile("while_held.txt", "data");
  std::string contents;
  RunOnOneHost([&] {
    const int socket_fd = socket(AF_INET, SOCK_DGRAM, 0);
    const int file_fd = openat(AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_NE(file_fd, socket_fd);
    EXPECT_EQ(fcntl(file_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    char buffer[16] = {};
    const ssize_t n = read(file_fd, buffer, sizeof buffer);
    contents.assign(buffer, n > 0 ? n : 0);
    EXPECT_EQ(SocketType(socket_fd), SOCK_DGRAM);
    close(file_fd);
  });
  EXPECT_EQ(contents, "data");
}

TEST(PosixRealFiles, StdioStreamsOfRealFilesUseTheMovedDescriptor) {
  const std::string path = WriteDataFile("stream.txt", "line one\nline two\n");
  std::string first, second;
  int stream_fd = -1;
  RunOnOneHost([&] {
    const int socket_fd = socket(AF_INET, SOCK_STREAM, 0);
    FILE* stream = fopen(path.c_str(), "r");
    ASSERT_NE(stream, nullptr);
    stream_fd = fileno(stream);
    char line[32];
    if (fgets(line, sizeof line, stream) != nullptr) first = line;
    std::ifstream in(path);
    std::getline(in, second);
    EXPECT_EQ(fclose(stream), 0);
    EXPECT_EQ(SocketType(socket_fd), SOCK_STREAM);
  });
  EXPECT_EQ(first, "line one\n");
  EXPECT_EQ(second, "line one");
  EXPECT_GE(stream_fd, dsim::posix::RealDescriptorFloor());
}

TEST(PosixRealFiles, SimulatedNumbersDoNotDependOnTheProcessesOpenFiles) {
  auto first_socket = [] {
    int fd = -1;
    RunOnOneHost([&] { fd = socket(AF_INET, SOCK_STREAM, 0); });
    return fd;
  };
  const int before = first_socket();
  const int extra_a = open("/dev/null", O_RDONLY);  // Outside any task: real, low numbers.
  const int extra_b = open("/dev/null", O_RDONLY);
  const int after = first_socket();
  close(extra_a);
  close(extra_b);
  EXPECT_EQ(before, 3);
  EXPECT_EQ(after, 3);
}

}  // namespace
