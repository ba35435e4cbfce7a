// Unmodified LevelDB (Debian's libleveldb) on a simulated disk, through the interposed
// libc file calls (//posix:files) and threads (//posix: its background compaction
// thread is a dsim task), under power loss at a seed-chosen moment.
//
// Scenario (one seed). Host "db" opens /ldb (64 KiB write buffer, so the workload
// flushes memtables and compacts in the background), then puts keys k1..kN one by one,
// counting the puts that returned. A power task lets the workload run for a seed-chosen
// number of scheduling points, then copies the db host's disk, pending writes and all,
// onto host "recovery"'s disk and resolves the copy as a crash (see sqlite_crash_test
// for why the crash is taken on a copy). Host "recovery" opens the database and reads
// every key: with WriteOptions::sync = true every put that returned must be there with
// its value; with sync = false the sweep must find lost puts.
//
// The Env. LevelDB's Env::Default() starts its one background thread once per process
// and keeps it forever, which no simulation outlives. The test passes an EnvWrapper
// around Env::Default() whose Schedule() starts a std::thread per background job (a
// dsim task, through //posix); every file call is the unmodified PosixEnv's.
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/options.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "files/file.h"
#include "scheduler/notification.h"
#include "sim/harness.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

constexpr int kPuts = 48;
constexpr size_t kValueBytes = 2048;
constexpr size_t kStack = 1 << 20;

class QuietLogger final : public leveldb::Logger {
 public:
  void Logv(const char*, va_list) override {}
};

class PerJobThreadEnv final : public leveldb::EnvWrapper {
 public:
  PerJobThreadEnv() : EnvWrapper(leveldb::Env::Default()) {}
  void Schedule(void (*function)(void*), void* argument) override {
    std::thread(function, argument).detach();
  }
  void StartThread(void (*function)(void*), void* argument) override {
    std::thread(function, argument).detach();
  }
};

std::string Value(int i) { return std::string(kValueBytes, static_cast<char>('a' + i % 26)); }

struct RunState {
  bool setup_done = false;
  bool workload_done = false;
  int acked = 0;
  int acked_at_crash = -1;
  std::string error;
  std::string verdict;
};

leveldb::Options DbOptions(leveldb::Env* env, leveldb::Logger* logger) {
  leveldb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = 64 << 10;
  options.env = env;
  options.info_log = logger;
  return options;
}

void Workload(bool sync, RunState& state) {
  PerJobThreadEnv env;
  QuietLogger logger;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(DbOptions(&env, &logger), "/ldb", &raw);
  if (!s.ok()) {
    state.error = s.ToString();
    return;
  }
  std::unique_ptr<leveldb::DB> db(raw);
  dsim::Sync();  // The database existed before the run.
  state.setup_done = true;
  leveldb::WriteOptions write;
  write.sync = sync;
  for (int i = 1; i <= kPuts; ++i) {
    s = db->Put(write, absl::StrCat("k", i), Value(i));
    if (!s.ok()) {
      state.error = absl::StrCat("put ", i, ": ", s.ToString());
      break;
    }
    state.acked = i;
  }
  db.reset();
  state.workload_done = true;
}

void Recover(RunState& state) {
  PerJobThreadEnv env;
  QuietLogger logger;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(DbOptions(&env, &logger), "/ldb", &raw);
  if (!s.ok()) {
    state.verdict = absl::StrCat("reopen failed: ", s.ToString());
    return;
  }
  std::unique_ptr<leveldb::DB> db(raw);
  for (int i = 1; i <= state.acked_at_crash; ++i) {
    std::string value;
    s = db->Get(leveldb::ReadOptions(), absl::StrCat("k", i), &value);
    if (!s.ok() || value != Value(i)) {
      state.verdict = absl::StrCat("lost puts: ", state.acked_at_crash,
                                   " puts had returned before the power loss; k", i, " is ",
                                   s.ok() ? "wrong" : s.ToString());
      return;
    }
  }
}

absl::Status RunSeed(Simulation& sim, bool sync) {
  RunState state;
  Notification crashed;
  Host& db = sim.AddHost({.name = "db", .start = [&] {
    dsim::Spawn("workload", [&] { Workload(sync, state); }, {.stack_size = kStack}).Join();
  }, .start_daemon = false});
  Host& recovery = sim.AddHost({.name = "recovery", .start = [&] {
    crashed.WaitForNotification();
    // PosixEnv locks /ldb/LOCK by name in a process-wide table: recover once the
    // workload (still running on its own disk after the power loss) has closed its DB.
    while (!state.workload_done && state.error.empty()) dsim::SleepFor(absl::Milliseconds(1));
    dsim::Spawn("recover", [&] { Recover(state); }, {.stack_size = kStack}).Join();
  }, .start_daemon = false});
  sim.Spawn("power", [&] {
    while (!state.setup_done && state.error.empty()) dsim::Yield();
    const uint64_t points = sim.random().Below(kPuts * 10);
    for (uint64_t i = 0; i < points && !state.workload_done; ++i) dsim::Yield();
    state.acked_at_crash = state.acked;
    Disk& copy = sim.disk(recovery.id());
    copy.CopyContentsFrom(sim.disk(db.id()));
    sim.Annotate("fault.power_loss", absl::StrCat("power loss after ", state.acked, " puts"));
    copy.Crash();
    crashed.Notify();
  });
  const RunResult result = sim.RunFor(absl::Hours(1));
  if (!result.ok()) return result.status();
  if (!state.error.empty()) return absl::InternalError(absl::StrCat("workload: ", state.error));
  if (!state.verdict.empty()) return absl::DataLossError(state.verdict);
  return absl::OkStatus();
}

uint64_t Seeds(uint64_t default_seeds) {
  const char* all = std::getenv("DSIM_LEVELDB_SEEDS");
  return all != nullptr ? std::strtoull(all, nullptr, 10) : default_seeds;
}

// On ext4 (an fsync commits the journal, so a new file's name is durable with its
// data) every put that returned with sync = true survives.
TEST(LeveldbCrash, SyncWritesSurviveEveryCrashSeed) {
  SweepOptions options{.seeds = Seeds(1000)};
  options.simulation.faults.storage.fsync_commits_directory_operations = true;
  SeedSweep sweep(options);
  sweep.Run([](Simulation& sim) { return RunSeed(sim, true); });
}

// Under POSIX's rule (a new name is durable only once its directory is fsynced: XFS,
// btrfs, ALICE's model), LevelDB 1.23 loses synced puts: when it switches to a new log
// file it fsyncs the file but never its directory, so a power loss before the next
// MANIFEST write (which does sync the directory) loses the new log, name and all. The
// vulnerability ALICE (OSDI'14) reported for LevelDB's log files; dsim finds it.
TEST(LeveldbCrash, SyncWritesUnderStrictPosixLoseANewLogFileInSomeSeeds) {
  std::ostringstream log;
  SweepOptions options{.seeds = Seeds(1000)};
  options.report_to_gtest = false;
  options.log = &log;
  options.record_schedules = false;
  options.detailed_failures = 1;
  options.test_name = "LeveldbCrash.SyncWritesUnderStrictPosixLoseANewLogFileInSomeSeeds";
  SeedSweep sweep(options);
  const SweepResult result = sweep.Run([](Simulation& sim) { return RunSeed(sim, true); });
  ASSERT_FALSE(result.failed_seeds.empty());
  EXPECT_TRUE(absl::StrContains(log.str(), "lost puts")) << log.str();
  std::cout << result.failed_seeds.size() << " of " << result.outcomes.size()
            << " seeds lost synced puts under POSIX's directory rule\n";
}

TEST(LeveldbCrash, UnsyncedWritesAreLostInSomeSeeds) {
  std::ostringstream log;
  SweepOptions options{.seeds = Seeds(200)};
  options.report_to_gtest = false;
  options.log = &log;
  options.record_schedules = false;
  options.detailed_failures = 1;
  options.test_name = "LeveldbCrash.UnsyncedWritesAreLostInSomeSeeds";
  SeedSweep sweep(options);
  const SweepResult result = sweep.Run([](Simulation& sim) { return RunSeed(sim, false); });
  ASSERT_FALSE(result.failed_seeds.empty()) << "sync=false must lose puts in some seed";
  const std::string report = log.str();
  EXPECT_TRUE(absl::StrContains(report, "lost puts")) << report;
  EXPECT_TRUE(absl::StrContains(report, "rerun: ")) << report;
  std::istringstream lines(report);
  std::string line;
  std::cout << result.failed_seeds.size() << " of " << result.outcomes.size()
            << " seeds lost puts; first report:\n";
  for (int n = 0; std::getline(lines, line) && n < 40; ++n) {
    if (absl::StartsWith(line, "FAIL") || absl::StrContains(line, "rerun:")) {
      std::cout << line << "\n";
    }
  }
}

}  // namespace
}  // namespace dsim
