#include "sim/simulation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "scheduler/strategies.h"

namespace dsim {

const char* HostStateName(HostState state) {
  switch (state) {
    case HostState::kRunning: return "running";
    case HostState::kPaused: return "paused";
    case HostState::kCrashed: return "crashed";
  }
  return "?";
}

TaskHandle Host::Spawn(std::string name, TaskBody body, SpawnOptions options) {
  DSIM_MISUSE(state_ != HostState::kCrashed, "Spawn(\"", name, "\") on crashed host \"",
              options_.name, "\"; Restart it first");
  options.group = group_;
  return simulation_->scheduler().Spawn(std::move(name), std::move(body), options);
}

// ---- Construction ------------------------------------------------------------------

std::shared_ptr<Strategy> Simulation::BuildStrategy(const SimulationOptions& options) {
  if (options.strategy_object != nullptr) return options.strategy_object;
  absl::StatusOr<std::shared_ptr<Strategy>> strategy =
      MakeStrategy(options.strategy, options.seed);
  DSIM_MISUSE(strategy.ok(), "SimulationOptions::strategy: ", strategy.status().message());
  return *std::move(strategy);
}

// Keeps the network's hosts in step with the simulation's: addresses on AddHost, a
// detached stack on Crash, the new group on Restart, held traffic during a Pause.
class Simulation::NetworkBridge final : public HostObserver {
 public:
  explicit NetworkBridge(Network* network) : network_(network) {}

  void OnHostAdded(Host& host) override {
    // Every host is on the network, if only through loopback: its descriptor table
    // (sockets, pipes, disk files) lives in its stack.
    host.network_host_ = &network_->AddHost(host.name(), host.options_.addresses, host.group());
  }
  void OnHostCrashed(Host& host, GroupId dead_group) override {
    if (host.network_host_ == nullptr) return;
    DSIM_CHECK(host.network_host_->group() == dead_group ||
               host.network_host_->group() == kNoGroup);
    network_->DetachHost(*host.network_host_);
  }
  void OnHostRestarting(Host& host) override {
    if (host.network_host_ != nullptr) network_->BindGroup(*host.network_host_, host.group());
  }
  void OnHostPaused(Host& host) override {
    if (host.network_host_ != nullptr) network_->PauseHost(*host.network_host_);
  }
  void OnHostResumed(Host& host) override {
    if (host.network_host_ != nullptr) network_->ResumeHost(*host.network_host_);
  }

 private:
  Network* network_;
};

// Checks the simulation's invariants before every step: a dispatch means the previous
// step's effects are all in place.
class Simulation::InvariantChecker final : public SchedulerListener {
 public:
  explicit InvariantChecker(Simulation* sim) : sim_(sim) {}

  void Add(std::string name, std::function<bool()> holds) {
    invariants_.push_back({std::move(name), std::move(holds)});
  }
  // False, after failing the run, at the first invariant that does not hold.
  bool CheckAll() {
    if (checking_ || !sim_->violation_.empty()) return sim_->violation_.empty();
    checking_ = true;  // A predicate's own annotations must not re-enter.
    bool ok = true;
    for (const auto& [name, holds] : invariants_) {
      if (!holds()) {
        sim_->FailRun(name);
        ok = false;
        break;
      }
    }
    checking_ = false;
    return ok;
  }
  void OnDispatch(const TaskView&) override { CheckAll(); }

 private:
  Simulation* sim_;
  std::vector<std::pair<std::string, std::function<bool()>>> invariants_;
  bool checking_ = false;
};

Simulation::Simulation(SimulationOptions options)
    : options_(std::move(options)),
      strategy_(BuildStrategy(options_)),
      scheduler_(SchedulerOptions{.seed = options_.seed,
                                  .strategy = strategy_,
                                  .max_steps = options_.max_steps,
                                  .max_virtual_time = options_.max_virtual_time}),
      trace_(std::make_unique<Trace>(&scheduler_, options_.trace)) {
  scheduler_.SetExtension(Scheduler::kSimulationExtension, this);
  internal::SwarmDraw swarm;
  if (options_.faults.swarm.enabled) {
    swarm = internal::DrawSwarm(scheduler_, options_);
    swarm_description_ = swarm.description;
  }
  options_.clocks.Validate();
  coverage_ = std::make_unique<CoverageRecorder>(&scheduler_, options_.buggify_sites);
  // Coverage counts fault kinds only: it hears "fault.*" annotations and nothing else.
  scheduler_.AddAnnotationListener(coverage_.get(), "fault.");
  host_of_group_.push_back(kNoHost);  // Group 0 is no host's.
  // clock_settime on a host (//posix) steps its clock as StepClock does.
  scheduler_.SetClockStepper([this](GroupId group, absl::Duration offset) {
    if (group >= host_of_group_.size() || host_of_group_[group] == kNoHost) return false;
    StepClock(host_of_group_[group], offset);
    return true;
  });
  network_ = std::make_unique<Network>(&scheduler_, options_.network);
  if (options_.network.link_model == nullptr) {
    fault_model_ = std::make_shared<FaultLinkModel>(network_.get(), options_.faults);
    network_->set_link_model(fault_model_);
  }
  network_->set_buggify(options_.faults.buggify_options());
  network_bridge_ = std::make_unique<NetworkBridge>(network_.get());
  AddHostObserver(network_bridge_.get());  // First: others see the network up to date.
  disks_ = std::make_unique<Disks>(&scheduler_);
  if (swarm.swizzle) {
    Spawn("swarm/swizzle", [this, swarm] {
      dsim::SleepFor(swarm.swizzle_start);
      if (!faults_stopped_) SwizzleClog(*this, swarm.swizzle_options);
    }, SpawnOptions{.daemon = true});
  }
}

void Simulation::StopFaults() {
  faults_stopped_ = true;
  if (fault_model_ != nullptr) fault_model_->StopFaults();
  SetBuggify(false);
  coverage_->StopBuggify();
  Annotate("liveness", "faults stopped");
}

Simulation::~Simulation() {
  // Tasks may use anything the simulation owns in their destructors: unwind them all
  // while everything is still alive.
  scheduler_.Shutdown();
  if (invariants_ != nullptr) scheduler_.RemoveListener(invariants_.get());
  // State the tasks used dies only now that they have unwound, newest first.
  while (!owned_.empty()) owned_.pop_back();
  trace_->Detach();
  scheduler_.RemoveListener(coverage_.get());
  RemoveHostObserver(network_bridge_.get());
  disks_.reset();
  network_.reset();  // Before the scheduler, whose extension slot it holds.
  scheduler_.SetExtension(Scheduler::kSimulationExtension, nullptr);
}

Simulation* Simulation::Current() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return nullptr;
  return static_cast<Simulation*>(scheduler->extension(Scheduler::kSimulationExtension));
}

std::string Simulation::strategy_description() const {
  return strategy_->Describe();
}

// ---- Tasks and runs ----------------------------------------------------------------

TaskHandle Simulation::Spawn(std::string name, TaskBody body,
                             SpawnOptions options) {
  return scheduler_.Spawn(std::move(name), std::move(body), options);
}

RunResult Simulation::Record(RunResult result) {
  // The last step's effects, which no later dispatch will check.
  if (result.ok() && invariants_ != nullptr && !invariants_->CheckAll()) {
    result.outcome = RunOutcome::kTaskFailed;
    result.failed_check = true;
    result.failure = absl::StrCat("invariant violated: ", violation_);
    result.failed_task = kNoTask;
    result.failed_task_name.clear();
  }
  NameHosts(result.tasks);
  if (!result.ok() && !first_failed_run_.has_value()) {
    first_failed_run_ = result;
    first_failure_event_ = trace_->event_count();
    if (violation_.empty()) KeepEventsBeforeFailure();
  }
  last_run_ = result;
  return result;
}

void Simulation::NameHosts(std::vector<TaskReport>& tasks) const {
  for (TaskReport& task : tasks) {
    if (task.group >= host_of_group_.size() || host_of_group_[task.group] == kNoHost) continue;
    const Host& host = *hosts_[host_of_group_[task.group] - 1];
    task.host = host.group_ == task.group
                    ? host.name()
                    : absl::StrCat(host.name(), " (crashed incarnation)");
  }
}

void Simulation::KeepEventsBeforeFailure() {
  constexpr size_t kKept = 64;  // More than any report shows.
  events_before_failure_ = trace_->LastEvents(kKept);  // Formats only those.
}

std::vector<TaskReport> Simulation::LiveTaskReports() const {
  std::vector<TaskReport> tasks = scheduler_.LiveTaskReports();
  NameHosts(tasks);
  return tasks;
}

RunResult Simulation::Run() { return Record(scheduler_.Run()); }

RunResult Simulation::RunFor(absl::Duration duration) {
  return Record(scheduler_.RunFor(duration));
}

RunResult Simulation::RunUntil(absl::Time deadline) {
  return Record(scheduler_.RunUntil(deadline));
}

void Simulation::Annotate(absl::string_view category, absl::string_view detail,
                          std::optional<GroupId> group) {
  const GroupId on_behalf_of =
      group.has_value() ? *group : (scheduler_.InTask() ? scheduler_.CurrentGroup() : kNoGroup);
  scheduler_.Annotate(Annotation{.category = category, .detail = detail, .group = on_behalf_of});
}

// ---- Online checks -----------------------------------------------------------------

void Simulation::Invariant(std::string name, std::function<bool()> holds) {
  DSIM_MISUSE(holds != nullptr, "Simulation::Invariant(\"", name, "\") without a predicate");
  if (invariants_ == nullptr) {
    invariants_ = std::make_unique<InvariantChecker>(this);
    scheduler_.AddListener(invariants_.get());
  }
  invariants_->Add(std::move(name), std::move(holds));
}

bool Simulation::CheckInvariants() {
  return invariants_ == nullptr || invariants_->CheckAll();
}

void Simulation::FailRun(absl::string_view message, SourceLocation where) {
  if (!violation_.empty()) return;  // The first failure is the one to report.
  violation_ = std::string(message);
  const std::string at = where.known() ? absl::StrCat(" at ", where.ToString()) : "";
  // Marks the moment in the trace: reports show the events around it.
  violation_event_ = trace_->event_count();
  Annotate("check.violated", absl::StrCat(message, at));
  KeepEventsBeforeFailure();
  const std::string failure = absl::StrCat("invariant violated: ", message, at);
  if (Scheduler::Current() == &scheduler_) {
    scheduler_.Fail(failure);
    return;
  }
  // Between runs: the failure belongs to the simulation's result all the same.
  RunResult result;
  result.outcome = RunOutcome::kTaskFailed;
  result.end_time = Now();
  result.failed_check = true;
  result.failure = failure;
  Record(std::move(result));
}

void Fail(absl::string_view message, SourceLocation where) {
  Simulation* sim = Simulation::Current();
  Scheduler* scheduler = Scheduler::Current();
  DSIM_MISUSE(scheduler != nullptr, "dsim::Fail(\"", message,
              "\") outside a run; in a SeedSweep body, return an error status instead");
  if (sim != nullptr) {
    sim->FailRun(message, where);
  } else {
    scheduler->Fail(absl::StrCat("invariant violated: ", message,
                                 where.known() ? absl::StrCat(" at ", where.ToString()) : ""));
  }
  if (scheduler->InTask() && std::uncaught_exceptions() == 0) throw InvariantViolation(absl::StrCat("invariant violated: ", message));
}

void Simulation::AttachArtifact(std::string name, std::string contents) {
  DSIM_MISUSE(!name.empty() && name.find('/') == std::string::npos,
              "AttachArtifact: the name must be a file-name suffix without '/', got \"", name,
              "\"");
  for (Artifact& artifact : artifacts_) {
    if (artifact.name == name) {
      artifact.contents = std::move(contents);
      return;
    }
  }
  artifacts_.push_back({std::move(name), std::move(contents)});
}

// ---- Hosts -------------------------------------------------------------------------

Host& Simulation::AddHost(HostOptions options) {
  DSIM_MISUSE(options.start != nullptr, "AddHost(\"", options.name,
              "\") without a start function");
  const auto id = static_cast<HostId>(hosts_.size() + 1);
  if (options.name.empty()) options.name = absl::StrCat("host-", id);
  hosts_.push_back(std::unique_ptr<Host>(new Host(this, id, std::move(options))));
  Host& host = *hosts_.back();
  const DiskId disk = disks_->AddDisk(host.name());
  DSIM_CHECK(disk == id, "disk ids are host ids");
  disks_->disk(disk).set_faults(options_.faults.StorageFor(host.name()));
  clocks_.emplace_back();
  if (options_.clocks.any()) SetUpClock(host);
  StartIncarnation(host);
  for (HostObserver* observer : observers_) observer->OnHostAdded(host);
  if (options_.clocks.any()) ScheduleClockJumps(host);
  return host;
}

// ---- Host clocks -------------------------------------------------------------------

namespace {

// Zig-zag: 0 -> 0, 1 -> +1, 2 -> -1, 3 -> +2, ...: a decision whose 0 means "none".
int64_t ZigZag(uint64_t value) {
  return (value & 1) != 0 ? static_cast<int64_t>((value + 1) / 2)
                          : -static_cast<int64_t>(value / 2);
}

// A signed value in [-max, max] drawn as one zig-zag decision (0 when max is 0).
int64_t SignedChoice(Scheduler& scheduler, int64_t max, const char* label) {
  if (max <= 0) return 0;
  return ZigZag(scheduler.ChooseValue(2 * static_cast<uint64_t>(max) + 1, label));
}

}  // namespace

HostClock& Simulation::clock(HostId id) {
  Host& host = HostOrDie(id, "clock");
  std::unique_ptr<HostClock>& clock = clocks_[id - 1];
  if (clock == nullptr) {
    // Booted at the epoch: its monotonic clock continues the true one it replaces.
    clock = std::make_unique<HostClock>(Scheduler::Epoch());
    if (host.group_ != kNoGroup && host.state_ != HostState::kCrashed) {
      scheduler_.SetGroupClock(host.group_, clock.get());
    }
  }
  return *clock;
}

// Draws the host's skew from the options (fixed, then random) when it is added.
void Simulation::SetUpClock(Host& host) {
  const ClockFaultOptions& options = options_.clocks;
  HostClock& clock = this->clock(host.id_);
  absl::Duration offset = absl::ZeroDuration();
  int64_t drift_ppb = 0;
  for (const HostClockSkew& skew : options.fixed) {
    if (skew.host != host.name()) continue;
    offset += skew.offset;
    drift_ppb += skew.drift_ppm * 1000;
  }
  offset += absl::Nanoseconds(SignedChoice(
      scheduler_, absl::ToInt64Nanoseconds(options.random_offset_max), "fault.clock.offset"));
  drift_ppb += SignedChoice(scheduler_, options.random_drift_ppm_max * 1000, "fault.clock.drift");
  if (offset == absl::ZeroDuration() && drift_ppb == 0) return;
  clock.Step(Now(), offset);
  clock.SetDrift(Now(), drift_ppb);
  Annotate("fault.clock.skew",
           absl::StrCat(host.name(), " clock ", FormatClockSkew(offset, drift_ppb)));
}

// Seed-chosen wall-clock steps for a new host, as timers.
void Simulation::ScheduleClockJumps(Host& host) {
  const ClockFaultOptions& options = options_.clocks;
  if (options.jumps_max <= 0) return;
  const uint64_t jumps =
      scheduler_.ChooseValue(static_cast<uint64_t>(options.jumps_max) + 1, "fault.clock.jumps");
  const int64_t window_ns = std::max<int64_t>(1, absl::ToInt64Nanoseconds(options.jump_window));
  const int64_t max_ns = absl::ToInt64Nanoseconds(options.jump_max);
  for (uint64_t i = 0; i < jumps; ++i) {
    const absl::Time when = Now() + absl::Nanoseconds(1 + static_cast<int64_t>(
                                                              random().Below(window_ns)));
    const int64_t size_ns = static_cast<int64_t>(random().Below(2 * max_ns + 1)) - max_ns;
    const HostId id = host.id_;
    scheduler_.AddTimer(when, [this, id, size_ns] {
      if (!faults_stopped_) StepClock(id, absl::Nanoseconds(size_ns));
    });
  }
}

void Simulation::StepClock(HostId id, absl::Duration offset) {
  HostClock& clock = this->clock(id);
  clock.Step(Now(), offset);
  Host& host = *hosts_[id - 1];
  scheduler_.GroupClockChanged(host.group_);  // Absolute CLOCK_REALTIME waits move.
  Annotate("fault.clock.jump",
           absl::StrCat(host.name(), " clock steps ", offset < absl::ZeroDuration() ? "" : "+",
                        absl::FormatDuration(offset)),
           host.state_ == HostState::kCrashed ? kNoGroup : host.group_);
}

void Simulation::SetClockDrift(HostId id, int64_t drift_ppb) {
  HostClock& clock = this->clock(id);
  clock.SetDrift(Now(), drift_ppb);
  scheduler_.GroupClockChanged(hosts_[id - 1]->group_, /*stepped=*/false);
  Annotate("fault.clock.skew",
           absl::StrCat(hosts_[id - 1]->name(), " clock ",
                        FormatClockSkew(clock.OffsetAt(Now()), drift_ppb)));
}

// Gives the host a fresh group and spawns its start function there.
void Simulation::StartIncarnation(Host& host) {
  host.group_ = ++last_group_;
  host.state_ = HostState::kRunning;
  ++host.incarnation_;
  DSIM_CHECK(host_of_group_.size() == host.group_, "groups are handed out in order");
  host_of_group_.push_back(host.id_);
  disks_->BindGroup(host.group_, host.id_);
  trace_->NameGroup(host.group_, host.incarnation_ == 1
                                     ? host.name()
                                     : absl::StrCat(host.name(), " #", host.incarnation_));
  if (HostClock* clock = clocks_[host.id_ - 1].get(); clock != nullptr) {
    if (host.incarnation_ > 1) clock->Reboot(Now());  // CLOCK_MONOTONIC starts again.
    scheduler_.SetGroupClock(host.group_, clock);
  }
  if (host.incarnation_ > 1) {
    for (HostObserver* observer : observers_) observer->OnHostRestarting(host);
  }
  host.Spawn(absl::StrCat(host.name(), "/start"), host.options_.start,
             SpawnOptions{.daemon = host.options_.start_daemon});
}

Host& Simulation::host(HostId id) { return HostOrDie(id, "host"); }

const Host& Simulation::host(HostId id) const {
  DSIM_MISUSE(id != kNoHost && id <= hosts_.size(), "no host with id ", id);
  return *hosts_[id - 1];
}

Host& Simulation::HostOrDie(HostId id, const char* operation) {
  DSIM_MISUSE(id != kNoHost && id <= hosts_.size(), "Simulation::", operation,
              ": no host with id ", id, " (there are ", hosts_.size(), ")");
  return *hosts_[id - 1];
}

Host* Simulation::CurrentHost() {
  const GroupId group = scheduler_.CurrentGroup();
  if (group >= host_of_group_.size() || host_of_group_[group] == kNoHost) return nullptr;
  Host& host = *hosts_[host_of_group_[group] - 1];
  // A task of a crashed incarnation, still unwinding, belongs to no live host.
  DSIM_DCHECK(host.network_host_ == nullptr || host.group_ != group ||
              host.state_ == HostState::kCrashed || host.network_host_->group() == group);
  return host.group_ == group && host.state_ != HostState::kCrashed ? &host : nullptr;
}

bool Simulation::Crash(HostId id) {
  Host& host = HostOrDie(id, "Crash");
  if (host.state_ == HostState::kCrashed) return false;
  const GroupId dead = host.group_;
  Annotate("fault.crash", absl::StrCat(host.name(), " crashed (", HostStateName(host.state_), ")"),
           dead);
  host.state_ = HostState::kCrashed;
  scheduler_.KillGroup(dead);
  // The process's open files go, then the power: the disk resolves what was not durable.
  disks_->UnbindGroup(dead);
  disks_->Crash(host.id_);
  for (HostObserver* observer : observers_) observer->OnHostCrashed(host, dead);
  return true;
}

Disk& Simulation::disk(HostId id) { return disks_->disk(HostOrDie(id, "disk").id_); }

void Simulation::WipeDisk(HostId id) { disks_->Wipe(HostOrDie(id, "WipeDisk").id_); }

void Simulation::SwapDisks(HostId a, HostId b) {
  disks_->Swap(HostOrDie(a, "SwapDisks").id_, HostOrDie(b, "SwapDisks").id_);
}

void Simulation::SetStorageFaults(HostId id, const StorageFaults& faults) {
  disks_->disk(HostOrDie(id, "SetStorageFaults").id_).set_faults(faults);
}

GroupId Simulation::Restart(HostId id) {
  Host& host = HostOrDie(id, "Restart");
  if (host.state_ != HostState::kCrashed) Crash(id);
  Annotate("fault.restart", absl::StrCat(host.name(), " restarts"), host.group_);
  StartIncarnation(host);
  return host.group_;
}

bool Simulation::Pause(HostId id) {
  Host& host = HostOrDie(id, "Pause");
  if (host.state_ != HostState::kRunning) return false;
  Annotate("fault.pause", absl::StrCat(host.name(), " paused"), host.group_);
  host.state_ = HostState::kPaused;
  scheduler_.PauseGroup(host.group_);
  for (HostObserver* observer : observers_) observer->OnHostPaused(host);
  return true;
}

bool Simulation::Resume(HostId id) {
  Host& host = HostOrDie(id, "Resume");
  if (host.state_ != HostState::kPaused) return false;
  Annotate("fault.resume", absl::StrCat(host.name(), " resumed"), host.group_);
  host.state_ = HostState::kRunning;
  scheduler_.ResumeGroup(host.group_);
  for (HostObserver* observer : observers_) observer->OnHostResumed(host);
  return true;
}

void Simulation::AddHostObserver(HostObserver* observer) {
  DSIM_MISUSE(observer != nullptr, "AddHostObserver(nullptr)");
  observers_.push_back(observer);
}

void Simulation::RemoveHostObserver(HostObserver* observer) {
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer),
                   observers_.end());
}

// ---- Network and faults --------------------------------------------------------------

NetworkHost& Simulation::NetworkHostOrDie(HostId id, const char* operation) {
  Host& host = HostOrDie(id, operation);
  DSIM_MISUSE(host.network_host_ != nullptr, "Simulation::", operation, ": host \"",
              host.name(), "\" has no addresses, so it is not on the network");
  return *host.network_host_;
}

PartitionId Simulation::Partition(std::vector<HostId> side_a, std::vector<HostId> side_b,
                                  bool one_way) {
  auto on_network = [this](const std::vector<HostId>& side) {
    std::vector<NetworkHostId> ids;
    for (HostId id : side) {
      NetworkHost* network_host = HostOrDie(id, "Partition").network_host_;
      if (network_host != nullptr) ids.push_back(network_host->id());
    }
    return ids;
  };
  return network_->Partition(on_network(side_a), on_network(side_b), one_way);
}

bool Simulation::Heal(PartitionId partition) { return network_->Heal(partition); }

void Simulation::HealAll() { network_->HealAll(); }

void Simulation::Hold(HostId from, HostId to) {
  network_->Hold(NetworkHostOrDie(from, "Hold"), NetworkHostOrDie(to, "Hold"));
}

bool Simulation::Release(HostId from, HostId to) {
  return network_->Release(NetworkHostOrDie(from, "Release"), NetworkHostOrDie(to, "Release"));
}

std::vector<InFlightMessage> Simulation::InFlight(HostId from, HostId to) {
  return network_->InFlight(NetworkHostOrDie(from, "InFlight").id(),
                            NetworkHostOrDie(to, "InFlight").id());
}

int Simulation::InjectReset(HostId a, HostId b) {
  return network_->InjectReset(NetworkHostOrDie(a, "InjectReset"),
                               NetworkHostOrDie(b, "InjectReset"));
}

void Simulation::SetBuggify(bool enabled) {
  BuggifyOptions buggify = network_->buggify();
  if (buggify.enabled == enabled) return;
  buggify.enabled = enabled;
  network_->set_buggify(buggify);
  Annotate("net.buggify", enabled ? "buggify on" : "buggify off");
}

bool Simulation::buggify() const { return network_->buggify().enabled; }

void Simulation::SetLinkFaults(HostId from, HostId to, LinkFaults link) {
  DSIM_MISUSE(fault_model_ != nullptr,
              "SetLinkFaults: NetworkOptions::link_model replaced the fault model");
  fault_model_->SetLinkFaults(NetworkHostOrDie(from, "SetLinkFaults").id(),
                              NetworkHostOrDie(to, "SetLinkFaults").id(), std::move(link));
}

RunResult RunOnHost(std::function<void()> body, RunOnHostOptions options) {
  DSIM_MISUSE(body != nullptr, "RunOnHost without a body");
  Simulation sim(std::move(options.simulation));
  sim.AddHost({.name = std::move(options.host_name),
               .start = std::move(body),
               .start_daemon = false,
               .addresses = std::move(options.addresses)});
  return sim.Run();
}

}  // namespace dsim
