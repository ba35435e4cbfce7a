// Swarm faults (a fault mix per seed), swizzle-clogging, and the liveness phase.
#include <gtest/gtest.h>

#include <iostream>

#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "sim/harness.h"
#include "sim/liveness.h"
#include "sim/simulation.h"
#include "sim/swarm.h"
#include "sockets/udp.h"

namespace dsim {
namespace {

SimulationOptions SwarmOn(uint64_t seed) {
  SimulationOptions options{.seed = seed};
  options.faults.swarm.enabled = true;
  return options;
}

TEST(Swarm, EachSeedDrawsItsOwnMixAndTheSameSeedTheSameMix) {
  std::set<std::string> mixes;
  std::map<std::string, int> off;  // Kind -> seeds where it was off.
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    Simulation sim(SwarmOn(seed));
    const std::string mix = sim.swarm_description();
    EXPECT_EQ(Simulation(SwarmOn(seed)).swarm_description(), mix);
    mixes.insert(mix);
    for (const char* kind : {"datagram_loss", "duplicate", "reorder", "segment_loss", "latency",
                             "tail", "buggify", "clock_drift", "clock_jumps", "swizzle"}) {
      if (absl::StrContains(mix, absl::StrCat(kind, "=off"))) ++off[kind];
    }
  }
  EXPECT_EQ(mixes.size(), 100u);
  std::cerr << "seed 1: " << Simulation(SwarmOn(1)).swarm_description() << "\n";
  for (const auto& [kind, n] : off) {
    EXPECT_GT(n, 30) << kind;
    EXPECT_LT(n, 70) << kind;
  }
  EXPECT_EQ(off.size(), 10u);
}

TEST(Swarm, DrawnRatesStayWithinTheirBounds) {
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    SimulationOptions options = SwarmOn(seed);
    options.faults.swarm.datagram_loss_max = 0.05;
    options.faults.swarm.clock_drift_ppm_max = 100;
    Simulation sim(options);
    EXPECT_LE(sim.options().faults.link.datagram_loss_probability, 0.05);
    EXPECT_LE(sim.options().clocks.random_drift_ppm_max, 100);
  }
}

TEST(Swarm, OffDrawsNothing) {
  Simulation sim(SimulationOptions{.seed = 3});
  EXPECT_EQ(sim.swarm_description(), "");
  EXPECT_EQ(sim.scheduler().decisions(), 0u);
}

TEST(Swarm, AFailingSeedsReportPrintsItsMix) {
  std::ostringstream log;
  SweepOptions options;
  options.seeds = 1;
  options.simulation.faults.swarm.enabled = true;
  options.report_to_gtest = false;
  options.log = &log;
  options.record_schedules = false;
  options.schedule_dir = "";
  SeedSweep(options).Run([](Simulation& sim) { return absl::InternalError("planted"); });
  EXPECT_TRUE(absl::StrContains(log.str(), "  swarm: datagram_loss=")) << log.str();
}

// Three hosts that each send a datagram to every other every 10 ms; counts deliveries.
struct Chatter {
  std::vector<HostId> hosts;
  std::shared_ptr<int> delivered = std::make_shared<int>(0);
};

Chatter AddChatter(Simulation& sim, int n) {
  Chatter chatter;
  for (int i = 0; i < n; ++i) {
    auto delivered = chatter.delivered;
    chatter.hosts.push_back(sim.AddHost({.name = absl::StrCat("h", i), .start = [i, n, delivered] {
      dsim::Spawn("rx", [delivered] {
        absl::StatusOr<UdpSocket> rx = UdpSocket::Bind("0.0.0.0", 9);
        while (rx.ok() && rx->ReceiveFrom().ok()) ++*delivered;
      }, {.daemon = true});
      absl::StatusOr<UdpSocket> tx = UdpSocket::Bind("0.0.0.0", 0);
      for (;;) {
        for (int j = 0; j < n; ++j) {
          if (j != i) (void)tx->SendTo("x", absl::StrCat("10.0.0.", j + 1), 9);
        }
        dsim::SleepFor(absl::Milliseconds(50));
      }
    }, .addresses = {absl::StrCat("10.0.0.", i + 1)}}).id());
  }
  return chatter;
}

TEST(Swizzle, ClogsChosenHostsOneByOneAndUnclogsInARandomOrder) {
  int reordered = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed, .trace = {.keep_all_events = true}});
    Chatter chatter = AddChatter(sim, 4);
    sim.Spawn("nemesis", [&sim] {
      SwizzleClog(sim, {.gap_max = absl::Milliseconds(50), .hold_max = absl::Milliseconds(300)});
    });
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
    std::vector<std::string> clogs, unclogs;
    for (const TraceEvent& e : sim.trace().events()) {
      if (e.category != "fault.swizzle") continue;
      (absl::StartsWith(e.detail, "clog ") ? clogs : unclogs).push_back(e.detail.substr(e.detail.find(' ')));
    }
    ASSERT_FALSE(clogs.empty());
    EXPECT_EQ(std::set<std::string>(clogs.begin(), clogs.end()),
              std::set<std::string>(unclogs.begin(), unclogs.end()));
    if (clogs != unclogs) ++reordered;
    // Nothing stays held: every link is free again.
    for (HostId a : chatter.hosts) {
      for (HostId b : chatter.hosts) {
        if (a == b) continue;
        for (const InFlightMessage& m : sim.InFlight(a, b)) EXPECT_FALSE(m.held);
      }
    }
  }
  EXPECT_GT(reordered, 3);
}

// A client that sends a request every 100 ms and counts answers. After a timeout it
// backs off, doubling; the buggy one has no cap, so after a long partition it sleeps for
// minutes and makes no progress after the heal.
void Client(std::shared_ptr<int> answered, bool buggy) {
  absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    (void)socket->SendTo("ping", "10.0.0.1", 7);
    (void)socket->handle().SetReadDeadline(dsim::Now() + absl::Milliseconds(50));
    if (socket->ReceiveFrom().ok()) {
      ++*answered;
      backoff = absl::Milliseconds(100);
    } else {
      backoff = buggy ? backoff * 2 : std::min(backoff * 2, absl::Seconds(1));
    }
    dsim::SleepFor(backoff);
  }
}

absl::Status LivenessBody(Simulation& sim, bool buggy) {
  auto answered = std::make_shared<int>(0);
  Host& server = sim.AddHost({.name = "server", .start = [] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 7);
    for (;;) {
      absl::StatusOr<UdpSocket::Datagram> d = socket->ReceiveFrom();
      if (d.ok()) (void)socket->SendTo("pong", d->from_ip, d->from_port);
    }
  }, .addresses = {"10.0.0.1"}});
  Host& client = sim.AddHost({.name = "client", .start = [answered, buggy] { Client(answered, buggy); },
                              .addresses = {"10.0.0.2"}});
  sim.Spawn("chaos", [&sim, &server, &client] {
    dsim::SleepFor(absl::Milliseconds(500));
    sim.Partition({server.id()}, {client.id()});
    sim.Crash(server.id());  // Left crashed: the heal must restart it.
  });
  if (absl::Status s = sim.RunFor(absl::Seconds(20)).status(); !s.ok()) return s;
  const int before = *answered;
  return RunLivenessPhase(sim, {.progress = [answered, before] { return *answered > before; },
                                .within = absl::Seconds(5)});
}

TEST(Liveness, UnboundedBackoffMakesNoProgressAfterHeal) {
  Simulation sim(SimulationOptions{.seed = 1});
  absl::Status status = LivenessBody(sim, /*buggy=*/true);
  ASSERT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  std::cerr << status.message() << "\n";
  EXPECT_TRUE(absl::StartsWith(status.message(), "no progress within 5s after heal")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "trace of the liveness phase")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "faults stopped")) << status;
}

TEST(Liveness, BoundedBackoffRecoversAfterHealAndRestart) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    EXPECT_TRUE(LivenessBody(sim, /*buggy=*/false).ok()) << seed;
  }
}

TEST(Liveness, FaultsStopForTheLivenessPhase) {
  // Under heavy swarm faults, the fixed client must still make progress once healed.
  SweepOptions options;
  options.seeds = 30;
  options.simulation.faults.swarm.enabled = true;
  options.simulation.faults.swarm.datagram_loss_max = 0.9;
  options.report_to_gtest = true;
  options.record_schedules = false;
  options.schedule_dir = "";
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) { return LivenessBody(sim, false); });
  EXPECT_TRUE(result.ok());
}

}  // namespace
}  // namespace dsim
