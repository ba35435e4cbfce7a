#include "sim/swarm.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "sim/simulation.h"

namespace dsim {
namespace internal {
namespace {

// Draws everything for one seed; `parts` collects the description.
class SwarmDrawer {
 public:
  SwarmDrawer(Scheduler& scheduler, SimulationOptions& options)
      : scheduler_(scheduler), options_(options), swarm_(options.faults.swarm) {}

  SwarmDraw Draw() {
    LinkFaults& link = options_.faults.link;
    Rate("datagram_loss", swarm_.datagram_loss_max, &link.datagram_loss_probability);
    Rate("duplicate", swarm_.datagram_duplicate_max, &link.datagram_duplicate_probability);
    Rate("reorder", swarm_.datagram_reorder_max, &link.datagram_reorder_probability);
    Rate("segment_loss", swarm_.segment_loss_max, &link.segment_loss_probability);
    DrawLatency(link);
    if (On("buggify", swarm_.network_buggify)) {
      options_.faults.buggify = true;
      parts_.push_back("buggify=on");
    }
    DrawClocks();
    DrawSwizzle();
    draw_.description = absl::StrJoin(parts_, " ");
    return draw_;
  }

 private:
  // Whether a kind is on this seed: a decision whose 0 means off.
  bool On(const char* kind, bool allowed) {
    const bool on = allowed && scheduler_.ChooseValue(2, Label(kind)) == 1;
    if (!on) parts_.push_back(absl::StrCat(kind, "=off"));
    return on;
  }
  // Decision labels must outlive the simulation (traces keep the pointer): literals.
  static const char* Label(absl::string_view kind) {
    static constexpr const char* kLabels[][2] = {
        {"datagram_loss", "fault.swarm.datagram_loss"}, {"duplicate", "fault.swarm.duplicate"},
        {"reorder", "fault.swarm.reorder"},             {"segment_loss", "fault.swarm.segment_loss"},
        {"latency", "fault.swarm.latency"},             {"tail", "fault.swarm.tail"},
        {"buggify", "fault.swarm.buggify"},             {"clock_drift", "fault.swarm.clock_drift"},
        {"clock_jumps", "fault.swarm.clock_jumps"},     {"swizzle", "fault.swarm.swizzle"}};
    for (const auto& [name, label] : kLabels) {
      if (kind == name) return label;
    }
    return "fault.swarm";
  }
  // A rate uniform in (0, max], in thousandths of max.
  void Rate(const char* kind, double max, double* rate) {
    if (!On(kind, max > 0)) return;
    *rate = max * static_cast<double>(1 + scheduler_.random().Below(1000)) / 1000.0;
    parts_.push_back(absl::StrFormat("%s=%.4f", kind, *rate));
  }
  void DrawLatency(LinkFaults& link) {
    if (On("latency", swarm_.latency_mean_max > absl::ZeroDuration())) {
      const absl::Duration mean =
          scheduler_.random().UniformDuration(absl::Nanoseconds(1), swarm_.latency_mean_max);
      link.latency = LatencyModel::Exponential(absl::Microseconds(100), mean);
      parts_.push_back(absl::StrCat("latency_mean=", absl::FormatDuration(mean)));
    }
    if (On("tail", swarm_.tail_probability_max > 0 && swarm_.tail_max > absl::ZeroDuration())) {
      const double p = swarm_.tail_probability_max *
                       static_cast<double>(1 + scheduler_.random().Below(1000)) / 1000.0;
      const LatencyModel base =
          link.latency.value_or(LatencyModel::Fixed(options_.network.latency));
      link.latency = base.WithTail(p, swarm_.tail_max / 10, swarm_.tail_max);
      parts_.push_back(absl::StrFormat("tail=%.4fx[%s,%s]", p,
                                       absl::FormatDuration(swarm_.tail_max / 10),
                                       absl::FormatDuration(swarm_.tail_max)));
    }
  }
  void DrawClocks() {
    ClockFaultOptions& clocks = options_.clocks;
    if (On("clock_drift", swarm_.clock_drift_ppm_max > 0)) {
      clocks.random_drift_ppm_max =
          1 + static_cast<int64_t>(scheduler_.random().Below(swarm_.clock_drift_ppm_max));
      parts_.push_back(absl::StrCat("clock_drift=+-", clocks.random_drift_ppm_max, "ppm"));
    }
    if (On("clock_jumps", swarm_.clock_jumps_max > 0)) {
      clocks.jumps_max = 1 + static_cast<int>(scheduler_.random().Below(swarm_.clock_jumps_max));
      clocks.jump_max = swarm_.clock_jump_max;
      clocks.jump_window = swarm_.clock_jump_window;
      parts_.push_back(absl::StrCat("clock_jumps=", clocks.jumps_max));
    }
  }
  void DrawSwizzle() {
    if (!On("swizzle", swarm_.swizzle)) return;
    draw_.swizzle = true;
    draw_.swizzle_start =
        scheduler_.random().UniformDuration(absl::ZeroDuration(), swarm_.swizzle_start_max);
    draw_.swizzle_options = {.gap_max = swarm_.swizzle_clog_gap_max,
                             .hold_max = swarm_.swizzle_hold_max};
    parts_.push_back(absl::StrCat("swizzle=at ", absl::FormatDuration(draw_.swizzle_start)));
  }

  Scheduler& scheduler_;
  SimulationOptions& options_;
  const SwarmOptions swarm_;
  SwarmDraw draw_;
  std::vector<std::string> parts_;
};

}  // namespace

SwarmDraw DrawSwarm(Scheduler& scheduler, SimulationOptions& options) {
  return SwarmDrawer(scheduler, options).Draw();
}

}  // namespace internal

void SwizzleClog(Simulation& sim, const SwizzleOptions& options) {
  // The hosts on the network, each chosen with probability 1/2 (at least one).
  std::vector<HostId> hosts;
  for (HostId id = 1; id <= sim.host_count(); ++id) {
    if (sim.host(id).network_host() != nullptr) hosts.push_back(id);
  }
  if (hosts.size() < 2) return;
  std::vector<HostId> chosen;
  for (HostId id : hosts) {
    if (sim.random().Below(2) == 1) chosen.push_back(id);
  }
  if (chosen.empty()) chosen.push_back(hosts[sim.random().Below(hosts.size())]);
  auto gap = [&] {
    dsim::SleepFor(sim.random().UniformDuration(absl::ZeroDuration(), options.gap_max));
  };
  std::vector<HostId> clogged;
  auto unclog = [&](HostId id) {
    for (HostId other : hosts) {
      if (other == id) continue;
      sim.Release(id, other);
      sim.Release(other, id);
    }
    sim.Annotate("fault.swizzle", absl::StrCat("unclog ", sim.host(id).name()));
  };
  for (HostId id : chosen) {
    if (sim.faults_stopped()) break;
    sim.Annotate("fault.swizzle", absl::StrCat("clog ", sim.host(id).name()));
    for (HostId other : hosts) {
      if (other == id) continue;
      sim.Hold(id, other);
      sim.Hold(other, id);
    }
    clogged.push_back(id);
    gap();
  }
  if (!sim.faults_stopped()) {
    dsim::SleepFor(sim.random().UniformDuration(absl::ZeroDuration(), options.hold_max));
  }
  // Unclog in a random order (Fisher-Yates through the strategy).
  for (size_t i = clogged.size(); i > 1; --i) std::swap(clogged[i - 1], clogged[sim.random().Below(i)]);
  for (HostId id : clogged) {
    unclog(id);
    if (!sim.faults_stopped()) gap();
  }
}

}  // namespace dsim
