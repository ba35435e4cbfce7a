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
// Gates. Between a packet's sending and its arrival the network applies the gates a
// test controls: a link on Hold, a partition that cuts a link, a paused destination.
// They are checked when the packet arrives, so packets already on the wire are caught
// too. A held packet waits, in order, until every gate on its path opens again. A cut
// link holds TCP segments (a stream stalls, as a real one retransmitting into the void
// would, and resumes after the heal) but drops datagrams. InFlight lists both kinds.
//
// Crashes. CrashHost (or a Simulation's crash) detaches the host's socket layer and
// unbinds its group: the dead incarnation's tasks find no host (their socket calls fail
// with EPERM and touch nothing), and packets that reach the host meet no stack and are
// answered with RST or port unreachable, until BindGroup gives it a new incarnation.
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
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/scheduler.h"

namespace dsim {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "IpAddress reads its bytes as little-endian words");

// An IP address. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d), so one type
// serves both families and dual-stack sockets compare addresses directly.
class IpAddress {
 public:
  IpAddress() = default;  // :: (the IPv6 unspecified address).
  static IpAddress FromInAddr(in_addr address) {
    IpAddress a;
    const uint64_t mapped_prefix_high = uint64_t{0xffff0000};  // Bytes 8-11: 00 00 ff ff.
    const uint64_t high = mapped_prefix_high | (uint64_t{address.s_addr} << 32);
    std::memcpy(a.bytes_.data() + 8, &high, 8);
    return a;
  }
  static IpAddress FromIn6Addr(const in6_addr& address);
  static IpAddress V4Any();       // 0.0.0.0
  static IpAddress V4Loopback();  // 127.0.0.1
  static IpAddress V6Any() { return IpAddress(); }
  static IpAddress V6Loopback();  // ::1
  // "10.0.0.1" or "fd00::1".
  static absl::StatusOr<IpAddress> Parse(absl::string_view text);

  // True for IPv4 (stored IPv4-mapped). Inline, on words: every packet asks.
  bool is_v4() const { return low() == 0 && static_cast<uint32_t>(high()) == 0xffff0000u; }
  // 0.0.0.0 or ::
  bool IsUnspecified() const {
    return low() == 0 && (high() == 0 || high() == uint64_t{0xffff0000});
  }
  // 127.0.0.0/8 or ::1
  bool IsLoopback() const {
    if (is_v4()) return bytes_[12] == 127;
    return low() == 0 && high() == uint64_t{1} << 56;
  }
  in_addr ToInAddr() const;    // Requires is_v4().
  in6_addr ToIn6Addr() const;  // IPv4 comes out IPv4-mapped.
  std::string ToString() const;

  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    // Two 8-byte compares: addresses are compared on every packet.
    return a.low() == b.low() && a.high() == b.high();
  }
  friend bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }
  friend bool operator<(const IpAddress& a, const IpAddress& b) { return a.bytes_ < b.bytes_; }
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    return H::combine(std::move(h), a.bytes_);
  }

 private:
  // The address as two 8-byte words, in memory order (bytes 0-7 and 8-15), as the
  // machine loads them (little-endian on every platform dsim runs on).
  uint64_t low() const {
    uint64_t word;
    std::memcpy(&word, bytes_.data(), 8);
    return word;
  }
  uint64_t high() const {
    uint64_t word;
    std::memcpy(&word, bytes_.data() + 8, 8);
    return word;
  }

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

class NetworkHost;

// A packet's bytes: the part of std::string a packet uses, with an inline append
// (std::string's is a call into libstdc++, ~32 instructions for a 1-byte segment).
// Up to kInlineBytes live in the object; a pooled packet keeps a grown buffer's
// capacity for its next use, as a cleared std::string does.
class PacketPayload {
 public:
  static constexpr size_t kInlineBytes = 15;  // What std::string keeps without allocating.

  PacketPayload() = default;
  PacketPayload(const PacketPayload& other) { append(other.data(), other.size()); }
  PacketPayload(PacketPayload&& other) noexcept { TakeFrom(other); }
  PacketPayload& operator=(const PacketPayload& other) {
    if (this != &other) {
      clear();
      append(other.data(), other.size());
    }
    return *this;
  }
  PacketPayload& operator=(PacketPayload&& other) noexcept {
    if (this != &other) {
      heap_.reset();
      TakeFrom(other);
    }
    return *this;
  }
  PacketPayload& operator=(absl::string_view bytes) {
    clear();
    append(bytes.data(), bytes.size());
    return *this;
  }

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The bytes as a view, so code written for the std::string this used to be (a link
  // model matching on content: absl::StrContains(packet.payload, "PING"),
  // std::string(packet.payload)) keeps working.
  absl::string_view view() const { return absl::string_view(data_, size_); }
  operator absl::string_view() const { return view(); }  // NOLINT: implicit on purpose.
  explicit operator std::string() const { return std::string(data_, size_); }
  size_t capacity() const { return capacity_; }
  void clear() { size_ = 0; }
  void append(const char* bytes, size_t length) {
    if (ABSL_PREDICT_FALSE(length > capacity_ - size_)) Grow(size_ + length);
    if (length == 1) {
      data_[size_] = *bytes;
    } else if (length > 0) {
      std::memcpy(data_ + size_, bytes, length);
    }
    size_ += length;
  }

 private:
  // Room for at least `needed` bytes (twice the capacity when that is more), keeping
  // the bytes held.
  void Grow(size_t needed) {
    size_t capacity = 2 * capacity_;
    if (capacity < needed) capacity = needed;
    std::unique_ptr<char[]> bigger(new char[capacity]);
    if (size_ > 0) std::memcpy(bigger.get(), data_, size_);
    heap_ = std::move(bigger);
    data_ = heap_.get();
    capacity_ = capacity;
  }
  // Takes `other`'s bytes (its buffer when on the heap); `other` is left empty, inline.
  void TakeFrom(PacketPayload& other) {
    size_ = other.size_;
    if (other.heap_ != nullptr) {
      heap_ = std::move(other.heap_);
      data_ = heap_.get();
      capacity_ = other.capacity_;
    } else {
      data_ = inline_;
      capacity_ = kInlineBytes;
      if (size_ > 0) std::memcpy(inline_, other.inline_, size_);
    }
    other.data_ = other.inline_;
    other.capacity_ = kInlineBytes;
    other.size_ = 0;
  }

  std::unique_ptr<char[]> heap_;
  char* data_ = inline_;
  size_t size_ = 0;
  size_t capacity_ = kInlineBytes;
  char inline_[kInlineBytes];
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
  PacketPayload payload;

  // Filled by the network.
  uint32_t source_host = 0;  // NetworkHostId
  uint32_t destination_host = 0;
  // The host of destination_host, set with it on every send (so the arrival path need
  // not look it up). Hosts live as long as the network.
  NetworkHost* destination_host_ptr = nullptr;
  uint64_t flow_id = 0;  // Links the send and delivery annotations of this packet.
  // When it was sent and when it is due, in nanoseconds since Scheduler::Epoch()
  // (Network::InFlight shows them as times); deliver_at_ns is INT64_MAX while held.
  int64_t sent_at_ns = 0;
  int64_t deliver_at_ns = 0;
  uint32_t in_flight_index = 0;  // Its slot in the network's in-flight list.
  // A "lost" pure ACK on its way late; `superseded` once a later segment of its
  // connection was sent (it is then dropped on arrival: that segment carries newer news).
  bool lost_ack = false;
  bool superseded = false;
  // The next packet in the network's pool while this one is free.
  Packet* next_free = nullptr;

  // A TCP segment with no data and no SYN, FIN or RST: it only acknowledges.
  bool IsPureAck() const {
    return kind == Kind::kTcp && payload.empty() && (flags & (kSyn | kFin | kRst)) == 0;
  }

  // "tcp 10.0.0.2:40000->10.0.0.1:80 [SA] seq=0 ack=0 win=131072 len=0"
  std::string ToString() const;
  // The header fields ToString() shows, as the words of a lazy trace annotation, and
  // the formatter that turns them into ToString()'s text. Writes at most kTraceWords
  // words and returns how many the header needs (3 for a UDP datagram over IPv4); the
  // formatter reads words past the payload's word_count as zero.
  static constexpr int kTraceWords = 8;
  int ToTraceWords(uint64_t* words) const;
  static void FormatTraceWords(const AnnotationPayload& payload, std::string* out);
};

// What happens to one packet: one delivery time per copy. No delivery is a drop; two
// are a duplicate. Each latency is measured from the moment of sending.
struct PacketFate {
  absl::InlinedVector<absl::Duration, 1> deliveries;
  // Exempts these deliveries from NetworkOptions::fifo_links, so that later packets may
  // overtake them (datagram reordering, late duplicates). TCP never sets it: streams
  // keep their order even on a lossy link.
  bool unordered = false;
  // A TCP segment "lost" and retransmitted: extra delay after the packet's place on the
  // link that holds back only the later packets of its own connection
  // (Packet::source_connection), as a hole in one receive window does; other
  // connections between the same hosts pass. A lost pure ACK holds back nothing and is
  // dropped on arrival if a later segment of its connection was sent meanwhile (a later
  // ACK supersedes it; a pure ACK is never retransmitted).
  absl::Duration connection_delay = absl::ZeroDuration();

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

  // A model with nothing to decide (a fault model with no fault active) says so here,
  // so the Network skips Decide and the PacketFate with a load and a test per packet,
  // no call. While `when` has kPlainWithBuggify, or has kPlainWithoutBuggify and the
  // network's buggify is off, Decide would return exactly PacketFate::DeliverAfter of
  // loopback_latency_ns (within a host) or latency_ns (between hosts) for every packet,
  // drawing no value, annotating nothing and changing no state. The model keeps it
  // current (set_plain) whenever that changes. By default nothing is plain.
  static constexpr uint8_t kPlainWithoutBuggify = 1;
  static constexpr uint8_t kPlainWithBuggify = 2;
  struct Plain {
    uint8_t when = 0;  // kPlainWithoutBuggify | kPlainWithBuggify, or 0: ask Decide.
    int64_t latency_ns = 0;
    int64_t loopback_latency_ns = 0;
  };
  const Plain& plain() const { return plain_; }
  // The bits of Plain::when that make a model plain on a network whose buggify is on or off.
  static uint8_t PlainMask(bool buggify_enabled) {
    return buggify_enabled ? kPlainWithBuggify : kPlainWithBuggify | kPlainWithoutBuggify;
  }
  // True, with Decide's one latency, when plain() covers `packet` (as the Network asks).
  bool PlainLatencyNanos(const Packet& packet, bool buggify_enabled, int64_t* latency_ns) const {
    if ((plain_.when & PlainMask(buggify_enabled)) == 0) return false;
    *latency_ns = packet.source_host == packet.destination_host ? plain_.loopback_latency_ns
                                                                : plain_.latency_ns;
    return true;
  }

 protected:
  void set_plain(const Plain& plain) { plain_ = plain; }

 private:
  Plain plain_;
};

// Every packet arrives after a fixed latency: `loopback_latency` within a host,
// `latency` between hosts. Links are reliable.
class FixedLatencyLinkModel final : public LinkModel {
 public:
  // Always plain (LinkModel::plain()): the Network never calls Decide.
  FixedLatencyLinkModel(absl::Duration latency, absl::Duration loopback_latency);
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
  // Datagrams (UDP and ICMP errors) a held link or a paused host keeps, in payload bytes
  // plus udp_datagram_overhead_bytes each, per link; beyond it they are dropped, as a
  // router's queue or a stopped host's full receive buffer drops them. TCP segments are
  // never dropped (the senders' windows bound them).
  size_t held_datagram_bytes_per_link_max = 1 << 20;
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
  // Keepalive defaults of sockets with SO_KEEPALIVE (net.ipv4.tcp_keepalive_time,
  // tcp_keepalive_intvl, tcp_keepalive_probes): idle time before the first probe, time
  // between probes, and unanswered probes before the connection fails with ETIMEDOUT.
  // TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT override them per socket, in seconds.
  // A connected socket with SO_KEEPALIVE always has a timer pending, so a run whose
  // tasks wait forever on a healthy such connection reaches its time limit instead of
  // being reported as a deadlock.
  absl::Duration tcp_keepalive_time = absl::Seconds(7200);
  absl::Duration tcp_keepalive_interval = absl::Seconds(75);
  int tcp_keepalive_probes = 9;
};

class NetworkHost;

// The socket layer of one host, as the network sees it: where packets for the host go.
class PacketReceiver {
 public:
  virtual ~PacketReceiver() = default;
  // Handles a packet addressed to this host. Runs in a timer callback (never blocks).
  // Takes ownership: the receiver hands `packet` back with Network::FreePacket when it
  // is done with it (at once, or later: a queued datagram keeps its packet until read).
  virtual void Receive(Packet* packet) = 0;
  // The host crashed: the receiver is no longer the host's, and must never send again
  // (a dead task still unwinding may touch its sockets; nothing may leave the host).
  virtual void Detach() {}
  // Resets, as an injected fault, every connection with a remote address of `peer`:
  // its users see ECONNRESET, nothing is sent. Returns how many were reset.
  virtual int ResetConnectionsWith(const NetworkHost& /*peer*/) { return 0; }
};

// Buggify: rare, legal misbehaviour that shakes out brittle code (FoundationDB's
// BUGGIFY). Off by default. Every decision is a ChooseValue with a "fault.buggify.*"
// label (0 = behave normally), so the shrinker can take each one away.
struct BuggifyOptions {
  bool enabled = false;
  // Chance that a stream read or write of more than one byte moves only a random
  // prefix (at least 1 byte), as real partial I/O does.
  double short_io_probability = 0.25;
  // Chance that a packet's latency is multiplied by `delay_factor`.
  double delay_probability = 0.05;
  int delay_factor = 10;
};

// One message on a link, as Network::InFlight shows it.
struct InFlightMessage {
  Packet::Kind kind = Packet::Kind::kTcp;
  Endpoint source;
  Endpoint destination;
  uint8_t flags = 0;          // TCP flags (Packet::kSyn, ...).
  uint64_t sequence = 0;      // TCP stream position of the first byte.
  size_t payload_bytes = 0;
  absl::Time sent_at;
  // When it arrives; absl::InfiniteFuture() while held (Hold, partition, paused host).
  absl::Time deliver_at;
  bool held = false;
  uint64_t flow_id = 0;       // As in the trace's send/deliver annotations.
  std::string description;    // Packet::ToString().
};

// Identifies a partition for Heal; 0 is never used.
using PartitionId = uint64_t;

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
  bool HasAddress(const IpAddress& address) const {
    if (address.IsLoopback()) return true;
    for (const IpAddress& a : addresses_) {
      if (a == address) return true;
    }
    return false;
  }
  Network& network() const { return *network_; }

  // Spawns a task on this host: its socket calls use this host's descriptors. Misuse
  // on a crashed host (no group) until BindGroup gives it a new one.
  TaskHandle Spawn(std::string name, TaskBody body, SpawnOptions options = {});

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
  // For NetworkOptions::fifo_links: last delivery time on the link to each host, by id,
  // in nanoseconds since Scheduler::Epoch() (INT64_MIN: none yet).
  std::vector<int64_t> last_delivery_;
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
  NetworkHost* FindHost(NetworkHostId id) const {
    return id == 0 || id > hosts_.size() ? nullptr : hosts_[id - 1].get();
  }
  // The host whose current group is `group`, or null.
  NetworkHost* HostOfGroup(GroupId group) const {  // Every socket call asks: inline.
    return group < host_of_group_.size() ? FindHost(host_of_group_[group]) : nullptr;
  }
  // The host whose crashed incarnation `group` was (its tasks may still be unwinding),
  // or null.
  NetworkHost* CrashedHostOfGroup(GroupId group) const;
  // The host that owns a configured (non-loopback) address, or null.
  NetworkHost* HostByAddress(const IpAddress& address) const {
    const AddressCacheEntry& entry = address_cache_[AddressHash{}(address) % kAddressCacheSize];
    if (entry.host != 0 && entry.address == address) return FindHost(entry.host);
    return HostByAddressSlow(address);
  }
  size_t host_count() const { return hosts_.size(); }

  // Sends a packet from `from` to the host that owns packet->destination.address
  // (loopback and the sender's own addresses stay on `from`). Takes ownership. Returns
  // false, and reclaims the packet, if no host owns the destination.
  bool Send(NetworkHost& from, Packet* packet);
  // Send to `to`, which must be Route(from, packet->destination.address): for a caller
  // that routed once and kept the answer (a connection's peer). Takes ownership.
  // Inline: the watched case branches off here, so that neither path pays the other's
  // stack frame.
  void SendTo(NetworkHost& from, NetworkHost& to, Packet* packet) {
    if (ABSL_PREDICT_FALSE(scheduler_->has_listeners())) return SendToObserved(from, to, packet);
    SendToUnobserved(from, to, packet);
  }
  // The host that owns `destination` as seen from `from` (loopback and from's own
  // addresses stay on `from`), or null. Addresses never change owner, so the answer
  // may be kept.
  NetworkHost* Route(NetworkHost& from, const IpAddress& destination);
  // Packets come from a pool, so a segment costs no allocation in steady state.
  Packet* NewPacket() {
    Packet* packet = free_packets_;
    if (ABSL_PREDICT_FALSE(packet == nullptr)) return AllocatePacket();
    free_packets_ = packet->next_free;
    return packet;
  }
  // Back to the pool, its fields reset as a new Packet's (payload capacity kept).
  void FreePacket(Packet* packet);
  // Packets allocated so far, and those of them back in the pool (the rest are in
  // flight, held, or queued in a socket). For tests of the pool's bookkeeping.
  size_t packets_allocated() const { return all_packets_.size(); }
  size_t packets_pooled() const;

  // Crashes a host as a power cut would: kills the tasks of its group (they unwind at
  // their next scheduling point) and then DetachHost. Restart it with BindGroup.
  void CrashHost(NetworkHost& host);
  // The network half of a crash, for a caller that killed the tasks itself (Simulation):
  // the host's socket layer is detached (descriptors vanish without FIN or RST; the old
  // stack stays alive, mute, until the network dies, so unwinding tasks may still touch
  // it), its group is unbound, and a pause on it ends. Later packets to the host meet
  // no stack: RST for TCP, port unreachable for UDP, until a new incarnation's stack.
  void DetachHost(NetworkHost& host);

  // ---- Gates and faults (see "Gates" above) ----------------------------------------

  // Holds every packet from `from` to `to` (one direction) that arrives from now on,
  // until Release. Holds nest: n Holds need n Releases.
  void Hold(NetworkHost& from, NetworkHost& to);
  // Undoes one Hold; held packets go on, in order, 1 ns apart. False if not held.
  bool Release(NetworkHost& from, NetworkHost& to);
  // Cuts every link from a host of `side_a` to a host of `side_b`, and back unless
  // `one_way`. TCP segments on a cut link are held (the stream stalls), datagrams and
  // ICMP are dropped. A host on both sides is not cut from itself.
  PartitionId Partition(const std::vector<NetworkHostId>& side_a,
                        const std::vector<NetworkHostId>& side_b, bool one_way = false);
  // Ends a partition; held segments whose path is clear go on. False if unknown.
  bool Heal(PartitionId partition);
  void HealAll();
  // While a host is paused, packets to it are held; ResumeHost lets them in.
  void PauseHost(NetworkHost& host);
  void ResumeHost(NetworkHost& host);
  bool IsPaused(const NetworkHost& host) const;
  // Whether packets from `from` to `to` would be held (or, for datagrams, dropped) now.
  bool LinkBlocked(NetworkHostId from, NetworkHostId to) const;
  // The messages on the link from `from` to `to`, held or flying, in delivery order
  // (held ones last, in the order they will be released).
  std::vector<InFlightMessage> InFlight(NetworkHostId from, NetworkHostId to) const;
  // Resets the established connections between two hosts, both ends (ECONNRESET).
  // Returns how many sockets were reset.
  int InjectReset(NetworkHost& a, NetworkHost& b);

  const BuggifyOptions& buggify() const { return buggify_; }
  void set_buggify(const BuggifyOptions& buggify) {
    buggify_ = buggify;
    UpdatePlainMasks();
  }
  // True with probability `probability`, as a strategy decision labelled `label` whose
  // value 0 means false (no fault). Draws nothing when `probability` is 0.
  bool FaultChance(double probability, const char* label);

  // A fresh connection identity, unique within this network.
  uint64_t NewConnectionId() { return ++last_connection_id_; }

  Scheduler& scheduler() const { return *scheduler_; }
  const NetworkOptions& options() const { return options_; }
  // The socket layer's message for its last call in this simulation that failed outside
  // any host (a timer callback, the run loop, a task not on a host). Per simulation, so
  // no other simulation's text can show through.
  std::string& outside_host_message() { return outside_host_message_; }
  // Counted, not kept: every packet that reaches SendTo takes one flow id (a duplicate
  // copy is one more packet sent), every packet in flight or held is in in_flight_, and
  // what was sent and is neither dropped nor in flight was delivered. So a packet's
  // path pays no counter.
  NetworkStats stats() const {
    NetworkStats stats;
    stats.packets_sent = last_flow_id_ + duplicate_packets_;
    stats.packets_dropped = packets_dropped_;
    stats.packets_in_flight = in_flight_.size();
    stats.packets_delivered = stats.packets_sent - stats.packets_dropped - stats.packets_in_flight;
    return stats;
  }
  void set_link_model(std::shared_ptr<LinkModel> model);

 private:
  void Deliver(Packet* packet);
  // SendTo's general path: any link model, listeners, connection holes.
  ABSL_ATTRIBUTE_NOINLINE void SendToGeneral(NetworkHost& from, NetworkHost& to,
                                             Packet* packet);
  void Dispatch(NetworkHost& from, NetworkHost& to, Packet* packet, const int64_t* latencies,
                size_t count, bool unordered, int64_t connection_delay);
  // Inline (network.cc): at a call site with a literal category the trace's raw path
  // folds to a few stores.
  inline void AnnotatePacket(absl::string_view category, const Packet& packet, int flow_phase,
                             GroupId group);

  Scheduler* scheduler_;
  NetworkOptions options_;
  std::shared_ptr<LinkModel> link_model_;
  // link_model_'s Plain (never null), and the bits of its `when` that put a packet on
  // SendTo's short path: LinkModel::PlainMask of buggify_ on fifo links while no
  // connection has a hole or a lost ACK in flight, else 0. Kept current by
  // UpdatePlainMasks wherever one of them changes (set_buggify, Dispatch, Deliver).
  const LinkModel::Plain* plain_ = nullptr;
  uint8_t short_path_mask_ = 0;
  void UpdatePlainMasks() {
    short_path_mask_ = options_.fifo_links && connection_holes_.empty() && lost_acks_.empty()
                           ? LinkModel::PlainMask(buggify_.enabled)
                           : 0;
  }
  // SendTo's short path applies: a plain model (the default one, or a fault model with
  // no fault active) on fifo links, the link used before, and no connection with a hole
  // or a lost ACK in flight (all but the link folded into short_path_mask_).
  bool OnShortPath(const NetworkHost& from, const NetworkHost& to) const {
    DSIM_DCHECK(short_path_mask_ == 0 || (connection_holes_.empty() && lost_acks_.empty()));
    return (plain_->when & short_path_mask_) != 0 && from.last_delivery_.size() > to.id();
  }
  inline void SendPlain(NetworkHost& from, NetworkHost& to, Packet* packet, int64_t now_ns);
  // SendTo and DeliverCall when someone watches: the short paths with the trace's raw
  // records when the trace sink alone hears them, else the general paths.
  ABSL_ATTRIBUTE_NOINLINE void SendToObserved(NetworkHost& from, NetworkHost& to, Packet* packet);
  void SendToUnobserved(NetworkHost& from, NetworkHost& to, Packet* packet);
  ABSL_ATTRIBUTE_NOINLINE void DeliverObserved(NetworkHost& to, Packet* packet);
  ABSL_ATTRIBUTE_NOINLINE void DeliverObservedSlow(TraceSink& sink, NetworkHost& to,
                                                   Packet* packet);
  // The net.send record AnnotatePacket would write to `sink`.
  inline void RecordSend(TraceSink& sink, const NetworkHost& from, const Packet& packet,
                         int64_t now_ns, uint64_t flow_id);
  inline void DeliverToStack(PacketReceiver* stack, Packet* packet);
  std::vector<std::unique_ptr<NetworkHost>> hosts_;  // hosts_[i] has id i + 1.
  std::vector<NetworkHostId> host_of_group_;          // By group; 0 for none.
  std::vector<NetworkHostId> crashed_host_of_group_;  // By group of a dead incarnation.
  std::vector<std::unique_ptr<PacketReceiver>> crashed_stacks_;

  // Address -> host. Looked up only, never iterated (its order is salted per process).
  // Looked up for every packet between hosts: an inline two-word hash, not absl::Hash
  // (out of line in Debian's shared Abseil). Never iterated.
  struct AddressHash {
    size_t operator()(const IpAddress& a) const {
      uint64_t low, high;
      std::memcpy(&low, a.bytes().data(), 8);
      std::memcpy(&high, a.bytes().data() + 8, 8);
      const unsigned __int128 product =
          static_cast<unsigned __int128>(low ^ 0x9e3779b97f4a7c15ULL) * (high ^ 0xd6e8feb86659fd93ULL);
      return static_cast<size_t>(static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64));
    }
  };
  absl::flat_hash_map<IpAddress, NetworkHostId, AddressHash> owner_of_address_;
  // In front of it: addresses found lately (an address never changes owner), so most
  // lookups cost a multiply and a compare.
  struct AddressCacheEntry {
    IpAddress address;
    NetworkHostId host = 0;  // 0: empty.
  };
  static constexpr size_t kAddressCacheSize = 64;
  mutable AddressCacheEntry address_cache_[kAddressCacheSize];
  NetworkHost* HostByAddressSlow(const IpAddress& address) const;
  Packet* AllocatePacket();  // A new packet for the pool's owner list (NewPacket).
  // Every packet ever allocated (owned here, so in-flight packets are freed with the
  // network), and the ones free for reuse.
  std::vector<std::unique_ptr<Packet>> all_packets_;
  Packet* free_packets_ = nullptr;  // A stack through Packet::next_free (no capacity to grow).
  uint64_t last_connection_id_ = 0;
  uint64_t last_flow_id_ = 0;  // Also packets sent, less duplicate copies (stats()).
  uint64_t duplicate_packets_ = 0;
  uint64_t packets_dropped_ = 0;

  // Gates. `gates_active_` counts holds, cuts and paused hosts, so the arrival path
  // checks nothing while there are none.
  struct LinkGate {
    int holds = 0;
    int cuts = 0;
  };
  struct PartitionRecord {
    std::vector<std::pair<NetworkHostId, NetworkHostId>> links;
  };
  bool Gated(const Packet& packet) const;
  bool HoldOrDrop(Packet* packet);
  // Counts the packet as sent and in flight, due at when_ns.
  void PutInFlight(Packet* packet, int64_t when_ns);
  void Schedule(Packet* packet, int64_t when_ns);
  static void DeliverCall(void* network, uint64_t packet);
  void ReleaseHeld();
  void ForgetInFlight(Packet* packet);
  // Per-connection order for PacketFate::connection_delay (see there): returns when the
  // packet is due, given its place on the link.
  int64_t ConnectionOrder(Packet* packet, int64_t when_ns, int64_t hole_ns);
  // Connections with a "lost" segment still ahead of their later ones: source
  // connection -> delivery time of its last such packet. Lost pure ACKs in flight, by
  // source connection. Looked up only, never iterated.
  absl::flat_hash_map<uint64_t, int64_t> connection_holes_;  // Nanoseconds since Epoch().
  absl::flat_hash_map<uint64_t, Packet*> lost_acks_;
  void ChangeCut(NetworkHostId from, NetworkHostId to, int delta);
  int gates_active_ = 0;
  std::map<std::pair<NetworkHostId, NetworkHostId>, LinkGate> gates_;
  std::vector<bool> paused_;  // By host id.
  std::map<PartitionId, PartitionRecord> partitions_;
  PartitionId last_partition_id_ = 0;
  // Held packets per link, in arrival order. An ordered map: released in link order.
  struct HeldLink {
    std::deque<Packet*> packets;
    size_t datagram_bytes = 0;  // Charged against held_datagram_bytes_per_link_max.
  };
  std::map<std::pair<NetworkHostId, NetworkHostId>, HeldLink> held_;
  // Every packet scheduled or held (for InFlight), unordered; Packet::in_flight_index.
  std::vector<Packet*> in_flight_;
  BuggifyOptions buggify_;
  std::string outside_host_message_;
};

}  // namespace dsim

#endif  // DSIM_SIM_NETWORK_H_
