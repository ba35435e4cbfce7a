// HostStack: one host's socket layer (descriptor table, port space, TCP and UDP state
// machines). The public calls in sockets/socket.h validate nothing themselves; they find
// the calling task's HostStack and forward here. Every method that can fail returns a
// negative errno and records a human-readable message (LastMessage).
//
// The TCP model is a real (if simplified) protocol over Packets: SYN / SYN-ACK handshake
// with SYN retransmission, byte sequence numbers, cumulative ACKs with a receive window,
// delayed ACKs, FIN and RST, TIME_WAIT, and reassembly of segments that arrive out of
// order. It has no retransmission of data: the fault model (sim/faults.h) never loses a
// TCP segment; it models a loss as a retransmission delay, and a partition holds
// segments until it heals. Keepalive (SO_KEEPALIVE) probes are ordinary segments, so a
// partition holds them and a dead peer answers them with RST. Every timer and packet
// goes through the scheduler, so runs replay by seed.
#ifndef DSIM_SOCKETS_INTERNAL_STACK_H_
#define DSIM_SOCKETS_INTERNAL_STACK_H_

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/nanos.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"
#include "net/network.h"
#include "sockets/internal/byte_queue.h"
#include "sockets/internal/ring_queue.h"
#include "sockets/internal/open_file.h"

namespace dsim::internal {

// TCP states, as in RFC 793 and Linux's sk_state.
enum class TcpState : uint8_t {
  kClosed,
  kListen,
  kSynSent,
  kEstablished,
  kCloseWait,
  kFinWait1,
  kFinWait2,
  kClosing,
  kLastAck,
  kTimeWait,  // Only the passive TIME_WAIT records that hold a port.
};
const char* TcpStateName(TcpState state);

// The socket-level connection state Linux keeps apart from the TCP state (sock->state):
// connect() and listen() answer from it.
enum class SockState : uint8_t { kUnconnected, kConnecting, kConnected, kDisconnecting };

// Bits of Socket::shutdown, as Linux's sk_shutdown.
inline constexpr int kRcvShutdown = 1;
inline constexpr int kSendShutdown = 2;

struct SocketState {
  uint64_t id = 0;  // Connection identity, unique in the network.
  int family = AF_INET;
  int type = SOCK_STREAM;
  int protocol = 0;
  TcpState state = TcpState::kClosed;
  SockState sock_state = SockState::kUnconnected;

  // Open-file-level state, shared by every descriptor dup() made of it.
  int descriptors = 0;       // Descriptors referring to it; 0 once the user closed all.
  int active_calls = 0;      // Calls in progress; the socket outlives them.
  bool release_pending = false;  // Closed while a call was in progress.
  bool nonblocking = false;  // O_NONBLOCK.
  int status_flags = 0;      // Other F_SETFL flags kept as set: O_APPEND, O_ASYNC, O_NOATIME.
  absl::Time read_deadline = absl::InfiniteFuture();
  absl::Time write_deadline = absl::InfiniteFuture();

  // Options.
  bool reuse_address = false;
  bool reuse_port = false;
  bool keepalive = false;
  bool nodelay = false;
  bool v6only = false;
  bool linger_on = false;
  int linger_seconds = 0;
  int send_buffer_bytes = 0;     // As getsockopt reports (Linux doubles what is set).
  int receive_buffer_bytes = 0;
  absl::Duration receive_timeout = absl::ZeroDuration();  // Zero: none.
  absl::Duration send_timeout = absl::ZeroDuration();

  // Addresses. `bound` means the socket holds its port in the port table.
  bool bound = false;
  bool passive_binding = false;  // Held through PortEntry::passive (children, TIME_WAIT).
  // SO_REUSEADDR as the passive binding was recorded (the option may change later).
  bool passive_reuse_address = false;
  bool port_locked = false;      // bind() named a port (SOCK_BINDPORT_LOCK).
  bool address_locked = false;   // bind() named an address (SOCK_BINDADDR_LOCK).
  Endpoint local;                // local.port != 0 once bound or connected.
  Endpoint remote;
  bool has_remote = false;

  int error = 0;      // Pending error (sk_err), reported once.
  int shutdown = 0;   // kRcvShutdown | kSendShutdown.
  bool done = false;  // A FIN arrived (SOCK_DONE).
  // Closed by a reset (received or injected). Linux unhashes such a socket, so later
  // segments of the connection find nothing and are answered with RST.
  bool reset = false;

  // TCP receive side.
  ByteQueue rx;
  uint64_t rcv_nxt = 0;
  std::map<uint64_t, PacketPayload> out_of_order;
  size_t out_of_order_bytes = 0;
  bool fin_received = false;
  uint64_t pending_fin_sequence = UINT64_MAX;  // A FIN seen ahead of missing data.
  uint64_t rcv_acked = 0;        // rcv_nxt as last acknowledged.
  uint64_t rcv_window_edge = 0;  // Highest position the peer was allowed to send to.
  // A delayed ACK is owed (Linux's ICSK_ACK_TIMER pending bit), due at delayed_ack_due_ns
  // (nanoseconds since Scheduler::Epoch()).
  // Its timer may outlive it, as Linux's does: an ACK that leaves clears only the bit,
  // and a timer that fires early for a later delayed ACK re-arms itself for its due time.
  bool delayed_ack_armed = false;
  bool delayed_ack_timer_pending = false;
  int64_t delayed_ack_due_ns = 0;

  // TCP send side: tx holds [snd_una, snd_una + tx.size()).
  ByteQueue tx;
  uint64_t snd_una = 0;
  uint64_t snd_nxt = 0;
  uint64_t snd_window_edge = 0;
  bool fin_queued = false;
  bool fin_sent = false;
  bool fin_acked = false;
  uint64_t peer_connection = 0;

  // Connecting.
  int syn_attempts = 0;
  TimerId syn_timer = kNoTimer;

  // Keepalive (SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT). A zero
  // idle or interval, or a zero probe count, means the NetworkOptions default, as
  // Linux's 0 means the sysctl. The timer exists only while SO_KEEPALIVE is on and the
  // connection is synchronized and still held by the user, so sockets without the
  // option never keep a run alive.
  absl::Duration keepalive_idle = absl::ZeroDuration();
  absl::Duration keepalive_interval = absl::ZeroDuration();
  int keepalive_probes_max = 0;
  int keepalive_probes_sent = 0;  // Unanswered probes (icsk_probes_out).
  absl::Time last_receive_time = absl::InfinitePast();  // Start of the idle period.
  TimerId keepalive_timer = kNoTimer;

  // Listening.
  int backlog = 0;
  std::deque<SocketState*> accept_queue;
  uint64_t listener = 0;  // For a child still in an accept queue: its listener's id.

  // UDP: the arrived packets themselves (source and payload), owned until read or
  // destroyed, then handed back to the network's pool.
  RingQueue<Packet*> datagrams;
  size_t datagram_bytes = 0;  // Charged against receive_buffer_bytes.

  // Counts readiness changes (every wake of the queues below, waiters or not), for
  // edge-triggered epoll.
  uint64_t edges = 0;
  WaitQueue readable;  // Readers, acceptors, pollers.
  WaitQueue writable;  // Writers, connectors, pollers.

  bool is_tcp() const { return type == SOCK_STREAM; }
  bool orphan() const { return descriptors == 0; }
  size_t send_free_bytes() const {
    const size_t used = tx.size();
    return used >= static_cast<size_t>(send_buffer_bytes) ? 0 : send_buffer_bytes - used;
  }
};

// Everything a receive call takes (recv, recvfrom, recvmsg, read).
struct RecvArgs {
  absl::Span<const iovec> iov;
  int flags = 0;
  sockaddr* name = nullptr;
  socklen_t* name_length = nullptr;  // recvfrom: in/out through user memory.
  msghdr* msg = nullptr;             // recvmsg: msg_namelen and msg_flags are written.
  const char* what = "Recv";
  // Instead of `iov`: receive into this string, sized to the bytes received (at most
  // into_max). The wrappers use it to skip a zero-filled buffer of the maximum size.
  std::string* into = nullptr;
  size_t into_max = 0;
  // With `into`: a datagram's source, binary, straight into the wrapper's Datagram
  // (from_ip, from_port), so no sockaddr is filled and decoded. Both or neither. Left
  // as they were when the call fails or the socket reports no source (a stream, a
  // socketpair end).
  IpAddress* from_address = nullptr;
  uint16_t* from_port = nullptr;
};

struct SendArgs {
  absl::Span<const iovec> iov;
  int flags = 0;
  const sockaddr* name = nullptr;
  socklen_t name_length = 0;
  const char* what = "Send";
};

class HostStack final : public PacketReceiver {
 public:
  HostStack(Network* network, NetworkHost* host);
  ~HostStack() override;

  // The stack of `host`, created on first use.
  static HostStack& Of(NetworkHost& host) {
    if (ABSL_PREDICT_FALSE(host.stack() == nullptr)) return Create(host);
    return *static_cast<HostStack*>(host.stack());
  }

  // ---- Calls (negative errno on failure) -----------------------------------------
  int Socket(int domain, int type, int protocol);
  int Bind(int fd, const sockaddr* address, socklen_t length);
  int Listen(int fd, int backlog);
  int Accept(int fd, sockaddr* address, socklen_t* length, int flags, SourceLocation where);
  int Connect(int fd, const sockaddr* address, socklen_t length, SourceLocation where);
  ssize_t Recv(int fd, const RecvArgs& args, SourceLocation where);
  // read(2) on socket `s` at descriptor `fd` with length > 0: Recv with one buffer and
  // no flags, specialized for streams.
  ssize_t RecvRead(SocketState* s, int fd, void* buffer, size_t length, SourceLocation where);
  // The socket at descriptor `fd`, or null (not open, or another kind of file).
  SocketState* SocketAt(int fd) { return Lookup(fd); }
  // Recv with one buffer, `flags` and no address or msghdr (recv, recvfrom without an
  // address), specialized for streams. `what` names the call in messages.
  ssize_t RecvOne(int fd, void* buffer, size_t length, int flags, const char* what,
                  SourceLocation where);
  ABSL_ATTRIBUTE_ALWAYS_INLINE ssize_t Send(int fd, const SendArgs& args, SourceLocation where) {
    SocketState* s = Lookup(fd);
    if (ABSL_PREDICT_TRUE(s != nullptr) && TcpSendsAtOnce(*s, args)) {
      // What SendGeneral does when the whole buffer fits (see TcpSendsAtOnce).
      const size_t length = args.iov[0].iov_len;
      TcpSendFitting(s, static_cast<const char*>(args.iov[0].iov_base), length);
      return static_cast<ssize_t>(length);
    }
    return SendGeneral(fd, s, args, where);
  }
  // Send with one buffer, `flags` and no address (write, send, sendto without one):
  // the same, with SendArgs built only for the general path (so the short path keeps
  // its values in registers). `what` names the call in messages.
  ABSL_ATTRIBUTE_ALWAYS_INLINE ssize_t SendOne(int fd, const void* buffer, size_t length,
                                               int flags, const char* what,
                                               SourceLocation where) {
    return SendOneOn(Lookup(fd), fd, buffer, length, flags, what, where);
  }
  // SendOne when the caller looked the socket up (`s` is Lookup(fd)).
  ABSL_ATTRIBUTE_ALWAYS_INLINE ssize_t SendOneOn(SocketState* s, int fd, const void* buffer,
                                                 size_t length, int flags, const char* what,
                                                 SourceLocation where) {
    if (ABSL_PREDICT_TRUE(s != nullptr) && TcpSendFits(*s, buffer, length, flags)) {
      TcpSendFitting(s, static_cast<const char*>(buffer), length);
      return static_cast<ssize_t>(length);
    }
    const iovec v{const_cast<void*>(buffer), length};
    SendArgs args;
    args.iov = absl::MakeConstSpan(&v, 1);
    args.flags = flags;
    args.what = what;
    return SendGeneral(fd, s, args, where);
  }
  // Send's general path; `s` is Lookup(fd).
  ssize_t SendGeneral(int fd, SocketState* s, const SendArgs& args, SourceLocation where);
  int Shutdown(int fd, int how);
  int Close(int fd);
  int GetName(int fd, sockaddr* address, socklen_t* length, bool peer);
  int Getsockopt(int fd, int level, int name, void* value, socklen_t* length);
  int Setsockopt(int fd, int level, int name, const void* value, socklen_t length);
  int SetNonblock(int fd, bool nonblocking);
  int GetFlags(int fd);
  // fcntl, ioctl and dup (stack_descriptors.cc).
  int Fcntl(int fd, int cmd, long arg);
  int Ioctl(int fd, unsigned long request, void* arg);
  int Dup(int fd, int new_fd, int flags, const char* call);  // new_fd < 0: lowest free.
  // True if `fd` is an open descriptor (socket or other file); records EBADF's message
  // if not.
  bool CheckOpen(int fd) {
    if (Lookup(fd) != nullptr || LookupFile(fd) != nullptr) return true;
    SocketState* ignored;
    LookupOrFail(fd, &ignored);
    return false;
  }
  int SetDeadline(int fd, absl::Time deadline, bool read, bool write);
  // The pending error of open descriptor `fd` (sock_error: read and cleared), and
  // setting it (recvmmsg keeps an error for later).
  int TakePendingError(int fd);
  void SetPendingError(int fd, int error);
  int Poll(pollfd* fds, nfds_t count, int timeout_ms, SourceLocation where);

  // ---- Descriptors that are not sockets (sockets/internal/open_file.h) -----------
  // Puts `file` at the lowest free descriptor and returns it, or -EMFILE. FD_CLOEXEC
  // is only reported (F_GETFD): no exec happens in a simulation.
  int InstallFile(std::shared_ptr<OpenFile> file, bool close_on_exec = false);
  // The file at `fd`, or null (a socket, or nothing).
  OpenFile* LookupFile(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < descriptors_.size() ? descriptors_[fd].file.get()
                                                                   : nullptr;
  }
  // A reference that keeps the file alive across a blocking call.
  std::shared_ptr<OpenFile> FileRef(int fd) const {
    return fd >= 0 && static_cast<size_t>(fd) < descriptors_.size() ? descriptors_[fd].file
                                                                   : nullptr;
  }
  ssize_t FileRead(int fd, absl::Span<const iovec> iov, SourceLocation where);
  ssize_t FileWrite(int fd, absl::Span<const iovec> iov, SourceLocation where);

  // ---- Readiness of any descriptor (poll, select, epoll) --------------------------
  // poll(2) bits of `fd` now, or POLLNVAL when it is not open.
  short Readiness(int fd);
  // How many times the readiness of `fd` may have changed (edge-triggered epoll).
  // For files, only the wakeups that match `events` count (see OpenFile::edges).
  uint64_t Edges(int fd, uint32_t events = 0);
  // The open description behind `fd` (socket or file), null if none: compared only,
  // to tell a reused descriptor number from the description registered earlier.
  const void* Identity(int fd);
  bool IsOpen(int fd) { return Lookup(fd) != nullptr || LookupFile(fd) != nullptr; }
  // One past the highest descriptor number in use or used before (close_range walks it).
  unsigned descriptor_table_size() const { return static_cast<unsigned>(descriptors_.size()); }
  // A descriptor that refers to the description `identity` (see Identity), or -1 once
  // its last descriptor closed. A scan of the table: for the rare case where the number
  // a registration was made under no longer refers to it (epoll after close of a dup).
  int AnyDescriptorOf(const void* identity);
  // Readiness of a socket known by its state (epoll's entries hold it): PollMask.
  short SocketReadiness(const SocketState& socket) const { return PollMask(socket); }
  // The queues every readiness change of `fd`'s description wakes (epoll's entries
  // watch them, WaitQueue::Watch), and the description: its socket state, or the file
  // when it is not a socket. False when `fd` is not open.
  bool ReadinessQueues(int fd, WaitQueue** readable, WaitQueue** writable,
                       SocketState** socket, OpenFile** file) {
    *socket = Lookup(fd);
    *file = *socket == nullptr ? LookupFile(fd) : nullptr;
    if (*socket != nullptr) {
      *readable = &(*socket)->readable;
      *writable = &(*socket)->writable;
    } else if (*file != nullptr) {
      *readable = &(*file)->readable();
      *writable = &(*file)->writable();
    }
    return *socket != nullptr || *file != nullptr;
  }

  // Messages: the last failure of each task.
  int Fail(int error, std::string message);
  // Fail with the message absl::StrCat(parts...), out of line: the hot calls' frames
  // then hold no AlphaNum buffers or strings (nor the stack protector those bring).
  template <typename... Parts>
  ABSL_ATTRIBUTE_NOINLINE int FailWith(int error, Parts... parts) {
    return Fail(error, absl::StrCat(parts...));
  }
  const std::string& LastMessage(TaskId task) const;

  // ---- Network side ------------------------------------------------------------
  void Receive(Packet* packet) override;
  // The host crashed: from now on nothing this stack does leaves the host.
  void Detach() override { detached_ = true; }
  // Injected reset: every TCP connection to `peer` gets ECONNRESET, in socket-id order.
  int ResetConnectionsWith(const NetworkHost& peer) override;

  NetworkHost& host() const { return *host_; }
  Scheduler& scheduler() const { return *scheduler_; }  // host().network().scheduler()
  size_t open_descriptors() const { return open_descriptors_; }
  size_t socket_count() const { return sockets_.size(); }

 private:
  struct PortEntry {
    std::vector<SocketState*> sockets;  // Bound sockets other than children and TIME_WAIT.
    // Accepted children and TIME_WAIT records: (local address, SO_REUSEADDR) -> count.
    std::map<std::pair<IpAddress, bool>, uint32_t> passive;
    uint32_t passive_count = 0;
    uint32_t time_wait_count = 0;
    bool empty() const { return sockets.empty() && passive_count == 0; }
  };

  static HostStack& Create(NetworkHost& host);

  // Descriptors and sockets.
  SocketState* Lookup(int fd) {
    if (fd < 0 || static_cast<size_t>(fd) >= descriptors_.size()) return nullptr;
    return descriptors_[fd].socket;
  }
  // The socketpair end at `fd`, or null.
  UnixSocket* UnixSocketAt(int fd) const {
    OpenFile* file = LookupFile(fd);
    return file == nullptr ? nullptr : file->AsUnixSocket();
  }
  // The same, holding the description alive across a blocking call (another task may
  // close the descriptor meanwhile).
  std::shared_ptr<UnixSocket> UnixSocketRef(int fd) const {
    std::shared_ptr<OpenFile> file = FileRef(fd);
    UnixSocket* end = file == nullptr ? nullptr : file->AsUnixSocket();
    return end == nullptr ? nullptr : std::shared_ptr<UnixSocket>(std::move(file), end);
  }
  int LookupOrFail(int fd, SocketState** out);
  int FailBadDescriptor(int fd);
  // The live socket with connection id `id`, or null. Every segment looks its socket
  // up, so a small direct-mapped cache answers first (ids are dense: the network
  // numbers connections 1, 2, ...); ForgetSocket keeps it honest.
  SocketState* FindSocket(uint64_t id) {
    const SocketCacheEntry& entry = socket_cache_[id % kSocketCacheSize];
    if (ABSL_PREDICT_TRUE(entry.id == id)) return entry.socket;
    return FindSocketSlow(id);
  }
  SocketState* FindSocketSlow(uint64_t id);
  // Drops `id` from the cache (the socket is destroyed or changes its id).
  void ForgetSocket(uint64_t id) {
    SocketCacheEntry& entry = socket_cache_[id % kSocketCacheSize];
    if (entry.id == id) entry = SocketCacheEntry{};
  }
  SocketState* NewSocket(int family, int type, int protocol);
  // Puts what open descriptor `source` refers to at reserved descriptor `fd`.
  void InstallCopy(int fd, int source, bool close_on_exec);
  // Puts `file` at reserved descriptor `fd` (dup of a file).
  void InstallFileAt(int fd, std::shared_ptr<OpenFile> file, bool close_on_exec);
  // Closes descriptor `fd` holding an OpenFile.
  int CloseFile(int fd);
  int FileFcntl(int fd, int cmd, long arg);
  // F_DUPFD(_CLOEXEC), F_GETFD, F_SETFD for any kind; OpenFile::kFcntlNotHandled otherwise.
  int DescriptorFcntl(int fd, int cmd, long arg);
  void MaybeDestroy(SocketState* socket);
  void Destroy(SocketState* socket);
  // The end of a call that used `socket` (CallGuard): the last call out releases a
  // socket closed meanwhile.
  void EndCall(SocketState* socket) {
    DSIM_DCHECK(socket->active_calls > 0);
    if (--socket->active_calls == 0 && ABSL_PREDICT_FALSE(socket->release_pending)) {
      ReleaseAfterCalls(socket);
    }
  }
  ABSL_ATTRIBUTE_NOINLINE void ReleaseAfterCalls(SocketState* socket);
  friend class CallGuard;

  // Ports.
  PortEntry& Ports(const SocketState& socket, uint16_t port);
  // The bound sockets on `port`, or null. Every datagram asks, so the last answer per
  // protocol is cached (cleared whenever the port tables change: flat_hash_map entries
  // move when it grows).
  PortEntry* FindPorts(int type, uint16_t port) {
    const PortCache& cache = port_cache_[type == SOCK_STREAM ? 0 : 1];
    if (cache.entry != nullptr && cache.port == port) return cache.entry;
    return FindPortsSlow(type, port);
  }
  PortEntry* FindPortsSlow(int type, uint16_t port);
  void ForgetPortCache() { port_cache_[0].entry = port_cache_[1].entry = nullptr; }
  bool Conflicts(const SocketState& socket, const Endpoint& local, const PortEntry& entry,
                 bool for_listen) const;
  int BindTo(SocketState* socket, const Endpoint& local);
  int AutoBind(SocketState* socket, const IpAddress& address, bool for_connect);
  void Unbind(SocketState* socket);
  void BindPassive(SocketState* socket);

  // Addresses.
  int ParseAddress(const SocketState& socket, const sockaddr* address, socklen_t length,
                   Endpoint* out, bool* unspecified_family, const char* call);
  bool FamilyAccepts(const SocketState& socket, const IpAddress& address) const;
  // Picks the source address for a packet of `socket` to *destination (an unspecified
  // destination becomes loopback), and the host it goes to (`to`, when not null).
  int Route(const SocketState& socket, Endpoint* destination, IpAddress* source,
            NetworkHost** to = nullptr);
  // The host that owns `address` as seen from this host (network_->Route), or null.
  // Every packet asks, so a small direct-mapped cache answers first: an address never
  // changes owner (unroutable addresses are not cached: a later AddHost may own them).
  NetworkHost* RouteHost(const IpAddress& address) {
    RouteCacheEntry& entry = route_cache_[RouteCacheIndex(address)];
    if (ABSL_PREDICT_TRUE(entry.host != nullptr && entry.address == address)) return entry.host;
    return RouteHostSlow(address);
  }
  NetworkHost* RouteHostSlow(const IpAddress& address);
  enum class RouteFailure { kMappedToV6, kV6ToV4, kNoRoute };
  ABSL_ATTRIBUTE_NOINLINE int RouteFailed(RouteFailure failure, const IpAddress& bound,
                                          const IpAddress& to);
  static size_t RouteCacheIndex(const IpAddress& address) {
    uint64_t low, high;
    std::memcpy(&low, address.bytes().data(), 8);
    std::memcpy(&high, address.bytes().data() + 8, 8);
    return static_cast<size_t>(((low ^ high) * 0x9e3779b97f4a7c15ULL) >> 59);  // 32 entries.
  }
  socklen_t FillAddress(const SocketState& socket, const Endpoint& endpoint,
                        sockaddr_storage* out) const;
  int CopyAddressOut(const SocketState& socket, const Endpoint& endpoint, sockaddr* address,
                     socklen_t* length, bool empty) {
    if (ABSL_PREDICT_TRUE(length != nullptr && socket.family == AF_INET && !empty &&
                          address != nullptr &&
                          static_cast<int>(*length) >= static_cast<int>(sizeof(sockaddr_in)))) {
      // The whole sockaddr_in fits (recvfrom, accept): FillAddress's bytes, written
      // directly (every datagram received comes through here).
      sockaddr_in in;
      std::memset(&in, 0, sizeof(in));
      in.sin_family = AF_INET;
      in.sin_port = htons(endpoint.port);
      std::memcpy(&in.sin_addr, endpoint.address.bytes().data() + 12, 4);  // IPv4-mapped.
      std::memcpy(address, &in, sizeof(in));
      *length = sizeof(in);
      return 0;
    }
    return CopyAddressOutSlow(socket, endpoint, address, length, empty);
  }
  int CopyAddressOutSlow(const SocketState& socket, const Endpoint& endpoint, sockaddr* address,
                         socklen_t* length, bool empty);

  // Blocking.
  bool WaitUntil(SocketState* socket, WaitQueue& queue, absl::Time deadline, const char* what,
                 SourceLocation where);
  // WaitUntil(socket, socket->readable, Deadline(*socket, true, start), ...), with the
  // deadline read now. Without a read deadline or SO_RCVTIMEO that deadline is
  // InfiniteFuture, never at or before Now(): the wait is entered directly.
  bool WaitReadable(SocketState* socket, absl::Time start, const char* what,
                    SourceLocation where) {
    if (socket->read_deadline == absl::InfiniteFuture() &&
        socket->receive_timeout == absl::InfiniteDuration()) {
      return socket->readable.Wait(what, where) == WakeReason::kWoken;
    }
    return WaitUntil(socket, socket->readable, Deadline(*socket, true, start), what, where);
  }
  absl::Time Deadline(const SocketState& socket, bool read, absl::Time start) const;
  // Deadline's part for a socket with SO_RCVTIMEO/SO_SNDTIMEO, out of line: its
  // absl::Time arithmetic would weigh on every blocking call's frame.
  ABSL_ATTRIBUTE_NOINLINE absl::Time DeadlineWithTimeout(absl::Time deadline,
                                                         absl::Duration timeout,
                                                         absl::Time start) const;
  absl::Time CallStart(const SocketState& socket, bool read) const;

  // TCP.
  // True when a send on `s` takes the whole of args' one buffer at once: a connected
  // stream with room for it, no error, no shutdown, no deadline, no flag that changes
  // anything, no address, no buggify. Then nothing can block, fail or be cut short, and
  // Send skips its general path (and the call guard: nothing can close the socket
  // while no other task runs).
  bool TcpSendsAtOnce(const SocketState& s, const SendArgs& args) const {
    return args.iov.size() == 1 && args.name == nullptr &&
           TcpSendFits(s, args.iov[0].iov_base, args.iov[0].iov_len, args.flags);
  }
  // TcpSendsAtOnce for one buffer and no address.
  bool TcpSendFits(const SocketState& s, const void* buffer, size_t length, int flags) const {
    return s.is_tcp() && (flags & MSG_OOB) == 0 &&
           (s.state == TcpState::kEstablished || s.state == TcpState::kCloseWait) &&
           s.error == 0 && (s.shutdown & kSendShutdown) == 0 && length > 0 &&
           buffer != nullptr && s.send_free_bytes() >= length &&
           s.write_deadline == absl::InfiniteFuture() && !network_->buggify().enabled;
  }
  // Appends the `length` bytes TcpSendFits allowed and pumps. When everything queued
  // before was sent and the bytes fit the peer's window and one segment, TcpPump would
  // send exactly one segment of them: sent here without its loop.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void TcpSendFitting(SocketState* s, const char* data,
                                                   size_t length) {
    const uint64_t end_before = s->snd_una + s->tx.size();
    s->tx.Append(data, length);
    if (ABSL_PREDICT_TRUE(s->snd_nxt == end_before && s->peer_connection != 0 &&
                          !s->fin_queued && length <= options_.segment_bytes_max &&
                          s->snd_window_edge > s->snd_nxt &&
                          s->snd_window_edge - s->snd_nxt >= length)) {
      const uint64_t end = end_before + length;
      // TcpPump's immediate-ACK request (urgent_ack) for this segment.
      const bool urgent_ack =
          (end - s->snd_una) * 2 >= static_cast<uint64_t>(s->send_buffer_bytes) ||
          s->snd_nxt + length >= s->snd_window_edge;
      TcpSendSegmentInline(s, Packet::kAck | (urgent_ack ? Packet::kAckNow : 0), s->snd_nxt,
                           s->tx.At(s->snd_nxt - s->snd_una), length);
      s->snd_nxt += length;
      return;
    }
    TcpPump(s);
  }
  int TcpConnect(SocketState* socket, const Endpoint& destination, absl::Time start,
                 SourceLocation where);
  int TcpDisconnect(SocketState* socket);
  ssize_t TcpRecv(SocketState* socket, const RecvArgs& args, size_t length, absl::Time start,
                  SourceLocation where);
  ssize_t TcpSend(SocketState* socket, const SendArgs& args, size_t length, absl::Time start,
                  SourceLocation where);
  void TcpRelease(SocketState* socket);
  void TcpPump(SocketState* socket);
  // Queues our FIN after the data already queued (shutdown(SHUT_WR) or close()):
  // ESTABLISHED becomes FIN_WAIT1 and CLOSE_WAIT becomes LAST_ACK.
  void QueueFin(SocketState* socket);
  void TcpSendSegment(SocketState* socket, uint8_t flags, uint64_t sequence, const char* data,
                      size_t length);
  // TcpSendSegment's body, inline where a write sends its segment (TcpSendFitting).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void TcpSendSegmentInline(SocketState* s, uint8_t flags,
                                                         uint64_t sequence, const char* data,
                                                         size_t length) {
    Packet* p = network_->NewPacket();
    p->kind = Packet::Kind::kTcp;
    p->source = s->local;
    p->destination = s->remote;
    p->flags = flags;
    p->source_connection = s->id;
    p->destination_connection = s->peer_connection;
    p->sequence = sequence;
    p->acknowledgment = s->rcv_nxt + (s->fin_received ? 1 : 0);
    p->window_bytes = TcpReceiveWindow(*s);
    // A pooled packet comes back with an empty payload (and its capacity): appending is
    // assigning, and cheaper.
    DSIM_DCHECK(p->payload.empty());
    if (length > 0) p->payload.append(data, length);
    if (flags & Packet::kAck) {
      s->rcv_acked = s->rcv_nxt;
      s->rcv_window_edge = s->rcv_nxt + p->window_bytes;
      if (s->delayed_ack_armed) ClearDelayedAck(s);
    }
    Transmit(p);
  }
  void TcpSendAck(SocketState* socket);
  void TcpSendSyn(SocketState* socket);
  void SendReset(const Packet& in);
  void TcpReset(SocketState* socket, int error);
  void TcpDone(SocketState* socket);
  void TcpEnterTimeWait(SocketState* socket);
  void TcpStopListening(SocketState* socket);
  // Handles a TCP segment and frees it (Receive's part for TCP).
  void TcpOnSegment(Packet* packet);
  // TcpOnSegment's general path; the caller frees the packet.
  ABSL_ATTRIBUTE_NOINLINE void TcpOnSegmentGeneral(Packet* packet);
  void TcpOnSyn(Packet* packet);
  void TcpOnAck(SocketState* socket, const Packet& packet);
  void TcpOnData(SocketState* socket, Packet* packet);
  ABSL_ATTRIBUTE_NOINLINE void TcpOnDataGeneral(SocketState* socket, Packet* packet);
  // The next `length` bytes of the stream, in order with nothing out of order or FIN
  // pending: queued, readers woken, ACKed now or later. TcpOnData's and TcpOnSegment's
  // short paths share it.
  inline void TcpAcceptInOrder(SocketState* socket, const char* data, size_t length,
                               uint8_t flags);
  inline bool TcpConsumeAcked(SocketState* socket, uint64_t acked);
  void TcpOnFin(SocketState* socket);
  void TcpOnFinAcked(SocketState* socket);
  void TcpAfterRead(SocketState* socket);
  uint64_t TcpReceiveWindow(const SocketState& s) const {
    const size_t used = s.rx.size() + s.out_of_order_bytes;
    const size_t capacity = static_cast<size_t>(s.receive_buffer_bytes);
    return used >= capacity ? 0 : capacity - used;
  }
  // Owes the peer an ACK within the delayed-ACK time (the timer starts unless running).
  void ArmDelayedAck(SocketState* socket) {
    if (socket->delayed_ack_armed) return;
    if (ABSL_PREDICT_TRUE(socket->delayed_ack_timer_pending &&
                          !scheduler_->has_group_clocks())) {
      // ArmDelayedAckNow's work when its timer still runs (it re-arms itself for the
      // new due time) and the host has no clock of its own.
      socket->delayed_ack_armed = true;
      socket->delayed_ack_due_ns = SaturatingAdd(scheduler_->NowNanos(), delayed_ack_ns_);
      return;
    }
    ArmDelayedAckNow(socket);
  }
  void ArmDelayedAckNow(SocketState* socket);
  void ArmSynTimer(SocketState* socket);
  void OnSynTimer(uint64_t id);
  void OnDelayedAck(uint64_t id);
  // Any ACK that leaves settles what the delayed ACK was waiting for, as Linux's
  // tcp_event_ack_sent clears ICSK_TIME_DACK. Were the owed ACK left in place, the timer
  // would fire for data that arrived since (at the same instant, say) and send a pure
  // ACK that Linux does not send.
  void ClearDelayedAck(SocketState* socket) { socket->delayed_ack_armed = false; }
  void OnTimeWaitEnd(uint64_t id);
  void OnFinWait2Timeout(uint64_t id);
  // Keepalive (stack_engine.cc).
  absl::Duration KeepaliveIdle(const SocketState& socket) const;
  absl::Duration KeepaliveInterval(const SocketState& socket) const;
  int KeepaliveProbesMax(const SocketState& socket) const;
  bool KeepaliveOption(const SocketState& socket, int name, int* value) const;
  int SetKeepaliveOption(SocketState* socket, int name, int value);
  void SetKeepalive(SocketState* socket, bool on);
  void ArmKeepalive(SocketState* socket, absl::Duration delay);
  void CancelKeepalive(SocketState* socket);
  void OnKeepaliveTimer(uint64_t id);
  void TcpKeepaliveExpired(SocketState* socket);
  bool TcpWritable(const SocketState& socket) const;
  void WakeAll(SocketState* socket);

  // UDP.
  ssize_t UdpRecv(SocketState* socket, const RecvArgs& args, size_t length, absl::Time start,
                  SourceLocation where);
  ssize_t UdpSend(SocketState* socket, const SendArgs& args, size_t length);
  ssize_t UdpRecvFinish(SocketState* socket, const RecvArgs& args, const Packet& datagram,
                        bool copied, size_t n);
  ABSL_ATTRIBUTE_NOINLINE int UdpNamedDestination(const SocketState* socket,
                                                  const SendArgs& args, Endpoint* out);
  int UdpConnect(SocketState* socket, const sockaddr* address, socklen_t length);
  void UdpOnDatagram(Packet* packet);
  int UdpScore(const SocketState& s, const Packet& packet) const;
  ssize_t RecvStreamInto(int fd, const RecvArgs& args, SourceLocation where);
  ssize_t RecvOn(SocketState* socket, const RecvArgs& args, size_t length, SourceLocation where);
  ABSL_ATTRIBUTE_NOINLINE ssize_t RecvOneGeneral(int fd, void* buffer, size_t length,
                                                 int flags, const char* what,
                                                 SourceLocation where);
  void UdpOnUnreachable(const Packet& packet);

  short PollMask(const SocketState& socket) const;
  template <void (HostStack::*kHandler)(uint64_t)>
  TimerId AddTimer(absl::Duration delay, uint64_t id);  // `delay` on the host's clock.
  // Due `when_ns` nanoseconds after Scheduler::Epoch(), in true time.
  template <void (HostStack::*kHandler)(uint64_t)>
  TimerId AddTimerAt(int64_t when_ns, uint64_t id);
  absl::Duration HostDelay(absl::Duration delay) const;
  absl::Duration HostElapsedSince(absl::Time since) const;
  // Sends a packet from this host, unless the stack is detached (then frees it). `to`:
  // the destination's host when the caller routed already (Route), else null.
  void Transmit(Packet* packet, NetworkHost* to = nullptr) {
    // A crashed host's stack is mute: nothing leaves a dead machine, whatever its
    // unwinding tasks do to their sockets.
    if (ABSL_PREDICT_FALSE(detached_)) {
      network_->FreePacket(packet);
      return;
    }
    if (to == nullptr) to = RouteHost(packet->destination.address);
    if (ABSL_PREDICT_FALSE(to == nullptr)) {
      network_->FreePacket(packet);  // No host owns the address (as Network::Send).
      return;
    }
    network_->SendTo(*host_, *to, packet);
  }
  // Buggify: the length a stream read or write moves this time (a short prefix, at
  // least 1 byte, when the fault fires; `length` otherwise).
  size_t BuggifyLength(size_t length, const char* label);
  void Annotate(const char* category, const std::string& detail);

  Network* network_;
  NetworkHost* host_;
  Scheduler* scheduler_;
  const NetworkOptions& options_;
  const int64_t delayed_ack_ns_;  // options_.delayed_ack in nanoseconds.

  // One slot of the descriptor table: a socket or another open file (pipe, eventfd,
  // epoll, timerfd, ...). A slot with neither is free, or reserved by an accept() that
  // waits (Linux takes the descriptor before it blocks).
  struct Descriptor {
    SocketState* socket = nullptr;
    std::shared_ptr<OpenFile> file;
    bool close_on_exec = false;  // FD_CLOEXEC: per descriptor, not shared by dup().
    bool reserved = false;
  };
  // Takes the lowest free descriptor >= `lowest` (EMFILE when the table is full); the
  // slot stays reserved until Install or Unreserve.
  int ReserveDescriptor(int lowest = 0);
  void Install(int fd, SocketState* socket, bool close_on_exec);
  void Unreserve(int fd);
  // Drops descriptor `fd` (open); releases the socket when it was its last descriptor.
  void DropDescriptor(int fd);
  int descriptor_limit() const;

  std::vector<Descriptor> descriptors_;  // descriptors_[fd].
  std::set<int> free_descriptors_;    // Free fds below descriptors_.size(), lowest first.
  size_t open_descriptors_ = 0;       // Open and reserved descriptors.
  // Every live socket by id. Looked up only, never iterated (salted order).
  absl::flat_hash_map<uint64_t, std::unique_ptr<SocketState>> sockets_;
  // In front of sockets_ (FindSocket). An empty entry has id 0, which no socket has.
  struct SocketCacheEntry {
    uint64_t id = 0;
    SocketState* socket = nullptr;
  };
  static constexpr size_t kSocketCacheSize = 128;
  SocketCacheEntry socket_cache_[kSocketCacheSize];
  absl::flat_hash_map<uint16_t, PortEntry> ports_[2];  // [0] TCP, [1] UDP.
  struct PortCache {
    uint16_t port = 0;
    PortEntry* entry = nullptr;  // Null: nothing cached.
  };
  PortCache port_cache_[2];  // [0] TCP, [1] UDP.
  struct RouteCacheEntry {
    IpAddress address;
    NetworkHost* host = nullptr;  // Null: empty.
  };
  RouteCacheEntry route_cache_[32];  // RouteHost; indexed by RouteCacheIndex.
  uint32_t ephemeral_cursor_ = 0;
  bool ephemeral_cursor_set_ = false;
  // Accepted children by their peer's connection id, so a repeated SYN finds its child.
  absl::flat_hash_map<uint64_t, uint64_t> child_by_peer_;
  // The last failure message of each task that failed a call here. Looked up by task,
  // never iterated (hash order is salted per process).
  absl::flat_hash_map<TaskId, std::string> messages_;
  bool detached_ = false;
};

// Keeps a socket alive (and its release deferred) while a call uses it, as the file
// reference a system call holds does in Linux.
class CallGuard {
 public:
  CallGuard(HostStack* stack, SocketState* socket) : stack_(stack), socket_(socket) {
    ++socket_->active_calls;
  }
  ~CallGuard() { stack_->EndCall(socket_); }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

 private:
  HostStack* stack_;
  SocketState* socket_;
};

// The calling task's host stack, after the scheduling point every descriptor call is;
// null with errno = EPERM (and a message for LastSocketErrorMessage) outside a task on
// a host. For descriptor kinds defined outside sockets/ (pipes, files, epoll).
HostStack* EnterHost(const char* call);
// EnterHost for //posix, which found the calling task's stack just before the call (to
// tell simulated descriptors from real ones): the same scheduling point, without a
// second host lookup after it (unless the task was killed at it).
HostStack* EnterFoundHost(HostStack* found, const char* call);
// dsim::Read and dsim::Write through EnterFoundHost.
ssize_t ReadFound(HostStack* found, int fd, void* buffer, size_t length, SourceLocation where);
ssize_t WriteFound(HostStack* found, int fd, const void* buffer, size_t length,
                   SourceLocation where);

// The start of a call, for its timeouts. Reading the clock costs a call into Abseil on
// the hottest path, so a socket without deadline or timeout skips it: with both
// infinite, Deadline() never looks at the start. Inline, as Deadline and WaitUntil:
// every call asks them.
inline absl::Time HostStack::CallStart(const SocketState& socket, bool read) const {
  const bool timed = read ? (socket.read_deadline != absl::InfiniteFuture() ||
                             socket.receive_timeout != absl::InfiniteDuration())
                          : (socket.write_deadline != absl::InfiniteFuture() ||
                             socket.send_timeout != absl::InfiniteDuration());
  return timed ? scheduler_->Now() : absl::InfinitePast();
}

inline absl::Time HostStack::Deadline(const SocketState& socket, bool read,
                                        absl::Time start) const {
  const absl::Time deadline = read ? socket.read_deadline : socket.write_deadline;
  const absl::Duration timeout = read ? socket.receive_timeout : socket.send_timeout;
  if (ABSL_PREDICT_TRUE(timeout == absl::InfiniteDuration())) return deadline;
  return DeadlineWithTimeout(deadline, timeout, start);
}

inline bool HostStack::WaitUntil(SocketState* /*socket*/, WaitQueue& queue,
                                 absl::Time deadline, const char* what, SourceLocation where) {
  if (deadline <= scheduler_->Now()) return false;
  return queue.Wait(what, where, deadline) == WakeReason::kWoken;
}

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_STACK_H_
