// Network: the simulated network of one simulation. Hosts with IPv4 and IPv6 addresses,
// and packets that travel between them as scheduler timers.
//
// Example:
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7});
//   dsim::Network network(&scheduler, dsim::NetworkOptions{.latency = absl::Microseconds(50)});
//   dsim::NetworkHost& server = network.AddHost("server", {"10.0.0.1", "fd00::1"});
//   dsim::NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
//   server.Spawn("listener", [] { /* dsim::Socket, dsim::Bind, ... (sockets/socket.h) */ });
//   client.Spawn("dialer", [] { /* dsim::Connect to 10.0.0.1 ... */ });
//   scheduler.Run();
//
// Model. Each host owns a scheduler group: its tasks (NetworkHost::Spawn) run in that
// group, and socket calls made by a task act on that host's descriptor table, port space
// and addresses. Every host also owns the loopback addresses 127.0.0.0/8 and ::1. The network
// carries Packets (TCP segments, UDP datagrams, ICMP port-unreachable errors) from host to
// host; the socket layer (sockets/) builds streams and datagram sockets on top.
//
// The fate of every packet is decided in ONE place, LinkModel::Decide: deliver after a
// latency, drop, or deliver several copies. The default model is a fixed latency; the
// fault model plugs in there. Packets travel as scheduler timers, so the strategy orders
// packets that arrive at the same instant, and everything replays by seed.
//
// Lifetime. The Network registers itself in the scheduler's kNetworkExtension slot and
// unregisters in its destructor. Declare it after the Scheduler. Destroying the Network
// ends the simulation: if tasks are still alive (a daemon server blocked in Accept), it
// first unwinds every task of the scheduler (Scheduler::Shutdown), so that no task is
// left blocked on a socket that is about to disappear.
#ifndef DSIM_SIM_NETWORK_H_
#define DSIM_SIM_NETWORK_H_

#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/scheduler.h"

namespace dsim {

// An IP address. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d), so one type
// serves both families and dual-stack sockets compare addresses directly.
class IpAddress {
 public:
  IpAddress() = default;  // :: (the IPv6 unspecified address).
  static IpAddress FromInAddr(in_addr address);
  static IpAddress FromIn6Addr(const in6_addr& address);
  static IpAddress V4Any();       // 0.0.0.0
  static IpAddress V4Loopback();  // 127.0.0.1
  static IpAddress V6Any() { return IpAddress(); }
  static IpAddress V6Loopback();  // ::1
  // "10.0.0.1" or "fd00::1".
  static absl::StatusOr<IpAddress> Parse(absl::string_view text);

  // True for IPv4 (stored IPv4-mapped).
  bool is_v4() const;
  bool IsUnspecified() const;  // 0.0.0.0 or ::
  bool IsLoopback() const;     // 127.0.0.0/8 or ::1
  in_addr ToInAddr() const;    // Requires is_v4().
  in6_addr ToIn6Addr() const;  // IPv4 comes out IPv4-mapped.
  std::string ToString() const;

  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    // Two 8-byte compares: addresses are compared on every packet.
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.bytes_.data(), 8);
    std::memcpy(&a1, a.bytes_.data() + 8, 8);
    std::memcpy(&b0, b.bytes_.data(), 8);
    std::memcpy(&b1, b.bytes_.data() + 8, 8);
    return a0 == b0 && a1 == b1;
  }
  friend bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }
  friend bool operator<(const IpAddress& a, const IpAddress& b) { return a.bytes_ < b.bytes_; }
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    return H::combine(std::move(h), a.bytes_);
  }

 private:
  std::array<uint8_t, 16> bytes_{};
};

// An address and a port (host byte order).
struct Endpoint {
  IpAddress address;
  uint16_t port = 0;

  std::string ToString() const;  // "10.0.0.1:80", "[fd00::1]:80"
  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.address == b.address && a.port == b.port;
  }
  friend bool operator!=(const Endpoint& a, const Endpoint& b) { return !(a == b); }
};

// One packet in flight. The socket layer fills it; the network only routes it by
// destination address and asks the LinkModel for its fate.
struct Packet {
  enum class Kind : uint8_t {
    kTcp,              // A TCP segment.
    kUdp,              // A UDP datagram.
    kPortUnreachable,  // ICMP port unreachable, for a UDP datagram nobody took.
  };
  // TCP flags.
  static constexpr uint8_t kSyn = 1, kAck = 2, kFin = 4, kRst = 8;
  // Asks the receiver to acknowledge at once instead of delaying the ACK.
  static constexpr uint8_t kAckNow = 16;

  Kind kind = Kind::kTcp;
  Endpoint source;
  Endpoint destination;
  uint8_t flags = 0;
  // Connection identities: a simulation shortcut for demultiplexing established
  // connections. 0 means "unknown" (a SYN does not know its peer yet).
  uint64_t source_connection = 0;
  uint64_t destination_connection = 0;
  // Stream positions in bytes since the start of the connection, per direction. A FIN
  // occupies one position after the last byte.
  uint64_t sequence = 0;
  uint64_t acknowledgment = 0;
  uint64_t window_bytes = 0;
  std::string payload;

  // Filled by the network.
  uint32_t source_host = 0;  // NetworkHostId
  uint32_t destination_host = 0;
  uint64_t flow_id = 0;  // Links the send and delivery annotations of this packet.

  // "tcp 10.0.0.2:40000->10.0.0.1:80 [SA] seq=0 ack=0 win=131072 len=0"
  std::string ToString() const;
};

// What happens to one packet: one delivery time per copy. No delivery is a drop; two
// are a duplicate. Each latency is measured from the moment of sending.
struct PacketFate {
  absl::InlinedVector<absl::Duration, 1> deliveries;

  static PacketFate Drop() { return PacketFate{}; }
  static PacketFate DeliverAfter(absl::Duration latency) {
    PacketFate fate;
    fate.deliveries.push_back(latency);
    return fate;
  }
};

// Decides the fate of every packet: the single hook for latency models and faults.
// Decide runs inside the sending call (a task, or a timer callback) and must draw any
// randomness from scheduler.random() or scheduler.ChooseValue, never elsewhere.
class LinkModel {
 public:
  virtual ~LinkModel() = default;
  virtual PacketFate Decide(const Packet& packet, Scheduler& scheduler) = 0;
};

// Every packet arrives after a fixed latency: `loopback_latency` within a host,
// `latency` between hosts. Links are reliable.
class FixedLatencyLinkModel final : public LinkModel {
 public:
  FixedLatencyLinkModel(absl::Duration latency, absl::Duration loopback_latency)
      : latency_(latency), loopback_latency_(loopback_latency) {}
  PacketFate Decide(const Packet& packet, Scheduler& scheduler) override;

 private:
  absl::Duration latency_;
  absl::Duration loopback_latency_;
};

// Everything that describes one simulated network. Defaults follow a stock Linux 6.x.
struct NetworkOptions {
  // One-way latency between two hosts, and within a host over loopback.
  absl::Duration latency = absl::Microseconds(100);
  absl::Duration loopback_latency = absl::Microseconds(10);
  // Null: a FixedLatencyLinkModel(latency, loopback_latency).
  std::shared_ptr<LinkModel> link_model;
  // Packets from one host to another arrive in the order they were sent, as on one
  // wire: a delivery never comes before (or at the same instant as) an earlier packet
  // of the same link; it is pushed 1 ns after it. False lets a LinkModel reorder.
  bool fifo_links = true;

  // SO_SNDBUF and SO_RCVBUF of new sockets, as getsockopt reports them. The simulation
  // counts payload bytes against them (Linux counts buffer overhead too).
  int tcp_send_buffer_bytes_default = 16384;
  int tcp_receive_buffer_bytes_default = 131072;
  int udp_send_buffer_bytes_default = 212992;
  int udp_receive_buffer_bytes_default = 212992;
  // net.core.wmem_max / rmem_max: setsockopt clamps to these before doubling.
  int send_buffer_bytes_max = 4194304;
  int receive_buffer_bytes_max = 4194304;
  // What each queued datagram costs in a UDP receive buffer beyond its payload.
  int udp_datagram_overhead_bytes = 768;

  // net.core.somaxconn: listen() clamps its backlog to this.
  int somaxconn = 4096;
  // net.ipv4.ip_local_port_range.
  uint16_t ephemeral_port_min = 32768;
  uint16_t ephemeral_port_max = 60999;
  // Open descriptors per host (RLIMIT_NOFILE); beyond it socket() fails with EMFILE.
  int descriptors_per_host_max = 1 << 20;

  // Largest payload of one TCP segment.
  size_t segment_bytes_max = 65483;
  // TCP timers: delayed ACK, first SYN retransmission (doubling each time), SYN
  // retransmissions before ETIMEDOUT (tcp_syn_retries), TIME_WAIT and FIN_WAIT2 spans.
  absl::Duration delayed_ack = absl::Milliseconds(40);
  absl::Duration syn_retransmit_initial = absl::Seconds(1);
  int syn_retries = 6;
  absl::Duration time_wait = absl::Seconds(60);
  absl::Duration fin_wait2_timeout = absl::Seconds(60);
};

// The socket layer of one host, as the network sees it: where packets for the host go.
class PacketReceiver {
 public:
  virtual ~PacketReceiver() = default;
  // Handles a packet addressed to this host. Runs in a timer callback (never blocks).
  // The network reclaims `packet` when this returns; the receiver may move its payload.
  virtual void Receive(Packet* packet) = 0;
};

class Network;

// Identity of a host in its network: 1, 2, ... in the order hosts were added.
using NetworkHostId = uint32_t;

// A simulated machine on the network: addresses, and (through the socket layer) a
// descriptor table and port space. Created by Network::AddHost; lives as long as the
// Network. Its tasks run in a scheduler group; a restarted host (a new incarnation) gets
// a new group through Network::BindGroup.
class NetworkHost {
 public:
  NetworkHostId id() const { return id_; }
  // The scheduler group of the host's current incarnation.
  GroupId group() const { return group_; }
  const std::string& name() const { return name_; }
  // Configured addresses (loopback not included), in the order given.
  const std::vector<IpAddress>& addresses() const { return addresses_; }
  // True for a configured address and for loopback (127.0.0.0/8, ::1).
  bool HasAddress(const IpAddress& address) const;
  Network& network() const { return *network_; }

  // Spawns a task on this host: its socket calls use this host's descriptors.
  TaskHandle Spawn(std::string name, std::function<void()> body, SpawnOptions options = {});

  // The host's socket layer. Null until sockets/ installs one on first use, and again
  // after a crash.
  PacketReceiver* stack() const { return stack_.get(); }
  void set_stack(std::unique_ptr<PacketReceiver> stack) { stack_ = std::move(stack); }
  std::unique_ptr<PacketReceiver> take_stack() { return std::move(stack_); }

 private:
  friend class Network;
  NetworkHost(Network* network, NetworkHostId id, GroupId group, std::string name,
              std::vector<IpAddress> addresses)
      : network_(network), id_(id), group_(group), name_(std::move(name)),
        addresses_(std::move(addresses)) {}

  Network* network_;
  NetworkHostId id_;
  GroupId group_;
  // Routing cache: the last destination address and the host that owns it.
  IpAddress last_destination_;
  NetworkHost* last_destination_host_ = nullptr;
  // For NetworkOptions::fifo_links: last delivery time on the link to each host, by id.
  std::vector<absl::Time> last_delivery_;
  std::string name_;
  std::vector<IpAddress> addresses_;
  std::unique_ptr<PacketReceiver> stack_;
};

// Counters for tests and traces. Invariant: sent == delivered + dropped + in_flight,
// counting each duplicate copy as one more sent.
struct NetworkStats {
  uint64_t packets_sent = 0;
  uint64_t packets_delivered = 0;
  uint64_t packets_dropped = 0;
  uint64_t packets_in_flight = 0;
};

class Network {
 public:
  // Registers in scheduler->extension(Scheduler::kNetworkExtension), which must be free.
  explicit Network(Scheduler* scheduler, NetworkOptions options = {});
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;
  ~Network();

  // The network of the simulation running on this thread, or null.
  static Network* Current();

  // Adds a host with the given addresses ("10.0.0.1", "fd00::1"). An address may belong
  // to one host only; loopback addresses are implicit. Misuse errors on bad input.
  // `group` is the scheduler group of the host's tasks; kNoGroup picks an unused one
  // (one above every group this network knows). A Simulation passes its host's group.
  NetworkHost& AddHost(std::string name, const std::vector<std::string>& addresses,
                       GroupId group = kNoGroup);
  // Moves a host to a new group (a restarted incarnation). The old group no longer
  // names the host.
  void BindGroup(NetworkHost& host, GroupId group);
  // The host with this id, or null.
  NetworkHost* FindHost(NetworkHostId id) const;
  // The host whose current group is `group`, or null.
  NetworkHost* HostOfGroup(GroupId group) const;
  // The host that owns a configured (non-loopback) address, or null.
  NetworkHost* HostByAddress(const IpAddress& address) const;
  size_t host_count() const { return hosts_.size(); }

  // Sends a packet from `from` to the host that owns packet->destination.address
  // (loopback and the sender's own addresses stay on `from`). Takes ownership. Returns
  // false, and reclaims the packet, if no host owns the destination.
  bool Send(NetworkHost& from, Packet* packet);
  // Packets come from a pool, so a segment costs no allocation in steady state.
  Packet* NewPacket();
  void FreePacket(Packet* packet);

  // Internal entry point for the fault model: destroys a host's socket layer abruptly,
  // as a crash does. Its descriptors vanish without FIN or RST; later packets to the
  // host meet a fresh, empty stack and are answered with RST (TCP) or port unreachable
  // (UDP). Kills the tasks of the host's group first (they unwind at their next
  // scheduling point; the old stack stays alive until the network dies, so they may
  // still touch their sockets while unwinding).
  void CrashHost(NetworkHost& host);

  // A fresh connection identity, unique within this network.
  uint64_t NewConnectionId() { return ++last_connection_id_; }

  Scheduler& scheduler() const { return *scheduler_; }
  const NetworkOptions& options() const { return options_; }
  const NetworkStats& stats() const { return stats_; }
  void set_link_model(std::shared_ptr<LinkModel> model);

 private:
  void Deliver(Packet* packet);
  NetworkHost* Route(NetworkHost& from, const IpAddress& destination);
  void AnnotatePacket(const char* category, const Packet& packet, int flow_phase,
                      GroupId group);

  Scheduler* scheduler_;
  NetworkOptions options_;
  std::shared_ptr<LinkModel> link_model_;
  std::vector<std::unique_ptr<NetworkHost>> hosts_;  // hosts_[i] has id i + 1.
  std::vector<NetworkHostId> host_of_group_;          // By group; 0 for none.
  std::vector<std::unique_ptr<PacketReceiver>> crashed_stacks_;

  // Address -> host. Looked up only, never iterated (its order is salted per process).
  absl::flat_hash_map<IpAddress, NetworkHostId> owner_of_address_;
  // Every packet ever allocated (owned here, so in-flight packets are freed with the
  // network), and the ones free for reuse.
  std::vector<std::unique_ptr<Packet>> all_packets_;
  std::vector<Packet*> free_packets_;
  uint64_t last_connection_id_ = 0;
  uint64_t last_flow_id_ = 0;
  NetworkStats stats_;
};

}  // namespace dsim

#endif  // DSIM_SIM_NETWORK_H_
