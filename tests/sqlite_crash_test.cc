// Unmodified SQLite (Debian's libsqlite3) on a simulated disk, through the interposed
// libc file calls (//posix:files), under power loss at a seed-chosen moment.
//
// Scenario (one seed). Host "db" opens /test.db, sets the journal mode and synchronous
// level, creates a table (made durable before the workload: the database existed
// before the run), then commits transactions one by one, each inserting one row,
// counting the COMMITs that returned. A chaos task lets the workload run for a
// seed-chosen number of scheduling points (every file call is one), then cuts the
// power: it copies the db host's disk, pending writes and all, onto the disk of host
// "recovery" and resolves that copy as a crash (kept / lost / torn / reordered, as the
// seed decides; disk/disk.h). The workload process is not killed: SQLite's in-process
// state (its global inode list and mutexes) cannot be torn down in the middle of a
// call, so the crash is taken on a copy of the disk, as CrashMonkey and ALICE take
// theirs from a recorded trace. Then host "recovery" opens the database and checks:
// PRAGMA integrity_check is "ok", the rows are exactly 1..k, and k is at least the
// number of COMMITs that had returned when the power went.
//
// Modes. synchronous=FULL with journal_mode=TRUNCATE (rollback journal; DELETE mode
// needs synchronous=EXTRA to make the journal's unlink durable: with FULL a power loss
// right after COMMIT may roll the last transaction back, as SQLite documents) and
// synchronous=FULL with WAL (locking_mode=EXCLUSIVE: the WAL index lives in heap
// memory, since dsim has no shared writable mappings) lose nothing over every seed;
// synchronous=OFF loses commits in some seeds, and the sweep reports them with the
// seed and the rerun line.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "files/file.h"
#include "scheduler/notification.h"
#include "sim/harness.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

constexpr int kTransactions = 12;
constexpr size_t kStack = 1 << 20;  // SQLite's VDBE and parser frames are large.

struct Mode {
  const char* setup;  // PRAGMAs before the table is created.
};

const Mode kTruncateFull{"PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=FULL;"};
const Mode kWalFull{
    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"};
const Mode kTruncateOff{"PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=OFF;"};
const Mode kWalOff{
    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"};

std::string Exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "?";
    sqlite3_free(error);
    return message;
  }
  return "";
}

// Runs `sql` and returns the first column of the first row as text ("" if none).
std::string QueryText(sqlite3* db, const char* sql, int* code) {
  sqlite3_stmt* statement = nullptr;
  *code = sqlite3_prepare_v2(db, sql, -1, &statement, nullptr);
  if (*code != SQLITE_OK) return sqlite3_errmsg(db);
  std::string out;
  *code = sqlite3_step(statement);
  if (*code == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(statement, 0);
    out = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    *code = SQLITE_OK;
  } else if (*code == SQLITE_DONE) {
    *code = SQLITE_OK;
  } else {
    out = sqlite3_errmsg(db);
  }
  sqlite3_finalize(statement);
  return out;
}

struct RunState {
  bool setup_done = false;
  bool workload_done = false;
  int committed = 0;             // COMMITs that returned.
  int committed_at_crash = -1;   // ... when the power went.
  std::string workload_error;
  std::string verdict;           // Empty: recovered correctly.
};

void Workload(const Mode& mode, RunState& state) {
  sqlite3* db = nullptr;
  if (sqlite3_open("/test.db", &db) != SQLITE_OK) {
    state.workload_error = "open failed";
    sqlite3_close(db);
    return;
  }
  std::string e = Exec(db, mode.setup);
  if (e.empty()) e = Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);");
  if (!e.empty()) {
    state.workload_error = e;
    sqlite3_close(db);
    return;
  }
  dsim::Sync();  // The database and its table existed before the run.
  state.setup_done = true;
  for (int i = 1; i <= kTransactions; ++i) {
    const std::string sql = absl::StrCat(
        "BEGIN; INSERT INTO t VALUES(", i, ", printf('%.*c', ", 200 + 37 * i, ", 'v')); COMMIT;");
    e = Exec(db, sql);
    if (!e.empty()) {
      state.workload_error = absl::StrCat("transaction ", i, ": ", e);
      break;
    }
    state.committed = i;
  }
  sqlite3_close(db);
  state.workload_done = true;
}

void Recover(const Mode& mode, RunState& state) {
  sqlite3* db = nullptr;
  if (sqlite3_open("/test.db", &db) != SQLITE_OK) {
    state.verdict = absl::StrCat("reopen failed: ", sqlite3_errmsg(db));
    sqlite3_close(db);
    return;
  }
  // Only the locking mode and journal mode matter to recovery.
  std::string e = Exec(db, absl::StrContains(mode.setup, "WAL")
                               ? "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
                               : "PRAGMA journal_mode=TRUNCATE;");
  int code;
  const std::string integrity = QueryText(db, "PRAGMA integrity_check;", &code);
  const std::string rows = QueryText(db, "SELECT count(*) FROM t;", &code);
  const std::string max_id = QueryText(db, "SELECT coalesce(max(id), 0) FROM t;", &code);
  sqlite3_close(db);
  if (!e.empty()) {
    state.verdict = absl::StrCat("recovery pragmas failed: ", e);
  } else if (integrity != "ok") {
    state.verdict = absl::StrCat("integrity_check: ", integrity);
  } else if (code != SQLITE_OK || rows != max_id) {
    state.verdict = absl::StrCat("rows are not 1..k: count ", rows, ", max id ", max_id);
  } else if (std::stoi(rows) < state.committed_at_crash) {
    state.verdict = absl::StrCat("lost commits: ", state.committed_at_crash,
                                 " COMMITs had returned before the power loss, ", rows,
                                 " transactions survived");
  }
}

absl::Status RunSeed(Simulation& sim, const Mode& mode) {
  RunState state;
  Notification crashed;
  Host& db = sim.AddHost({.name = "db", .start = [&] {
    dsim::Spawn("workload", [&] { Workload(mode, state); }, {.stack_size = kStack}).Join();
  }, .start_daemon = false});
  Host& recovery = sim.AddHost({.name = "recovery", .start = [&] {
    crashed.WaitForNotification();
    dsim::Spawn("recover", [&] { Recover(mode, state); }, {.stack_size = kStack}).Join();
  }, .start_daemon = false});
  sim.Spawn("power", [&] {
    while (!state.setup_done && state.workload_error.empty()) dsim::Yield();
    const uint64_t points = sim.random().Below(kTransactions * 12);
    for (uint64_t i = 0; i < points && !state.workload_done; ++i) dsim::Yield();
    state.committed_at_crash = state.committed;
    Disk& copy = sim.disk(recovery.id());
    copy.CopyContentsFrom(sim.disk(db.id()));
    sim.Annotate("fault.power_loss", absl::StrCat("power loss after ", state.committed,
                                                  " commits"));
    copy.Crash();
    crashed.Notify();
  });
  const RunResult result = sim.Run();
  if (!result.ok()) return result.status();
  if (!state.workload_error.empty()) {
    return absl::InternalError(absl::StrCat("workload: ", state.workload_error));
  }
  if (!state.verdict.empty()) return absl::DataLossError(state.verdict);
  return absl::OkStatus();
}

uint64_t Seeds(uint64_t default_seeds) {
  const char* all = std::getenv("DSIM_SQLITE_SEEDS");
  return all != nullptr ? std::strtoull(all, nullptr, 10) : default_seeds;
}

TEST(SqliteCrash, RollbackJournalSynchronousFullLosesNothing) {
  SeedSweep sweep({.seeds = Seeds(1000)});
  sweep.Run([](Simulation& sim) { return RunSeed(sim, kTruncateFull); });
}

TEST(SqliteCrash, WalSynchronousFullLosesNothing) {
  SeedSweep sweep({.seeds = Seeds(1000)});
  sweep.Run([](Simulation& sim) { return RunSeed(sim, kWalFull); });
}

// With synchronous=OFF nothing is fsynced: the sweep must find lost commits (a
// durability bug dsim finds), and its report names the seed and the rerun command.
void ExpectLosses(const Mode& mode, const char* test) {
  std::ostringstream log;
  SweepOptions options{.seeds = Seeds(300)};
  options.report_to_gtest = false;
  options.log = &log;
  options.record_schedules = false;
  options.detailed_failures = 1;
  options.test_name = test;
  SeedSweep sweep(options);
  const SweepResult result = sweep.Run([&](Simulation& sim) { return RunSeed(sim, mode); });
  ASSERT_FALSE(result.failed_seeds.empty()) << "synchronous=OFF must lose commits in some seed";
  const std::string report = log.str();
  EXPECT_TRUE(absl::StrContains(report, "lost commits") ||
              absl::StrContains(report, "integrity_check"))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "rerun: ")) << report;
  // Show the first report's head: the seed, what was lost, and the rerun line.
  std::istringstream lines(report);
  std::string line;
  std::cout << result.failed_seeds.size() << " of " << result.outcomes.size()
            << " seeds lost data; first report:\n";
  for (int n = 0; std::getline(lines, line) && n < 40; ++n) {
    if (absl::StartsWith(line, "FAIL") || absl::StrContains(line, "rerun:")) {
      std::cout << line << "\n";
    }
  }
}

TEST(SqliteCrash, RollbackJournalSynchronousOffLosesCommits) {
  ExpectLosses(kTruncateOff, "SqliteCrash.RollbackJournalSynchronousOffLosesCommits");
}

TEST(SqliteCrash, WalSynchronousOffLosesCommits) {
  ExpectLosses(kWalOff, "SqliteCrash.WalSynchronousOffLosesCommits");
}

}  // namespace
}  // namespace dsim
