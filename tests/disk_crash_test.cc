// Crash states of the simulated disk: the classic application patterns (atomic replace
// by temp file + fsync + rename + directory fsync survives every crash seed; dropping
// either fsync loses data in some seeds, and the sweep finds them), the states that
// ALICE and CrashMonkey found bugs with, and replay of crash decisions by seed.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "disk/disk.h"
#include "files/file.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

constexpr int kSeeds = 400;

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

struct ReplaceOutcome {
  bool completed = false;  // The replace returned before the crash.
  bool exists = false;
  std::string content;
};

// A host holds "/data" = "old version" durably, then replaces it with "new version" by
// the atomic-replace pattern (with or without each fsync). A chaos task crashes it after
// a seed-chosen number of scheduling points. Returns what the disk holds after.
ReplaceOutcome RunReplace(uint64_t seed, bool fsync_file, bool fsync_dir) {
  Simulation sim(SimulationOptions{.seed = seed});
  ReplaceOutcome outcome;
  bool setup_done = false;
  Host& host = sim.AddHost({.name = "db", .start = [&] {
    WriteFile("/data", "old version", true);
    FsyncDir("/");
    setup_done = true;
    WriteFile("/data.tmp", "new version", fsync_file);
    EXPECT_EQ(dsim::Rename("/data.tmp", "/data"), 0);
    if (fsync_dir) FsyncDir("/");
    outcome.completed = true;
    dsim::SleepFor(absl::Hours(1));
  }});
  sim.Spawn("chaos", [&] {
    while (!setup_done) dsim::Yield();
    const uint64_t points = sim.random().Below(16);
    for (uint64_t i = 0; i < points && !outcome.completed; ++i) dsim::Yield();
    sim.Crash(host.id());
  });
  EXPECT_TRUE(sim.Run().ok());
  outcome.content = sim.disk(host.id()).DurableContent("/data", &outcome.exists);
  return outcome;
}

TEST(DiskCrash, AtomicReplaceWithBothFsyncsSurvivesEveryCrashSeed) {
  int completed = 0, interrupted = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const ReplaceOutcome outcome = RunReplace(seed, true, true);
    ASSERT_TRUE(outcome.exists) << "seed " << seed;
    if (outcome.completed) {
      ++completed;
      EXPECT_EQ(outcome.content, "new version") << "seed " << seed;
    } else {
      ++interrupted;
      EXPECT_TRUE(outcome.content == "old version" || outcome.content == "new version")
          << "seed " << seed << ": " << outcome.content;
    }
  }
  // Both kinds of crash point were explored.
  EXPECT_GT(completed, 0);
  EXPECT_GT(interrupted, 0);
}

TEST(DiskCrash, AtomicReplaceWithoutFileFsyncLosesTheDataInSomeSeeds) {
  std::set<std::string> bad;
  uint64_t first_bad_seed = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const ReplaceOutcome outcome = RunReplace(seed, false, true);
    const bool ok = outcome.exists && (outcome.content == "new version" ||
                                       (!outcome.completed && outcome.content == "old version"));
    if (!ok) {
      bad.insert(outcome.exists ? absl::StrCat("\"", outcome.content, "\"") : "missing");
      if (first_bad_seed == 0) first_bad_seed = seed;
    }
  }
  ASSERT_FALSE(bad.empty()) << "the sweep must find the renamed-but-empty file";
  // ALICE's state: the rename reached the disk, the data did not.
  EXPECT_TRUE(bad.count("\"\"") != 0);
  // The failing seed reproduces.
  const ReplaceOutcome again = RunReplace(first_bad_seed, false, true);
  const ReplaceOutcome first = RunReplace(first_bad_seed, false, true);
  EXPECT_EQ(again.content, first.content);
  EXPECT_EQ(again.exists, first.exists);
}

TEST(DiskCrash, AtomicReplaceWithoutDirectoryFsyncLosesTheCommittedVersionInSomeSeeds) {
  int lost_after_completion = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    const ReplaceOutcome outcome = RunReplace(seed, true, false);
    ASSERT_TRUE(outcome.exists);
    EXPECT_TRUE(outcome.content == "old version" || outcome.content == "new version");
    if (outcome.completed && outcome.content == "old version") ++lost_after_completion;
  }
  EXPECT_GT(lost_after_completion, 0) << "the rename was never durable";
}

// The crash states of two non-durable appends to an fsynced file, over many seeds.
std::set<std::string> AppendCrashStates() {
  std::set<std::string> states;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    Host& host = sim.AddHost({.name = "log", .start = [] {
      WriteFile("/log", "", true);
      FsyncDir("/");
      const int fd = dsim::Open("/log", O_WRONLY | O_APPEND);
      const std::string a(1024, 'a'), b(1024, 'b');
      dsim::Write(fd, a.data(), a.size());
      dsim::Write(fd, b.data(), b.size());
      dsim::SleepFor(absl::Hours(1));
    }});
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Seconds(1));
      sim.Crash(host.id());
    });
    EXPECT_TRUE(sim.Run().ok());
    const std::string log = sim.disk(host.id()).DurableContent("/log");
    // Summarize as runs: "a1024", "a512", "z1024 b1024" (z: zeros), ...
    std::string summary;
    for (size_t i = 0; i < log.size();) {
      size_t j = i;
      while (j < log.size() && log[j] == log[i]) ++j;
      absl::StrAppend(&summary, summary.empty() ? "" : " ", log[i] == '\0' ? "z" : std::string(1, log[i]),
                      j - i);
      i = j;
    }
    states.insert(summary.empty() ? "empty" : summary);
  }
  return states;
}

TEST(DiskCrash, ExploresLostTornAndReorderedAppends) {
  const std::set<std::string> states = AppendCrashStates();
  EXPECT_TRUE(states.count("empty")) << "both appends lost";
  EXPECT_TRUE(states.count("a1024")) << "a prefix: the first append only";
  EXPECT_TRUE(states.count("a1024 b1024")) << "everything kept";
  EXPECT_TRUE(states.count("a512")) << "a torn append (sector granularity)";
  EXPECT_TRUE(states.count("z1024 b1024")) << "reordered: the later append without the earlier";
  for (const std::string& state : states) {
    EXPECT_EQ(state.find("garbage"), std::string::npos);
    // data=ordered: never bytes that were not written (only a, b and zero runs).
    for (char c : state) EXPECT_TRUE(c != '?');
  }
}

TEST(DiskCrash, ANewFileFsyncedWithoutItsDirectoryIsLostInSomeSeeds) {
  // CrashMonkey's most common pattern: create, write, fsync the file, crash.
  int lost = 0, kept = 0;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    Host& host = sim.AddHost({.name = "h", .start = [] {
      WriteFile("/new", "fsynced", true);
      dsim::SleepFor(absl::Hours(1));
    }});
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Seconds(1));
      sim.Crash(host.id());
    });
    EXPECT_TRUE(sim.Run().ok());
    bool exists;
    const std::string content = sim.disk(host.id()).DurableContent("/new", &exists);
    if (exists) {
      EXPECT_EQ(content, "fsynced") << "if the name survived, the fsynced data did";
      ++kept;
    } else {
      ++lost;
    }
  }
  EXPECT_GT(lost, 0);
  EXPECT_GT(kept, 0);
}

TEST(DiskCrash, DirectoryOperationsPersistInJournalOrder) {
  // mkdir a; create a/x; rename a/x -> b ... never a state where a later operation
  // persisted without an earlier one.
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    Host& host = sim.AddHost({.name = "h", .start = [] {
      dsim::Mkdir("/a", 0755);
      WriteFile("/a/x", "", false);
      dsim::Mkdir("/b", 0755);
      dsim::Rename("/a/x", "/b/x");
      dsim::Unlink("/b/x");
      dsim::SleepFor(absl::Hours(1));
    }});
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Seconds(1));
      sim.Crash(host.id());
    });
    EXPECT_TRUE(sim.Run().ok());
    const std::vector<std::string> tree = sim.disk(host.id()).DurableTree();
    static const std::set<std::vector<std::string>> kPrefixes = {
        {}, {"/a/"}, {"/a/", "/a/x"}, {"/a/", "/a/x", "/b/"}, {"/a/", "/b/", "/b/x"},
        {"/a/", "/b/"}};
    EXPECT_TRUE(kPrefixes.count(tree)) << "seed " << seed << ": " << tree.size();
  }
}

TEST(DiskCrash, CrashDecisionsAreFaultDecisionsInTheTrace) {
  Simulation sim(SimulationOptions{.seed = 3});
  Host& host = sim.AddHost({.name = "h", .start = [] {
    WriteFile("/f", "x", false);
    dsim::SleepFor(absl::Hours(1));
  }});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Seconds(1));
    sim.Crash(host.id());
  });
  ASSERT_TRUE(sim.Run().ok());
  bool decision = false, annotation = false;
  for (const TraceEvent& event : sim.trace().events()) {
    if (event.kind == TraceEventKind::kDecision &&
        std::string(event.what) == "fault.disk.crash_mode") {
      decision = true;
    }
    annotation |= event.category == "fault.disk.crash";
  }
  EXPECT_TRUE(decision);
  EXPECT_TRUE(annotation);
}

}  // namespace
}  // namespace dsim
