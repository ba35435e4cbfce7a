// Simulation: one seeded, deterministic world: a scheduler, its trace, and hosts.
//
// A Simulation is built from one SimulationOptions struct and owns everything a run
// needs. Hosts are simulated processes: each has a start function, runs its tasks in a
// group of its own, and can be paused, resumed, crashed and restarted.
//
// Example:
//
//   dsim::Simulation sim(dsim::SimulationOptions{.seed = 42});
//   dsim::Host& server = sim.AddHost({.name = "server", .start = [] {
//     ServerState state;                       // fresh after every restart
//     for (;;) { state.Tick(); dsim::SleepFor(absl::Milliseconds(10)); }
//   }});
//   sim.Spawn("chaos", [&] {
//     dsim::SleepFor(absl::Seconds(1));
//     sim.Crash(server.id());                  // tasks unwind, destructors run
//     dsim::SleepFor(absl::Seconds(1));
//     sim.Restart(server.id());                // start function runs again
//   });
//   dsim::RunResult result = sim.RunFor(absl::Seconds(5));
//
// Hosts and incarnations. Every incarnation of a host (its first start and each
// restart) runs in a new scheduler group, so a crashed incarnation's tasks, which
// unwind at their next scheduling point, can never be confused with the new one's.
// Host::group() is the current incarnation's group. What survives a crash is what the
// test keeps outside the start function (a simulated disk); everything the start
// function builds is fresh: every host has a simulated disk (disks(), files/file.h)
// that survives; a crash is a power loss for it.
//
// Layers above hook into host lifecycle through HostObserver: they learn of each host
// added, crashed, restarted, paused and resumed, in that order of calls.
//
// The network. A Simulation owns a Network (net/network.h) built from
// SimulationOptions::network, with the fault model of SimulationOptions::faults
// (sim/faults.h) as its LinkModel. A host with `addresses` is a network host: its tasks
// (Host::Spawn, the start function, dsim::Spawn from them) make socket calls
// (sockets/socket.h) as that host. What a host's lifecycle does to its network:
//   - Crash: its sockets vanish without FIN or RST. Peers see what they would see from
//     a real dead machine: an RST when their packets reach it (or its restarted, empty
//     stack), silence while it is partitioned away. Its tasks unwind; socket calls they
//     make while unwinding (close() in destructors) fail with EPERM and touch nothing.
//   - Restart: a fresh socket layer (no sockets, all ports free), the same addresses.
//   - Pause: tasks frozen, timers deferred, and packets to the host held until Resume.
// Faults driven from the test: Partition/Heal, Hold/Release/InFlight, InjectReset,
// SetBuggify (below).
//
// Example with a network:
//
//   dsim::SimulationOptions options{.seed = 3};
//   options.faults.link.latency = dsim::LatencyModel::Uniform(absl::Microseconds(100),
//                                                             absl::Milliseconds(2));
//   dsim::Simulation sim(options);
//   dsim::Host& a = sim.AddHost({.name = "a", .start = ServeForever,
//                                .addresses = {"10.0.0.1"}});
//   dsim::Host& b = sim.AddHost({.name = "b", .start = Client, .addresses = {"10.0.0.2"}});
//   sim.Spawn("chaos", [&] {
//     dsim::PartitionId cut = sim.Partition({a.id()}, {b.id()});
//     dsim::SleepFor(absl::Seconds(2));        // a's streams to b stall, intact
//     sim.Heal(cut);                           // ... and resume here
//   });
//
// Online checks. Check invariants while the run is going, not only after RunFor: the
// run stops at the step that broke the invariant, the report says "invariant
// violated: <name>" and shows the events around that step, and a shrunk schedule ends
// there too (shorter and easier to read than one that runs on to the end).
//
//   Cluster& cluster = sim.Make<Cluster>(sim);   // owned by sim: outlives its tasks
//   sim.Invariant("at most one leader", [&] { return cluster.Leaders() <= 1; });
//   ...
//   // Inside a task or checker, at the moment it sees the bug:
//   if (reply.value < last_seen) dsim::Fail(absl::StrCat("stale read: ", reply.value));
//
// State the tasks use. Tasks may still be blocked when a run returns; they unwind when
// the simulation is destroyed, and their destructors (lock guards, sockets, CondVar
// waits) touch the objects they use. Objects made with Simulation::Make live until
// every task has unwound, so state built in a SeedSweep body is safe to use from tasks;
// a plain local of the body is destroyed when the body returns, before the tasks that
// use it unwind.
//
// Threading. A Simulation and everything in it belong to one OS thread at a time.
// Several simulations may run on different threads at once: they share no state.
#ifndef DSIM_SIM_SIMULATION_H_
#define DSIM_SIM_SIMULATION_H_

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "disk/disks.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"
#include "scheduler/strategy.h"
#include "sim/clock_faults.h"
#include "sim/coverage.h"
#include "sim/faults.h"
#include "net/network.h"
#include "sim/swarm.h"
#include "sim/trace.h"

namespace dsim {

class Simulation;

// A host's identity: stable across crashes and restarts. Hosts are numbered from 1 in
// the order they are added.
using HostId = uint32_t;
inline constexpr HostId kNoHost = 0;

struct SimulationOptions {
  uint64_t seed = 1;
  // The scheduling strategy, as a MakeStrategy spec ("random", "roundrobin", ...),
  // built with `seed`. Ignored when `strategy_object` is set.
  std::string strategy = "random";
  // A ready-made strategy (a replay, a custom explorer). Not shared between runs.
  std::shared_ptr<Strategy> strategy_object;
  // A run stops with RunOutcome::kStepLimit after this many steps; 0 means no limit.
  uint64_t max_steps = 0;
  // A run stops with RunOutcome::kTimeLimit before the clock passes this much virtual
  // time after Scheduler::Epoch().
  absl::Duration max_virtual_time = absl::InfiniteDuration();
  // What the simulation's trace keeps (it always fingerprints every event).
  TraceOptions trace;
  // The simulated network (latencies, buffers, TCP timers) and its fault model. If
  // network.link_model is set, it replaces the fault model's per-packet decisions
  // (faults.link and faults.overrides are then unused; buggify still applies).
  NetworkOptions network;
  FaultOptions faults;
  // DSIM_BUGGIFY code sites (sim/buggify.h): on by default, FoundationDB's odds.
  BuggifySiteOptions buggify_sites;
  // Host clocks that disagree with true time (sim/clock_faults.h). Off by default.
  ClockFaultOptions clocks;
};

enum class HostState : uint8_t { kRunning, kPaused, kCrashed };
const char* HostStateName(HostState state);

struct HostOptions {
  // Shown in traces and reports. Need not be unique, but should be.
  std::string name;
  // Runs as the host's first task, "<name>/start", at AddHost and after every Restart.
  std::function<void()> start;
  // Whether the start task is a daemon: a server loop that never returns should not
  // keep Simulation::Run() from completing.
  bool start_daemon = true;
  // IP addresses ("10.0.0.1", "fd00::1"). Every host is on the network (loopback is
  // implicit) and has a descriptor table; a host without addresses reaches only itself.
  std::vector<std::string> addresses;
};

// A simulated process. Owned by its Simulation; references stay valid as long as it.
class Host {
 public:
  HostId id() const { return id_; }
  const std::string& name() const { return options_.name; }
  HostState state() const { return state_; }
  // The current incarnation's scheduler group (every restart gets a new one).
  GroupId group() const { return group_; }
  // 1 for the first start, 2 after the first restart, ...
  int incarnation() const { return incarnation_; }
  // The host on the network (every host has one; without addresses, loopback only).
  NetworkHost* network_host() const { return network_host_; }

  // Spawns a task on this host (in the current incarnation's group). Misuse on a
  // crashed host.
  TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options = {});

 private:
  friend class Simulation;
  Host(Simulation* simulation, HostId id, HostOptions options)
      : simulation_(simulation), id_(id), options_(std::move(options)) {}

  Simulation* simulation_;
  HostId id_;
  HostOptions options_;
  HostState state_ = HostState::kRunning;
  GroupId group_ = kNoGroup;
  int incarnation_ = 0;
  NetworkHost* network_host_ = nullptr;
};

// Hooks for layers that keep per-host state (the network: addresses, sockets, links).
// Calls are synchronous, in registration order, from whoever changes the host (a task,
// a timer callback, or the test's thread between runs). They must not block.
class HostObserver {
 public:
  virtual ~HostObserver() = default;
  // After the host's first incarnation has been set up and its start task spawned.
  virtual void OnHostAdded(Host& /*host*/) {}
  // After the tasks of `dead_group` were told to unwind (they unwind at their next
  // scheduling point) and its timers were cancelled. host.state() is kCrashed.
  virtual void OnHostCrashed(Host& /*host*/, GroupId /*dead_group*/) {}
  // After the new incarnation's group exists, before its start task is spawned, so
  // state for the new incarnation (a fresh socket table) can be ready when it runs.
  virtual void OnHostRestarting(Host& /*host*/) {}
  virtual void OnHostPaused(Host& /*host*/) {}
  virtual void OnHostResumed(Host& /*host*/) {}
};

// Fails the current run at once, as a broken invariant: the run stops with
// RunOutcome::kTaskFailed and its status reads "invariant violated: <message>" (the
// report adds the task and the call site). From a task it then throws
// InvariantViolation, so the task goes no further (let it propagate: a catch (...)
// that swallows it keeps the task running, though the run is already failed). From a
// timer callback it only fails the run. Outside a run (in a SeedSweep body between
// runs) it is misuse: return an error status from the body instead. Only the first
// failure of a run is reported.
void Fail(absl::string_view message, SourceLocation where = SourceLocation::Current());

// What dsim::Fail throws inside a task to stop it.
class InvariantViolation : public std::exception {
 public:
  explicit InvariantViolation(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

class Simulation {
 public:
  // Builds the scheduler (misuse error on an invalid strategy spec; validate user
  // input with MakeStrategy first), attaches the trace, and registers this simulation
  // in the scheduler's kSimulationExtension slot.
  explicit Simulation(SimulationOptions options = {});
  // Unwinds every task that is still alive (destructors run), then tears down.
  ~Simulation();
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  // The simulation whose scheduler runs on this thread, or null (outside any run).
  static Simulation* Current();

  uint64_t seed() const { return options_.seed; }
  const SimulationOptions& options() const { return options_; }
  // e.g. "random(seed=7)", for failure reports.
  std::string strategy_description() const;
  Scheduler& scheduler() { return scheduler_; }
  Trace& trace() { return *trace_; }
  const Trace& trace() const { return *trace_; }
  // Random values for the test and its models, drawn through the strategy (recorded,
  // replayable, part of the trace).
  BitSource& random() { return scheduler_.random(); }
  absl::Time Now() const { return scheduler_.Now(); }

  // ---- Tasks and runs --------------------------------------------------------------

  // A task outside any host (a test driver, a chaos monkey). From a task, prefer
  // dsim::Spawn, which keeps the caller's host.
  TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options = {});

  // As Scheduler::Run/RunFor/RunUntil. The first result that is not ok() (deadlock,
  // limit, task failure) is also kept in first_failed_run(), so a harness can fail a
  // test whose body forgot to look.
  RunResult Run();
  RunResult RunFor(absl::Duration duration);
  RunResult RunUntil(absl::Time deadline);
  const std::optional<RunResult>& first_failed_run() const { return first_failed_run_; }
  // The trace's event count when the first failed run ended: where reports look.
  uint64_t first_failure_event() const { return first_failure_event_; }
  // The last trace events up to the first failure (a violation or the end of the first
  // failed run), kept in case the trace drops them before a report is written.
  const std::vector<TraceEvent>& events_before_failure() const { return events_before_failure_; }
  // The live tasks, each with the name of its host (TaskReport::host).
  std::vector<TaskReport> LiveTaskReports() const;
  const std::optional<RunResult>& last_run() const { return last_run_; }

  // Emits an annotation into the trace (and any other listener), on behalf of `group`:
  // by default the calling task's host (its group), or no host outside tasks. Pass
  // kNoGroup to annotate on behalf of the simulation itself.
  void Annotate(absl::string_view category, absl::string_view detail,
                std::optional<GroupId> group = std::nullopt);

  // ---- Online checks and owned state -------------------------------------------------

  // Checks `holds` before every step (each time a task is about to run) and when each
  // run returns; the first time it returns false the run fails with "invariant
  // violated: <name>" and stops at the next scheduling point. The predicate runs
  // outside tasks: it must not block, spawn or draw random values. Checked until the
  // simulation is destroyed.
  void Invariant(std::string name, std::function<bool()> holds);
  // Checks every invariant now; false (and the run fails) if one is violated.
  bool CheckInvariants();
  // The first invariant violation or dsim::Fail message of this simulation, or "".
  const std::string& violation() const { return violation_; }
  // The trace event index at which it happened (its "check.violated" annotation).
  uint64_t violation_event() const { return violation_event_; }
  // Fails the current run with "invariant violated: <message>", as dsim::Fail does,
  // without throwing. Outside a run, records the failure for the next run's result.
  void FailRun(absl::string_view message, SourceLocation where = SourceLocation());

  // Builds a T owned by the simulation and returns it. It is destroyed when the
  // simulation is, after every task has unwound (in reverse order of Make), so tasks
  // may use it to the end, destructors included. This is how a SeedSweep body keeps
  // the state its tasks use:
  //   Cluster& cluster = sim.Make<Cluster>(sim);
  template <typename T, typename... Args>
  T& Make(Args&&... args) {
    auto object = std::make_unique<T>(std::forward<Args>(args)...);
    T& made = *object;
    owned_.push_back(OwnedObject(object.release(), [](void* p) { delete static_cast<T*>(p); }));
    return made;
  }

  // Attaches a file to this run's failure report: when the seed fails, the harness
  // (SeedSweep) saves it next to the trace as <test>.seed-<n>.<name> and prints its
  // path. For a checker's page, a history, a dump. `name` is a file-name suffix such
  // as "linearizability.html" (no '/'); attaching a name again replaces the contents.
  struct Artifact {
    std::string name;
    std::string contents;
  };
  void AttachArtifact(std::string name, std::string contents);
  const std::vector<Artifact>& artifacts() const { return artifacts_; }

  // ---- Hosts -------------------------------------------------------------------------

  // Adds a host and spawns its start task. Callable before a run or from a task.
  Host& AddHost(HostOptions options);
  Host& host(HostId id);
  const Host& host(HostId id) const;
  size_t host_count() const { return hosts_.size(); }
  // The host whose task is running, or null: a task outside hosts, no task, or a task
  // of a crashed incarnation that is still unwinding.
  Host* CurrentHost();

  // Crashes a host: every task of its current incarnation unwinds (destructors run)
  // and its timers are cancelled. Returns false if it was already crashed. A host may
  // crash itself: the calling task unwinds at its next scheduling point.
  bool Crash(HostId id);
  // Starts a new incarnation: a new group, and the start function in a fresh task.
  // Crashes the host first if it is not crashed (a reboot). Returns the new group.
  GroupId Restart(HostId id);
  // Freezes a running host: its tasks are not scheduled and its timers come due only
  // after Resume. Returns false unless the host was running.
  bool Pause(HostId id);
  // Returns false unless the host was paused.
  bool Resume(HostId id);

  // Observers are not owned and must outlive the simulation or be removed.
  void AddHostObserver(HostObserver* observer);
  void RemoveHostObserver(HostObserver* observer);

  // ---- Network and faults ------------------------------------------------------------
  // Callable before a run, between runs, or from a task or timer callback. Hosts
  // without addresses are ignored by Partition and are misuse elsewhere.

  Network& network() { return *network_; }
  // The fault model, or null when NetworkOptions::link_model replaced it.
  FaultLinkModel* fault_model() { return fault_model_.get(); }

  // Cuts the links between every host of side_a and every host of side_b (only
  // a -> b when one_way). Established TCP streams across the cut stall, their segments
  // held, and resume intact after Heal, unless a deadline or keepalive of the user ends
  // them first; datagrams across it are lost. Annotated "fault.partition".
  PartitionId Partition(std::vector<HostId> side_a, std::vector<HostId> side_b,
                        bool one_way = false);
  // Ends a partition. Returns false if it was healed already or never existed.
  bool Heal(PartitionId partition);
  void HealAll();
  // Holds every packet from `from` to `to` from now on (TCP and UDP, nothing dropped);
  // Release lets them go on in order. Holds nest. Annotated "fault.hold".
  void Hold(HostId from, HostId to);
  bool Release(HostId from, HostId to);
  // The messages held or in flight from `from` to `to`, in delivery order.
  std::vector<InFlightMessage> InFlight(HostId from, HostId to);
  // Resets the established TCP connections between a and b: both ends see ECONNRESET.
  // Returns how many sockets were reset. Annotated "fault.reset".
  int InjectReset(HostId a, HostId b);
  // The host's clock (scheduler/clock.h), created on first use: reading it from a test
  // is how to compare a host's time with true time (sim.Now()).
  HostClock& clock(HostId id);
  // Steps the host's wall clock by `offset` (an NTP step; negative goes back).
  // Annotated "fault.clock.jump".
  void StepClock(HostId id, absl::Duration offset);
  // Sets the host's drift from now on. Annotated "fault.clock.skew".
  void SetClockDrift(HostId id, int64_t drift_ppb);
  // Stops injecting faults for the rest of the run (the liveness phase,
  // sim/liveness.h): the fault model delivers every packet at the base latency,
  // network and code-site buggify stop, scheduled clock jumps and the swarm's swizzle
  // stop. Partitions, holds, pauses and crashes already in place stay: heal them.
  void StopFaults();
  bool faults_stopped() const { return faults_stopped_; }
  // The seed's swarm draw (sim/swarm.h), "" without faults.swarm.
  const std::string& swarm_description() const { return swarm_description_; }

  // Turns buggify on or off for the rest of the run (see FaultOptions::buggify).
  void SetBuggify(bool enabled);
  bool buggify() const;
  // Replaces the faults of one directed link at run time.
  void SetLinkFaults(HostId from, HostId to, LinkFaults link);

  // ---- Exploration -------------------------------------------------------------------

  // What this run reached: assertion sites, BUGGIFY sites, fault kinds (sim/coverage.h).
  CoverageRecorder& coverage() { return *coverage_; }

  // ---- Disks -------------------------------------------------------------------------
  // Every host has a disk (disk/disk.h) that survives its crashes and restarts; its
  // tasks reach it through the file calls (files/file.h). A host Crash is a power
  // loss: the disk's non-durable state is resolved as the seed decides. Disk ids equal
  // host ids.

  Disks& disks() { return *disks_; }
  Disk& disk(HostId id);
  // Erases the host's disk ("fault.disk.wipe"). Typically while the host is crashed.
  void WipeDisk(HostId id);
  // Exchanges two hosts' disks ("fault.disk.swap"): a restarted host comes back with
  // another's disk. Both should be crashed.
  void SwapDisks(HostId a, HostId b);
  // Replaces the storage faults of one host's disk at run time.
  void SetStorageFaults(HostId id, const StorageFaults& faults);

 private:
  using OwnedObject = std::unique_ptr<void, void (*)(void*)>;
  class InvariantChecker;
  static std::shared_ptr<Strategy> BuildStrategy(const SimulationOptions& options);
  RunResult Record(RunResult result);
  void NameHosts(std::vector<TaskReport>& tasks) const;
  void KeepEventsBeforeFailure();
  void StartIncarnation(Host& host);
  Host& HostOrDie(HostId id, const char* operation);
  NetworkHost& NetworkHostOrDie(HostId id, const char* operation);
  class NetworkBridge;

  SimulationOptions options_;
  std::shared_ptr<Strategy> strategy_;  // Also held by scheduler_.
  Scheduler scheduler_;
  std::unique_ptr<Trace> trace_;
  std::unique_ptr<CoverageRecorder> coverage_;
  // After the scheduler (the network's timers and extension slot live there).
  std::unique_ptr<Network> network_;
  std::shared_ptr<FaultLinkModel> fault_model_;
  std::unique_ptr<NetworkBridge> network_bridge_;
  std::unique_ptr<Disks> disks_;  // Disk ids are host ids.
  std::vector<std::unique_ptr<Host>> hosts_;  // hosts_[id - 1].
  // Host clocks by host id (index id - 1; null until first needed).
  std::vector<std::unique_ptr<HostClock>> clocks_;
  bool faults_stopped_ = false;
  std::string swarm_description_;
  void SetUpClock(Host& host);
  void ScheduleClockJumps(Host& host);
  std::vector<HostId> host_of_group_;         // By GroupId; kNoHost for others.
  std::vector<HostObserver*> observers_;
  GroupId last_group_ = kNoGroup;
  std::optional<RunResult> first_failed_run_;
  std::vector<Artifact> artifacts_;
  std::optional<RunResult> last_run_;
  std::unique_ptr<InvariantChecker> invariants_;
  std::string violation_;
  uint64_t violation_event_ = 0;
  uint64_t first_failure_event_ = 0;
  std::vector<TraceEvent> events_before_failure_;
  std::vector<OwnedObject> owned_;  // Destroyed after the tasks unwind, newest first.
};

// What RunOnHost builds: the simulation, and the one host the body runs on.
struct RunOnHostOptions {
  SimulationOptions simulation;
  std::string host_name = "host";
  std::vector<std::string> addresses = {"10.0.0.1"};
};

// Runs `body` as the start task of a fresh host (named and addressed as `options` say,
// so its socket calls work) in a fresh simulation, until it returns and every other
// non-daemon task it spawned has finished; returns the run's result. A failed
// EXPECT in the body is a GoogleTest failure as usual; a dsim::Fail, an exception, a
// deadlock or a limit is in the result. A socket test in three lines:
//
//   dsim::RunResult result = dsim::RunOnHost([] {
//     auto listener = dsim::TcpListener::Listen("10.0.0.1", 80);   // sockets/tcp.h
//     dsim::Spawn("client", [] { auto s = dsim::TcpStream::Connect("10.0.0.1", 80); ... });
//     EXPECT_TRUE(listener->Accept().ok());   // any blocking socket code
//   });
//   EXPECT_TRUE(result.ok()) << result.ToString();
RunResult RunOnHost(std::function<void()> body, RunOnHostOptions options = {});

}  // namespace dsim

#endif  // DSIM_SIM_SIMULATION_H_
