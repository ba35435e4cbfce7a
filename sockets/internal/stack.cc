// HostStack, part 1: descriptors, ports, addresses and the calls. The TCP and UDP
// packet engines are in stack_engine.cc.
#include "sockets/internal/stack.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "sockets/internal/unix_socket.h"

namespace dsim::internal {
namespace {

constexpr int kMinSendBufferBytes = 4608;     // SOCK_MIN_SNDBUF on x86-64.
constexpr int kMinReceiveBufferBytes = 2304;  // SOCK_MIN_RCVBUF.

int PortIndex(int type) { return type == SOCK_STREAM ? 0 : 1; }

// Does a socket bound to `bound` (maybe a wildcard) receive packets for `address`?
bool Covers(int family, bool v6only, const IpAddress& bound, const IpAddress& address) {
  if (!bound.IsUnspecified()) return bound == address;
  if (family == AF_INET || bound.is_v4()) return address.is_v4();
  return !address.is_v4() || !v6only;
}


// Do two bindings (address with the socket's family rules) share any address?
bool Overlap(const SocketState& a, const IpAddress& a_address, const SocketState& b,
             const IpAddress& b_address) {
  const bool a_wild = a_address.IsUnspecified();
  const bool b_wild = b_address.IsUnspecified();
  if (!a_wild && !b_wild) return a_address == b_address;
  if (a_wild && !b_wild) return Covers(a.family, a.v6only, a_address, b_address);
  if (!a_wild && b_wild) return Covers(b.family, b.v6only, b_address, a_address);
  const bool a4 = a.family == AF_INET || a_address.is_v4() || !a.v6only;
  const bool b4 = b.family == AF_INET || b_address.is_v4() || !b.v6only;
  const bool a6 = a.family == AF_INET6 && !a_address.is_v4();
  const bool b6 = b.family == AF_INET6 && !b_address.is_v4();
  return (a4 && b4) || (a6 && b6);
}


}  // namespace

const char* TcpStateName(TcpState state) {
  switch (state) {
    case TcpState::kClosed: return "CLOSED";
    case TcpState::kListen: return "LISTEN";
    case TcpState::kSynSent: return "SYN_SENT";
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kCloseWait: return "CLOSE_WAIT";
    case TcpState::kFinWait1: return "FIN_WAIT1";
    case TcpState::kFinWait2: return "FIN_WAIT2";
    case TcpState::kClosing: return "CLOSING";
    case TcpState::kLastAck: return "LAST_ACK";
    case TcpState::kTimeWait: return "TIME_WAIT";
  }
  return "?";
}

HostStack::HostStack(Network* network, NetworkHost* host)
    : network_(network), host_(host), scheduler_(&network->scheduler()),
      options_(network->options()), delayed_ack_ns_(DurationToNanos(options_.delayed_ack)) {
  descriptors_.resize(3);  // 0, 1 and 2 are stdin, stdout and stderr.
}

HostStack::~HostStack() = default;

HostStack& HostStack::Create(NetworkHost& host) {
  host.set_stack(std::make_unique<HostStack>(&host.network(), &host));
  return *static_cast<HostStack*>(host.stack());
}

// ---- Messages --------------------------------------------------------------------

int HostStack::Fail(int error, std::string message) {
  DSIM_DCHECK(error > 0);
  messages_[scheduler_->CurrentTaskId()] = std::move(message);
  return -error;
}

const std::string& HostStack::LastMessage(TaskId task) const {
  static const std::string* const kNone = new std::string();
  auto it = messages_.find(task);
  return it == messages_.end() ? *kNone : it->second;
}

// ---- Descriptors and sockets -----------------------------------------------------

int HostStack::LookupOrFail(int fd, SocketState** out) {
  *out = Lookup(fd);
  if (ABSL_PREDICT_TRUE(*out != nullptr)) return 0;
  return FailBadDescriptor(fd);
}

// Out of line, so the message's temporaries stay off LookupOrFail's frame.
ABSL_ATTRIBUTE_NOINLINE int HostStack::FailBadDescriptor(int fd) {
  if (const OpenFile* file = LookupFile(fd); file != nullptr) {
    return Fail(ENOTSOCK, absl::StrCat("descriptor ", fd, " on host \"", host_->name(),
                                       "\" is a ", file->kind(), ", not a socket"));
  }
  return Fail(EBADF, absl::StrCat("descriptor ", fd, " is not an open socket on host \"",
                                  host_->name(), "\""));
}

SocketState* HostStack::FindSocketSlow(uint64_t id) {
  auto it = sockets_.find(id);
  if (it == sockets_.end()) return nullptr;
  socket_cache_[id % kSocketCacheSize] = SocketCacheEntry{id, it->second.get()};
  return it->second.get();
}

SocketState* HostStack::NewSocket(int family, int type, int protocol) {
  auto socket = std::make_unique<SocketState>();
  socket->id = network_->NewConnectionId();
  socket->family = family;
  socket->type = type;
  socket->protocol = protocol;
  const bool tcp = type == SOCK_STREAM;
  socket->send_buffer_bytes =
      tcp ? options_.tcp_send_buffer_bytes_default : options_.udp_send_buffer_bytes_default;
  socket->receive_buffer_bytes = tcp ? options_.tcp_receive_buffer_bytes_default
                                     : options_.udp_receive_buffer_bytes_default;
  socket->receive_timeout = absl::InfiniteDuration();
  socket->send_timeout = absl::InfiniteDuration();
  socket->local.address = family == AF_INET ? IpAddress::V4Any() : IpAddress::V6Any();
  SocketState* raw = socket.get();
  sockets_.emplace(raw->id, std::move(socket));
  return raw;
}

int HostStack::descriptor_limit() const {
  // Descriptors 0-2 stand for stdin, stdout and stderr, so with descriptors_per_host_max
  // sockets open the highest descriptor is descriptors_per_host_max + 2 (RLIMIT_NOFILE
  // bounds descriptor numbers the same way).
  return options_.descriptors_per_host_max + 3;
}

int HostStack::ReserveDescriptor(int lowest) {
  if (open_descriptors_ >= static_cast<size_t>(options_.descriptors_per_host_max)) {
    return Fail(EMFILE, absl::StrCat("host \"", host_->name(), "\" has ",
                                     open_descriptors_, " descriptors open, the limit"));
  }
  int fd;
  auto free = free_descriptors_.lower_bound(lowest);
  if (free != free_descriptors_.end()) {
    fd = *free;
    free_descriptors_.erase(free);
  } else {
    fd = std::max(static_cast<int>(descriptors_.size()), lowest);
    for (int i = static_cast<int>(descriptors_.size()); i < fd; ++i) free_descriptors_.insert(i);
    descriptors_.resize(fd + 1);
  }
  Descriptor& slot = descriptors_[fd];
  DSIM_DCHECK(slot.socket == nullptr && slot.file == nullptr && !slot.reserved);
  slot.reserved = true;
  ++open_descriptors_;
  return fd;
}

void HostStack::Install(int fd, SocketState* socket, bool close_on_exec) {
  Descriptor& slot = descriptors_[fd];
  DSIM_CHECK(slot.reserved && slot.socket == nullptr, "installing into an unreserved descriptor");
  slot = Descriptor{socket, nullptr, close_on_exec, false};
  ++socket->descriptors;
}

void HostStack::Unreserve(int fd) {
  Descriptor& slot = descriptors_[fd];
  DSIM_CHECK(slot.reserved && slot.socket == nullptr, "releasing an unreserved descriptor");
  slot = Descriptor{};
  free_descriptors_.insert(fd);
  --open_descriptors_;
}

int HostStack::InstallFile(std::shared_ptr<OpenFile> file, bool close_on_exec) {
  DSIM_CHECK(file != nullptr);
  const int fd = ReserveDescriptor();
  if (fd < 0) return fd;
  InstallFileAt(fd, std::move(file), close_on_exec);
  return fd;
}

void HostStack::InstallFileAt(int fd, std::shared_ptr<OpenFile> file, bool close_on_exec) {
  Descriptor& slot = descriptors_[fd];
  DSIM_CHECK(slot.reserved && slot.socket == nullptr && slot.file == nullptr,
             "installing into an unreserved descriptor");
  slot.reserved = false;
  slot.close_on_exec = close_on_exec;
  ++file->descriptor_count_;
  slot.file = std::move(file);
}

int HostStack::CloseFile(int fd) {
  std::shared_ptr<OpenFile> file = std::move(descriptors_[fd].file);
  descriptors_[fd] = Descriptor{};
  free_descriptors_.insert(fd);
  --open_descriptors_;
  if (--file->descriptor_count_ == 0) file->OnLastClose();
  return 0;
}

ssize_t HostStack::FileRead(int fd, absl::Span<const iovec> iov, SourceLocation where) {
  std::shared_ptr<OpenFile> file = FileRef(fd);  // Alive across a blocking read.
  if (file == nullptr) return FailBadDescriptor(fd);
  if ((file->status_flags() & O_ACCMODE) == O_WRONLY) {
    return Fail(EBADF, absl::StrCat("read: descriptor ", fd, " (", file->kind(),
                                    ") is not open for reading"));
  }
  return file->Read(*this, iov, where);
}

ssize_t HostStack::FileWrite(int fd, absl::Span<const iovec> iov, SourceLocation where) {
  std::shared_ptr<OpenFile> file = FileRef(fd);
  if (file == nullptr) return FailBadDescriptor(fd);
  if ((file->status_flags() & O_ACCMODE) == O_RDONLY) {
    return Fail(EBADF, absl::StrCat("write: descriptor ", fd, " (", file->kind(),
                                    ") is not open for writing"));
  }
  return file->Write(*this, iov, where);
}

void HostStack::DropDescriptor(int fd) {
  SocketState* s = descriptors_[fd].socket;
  DSIM_CHECK(s != nullptr && s->descriptors > 0, "dropping a descriptor that is not open");
  descriptors_[fd] = Descriptor{};
  free_descriptors_.insert(fd);
  --open_descriptors_;
  if (--s->descriptors > 0) return;  // Another descriptor (dup) still holds the socket.
  if (s->active_calls > 0) {
    // Linux keeps the socket until calls in progress on it return; so do we.
    s->release_pending = true;
    return;
  }
  if (s->is_tcp()) {
    TcpRelease(s);
  } else {
    Destroy(s);
  }
}

void HostStack::ReleaseAfterCalls(SocketState* socket) {
  socket->release_pending = false;
  if (socket->is_tcp()) {
    TcpRelease(socket);
  } else {
    Destroy(socket);
  }
}

void HostStack::MaybeDestroy(SocketState* socket) {
  if (!socket->orphan() || socket->active_calls > 0 || socket->release_pending) return;
  if (socket->listener != 0) return;  // Still in an accept queue: accept() may take it.
  Destroy(socket);
}

void HostStack::Destroy(SocketState* socket) {
  DSIM_CHECK(socket->descriptors == 0 && socket->active_calls == 0, "destroying a socket in use");
  Unbind(socket);
  if (socket->syn_timer != kNoTimer) scheduler_->CancelTimer(socket->syn_timer);
  CancelKeepalive(socket);  // A child reset with its listener may still have one.
  if (socket->peer_connection != 0) {
    auto it = child_by_peer_.find(socket->peer_connection);
    if (it != child_by_peer_.end() && it->second == socket->id) child_by_peer_.erase(it);
  }
  for (SocketState* child : socket->accept_queue) {
    child->listener = 0;
    MaybeDestroy(child);
  }
  socket->accept_queue.clear();
  // Unread datagrams: their packets go back to the pool.
  while (!socket->datagrams.empty()) {
    network_->FreePacket(socket->datagrams.front());
    socket->datagrams.pop_front();
  }
  ForgetSocket(socket->id);
  sockets_.erase(socket->id);
}

// ---- Ports -----------------------------------------------------------------------

HostStack::PortEntry& HostStack::Ports(const SocketState& socket, uint16_t port) {
  ForgetPortCache();  // May insert, and move every entry.
  return ports_[PortIndex(socket.type)][port];
}

HostStack::PortEntry* HostStack::FindPortsSlow(int type, uint16_t port) {
  auto& table = ports_[PortIndex(type)];
  auto it = table.find(port);
  if (it == table.end()) return nullptr;
  port_cache_[PortIndex(type)] = PortCache{port, &it->second};
  return &it->second;
}

// Linux's bind-conflict rules (inet_csk_bind_conflict, udp_lib_lport_inuse), for one
// port: two bindings conflict if their addresses overlap, unless both set SO_REUSEADDR
// and the other is not listening (TCP) or both set it (UDP), or both set SO_REUSEPORT.
bool HostStack::Conflicts(const SocketState& socket, const Endpoint& local, const PortEntry& entry,
                          bool for_listen) const {
  for (const SocketState* other : entry.sockets) {
    if (other == &socket) continue;
    if (!Overlap(socket, local.address, *other, other->local.address)) continue;
    if (socket.reuse_port && other->reuse_port) continue;
    if (socket.reuse_address && other->reuse_address &&
        (!socket.is_tcp() || other->state != TcpState::kListen)) {
      continue;
    }
    return true;
  }
  for (const auto& [key, count] : entry.passive) {
    const auto& [address, reuse] = key;
    const bool overlap = local.address.IsUnspecified()
                             ? Covers(socket.family, socket.v6only, local.address, address)
                             : local.address == address;
    if (overlap && !(socket.reuse_address && reuse)) return true;
  }
  return false;
}

int HostStack::BindTo(SocketState* socket, const Endpoint& local) {
  DSIM_DCHECK(!socket->bound);
  if (local.port == 0) {
    const int result = AutoBind(socket, local.address, /*for_connect=*/false);
    if (result < 0) {
      return Fail(EADDRINUSE, absl::StrCat("no free ephemeral port on host \"",
                                           host_->name(), "\""));
    }
    return 0;
  }
  PortEntry* entry = FindPorts(socket->type, local.port);
  if (entry != nullptr && Conflicts(*socket, local, *entry, false)) {
    return Fail(EADDRINUSE,
                absl::StrCat(local.ToString(), " is already in use on host \"", host_->name(),
                             "\"", socket->reuse_address ? "" : " (SO_REUSEADDR is off)"));
  }
  socket->local = local;
  Ports(*socket, local.port).sockets.push_back(socket);
  socket->bound = true;
  return 0;
}

// Picks an ephemeral port. A connect may reuse a port held only by TIME_WAIT records
// (as Linux reuses them for new 4-tuples); bind and listen need a free port.
int HostStack::AutoBind(SocketState* socket, const IpAddress& address, bool for_connect) {
  const uint32_t first = options_.ephemeral_port_min;
  const uint32_t range = options_.ephemeral_port_max - first + 1;
  if (!ephemeral_cursor_set_) {
    ephemeral_cursor_ = static_cast<uint32_t>(scheduler_->ChooseValue(range, "net.ephemeral_port"));
    ephemeral_cursor_set_ = true;
  }
  for (uint32_t i = 0; i < range; ++i) {
    const uint16_t port = static_cast<uint16_t>(first + (ephemeral_cursor_ + i) % range);
    const PortEntry* entry = FindPorts(socket->type, port);
    const bool free = entry == nullptr || entry->empty() ||
                      (for_connect && entry->sockets.empty() &&
                       entry->passive_count == entry->time_wait_count);
    if (!free) continue;
    ephemeral_cursor_ = (ephemeral_cursor_ + i + 1) % range;
    socket->local = Endpoint{address, port};
    Ports(*socket, port).sockets.push_back(socket);
    socket->bound = true;
    return 0;
  }
  return -1;
}

void HostStack::BindPassive(SocketState* socket) {
  PortEntry& entry = Ports(*socket, socket->local.port);
  ++entry.passive[{socket->local.address, socket->reuse_address}];
  socket->passive_reuse_address = socket->reuse_address;
  ++entry.passive_count;
  if (socket->state == TcpState::kTimeWait) ++entry.time_wait_count;
  socket->bound = true;
  socket->passive_binding = true;
}

void HostStack::Unbind(SocketState* socket) {
  if (!socket->bound) return;
  auto& table = ports_[PortIndex(socket->type)];
  auto it = table.find(socket->local.port);
  DSIM_CHECK(it != table.end(), "a bound socket is missing from the port table");
  PortEntry& entry = it->second;
  if (socket->passive_binding) {
    auto key = std::make_pair(socket->local.address, socket->passive_reuse_address);
    auto p = entry.passive.find(key);
    DSIM_CHECK(p != entry.passive.end() && p->second > 0);
    if (--p->second == 0) entry.passive.erase(p);
    --entry.passive_count;
    if (socket->state == TcpState::kTimeWait) --entry.time_wait_count;
  } else {
    auto s = std::find(entry.sockets.begin(), entry.sockets.end(), socket);
    DSIM_CHECK(s != entry.sockets.end());
    entry.sockets.erase(s);
  }
  if (entry.empty()) {
    ForgetPortCache();
    table.erase(it);
  }
  socket->bound = false;
  socket->passive_binding = false;
}

// ---- Addresses -------------------------------------------------------------------

bool HostStack::FamilyAccepts(const SocketState& socket, const IpAddress& address) const {
  if (socket.family == AF_INET) return address.is_v4();
  return !(address.is_v4() && socket.v6only);
}

// Parses a bind or connect address for `socket`'s family, with Linux's checks in
// Linux's order: length, then family.
int HostStack::ParseAddress(const SocketState& socket, const sockaddr* address, socklen_t length,
                            Endpoint* out, bool* unspecified_family, const char* call) {
  *unspecified_family = false;
  if (socket.family == AF_INET) {
    if (length < sizeof(sockaddr_in)) {
      return Fail(EINVAL, absl::StrCat(call, ": address length ", length,
                                       " is shorter than sockaddr_in (16)"));
    }
    sockaddr_in in;
    std::memcpy(&in, address, sizeof(in));
    if (in.sin_family != AF_INET) {
      *unspecified_family = in.sin_family == AF_UNSPEC;
      if (!*unspecified_family) {
        return Fail(EAFNOSUPPORT, absl::StrCat(call, ": address family ", in.sin_family,
                                               " on an AF_INET socket"));
      }
    }
    *out = Endpoint{IpAddress::FromInAddr(in.sin_addr), ntohs(in.sin_port)};
    return 0;
  }
  constexpr socklen_t kRfc2133Length = 24;  // sockaddr_in6 without sin6_scope_id.
  if (length < kRfc2133Length) {
    return Fail(EINVAL, absl::StrCat(call, ": address length ", length,
                                     " is shorter than sockaddr_in6 (24)"));
  }
  sockaddr_in6 in6;
  std::memset(&in6, 0, sizeof(in6));
  std::memcpy(&in6, address, std::min<size_t>(length, sizeof(in6)));
  if (in6.sin6_family != AF_INET6) {
    return Fail(EAFNOSUPPORT, absl::StrCat(call, ": address family ", in6.sin6_family,
                                           " on an AF_INET6 socket"));
  }
  *out = Endpoint{IpAddress::FromIn6Addr(in6.sin6_addr), ntohs(in6.sin6_port)};
  return 0;
}

// Chooses the source address for reaching `destination`, as routing does: loopback for
// loopback and for the host's own addresses, else the host's first address of the
// family. Rewrites an unspecified destination to loopback, as Linux does.
//
// An AF_INET6 socket bound to an IPv4-mapped address (the wildcard ::ffff:0.0.0.0
// included) speaks IPv4 only: an unspecified destination means 127.0.0.1, and an IPv6
// destination fails with EAFNOSUPPORT (tcp_v6_connect, ip6_datagram_connect,
// udpv6_sendmsg). One bound to a specific IPv6 address cannot reach IPv4 (ENETUNREACH):
// binding made it IPV6_V6ONLY, and a UDP socket that got its address from an earlier
// connect is refused too, where Linux would send from 127.0.0.6 (a documented divergence).
// Route's failures, out of line (their strings would weigh on its frame).
int HostStack::RouteFailed(RouteFailure failure, const IpAddress& bound, const IpAddress& to) {
  switch (failure) {
    case RouteFailure::kMappedToV6:
      return Fail(EAFNOSUPPORT, absl::StrCat("an AF_INET6 socket bound to ", bound.ToString(),
                                             " (IPv4-mapped) cannot reach ", to.ToString()));
    case RouteFailure::kV6ToV4:
      return Fail(ENETUNREACH, absl::StrCat("an AF_INET6 socket bound to ", bound.ToString(),
                                            " cannot reach IPv4 ", to.ToString()));
    case RouteFailure::kNoRoute:
      break;
  }
  return Fail(ENETUNREACH, absl::StrCat("no route from host \"", host_->name(), "\" to ",
                                        to.ToString()));
}

int HostStack::Route(const SocketState& socket, Endpoint* destination, IpAddress* source,
                     NetworkHost** to_host) {
  IpAddress& to = destination->address;
  const IpAddress& bound = socket.local.address;
  const bool bound_v4_mapped = socket.family == AF_INET6 && bound.is_v4();
  if (ABSL_PREDICT_FALSE(to.IsUnspecified())) {
    to = to.is_v4() || bound_v4_mapped ? IpAddress::V4Loopback() : IpAddress::V6Loopback();
  }
  if (ABSL_PREDICT_FALSE(bound_v4_mapped && !to.is_v4())) {
    return RouteFailed(RouteFailure::kMappedToV6, bound, to);
  }
  if (ABSL_PREDICT_FALSE(socket.family == AF_INET6 && !bound.is_v4() &&
                         !bound.IsUnspecified() && to.is_v4())) {
    return RouteFailed(RouteFailure::kV6ToV4, bound, to);
  }
  // Loopback and this host's own addresses route to this host (Network::Route).
  NetworkHost* peer = RouteHost(to);
  if (to.IsLoopback()) {
    *source = to.is_v4() ? IpAddress::V4Loopback() : IpAddress::V6Loopback();
  } else if (peer == host_) {
    *source = to;
  } else {
    bool found = false;
    for (const IpAddress& mine : host_->addresses()) {
      if (mine.is_v4() == to.is_v4()) {
        *source = mine;
        found = true;
        break;
      }
    }
    if (!found || peer == nullptr) return RouteFailed(RouteFailure::kNoRoute, bound, to);
  }
  if (!bound.IsUnspecified()) *source = bound;
  if (to_host != nullptr) *to_host = peer;
  return 0;
}

socklen_t HostStack::FillAddress(const SocketState& socket, const Endpoint& endpoint,
                                 sockaddr_storage* out) const {
  // Only the returned length is defined (and copied out): every datagram received
  // comes through here, so no 128-byte clear.
  if (socket.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    std::memset(in, 0, sizeof(*in));
    in->sin_family = AF_INET;
    in->sin_port = htons(endpoint.port);
    in->sin_addr = endpoint.address.ToInAddr();
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  std::memset(in6, 0, sizeof(*in6));
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(endpoint.port);
  in6->sin6_addr = endpoint.address.ToIn6Addr();
  return sizeof(sockaddr_in6);
}

// Linux's move_addr_to_user: reads the caller's length, copies at most that much, and
// writes back the full length of the address.
int HostStack::CopyAddressOutSlow(const SocketState& socket, const Endpoint& endpoint,
                                  sockaddr* address, socklen_t* length, bool empty) {
  if (length == nullptr) return Fail(EFAULT, "the address length pointer is null");
  sockaddr_storage storage;
  const socklen_t full = empty ? 0 : FillAddress(socket, endpoint, &storage);
  int wanted = static_cast<int>(*length);
  if (wanted > static_cast<int>(full)) wanted = static_cast<int>(full);
  if (wanted < 0) {
    return Fail(EINVAL, absl::StrCat("address length ", static_cast<int>(*length),
                                     " is negative"));
  }
  if (wanted > 0) {
    if (address == nullptr) return Fail(EFAULT, "the address buffer is null");
    std::memcpy(address, &storage, wanted);
  }
  *length = full;
  return 0;
}

// ---- Blocking --------------------------------------------------------------------

void HostStack::WakeAll(SocketState* socket) {
  ++socket->edges;
  if (!socket->readable.empty()) socket->readable.WakeAll();
  if (!socket->writable.empty()) socket->writable.WakeAll();
}

// ---- Calls -----------------------------------------------------------------------

int HostStack::Socket(int domain, int type, int protocol) {
  const int kTypeMask = 0xf;
  const int flags = type & ~kTypeMask;
  const int kind = type & kTypeMask;
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    return Fail(EINVAL, absl::StrCat("socket type ", type, " has unknown flag bits"));
  }
  if (domain < 0 || domain >= AF_MAX) {
    return Fail(EAFNOSUPPORT, absl::StrCat("address family ", domain, " does not exist"));
  }
  if (kind >= SOCK_PACKET + 1) {
    return Fail(EINVAL, absl::StrCat("socket type ", kind, " does not exist"));
  }
  if (domain != AF_INET && domain != AF_INET6) {
    return Fail(EAFNOSUPPORT, absl::StrCat("address family ", domain,
                                           " is not simulated (only AF_INET and AF_INET6)"));
  }
  if (protocol < 0 || protocol >= IPPROTO_MAX) {
    return Fail(EINVAL, absl::StrCat("protocol ", protocol, " is out of range"));
  }
  if (kind != SOCK_STREAM && kind != SOCK_DGRAM) {
    return Fail(ESOCKTNOSUPPORT, absl::StrCat("socket type ", kind,
                                              " is not simulated (only SOCK_STREAM and SOCK_DGRAM)"));
  }
  const int native = kind == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
  if (protocol != 0 && protocol != native) {
    return Fail(EPROTONOSUPPORT, absl::StrCat("protocol ", protocol, " does not go with ",
                                              kind == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_DGRAM"));
  }
  const int fd = ReserveDescriptor();
  if (fd < 0) return fd;
  SocketState* socket = NewSocket(domain, kind, native);
  socket->nonblocking = (flags & SOCK_NONBLOCK) != 0;
  Install(fd, socket, (flags & SOCK_CLOEXEC) != 0);
  return fd;
}

int HostStack::Bind(int fd, const sockaddr* address, socklen_t length) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Unsupported(*this, "bind", address, length);
    }
    return FailBadDescriptor(fd);
  }
  if (static_cast<int>(length) < 0 || length > sizeof(sockaddr_storage)) {
    return Fail(EINVAL, absl::StrCat("address length ", length, " is out of range"));
  }
  if (length > 0 && address == nullptr) return Fail(EFAULT, "the address is null");
  Endpoint local;
  bool unspecified_family;
  if (int r = ParseAddress(*s, address, length, &local, &unspecified_family, "bind"); r < 0) {
    return r;
  }
  if (unspecified_family && !local.address.IsUnspecified()) {
    return Fail(EAFNOSUPPORT, "bind: AF_UNSPEC is accepted only with INADDR_ANY");
  }
  if (s->family == AF_INET6 && local.address.is_v4() && s->v6only) {
    return Fail(EINVAL, "bind: an IPv4-mapped address on an IPV6_V6ONLY socket");
  }
  if (!local.address.IsUnspecified() && !host_->HasAddress(local.address)) {
    return Fail(EADDRNOTAVAIL, absl::StrCat("bind: ", local.address.ToString(),
                                            " is not an address of host \"", host_->name(), "\""));
  }
  if (s->bound || (s->is_tcp() && s->state != TcpState::kClosed)) {
    return Fail(EINVAL, absl::StrCat("bind: socket ", fd, " is already bound to ",
                                     s->local.ToString()));
  }
  if (int r = BindTo(s, local); r < 0) return r;
  if (local.port != 0) s->port_locked = true;
  if (!local.address.IsUnspecified()) s->address_locked = true;
  // Linux's __inet6_bind: a specific IPv6 address (not v4-mapped) makes the socket
  // IPv6-only, visible through IPV6_V6ONLY.
  if (s->family == AF_INET6 && !local.address.IsUnspecified() && !local.address.is_v4()) {
    s->v6only = true;
  }
  return 0;
}

int HostStack::Listen(int fd, int backlog) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Unsupported(*this, "listen", nullptr, 0);
    }
    return FailBadDescriptor(fd);
  }
  if (!s->is_tcp()) return Fail(EOPNOTSUPP, "listen on a datagram socket");
  if (s->sock_state != SockState::kUnconnected ||
      (s->state != TcpState::kClosed && s->state != TcpState::kListen)) {
    return Fail(EINVAL, absl::StrCat("listen on socket ", fd, " in state ",
                                     TcpStateName(s->state), ", which is connected or connecting"));
  }
  if (static_cast<unsigned>(backlog) > static_cast<unsigned>(options_.somaxconn)) {
    backlog = options_.somaxconn;
  }
  s->backlog = backlog;
  if (s->state == TcpState::kListen) return 0;
  if (!s->bound) {
    if (AutoBind(s, s->local.address, /*for_connect=*/false) < 0) {
      return Fail(EADDRINUSE, absl::StrCat("listen: no free ephemeral port on host \"",
                                           host_->name(), "\""));
    }
  } else {
    s->state = TcpState::kListen;  // Conflicts are judged as a listener.
    const PortEntry* entry = FindPorts(SOCK_STREAM, s->local.port);
    if (entry != nullptr && Conflicts(*s, s->local, *entry, true)) {
      s->state = TcpState::kClosed;
      return Fail(EADDRINUSE, absl::StrCat("listen: ", s->local.ToString(),
                                           " is in use by another socket"));
    }
  }
  s->state = TcpState::kListen;
  return 0;
}

int HostStack::Accept(int fd, sockaddr* address, socklen_t* length, int flags,
                      SourceLocation where) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Unsupported(*this, "accept", nullptr, 0);
    }
    return FailBadDescriptor(fd);
  }
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    return Fail(EINVAL, absl::StrCat("accept4: unknown flags ", flags));
  }
  // As __sys_accept4_file: the new descriptor is taken before anything else, and held
  // while the call waits, so other tasks filling the table cannot take it away.
  const int child_fd = ReserveDescriptor();
  if (child_fd < 0) return Fail(EMFILE, "accept: the descriptor table is full");
  struct Reservation {
    HostStack* stack;
    int fd;
    bool installed = false;
    ~Reservation() {
      if (!installed) stack->Unreserve(fd);
    }
  } reservation{this, child_fd};
  if (!s->is_tcp()) return Fail(EOPNOTSUPP, "accept on a datagram socket");
  CallGuard guard(this, s);
  if (s->state != TcpState::kListen) {
    return Fail(EINVAL, absl::StrCat("accept on socket ", fd, ", which is not listening"));
  }
  const absl::Time start = scheduler_->Now();
  if (s->read_deadline <= start) return Fail(EAGAIN, "accept: the read deadline has passed");
  while (s->accept_queue.empty()) {
    if (s->nonblocking) return Fail(EAGAIN, "accept: no connection is waiting");
    if (!WaitUntil(s, s->readable, Deadline(*s, true, start), "Accept", where)) {
      return Fail(EAGAIN, "accept: timed out");
    }
    if (s->state != TcpState::kListen) {
      return Fail(EINVAL, "accept: the socket stopped listening while waiting");
    }
  }
  SocketState* child = s->accept_queue.front();
  s->accept_queue.pop_front();
  child->listener = 0;
  child->nonblocking = (flags & SOCK_NONBLOCK) != 0;
  if (address != nullptr) {
    int r = 0;
    if (child->state == TcpState::kClosed || child->state == TcpState::kSynSent) {
      r = Fail(ECONNABORTED, "accept: the connection was reset before it was accepted");
    } else {
      r = CopyAddressOut(*child, child->remote, address, length, false);
    }
    if (r < 0) {
      TcpRelease(child);  // Nobody holds it: Linux drops the new file (fput).
      return r;
    }
  }
  Install(child_fd, child, (flags & SOCK_CLOEXEC) != 0);
  reservation.installed = true;
  return child_fd;
}

int HostStack::Connect(int fd, const sockaddr* address, socklen_t length, SourceLocation where) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Unsupported(*this, "connect", address, length);
    }
    return FailBadDescriptor(fd);
  }
  if (static_cast<int>(length) < 0 || length > sizeof(sockaddr_storage)) {
    return Fail(EINVAL, absl::StrCat("connect: address length ", length, " is out of range"));
  }
  if (length > 0 && address == nullptr) return Fail(EFAULT, "connect: the address is null");
  if (!s->is_tcp()) return UdpConnect(s, address, length);
  CallGuard guard(this, s);
  const absl::Time start = scheduler_->Now();
  if (length < sizeof(sa_family_t)) {
    return Fail(EINVAL, absl::StrCat("connect: address length ", length, " is too short"));
  }
  if (address->sa_family == AF_UNSPEC) {
    TcpDisconnect(s);
    s->sock_state = SockState::kUnconnected;
    return 0;
  }
  if (s->write_deadline <= start) return Fail(EAGAIN, "connect: the write deadline has passed");
  Endpoint destination;
  int pending = 0;  // What a nonblocking call returns while the handshake runs.
  switch (s->sock_state) {
    case SockState::kDisconnecting:
      return Fail(EINVAL, absl::StrCat("connect: socket ", fd, " was shut down while connecting"));
    case SockState::kConnected:
      return Fail(EISCONN, absl::StrCat("connect: socket ", fd, " is already connected"));
    case SockState::kConnecting:
      pending = EALREADY;
      break;
    case SockState::kUnconnected: {
      if (s->state != TcpState::kClosed) {
        return Fail(EISCONN, absl::StrCat("connect: socket ", fd, " is ",
                                          TcpStateName(s->state)));
      }
      bool unspecified_family;
      if (int r = ParseAddress(*s, address, length, &destination, &unspecified_family,
                               "connect");
          r < 0) {
        return r;
      }
      if (s->family == AF_INET6 && destination.address.is_v4() && s->v6only) {
        return Fail(ENETUNREACH, "connect: an IPv4-mapped address on an IPV6_V6ONLY socket");
      }
      if (int r = TcpConnect(s, destination, start, where); r < 0) return r;
      pending = EINPROGRESS;
      break;
    }
  }
  if (s->state == TcpState::kSynSent) {
    if (s->nonblocking) {
      return Fail(pending, pending == EINPROGRESS
                               ? "connect: the handshake is in progress"
                               : "connect: a previous connect is still in progress");
    }
    while (s->state == TcpState::kSynSent) {
      if (!WaitUntil(s, s->writable, Deadline(*s, false, start), "Connect", where)) {
        if (s->state != TcpState::kSynSent) break;
        if (s->write_deadline <= scheduler_->Now()) {
          return Fail(EAGAIN, "connect: the write deadline passed during the handshake");
        }
        return Fail(EINPROGRESS, "connect: SO_SNDTIMEO expired during the handshake");
      }
    }
  }
  if (s->state == TcpState::kClosed) {
    const int error = s->error != 0 ? s->error : ECONNABORTED;
    s->error = 0;
    s->sock_state = SockState::kUnconnected;
    TcpDisconnect(s);
    return Fail(error, absl::StrCat("connect to ", s->remote.ToString(), " failed: ",
                                    error == ECONNREFUSED ? "nothing listens there (RST)"
                                    : error == ETIMEDOUT  ? "no answer to SYN"
                                                          : "the connection was aborted"));
  }
  s->sock_state = SockState::kConnected;
  return 0;
}

int HostStack::TcpConnect(SocketState* s, const Endpoint& to, absl::Time start,
                          SourceLocation where) {
  Endpoint destination = to;
  IpAddress source;
  if (int r = Route(*s, &destination, &source); r < 0) return r;
  if (!s->bound) {
    if (AutoBind(s, s->local.address, /*for_connect=*/true) < 0) {
      return Fail(EADDRNOTAVAIL, absl::StrCat("connect: host \"", host_->name(),
                                              "\" has no free ephemeral port"));
    }
  }
  if (s->local.address.IsUnspecified()) {
    // The binding moves from the wildcard to the routed source address, as Linux
    // rehashes a wildcard-bound socket under its new inet_rcv_saddr.
    Unbind(s);
    const uint16_t port = s->local.port;
    s->local.address = source;
    s->local.port = port;
    Ports(*s, port).sockets.push_back(s);
    s->bound = true;
  }
  s->remote = destination;
  s->has_remote = true;
  s->state = TcpState::kSynSent;
  s->sock_state = SockState::kConnecting;
  s->syn_attempts = 0;
  TcpSendSyn(s);
  ArmSynTimer(s);
  return 0;
}

absl::Time HostStack::DeadlineWithTimeout(absl::Time deadline, absl::Duration timeout,
                                          absl::Time start) const {
  // SO_RCVTIMEO/SO_SNDTIMEO last their length on the calling host's clock.
  return std::min(deadline, start + scheduler_->TrueDurationOfLocal(timeout));
}

// A string receive on a stream socket: through a buffer of the maximum size.
ssize_t HostStack::RecvStreamInto(int fd, const RecvArgs& args, SourceLocation where) {
  args.into->resize(args.into_max);
  const iovec v{args.into->data(), args.into_max};
  RecvArgs through_iov = args;
  through_iov.iov = absl::MakeConstSpan(&v, 1);
  through_iov.into = nullptr;
  const ssize_t result = Recv(fd, through_iov, where);
  args.into->resize(result > 0 ? std::min(static_cast<size_t>(result), args.into_max) : 0);
  return result;
}

ssize_t HostStack::SendGeneral(int fd, SocketState* s, const SendArgs& args,
                               SourceLocation where) {
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (std::shared_ptr<UnixSocket> pair_end = UnixSocketRef(fd); pair_end != nullptr) {
      return pair_end->Send(*this, args, where);
    }
    return FailBadDescriptor(fd);
  }
  if (args.name != nullptr &&
      (static_cast<int>(args.name_length) < 0 || args.name_length > sizeof(sockaddr_storage))) {
    return FailWith(EINVAL, args.what, ": address length ", args.name_length,
                    " is out of range");
  }
  size_t length = 0;
  for (const iovec& v : args.iov) length += v.iov_len;
  CallGuard guard(this, s);
  const absl::Time start = CallStart(*s, false);
  if (s->write_deadline <= start) {
    return FailWith(EAGAIN, args.what, ": the write deadline has passed");
  }
  if (!s->is_tcp()) return UdpSend(s, args, length);
  if (length > 1 && network_->buggify().enabled) {
    length = BuggifyLength(length, "fault.buggify.short_write");
  }
  return TcpSend(s, args, length, start, where);
}

size_t HostStack::BuggifyLength(size_t length, const char* label) {
  DSIM_DCHECK(length > 1);
  if (!network_->FaultChance(network_->buggify().short_io_probability, label)) return length;
  const size_t prefix = 1 + scheduler_->random().Below(length - 1);  // [1, length - 1]
  DSIM_DCHECK(prefix >= 1 && prefix < length);
  if (scheduler_->has_listeners()) {
    Annotate(label, absl::StrCat(prefix, " of ", length, " bytes"));
  }
  return prefix;
}

int HostStack::ResetConnectionsWith(const NetworkHost& peer) {
  // sockets_ is a hash map: collect, then reset in id order, so wake-ups (and the
  // trace) do not depend on its salted iteration order.
  std::vector<uint64_t> ids;
  for (const auto& [id, socket] : sockets_) {
    const SocketState& st = *socket;
    const bool connected = st.is_tcp() && st.has_remote && st.state != TcpState::kClosed &&
                           st.state != TcpState::kListen && st.state != TcpState::kTimeWait &&
                           st.state != TcpState::kSynSent;
    if (connected && network_->HostByAddress(st.remote.address) == &peer) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  int reset = 0;
  for (uint64_t id : ids) {
    SocketState* st = FindSocket(id);
    if (st == nullptr || st->state == TcpState::kClosed) continue;  // Gone meanwhile.
    TcpReset(st, ECONNRESET);
    ++reset;
  }
  return reset;
}

int HostStack::Shutdown(int fd, int how) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Shutdown(*this, how);
    }
    return FailBadDescriptor(fd);
  }
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    return Fail(EINVAL, absl::StrCat("shutdown: `how` must be SHUT_RD, SHUT_WR or SHUT_RDWR, not ",
                                     how));
  }
  const int mask = how + 1;  // SHUT_RD -> kRcvShutdown, SHUT_WR -> kSendShutdown, both.
  if (!s->is_tcp()) {
    s->shutdown |= mask;
    WakeAll(s);
    if (!s->has_remote) return Fail(ENOTCONN, "shutdown on an unconnected datagram socket");
    return 0;
  }
  if (s->sock_state == SockState::kConnecting) {
    // As inet_shutdown: a failed or pending connect becomes "disconnecting" (connect()
    // then says EINVAL), a completed one "connected".
    const bool failed_or_pending =
        s->state == TcpState::kSynSent || s->state == TcpState::kClosed;
    s->sock_state = failed_or_pending ? SockState::kDisconnecting : SockState::kConnected;
  }
  switch (s->state) {
    case TcpState::kClosed:
      s->shutdown |= mask;
      WakeAll(s);
      return Fail(ENOTCONN, absl::StrCat("shutdown: socket ", fd, " is not connected"));
    case TcpState::kListen:
      if (!(mask & kRcvShutdown)) return 0;
      [[fallthrough]];
    case TcpState::kSynSent:
      TcpDisconnect(s);
      s->sock_state = SockState::kUnconnected;
      WakeAll(s);
      return 0;
    default:
      break;
  }
  s->shutdown |= mask;
  if ((mask & kSendShutdown) && !s->fin_queued) {
    QueueFin(s);
    TcpPump(s);
  }
  WakeAll(s);
  return 0;
}

int HostStack::Close(int fd) {
  if (LookupFile(fd) != nullptr) return CloseFile(fd);
  SocketState* s;
  if (int r = LookupOrFail(fd, &s); r < 0) return r;
  DropDescriptor(fd);
  return 0;
}

int HostStack::GetName(int fd, sockaddr* address, socklen_t* length, bool peer) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->GetName(*this, address, length, peer);
    }
    return FailBadDescriptor(fd);
  }
  if (peer) {
    const bool tcp_unconnected =
        s->is_tcp() && (s->state == TcpState::kClosed || s->state == TcpState::kSynSent ||
                        s->state == TcpState::kListen);
    if (!s->has_remote || s->remote.port == 0 || tcp_unconnected) {
      return Fail(ENOTCONN, absl::StrCat("getpeername: socket ", fd, " is not connected"));
    }
    return CopyAddressOut(*s, s->remote, address, length, false);
  }
  return CopyAddressOut(*s, s->local, address, length, false);
}

namespace {

// Copies an option value out as Linux's getsockopt does: at most the caller's length,
// which is then set to the length copied.
int CopyOptionOut(HostStack* stack, const void* data, int size, void* value,
                  socklen_t* length) {
  int wanted = static_cast<int>(*length);
  if (wanted > size) wanted = size;
  if (wanted > 0) {
    if (value == nullptr) return stack->Fail(EFAULT, "getsockopt: the value buffer is null");
    std::memcpy(value, data, wanted);
  }
  *length = wanted;
  return 0;
}

timeval DurationToTimeval(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return timeval{0, 0};
  timeval tv;
  tv.tv_sec = absl::ToInt64Seconds(d);
  tv.tv_usec = absl::ToInt64Microseconds(d - absl::Seconds(tv.tv_sec));
  return tv;
}

}  // namespace

int HostStack::Getsockopt(int fd, int level, int name, void* value, socklen_t* length) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Getsockopt(*this, level, name, value, length);
    }
    return FailBadDescriptor(fd);
  }
  if (length == nullptr) return Fail(EFAULT, "getsockopt: the length pointer is null");
  if (static_cast<int>(*length) < 0) return Fail(EINVAL, "getsockopt: negative length");
  if (level == SOL_SOCKET) {
    int v = 0;
    switch (name) {
      case SO_TYPE: v = s->type; break;
      case SO_DOMAIN: v = s->family; break;
      case SO_PROTOCOL: v = s->protocol; break;
      case SO_ERROR: v = s->error; s->error = 0; break;
      case SO_ACCEPTCONN: v = s->is_tcp() && s->state == TcpState::kListen; break;
      case SO_RCVBUF: v = s->receive_buffer_bytes; break;
      case SO_SNDBUF: v = s->send_buffer_bytes; break;
      case SO_REUSEADDR: v = s->reuse_address; break;
      case SO_REUSEPORT: v = s->reuse_port; break;
      case SO_KEEPALIVE: v = s->keepalive; break;
      case SO_LINGER: {
        linger l{s->linger_on ? 1 : 0, s->linger_seconds};
        return CopyOptionOut(this, &l, sizeof(l), value, length);
      }
      case SO_RCVTIMEO:
      case SO_SNDTIMEO: {
        const timeval tv = DurationToTimeval(name == SO_RCVTIMEO ? s->receive_timeout : s->send_timeout);
        return CopyOptionOut(this, &tv, sizeof(tv), value, length);
      }
      default:
        return Fail(ENOPROTOOPT, absl::StrCat("getsockopt: SOL_SOCKET option ", name,
                                              " is not simulated"));
    }
    return CopyOptionOut(this, &v, sizeof(v), value, length);
  }
  if (level == IPPROTO_TCP && s->is_tcp() && name == TCP_NODELAY) {
    const int v = s->nodelay;
    return CopyOptionOut(this, &v, sizeof(v), value, length);
  }
  if (int v; level == IPPROTO_TCP && s->is_tcp() && KeepaliveOption(*s, name, &v)) {
    return CopyOptionOut(this, &v, sizeof(v), value, length);
  }
  if (level == IPPROTO_IPV6 && s->family == AF_INET6 && name == IPV6_V6ONLY) {
    const int v = s->v6only;
    return CopyOptionOut(this, &v, sizeof(v), value, length);
  }
  // Linux 6.x: an IPv4 socket answers levels it does not know with EOPNOTSUPP
  // (ip_getsockopt), known levels with unknown options with ENOPROTOOPT.
  const int native_level = s->is_tcp() ? IPPROTO_TCP : IPPROTO_UDP;
  const bool foreign_level = s->family == AF_INET && level != IPPROTO_IP && level != native_level;
  return Fail(foreign_level ? EOPNOTSUPP : ENOPROTOOPT,
              absl::StrCat("getsockopt: option ", name, " at level ", level,
                           " is not simulated for this socket"));
}

int HostStack::Setsockopt(int fd, int level, int name, const void* value, socklen_t length) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->Setsockopt(*this, level, name, value, length);
    }
    return FailBadDescriptor(fd);
  }
  const bool known = (level == SOL_SOCKET) || (level == IPPROTO_TCP && s->is_tcp()) ||
                     (level == IPPROTO_IPV6 && s->family == AF_INET6);
  if (!known) {
    return Fail(ENOPROTOOPT, absl::StrCat("setsockopt: level ", level,
                                          " is not simulated for this socket"));
  }
  if (static_cast<int>(length) < static_cast<int>(sizeof(int))) {
    return Fail(EINVAL, absl::StrCat("setsockopt: option length ", static_cast<int>(length),
                                     " is shorter than an int"));
  }
  if (value == nullptr) return Fail(EFAULT, "setsockopt: the value is null");
  int v;
  std::memcpy(&v, value, sizeof(v));
  const bool on = v != 0;
  if (level == IPPROTO_TCP) {
    if (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT) {
      return SetKeepaliveOption(s, name, v);
    }
    if (name != TCP_NODELAY) {
      return Fail(ENOPROTOOPT, absl::StrCat("setsockopt: TCP option ", name, " is not simulated"));
    }
    s->nodelay = on;
    return 0;
  }
  if (level == IPPROTO_IPV6) {
    if (name != IPV6_V6ONLY) {
      return Fail(ENOPROTOOPT, absl::StrCat("setsockopt: IPv6 option ", name,
                                            " is not simulated"));
    }
    if (s->bound) return Fail(EINVAL, "setsockopt: IPV6_V6ONLY after bind");
    s->v6only = on;
    return 0;
  }
  switch (name) {
    case SO_REUSEADDR: s->reuse_address = on; return 0;
    case SO_REUSEPORT: s->reuse_port = on; return 0;
    case SO_KEEPALIVE: SetKeepalive(s, on); return 0;
    case SO_SNDBUF: {
      const uint32_t clamped =
          std::min<uint32_t>(static_cast<uint32_t>(v), options_.send_buffer_bytes_max);
      s->send_buffer_bytes = std::max<int>(static_cast<int>(clamped) * 2, kMinSendBufferBytes);
      if (!s->writable.empty()) s->writable.WakeAll();
      return 0;
    }
    case SO_RCVBUF: {
      const uint32_t clamped =
          std::min<uint32_t>(static_cast<uint32_t>(v), options_.receive_buffer_bytes_max);
      s->receive_buffer_bytes =
          std::max<int>(static_cast<int>(clamped) * 2, kMinReceiveBufferBytes);
      return 0;
    }
    case SO_LINGER: {
      if (length < sizeof(linger)) {
        return Fail(EINVAL, "setsockopt: SO_LINGER needs a struct linger");
      }
      linger l;
      std::memcpy(&l, value, sizeof(l));
      s->linger_on = l.l_onoff != 0;
      if (s->linger_on) s->linger_seconds = l.l_linger;
      return 0;
    }
    case SO_RCVTIMEO:
    case SO_SNDTIMEO: {
      if (length < sizeof(timeval)) {
        return Fail(EINVAL, "setsockopt: SO_RCVTIMEO/SO_SNDTIMEO need a struct timeval");
      }
      timeval tv;
      std::memcpy(&tv, value, sizeof(tv));
      if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
        return Fail(EDOM, "setsockopt: tv_usec must be in [0, 1000000)");
      }
      absl::Duration d = absl::Seconds(tv.tv_sec) + absl::Microseconds(tv.tv_usec);
      if (tv.tv_sec < 0) d = absl::ZeroDuration();  // Linux: a negative time never waits.
      if (tv.tv_sec == 0 && tv.tv_usec == 0) d = absl::InfiniteDuration();
      (name == SO_RCVTIMEO ? s->receive_timeout : s->send_timeout) = d;
      return 0;
    }
    case SO_TYPE:
    case SO_ERROR:
    case SO_ACCEPTCONN:
    case SO_DOMAIN:
    case SO_PROTOCOL:
      return Fail(ENOPROTOOPT, absl::StrCat("setsockopt: option ", name, " is read-only"));
    default:
      return Fail(ENOPROTOOPT, absl::StrCat("setsockopt: SOL_SOCKET option ", name,
                                            " is not simulated"));
  }
}

int HostStack::SetNonblock(int fd, bool nonblocking) {
  if (OpenFile* file = LookupFile(fd); file != nullptr) {
    file->set_nonblocking(nonblocking);
    return 0;
  }
  SocketState* s;
  if (int r = LookupOrFail(fd, &s); r < 0) return r;
  s->nonblocking = nonblocking;
  return 0;
}

int HostStack::SetDeadline(int fd, absl::Time deadline, bool read, bool write) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      pair_end->SetDeadline(deadline, read, write);
      return 0;
    }
    return FailBadDescriptor(fd);
  }
  // Blocked calls wake and re-evaluate against the new deadline, as in Go.
  if (read) {
    s->read_deadline = deadline;
    if (!s->readable.empty()) s->readable.WakeAll();
  }
  if (write) {
    s->write_deadline = deadline;
    if (!s->writable.empty()) s->writable.WakeAll();
  }
  return 0;
}

short HostStack::PollMask(const SocketState& s) const {
  short mask = 0;
  if (!s.is_tcp()) {
    if (s.error != 0) mask |= POLLERR;
    if (s.shutdown & kRcvShutdown) mask |= POLLRDHUP | POLLIN | POLLRDNORM;
    if (s.shutdown == (kRcvShutdown | kSendShutdown)) mask |= POLLHUP;
    if (!s.datagrams.empty()) mask |= POLLIN | POLLRDNORM;
    mask |= POLLOUT | POLLWRNORM | POLLWRBAND;
    return mask;
  }
  if (s.state == TcpState::kListen) {
    return s.accept_queue.empty() ? 0 : (POLLIN | POLLRDNORM);
  }
  if (s.shutdown == (kRcvShutdown | kSendShutdown) || s.state == TcpState::kClosed) {
    mask |= POLLHUP;
  }
  if (s.shutdown & kRcvShutdown) mask |= POLLIN | POLLRDNORM | POLLRDHUP;
  if (s.state != TcpState::kSynSent) {
    if (!s.rx.empty()) mask |= POLLIN | POLLRDNORM;
    if (!(s.shutdown & kSendShutdown)) {
      if (TcpWritable(s)) mask |= POLLOUT | POLLWRNORM;
    } else {
      mask |= POLLOUT | POLLWRNORM;
    }
  }
  if (s.error != 0) mask |= POLLERR;
  return mask;
}

short HostStack::Readiness(int fd) {
  if (const SocketState* s = Lookup(fd); s != nullptr) return PollMask(*s);
  if (const OpenFile* file = LookupFile(fd); file != nullptr) return file->PollMask();
  return POLLNVAL;
}

uint64_t HostStack::Edges(int fd, uint32_t events) {
  if (const SocketState* s = Lookup(fd); s != nullptr) return s->edges;
  if (const OpenFile* file = LookupFile(fd); file != nullptr) return file->edges(events);
  return 0;
}

const void* HostStack::Identity(int fd) {
  if (const SocketState* s = Lookup(fd); s != nullptr) return s;
  return LookupFile(fd);
}

int HostStack::AnyDescriptorOf(const void* identity) {
  for (size_t fd = 0; fd < descriptors_.size(); ++fd) {
    const Descriptor& slot = descriptors_[fd];
    if (slot.socket == identity || (slot.file != nullptr && slot.file.get() == identity)) {
      return static_cast<int>(fd);
    }
  }
  return -1;
}

int HostStack::Poll(pollfd* fds, nfds_t count, int timeout_ms, SourceLocation where) {
  if (count > static_cast<nfds_t>(options_.descriptors_per_host_max)) {
    return Fail(EINVAL, absl::StrCat("poll: ", count, " descriptors exceed the limit"));
  }
  if (count > 0 && fds == nullptr) return Fail(EFAULT, "poll: the pollfd array is null");
  // The timeout lasts its length on the calling host's clock (scheduler/clock.h).
  const absl::Time deadline = timeout_ms < 0 ? absl::InfiniteFuture()
                                             : scheduler_->TrueDeadlineAfterLocal(
                                                   absl::Milliseconds(timeout_ms));
  for (;;) {
    int ready = 0;
    for (nfds_t i = 0; i < count; ++i) {
      pollfd& p = fds[i];
      p.revents = 0;
      if (p.fd < 0) continue;
      const SocketState* s = Lookup(p.fd);
      if (s != nullptr) {
        p.revents = PollMask(*s) & (p.events | POLLERR | POLLHUP);
      } else if (const OpenFile* file = LookupFile(p.fd); file != nullptr) {
        p.revents = file->PollMask() & (p.events | POLLERR | POLLHUP);
      } else {
        p.revents = POLLNVAL;
      }
      if (p.revents != 0) ++ready;
    }
    if (ready > 0 || timeout_ms == 0 || scheduler_->Now() >= deadline) return ready;
    // Wait on every polled socket; guards keep them alive while we sleep.
    std::vector<SocketState*> sockets;
    std::vector<std::shared_ptr<OpenFile>> files;  // Alive while we sleep.
    std::vector<WaitQueue*> queues;
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].fd < 0) continue;
      if (std::shared_ptr<OpenFile> file = FileRef(fds[i].fd); file != nullptr) {
        queues.push_back(&file->readable());
        queues.push_back(&file->writable());
        files.push_back(std::move(file));
        continue;
      }
      SocketState* s = Lookup(fds[i].fd);
      if (s == nullptr) continue;
      sockets.push_back(s);
      queues.push_back(&s->readable);
      queues.push_back(&s->writable);
    }
    for (SocketState* s : sockets) ++s->active_calls;
    struct Release {
      HostStack* stack;
      std::vector<SocketState*>* sockets;
      ~Release() {
        for (SocketState* s : *sockets) stack->EndCall(s);
      }
    } release{this, &sockets};
    WaitQueue::WaitAny(queues, "Poll", where, deadline);
  }
}

}  // namespace dsim::internal
