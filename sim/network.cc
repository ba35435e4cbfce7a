#include "sim/network.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"

namespace dsim {

// ---- IpAddress -------------------------------------------------------------------

namespace {
constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}  // namespace

IpAddress IpAddress::FromInAddr(in_addr address) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), kV4MappedPrefix, 12);
  std::memcpy(a.bytes_.data() + 12, &address.s_addr, 4);
  return a;
}

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

bool IpAddress::is_v4() const { return std::memcmp(bytes_.data(), kV4MappedPrefix, 12) == 0; }

bool IpAddress::IsUnspecified() const {
  if (is_v4()) return bytes_[12] == 0 && bytes_[13] == 0 && bytes_[14] == 0 && bytes_[15] == 0;
  return *this == IpAddress();
}

bool IpAddress::IsLoopback() const {
  if (is_v4()) return bytes_[12] == 127;
  return *this == V6Loopback();
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

std::string Packet::ToString() const {
  const char* kind_name = kind == Kind::kTcp ? "tcp" : kind == Kind::kUdp ? "udp" : "icmp-unreach";
  std::string s = absl::StrCat(kind_name, " ", source.ToString(), "->", destination.ToString());
  if (kind == Kind::kTcp) {
    std::string f;
    if (flags & kSyn) f += 'S';
    if (flags & kAck) f += 'A';
    if (flags & kFin) f += 'F';
    if (flags & kRst) f += 'R';
    absl::StrAppend(&s, " [", f, "] seq=", sequence, " ack=", acknowledgment,
                    " win=", window_bytes);
  }
  absl::StrAppend(&s, " len=", payload.size());
  return s;
}

// ---- Link models -----------------------------------------------------------------

PacketFate FixedLatencyLinkModel::Decide(const Packet& packet, Scheduler& scheduler) {
  return PacketFate::DeliverAfter(packet.source_host == packet.destination_host
                                      ? loopback_latency_
                                      : latency_);
}

// ---- NetworkHost ------------------------------------------------------------------------

bool NetworkHost::HasAddress(const IpAddress& address) const {
  if (address.IsLoopback()) return true;
  for (const IpAddress& a : addresses_) {
    if (a == address) return true;
  }
  return false;
}

TaskHandle NetworkHost::Spawn(std::string name, std::function<void()> body,
                              SpawnOptions options) {
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
  link_model_ = options_.link_model;
  if (link_model_ == nullptr) {
    link_model_ =
        std::make_shared<FixedLatencyLinkModel>(options_.latency, options_.loopback_latency);
  }
  scheduler_->SetExtension(Scheduler::kNetworkExtension, this);
}

Network::~Network() {
  // Tasks blocked on sockets must unwind before the sockets (and their wait queues) go.
  if (scheduler_->live_tasks() > 0 && Scheduler::Current() == nullptr) scheduler_->Shutdown();
  for (auto& host : hosts_) host->set_stack(nullptr);
  crashed_stacks_.clear();
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

NetworkHost* Network::FindHost(NetworkHostId id) const {
  if (id == 0 || id > hosts_.size()) return nullptr;
  return hosts_[id - 1].get();
}

NetworkHost* Network::HostOfGroup(GroupId group) const {
  if (group >= host_of_group_.size()) return nullptr;
  return FindHost(host_of_group_[group]);
}

NetworkHost* Network::HostByAddress(const IpAddress& address) const {
  auto it = owner_of_address_.find(address);
  return it == owner_of_address_.end() ? nullptr : FindHost(it->second);
}

Packet* Network::NewPacket() {
  if (free_packets_.empty()) {
    all_packets_.push_back(std::make_unique<Packet>());
    return all_packets_.back().get();
  }
  Packet* packet = free_packets_.back();
  free_packets_.pop_back();
  return packet;
}

void Network::FreePacket(Packet* packet) {
  // Field by field, keeping the payload's capacity for the next segment.
  packet->kind = Packet::Kind::kTcp;
  packet->source = Endpoint();
  packet->destination = Endpoint();
  packet->flags = 0;
  packet->source_connection = packet->destination_connection = 0;
  packet->sequence = packet->acknowledgment = packet->window_bytes = 0;
  packet->payload.clear();
  packet->source_host = packet->destination_host = 0;
  packet->flow_id = 0;
  free_packets_.push_back(packet);
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
  packet->source_host = from.id();
  packet->destination_host = to->id();
  packet->flow_id = ++last_flow_id_;
  PacketFate fate = link_model_->Decide(*packet, *scheduler_);
  if (scheduler_->has_listeners()) AnnotatePacket("net.send", *packet, 1, from.group());
  if (fate.deliveries.empty()) {
    ++stats_.packets_sent;
    ++stats_.packets_dropped;
    if (scheduler_->has_listeners()) AnnotatePacket("net.drop", *packet, 2, from.group());
    FreePacket(packet);
    return true;
  }
  absl::Time* last = nullptr;
  if (options_.fifo_links) {
    if (from.last_delivery_.size() < to->id() + 1) {
      from.last_delivery_.resize(to->id() + 1, absl::InfinitePast());
    }
    last = &from.last_delivery_[to->id()];
  }
  for (size_t i = 0; i < fate.deliveries.size(); ++i) {
    absl::Time when = scheduler_->Now() + fate.deliveries[i];
    if (last != nullptr) {
      if (when <= *last) when = *last + absl::Nanoseconds(1);
      *last = when;
    }
    Packet* copy = packet;
    if (i + 1 < fate.deliveries.size()) {  // Duplicates are copies; the last is the original.
      copy = NewPacket();
      *copy = *packet;
    }
    ++stats_.packets_sent;
    ++stats_.packets_in_flight;
    scheduler_->AddTimer(when, [this, copy] { Deliver(copy); });
  }
  return true;
}

void Network::Deliver(Packet* packet) {
  DSIM_DCHECK(stats_.packets_in_flight > 0);
  --stats_.packets_in_flight;
  ++stats_.packets_delivered;
  NetworkHost* to = FindHost(packet->destination_host);
  DSIM_CHECK(to != nullptr, "a packet to unknown host ", packet->destination_host);
  if (scheduler_->has_listeners()) AnnotatePacket("net.deliver", *packet, 2, to->group());
  if (to->stack() != nullptr) {
    to->stack()->Receive(packet);
    FreePacket(packet);
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
  scheduler_->KillGroup(host.group());
  std::unique_ptr<PacketReceiver> stack = host.take_stack();
  if (stack != nullptr) crashed_stacks_.push_back(std::move(stack));
}

void Network::AnnotatePacket(const char* category, const Packet& packet, int flow_phase,
                             GroupId group) {
  const std::string detail = packet.ToString();
  scheduler_->Annotate(Annotation{category, detail, group, packet.flow_id, flow_phase});
}

}  // namespace dsim
