// The file calls over a simulated disk: durability rules (what fsync, fdatasync, O_SYNC
// and directory fsync make durable), storage faults, descriptor numbers shared with
// sockets, locks, directory streams, mappings, and the fault trace.
#include "files/file.h"

#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "disk/disk.h"
#include "sim/simulation.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

// Runs `body` as the start task of host "h" (with an address, so sockets work too).
// Returns the simulation for inspection.
std::unique_ptr<Simulation> RunOnHost(std::function<void()> body, SimulationOptions options = {}) {
  auto sim = std::make_unique<Simulation>(std::move(options));
  sim->AddHost({.name = "h", .start = std::move(body), .start_daemon = false,
                .addresses = {"10.0.0.1"}});
  const RunResult result = sim->Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  return sim;
}

void WriteFile(const char* path, absl::string_view content, bool fsync) {
  const int fd = dsim::Open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(dsim::Write(fd, content.data(), content.size()),
            static_cast<ssize_t>(content.size()));
  if (fsync) {
    ASSERT_EQ(dsim::Fsync(fd), 0) << dsim::LastFileErrorMessage();
  }
  dsim::Close(fd);  // May fail with EPERM in a host that just crashed.
}

void FsyncDir(const char* path) {
  const int fd = dsim::Open(path, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(dsim::Fsync(fd), 0) << dsim::LastFileErrorMessage();
  dsim::Close(fd);  // May fail with EPERM in a host that just crashed.
}

TEST(Files, WritesAreCachedUntilFsyncAndTheNameUntilTheDirectoryIsFsynced) {
  auto sim = RunOnHost([] {
    WriteFile("/a", "hello", /*fsync=*/false);
    char buffer[8] = {};
    const int fd = dsim::Open("/a", O_RDONLY);
    EXPECT_EQ(dsim::Read(fd, buffer, sizeof(buffer)), 5);
    EXPECT_EQ(std::string(buffer, 5), "hello");
    dsim::Close(fd);
  });
  Disk& disk = sim->disk(1);
  bool exists = true;
  EXPECT_EQ(disk.CachedContent("/a"), "hello");
  disk.DurableContent("/a", &exists);
  EXPECT_FALSE(exists) << "nothing was fsynced";

  auto synced = RunOnHost([] {
    WriteFile("/a", "hello", /*fsync=*/true);
  });
  synced->disk(1).DurableContent("/a", &exists);
  EXPECT_FALSE(exists) << "the file's data is durable but its name is not";

  auto full = RunOnHost([] {
    WriteFile("/a", "hello", /*fsync=*/true);
    FsyncDir("/");
  });
  EXPECT_EQ(full->disk(1).DurableContent("/a", &exists), "hello");
  EXPECT_TRUE(exists);
}

TEST(Files, WithExt4JournalSemanticsAFileFsyncMakesItsNewNameDurable) {
  SimulationOptions options;
  options.faults.storage.fsync_commits_directory_operations = true;
  auto sim = RunOnHost([] { WriteFile("/a", "hello", /*fsync=*/true); }, options);
  bool exists = false;
  EXPECT_EQ(sim->disk(1).DurableContent("/a", &exists), "hello");
  EXPECT_TRUE(exists);
}

TEST(Files, FdatasyncPersistsDataButNotTheModificationTime) {
  absl::Time synced_mtime, later_mtime;
  auto sim = RunOnHost([&] {
    WriteFile("/f", "one", true);
    FsyncDir("/");
    struct stat st;
    dsim::Stat("/f", &st);
    synced_mtime = absl::TimeFromTimespec(st.st_mtim);
    dsim::SleepFor(absl::Seconds(5));
    const int fd = dsim::Open("/f", O_WRONLY);
    dsim::Pwrite(fd, "two", 3, 0);
    EXPECT_EQ(dsim::Fdatasync(fd), 0);
    dsim::Fstat(fd, &st);
    later_mtime = absl::TimeFromTimespec(st.st_mtim);
    dsim::Close(fd);
  });
  EXPECT_GT(later_mtime, synced_mtime);
  Disk& disk = sim->disk(1);
  EXPECT_EQ(disk.DurableContent("/f"), "two");
  disk.Crash();  // Nothing is pending: the crash changes nothing but the cache.
  sim->Spawn("check", [] {});
  // After the crash the cache is the durable image: mtime is the fsynced one.
  Inode* inode = disk.Find(disk.Lookup(kRootIno, "f"));
  ASSERT_NE(inode, nullptr);
  EXPECT_EQ(inode->mtime, synced_mtime);
  EXPECT_EQ(inode->data, "two");
}

TEST(Files, PendingQueueStaysProportionalToLiveOperationsBehindAnUnsyncedCreate) {
  size_t longest = 0;
  auto sim = RunOnHost([&] {
    const int fd = dsim::Open("/data", O_CREAT | O_RDWR, 0644);  // Create stays pending.
    for (int i = 0; i < 5000; ++i) {
      dsim::Pwrite(fd, "x", 1, i);
      dsim::Fdatasync(fd);
      longest = std::max(longest, Simulation::Current()->disk(1).pending_queue_length());
    }
    dsim::Close(fd);
  });
  EXPECT_EQ(sim->disk(1).pending_operations(), 1u);
  EXPECT_LT(longest, 100u);
}

TEST(Files, OSyncAndODirectWritesAreDurableOnReturn) {
  auto sim = RunOnHost([] {
    WriteFile("/s", "", true);
    WriteFile("/d", "", true);
    FsyncDir("/");
    int fd = dsim::Open("/s", O_WRONLY | O_SYNC);
    EXPECT_EQ(dsim::Write(fd, "sync", 4), 4);
    dsim::Close(fd);
    fd = dsim::Open("/d", O_WRONLY | O_DIRECT);
    alignas(512) static char block[512];
    std::memset(block, 'x', sizeof(block));
    EXPECT_EQ(dsim::Write(fd, block, 100), -1) << "O_DIRECT needs aligned lengths";
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(dsim::Write(fd, block, 512), 512);
    dsim::Close(fd);
  });
  EXPECT_EQ(sim->disk(1).DurableContent("/s"), "sync");
  EXPECT_EQ(sim->disk(1).DurableContent("/d"), std::string(512, 'x'));
}

TEST(Files, FailedFsyncDropsTheDirtyPagesAndTheNextFsyncSucceeds) {
  SimulationOptions options;
  auto sim = RunOnHost([] {
    WriteFile("/wal", "durable", true);
    FsyncDir("/");
    const int fd = dsim::Open("/wal", O_WRONLY);
    const int other = dsim::Open("/wal", O_RDONLY);
    dsim::Pwrite(fd, "LOST!!!", 7, 0);
    StorageFaults faults;
    faults.fsync_error_probability = 1;
    Simulation::Current()->SetStorageFaults(1, faults);
    EXPECT_EQ(dsim::Fsync(fd), -1);
    EXPECT_EQ(errno, EIO);
    Simulation::Current()->SetStorageFaults(1, StorageFaults{});
    EXPECT_EQ(dsim::Fsync(fd), 0) << "fsyncgate: the error is reported once";
    EXPECT_EQ(dsim::Fsync(other), -1) << "every descriptor open at the error sees it once";
    EXPECT_EQ(errno, EIO);
    EXPECT_EQ(dsim::Fsync(other), 0);
    char buffer[8] = {};
    EXPECT_EQ(dsim::Pread(other, buffer, 7, 0), 7);
    EXPECT_EQ(std::string(buffer, 7), "LOST!!!") << "the cache still shows the lost data";
    dsim::Close(fd);
    dsim::Close(other);
  });
  EXPECT_EQ(sim->disk(1).DurableContent("/wal"), "durable");
}

TEST(Files, CapacityGivesAPartialWriteThenEnospc) {
  SimulationOptions options;
  options.faults.storage.capacity_bytes = 4 * kDiskBlockBytes;  // Root dir takes one.
  RunOnHost([] {
    const int fd = dsim::Open("/big", O_CREAT | O_WRONLY, 0644);
    std::string chunk(5 * kDiskBlockBytes, 'z');
    EXPECT_EQ(dsim::Write(fd, chunk.data(), chunk.size()), 3 * kDiskBlockBytes);
    EXPECT_EQ(dsim::Write(fd, "x", 1), -1);
    EXPECT_EQ(errno, ENOSPC);
    struct statfs fs;
    EXPECT_EQ(dsim::Fstatfs(fd, &fs), 0);
    EXPECT_EQ(fs.f_bfree, 0u);
    EXPECT_EQ(dsim::Ftruncate(fd, 0), 0);
    EXPECT_EQ(dsim::Pwrite(fd, "x", 1, 0), 1) << "space comes back after a truncate";
    dsim::Close(fd);
  }, options);
}

TEST(Files, ReadErrorsBitFlipsAndLatencyAreInjectedAndTraced) {
  SimulationOptions options;
  options.faults.storage.read_bit_flip_probability = 1;
  options.faults.storage.read_latency = {absl::Milliseconds(2), absl::Milliseconds(2)};
  absl::Duration took;
  auto sim = RunOnHost([&] {
    WriteFile("/x", std::string(64, '\0'), false);
    const int fd = dsim::Open("/x", O_RDONLY);
    char buffer[64];
    const absl::Time start = dsim::Now();
    ASSERT_EQ(dsim::Read(fd, buffer, 64), 64);
    took = dsim::Now() - start;
    int ones = 0;
    for (char c : buffer) ones += __builtin_popcount(static_cast<unsigned char>(c));
    EXPECT_EQ(ones, 1) << "exactly one bit flipped";
    dsim::Close(fd);
  }, options);
  EXPECT_EQ(took, absl::Milliseconds(2));
  EXPECT_EQ(sim->disk(1).CachedContent("/x"), std::string(64, '\0')) << "the disk is intact";
  bool traced = false;
  for (const TraceEvent& event : sim->trace().events()) {
    traced |= event.category == "fault.disk.bit_flip";
  }
  EXPECT_TRUE(traced);
}

TEST(Files, LostAndMisdirectedWritesShowOnlyInTheDurableImage) {
  SimulationOptions options;
  options.faults.storage.lost_write_probability = 1;
  auto lost = RunOnHost([] {
    WriteFile("/l", "data", true);
    FsyncDir("/");
  }, options);
  EXPECT_EQ(lost->disk(1).CachedContent("/l"), "data");
  EXPECT_EQ(lost->disk(1).DurableContent("/l"), "") << "fsync said yes, the data never came";

  SimulationOptions misdirect;
  misdirect.faults.storage.misdirected_write_probability = 1;
  auto moved = RunOnHost([] {
    WriteFile("/m", "data", true);
    FsyncDir("/");
  }, misdirect);
  const std::string durable = moved->disk(1).DurableContent("/m");
  EXPECT_GE(durable.size(), 512u + 4);
  EXPECT_EQ(durable.substr(0, 4), std::string(4, '\0'));
}

TEST(Files, FileAndSocketDescriptorsShareOneNumberSpace) {
  RunOnHost([] {
    const int socket = dsim::Socket(AF_INET, SOCK_STREAM, 0);
    const int file = dsim::Open("/f", O_CREAT | O_RDWR, 0644);
    EXPECT_EQ(socket, 3);
    EXPECT_EQ(file, 4);
    EXPECT_EQ(dsim::Close(socket), 0);
    const int second = dsim::Open("/g", O_CREAT | O_RDWR, 0644);
    EXPECT_EQ(second, 3) << "the lowest free number, whichever kind freed it";
    const int another_socket = dsim::Socket(AF_INET, SOCK_DGRAM, 0);
    EXPECT_EQ(another_socket, 5) << "sockets skip numbers files hold";
    EXPECT_EQ(dsim::Write(file, "abc", 3), 3);
    EXPECT_EQ(dsim::Lseek(file, 0, SEEK_SET), 0);
    char buffer[3];
    EXPECT_EQ(dsim::Read(file, buffer, 3), 3);
    EXPECT_EQ(dsim::GetFlags(file) & O_ACCMODE, O_RDWR);
    EXPECT_EQ(dsim::Close(file), 0);
    EXPECT_EQ(dsim::Close(file), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_EQ(dsim::Fsync(another_socket), -1) << "Linux: fsync of a socket";
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(dsim::Pread(another_socket, buffer, 1, 0), -1);
    EXPECT_EQ(errno, ESPIPE);
    dsim::Close(second);
    dsim::Close(another_socket);
  });
}

TEST(Files, OfdLocksConflictBetweenDescriptionsPosixLocksDoNotWithinAProcess) {
  RunOnHost([] {
    const int a = dsim::Open("/lock", O_CREAT | O_RDWR, 0644);
    const int b = dsim::Open("/lock", O_RDWR);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    EXPECT_EQ(dsim::Fcntl(a, F_SETLK, &lock), 0);
    EXPECT_EQ(dsim::Fcntl(b, F_SETLK, &lock), 0) << "one process: POSIX locks never conflict";
    lock.l_type = F_WRLCK;
    EXPECT_EQ(dsim::Fcntl(a, F_OFD_SETLK, &lock), -1) << "the process's lock conflicts";
    EXPECT_EQ(errno, EAGAIN);
    lock.l_type = F_UNLCK;
    EXPECT_EQ(dsim::Fcntl(a, F_SETLK, &lock), 0);
    lock.l_type = F_WRLCK;
    EXPECT_EQ(dsim::Fcntl(a, F_OFD_SETLK, &lock), 0);
    EXPECT_EQ(dsim::Fcntl(b, F_OFD_SETLK, &lock), -1);
    EXPECT_EQ(errno, EAGAIN);
    struct flock probe = {};
    probe.l_type = F_WRLCK;
    EXPECT_EQ(dsim::Fcntl(b, F_OFD_GETLK, &probe), 0);
    EXPECT_EQ(probe.l_type, F_WRLCK);
    EXPECT_EQ(probe.l_pid, -1);
    EXPECT_EQ(dsim::Flock(a, LOCK_EX | LOCK_NB), 0);
    EXPECT_EQ(dsim::Flock(b, LOCK_SH | LOCK_NB), -1);
    EXPECT_EQ(errno, EWOULDBLOCK);
    dsim::Close(a);
    EXPECT_EQ(dsim::Fcntl(b, F_OFD_SETLK, &lock), 0) << "close released a's OFD lock";
    EXPECT_EQ(dsim::Flock(b, LOCK_EX | LOCK_NB), 0);
    dsim::Close(b);
  });
}

TEST(Files, BlockingFlockWaitsForTheHolderInVirtualTime) {
  absl::Duration waited;
  RunOnHost([&] {
    const int a = dsim::Open("/lock", O_CREAT | O_RDWR, 0644);
    ASSERT_EQ(dsim::Flock(a, LOCK_EX), 0);
    TaskHandle other = dsim::Spawn("other", [&] {
      const int b = dsim::Open("/lock", O_RDWR);
      const absl::Time start = dsim::Now();
      EXPECT_EQ(dsim::Flock(b, LOCK_EX), 0);
      waited = dsim::Now() - start;
      dsim::Close(b);
    });
    dsim::SleepFor(absl::Seconds(3));
    dsim::Flock(a, LOCK_UN);
    other.Join();
    dsim::Close(a);
  });
  EXPECT_EQ(waited, absl::Seconds(3));
}

TEST(Files, DirectoryStreamsListDotEntriesThenNamesInOrder) {
  RunOnHost([] {
    ASSERT_EQ(dsim::Mkdir("/d", 0755), 0);
    WriteFile("/d/b", "", false);
    WriteFile("/d/a", "", false);
    ASSERT_EQ(dsim::Mkdir("/d/c", 0755), 0);
    DIR* dir = dsim::Opendir("/d");
    ASSERT_NE(dir, nullptr);
    std::vector<std::string> names;
    while (dirent* entry = dsim::Readdir(dir)) {
      names.push_back(absl::StrCat(entry->d_name, entry->d_type == DT_DIR ? "/" : ""));
    }
    EXPECT_EQ(names, (std::vector<std::string>{"./", "../", "a", "b", "c/"}));
    EXPECT_EQ(dsim::Closedir(dir), 0);
    EXPECT_EQ(dsim::Opendir("/d/a"), nullptr);
    EXPECT_EQ(errno, ENOTDIR);
  });
}

TEST(Files, ReadOnlyMappingIsASnapshotOfTheFile) {
  RunOnHost([] {
    WriteFile("/table", "sstable-bytes", false);
    const int fd = dsim::Open("/table", O_RDONLY);
    void* map = dsim::Mmap(nullptr, 13, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED);
    EXPECT_EQ(std::string(static_cast<const char*>(map), 13), "sstable-bytes");
    EXPECT_EQ(dsim::Mmap(nullptr, 13, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    EXPECT_EQ(errno, EACCES);
    EXPECT_EQ(dsim::Munmap(map, 13), 0);
    dsim::Close(fd);
  });
}

TEST(Files, CallsOutsideATaskOrHostFailWithEperm) {
  EXPECT_EQ(dsim::Open("/x", O_RDONLY), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_TRUE(absl::StrContains(dsim::LastFileErrorMessage(), "outside a simulated task"));
}

TEST(Files, CrashClosesDescriptorsAndTheRestartedHostSeesTheDurableDisk) {
  Simulation sim(SimulationOptions{.seed = 5});
  std::vector<std::string> seen;
  Host& host = sim.AddHost({.name = "h", .start = [&] {
    bool exists = false;
    struct stat st;
    exists = dsim::Stat("/kept", &st) == 0;
    seen.push_back(exists ? "kept" : "none");
    if (Simulation::Current()->host(1).incarnation() == 1) {
      WriteFile("/kept", "k", true);
      FsyncDir("/");
      const int fd = dsim::Open("/kept", O_RDONLY);
      EXPECT_EQ(fd, 3);
      dsim::SleepFor(absl::Seconds(10));  // Crashed while holding fd 3.
    } else {
      EXPECT_EQ(dsim::Open("/kept", O_RDONLY), 3) << "the new process starts with no files";
    }
  }, .start_daemon = false});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Seconds(1));
    sim.Restart(host.id());
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"none", "kept"}));
}

TEST(Files, WipeAndSwapMoveWholeDisks) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.AddHost({.name = "a", .start = [] { WriteFile("/who", "a", true); FsyncDir("/"); },
               .start_daemon = false});
  sim.AddHost({.name = "b", .start = [] { WriteFile("/who", "b", true); FsyncDir("/"); },
               .start_daemon = false});
  ASSERT_TRUE(sim.Run().ok());
  sim.Crash(1);
  sim.Crash(2);
  sim.SwapDisks(1, 2);
  EXPECT_EQ(sim.disk(1).DurableContent("/who"), "b");
  EXPECT_EQ(sim.disk(2).DurableContent("/who"), "a");
  sim.WipeDisk(1);
  bool exists = true;
  sim.disk(1).DurableContent("/who", &exists);
  EXPECT_FALSE(exists);
}

}  // namespace
}  // namespace dsim
