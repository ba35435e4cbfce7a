#include "net/network.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/nanos.h"
#include "scheduler/trace_sink.h"

namespace dsim {

// ---- IpAddress -------------------------------------------------------------------

IpAddress IpAddress::FromIn6Addr(const in6_addr& address) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), address.s6_addr, 16);
  return a;
}

IpAddress IpAddress::V4Any() { return FromInAddr(in_addr{htonl(INADDR_ANY)}); }
IpAddress IpAddress::V4Loopback() { return FromInAddr(in_addr{htonl(INADDR_LOOPBACK)}); }

IpAddress IpAddress::V6Loopback() {
  IpAddress a;
  a.bytes_[15] = 1;
  return a;
}

absl::StatusOr<IpAddress> IpAddress::Parse(absl::string_view text) {
  const std::string s(text);
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return FromInAddr(v4);
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) return FromIn6Addr(v6);
  return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IP address"));
}


in_addr IpAddress::ToInAddr() const {
  DSIM_DCHECK(is_v4());
  in_addr a;
  std::memcpy(&a.s_addr, bytes_.data() + 12, 4);
  return a;
}

in6_addr IpAddress::ToIn6Addr() const {
  in6_addr a;
  std::memcpy(a.s6_addr, bytes_.data(), 16);
  return a;
}

std::string IpAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (is_v4()) {
    const in_addr a = ToInAddr();
    inet_ntop(AF_INET, &a, buffer, sizeof(buffer));
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buffer, sizeof(buffer));
  }
  return buffer;
}

std::string Endpoint::ToString() const {
  if (address.is_v4()) return absl::StrCat(address.ToString(), ":", port);
  return absl::StrCat("[", address.ToString(), "]:", port);
}

namespace {

void AppendPacketText(Packet::Kind kind, const Endpoint& source, const Endpoint& destination,
                      uint8_t flags, uint64_t sequence, uint64_t acknowledgment,
                      uint64_t window_bytes, uint64_t length, std::string* out) {
  const char* kind_name = kind == Packet::Kind::kTcp   ? "tcp"
                          : kind == Packet::Kind::kUdp ? "udp"
                                                       : "icmp-unreach";
  absl::StrAppend(out, kind_name, " ", source.ToString(), "->", destination.ToString());
  if (kind == Packet::Kind::kTcp) {
    std::string f;
    if (flags & Packet::kSyn) f += 'S';
    if (flags & Packet::kAck) f += 'A';
    if (flags & Packet::kFin) f += 'F';
    if (flags & Packet::kRst) f += 'R';
    absl::StrAppend(out, " [", f, "] seq=", sequence, " ack=", acknowledgment,
                    " win=", window_bytes);
  }
  absl::StrAppend(out, " len=", length);
}

// Little-endian on every machine (one load on little-endian ones), so the words, and
// the fingerprints made from them, do not depend on byte order.
uint64_t LoadWord(const uint8_t* bytes) {
  uint64_t word;
  std::memcpy(&word, bytes, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  word = __builtin_bswap64(word);
#endif
  return word;
}

IpAddress AddressFromWords(uint64_t low, uint64_t high) {
  in6_addr raw;
  for (int b = 0; b < 8; ++b) {
    raw.s6_addr[b] = static_cast<uint8_t>(low >> (8 * b));
    raw.s6_addr[8 + b] = static_cast<uint8_t>(high >> (8 * b));
  }
  return IpAddress::FromIn6Addr(raw);
}

}  // namespace

std::string Packet::ToString() const {
  std::string s;
  AppendPacketText(kind, source, destination, flags, sequence, acknowledgment, window_bytes,
                   payload.size(), &s);
  return s;
}

// Words, as few as the header needs (a trace copies and hashes each one):
//   0: kind | v4 << 7 | flags << 8 | window << 16   1: source port | destination port << 16
//   | length << 32; IPv4 (both ends): 2: source | destination << 32; IPv6: 2-3 source,
//   4-5 destination; then sequence and acknowledgment, left out (zero) from the end
//   when zero. The words past the returned count are not written.
namespace {

// Packet::ToTraceWords, inline for the trace's raw path (which then makes no call).
// IPv4 (every packet of most runs) written straight, without a running index.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int TraceWordsOf(const Packet& packet, uint64_t* words) {
  const Endpoint& source = packet.source;
  const Endpoint& destination = packet.destination;
  const uint64_t s0 = LoadWord(source.address.bytes().data());
  const uint64_t s1 = LoadWord(source.address.bytes().data() + 8);
  const uint64_t d0 = LoadWord(destination.address.bytes().data());
  const uint64_t d1 = LoadWord(destination.address.bytes().data() + 8);
  // IPv4-mapped: ten zero bytes, two 0xff, then the IPv4 address (one test for both).
  constexpr uint64_t kMapped = 0xffff0000u;
  const bool v4 = (s0 | d0 | (((s1 ^ kMapped) | (d1 ^ kMapped)) & 0xffffffffu)) == 0;
  const uint64_t head = static_cast<uint64_t>(packet.kind) | uint64_t{packet.flags} << 8 |
                        packet.window_bytes << 16;
  words[1] = uint64_t{source.port} | uint64_t{destination.port} << 16 |
             static_cast<uint64_t>(packet.payload.size()) << 32;
  const uint64_t sequence = packet.sequence;
  const uint64_t acknowledgment = packet.acknowledgment;
  // Sequence and acknowledgment are left out from the end when zero.
  const int tail = acknowledgment != 0 ? 2 : sequence != 0 ? 1 : 0;
  if (ABSL_PREDICT_TRUE(v4)) {
    words[0] = head | uint64_t{1} << 7;
    words[2] = (s1 >> 32) | (d1 >> 32) << 32;
    words[3] = sequence;
    words[4] = acknowledgment;
    return 3 + tail;
  }
  words[0] = head;
  words[2] = s0;
  words[3] = s1;
  words[4] = d0;
  words[5] = d1;
  words[6] = sequence;
  words[7] = acknowledgment;
  return 6 + tail;
}

}  // namespace

int Packet::ToTraceWords(uint64_t* words) const { return TraceWordsOf(*this, words); }

namespace {

constexpr AnnotationKind kNetSend("net.send", Packet::FormatTraceWords);
constexpr AnnotationKind kNetDeliver("net.deliver", Packet::FormatTraceWords);

}  // namespace

// The records AnnotatePacket writes for "net.send" and "net.deliver" when the trace
// sink alone hears them, for the short paths. The sink's no-call path first; its
// general one (a full block, a kind new to it) out of line.
ABSL_ATTRIBUTE_NOINLINE static uint64_t* BeginSendRecordSlow(TraceSink& sink, GroupId group,
                                                            TaskId task, int64_t now_ns,
                                                            uint64_t flow_id) {
  return sink.BeginAnnotation(kNetSend, group, task, now_ns, flow_id, /*flow_phase=*/1,
                              /*text=*/nullptr);
}

// `flow_id` is the packet's (the send's is not stored yet).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Network::RecordSend(TraceSink& sink,
                                                             const NetworkHost& from,
                                                             const Packet& packet,
                                                             int64_t now_ns, uint64_t flow_id) {
  const TaskId task = CurrentTaskIdOf(*scheduler_);
  uint64_t* words = sink.TryBeginAnnotation(kNetSend, from.group(), task, now_ns, flow_id,
                                            /*flow_phase=*/1, /*text=*/nullptr);
  if (ABSL_PREDICT_FALSE(words == nullptr)) {
    words = BeginSendRecordSlow(sink, from.group(), task, now_ns, flow_id);
  }
  sink.EndAnnotation(words, TraceWordsOf(packet, words));
}

void Packet::FormatTraceWords(const AnnotationPayload& payload, std::string* out) {
  const uint64_t* w = payload.words;
  // Words past word_count are zero (the trace passes only word_count words).
  auto word = [&](int i) { return i < payload.word_count ? w[i] : 0; };
  const bool v4 = (word(0) >> 7) & 1;
  Endpoint source, destination;
  int n = 2;
  if (v4) {
    const uint64_t a = word(n++);
    source.address = AddressFromWords(0, 0xffff0000u | (a & 0xffffffffu) << 32);
    destination.address = AddressFromWords(0, 0xffff0000u | (a >> 32) << 32);
  } else {
    source.address = AddressFromWords(word(2), word(3));
    destination.address = AddressFromWords(word(4), word(5));
    n = 6;
  }
  source.port = static_cast<uint16_t>(word(1));
  destination.port = static_cast<uint16_t>(word(1) >> 16);
  AppendPacketText(static_cast<Kind>(word(0) & 0x7f), source, destination,
                   static_cast<uint8_t>(word(0) >> 8), word(n), word(n + 1), word(0) >> 16,
                   word(1) >> 32, out);
}

// ---- Link models -----------------------------------------------------------------

FixedLatencyLinkModel::FixedLatencyLinkModel(absl::Duration latency,
                                             absl::Duration loopback_latency)
    : latency_(latency), loopback_latency_(loopback_latency) {
  set_plain(Plain{.when = kPlainWithoutBuggify | kPlainWithBuggify,
                  .latency_ns = internal::DurationToNanos(latency),
                  .loopback_latency_ns = internal::DurationToNanos(loopback_latency)});
}

PacketFate FixedLatencyLinkModel::Decide(const Packet& packet, Scheduler& scheduler) {
  return PacketFate::DeliverAfter(packet.source_host == packet.destination_host
                                      ? loopback_latency_
                                      : latency_);
}

// ---- NetworkHost ------------------------------------------------------------------------

TaskHandle NetworkHost::Spawn(std::string name, TaskBody body,
                              SpawnOptions options) {
  DSIM_MISUSE(group_ != kNoGroup, "Spawn(\"", name, "\") on crashed host \"", name_,
              "\"; give it a new group with Network::BindGroup first");
  options.group = group_;
  return network_->scheduler().Spawn(std::move(name), std::move(body), options);
}

// ---- Network ---------------------------------------------------------------------

Network::Network(Scheduler* scheduler, NetworkOptions options)
    : scheduler_(scheduler), options_(std::move(options)) {
  DSIM_MISUSE(scheduler_ != nullptr, "Network needs a Scheduler");
  DSIM_MISUSE(scheduler_->extension(Scheduler::kNetworkExtension) == nullptr,
              "a second Network was attached to the same Scheduler");
  DSIM_MISUSE(options_.ephemeral_port_min > 0 &&
                  options_.ephemeral_port_min <= options_.ephemeral_port_max,
              "NetworkOptions: empty ephemeral port range");
  // A zero keepalive time would re-arm the keepalive timer at the same instant forever.
  DSIM_MISUSE(options_.tcp_keepalive_time > absl::ZeroDuration() &&
                  options_.tcp_keepalive_interval > absl::ZeroDuration() &&
                  options_.tcp_keepalive_probes >= 1,
              "NetworkOptions: tcp_keepalive_time and tcp_keepalive_interval must be "
              "positive, tcp_keepalive_probes at least 1");
  link_model_ = options_.link_model;
  if (link_model_ == nullptr) {
    link_model_ =
        std::make_shared<FixedLatencyLinkModel>(options_.latency, options_.loopback_latency);
  }
  plain_ = &link_model_->plain();
  UpdatePlainMasks();
  scheduler_->SetExtension(Scheduler::kNetworkExtension, this);
}

Network::~Network() {
  // Tasks blocked on sockets must unwind before the sockets (and their wait queues) go.
  if (scheduler_->live_tasks() > 0 && Scheduler::Current() == nullptr) scheduler_->Shutdown();
  for (auto& host : hosts_) host->set_stack(nullptr);
  crashed_stacks_.clear();
  // Held packets are not timers: they are freed with all_packets_.
  held_.clear();
  if (scheduler_->extension(Scheduler::kNetworkExtension) == this) {
    scheduler_->SetExtension(Scheduler::kNetworkExtension, nullptr);
  }
}

Network* Network::Current() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return nullptr;
  return static_cast<Network*>(scheduler->extension(Scheduler::kNetworkExtension));
}

void Network::set_link_model(std::shared_ptr<LinkModel> model) {
  DSIM_MISUSE(model != nullptr, "Network::set_link_model(nullptr)");
  link_model_ = std::move(model);
  plain_ = &link_model_->plain();
}

NetworkHost& Network::AddHost(std::string name, const std::vector<std::string>& addresses,
                              GroupId group) {
  const NetworkHostId id = static_cast<NetworkHostId>(hosts_.size() + 1);
  if (group == kNoGroup) group = static_cast<GroupId>(std::max<size_t>(host_of_group_.size(), 1));
  std::vector<IpAddress> parsed;
  for (const std::string& text : addresses) {
    absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
    DSIM_MISUSE(address.ok(), "AddHost(\"", name, "\"): ", address.status().message());
    DSIM_MISUSE(!address->IsLoopback() && !address->IsUnspecified(), "AddHost(\"", name,
                "\"): ", text, " is implicit or not a host address");
    DSIM_MISUSE(!owner_of_address_.contains(*address), "AddHost(\"", name, "\"): address ",
                text, " already belongs to another host");
    owner_of_address_[*address] = id;
    parsed.push_back(*address);
  }
  hosts_.push_back(std::unique_ptr<NetworkHost>(
      new NetworkHost(this, id, kNoGroup, std::move(name), std::move(parsed))));
  BindGroup(*hosts_.back(), group);
  return *hosts_.back();
}

void Network::BindGroup(NetworkHost& host, GroupId group) {
  DSIM_MISUSE(group != kNoGroup, "a host cannot run in the default group");
  DSIM_MISUSE(HostOfGroup(group) == nullptr || HostOfGroup(group) == &host, "group ", group,
              " already belongs to host \"", HostOfGroup(group)->name(), "\"");
  if (host.group_ != kNoGroup && host.group_ < host_of_group_.size()) {
    host_of_group_[host.group_] = 0;
  }
  if (group >= host_of_group_.size()) host_of_group_.resize(group + 1, 0);
  host_of_group_[group] = host.id();
  host.group_ = group;
}

NetworkHost* Network::CrashedHostOfGroup(GroupId group) const {
  if (group >= crashed_host_of_group_.size()) return nullptr;
  return FindHost(crashed_host_of_group_[group]);
}

NetworkHost* Network::HostByAddressSlow(const IpAddress& address) const {
  auto it = owner_of_address_.find(address);
  if (it == owner_of_address_.end()) return nullptr;
  address_cache_[AddressHash{}(address) % kAddressCacheSize] = AddressCacheEntry{address, it->second};
  return FindHost(it->second);
}

Packet* Network::AllocatePacket() {
  all_packets_.push_back(std::make_unique<Packet>());
  return all_packets_.back().get();
}

size_t Network::packets_pooled() const {
  size_t count = 0;
  for (const Packet* p = free_packets_; p != nullptr; p = p->next_free) ++count;
  return count;
}

void Network::FreePacket(Packet* packet) {
  // Field by field, keeping the payload's capacity for the next segment. Only the
  // fields a sender fills: every send sets source_host, destination_host(_ptr) and
  // flow_id before anything reads them, and lost_ack is false on every packet that
  // comes back (Deliver clears it; its superseded drop clears it before the free).
  DSIM_DCHECK(!packet->lost_ack && !packet->superseded);
  packet->kind = Packet::Kind::kTcp;
  packet->source = Endpoint();
  packet->destination = Endpoint();
  packet->flags = 0;
  packet->source_connection = packet->destination_connection = 0;
  packet->sequence = packet->acknowledgment = packet->window_bytes = 0;
  packet->payload.clear();
  packet->next_free = free_packets_;
  free_packets_ = packet;
}

NetworkHost* Network::Route(NetworkHost& from, const IpAddress& destination) {
  if (from.last_destination_host_ != nullptr && from.last_destination_ == destination) {
    return from.last_destination_host_;
  }
  NetworkHost* to = from.HasAddress(destination) ? &from : HostByAddress(destination);
  if (to != nullptr) {
    from.last_destination_ = destination;
    from.last_destination_host_ = to;
  }
  return to;
}

bool Network::Send(NetworkHost& from, Packet* packet) {
  NetworkHost* to = Route(from, packet->destination.address);
  if (to == nullptr) {
    FreePacket(packet);
    return false;
  }
  SendTo(from, *to, packet);
  return true;
}

void Network::SendToUnobserved(NetworkHost& from, NetworkHost& to, Packet* packet) {
  DSIM_DCHECK(Route(from, packet->destination.address) == &to, "SendTo: ", to.name(),
              " does not own ", packet->destination.address.ToString());
  if (ABSL_PREDICT_TRUE(OnShortPath(from, to))) {
    return SendPlain(from, to, packet, scheduler_->NowNanos());
  }
  SendToGeneral(from, to, packet);
}

// The short path with the trace sink alone watching: its net.send record (the one
// SendToGeneral's AnnotatePacket writes), then the same delivery.
void Network::SendToObserved(NetworkHost& from, NetworkHost& to, Packet* packet) {
  DSIM_DCHECK(Route(from, packet->destination.address) == &to, "SendTo: ", to.name(),
              " does not own ", packet->destination.address.ToString());
  TraceSink* sink = scheduler_->SoleTraceSink(kNetSend);
  const uint64_t flow_id = last_flow_id_ + 1;
  // (A flow id is never 0; testing it tells the record's writer so.)
  if (sink == nullptr || !OnShortPath(from, to) || ABSL_PREDICT_FALSE(flow_id == 0)) {
    return SendToGeneral(from, to, packet);
  }
  const int64_t now = scheduler_->NowNanos();
  RecordSend(*sink, from, *packet, now, flow_id);
  SendPlain(from, to, packet, now);
}

void Network::SendToGeneral(NetworkHost& from, NetworkHost& to, Packet* packet) {
  packet->source_host = from.id();
  packet->destination_host = to.id();
  packet->destination_host_ptr = &to;
  packet->flow_id = ++last_flow_id_;
  int64_t plain_latency_ns;
  if (link_model_->PlainLatencyNanos(*packet, buggify_.enabled, &plain_latency_ns)) {
    // What the general path below does with PacketFate::DeliverAfter(latency): the
    // model would draw nothing, so skipping its Decide changes no run.
    if (scheduler_->has_listeners()) AnnotatePacket("net.send", *packet, 1, from.group());
    Dispatch(from, to, packet, &plain_latency_ns, 1, /*unordered=*/false,
             /*connection_delay=*/0);
    return;
  }
  PacketFate fate = link_model_->Decide(*packet, *scheduler_);
  if (scheduler_->has_listeners()) AnnotatePacket("net.send", *packet, 1, from.group());
  if (fate.deliveries.empty()) {
    ++packets_dropped_;
    if (scheduler_->has_listeners()) AnnotatePacket("net.drop", *packet, 2, from.group());
    FreePacket(packet);
    return;
  }
  absl::InlinedVector<int64_t, 2> latencies;
  for (absl::Duration delivery : fate.deliveries) {
    DSIM_DCHECK(delivery >= absl::ZeroDuration());
    latencies.push_back(internal::DurationToNanos(delivery));
  }
  Dispatch(from, to, packet, latencies.data(), latencies.size(), fate.unordered,
           internal::DurationToNanos(fate.connection_delay));
}

// SendTo's short path (see OnShortPath): one delivery after the plain latency, behind
// the link's last one. What SendToGeneral and Dispatch do then (ConnectionOrder keeps
// the time), without their frames.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Network::SendPlain(NetworkHost& from, NetworkHost& to,
                                                            Packet* packet, int64_t now) {
  packet->source_host = from.id();
  packet->destination_host = to.id();
  packet->destination_host_ptr = &to;
  packet->flow_id = ++last_flow_id_;
  int64_t& last = from.last_delivery_[to.id()];
  int64_t when = internal::SaturatingAdd(
      now, &from == &to ? plain_->loopback_latency_ns : plain_->latency_ns);
  if (when <= last) when = internal::SaturatingAdd(last, 1);
  last = when;
  packet->sent_at_ns = now;
  packet->in_flight_index = static_cast<uint32_t>(in_flight_.size());
  in_flight_.push_back(packet);
  packet->deliver_at_ns = when;
  scheduler_->AddTimerCall(when, &Network::DeliverCall, this, reinterpret_cast<uintptr_t>(packet));
}

// Puts a packet (and its duplicates) on the wire: one delivery per latency, measured
// from now, in nanoseconds (absl::Time arithmetic is out of line).
void Network::Dispatch(NetworkHost& from, NetworkHost& to, Packet* packet,
                       const int64_t* latencies, size_t count, bool unordered,
                       int64_t connection_delay) {
  int64_t* last = nullptr;
  if (options_.fifo_links && !unordered) {
    if (from.last_delivery_.size() < to.id() + 1) {
      from.last_delivery_.resize(to.id() + 1, INT64_MIN);
    }
    last = &from.last_delivery_[to.id()];
  }
  const int64_t now = scheduler_->NowNanos();
  const bool in_connection =
      packet->kind == Packet::Kind::kTcp && packet->source_connection != 0;
  if (in_connection && !lost_acks_.empty()) {
    // This segment carries a newer acknowledgment than a lost pure ACK still on its way.
    if (auto it = lost_acks_.find(packet->source_connection); it != lost_acks_.end()) {
      it->second->superseded = true;
      lost_acks_.erase(it);
    }
  }
  for (size_t i = 0; i < count; ++i) {
    int64_t when = internal::SaturatingAdd(now, latencies[i]);
    if (last != nullptr) {
      if (when <= *last) when = internal::SaturatingAdd(*last, 1);
      *last = when;
    }
    if (in_connection && (last != nullptr || connection_delay > 0)) {
      when = ConnectionOrder(packet, when, last != nullptr ? connection_delay : 0);
    }
    if (last == nullptr) when = internal::SaturatingAdd(when, connection_delay);
    Packet* copy = packet;
    if (i + 1 < count) {  // Duplicates are copies; the last is the original.
      copy = NewPacket();
      *copy = *packet;
      ++duplicate_packets_;
    }
    PutInFlight(copy, when);
  }
  if (in_connection) UpdatePlainMasks();  // A hole or a lost ACK may have come or gone.
}

void Network::PutInFlight(Packet* packet, int64_t when_ns) {
  packet->sent_at_ns = scheduler_->NowNanos();
  packet->in_flight_index = static_cast<uint32_t>(in_flight_.size());
  in_flight_.push_back(packet);
  Schedule(packet, when_ns);
}

int64_t Network::ConnectionOrder(Packet* packet, int64_t when, int64_t hole) {
  const uint64_t connection = packet->source_connection;
  if (!connection_holes_.empty()) {
    if (auto it = connection_holes_.find(connection); it != connection_holes_.end()) {
      if (when <= it->second) {
        when = internal::SaturatingAdd(it->second, 1);  // Behind the hole, in order.
        it->second = when;
      } else {
        connection_holes_.erase(it);  // The hole is behind us: later packets come later.
      }
    }
  }
  if (hole <= 0) return when;
  when = internal::SaturatingAdd(when, hole);
  if (packet->IsPureAck()) {
    packet->lost_ack = true;
    lost_acks_[connection] = packet;
  } else {
    auto [it, inserted] = connection_holes_.try_emplace(connection, when);
    if (!inserted) it->second = std::max(it->second, when);
  }
  return when;
}

void Network::Schedule(Packet* packet, int64_t when_ns) {
  packet->deliver_at_ns = when_ns;
  scheduler_->AddTimerCall(when_ns, &Network::DeliverCall, this,
                           reinterpret_cast<uintptr_t>(packet));
}

void Network::DeliverCall(void* context, uint64_t argument) {
  Network* network = static_cast<Network*>(context);
  Packet* packet = reinterpret_cast<Packet*>(argument);
  if (ABSL_PREDICT_TRUE(!packet->lost_ack && network->gates_active_ == 0)) {
    // No gate, no lost ACK, a stack on the host, and nobody watching: what Deliver does
    // then, without its frame. Watched: DeliverObserved.
    NetworkHost* to = packet->destination_host_ptr;  // Set by every send.
    DSIM_DCHECK(to != nullptr && to == network->FindHost(packet->destination_host));
    PacketReceiver* stack = to->stack();
    if (ABSL_PREDICT_TRUE(stack != nullptr)) {
      if (ABSL_PREDICT_FALSE(network->scheduler_->has_listeners())) {
        return network->DeliverObserved(*to, packet);
      }
      return network->DeliverToStack(stack, packet);
    }
  }
  network->Deliver(packet);
}

// DeliverCall's short path with the trace sink alone watching: Deliver's bookkeeping,
// the net.deliver record its AnnotatePacket writes, the delivery. Only tail calls (the
// sink's general writer is DeliverObservedSlow's), so no frame.
void Network::DeliverObserved(NetworkHost& to, Packet* packet) {
  TraceSink* sink = scheduler_->SoleTraceSink(kNetDeliver);
  if (sink == nullptr || packet->flow_id == 0) return Deliver(packet);
  ForgetInFlight(packet);
  if (ABSL_PREDICT_FALSE(!sink->TryAnnotateRepeat(kNetDeliver, to.group(),
                                                  CurrentTaskIdOf(*scheduler_),
                                                  scheduler_->NowNanos(), packet->flow_id,
                                                  /*flow_phase=*/2))) {
    return DeliverObservedSlow(*sink, to, packet);
  }
  to.stack()->Receive(packet);  // Takes the packet.
}

void Network::DeliverObservedSlow(TraceSink& sink, NetworkHost& to, Packet* packet) {
  sink.AnnotateRepeat(kNetDeliver, to.group(), CurrentTaskIdOf(*scheduler_),
                      scheduler_->NowNanos(), packet->flow_id, /*flow_phase=*/2);
  to.stack()->Receive(packet);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Network::DeliverToStack(PacketReceiver* stack,
                                                                 Packet* packet) {
  ForgetInFlight(packet);
  stack->Receive(packet);  // Takes the packet.
}

// Swap-removes the packet from in_flight_: O(1), and the list's order means nothing.
void Network::ForgetInFlight(Packet* packet) {
  const uint32_t index = packet->in_flight_index;
  DSIM_DCHECK(index < in_flight_.size() && in_flight_[index] == packet);
  Packet* last = in_flight_.back();
  in_flight_[index] = last;
  last->in_flight_index = index;
  in_flight_.pop_back();
}

void Network::Deliver(Packet* packet) {
  DSIM_DCHECK(!in_flight_.empty());
  if (packet->lost_ack) {
    if (packet->superseded) {
      if (scheduler_->has_listeners()) {
        NetworkHost* to = FindHost(packet->destination_host);
        AnnotatePacket("net.drop.superseded_ack", *packet, 2,
                       to != nullptr ? to->group() : kNoGroup);
      }
      ForgetInFlight(packet);
      ++packets_dropped_;
      packet->lost_ack = packet->superseded = false;  // FreePacket leaves them.
      FreePacket(packet);
      return;
    }
    if (auto it = lost_acks_.find(packet->source_connection);
        it != lost_acks_.end() && it->second == packet) {
      lost_acks_.erase(it);
      UpdatePlainMasks();
    }
    packet->lost_ack = false;
  }
  if (gates_active_ > 0 && Gated(*packet) && HoldOrDrop(packet)) return;
  ForgetInFlight(packet);
  NetworkHost* to = FindHost(packet->destination_host);
  DSIM_CHECK(to != nullptr, "a packet to unknown host ", packet->destination_host);
  if (scheduler_->has_listeners()) AnnotatePacket("net.deliver", *packet, 2, to->group());
  if (to->stack() != nullptr) {
    to->stack()->Receive(packet);  // Takes the packet.
    return;
  }
  // No socket layer on the host: nothing listens anywhere. Answer like a kernel with no
  // sockets: RST for TCP (unless it is one), port unreachable for UDP.
  const bool answer = (packet->kind == Packet::Kind::kTcp && !(packet->flags & Packet::kRst)) ||
                      packet->kind == Packet::Kind::kUdp;
  if (!answer) {
    FreePacket(packet);
    return;
  }
  Packet* reply = NewPacket();
  reply->kind = packet->kind == Packet::Kind::kTcp ? Packet::Kind::kTcp
                                                   : Packet::Kind::kPortUnreachable;
  reply->source = packet->destination;
  reply->destination = packet->source;
  reply->flags = Packet::kRst;
  reply->source_connection = packet->destination_connection;
  reply->destination_connection = packet->source_connection;
  reply->acknowledgment = packet->sequence + packet->payload.size();
  FreePacket(packet);
  Send(*to, reply);
}

void Network::CrashHost(NetworkHost& host) {
  DSIM_MISUSE(host.group() != kNoGroup, "CrashHost(\"", host.name(), "\"): already crashed");
  scheduler_->KillGroup(host.group());
  DetachHost(host);
}

void Network::DetachHost(NetworkHost& host) {
  std::unique_ptr<PacketReceiver> stack = host.take_stack();
  if (stack != nullptr) {
    stack->Detach();
    crashed_stacks_.push_back(std::move(stack));
  }
  if (host.group_ != kNoGroup && host.group_ < host_of_group_.size()) {
    host_of_group_[host.group_] = 0;
    if (host.group_ >= crashed_host_of_group_.size()) {
      crashed_host_of_group_.resize(host.group_ + 1, 0);
    }
    crashed_host_of_group_[host.group_] = host.id();
  }
  host.group_ = kNoGroup;
  // A crashed host is not paused: what was held for it now meets the dead host.
  if (IsPaused(host)) ResumeHost(host);
  DSIM_CHECK(host.stack() == nullptr && HostOfGroup(kNoGroup) == nullptr);
}

// ---- Gates -----------------------------------------------------------------------

bool Network::FaultChance(double probability, const char* label) {
  if (!(probability > 0)) return false;
  if (probability >= 1) return true;
  // Values at the top of the range are faults, so 0 (where shrinking goes) is none.
  constexpr uint64_t kRange = uint64_t{1} << 24;
  const auto faults = static_cast<uint64_t>(probability * kRange + 0.5);
  if (faults == 0) return false;
  return scheduler_->ChooseValue(kRange, label) >= kRange - faults;
}

bool Network::IsPaused(const NetworkHost& host) const {
  return host.id() < paused_.size() && paused_[host.id()];
}

bool Network::LinkBlocked(NetworkHostId from, NetworkHostId to) const {
  if (to < paused_.size() && paused_[to]) return true;
  auto it = gates_.find({from, to});
  return it != gates_.end() && (it->second.holds > 0 || it->second.cuts > 0);
}

bool Network::Gated(const Packet& packet) const {
  return LinkBlocked(packet.source_host, packet.destination_host);
}

// A packet arrived at a closed gate. Returns true if it was taken (held or dropped).
bool Network::HoldOrDrop(Packet* packet) {
  const NetworkHostId from = packet->source_host;
  const NetworkHostId to = packet->destination_host;
  auto gate = gates_.find({from, to});
  const bool held_or_paused =
      (to < paused_.size() && paused_[to]) || (gate != gates_.end() && gate->second.holds > 0);
  const bool stream = packet->kind == Packet::Kind::kTcp;
  NetworkHost* destination = FindHost(to);
  const GroupId group = destination != nullptr ? destination->group() : kNoGroup;
  const char* drop = nullptr;
  HeldLink* link = nullptr;
  size_t datagram_bytes = 0;
  if (!held_or_paused && !stream) {
    drop = "net.drop.partition";  // Only a partition cuts this link: the datagram is lost.
  } else if (!stream) {
    link = &held_[{from, to}];
    datagram_bytes = packet->payload.size() + options_.udp_datagram_overhead_bytes;
    if (link->datagram_bytes + datagram_bytes > options_.held_datagram_bytes_per_link_max) {
      drop = "net.drop.held_overflow";  // The queue in front of the closed gate is full.
    }
  }
  if (drop != nullptr) {
    if (scheduler_->has_listeners()) AnnotatePacket(drop, *packet, 2, group);
    ForgetInFlight(packet);
    ++packets_dropped_;
    FreePacket(packet);
    return true;
  }
  if (scheduler_->has_listeners()) AnnotatePacket("net.hold", *packet, 0, group);
  packet->deliver_at_ns = internal::kNeverNanos;
  if (link == nullptr) link = &held_[{from, to}];
  link->packets.push_back(packet);
  link->datagram_bytes += datagram_bytes;
  return true;
}

// Sends on every held packet whose path is open again, in link order and, per link, in
// arrival order, 1 ns apart so that the strategy cannot reorder a stream's segments.
void Network::ReleaseHeld() {
  int64_t when = scheduler_->NowNanos();
  for (auto it = held_.begin(); it != held_.end();) {
    if (LinkBlocked(it->first.first, it->first.second)) {
      ++it;
      continue;
    }
    NetworkHost* from = FindHost(it->first.first);
    for (Packet* packet : it->second.packets) {
      when = internal::SaturatingAdd(when, 1);
      Schedule(packet, when);
    }
    // Later packets on this link must not overtake the released ones.
    if (from != nullptr && options_.fifo_links &&
        from->last_delivery_.size() > it->first.second) {
      from->last_delivery_[it->first.second] =
          std::max(from->last_delivery_[it->first.second], when);
    }
    it = held_.erase(it);
  }
}

void Network::Hold(NetworkHost& from, NetworkHost& to) {
  ++gates_[{from.id(), to.id()}].holds;
  ++gates_active_;
  scheduler_->Annotate(Annotation{"fault.hold",
                                  absl::StrCat("hold ", from.name(), " -> ", to.name()),
                                  from.group(), 0, 0});
}

bool Network::Release(NetworkHost& from, NetworkHost& to) {
  auto it = gates_.find({from.id(), to.id()});
  if (it == gates_.end() || it->second.holds == 0) return false;
  --it->second.holds;
  --gates_active_;
  DSIM_DCHECK(gates_active_ >= 0);
  scheduler_->Annotate(Annotation{"net.release",
                                  absl::StrCat("release ", from.name(), " -> ", to.name()),
                                  from.group(), 0, 0});
  ReleaseHeld();
  return true;
}

void Network::ChangeCut(NetworkHostId from, NetworkHostId to, int delta) {
  LinkGate& gate = gates_[{from, to}];
  gate.cuts += delta;
  gates_active_ += delta;
  DSIM_CHECK(gate.cuts >= 0 && gates_active_ >= 0, "partition bookkeeping went negative");
}

PartitionId Network::Partition(const std::vector<NetworkHostId>& side_a,
                               const std::vector<NetworkHostId>& side_b, bool one_way) {
  PartitionRecord record;
  for (NetworkHostId a : side_a) {
    DSIM_MISUSE(FindHost(a) != nullptr, "Partition: no host with id ", a);
    for (NetworkHostId b : side_b) {
      DSIM_MISUSE(FindHost(b) != nullptr, "Partition: no host with id ", b);
      if (a == b) continue;
      record.links.emplace_back(a, b);
      if (!one_way) record.links.emplace_back(b, a);
    }
  }
  for (const auto& [from, to] : record.links) ChangeCut(from, to, +1);
  const PartitionId id = ++last_partition_id_;
  std::string detail = absl::StrCat("partition ", id, one_way ? " (one-way) {" : " {");
  for (NetworkHostId a : side_a) absl::StrAppend(&detail, " ", FindHost(a)->name());
  absl::StrAppend(&detail, one_way ? " } -/-> {" : " } <-/-> {");
  for (NetworkHostId b : side_b) absl::StrAppend(&detail, " ", FindHost(b)->name());
  absl::StrAppend(&detail, " }");
  scheduler_->Annotate(Annotation{"fault.partition", detail, kNoGroup, 0, 0});
  partitions_.emplace(id, std::move(record));
  return id;
}

bool Network::Heal(PartitionId partition) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return false;
  for (const auto& [from, to] : it->second.links) ChangeCut(from, to, -1);
  partitions_.erase(it);
  scheduler_->Annotate(
      Annotation{"net.heal", absl::StrCat("partition ", partition, " healed"), kNoGroup, 0, 0});
  ReleaseHeld();
  return true;
}

void Network::HealAll() {
  while (!partitions_.empty()) Heal(partitions_.begin()->first);
}

void Network::PauseHost(NetworkHost& host) {
  if (paused_.size() <= host.id()) paused_.resize(host.id() + 1, false);
  if (paused_[host.id()]) return;
  paused_[host.id()] = true;
  ++gates_active_;
}

void Network::ResumeHost(NetworkHost& host) {
  if (!IsPaused(host)) return;
  paused_[host.id()] = false;
  --gates_active_;
  DSIM_DCHECK(gates_active_ >= 0);
  ReleaseHeld();
}

std::vector<InFlightMessage> Network::InFlight(NetworkHostId from, NetworkHostId to) const {
  std::vector<InFlightMessage> messages;
  auto describe = [&](const Packet& p, bool held) {
    InFlightMessage m;
    m.kind = p.kind;
    m.source = p.source;
    m.destination = p.destination;
    m.flags = p.flags;
    m.sequence = p.sequence;
    m.payload_bytes = p.payload.size();
    m.sent_at = internal::EpochNanosToTime(p.sent_at_ns);
    m.deliver_at = held ? absl::InfiniteFuture() : internal::EpochNanosToTime(p.deliver_at_ns);
    m.held = held;
    m.flow_id = p.flow_id;
    m.description = p.ToString();
    messages.push_back(std::move(m));
  };
  for (const Packet* p : in_flight_) {
    const bool held = p->deliver_at_ns == internal::kNeverNanos;
    if (!held && p->source_host == from && p->destination_host == to) describe(*p, false);
  }
  // in_flight_ has no order: sort by arrival, then by sending (flow ids grow).
  std::sort(messages.begin(), messages.end(), [](const auto& a, const auto& b) {
    return a.deliver_at != b.deliver_at ? a.deliver_at < b.deliver_at : a.flow_id < b.flow_id;
  });
  if (auto it = held_.find({from, to}); it != held_.end()) {
    for (const Packet* p : it->second.packets) describe(*p, true);
  }
  return messages;
}

int Network::InjectReset(NetworkHost& a, NetworkHost& b) {
  scheduler_->Annotate(Annotation{"fault.reset",
                                  absl::StrCat("reset connections ", a.name(), " <-> ", b.name()),
                                  a.group(), 0, 0});
  int reset = 0;
  if (a.stack() != nullptr) reset += a.stack()->ResetConnectionsWith(b);
  if (&a != &b && b.stack() != nullptr) reset += b.stack()->ResetConnectionsWith(a);
  return reset;
}

namespace {

// As an Annotation for every listener (the trace records the same as the raw path), or
// raw when the fast path could not serve (the trace's block is full, the kind new to it).
ABSL_ATTRIBUTE_NOINLINE void AnnotatePacketSlow(Scheduler& scheduler, absl::string_view category,
                                                const AnnotationKind* kind, const Packet& packet,
                                                int flow_phase, GroupId group);

// As an Annotation for every listener (the trace records the same as the raw path).
ABSL_ATTRIBUTE_NOINLINE void AnnotatePacketForListeners(Scheduler& scheduler,
                                                        absl::string_view category,
                                                        const Packet& packet, int flow_phase,
                                                        GroupId group) {
  Annotation annotation;  // Not aggregate-initialized: the payload words stay unset.
  annotation.category = category;
  annotation.group = group;
  annotation.flow_id = packet.flow_id;
  annotation.flow_phase = flow_phase;
  annotation.format = Packet::FormatTraceWords;
  annotation.payload.word_count = static_cast<uint8_t>(packet.ToTraceWords(annotation.payload.words));
  // A delivery carries the packet its send did (packets do not change in flight).
  annotation.repeats_flow_start = category == "net.deliver";
  scheduler.Annotate(annotation);
}

void AnnotatePacketSlow(Scheduler& scheduler, absl::string_view category,
                        const AnnotationKind* kind, const Packet& packet, int flow_phase,
                        GroupId group) {
  if (TraceSink* sink = kind != nullptr ? scheduler.SoleTraceSink(*kind) : nullptr) {
    if (kind == &kNetDeliver && packet.flow_id != 0) {
      sink->AnnotateRepeat(*kind, group, CurrentTaskIdOf(scheduler), scheduler.NowNanos(),
                           packet.flow_id, flow_phase);
      return;
    }
    uint64_t* words = sink->BeginAnnotation(*kind, group, CurrentTaskIdOf(scheduler),
                                            scheduler.NowNanos(), packet.flow_id, flow_phase,
                                            /*text=*/nullptr);
    sink->EndAnnotation(words, packet.ToTraceWords(words));
    return;
  }
  AnnotatePacketForListeners(scheduler, category, packet, flow_phase, group);
}

}  // namespace

// The category as a string_view: a literal's length is known where it is passed.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Network::AnnotatePacket(absl::string_view category,
                                                                 const Packet& packet,
                                                                 int flow_phase, GroupId group) {
  // The hot two go straight into the trace's block when the trace alone hears them
  // (the same record as the Annotation below would give it).
  const AnnotationKind* kind = category == "net.send"      ? &kNetSend
                               : category == "net.deliver" ? &kNetDeliver
                                                           : nullptr;
  if (TraceSink* sink = kind != nullptr ? scheduler_->SoleTraceSink(*kind) : nullptr) {
    if (kind == &kNetDeliver && packet.flow_id != 0) {  // The packet its send recorded.
      if (ABSL_PREDICT_TRUE(sink->TryAnnotateRepeat(*kind, group, CurrentTaskIdOf(*scheduler_),
                                                    scheduler_->NowNanos(), packet.flow_id,
                                                    flow_phase))) {
        return;
      }
      return AnnotatePacketSlow(*scheduler_, category, kind, packet, flow_phase, group);
    }
    uint64_t* words =
        sink->TryBeginAnnotation(*kind, group, CurrentTaskIdOf(*scheduler_),
                                 scheduler_->NowNanos(), packet.flow_id, flow_phase,
                                 /*text=*/nullptr);
    if (ABSL_PREDICT_TRUE(words != nullptr)) {
      sink->EndAnnotation(words, TraceWordsOf(packet, words));
      return;
    }
  }
  AnnotatePacketSlow(*scheduler_, category, kind, packet, flow_phase, group);
}

}  // namespace dsim
