// Storage benchmarks: the simulated disk against a real tmpfs file, side by side.
//
//   ./bazelw run -c opt //bench:storage_bench
//
// BM_SimDiskPwriteFdatasync and BM_TmpfsPwriteFdatasync do the same cycle, a 4 KiB
// pwrite at a rotating offset of a 1 MiB file then fdatasync: the first through
// dsim::Pwrite / dsim::Fdatasync on a simulated host's disk (each call a scheduling
// point; the data copied into the page cache, then into the durable image; without a
// trace listener, as //bench:sockets_bench; the Traced variant runs inside a Simulation,
// whose trace records and fingerprints every call), the second
// through the kernel on a file under /dev/shm (tmpfs). BM_CrashSweepAtomicReplace runs
// the atomic-replace crash scenario of //tests:disk_crash_test, one seed per iteration
// (a Simulation, a host, a crash and its resolution): items per second are crash seeds
// per second on one core.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "disk/disk.h"
#include "disk/disks.h"
#include "files/file.h"
#include "scheduler/scheduler.h"
#include "sim/network.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kFileBlocks = 256;  // 1 MiB.

void PwriteFdatasyncLoop(benchmark::State& state) {
  const int fd = dsim::Open("/data", O_CREAT | O_RDWR, 0644);
  std::string block(kBlock, 'x');
  size_t i = 0;
  for (auto _ : state) {
    const off_t offset = static_cast<off_t>((i++ % kFileBlocks) * kBlock);
    if (dsim::Pwrite(fd, block.data(), kBlock, offset) != static_cast<ssize_t>(kBlock) ||
        dsim::Fdatasync(fd) != 0) {
      state.SkipWithError("pwrite/fdatasync failed");
      break;
    }
  }
  dsim::Close(fd);
}

// The cycle on a host of a bare Scheduler + Network + Disks, as //bench:sockets_bench
// measures sockets: no trace listener.
void BM_SimDiskPwriteFdatasync(benchmark::State& state) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  Disks disks(&scheduler);
  NetworkHost& host = network.AddHost("db", {"10.0.0.1"});
  disks.BindGroup(host.group(), disks.AddDisk("db"));
  host.Spawn("writer", [&] { PwriteFdatasyncLoop(state); });
  scheduler.Run();
  state.SetBytesProcessed(state.iterations() * kBlock);
}
BENCHMARK(BM_SimDiskPwriteFdatasync);

// The same inside a Simulation, whose trace records (and fingerprints) every call.
void BM_SimDiskPwriteFdatasyncTraced(benchmark::State& state) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.AddHost({.name = "db", .start = [&] { PwriteFdatasyncLoop(state); },
               .start_daemon = false});
  sim.Run();
  state.SetBytesProcessed(state.iterations() * kBlock);
}
BENCHMARK(BM_SimDiskPwriteFdatasyncTraced);


void BM_TmpfsPwriteFdatasync(benchmark::State& state) {
  char path[] = "/dev/shm/dsim-storage-bench.XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    state.SkipWithError("cannot create a file under /dev/shm");
    return;
  }
  std::string block(kBlock, 'x');
  size_t i = 0;
  for (auto _ : state) {
    const off_t offset = static_cast<off_t>((i++ % kFileBlocks) * kBlock);
    if (::pwrite(fd, block.data(), kBlock, offset) != static_cast<ssize_t>(kBlock) ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("pwrite/fdatasync failed");
      break;
    }
  }
  ::close(fd);
  ::unlink(path);
  state.SetBytesProcessed(state.iterations() * kBlock);
}
BENCHMARK(BM_TmpfsPwriteFdatasync);

void WriteFile(const char* path, const std::string& content, bool fsync) {
  const int fd = dsim::Open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  dsim::Write(fd, content.data(), content.size());
  if (fsync) dsim::Fsync(fd);
  dsim::Close(fd);
}

void FsyncDir() {
  const int fd = dsim::Open("/", O_RDONLY | O_DIRECTORY);
  dsim::Fsync(fd);
  dsim::Close(fd);
}

// One seed of the atomic-replace crash scenario: setup, replace, crash at a seed-chosen
// point, check the durable state.
bool ReplaceSurvives(uint64_t seed) {
  Simulation sim(SimulationOptions{.seed = seed});
  bool setup_done = false, completed = false;
  Host& host = sim.AddHost({.name = "db", .start = [&] {
    WriteFile("/data", "old version", true);
    FsyncDir();
    setup_done = true;
    WriteFile("/data.tmp", "new version", true);
    dsim::Rename("/data.tmp", "/data");
    FsyncDir();
    completed = true;
    dsim::SleepFor(absl::Hours(1));
  }});
  sim.Spawn("chaos", [&] {
    while (!setup_done) dsim::Yield();
    const uint64_t points = sim.random().Below(16);
    for (uint64_t i = 0; i < points && !completed; ++i) dsim::Yield();
    sim.Crash(host.id());
  });
  sim.Run();
  const std::string data = sim.disk(host.id()).DurableContent("/data");
  return data == "new version" || (!completed && data == "old version");
}

void BM_CrashSweepAtomicReplace(benchmark::State& state) {
  uint64_t seed = 1;
  for (auto _ : state) {
    if (!ReplaceSurvives(seed++)) {
      state.SkipWithError("a crash seed lost data");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CrashSweepAtomicReplace);

}  // namespace
}  // namespace dsim
