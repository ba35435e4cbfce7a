// /dev/urandom and /dev/random read from a task draw from the simulation's strategy:
// the same seed gives the same bytes, another seed others. Built twice: with //posix
// alone and with //posix:files (whose open() owns paths, and hands these two back).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "net/network.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"
#include "sockets/internal/stack.h"

namespace dsim {
namespace {

// Bytes read from the devices in every way a program does, concatenated.
std::string ReadDevices(uint64_t seed) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  std::string bytes;
  host.Spawn("reader", [&] {
    char buffer[16];
    const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 3);
    ASSERT_EQ(read(fd, buffer, sizeof(buffer)), 16);
    bytes.append(buffer, 16);
    EXPECT_EQ(write(fd, "ignored", 7), -1);  // Opened read-only.
    ASSERT_EQ(close(fd), 0);

    const int random = openat(AT_FDCWD, "/dev/random", O_RDWR);
    ASSERT_GE(random, 3);
    ASSERT_EQ(read(random, buffer, 8), 8);
    bytes.append(buffer, 8);
    EXPECT_EQ(write(random, "mixed in", 8), 8);
    ASSERT_EQ(close(random), 0);

    FILE* stream = fopen("/dev/urandom", "rb");
    ASSERT_NE(stream, nullptr);
    ASSERT_EQ(fread(buffer, 1, 12, stream), 12u);
    bytes.append(buffer, 12);
    ASSERT_EQ(fclose(stream), 0);

    std::ifstream in("/dev/urandom", std::ios::binary);
    ASSERT_TRUE(in.is_open());
    ASSERT_TRUE(in.read(buffer, 10));
    bytes.append(buffer, 10);
  });
  const RunResult result = scheduler.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(internal::HostStack::Of(host).open_descriptors(), 0u);  // Every way of opening closed its descriptor.
  return bytes;
}

TEST(PosixRandomDevices, ReadsReplayBySeedAndDifferAcrossSeeds) {
  const std::string first = ReadDevices(7);
  ASSERT_EQ(first.size(), 46u);
  EXPECT_EQ(ReadDevices(7), first);
  EXPECT_NE(ReadDevices(8), first);
}

TEST(PosixRandomDevices, OutsideTasksTheRealDeviceIsRead) {
  const int fd = open("/dev/urandom", O_RDONLY);
  ASSERT_GE(fd, 0);
  char buffer[8];
  EXPECT_EQ(read(fd, buffer, sizeof(buffer)), 8);
  close(fd);
  std::ifstream in("/dev/urandom", std::ios::binary);
  EXPECT_TRUE(in.read(buffer, 8));
}

TEST(PosixRandomDevices, ATaskWithoutAHostFailsTheRun) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  scheduler.Spawn("hostless", [] { EXPECT_EQ(open("/dev/urandom", O_RDONLY), -1); });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("called open"), std::string::npos) << result.ToString();
}

}  // namespace
}  // namespace dsim
