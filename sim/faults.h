// Faults: the seeded fault model of a simulated network, described by one options
// struct, FaultOptions, with global defaults and per-link overrides.
//
// Example:
//
//   dsim::SimulationOptions options{.seed = 7};
//   options.faults.link = {
//       .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200),
//                                                  /*mean=*/absl::Microseconds(300))
//                      .WithTail(0.01, absl::Milliseconds(20), absl::Milliseconds(100))
//                      .WithJitter(absl::Microseconds(50)),
//       .bandwidth_bytes_per_second = 10'000'000,
//       .datagram_loss_probability = 0.01,
//       .segment_loss_probability = 0.01,           // TCP: shows up as delay only
//   };
//   options.faults.overrides.push_back(
//       {.from = "eu-1", .to = "us-1", .link = {.latency = dsim::LatencyModel::Fixed(
//                                                   absl::Milliseconds(40))}});
//   options.faults.buggify = true;
//   dsim::Simulation sim(options);
//
// What each fault does, per packet between two different hosts (loopback traffic only
// gets the network's loopback latency):
//   - latency: one of the LatencyModel distributions, then the tail, then the jitter;
//   - bandwidth: a packet waits until the link has finished sending earlier ones, then
//     takes WireBytes(packet) / bandwidth to serialize, then travels;
//   - datagrams (UDP, ICMP) may be lost, duplicated (the copy arrives later) or
//     reordered (an extra delay that exempts the packet from FIFO order, so later
//     datagrams overtake it);
//   - TCP segments are never lost, duplicated or reordered. A "lost" segment is one
//     that arrives after an extra retransmission delay (retransmit_delay_initial,
//     doubling per consecutive loss of the same segment, as an RTO backs off), and the
//     link keeps FIFO order, so later segments queue behind it as they would behind a
//     hole in a receiver's window. Faults never cause silent data loss in a stream.
//   - buggify (BuggifyOptions in net/network.h): stream reads and writes move short
//     prefixes, and latencies are occasionally multiplied.
// Partitions, holds, pauses, crashes and reset injection are not part of this per-packet
// model: they are gates and events of the Network, driven from the Simulation.
//
// Decisions. Every yes/no fault is Scheduler::ChooseValue(n, "fault.<what>") whose 0
// means "no fault" (see Network::FaultChance), so the shrinker can remove faults one by
// one; magnitudes (latency samples, which prefix) come from Scheduler::random(). Every
// fault applied is annotated with a "fault.*" category. Nothing is drawn for a fault
// whose probability is 0, so a fault-free run makes no fault decisions at all.
#ifndef DSIM_SIM_FAULTS_H_
#define DSIM_SIM_FAULTS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "disk/storage_faults.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sim/swarm.h"

namespace dsim {

// A one-way latency distribution: a base shape, an optional rare long tail added on
// top, and an optional symmetric jitter. Samples are never negative.
struct LatencyModel {
  enum class Shape : uint8_t {
    kFixed,        // Always `min`.
    kUniform,      // Uniform in [min, max].
    kExponential,  // min + Exp(mean): a floor (propagation) plus queueing.
  };
  Shape shape = Shape::kFixed;
  absl::Duration min = absl::Microseconds(100);
  absl::Duration max = absl::Microseconds(100);
  absl::Duration mean = absl::ZeroDuration();
  // With probability tail_probability, uniform [tail_min, tail_max] more ("fault.tail").
  double tail_probability = 0;
  absl::Duration tail_min = absl::ZeroDuration();
  absl::Duration tail_max = absl::ZeroDuration();
  // Uniform in [-jitter, +jitter] added last (clamped at zero).
  absl::Duration jitter = absl::ZeroDuration();

  static LatencyModel Fixed(absl::Duration latency);
  static LatencyModel Uniform(absl::Duration min, absl::Duration max);
  static LatencyModel Exponential(absl::Duration min, absl::Duration mean);
  LatencyModel WithTail(double probability, absl::Duration tail_min,
                        absl::Duration tail_max) const;
  LatencyModel WithJitter(absl::Duration jitter) const;

  // Draws one latency through the scheduler's strategy. Misuse on an invalid model.
  // When `tail` is not null it gets the latency tail added (zero when none was).
  absl::Duration Sample(Scheduler& scheduler, absl::Duration* tail = nullptr) const;
  void Validate() const;
};

// The faults of one directed link (or of every link, as defaults).
struct LinkFaults {
  // Unset: NetworkOptions::latency, fixed.
  std::optional<LatencyModel> latency;
  // 0: unlimited.
  int64_t bandwidth_bytes_per_second = 0;

  double datagram_loss_probability = 0;
  double datagram_duplicate_probability = 0;
  // The duplicate arrives this much later than the original, at most (uniform).
  absl::Duration datagram_duplicate_delay_max = absl::Milliseconds(5);
  double datagram_reorder_probability = 0;
  // A reordered datagram is delayed by uniform (0, reorder_delay_max] more.
  absl::Duration datagram_reorder_delay_max = absl::Milliseconds(10);

  // Chance that a TCP segment is "lost" once; lost again with the same chance, up to
  // segment_losses_max times in a row. Each loss adds the current retransmission delay.
  double segment_loss_probability = 0;
  absl::Duration segment_retransmit_delay_initial = absl::Milliseconds(200);
  int segment_losses_max = 6;

  // True if this link has no fault beyond a fixed latency (the fast path).
  bool IsPlain() const;
  void Validate() const;
};

// A per-link override, by host name ("" matches any host). The last matching override
// wins. Applies from `from` to `to`, and back too when `both_directions`.
struct LinkOverride {
  std::string from;
  std::string to;
  LinkFaults link;
  bool both_directions = true;
};

// Storage faults for one host's disk, by host name; the last match wins.
struct StorageOverride {
  std::string host;
  StorageFaults storage;
};

// Everything that describes a simulation's fault model. All off by default.
struct FaultOptions {
  LinkFaults link;                       // Defaults for every link between two hosts.
  std::vector<LinkOverride> overrides;   // Per-link exceptions.
  // Buggify (see BuggifyOptions); Simulation::SetBuggify toggles it during a run.
  bool buggify = false;
  double buggify_short_io_probability = 0.25;
  double buggify_delay_probability = 0.05;
  int buggify_delay_factor = 10;
  // Swarm testing: each seed draws its own fault mix (sim/swarm.h). When enabled, the
  // draw replaces `link`'s rates and latency for the kinds it turns on, and may turn on
  // buggify, clock faults and swizzle-clogging.
  SwarmOptions swarm;

  // Storage faults of every host's disk (disk/storage_faults.h), and per-host ones.
  StorageFaults storage;
  std::vector<StorageOverride> storage_overrides;

  BuggifyOptions buggify_options() const;
  // The storage faults of the host named `host`.
  const StorageFaults& StorageFor(const std::string& host) const;
};

// Bytes a packet occupies on the wire, for bandwidth: payload plus IPv4 and TCP (40) or
// UDP (28) headers.
size_t WireBytes(const Packet& packet);

// The fault model as a LinkModel: install it with Network::set_link_model (a Simulation
// does so from SimulationOptions::faults unless NetworkOptions::link_model is set).
class FaultLinkModel final : public LinkModel {
 public:
  FaultLinkModel(Network* network, FaultOptions options);

  // With no fault active (every link plain at the default's latency and buggify off,
  // or after StopFaults) Decide draws nothing, and plain() says so: the Network then
  // does not call it.
  PacketFate Decide(const Packet& packet, Scheduler& scheduler) override;

  // Replaces the faults of the link `from` -> `to` (NetworkHostIds) at run time.
  void SetLinkFaults(NetworkHostId from, NetworkHostId to, LinkFaults link);
  // Replaces the defaults at run time (overrides keep precedence).
  void SetDefaultLinkFaults(LinkFaults link);
  // The faults that apply to a link now.
  const LinkFaults& FaultsOf(NetworkHostId from, NetworkHostId to);
  // From now on every packet takes the default link's base latency and nothing else:
  // no loss, tail, jitter, bandwidth or buggify (the liveness phase, sim/liveness.h).
  void StopFaults() {
    stopped_ = true;
    UpdatePlain();
  }

 private:
  struct LinkState {
    std::optional<LinkFaults> override_faults;
    bool override_resolved = false;
    absl::Time free_at = absl::InfinitePast();  // Bandwidth: when the link is idle.
  };
  LinkState& State(NetworkHostId from, NetworkHostId to);
  void Recheck();
  void UpdatePlain();  // LinkModel::set_plain from stopped_, all_plain_ and the defaults.
  // A plain link's latency: its fixed latency, or NetworkOptions::latency when unset.
  absl::Duration PlainLatencyOf(const LinkFaults& link) const;
  absl::Duration Latency(const LinkFaults& link, const Packet& packet, Scheduler& scheduler);
  absl::Duration Serialize(const LinkFaults& link, LinkState& state, const Packet& packet,
                           absl::Time now);
  PacketFate DecideDatagram(const LinkFaults& link, const Packet& packet,
                            absl::Duration latency, Scheduler& scheduler);
  absl::Duration SegmentLossDelay(const LinkFaults& link, const Packet& packet,
                                  Scheduler& scheduler);
  void AnnotateFault(const char* category, const Packet& packet, absl::Duration extra);
  static void FormatFault(const AnnotationPayload& payload, std::string* out);

  Network* network_;
  FaultOptions options_;
  // Whether every link is plain (no per-packet fault at all): the fast path.
  bool all_plain_ = true;
  bool stopped_ = false;  // StopFaults().
  std::vector<std::vector<LinkState>> links_;  // links_[from][to], grown on demand.
};

}  // namespace dsim

#endif  // DSIM_SIM_FAULTS_H_
