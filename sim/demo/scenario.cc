#include "sim/demo/scenario.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "check/html.h"
#include "check/recorder.h"
#include "scheduler/random.h"
#include "scheduler/scheduler.h"
#include "sim/demo/history.h"
#include "sim/demo/kv_store.h"
#include "sim/faults.h"
#include "net/network.h"

namespace dsim::demo {
namespace {

constexpr int kReplicas = 3;
constexpr int kClients = 2;
// Few keys, so that clients often touch the same one and reads can meet writes.
const char* const kKeys[] = {"x", "y"};

// Everything the run's tasks share. The tasks hold it through a shared_ptr, so it lives
// as long as the last of them however the run ends: the replicas are daemons, still
// blocked in Accept when the clients are done, and unwind only when the Simulation goes.
struct Cluster {
  std::vector<ReplicaDisk> disks = std::vector<ReplicaDisk>(kReplicas);
  std::vector<HostId> replicas;
  std::vector<HostId> clients;
  std::vector<std::string> replica_addresses;
  History history;           // For the summary's counts.
  check::Recorder recorder;  // The exact history, for the checker.
  std::vector<std::string> faults;  // What the fault schedule did: "1.250s crash kv3".
};

std::string HostNames(Simulation& sim, const std::vector<HostId>& hosts) {
  return absl::StrJoin(hosts, " ", [&](std::string* out, HostId host) {
    out->append(sim.host(host).name());
  });
}

// One client: `operations_per_client` reads and writes of random keys, with a pause
// between them. Writes carry unique values ("c1.7": client 1, operation 7), so the
// checker can tell every write apart.
void RunClient(Simulation& sim, Cluster& cluster, int id, const DemoOptions& options) {
  KvClient kv({.id = id, .replicas = cluster.replica_addresses, .fast_reads = options.bug});
  BitSource& random = sim.random();
  for (int i = 1; i <= options.operations_per_client; ++i) {
    Operation op{.client = id, .key = kKeys[random.Below(std::size(kKeys))], .start = sim.Now()};
    if (random.Bernoulli(0.5)) {
      op.kind = Operation::Kind::kPut;
      op.value = absl::StrCat("c", id, ".", i);
      check::PendingOp write =
          cluster.recorder.Invoke(id, "write", check::Value(op.value), check::Value(op.key));
      absl::StatusOr<Version> put = kv.Put(op.key, op.value);
      op.ok = put.ok();
      if (put.ok()) op.version = *put;
      put.ok() ? write.Ok() : write.Info();  // Unavailable: it may still take effect.
    } else {
      op.kind = Operation::Kind::kGet;
      check::PendingOp read =
          cluster.recorder.Invoke(id, "read", check::Value(), check::Value(op.key));
      absl::StatusOr<VersionedValue> got = kv.Get(op.key);
      op.ok = got.ok();
      if (got.ok()) {
        op.value = got->value;
        op.version = got->version;
        // A key never written reads as the register's initial nil.
        read.Ok(got->version == Version{} ? check::Value() : check::Value(got->value));
      } else {
        read.Info();
      }
    }
    op.end = sim.Now();
    cluster.history.Record(std::move(op));
    dsim::SleepFor(random.UniformDuration(absl::ZeroDuration(), absl::Milliseconds(40)));
  }
}

// The fault schedule, drawn from the seed as it runs: a partition that cuts one replica
// (half the time together with a client) off from everyone else, then heals; then a
// crash of one replica and, a little later, its restart.
void RunFaults(Simulation& sim, Cluster& cluster) {
  BitSource& random = sim.random();
  auto note = [&](const std::string& what) {
    cluster.faults.push_back(absl::StrCat(FormatVirtualTime(sim.Now()), " ", what));
  };

  dsim::SleepFor(random.UniformDuration(absl::Milliseconds(50), absl::Milliseconds(400)));
  std::vector<HostId> minority = {cluster.replicas[random.Below(kReplicas)]};
  if (random.Bernoulli(0.5)) minority.push_back(cluster.clients[random.Below(kClients)]);
  std::vector<HostId> majority;
  for (HostId host = 1; host <= sim.host_count(); ++host) {
    if (std::find(minority.begin(), minority.end(), host) == minority.end()) {
      majority.push_back(host);
    }
  }
  const PartitionId cut = sim.Partition(minority, majority);
  note(absl::StrCat("partition {", HostNames(sim, minority), "} | {",
                    HostNames(sim, majority), "}"));
  dsim::SleepFor(random.UniformDuration(absl::Milliseconds(150), absl::Milliseconds(600)));
  sim.Heal(cut);
  note("heal");

  dsim::SleepFor(random.UniformDuration(absl::Milliseconds(50), absl::Milliseconds(300)));
  const HostId victim = cluster.replicas[random.Below(kReplicas)];
  sim.Crash(victim);
  note(absl::StrCat("crash ", sim.host(victim).name()));
  dsim::SleepFor(random.UniformDuration(absl::Milliseconds(100), absl::Milliseconds(300)));
  sim.Restart(victim);
  note(absl::StrCat("restart ", sim.host(victim).name()));
}

// Adds the replica and client hosts, and the task that drives the faults.
void BuildCluster(Simulation& sim, const std::shared_ptr<Cluster>& cluster,
                  const DemoOptions& options) {
  for (int r = 0; r < kReplicas; ++r) {
    const std::string address = absl::StrCat("10.0.0.", r + 1);
    ReplicaDisk* disk = &cluster->disks[r];
    Host& host = sim.AddHost({.name = absl::StrCat("kv", r + 1),
                              .start = [cluster, disk] { ServeReplica(*disk); },
                              .addresses = {address}});
    cluster->replicas.push_back(host.id());
    cluster->replica_addresses.push_back(address);
  }
  // Clients are hosts too, so that a partition can leave one on the minority side.
  for (int c = 1; c <= kClients; ++c) {
    Host& host = sim.AddHost({.name = absl::StrCat("client", c),
                              .start = [&sim, cluster, c, options] {
                                RunClient(sim, *cluster, c, options);
                              },
                              .start_daemon = false,
                              .addresses = {absl::StrCat("10.0.0.", 10 + c)}});
    cluster->clients.push_back(host.id());
  }
  sim.Spawn("faults", [&sim, cluster] { RunFaults(sim, *cluster); });
}

std::string FirstLine(absl::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

std::string Summarize(const DemoResult& result, const DemoOptions& options,
                      const Cluster& cluster) {
  const History& history = cluster.history;
  std::string summary = absl::StrFormat(
      "dsim demo: replicated key-value store, %d replicas, %d clients, seed=%d%s\n", kReplicas,
      kClients, result.seed, options.bug ? ", planted bug ON" : "");
  absl::StrAppend(&summary, "faults: ", absl::StrJoin(cluster.faults, ", "), "\n");
  absl::StrAppendFormat(
      &summary, "operations: %d ok (%d put, %d get), %d unavailable\n", result.operations_ok,
      history.Count(Operation::Kind::kPut, true), history.Count(Operation::Kind::kGet, true),
      result.operations_unavailable);
  absl::StrAppendFormat(&summary, "virtual time %.3fs, %d packets, trace fingerprint %016x\n",
                        absl::ToDoubleSeconds(result.virtual_time), result.packets,
                        result.trace_fingerprint);
  absl::StrAppend(&summary,
                  result.status.ok() ? absl::StrCat("PASS seed=", result.seed) : result.fail_line,
                  "\n");
  return summary;
}

}  // namespace

SimulationOptions DemoSimulationOptions(const DemoOptions& options) {
  SimulationOptions sim;
  sim.seed = options.seed;
  // One-way delay of 1 ms plus exponential queueing (mean 2 ms), and 1 packet in 50
  // stuck behind something for 20-80 ms more.
  sim.faults.link.latency =
      LatencyModel::Exponential(absl::Milliseconds(1), absl::Milliseconds(2))
          .WithTail(0.02, absl::Milliseconds(20), absl::Milliseconds(80));
  // Clients finish in a few virtual seconds; far beyond that, something hangs.
  sim.max_virtual_time = absl::Seconds(120);
  sim.trace.keep_all_events = !options.trace_path.empty();
  // Strategy decisions (every latency sample, every task pick) stay out of the trace:
  // their effects are in it anyway, and sweeps run a third faster without them.
  sim.trace.record_decisions = false;
  return sim;
}

DemoResult RunDemoScenario(Simulation& sim, const DemoOptions& options) {
  auto cluster = std::make_shared<Cluster>();
  BuildCluster(sim, cluster, options);
  const RunResult run = sim.Run();  // Until both clients are done.

  DemoResult result;
  result.seed = sim.seed();
  check::CheckResult checked;
  result.status = run.ok() ? CheckEvents(cluster->recorder.history(), &checked) : run.status();
  result.history = cluster->recorder.history();
  if (checked.verdict == check::Verdict::kNotLinearizable) {
    check::HtmlOptions page;
    page.title = absl::StrCat("dsim demo seed ", sim.seed(), options.bug ? " --bug" : "");
    result.html = check::RenderHtml(checked, page);
    sim.AttachArtifact("linearizability.html", result.html);
    sim.AttachArtifact("history.edn", result.history.ToEdn());
  }
  if (!result.status.ok()) {
    result.fail_line =
        absl::StrCat("FAIL seed=", result.seed, " ", FirstLine(result.status.message()));
  }
  result.trace_fingerprint = sim.trace().fingerprint();
  result.virtual_time = sim.Now() - Scheduler::Epoch();
  const History& history = cluster->history;
  result.operations_ok = history.Count(Operation::Kind::kPut, true) +
                         history.Count(Operation::Kind::kGet, true);
  result.operations_unavailable = history.Count(Operation::Kind::kPut, false) +
                                  history.Count(Operation::Kind::kGet, false);
  result.faults = static_cast<int>(cluster->faults.size());
  result.packets = sim.network().stats().packets_sent;
  result.summary = Summarize(result, options, *cluster);
  return result;
}

DemoResult RunDemo(const DemoOptions& options) {
  Simulation sim(DemoSimulationOptions(options));
  DemoResult result = RunDemoScenario(sim, options);
  if (!options.trace_path.empty()) {
    absl::Status written = sim.trace().WriteFile(options.trace_path);
    if (!written.ok() && result.status.ok()) result.status = written;
  }
  return result;
}

std::vector<DemoResult> RunDemoSeeds(const DemoOptions& options, uint64_t seeds, int jobs) {
  if (jobs <= 0) jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  jobs = static_cast<int>(std::min<uint64_t>(jobs, std::max<uint64_t>(seeds, 1)));
  std::vector<DemoResult> results(seeds);
  std::atomic<uint64_t> next{0};
  // Each worker takes the next seed until none is left; each result has its own slot.
  auto work = [&] {
    for (uint64_t i = next++; i < seeds; i = next++) {
      DemoOptions one = options;
      one.seed = options.seed + i;
      results[i] = RunDemo(one);
    }
  };
  std::vector<std::thread> workers;
  for (int j = 1; j < jobs; ++j) workers.emplace_back(work);
  work();
  for (std::thread& worker : workers) worker.join();
  return results;
}

}  // namespace dsim::demo
