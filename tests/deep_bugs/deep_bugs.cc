#include "tests/deep_bugs/deep_bugs.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "sim/assertions.h"
#include "sim/buggify.h"

namespace dsim::deep_bugs {
namespace {

constexpr absl::Duration kTick = absl::Milliseconds(10);

// True with probability 1/n: one rare event of a chaos process.
bool OneIn(Simulation& sim, uint64_t n) { return sim.random().Below(n) == 0; }

HostId AddIdleHost(Simulation& sim, const std::string& name, int address) {
  return sim.AddHost({.name = name, .start = [] {}, .addresses = {absl::StrCat("10.0.0.", address)}})
      .id();
}

absl::Status Finish(Simulation& sim, absl::Duration run_for) {
  return sim.RunFor(run_for).status();
}

// ---- partition_leader_change_clock_jump -------------------------------------------
// Three nodes; the leader holds a lease. Now and then the leader steps down and an
// election runs for 50 ms; the old leader's lease ends 40 ms after it steps down, and
// it learns of the new leader when the election ends, unless it is partitioned away.
// The buggy old leader measures its lease on its wall clock, so a backward step
// (NTP) while it is cut off makes it believe in its lease past the new leader's start.
// The fixed one measures it on its monotonic clock, which steps never move.
absl::Status LeaderChange(Simulation& sim, bool buggy) {
  std::vector<HostId> nodes;
  for (int i = 0; i < 3; ++i) nodes.push_back(AddIdleHost(sim, absl::StrCat("n", i), i + 1));
  sim.Spawn("cluster", [&sim, nodes, buggy] {
    int leader = 0, old_leader = -1, election_ticks = 0, partition_ticks = 0;
    PartitionId cut = 0;
    absl::Time lease_end_wall;
    absl::Duration lease_end_mono;
    for (int tick = 0; tick < 300; ++tick) {
      dsim::SleepFor(kTick);
      HostClock& old_clock = sim.clock(nodes[old_leader < 0 ? 0 : old_leader]);
      if (election_ticks == 0 && OneIn(sim, 4000)) {
        old_leader = leader;
        HostClock& clock = sim.clock(nodes[old_leader]);
        lease_end_wall = clock.WallAt(sim.Now()) + absl::Milliseconds(40);
        lease_end_mono = clock.MonotonicAt(sim.Now()) + absl::Milliseconds(40);
        election_ticks = 5;
        DSIM_SOMETIMES(true, "leader change started");
        continue;
      }
      if (election_ticks > 0 && partition_ticks == 0 && OneIn(sim, 60)) {
        std::vector<HostId> others;
        for (int i = 0; i < 3; ++i) {
          if (i != old_leader) others.push_back(nodes[i]);
        }
        cut = sim.Partition({nodes[old_leader]}, others);
        partition_ticks = 30;
        DSIM_SOMETIMES(true, "partition during a leader change");
      }
      if (election_ticks > 0 && partition_ticks > 0 && OneIn(sim, 40)) {
        sim.StepClock(nodes[old_leader], absl::Seconds(-1));
        DSIM_SOMETIMES(true, "clock stepped back on a partitioned old leader");
      }
      if (election_ticks > 0 && --election_ticks == 0) {
        leader = (old_leader + 1) % 3;
        const bool old_believes = buggy ? old_clock.WallAt(sim.Now()) < lease_end_wall
                                        : old_clock.MonotonicAt(sim.Now()) < lease_end_mono;
        // Without a partition the old leader hears of the new one and steps down.
        DSIM_ALWAYS(!(old_believes && partition_ticks > 0), "one leader at a time");
      }
      if (partition_ticks > 0 && --partition_ticks == 0) sim.Heal(cut);
    }
  });
  return Finish(sim, absl::Seconds(4));
}

// ---- crash_between_two_writes ------------------------------------------------------
// A store appends an index entry, then the record it points to (buggy order; the fixed
// store writes the record first). A BUGGIFY'd slow flush opens a window between the two
// writes; a crash in it leaves an index entry without its record. Recovery checks the
// index against the records and truncates it, unless a BUGGIFY'd "skip the checksum"
// fires on that recovery.
struct Disk {
  std::vector<int> index, records;
};

absl::Status TornWrite(Simulation& sim, bool buggy) {
  auto disk = std::make_shared<Disk>();
  Host& db = sim.AddHost({.name = "db", .start = [disk, buggy] {
    if (disk->index.size() > disk->records.size()) {
      DSIM_SOMETIMES(true, "recovered a torn write");
      if (!DSIM_BUGGIFY_NAMED("recovery skips the checksum")) disk->index.resize(disk->records.size());
    }
    DSIM_ALWAYS(disk->index.size() <= disk->records.size(), "the index never points past the data");
    for (int i = 0;; ++i) {
      std::vector<int>& first = buggy ? disk->index : disk->records;
      std::vector<int>& second = buggy ? disk->records : disk->index;
      first.push_back(i);
      if (DSIM_BUGGIFY_NAMED("slow flush")) dsim::SleepFor(absl::Milliseconds(5));
      second.push_back(i);
      dsim::SleepFor(absl::Milliseconds(7));
    }
  }});
  const HostId id = db.id();
  sim.Spawn("chaos", [&sim, id] {
    for (int tick = 0; tick < 300; ++tick) {
      dsim::SleepFor(kTick);
      if (OneIn(sim, 1000)) sim.Restart(id);  // Crash and reboot.
    }
  });
  return Finish(sim, absl::Seconds(4));
}

// ---- dup_apply_after_restart -------------------------------------------------------
// A client sends 20 requests; the server applies each once, remembering its id, and
// replies. A reply may be lost; the client then retries after 100 ms. The buggy server
// flushes its id table to disk 40 ms after applying (the fixed one before replying), so
// a crash in that gap, with a retry pending, applies the retry a second time.
struct Server {
  std::set<int> seen;          // In memory.
  std::set<int> seen_on_disk;  // Survives crashes.
  std::map<int, int> applied;  // On disk: how often each request was applied.
};

absl::Status DupApply(Simulation& sim, bool buggy) {
  auto server = std::make_shared<Server>();
  Host& host = sim.AddHost({.name = "server", .start = [server] { server->seen = server->seen_on_disk; }});
  const HostId id = host.id();
  auto retry_pending = std::make_shared<bool>(false);
  sim.Spawn("client", [&sim, server, id, buggy, retry_pending] {
    for (int request = 0; request < 20; ++request) {
      for (;;) {
        dsim::SleepFor(absl::Milliseconds(1));  // The request's trip.
        if (sim.host(id).state() == HostState::kRunning && server->seen.insert(request).second) {
          ++server->applied[request];
          DSIM_ALWAYS(server->applied[request] <= 1, "every request is applied at most once");
          if (!buggy) {
            server->seen_on_disk.insert(request);
          } else {
            sim.host(id).Spawn("flush", [server, request] {
              dsim::SleepFor(absl::Milliseconds(40));
              server->seen_on_disk.insert(request);
            });
          }
        }
        if (!OneIn(sim, 300)) break;  // The reply arrived.
        DSIM_SOMETIMES(true, "a reply was lost and the client retries");
        *retry_pending = true;
        dsim::SleepFor(absl::Milliseconds(100));
        *retry_pending = false;
      }
      dsim::SleepFor(absl::Milliseconds(20));
    }
  });
  sim.Spawn("chaos", [&sim, id, retry_pending] {
    for (int tick = 0; tick < 100; ++tick) {
      dsim::SleepFor(kTick);
      if (OneIn(sim, 500)) {
        DSIM_SOMETIMES(*retry_pending, "server restarted while a retry was pending");
        sim.Restart(id);
      }
    }
  });
  return Finish(sim, absl::Seconds(2));
}

// ---- reorder_then_duplicate --------------------------------------------------------
// 40 datagrams, 10 ms apart. A datagram may be reordered (35 ms late, after three later
// ones). The receiver acknowledges each; a lost acknowledgement makes the sender
// retransmit 17 ms later. The buggy receiver drops duplicates by remembering the last
// two sequence numbers it delivered, so a retransmission of a *reordered* datagram
// arrives when its number has left that memory and is delivered twice. The fixed one
// remembers every number.
absl::Status ReorderDuplicate(Simulation& sim, bool buggy) {
  struct Receiver {
    std::deque<int> recent;  // Buggy: the last two delivered.
    std::set<int> all;       // Fixed: every delivered.
    std::map<int, int> delivered;
  };
  auto receiver = std::make_shared<Receiver>();
  auto deliver = [&sim, receiver, buggy](int seq, bool reordered) {
    const bool duplicate = buggy ? std::find(receiver->recent.begin(), receiver->recent.end(), seq) !=
                                       receiver->recent.end()
                                 : receiver->all.count(seq) > 0;
    if (!duplicate) {
      ++receiver->delivered[seq];
      DSIM_ALWAYS(receiver->delivered[seq] == 1, "each datagram is delivered once");
      receiver->recent.push_back(seq);
      if (receiver->recent.size() > 2) receiver->recent.pop_front();
      receiver->all.insert(seq);
    }
    return reordered;
  };
  sim.Spawn("sender", [&sim, deliver] {
    for (int seq = 0; seq < 40; ++seq) {
      const bool reordered = OneIn(sim, 1000);
      const absl::Duration latency = reordered ? absl::Milliseconds(36) : absl::Milliseconds(1);
      sim.scheduler().AddTimer(sim.Now() + latency, [&sim, deliver, seq, reordered] {
        deliver(seq, reordered);
        if (reordered) DSIM_SOMETIMES(true, "a datagram arrived after later ones");
        if (!OneIn(sim, 150)) return;  // The acknowledgement arrived.
        if (reordered) DSIM_SOMETIMES(true, "the ack of a reordered datagram was lost");
        sim.scheduler().AddTimer(sim.Now() + absl::Milliseconds(17),
                                 [deliver, seq] { deliver(seq, false); });
      });
      dsim::SleepFor(kTick);
    }
  });
  return Finish(sim, absl::Seconds(1));
}

// ---- stale_reply_after_pause -------------------------------------------------------
// A client reads a counter that another client keeps incrementing; a reply normally
// takes 30 ms, but now and then 150 ms (a latency tail). The client gives up after
// 100 ms and asks again. The buggy client takes the first reply that arrives, without
// checking which request it answers; a stale reply then wins only if the retry's reply
// is later still: the server paused (50 ms) while it handled the retry.
absl::Status StaleReply(Simulation& sim, bool buggy) {
  auto counter = std::make_shared<int>(0);
  Host& server = sim.AddHost({.name = "server", .start = [] {}, .start_daemon = true});
  const HostId id = server.id();
  sim.Spawn("writer", [counter] {
    for (int i = 0; i < 200; ++i) {
      dsim::SleepFor(absl::Milliseconds(3));
      ++*counter;
    }
  });
  sim.Spawn("reader", [&sim, id, counter, buggy] {
    for (int request = 0; request < 20; ++request) {
      Mutex mu;
      CondVar arrived;
      struct Reply { int request; int value; };
      auto replies = std::make_shared<std::vector<Reply>>();
      int attempts = 0;
      auto send = [&](int attempt_id, bool slow) {
        sim.host(id).Spawn("reply", [&sim, counter, replies, attempt_id, slow, &mu, &arrived] {
          dsim::SleepFor(slow ? absl::Milliseconds(150) : absl::Milliseconds(30));
          MutexLock lock(&mu);
          replies->push_back({attempt_id, *counter});
          arrived.SignalAll();
        });
      };
      send(attempts++, OneIn(sim, 600));
      MutexLock lock(&mu);
      bool timed_out = false;
      while (replies->empty()) {
        if (arrived.WaitWithTimeout(&mu, absl::Milliseconds(100))) {
          if (timed_out) continue;
          timed_out = true;
          DSIM_SOMETIMES(true, "a read timed out and was retried");
          send(attempts++, false);
        }
      }
      const Reply reply = replies->front();
      const bool accepted = buggy || reply.request == attempts - 1;
      DSIM_ALWAYS(!accepted || reply.request == attempts - 1, "a reply answers the latest request");
      // Wait for the rest so that their tasks end before `mu` goes away.
      while (replies->size() < static_cast<size_t>(attempts)) arrived.Wait(&mu);
    }
  });
  sim.Spawn("chaos", [&sim, id] {
    for (int tick = 0; tick < 200; ++tick) {
      dsim::SleepFor(kTick);
      if (sim.host(id).state() == HostState::kRunning && OneIn(sim, 300)) {
        sim.Pause(id);
        dsim::SleepFor(absl::Milliseconds(50));
        sim.Resume(id);
      }
    }
  });
  return Finish(sim, absl::Seconds(3));
}

}  // namespace

const std::vector<DeepBug>& Corpus() {
  static const std::vector<DeepBug>* corpus = new std::vector<DeepBug>{
      {"partition_leader_change_clock_jump",
       "leader change, then a partition within its 50 ms, then a backward clock step",
       [](Simulation& sim) { return LeaderChange(sim, true); },
       [](Simulation& sim) { return LeaderChange(sim, false); }},
      {"crash_between_two_writes",
       "BUGGIFY slow flush, then a crash inside it, then BUGGIFY skip-checksum on recovery",
       [](Simulation& sim) { return TornWrite(sim, true); },
       [](Simulation& sim) { return TornWrite(sim, false); }},
      {"dup_apply_after_restart", "a lost reply, then a crash before the id table is flushed",
       [](Simulation& sim) { return DupApply(sim, true); },
       [](Simulation& sim) { return DupApply(sim, false); }},
      {"reorder_then_duplicate",
       "a reordered datagram, then the loss of its acknowledgement",
       [](Simulation& sim) { return ReorderDuplicate(sim, true); },
       [](Simulation& sim) { return ReorderDuplicate(sim, false); }},
      {"stale_reply_after_pause", "a latency tail, then a pause of the server around the retry",
       [](Simulation& sim) { return StaleReply(sim, true); },
       [](Simulation& sim) { return StaleReply(sim, false); }},
  };
  return *corpus;
}

}  // namespace dsim::deep_bugs
