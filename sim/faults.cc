#include "sim/faults.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/nanos.h"

namespace dsim {

// ---- LatencyModel --------------------------------------------------------------------

LatencyModel LatencyModel::Fixed(absl::Duration latency) {
  LatencyModel m;
  m.shape = Shape::kFixed;
  m.min = m.max = latency;
  return m;
}

LatencyModel LatencyModel::Uniform(absl::Duration min, absl::Duration max) {
  LatencyModel m;
  m.shape = Shape::kUniform;
  m.min = min;
  m.max = max;
  return m;
}

LatencyModel LatencyModel::Exponential(absl::Duration min, absl::Duration mean) {
  LatencyModel m;
  m.shape = Shape::kExponential;
  m.min = m.max = min;
  m.mean = mean;
  return m;
}

LatencyModel LatencyModel::WithTail(double probability, absl::Duration tail_min_in,
                                    absl::Duration tail_max_in) const {
  LatencyModel m = *this;
  m.tail_probability = probability;
  m.tail_min = tail_min_in;
  m.tail_max = tail_max_in;
  return m;
}

LatencyModel LatencyModel::WithJitter(absl::Duration jitter_in) const {
  LatencyModel m = *this;
  m.jitter = jitter_in;
  return m;
}

void LatencyModel::Validate() const {
  const absl::Duration zero = absl::ZeroDuration();
  DSIM_MISUSE(min >= zero, "LatencyModel: negative min");
  DSIM_MISUSE(shape != Shape::kUniform || min <= max, "LatencyModel: uniform min > max");
  DSIM_MISUSE(shape != Shape::kExponential || mean >= zero, "LatencyModel: negative mean");
  DSIM_MISUSE(tail_probability >= 0 && tail_probability <= 1,
              "LatencyModel: tail_probability outside [0, 1]");
  DSIM_MISUSE(tail_probability == 0 || (zero <= tail_min && tail_min <= tail_max),
              "LatencyModel: the tail needs 0 <= tail_min <= tail_max");
  DSIM_MISUSE(jitter >= zero, "LatencyModel: negative jitter");
}

absl::Duration LatencyModel::Sample(Scheduler& scheduler, absl::Duration* tail_added) const {
  if (tail_added != nullptr) *tail_added = absl::ZeroDuration();
  absl::Duration latency = min;
  switch (shape) {
    case Shape::kFixed: break;
    case Shape::kUniform:
      if (max > min) latency = scheduler.random().UniformDuration(min, max);
      break;
    case Shape::kExponential:
      if (mean > absl::ZeroDuration()) latency += scheduler.random().ExponentialDuration(mean);
      break;
  }
  if (tail_probability > 0) {
    Network* network = static_cast<Network*>(scheduler.extension(Scheduler::kNetworkExtension));
    // Through FaultChance when a network is there (0 = no tail, for the shrinker).
    const bool tail = network != nullptr ? network->FaultChance(tail_probability, "fault.tail")
                                         : scheduler.random().Bernoulli(tail_probability);
    if (tail) {
      const absl::Duration extra = scheduler.random().UniformDuration(tail_min, tail_max);
      latency += extra;
      if (tail_added != nullptr) *tail_added = extra;
    }
  }
  if (jitter > absl::ZeroDuration()) {
    latency += scheduler.random().UniformDuration(-jitter, jitter);
    if (latency < absl::ZeroDuration()) latency = absl::ZeroDuration();
  }
  DSIM_DCHECK(latency >= absl::ZeroDuration());
  return latency;
}

// ---- LinkFaults ------------------------------------------------------------------------

bool LinkFaults::IsPlain() const {
  const bool fixed_latency =
      !latency.has_value() ||
      (latency->shape == LatencyModel::Shape::kFixed && latency->tail_probability == 0 &&
       latency->jitter == absl::ZeroDuration());
  return fixed_latency && bandwidth_bytes_per_second == 0 && datagram_loss_probability == 0 &&
         datagram_duplicate_probability == 0 && datagram_reorder_probability == 0 &&
         segment_loss_probability == 0;
}

void LinkFaults::Validate() const {
  if (latency.has_value()) latency->Validate();
  auto probability = [](double p, const char* name) {
    DSIM_MISUSE(p >= 0 && p <= 1, "LinkFaults: ", name, " = ", p, " is outside [0, 1]");
  };
  probability(datagram_loss_probability, "datagram_loss_probability");
  probability(datagram_duplicate_probability, "datagram_duplicate_probability");
  probability(datagram_reorder_probability, "datagram_reorder_probability");
  // A segment lost with certainty would be "retransmitted" forever.
  DSIM_MISUSE(segment_loss_probability >= 0 && segment_loss_probability < 1,
              "LinkFaults: segment_loss_probability must be in [0, 1)");
  DSIM_MISUSE(bandwidth_bytes_per_second >= 0, "LinkFaults: negative bandwidth");
  DSIM_MISUSE(segment_losses_max >= 0 && segment_losses_max <= 16,
              "LinkFaults: segment_losses_max must be in [0, 16]");
  DSIM_MISUSE(segment_retransmit_delay_initial > absl::ZeroDuration(),
              "LinkFaults: segment_retransmit_delay_initial must be positive");
  DSIM_MISUSE(datagram_duplicate_delay_max >= absl::ZeroDuration() &&
                  datagram_reorder_delay_max > absl::ZeroDuration(),
              "LinkFaults: duplicate/reorder delays must be positive");
}

BuggifyOptions FaultOptions::buggify_options() const {
  return BuggifyOptions{.enabled = buggify,
                        .short_io_probability = buggify_short_io_probability,
                        .delay_probability = buggify_delay_probability,
                        .delay_factor = buggify_delay_factor};
}

size_t WireBytes(const Packet& packet) {
  return packet.payload.size() + (packet.kind == Packet::Kind::kTcp ? 40 : 28);
}

// ---- FaultLinkModel --------------------------------------------------------------------

FaultLinkModel::FaultLinkModel(Network* network, FaultOptions options)
    : network_(network), options_(std::move(options)) {
  DSIM_MISUSE(network_ != nullptr, "FaultLinkModel needs a Network");
  options_.link.Validate();
  for (const LinkOverride& o : options_.overrides) o.link.Validate();
  DSIM_MISUSE(options_.buggify_delay_factor >= 1, "FaultOptions: buggify_delay_factor < 1");
  Recheck();
}

// The fast path gives every link the default link's latency, so it needs every link
// plain AND at that latency: an override whose only difference is its fixed latency (or
// none, which means NetworkOptions::latency) takes the general path.
void FaultLinkModel::Recheck() {
  const absl::Duration base = PlainLatencyOf(options_.link);
  auto plain_at_base = [&](const LinkFaults& link) {
    return link.IsPlain() && PlainLatencyOf(link) == base;
  };
  all_plain_ = options_.link.IsPlain();
  for (const LinkOverride& o : options_.overrides) all_plain_ = all_plain_ && plain_at_base(o.link);
  for (const auto& row : links_) {
    for (const LinkState& state : row) {
      if (state.override_faults.has_value()) {
        all_plain_ = all_plain_ && plain_at_base(*state.override_faults);
      }
    }
  }
  UpdatePlain();
}

absl::Duration FaultLinkModel::PlainLatencyOf(const LinkFaults& link) const {
  return link.latency.has_value() ? link.latency->min : network_->options().latency;
}

FaultLinkModel::LinkState& FaultLinkModel::State(NetworkHostId from, NetworkHostId to) {
  if (links_.size() <= from) links_.resize(from + 1);
  std::vector<LinkState>& row = links_[from];
  if (row.size() <= to) row.resize(to + 1);
  return row[to];
}

void FaultLinkModel::SetLinkFaults(NetworkHostId from, NetworkHostId to, LinkFaults link) {
  link.Validate();
  LinkState& state = State(from, to);
  state.override_faults = std::move(link);
  state.override_resolved = true;
  Recheck();
}

void FaultLinkModel::SetDefaultLinkFaults(LinkFaults link) {
  link.Validate();
  options_.link = std::move(link);
  Recheck();
}

const LinkFaults& FaultLinkModel::FaultsOf(NetworkHostId from, NetworkHostId to) {
  LinkState& state = State(from, to);
  if (!state.override_resolved) {
    // Resolved once per link: host names do not change.
    state.override_resolved = true;
    const NetworkHost* a = network_->FindHost(from);
    const NetworkHost* b = network_->FindHost(to);
    auto matches = [](const std::string& pattern, const NetworkHost* host) {
      return pattern.empty() || (host != nullptr && host->name() == pattern);
    };
    for (const LinkOverride& o : options_.overrides) {
      if ((matches(o.from, a) && matches(o.to, b)) ||
          (o.both_directions && matches(o.from, b) && matches(o.to, a))) {
        state.override_faults = o.link;
      }
    }
  }
  return state.override_faults.has_value() ? *state.override_faults : options_.link;
}

// Publishes Decide's fast path (LinkModel::plain()): stopped, every packet takes the
// default's latency whatever buggify says; all links plain, only while buggify is off.
// Loopback is plain whenever the links are (Decide never draws for it).
void FaultLinkModel::UpdatePlain() {
  set_plain(Plain{.when = static_cast<uint8_t>(stopped_    ? kPlainWithoutBuggify | kPlainWithBuggify
                                               : all_plain_ ? kPlainWithoutBuggify
                                                            : 0),
                  .latency_ns = internal::DurationToNanos(PlainLatencyOf(options_.link)),
                  .loopback_latency_ns =
                      internal::DurationToNanos(network_->options().loopback_latency)});
}

PacketFate FaultLinkModel::Decide(const Packet& packet, Scheduler& scheduler) {
  const NetworkOptions& net = network_->options();
  if (packet.source_host == packet.destination_host) {
    return PacketFate::DeliverAfter(net.loopback_latency);
  }
  const BuggifyOptions& buggify = network_->buggify();
  if ((all_plain_ && !buggify.enabled) || stopped_) {
    // The fast path: no fault anywhere (what plain() publishes).
    return PacketFate::DeliverAfter(PlainLatencyOf(options_.link));
  }
  const LinkFaults& link = FaultsOf(packet.source_host, packet.destination_host);
  absl::Duration latency = Latency(link, packet, scheduler);
  if (buggify.enabled && network_->FaultChance(buggify.delay_probability, "fault.buggify.delay")) {
    const absl::Duration extra = latency * (buggify.delay_factor - 1);
    latency += extra;
    AnnotateFault("fault.buggify.delay", packet, extra);
  }
  if (link.bandwidth_bytes_per_second > 0) {
    latency += Serialize(link, State(packet.source_host, packet.destination_host), packet,
                         scheduler.Now());
  }
  if (packet.kind == Packet::Kind::kTcp) {
    PacketFate fate = PacketFate::DeliverAfter(latency);
    fate.connection_delay = SegmentLossDelay(link, packet, scheduler);
    return fate;
  }
  return DecideDatagram(link, packet, latency, scheduler);
}

absl::Duration FaultLinkModel::Latency(const LinkFaults& link, const Packet& packet,
                                       Scheduler& scheduler) {
  if (!link.latency.has_value()) return network_->options().latency;
  absl::Duration tail;
  const absl::Duration latency = link.latency->Sample(scheduler, &tail);
  // An applied tail is a fault like the others: a 130 ms delay must not look unexplained.
  if (tail > absl::ZeroDuration()) AnnotateFault("fault.tail", packet, tail);
  return latency;
}

// A link sends one packet at a time: this one starts when the link is free and occupies
// it for WireBytes / bandwidth. Returns the wait plus the serialization time.
absl::Duration FaultLinkModel::Serialize(const LinkFaults& link, LinkState& state,
                                         const Packet& packet, absl::Time now) {
  DSIM_DCHECK(link.bandwidth_bytes_per_second > 0);
  const absl::Time start = std::max(now, state.free_at);
  const int64_t nanos = static_cast<int64_t>(
      (static_cast<unsigned __int128>(WireBytes(packet)) * 1'000'000'000 +
       link.bandwidth_bytes_per_second - 1) /
      link.bandwidth_bytes_per_second);
  state.free_at = start + absl::Nanoseconds(nanos);
  DSIM_DCHECK(state.free_at >= now);
  return state.free_at - now;
}

PacketFate FaultLinkModel::DecideDatagram(const LinkFaults& link, const Packet& packet,
                                          absl::Duration latency, Scheduler& scheduler) {
  if (network_->FaultChance(link.datagram_loss_probability, "fault.drop")) {
    AnnotateFault("fault.drop", packet, absl::ZeroDuration());
    return PacketFate::Drop();
  }
  PacketFate fate = PacketFate::DeliverAfter(latency);
  if (network_->FaultChance(link.datagram_reorder_probability, "fault.reorder")) {
    const absl::Duration extra =
        scheduler.random().UniformDuration(absl::Nanoseconds(1), link.datagram_reorder_delay_max);
    fate.deliveries[0] += extra;
    fate.unordered = true;
    AnnotateFault("fault.reorder", packet, extra);
  }
  if (network_->FaultChance(link.datagram_duplicate_probability, "fault.duplicate")) {
    const absl::Duration extra =
        scheduler.random().UniformDuration(absl::ZeroDuration(), link.datagram_duplicate_delay_max);
    fate.deliveries.push_back(fate.deliveries[0] + extra);
    fate.unordered = true;
    AnnotateFault("fault.duplicate", packet, extra);
  }
  return fate;
}

// A TCP segment "lost" k times in a row arrives after k retransmission delays, doubling
// each time (an RTO backing off), instead of being lost: streams stay reliable.
absl::Duration FaultLinkModel::SegmentLossDelay(const LinkFaults& link, const Packet& packet,
                                                Scheduler& scheduler) {
  if (!(link.segment_loss_probability > 0)) return absl::ZeroDuration();
  absl::Duration delay = absl::ZeroDuration();
  absl::Duration rto = link.segment_retransmit_delay_initial;
  for (int loss = 0; loss < link.segment_losses_max; ++loss) {
    if (!network_->FaultChance(link.segment_loss_probability, "fault.retransmit")) break;
    delay += rto;
    rto *= 2;
  }
  if (delay > absl::ZeroDuration()) AnnotateFault("fault.retransmit", packet, delay);
  return delay;
}

void FaultLinkModel::AnnotateFault(const char* category, const Packet& packet,
                                   absl::Duration extra) {
  Scheduler& scheduler = network_->scheduler();
  if (!scheduler.has_listeners()) return;
  const NetworkHost* from = network_->FindHost(packet.source_host);
  Annotation annotation{category, {}, from != nullptr ? from->group() : kNoGroup,
                        packet.flow_id, 0};
  annotation.format = FormatFault;
  annotation.payload.word_count = Packet::kTraceWords + 1;
  // The packet's words, zeros up to kTraceWords, then the extra time.
  const int words = packet.ToTraceWords(annotation.payload.words);
  for (int i = words; i < Packet::kTraceWords; ++i) annotation.payload.words[i] = 0;
  annotation.payload.words[Packet::kTraceWords] =
      static_cast<uint64_t>(absl::ToInt64Nanoseconds(extra));
  scheduler.Annotate(annotation);
}

// The packet's text, then " +<extra>" when the fault added time.
void FaultLinkModel::FormatFault(const AnnotationPayload& payload, std::string* out) {
  Packet::FormatTraceWords(payload, out);
  const int64_t extra_ns = static_cast<int64_t>(payload.words[Packet::kTraceWords]);
  if (extra_ns > 0) absl::StrAppend(out, " +", absl::FormatDuration(absl::Nanoseconds(extra_ns)));
}

const StorageFaults& FaultOptions::StorageFor(const std::string& host) const {
  const StorageFaults* found = &storage;
  for (const StorageOverride& o : storage_overrides) {
    if (o.host == host) found = &o.storage;
  }
  return *found;
}

}  // namespace dsim
