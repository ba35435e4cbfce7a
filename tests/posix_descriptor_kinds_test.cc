// stat, seek and sync calls on simulated descriptors that are not disk files answer as
// Linux does for sockets, pipes, anonymous inodes and the random devices, instead of
// reaching the process's real descriptor of the same number. Built twice: with //posix
// alone, and with //posix:files (DSIM_TEST_WITH_DISK).
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/simulation.h"

namespace {

void RunOnOneHost(std::function<void()> body) {
  dsim::Simulation sim({.seed = 1});
  sim.AddHost({.name = "host", .start = std::move(body), .addresses = {"10.0.0.1"}});
  const dsim::RunResult result = sim.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_TRUE(dsim::posix::EscapedCalls(sim.scheduler()).empty());
}

mode_t ModeOf(int fd) {
  struct stat info;
  return fstat(fd, &info) == 0 ? info.st_mode : static_cast<mode_t>(-errno);
}

TEST(PosixDescriptorKinds, FstatGivesEachKindItsLinuxType) {
  RunOnOneHost([] {
    const int tcp = socket(AF_INET, SOCK_STREAM, 0);
    int pair[2], pipe_fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ASSERT_EQ(pipe(pipe_fds), 0);
    const int event = eventfd(0, 0);
    const int urandom = open("/dev/urandom", O_RDONLY);
    EXPECT_EQ(ModeOf(tcp), S_IFSOCK | 0777);
    EXPECT_EQ(ModeOf(pair[0]), S_IFSOCK | 0777);
    EXPECT_EQ(ModeOf(pipe_fds[0]), S_IFIFO | 0600);
    EXPECT_EQ(ModeOf(event), 0600u);  // An anonymous inode: no file type.
    EXPECT_EQ(ModeOf(urandom), S_IFCHR | 0666);
    struct stat info;
    ASSERT_EQ(fstat(urandom, &info), 0);
    EXPECT_EQ(info.st_rdev, makedev(1, 9));
    struct statfs fs;
    ASSERT_EQ(fstatfs(tcp, &fs), 0);
    EXPECT_EQ(fs.f_type, SOCKFS_MAGIC);
    ASSERT_EQ(fstatfs(pipe_fds[1], &fs), 0);
    EXPECT_EQ(fs.f_type, PIPEFS_MAGIC);
  });
}

TEST(PosixDescriptorKinds, SeeksOnStreamsAreEspipeAndTheDevicesStayAtZero) {
  RunOnOneHost([] {
    const int tcp = socket(AF_INET, SOCK_STREAM, 0);
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    errno = 0;
    EXPECT_EQ(lseek(tcp, 0, SEEK_CUR), -1);
    EXPECT_EQ(errno, ESPIPE);
    errno = 0;
    EXPECT_EQ(lseek64(pipe_fds[0], 10, SEEK_SET), -1);
    EXPECT_EQ(errno, ESPIPE);
    const int urandom = open("/dev/urandom", O_RDONLY);
    EXPECT_EQ(lseek(urandom, 100, SEEK_SET), 0);
    char byte;
    errno = 0;
    EXPECT_EQ(pread(pipe_fds[0], &byte, 1, 0), -1);
    EXPECT_EQ(errno, ESPIPE);
  });
}

TEST(PosixDescriptorKinds, FsyncAndFtruncateOfASocketAreEinval) {
  RunOnOneHost([] {
    const int tcp = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    EXPECT_EQ(fsync(tcp), -1);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(ftruncate(tcp, 0), -1);
    EXPECT_EQ(errno, EINVAL);
  });
}

TEST(PosixDescriptorKinds, AdviceOnPipesAndSocketsGivesLinuxsErrors) {
  RunOnOneHost([] {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    EXPECT_EQ(posix_fadvise(pipe_fds[0], 0, 0, POSIX_FADV_SEQUENTIAL), ESPIPE);
    const int tcp = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    EXPECT_EQ(readahead(tcp, 0, 4096), -1);
    EXPECT_EQ(errno, EINVAL);
  });
}

#ifdef DSIM_TEST_WITH_DISK
TEST(PosixDescriptorKinds, LockfAndAdviceOnADiskFile) {
  RunOnOneHost([] {
    const int fd = open("/pidfile", O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(lockf(fd, F_TLOCK, 0), 0) << std::strerror(errno);
    EXPECT_EQ(lockf(fd, F_TEST, 0), 0);  // Held by this process: not a conflict.
    EXPECT_EQ(lockf(fd, F_ULOCK, 0), 0);
    errno = 0;
    EXPECT_EQ(lockf(fd, 42, 0), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED), 0);
    EXPECT_EQ(posix_fadvise(fd, 0, 0, 99), EINVAL);
    EXPECT_EQ(readahead(fd, 0, 4096), 0);
    close(fd);
  });
}
#endif  // DSIM_TEST_WITH_DISK

}  // namespace
