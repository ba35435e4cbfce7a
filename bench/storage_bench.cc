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
//
// SQLite (Debian's libsqlite3, unmodified, through //posix:files): BM_SqliteInsertTxSimDisk
// and BM_SqliteInsertTxTmpfs commit one single-row INSERT transaction per iteration
// (journal_mode=TRUNCATE, synchronous=FULL: two fdatasyncs per commit) on the simulated
// disk and on /dev/shm; BM_SqliteCrashSweep runs one seed of //tests:sqlite_crash_test's
// scenario per iteration (WAL, FULL, 12 transactions, power loss, recovery, checks).
// Linking //posix:files interposes the libc file calls for the whole binary: calls
// outside tasks (the tmpfs variants) pay one branch each to reach the real libc.
#include <sqlite3.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "disk/disk.h"
#include "posix/internal/state.h"
#include "disk/disks.h"
#include "files/file.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kFileBlocks = 256;  // 1 MiB.

// The benchmark library reads its clocks inside the task that runs the loop, and
// //posix (linked for SQLite) would give it the virtual clock, which file calls do not
// advance. BenchmarkClocks makes the task's libc calls real for its lifetime;
// SimulatedLibc makes them simulated again inside it (for SQLite's file calls).
using BenchmarkClocks = posix::internal::InternalsScope;
class SimulatedLibc {
 public:
  SimulatedLibc() : saved_(posix::internal::in_internals) {
    posix::internal::in_internals = false;
  }
  ~SimulatedLibc() { posix::internal::in_internals = saved_; }

 private:
  bool saved_;
};

void PwriteFdatasyncLoop(benchmark::State& state) {
  BenchmarkClocks clocks;  // dsim:: calls are native: they do not go through libc.
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

// ---- SQLite ------------------------------------------------------------------------------

void SqliteExec(sqlite3* db, const char* sql, benchmark::State& state) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    state.SkipWithError(error != nullptr ? error : "sqlite error");
    sqlite3_free(error);
  }
}

void SqliteInsertLoop(const char* path, benchmark::State& state) {
  sqlite3* db = nullptr;
  sqlite3_open(path, &db);
  SqliteExec(db, "PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=FULL;"
                 "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);", state);
  {
    BenchmarkClocks clocks;
    for (auto _ : state) {
      SimulatedLibc simulated;
      SqliteExec(db, "BEGIN; INSERT INTO t(v) VALUES('0123456789abcdef0123456789abcdef'); COMMIT;",
                 state);
    }
  }
  sqlite3_close(db);
  state.SetItemsProcessed(state.iterations());
}

void BM_SqliteInsertTxSimDisk(benchmark::State& state) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.AddHost({.name = "db", .start = [&] {
                 dsim::Spawn("sqlite", [&] { SqliteInsertLoop("/bench.db", state); },
                             {.stack_size = 1 << 20})
                     .Join();
               },
               .start_daemon = false});
  sim.Run();
}
BENCHMARK(BM_SqliteInsertTxSimDisk);

void BM_SqliteInsertTxTmpfs(benchmark::State& state) {
  char dir[] = "/dev/shm/dsim-sqlite-bench.XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    state.SkipWithError("cannot create a directory under /dev/shm");
    return;
  }
  const std::string path = std::string(dir) + "/bench.db";
  SqliteInsertLoop(path.c_str(), state);
  ::unlink(path.c_str());
  ::unlink((path + "-journal").c_str());
  ::rmdir(dir);
}
BENCHMARK(BM_SqliteInsertTxTmpfs);

// One seed of the SQLite crash scenario (WAL, synchronous=FULL).
bool SqliteSeedSurvives(uint64_t seed) {
  Simulation sim(SimulationOptions{.seed = seed});
  bool setup_done = false, done = false;
  int committed = 0, committed_at_crash = 0, survived = -1;
  bool crashed = false;
  Host& db = sim.AddHost({.name = "db", .start = [&] {
    dsim::Spawn("workload", [&] {
      sqlite3* handle = nullptr;
      sqlite3_open("/test.db", &handle);
      sqlite3_exec(handle, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
                           "PRAGMA synchronous=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, v);",
                   nullptr, nullptr, nullptr);
      dsim::Sync();
      setup_done = true;
      for (int i = 1; i <= 12; ++i) {
        if (sqlite3_exec(handle, "BEGIN; INSERT INTO t(v) VALUES(randomblob(300)); COMMIT;",
                         nullptr, nullptr, nullptr) == SQLITE_OK) {
          committed = i;
        }
      }
      sqlite3_close(handle);
      done = true;
    }, {.stack_size = 1 << 20}).Join();
  }, .start_daemon = false});
  Host& recovery = sim.AddHost({.name = "recovery", .start = [&] {
    while (!crashed) dsim::SleepFor(absl::Milliseconds(1));
    dsim::Spawn("recover", [&] {
      sqlite3* handle = nullptr;
      sqlite3_open("/test.db", &handle);
      sqlite3_exec(handle, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;", nullptr,
                   nullptr, nullptr);
      sqlite3_stmt* statement = nullptr;
      sqlite3_prepare_v2(handle, "SELECT count(*) FROM t", -1, &statement, nullptr);
      if (sqlite3_step(statement) == SQLITE_ROW) survived = sqlite3_column_int(statement, 0);
      sqlite3_finalize(statement);
      sqlite3_close(handle);
    }, {.stack_size = 1 << 20}).Join();
  }, .start_daemon = false});
  sim.Spawn("power", [&] {
    while (!setup_done) dsim::Yield();
    const uint64_t points = sim.random().Below(144);
    for (uint64_t i = 0; i < points && !done; ++i) dsim::Yield();
    committed_at_crash = committed;
    sim.disk(recovery.id()).CopyContentsFrom(sim.disk(db.id()));
    sim.disk(recovery.id()).Crash();
    crashed = true;
  });
  sim.Run();
  return survived >= committed_at_crash;
}

void BM_SqliteCrashSweep(benchmark::State& state) {
  uint64_t seed = 1;
  for (auto _ : state) {
    if (!SqliteSeedSurvives(seed++)) {
      state.SkipWithError("a crash seed lost commits");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SqliteCrashSweep);

}  // namespace
}  // namespace dsim
