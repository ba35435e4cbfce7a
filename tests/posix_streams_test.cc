// stdio over simulated descriptors. glibc's stdio reaches the kernel through internal
// calls no interposer sees, so a stream glibc made itself over a simulated descriptor
// number would read and write the process's real descriptor of that number. fdopen,
// dprintf and (with //posix:files) fopen of any path give streams that reach the
// simulated descriptor. Built twice: with //posix alone, and with //posix:files
// (DSIM_TEST_WITH_DISK), where paths name the host's simulated disk.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

namespace {

// Returns the host's id.
dsim::HostId RunOnOneHost(std::function<void()> body, dsim::Simulation* sim,
                          bool only_simulated_calls = true) {
  dsim::Host& host =
      sim->AddHost({.name = "host", .start = std::move(body), .addresses = {"10.0.0.1"}});
  const dsim::RunResult result = sim->Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  if (only_simulated_calls) {
    EXPECT_TRUE(dsim::posix::EscapedCalls(sim->scheduler()).empty());
  }
  return host.id();
}

void RunOnOneHost(std::function<void()> body) {
  dsim::Simulation sim({.seed = 1});
  RunOnOneHost(std::move(body), &sim);
}

TEST(PosixStreams, FdopenOfASimulatedSocketReadsAndWritesIt) {
  std::string line;
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    FILE* out = fdopen(fds[0], "w");
    FILE* in = fdopen(fds[1], "r");
    ASSERT_NE(out, nullptr) << std::strerror(errno);
    ASSERT_NE(in, nullptr) << std::strerror(errno);
    EXPECT_EQ(fileno(out), fds[0]);
    EXPECT_GT(fprintf(out, "hello %d\n", 42), 0);
    EXPECT_EQ(fflush(out), 0);
    char buffer[32] = {};
    ASSERT_NE(fgets(buffer, sizeof buffer, in), nullptr);
    line = buffer;
    EXPECT_EQ(fclose(out), 0);  // Closes the simulated descriptor, as fdopen's stream does.
    EXPECT_EQ(fgets(buffer, sizeof buffer, in), nullptr);  // The peer closed: end of file.
    EXPECT_TRUE(feof(in));
    EXPECT_EQ(fclose(in), 0);
  });
  EXPECT_EQ(line, "hello 42\n");
}

TEST(PosixStreams, FdopenWithAModeTheDescriptorDoesNotAllowIsEinval) {
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    errno = 0;
    EXPECT_EQ(fdopen(fds[0], "w"), nullptr);  // The read end.
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(fdopen(fds[1], "r+"), nullptr);  // The write end.
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(fdopen(fds[0], "q"), nullptr);
    EXPECT_EQ(errno, EINVAL);
    FILE* cloexec = fdopen(fds[1], "we");
    ASSERT_NE(cloexec, nullptr);
    EXPECT_EQ(fcntl(fds[1], F_GETFD), FD_CLOEXEC);
    fclose(cloexec);
    close(fds[0]);
  });
}

TEST(PosixStreams, SeekingAStreamOverAPipeIsEspipe) {
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    FILE* in = fdopen(fds[0], "r");
    ASSERT_NE(in, nullptr);
    errno = 0;
    EXPECT_EQ(fseek(in, 0, SEEK_SET), -1);
    EXPECT_EQ(errno, ESPIPE);
    fclose(in);
    close(fds[1]);
  });
}

TEST(PosixStreams, DprintfWritesAllTheTextToTheSimulatedDescriptor) {
  std::string received;
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    const std::string long_word(3000, 'x');  // Longer than dprintf's first buffer.
    EXPECT_EQ(dprintf(fds[0], "%s %d", long_word.c_str(), 7), 3002);
    close(fds[0]);
    char buffer[4096];
    ssize_t n;
    while ((n = read(fds[1], buffer, sizeof buffer)) > 0) received.append(buffer, n);
    close(fds[1]);
  });
  EXPECT_EQ(received, std::string(3000, 'x') + " 7");
}

TEST(PosixStreams, DprintfToAClosedPeerFailsWithEpipe) {
  RunOnOneHost([&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    close(fds[1]);
    errno = 0;
    EXPECT_EQ(dprintf(fds[0], "lost"), -1);
    EXPECT_EQ(errno, EPIPE);
    close(fds[0]);
  });
}

#ifndef DSIM_TEST_WITH_DISK
TEST(PosixTempFiles, WithoutTheDiskMkstempMakesARealFileInTheRealRange) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string name = std::string(dir != nullptr ? dir : "/tmp") + "/realXXXXXX";
  int fd = -1;
  dsim::Simulation sim({.seed = 1});
  RunOnOneHost(
      [&] {
        fd = mkstemp(name.data());
        ASSERT_GE(fd, 0) << std::strerror(errno);
        EXPECT_EQ(write(fd, "x", 1), 1);  // Forwarded to the real file, and listed.
        close(fd);
      },
      &sim, /*only_simulated_calls=*/false);
  EXPECT_GE(fd, dsim::posix::RealDescriptorFloor());
  EXPECT_EQ(access(name.c_str(), F_OK), 0);  // Really there.
  unlink(name.c_str());
}
#endif  // !DSIM_TEST_WITH_DISK

#ifdef DSIM_TEST_WITH_DISK
// The name mkstemp picks in a task with seed `seed`.
std::string TempNameWithSeed(uint64_t seed) {
  dsim::Simulation sim({.seed = seed});
  std::string name = "/tmp/dataXXXXXX";
  RunOnOneHost(
      [&] {
        ASSERT_EQ(mkdir("/tmp", 0777), 0);
        const int fd = mkstemp(name.data());
        ASSERT_GE(fd, 0) << std::strerror(errno);
        EXPECT_LT(fd, dsim::posix::RealDescriptorFloor());  // A host number.
        struct stat info;
        ASSERT_EQ(stat(name.c_str(), &info), 0);  // On the host's disk.
        EXPECT_EQ(info.st_mode & 0777, 0600u);
        close(fd);
        char bad[] = "/tmp/noXs";
        errno = 0;
        EXPECT_EQ(mkstemp(bad), -1);
        EXPECT_EQ(errno, EINVAL);
      },
      &sim);
  return name;
}

TEST(PosixTempFilesOnDisk, MkstempNamesComeFromTheSeed) {
  const std::string first = TempNameWithSeed(1);
  EXPECT_NE(first, "/tmp/dataXXXXXX");
  EXPECT_EQ(TempNameWithSeed(1), first);
  EXPECT_NE(TempNameWithSeed(2), first);
}

TEST(PosixTempFilesOnDisk, TmpfileIsANamelessFileOnTheDisk) {
  std::string read_back;
  RunOnOneHost([&] {
    ASSERT_EQ(mkdir("/tmp", 0777), 0);
    FILE* scratch = tmpfile();
    ASSERT_NE(scratch, nullptr) << std::strerror(errno);
    fputs("scratch data", scratch);
    rewind(scratch);
    char buffer[32] = {};
    ASSERT_NE(fgets(buffer, sizeof buffer, scratch), nullptr);
    read_back = buffer;
    fclose(scratch);
    DIR* tmp = opendir("/tmp");
    ASSERT_NE(tmp, nullptr);
    int entries = 0;
    while (dirent* entry = readdir(tmp)) entries += entry->d_name[0] != '.';
    closedir(tmp);
    EXPECT_EQ(entries, 0);
  });
  EXPECT_EQ(read_back, "scratch data");
}

TEST(PosixStreamsOnDisk, FopenInATaskUsesTheHostsDisk) {
  dsim::Simulation sim({.seed = 1});
  std::string read_back;
  const dsim::HostId host = RunOnOneHost(
      [&] {
        FILE* out = fopen("/config.txt", "w");
        ASSERT_NE(out, nullptr) << std::strerror(errno);
        EXPECT_LT(fileno(out), dsim::posix::RealDescriptorFloor());  // A host number.
        fputs("port=7000\n", out);
        ASSERT_EQ(fclose(out), 0);
        const int fd = open("/config.txt", O_RDONLY);  // The same file through open().
        ASSERT_GE(fd, 0) << std::strerror(errno);
        char buffer[32] = {};
        const ssize_t n = read(fd, buffer, sizeof buffer);
        read_back.assign(buffer, n > 0 ? n : 0);
        close(fd);
      },
      &sim);
  EXPECT_EQ(read_back, "port=7000\n");
  EXPECT_EQ(sim.disk(host).CachedContent("/config.txt"), "port=7000\n");
}

TEST(PosixStreamsOnDisk, FopenModesFollowOpen) {
  RunOnOneHost([&] {
    errno = 0;
    EXPECT_EQ(fopen("/missing", "r"), nullptr);
    EXPECT_EQ(errno, ENOENT);
    FILE* created = fopen("/once", "wx");
    ASSERT_NE(created, nullptr);
    fclose(created);
    EXPECT_EQ(fopen("/once", "wx"), nullptr);  // 'x': O_EXCL.
    EXPECT_EQ(errno, EEXIST);
    FILE* append = fopen("/once", "a");
    fputs("a", append);
    fclose(append);
    append = fopen("/once", "a+");
    fputs("b", append);
    ASSERT_EQ(fseek(append, 0, SEEK_SET), 0);
    char buffer[8] = {};
    ASSERT_NE(fgets(buffer, sizeof buffer, append), nullptr);
    EXPECT_STREQ(buffer, "ab");
    EXPECT_EQ(ftell(append), 2);
    fclose(append);
  });
}

TEST(PosixStreamsOnDisk, StdFstreamsInATaskUseTheHostsDisk) {
  std::string first, second;
  RunOnOneHost([&] {
    {
      std::ofstream out("/log");
      ASSERT_TRUE(out.is_open());
      out << "one\ntwo\n";
    }
    std::ifstream in("/log");
    ASSERT_TRUE(in.is_open());
    std::getline(in, first);
    in.seekg(4);
    std::getline(in, second);
  });
  EXPECT_EQ(first, "one");
  EXPECT_EQ(second, "two");
}
#endif  // DSIM_TEST_WITH_DISK

}  // namespace
