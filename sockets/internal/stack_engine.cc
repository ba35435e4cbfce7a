// HostStack, part 2: the TCP and UDP engines (sending, receiving packets, timers).
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "sockets/internal/recv_into.h"
#include "sockets/internal/stack.h"
#include "sockets/internal/unix_socket.h"

namespace dsim::internal {
namespace {

constexpr size_t kUdpMaxPayloadV4 = 65507;  // 65535 - IPv4 header - UDP header.
constexpr size_t kUdpMaxPayloadV6 = 65527;  // 65535 - UDP header.

// Calls visit(base, size) for each piece of the caller's iovecs covering `length` bytes
// from `offset` bytes in, in order. False if a piece's buffer is null (EFAULT) or the
// iovecs end first.
template <typename Visit>
bool ForEachIovPiece(absl::Span<const iovec> iov, size_t offset, size_t length, Visit&& visit) {
  if (iov.size() == 1 && offset + length <= iov[0].iov_len) {
    // One buffer (read, write, send, recv): the loop below would do just this.
    if (length == 0) return true;
    if (iov[0].iov_base == nullptr) return false;
    visit(static_cast<char*>(iov[0].iov_base) + offset, length);
    return true;
  }
  for (const iovec& v : iov) {
    if (length == 0) return true;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    const size_t n = std::min(length, v.iov_len - offset);
    if (v.iov_base == nullptr) return false;
    visit(static_cast<char*>(v.iov_base) + offset, n);
    length -= n;
    offset = 0;
  }
  return length == 0;
}

// Copies `length` bytes into the caller's iovecs starting `offset` bytes in.
ABSL_ATTRIBUTE_NOINLINE bool CopyToIovSlow(absl::Span<const iovec> iov, size_t offset,
                                           const char* data, size_t length) {
  return ForEachIovPiece(iov, offset, length, [&data](char* piece, size_t size) {
    std::memcpy(piece, data, size);
    data += size;
  });
}
inline bool CopyToIov(absl::Span<const iovec> iov, size_t offset, const char* data,
                      size_t length) {
  // One buffer that holds it all (read, recv): no visitor, nothing address-taken.
  if (iov.size() == 1 && length > 0 && offset + length <= iov[0].iov_len &&
      iov[0].iov_base != nullptr) {
    CopyBytes(static_cast<char*>(iov[0].iov_base) + offset, data, length);
    return true;
  }
  return CopyToIovSlow(iov, offset, data, length);
}

// A datagram's bytes received by the wrappers (RecvArgs::into). Out of line: the
// POSIX receive's frame does not carry the string code. Flattened: the string's
// constructor is built in here whatever the inliner's mood (left to itself, GCC
// sometimes calls an out-of-line _M_construct, ~35 instructions more per datagram).
// ReceivedIntoRoom holds the cases with a temporary string (its 16-byte inline buffer
// brings a stack protector and a larger frame), so the common one, ReceiveFrom()'s
// fresh Datagram, pays for neither.
ABSL_ATTRIBUTE_NOINLINE __attribute__((flatten)) void ReceivedIntoRoom(std::string* into,
                                                                       const char* data,
                                                                       size_t length) {
  AssignReceived(into, data, length);
}

ABSL_ATTRIBUTE_NOINLINE __attribute__((flatten)) void ReceivedInto(std::string* into,
                                                                   const char* data,
                                                                   size_t length) {
  if (length > into->capacity()) {
    RebuildReceived(into, data, length);
  } else {
    ReceivedIntoRoom(into, data, length);
  }
}

// Appends `length` bytes of the caller's iovecs, starting `offset` bytes in, to `out`.
template <typename Sink>
bool CopyFromIov(absl::Span<const iovec> iov, size_t offset, size_t length, Sink&& out) {
  return ForEachIovPiece(iov, offset, length,
                         [&out](const char* piece, size_t size) { out(piece, size); });
}

// How well a socket's local address matches a packet's destination: 2 for the exact
// address, 1 for a wildcard that covers it (an IPv4 wildcard covers only IPv4), 0 for
// no match. Listener and datagram lookup both prefer the most specific socket.
int LocalAddressScore(const SocketState& s, const IpAddress& destination) {
  if (s.local.address == destination) return 2;
  if (s.local.address.IsUnspecified() && (s.family == AF_INET6 || destination.is_v4())) {
    return 1;
  }
  return 0;
}

// Does a connected UDP socket take packets from `source`? A zero port (or address) in
// the connection matches any, as in Linux's UDP lookup.
bool RemoteMatches(const SocketState& s, const Endpoint& source) {
  return (s.remote.address.IsUnspecified() || s.remote.address == source.address) &&
         (s.remote.port == 0 || s.remote.port == source.port);
}

bool CanSendData(TcpState state) {
  return state == TcpState::kEstablished || state == TcpState::kCloseWait ||
         state == TcpState::kFinWait1 || state == TcpState::kClosing ||
         state == TcpState::kLastAck;
}

// States in which an abortive close or disconnect sends RST (tcp_need_reset).
bool NeedsReset(TcpState state) {
  return state == TcpState::kEstablished || state == TcpState::kCloseWait ||
         state == TcpState::kFinWait1 || state == TcpState::kFinWait2;
}

}  // namespace

// ---- Timers and traces -------------------------------------------------------------

// The handler is a template argument, so the timer is a plain function call with the
// stack and the socket id as its arguments: no std::function, no allocation.
template <void (HostStack::*kHandler)(uint64_t)>
TimerId HostStack::AddTimerAt(int64_t when_ns, uint64_t id) {
  // Stack timers belong to the host's group: a crash cancels them with the host.
  return scheduler_->AddTimerCall(
      when_ns,
      [](void* stack, uint64_t socket_id) { (static_cast<HostStack*>(stack)->*kHandler)(socket_id); },
      this, id, host_->group());
}

template <void (HostStack::*kHandler)(uint64_t)>
TimerId HostStack::AddTimer(absl::Duration delay, uint64_t id) {
  return AddTimerAt<kHandler>(
      SaturatingAdd(scheduler_->NowNanos(), DurationToNanos(HostDelay(delay))), id);
}

// The host's kernel measures its timers on its own clock (scheduler/clock.h): `delay`
// of that clock lasts HostDelay(delay) of true time. The network's latencies are true
// time: they belong to the wire, not to a host.
absl::Duration HostStack::HostDelay(absl::Duration delay) const {
  return scheduler_->TrueDurationOfLocal(host_->group(), delay);
}

// True time elapsed since `since`, as the host's clock measures it.
absl::Duration HostStack::HostElapsedSince(absl::Time since) const {
  return scheduler_->LocalDurationOfTrue(host_->group(), scheduler_->Now() - since);
}


NetworkHost* HostStack::RouteHostSlow(const IpAddress& address) {
  NetworkHost* to = network_->Route(*host_, address);
  if (to != nullptr) route_cache_[RouteCacheIndex(address)] = RouteCacheEntry{address, to};
  return to;
}

void HostStack::Annotate(const char* category, const std::string& detail) {
  scheduler_->Annotate(Annotation{category, detail, host_->group(), 0, 0});
}

// ---- TCP: sending --------------------------------------------------------------------

bool HostStack::TcpWritable(const SocketState& s) const {
  // Linux's sk_stream_is_writeable: some space, and at least half the queued amount.
  const size_t free = s.send_free_bytes();
  return free > 0 && free * 2 >= s.tx.size();
}

void HostStack::TcpSendSegment(SocketState* s, uint8_t flags, uint64_t sequence,
                               const char* data, size_t length) {
  TcpSendSegmentInline(s, flags, sequence, data, length);
}

void HostStack::TcpSendAck(SocketState* s) {
  TcpSendSegment(s, Packet::kAck, s->snd_nxt, nullptr, 0);
}

void HostStack::TcpSendSyn(SocketState* s) {
  TcpSendSegment(s, Packet::kSyn, 0, nullptr, 0);
}

void HostStack::QueueFin(SocketState* s) {
  if (s->state == TcpState::kEstablished) {
    s->state = TcpState::kFinWait1;
    s->fin_queued = true;
  } else if (s->state == TcpState::kCloseWait) {
    s->state = TcpState::kLastAck;
    s->fin_queued = true;
  }
}

void HostStack::TcpPump(SocketState* s) {
  if (!CanSendData(s->state) || s->peer_connection == 0) return;
  const uint64_t end = s->snd_una + s->tx.size();
  while (s->snd_nxt < end && s->snd_nxt < s->snd_window_edge) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(
        {end - s->snd_nxt, s->snd_window_edge - s->snd_nxt, options_.segment_bytes_max}));
    // Ask for an immediate ACK when the sender will soon need buffer space or window.
    const bool urgent_ack = (end - s->snd_una) * 2 >= static_cast<uint64_t>(s->send_buffer_bytes) ||
                            s->snd_nxt + n >= s->snd_window_edge;
    TcpSendSegment(s, Packet::kAck | (urgent_ack ? Packet::kAckNow : 0), s->snd_nxt,
                   s->tx.At(s->snd_nxt - s->snd_una), n);
    s->snd_nxt += n;
  }
  if (s->fin_queued && !s->fin_sent && s->snd_nxt == end) {
    s->fin_sent = true;
    TcpSendSegment(s, Packet::kAck | Packet::kFin, end, nullptr, 0);
  }
}

void HostStack::SendReset(const Packet& in) {
  Packet* p = network_->NewPacket();
  p->kind = Packet::Kind::kTcp;
  p->source = in.destination;
  p->destination = in.source;
  p->flags = Packet::kRst;
  p->source_connection = in.destination_connection;
  p->destination_connection = in.source_connection;
  p->sequence = in.acknowledgment;
  Transmit(p);
}

// ---- TCP: state changes ----------------------------------------------------------------

// The connection is over (tcp_done): CLOSED, both directions shut, waiters woken.
void HostStack::TcpDone(SocketState* s) {
  s->state = TcpState::kClosed;
  s->shutdown = kRcvShutdown | kSendShutdown;
  if (s->syn_timer != kNoTimer) {
    scheduler_->CancelTimer(s->syn_timer);
    s->syn_timer = kNoTimer;
  }
  CancelKeepalive(s);
  if (!s->port_locked || s->passive_binding) Unbind(s);
  WakeAll(s);
  MaybeDestroy(s);
}

// An RST arrived (tcp_reset).
void HostStack::TcpReset(SocketState* s, int error) {
  if (s->state == TcpState::kClosed) return;
  switch (s->state) {
    case TcpState::kSynSent: s->error = ECONNREFUSED; break;
    case TcpState::kCloseWait: s->error = EPIPE; break;
    default: s->error = error; break;
  }
  s->reset = true;
  s->tx.Clear();
  s->out_of_order.clear();
  s->out_of_order_bytes = 0;
  if (scheduler_->has_listeners()) {
    Annotate("tcp.reset", absl::StrCat(s->local.ToString(), " reset by ", s->remote.ToString()));
  }
  TcpDone(s);
}

// The user socket is closed, and a TIME_WAIT record keeps the port for a while.
void HostStack::TcpEnterTimeWait(SocketState* s) {
  SocketState* tw = NewSocket(s->family, SOCK_STREAM, s->protocol);
  tw->state = TcpState::kTimeWait;
  tw->local = s->local;
  tw->remote = s->remote;
  tw->has_remote = true;
  tw->reuse_address = s->reuse_address;
  BindPassive(tw);
  AddTimer<&HostStack::OnTimeWaitEnd>(options_.time_wait, tw->id);
  TcpDone(s);
}

void HostStack::OnTimeWaitEnd(uint64_t id) {
  SocketState* tw = FindSocket(id);
  if (tw == nullptr) return;
  DSIM_DCHECK(tw->state == TcpState::kTimeWait);
  Destroy(tw);
}

// Stops listening: connections not yet accepted are reset (inet_csk_listen_stop).
void HostStack::TcpStopListening(SocketState* s) {
  std::deque<SocketState*> queue;
  queue.swap(s->accept_queue);
  for (SocketState* child : queue) {
    child->listener = 0;
    if (NeedsReset(child->state)) {
      TcpSendSegment(child, Packet::kRst | Packet::kAck, child->snd_nxt, nullptr, 0);
    }
    child->state = TcpState::kClosed;
    Destroy(child);
  }
  WakeAll(s);
}

// tcp_disconnect: aborts whatever the socket was doing and makes it reusable.
int HostStack::TcpDisconnect(SocketState* s) {
  const TcpState old = s->state;
  if (old == TcpState::kListen) {
    TcpStopListening(s);
  } else if (NeedsReset(old)) {
    TcpSendSegment(s, Packet::kRst | Packet::kAck, s->snd_nxt, nullptr, 0);
  } else if (old == TcpState::kSynSent) {
    // An aborted connect: poll then says POLLERR and SO_ERROR ECONNRESET, as after
    // Linux's tcp_disconnect (shutdown() or connect(AF_UNSPEC) while connecting).
    s->error = ECONNRESET;
  }
  if (s->syn_timer != kNoTimer) {
    scheduler_->CancelTimer(s->syn_timer);
    s->syn_timer = kNoTimer;
  }
  CancelKeepalive(s);
  s->keepalive_probes_sent = 0;
  s->state = TcpState::kClosed;
  s->rx.Clear();
  s->tx.Clear();
  s->out_of_order.clear();
  s->out_of_order_bytes = 0;
  s->rcv_nxt = s->rcv_acked = s->rcv_window_edge = 0;
  s->snd_una = s->snd_nxt = s->snd_window_edge = 0;
  s->fin_received = s->fin_queued = s->fin_sent = s->fin_acked = false;
  s->pending_fin_sequence = UINT64_MAX;
  s->shutdown = 0;
  s->done = false;
  s->has_remote = false;
  s->peer_connection = 0;
  if (!s->port_locked) Unbind(s);
  if (!s->address_locked) {
    s->local.address = s->family == AF_INET ? IpAddress::V4Any() : IpAddress::V6Any();
  }
  // A new identity, so segments of the old connection cannot reach the next one.
  ForgetSocket(s->id);
  auto node = sockets_.extract(s->id);
  s->id = network_->NewConnectionId();
  node.key() = s->id;
  sockets_.insert(std::move(node));
  WakeAll(s);
  return 0;
}

// close() on a TCP socket (tcp_close).
void HostStack::TcpRelease(SocketState* s) {
  DSIM_DCHECK(s->orphan());
  // Linux never probes from a closed socket either: it has its FIN in flight, or sits
  // in FIN_WAIT2 where the same timer counts the FIN_WAIT2 timeout instead.
  CancelKeepalive(s);
  s->shutdown = kRcvShutdown | kSendShutdown;
  switch (s->state) {
    case TcpState::kListen:
      TcpStopListening(s);
      s->state = TcpState::kClosed;
      Destroy(s);
      return;
    case TcpState::kClosed:
    case TcpState::kSynSent:
      s->state = TcpState::kClosed;
      Destroy(s);
      return;
    default:
      break;
  }
  const bool data_was_unread = !s->rx.empty();
  if (data_was_unread || (s->linger_on && s->linger_seconds == 0)) {
    // Unread data (or SO_LINGER with zero time) aborts the connection with RST.
    if (data_was_unread || NeedsReset(s->state)) {
      TcpSendSegment(s, Packet::kRst | Packet::kAck, s->snd_nxt, nullptr, 0);
    }
    s->state = TcpState::kClosed;
    Destroy(s);
    return;
  }
  QueueFin(s);
  TcpPump(s);
  if (s->state == TcpState::kFinWait2) {
    AddTimer<&HostStack::OnFinWait2Timeout>(options_.fin_wait2_timeout, s->id);
  }
  WakeAll(s);
}

void HostStack::OnFinWait2Timeout(uint64_t id) {
  SocketState* s = FindSocket(id);
  if (s == nullptr || !s->orphan() || s->state != TcpState::kFinWait2) return;
  s->state = TcpState::kClosed;
  MaybeDestroy(s);
}

// ---- TCP: timers ---------------------------------------------------------------------

void HostStack::ArmSynTimer(SocketState* s) {
  const absl::Duration delay = options_.syn_retransmit_initial * (int64_t{1} << s->syn_attempts);
  const uint64_t id = s->id;
  s->syn_timer = scheduler_->AddTimer(scheduler_->Now() + HostDelay(delay),
                                      [this, id] { OnSynTimer(id); }, host_->group());
}

void HostStack::OnSynTimer(uint64_t id) {
  SocketState* s = FindSocket(id);
  if (s == nullptr) return;
  s->syn_timer = kNoTimer;
  if (s->state != TcpState::kSynSent) return;
  if (s->syn_attempts >= options_.syn_retries) {
    s->error = ETIMEDOUT;
    TcpDone(s);
    return;
  }
  ++s->syn_attempts;
  TcpSendSyn(s);
  ArmSynTimer(s);
}

void HostStack::ArmDelayedAckNow(SocketState* s) {
  s->delayed_ack_armed = true;
  // The delay runs on the host's clock; without host clocks (the usual case) it is the
  // NetworkOptions value, converted to nanoseconds once.
  const int64_t delay_ns = scheduler_->has_group_clocks()
                               ? DurationToNanos(HostDelay(options_.delayed_ack))
                               : delayed_ack_ns_;
  s->delayed_ack_due_ns = SaturatingAdd(scheduler_->NowNanos(), delay_ns);
  if (s->delayed_ack_timer_pending) return;  // It re-arms itself for the new due time.
  s->delayed_ack_timer_pending = true;
  AddTimerAt<&HostStack::OnDelayedAck>(s->delayed_ack_due_ns, s->id);
}

void HostStack::OnDelayedAck(uint64_t id) {
  SocketState* s = FindSocket(id);
  if (s == nullptr) return;
  s->delayed_ack_timer_pending = false;
  if (!s->delayed_ack_armed) return;  // Its ACK left with data.
  if (scheduler_->NowNanos() < s->delayed_ack_due_ns) {
    // Owed for later data: wait for that (tcp_delack_timer).
    s->delayed_ack_timer_pending = true;
    AddTimerAt<&HostStack::OnDelayedAck>(s->delayed_ack_due_ns, s->id);
    return;
  }
  s->delayed_ack_armed = false;
  if (s->rcv_acked != s->rcv_nxt && s->peer_connection != 0 && s->state != TcpState::kClosed &&
      s->state != TcpState::kTimeWait) {
    TcpSendAck(s);
  }
}

// ---- TCP: keepalive ------------------------------------------------------------------
//
// Linux's model (tcp_keepalive_timer): one timer per socket. It looks at how long ago
// the last segment arrived; after KEEPIDLE of silence it sends a probe (an ACK one
// below snd_una, which the peer must answer with an ACK), then one every KEEPINTVL.
// Any segment that arrives clears the count of unanswered probes and restarts the idle
// period; KEEPCNT unanswered probes end the connection with ETIMEDOUT and an RST. A
// partition holds the probes (no answer); a dead or restarted peer answers with RST.

namespace {

// Linux's MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL and MAX_TCP_KEEPCNT.
constexpr int kKeepaliveIdleSecondsMax = 32767;
constexpr int kKeepaliveIntervalSecondsMax = 32767;
constexpr int kKeepaliveProbesMax = 127;

// Does the keepalive timer run for this socket? Only with SO_KEEPALIVE, on a
// synchronized connection the user still holds (or that waits in an accept queue).
bool KeepaliveApplies(const SocketState& s) {
  if (!s.keepalive || !s.is_tcp() || s.peer_connection == 0) return false;
  if (s.orphan() && s.listener == 0) return false;
  return s.state != TcpState::kClosed && s.state != TcpState::kListen &&
         s.state != TcpState::kSynSent && s.state != TcpState::kTimeWait;
}

// An ACK-only segment that starts before rcv_nxt, as a keepalive probe does. Linux's
// tcp_validate_incoming finds its sequence unacceptable and answers with a duplicate
// ACK, without processing it further. Compared as Linux's before(), modulo 2^64, so a
// probe below sequence 0 counts too.
bool IsBelowWindowAck(const SocketState& s, const Packet& p) {
  return (p.flags & ~Packet::kAckNow) == Packet::kAck && p.payload.empty() &&
         static_cast<int64_t>(p.sequence - s.rcv_nxt) < 0;
}

}  // namespace

absl::Duration HostStack::KeepaliveIdle(const SocketState& s) const {
  return s.keepalive_idle > absl::ZeroDuration() ? s.keepalive_idle
                                                 : options_.tcp_keepalive_time;
}

absl::Duration HostStack::KeepaliveInterval(const SocketState& s) const {
  return s.keepalive_interval > absl::ZeroDuration() ? s.keepalive_interval
                                                     : options_.tcp_keepalive_interval;
}

int HostStack::KeepaliveProbesMax(const SocketState& s) const {
  return s.keepalive_probes_max > 0 ? s.keepalive_probes_max : options_.tcp_keepalive_probes;
}

// getsockopt(IPPROTO_TCP, TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT); false for other
// names. Times are reported in whole seconds, as Linux divides jiffies by HZ.
bool HostStack::KeepaliveOption(const SocketState& s, int name, int* value) const {
  switch (name) {
    case TCP_KEEPIDLE:
      *value = static_cast<int>(absl::ToInt64Seconds(KeepaliveIdle(s)));
      return true;
    case TCP_KEEPINTVL:
      *value = static_cast<int>(absl::ToInt64Seconds(KeepaliveInterval(s)));
      return true;
    case TCP_KEEPCNT:
      *value = KeepaliveProbesMax(s);
      return true;
    default:
      return false;
  }
}

// setsockopt of one of the three keepalive options, with Linux's ranges. A new idle
// time applies at once, measured from the last received segment
// (tcp_sock_set_keepidle_locked).
int HostStack::SetKeepaliveOption(SocketState* s, int name, int value) {
  switch (name) {
    case TCP_KEEPIDLE: {
      if (value < 1 || value > kKeepaliveIdleSecondsMax) {
        return Fail(EINVAL, absl::StrCat("setsockopt: TCP_KEEPIDLE ", value,
                                         " is outside [1, 32767] seconds"));
      }
      s->keepalive_idle = absl::Seconds(value);
      if (KeepaliveApplies(*s)) {
        const absl::Duration elapsed = HostElapsedSince(s->last_receive_time);
        ArmKeepalive(s, std::max(absl::ZeroDuration(), s->keepalive_idle - elapsed));
      }
      return 0;
    }
    case TCP_KEEPINTVL:
      if (value < 1 || value > kKeepaliveIntervalSecondsMax) {
        return Fail(EINVAL, absl::StrCat("setsockopt: TCP_KEEPINTVL ", value,
                                         " is outside [1, 32767] seconds"));
      }
      s->keepalive_interval = absl::Seconds(value);
      return 0;
    case TCP_KEEPCNT:
      if (value < 1 || value > kKeepaliveProbesMax) {
        return Fail(EINVAL, absl::StrCat("setsockopt: TCP_KEEPCNT ", value,
                                         " is outside [1, 127]"));
      }
      s->keepalive_probes_max = value;
      return 0;
    default:
      DSIM_CHECK(false, "not a keepalive option: ", name);
      return Fail(ENOPROTOOPT, "setsockopt: not a keepalive option");
  }
}

// SO_KEEPALIVE (tcp_set_keepalive): turning it on starts the idle period's timer on a
// connected socket; turning it off cancels it. UDP sockets only keep the flag.
void HostStack::SetKeepalive(SocketState* s, bool on) {
  const bool was_on = s->keepalive;
  s->keepalive = on;
  if (!on) {
    CancelKeepalive(s);
  } else if (!was_on && KeepaliveApplies(*s)) {
    ArmKeepalive(s, KeepaliveIdle(*s));
  }
}

void HostStack::ArmKeepalive(SocketState* s, absl::Duration delay) {
  DSIM_DCHECK(KeepaliveApplies(*s));
  DSIM_DCHECK(delay >= absl::ZeroDuration());
  CancelKeepalive(s);
  const uint64_t id = s->id;
  s->keepalive_timer = scheduler_->AddTimer(scheduler_->Now() + HostDelay(delay),
                                            [this, id] { OnKeepaliveTimer(id); }, host_->group());
}

void HostStack::CancelKeepalive(SocketState* s) {
  if (s->keepalive_timer == kNoTimer) return;
  scheduler_->CancelTimer(s->keepalive_timer);
  s->keepalive_timer = kNoTimer;
}

void HostStack::OnKeepaliveTimer(uint64_t id) {
  SocketState* s = FindSocket(id);
  if (s == nullptr) return;
  s->keepalive_timer = kNoTimer;
  if (!KeepaliveApplies(*s)) return;
  const absl::Duration idle = KeepaliveIdle(*s);
  if (!s->tx.empty() || (s->fin_sent && !s->fin_acked)) {
    // Unacknowledged data or FIN: Linux leaves the connection to the retransmission
    // timer ("it is alive without keepalive") and looks again after KEEPIDLE.
    ArmKeepalive(s, idle);
    return;
  }
  const absl::Duration elapsed = HostElapsedSince(s->last_receive_time);
  if (elapsed < idle) {
    ArmKeepalive(s, idle - elapsed);  // Something arrived since: wait out the rest.
    return;
  }
  if (s->keepalive_probes_sent >= KeepaliveProbesMax(*s)) {
    TcpKeepaliveExpired(s);
    return;
  }
  TcpSendSegment(s, Packet::kAck, s->snd_una - 1, nullptr, 0);
  ++s->keepalive_probes_sent;
  DSIM_DCHECK(s->keepalive_probes_sent <= kKeepaliveProbesMax);
  if (scheduler_->has_listeners()) {
    Annotate("tcp.keepalive", absl::StrCat(s->local.ToString(), " probes ", s->remote.ToString(),
                                           " (", s->keepalive_probes_sent, " unanswered)"));
  }
  ArmKeepalive(s, KeepaliveInterval(*s));
}

// Keepalive gave up (tcp_send_active_reset, then tcp_write_err): the peer is sent an
// RST, the user sees ETIMEDOUT once, and the socket is closed and unhashed as after a
// reset, so later segments of the connection are answered with RST.
void HostStack::TcpKeepaliveExpired(SocketState* s) {
  TcpSendSegment(s, Packet::kRst | Packet::kAck, s->snd_nxt, nullptr, 0);
  s->error = ETIMEDOUT;
  s->reset = true;
  if (scheduler_->has_listeners()) {
    Annotate("tcp.keepalive_timeout",
             absl::StrCat(s->local.ToString(), " gave up on ", s->remote.ToString(), " after ",
                          s->keepalive_probes_sent, " unanswered probes"));
  }
  TcpDone(s);  // Cancels the keepalive timer.
}

// ---- TCP: receiving --------------------------------------------------------------------

void HostStack::Receive(Packet* packet) {
  if (ABSL_PREDICT_TRUE(packet->kind == Packet::Kind::kTcp)) {
    TcpOnSegment(packet);  // Frees the packet last (a tail call: no frame here).
    return;
  }
  switch (packet->kind) {
    case Packet::Kind::kTcp:  // Handled above.
      return;
    case Packet::Kind::kUdp:
      UdpOnDatagram(packet);  // Keeps the packet if a socket queues it.
      return;
    case Packet::Kind::kPortUnreachable:
      UdpOnUnreachable(*packet);
      break;
  }
  network_->FreePacket(packet);
}

// The send queue's bytes below `acked` are acknowledged: dropped from the queue, with
// snd_una (and snd_nxt, if a retransmission had rewound it below) moved up. True when
// any were. TcpOnAck's and TcpOnSegment's short path's first step.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool HostStack::TcpConsumeAcked(SocketState* s,
                                                                   uint64_t acked) {
  if (acked <= s->snd_una) return false;
  s->tx.Consume(acked - s->snd_una);
  s->snd_una = acked;
  if (s->snd_nxt < s->snd_una) s->snd_nxt = s->snd_una;
  return true;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void HostStack::TcpAcceptInOrder(SocketState* s,
                                                                     const char* data,
                                                                     size_t length,
                                                                     uint8_t flags) {
  s->rx.Append(data, length);
  s->rcv_nxt += length;
  ++s->edges;
  if (!s->readable.empty()) s->readable.WakeAll();
  if ((flags & Packet::kAckNow) || s->rcv_nxt - s->rcv_acked >= 2 * options_.segment_bytes_max) {
    TcpSendAck(s);
  } else {
    ArmDelayedAck(s);
  }
}

void HostStack::TcpOnSegment(Packet* packet) {
  // The common segment: the next data of an established stream, with an ACK and no
  // SYN, FIN or RST, for its own connection, nothing out of order or pending. What
  // TcpOnSegmentGeneral does with it (TcpOnAck, then TcpOnData's short path), in one
  // frame and without repeating their tests.
  const uint8_t flags = packet->flags;
  SocketState* s = packet->destination_connection != 0
                       ? FindSocket(packet->destination_connection)
                       : nullptr;
  const size_t length = packet->payload.size();
  if (ABSL_PREDICT_FALSE(
          (flags & (Packet::kSyn | Packet::kAck | Packet::kFin | Packet::kRst)) != Packet::kAck ||
          s == nullptr || !s->is_tcp() || s->state != TcpState::kEstablished ||
          s->peer_connection != packet->source_connection || length == 0 ||
          packet->sequence != s->rcv_nxt || !(s->local == packet->destination) ||
          s->fin_sent || !s->out_of_order.empty() || s->pending_fin_sequence != UINT64_MAX)) {
    TcpOnSegmentGeneral(packet);
    network_->FreePacket(packet);
    return;
  }
  // Not a keepalive probe (it carries data): traffic.
  s->last_receive_time = scheduler_->Now();
  s->keepalive_probes_sent = 0;
  // TcpOnAck (no FIN of ours is in flight: the state is ESTABLISHED).
  const uint64_t end = s->snd_una + s->tx.size();
  const uint64_t acked = std::min(packet->acknowledgment, end);
  const bool freed = TcpConsumeAcked(s, acked);
  s->snd_window_edge = std::max(s->snd_window_edge, acked + packet->window_bytes);
  if (freed && TcpWritable(*s)) {
    ++s->edges;
    if (!s->writable.empty()) s->writable.WakeAll();
  }
  if (s->snd_nxt < s->snd_una + s->tx.size() || (s->fin_queued && !s->fin_sent)) {
    TcpPump(s);
    if (FindSocket(packet->destination_connection) != s) {
      network_->FreePacket(packet);
      return;
    }
  }
  // TcpOnData's short path.
  TcpAcceptInOrder(s, packet->payload.data(), length, flags);
  network_->FreePacket(packet);
}

void HostStack::TcpOnSegmentGeneral(Packet* packet) {
  const uint8_t flags = packet->flags;
  if ((flags & Packet::kSyn) && !(flags & Packet::kAck)) {
    TcpOnSyn(packet);
    return;
  }
  SocketState* s = packet->destination_connection != 0
                       ? FindSocket(packet->destination_connection)
                       : nullptr;
  const bool usable = s != nullptr && s->is_tcp() && s->state != TcpState::kClosed &&
                      s->state != TcpState::kListen && s->local == packet->destination &&
                      (s->peer_connection == 0 ||
                       s->peer_connection == packet->source_connection);
  if (!usable) {
    // Nobody owns this connection any more. A closed user socket stays silent, as its
    // TIME_WAIT twin would; anything else gets RST (unless it is one).
    const bool silent = s != nullptr && s->state != TcpState::kListen && !s->reset;
    if (!(flags & Packet::kRst) && !silent) SendReset(*packet);
    return;
  }
  if (s->state == TcpState::kTimeWait) return;
  if (flags & Packet::kRst) {
    TcpReset(s, ECONNRESET);
    return;
  }
  if (s->state == TcpState::kSynSent) {
    // The SYN-ACK (or any segment of the peer) completes our handshake.
    s->peer_connection = packet->source_connection;
    s->state = TcpState::kEstablished;
    if (s->syn_timer != kNoTimer) {
      scheduler_->CancelTimer(s->syn_timer);
      s->syn_timer = kNoTimer;
    }
    if (s->keepalive) ArmKeepalive(s, KeepaliveIdle(*s));  // tcp_finish_connect.
    WakeAll(s);
  }
  if (IsBelowWindowAck(*s, *packet)) {
    // A keepalive probe. It does not count as traffic for this end's own keepalive:
    // Linux drops it before tcp_ack would note it.
    TcpSendAck(s);
    return;
  }
  s->last_receive_time = scheduler_->Now();
  s->keepalive_probes_sent = 0;
  TcpOnAck(s, *packet);
  if (FindSocket(packet->destination_connection) != s) return;  // Destroyed by the ACK.
  TcpOnData(s, packet);
}

void HostStack::TcpOnSyn(Packet* packet) {
  if (auto it = child_by_peer_.find(packet->source_connection); it != child_by_peer_.end()) {
    // A repeated SYN: the child exists, so answer again.
    if (SocketState* child = FindSocket(it->second)) {
      TcpSendSegment(child, Packet::kSyn | Packet::kAck, 0, nullptr, 0);
    }
    return;
  }
  PortEntry* entry = FindPorts(SOCK_STREAM, packet->destination.port);
  if (entry == nullptr) {
    SendReset(*packet);
    return;
  }
  // Simultaneous open, including a socket connected to itself.
  for (SocketState* s : entry->sockets) {
    if (s->state == TcpState::kSynSent && s->local == packet->destination &&
        s->remote == packet->source) {
      s->peer_connection = packet->source_connection;
      s->state = TcpState::kEstablished;
      if (s->syn_timer != kNoTimer) {
        scheduler_->CancelTimer(s->syn_timer);
        s->syn_timer = kNoTimer;
      }
      s->snd_window_edge = packet->window_bytes;
      s->last_receive_time = scheduler_->Now();
      if (s->keepalive) ArmKeepalive(s, KeepaliveIdle(*s));
      TcpSendSegment(s, Packet::kSyn | Packet::kAck, 0, nullptr, 0);
      WakeAll(s);
      return;
    }
  }
  // The best listener: an exact address beats a wildcard; SO_REUSEPORT ties are chosen.
  std::vector<SocketState*> best;
  int best_score = 0;
  for (SocketState* s : entry->sockets) {
    if (s->state != TcpState::kListen || !FamilyAccepts(*s, packet->destination.address)) {
      continue;
    }
    const int score = LocalAddressScore(*s, packet->destination.address);
    if (score == 0 || score < best_score) continue;
    if (score > best_score) best.clear();
    best_score = score;
    best.push_back(s);
  }
  if (best.empty()) {
    SendReset(*packet);
    return;
  }
  SocketState* listener =
      best.size() == 1 ? best[0] : best[scheduler_->ChooseValue(best.size(), "net.reuseport")];
  if (listener->accept_queue.size() > static_cast<size_t>(listener->backlog)) {
    // Accept queue overflow: Linux drops the SYN; the client will retransmit.
    if (scheduler_->has_listeners()) {
      Annotate("tcp.listen_overflow", absl::StrCat(listener->local.ToString(), " dropped SYN from ",
                                                   packet->source.ToString()));
    }
    return;
  }
  SocketState* child = NewSocket(listener->family, SOCK_STREAM, listener->protocol);
  child->state = TcpState::kEstablished;
  child->sock_state = SockState::kConnected;
  child->local = packet->destination;
  child->remote = packet->source;
  child->has_remote = true;
  child->peer_connection = packet->source_connection;
  child->snd_window_edge = packet->window_bytes;
  child->reuse_address = listener->reuse_address;
  child->keepalive = listener->keepalive;
  child->keepalive_idle = listener->keepalive_idle;
  child->keepalive_interval = listener->keepalive_interval;
  child->keepalive_probes_max = listener->keepalive_probes_max;
  child->last_receive_time = scheduler_->Now();
  child->nodelay = listener->nodelay;
  child->linger_on = listener->linger_on;
  child->linger_seconds = listener->linger_seconds;
  child->send_buffer_bytes = listener->send_buffer_bytes;
  child->receive_buffer_bytes = listener->receive_buffer_bytes;
  child->receive_timeout = listener->receive_timeout;
  child->send_timeout = listener->send_timeout;
  child->v6only = listener->v6only;
  child->listener = listener->id;
  BindPassive(child);
  child_by_peer_[packet->source_connection] = child->id;
  listener->accept_queue.push_back(child);
  // Linux arms a child's keepalive when it is created (tcp_create_openreq_child).
  if (child->keepalive) ArmKeepalive(child, KeepaliveIdle(*child));
  TcpSendSegment(child, Packet::kSyn | Packet::kAck, 0, nullptr, 0);
  ++listener->edges;
  if (!listener->readable.empty()) listener->readable.WakeAll();
}

void HostStack::TcpOnAck(SocketState* s, const Packet& packet) {
  if (!(packet.flags & Packet::kAck)) return;
  const uint64_t end = s->snd_una + s->tx.size();
  const uint64_t acked = std::min(packet.acknowledgment, end);
  const bool freed = TcpConsumeAcked(s, acked);
  s->snd_window_edge = std::max(s->snd_window_edge, acked + packet.window_bytes);
  if (s->fin_sent && !s->fin_acked && packet.acknowledgment >= end + 1) {
    TcpOnFinAcked(s);
    if (FindSocket(packet.destination_connection) != s) return;
  }
  if (freed && TcpWritable(*s)) {
    ++s->edges;
    if (!s->writable.empty()) s->writable.WakeAll();
  }
  // Most ACKs leave nothing to send (the whole queue is in flight): no pump then.
  if (s->snd_nxt < s->snd_una + s->tx.size() || (s->fin_queued && !s->fin_sent)) TcpPump(s);
}

void HostStack::TcpOnFinAcked(SocketState* s) {
  s->fin_acked = true;
  switch (s->state) {
    case TcpState::kFinWait1:
      s->state = TcpState::kFinWait2;
      if (s->orphan()) AddTimer<&HostStack::OnFinWait2Timeout>(options_.fin_wait2_timeout, s->id);
      WakeAll(s);
      break;
    case TcpState::kClosing:
      TcpEnterTimeWait(s);
      break;
    case TcpState::kLastAck:
      TcpDone(s);
      break;
    default:
      break;
  }
}

void HostStack::TcpOnData(SocketState* s, Packet* packet) {
  const size_t length = packet->payload.size();
  const uint8_t flags = packet->flags;
  if (ABSL_PREDICT_TRUE(length > 0 && (flags & Packet::kFin) == 0 &&
                        s->state == TcpState::kEstablished && packet->sequence == s->rcv_nxt &&
                        s->out_of_order.empty() && s->pending_fin_sequence == UINT64_MAX)) {
    // The next bytes of the stream, nothing out of order or FIN pending: what the
    // general path below does with them, in fewer steps.
    TcpAcceptInOrder(s, packet->payload.data(), length, flags);
    return;
  }
  TcpOnDataGeneral(s, packet);
}

void HostStack::TcpOnDataGeneral(SocketState* s, Packet* packet) {
  const size_t length = packet->payload.size();
  const bool fin = (packet->flags & Packet::kFin) != 0;
  if (length == 0 && !fin) return;
  const uint64_t sequence = packet->sequence;
  const uint64_t end = sequence + length;
  if ((s->state == TcpState::kFinWait1 || s->state == TcpState::kFinWait2) &&
      (s->shutdown & kRcvShutdown) && length > 0 && end > s->rcv_nxt) {
    // New data for a socket that will never read it: RFC 1122 says reset (Linux does).
    TcpSendSegment(s, Packet::kRst | Packet::kAck, s->snd_nxt, nullptr, 0);
    TcpReset(s, ECONNRESET);
    return;
  }
  const bool accepts_data = s->state == TcpState::kEstablished ||
                            s->state == TcpState::kFinWait1 || s->state == TcpState::kFinWait2;
  if (!accepts_data) return;  // Data after the peer's FIN: nothing to do with it.
  bool readable = false;
  if (length > 0 && end > s->rcv_nxt) {
    if (sequence <= s->rcv_nxt) {
      s->rx.Append(packet->payload.data() + (s->rcv_nxt - sequence), end - s->rcv_nxt);
      s->rcv_nxt = end;
      readable = true;
      // Segments that were waiting for this one.
      while (!s->out_of_order.empty() && s->out_of_order.begin()->first <= s->rcv_nxt) {
        auto it = s->out_of_order.begin();
        const uint64_t seg_end = it->first + it->second.size();
        if (seg_end > s->rcv_nxt) {
          s->rx.Append(it->second.data() + (s->rcv_nxt - it->first), seg_end - s->rcv_nxt);
          s->rcv_nxt = seg_end;
        }
        s->out_of_order_bytes -= it->second.size();
        s->out_of_order.erase(it);
      }
    } else if (!s->out_of_order.count(sequence)) {
      s->out_of_order_bytes += length;
      s->out_of_order.emplace(sequence, std::move(packet->payload));
    }
  }
  if (fin) s->pending_fin_sequence = std::min(s->pending_fin_sequence, end);
  if (readable) {
    ++s->edges;
    if (!s->readable.empty()) s->readable.WakeAll();
  }
  if (s->pending_fin_sequence == s->rcv_nxt && !s->fin_received) {
    TcpOnFin(s);
    return;
  }
  if (length == 0) return;
  if ((packet->flags & Packet::kAckNow) || s->rcv_nxt - s->rcv_acked >= 2 * options_.segment_bytes_max) {
    TcpSendAck(s);
  } else {
    ArmDelayedAck(s);
  }
}

void HostStack::TcpOnFin(SocketState* s) {
  s->fin_received = true;
  s->done = true;
  s->shutdown |= kRcvShutdown;
  TcpSendAck(s);
  switch (s->state) {
    case TcpState::kEstablished:
      s->state = TcpState::kCloseWait;
      break;
    case TcpState::kFinWait1:
      s->state = TcpState::kClosing;
      break;
    case TcpState::kFinWait2:
      TcpEnterTimeWait(s);
      return;
    default:
      break;
  }
  WakeAll(s);
}

// After a read freed buffer space: tell the peer if its window grew a lot (as Linux's
// tcp_cleanup_rbuf does when the window at least doubles).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void HostStack::TcpAfterRead(SocketState* s) {
  if (s->peer_connection == 0 || s->fin_received) return;
  const uint64_t peer_view = s->rcv_window_edge > s->rcv_nxt ? s->rcv_window_edge - s->rcv_nxt : 0;
  const uint64_t now_window = TcpReceiveWindow(*s);
  if (2 * peer_view <= static_cast<uint64_t>(s->receive_buffer_bytes) && now_window > 0 &&
      now_window >= 2 * peer_view) {
    TcpSendAck(s);
  }
}

// ---- TCP: calls ---------------------------------------------------------------------

ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t HostStack::TcpRecv(SocketState* s, const RecvArgs& args, size_t length,
                           absl::Time start, SourceLocation where) {
  if (s->state == TcpState::kListen) {
    return FailWith(ENOTCONN, args.what, " on a listening socket");
  }
  if (args.flags & MSG_OOB) return FailWith(EINVAL, args.what, ": no urgent data");
  if (args.flags & MSG_ERRQUEUE) return FailWith(EAGAIN, "the error queue is empty");
  const bool peek = args.flags & MSG_PEEK;
  const bool waitall = (args.flags & MSG_WAITALL) != 0;
  const bool discard = (args.flags & MSG_TRUNC) != 0;
  const bool nonblocking = s->nonblocking || (args.flags & MSG_DONTWAIT);
  const size_t target = waitall && length > 0 ? length : 1;
  size_t copied = 0;
  for (;;) {
    const size_t offset = peek ? copied : 0;
    const size_t available = s->rx.size() > offset ? s->rx.size() - offset : 0;
    if (available > 0) {
      const size_t n = std::min(available, length - copied);
      if (!discard && n > 0 && !CopyToIov(args.iov, copied, s->rx.At(offset), n)) {
        if (copied == 0) return FailWith(EFAULT, args.what, ": the buffer is null");
        break;
      }
      if (!peek) s->rx.Consume(n);
      copied += n;
      if (copied >= target || copied == length) break;
      continue;
    }
    if (copied > 0) {
      if (nonblocking || s->error != 0 || s->state == TcpState::kClosed ||
          (s->shutdown & kRcvShutdown)) {
        break;
      }
    } else {
      if (s->done) break;
      if (s->error != 0) {
        const int error = s->error;
        s->error = 0;
        return FailWith(error, args.what, ": ", error == ECONNRESET
                                                  ? "the peer reset the connection"
                                                  : "the connection failed");
      }
      if (s->shutdown & kRcvShutdown) break;
      if (s->state == TcpState::kClosed) {
        return FailWith(ENOTCONN, args.what, " on an unconnected socket");
      }
      if (nonblocking) return FailWith(EAGAIN, args.what, ": no data is available");
    }
    // The deadline is re-read after every wake: SetReadDeadline may have moved it.
    if (!WaitReadable(s, start, args.what, where)) {
      if (copied > 0) break;
      return FailWith(EAGAIN, args.what, ": timed out waiting for data");
    }
  }
  if (!peek && copied > 0) TcpAfterRead(s);
  return static_cast<ssize_t>(copied);
}

ssize_t HostStack::TcpSend(SocketState* s, const SendArgs& args, size_t length,
                           absl::Time start, SourceLocation where) {
  if (args.flags & MSG_OOB) {
    return FailWith(EOPNOTSUPP, "urgent data (MSG_OOB) is not simulated");
  }
  const bool nonblocking = s->nonblocking || (args.flags & MSG_DONTWAIT);
  // Wait for a connection in progress (sk_stream_wait_connect).
  while (s->state != TcpState::kEstablished && s->state != TcpState::kCloseWait) {
    if (s->error != 0) {
      const int error = s->error;
      s->error = 0;
      return FailWith(error, args.what, ": the connection failed");
    }
    if (s->state != TcpState::kSynSent) {
      return FailWith(EPIPE, args.what, " on a socket that is not connected (state ",
                      TcpStateName(s->state), ")");
    }
    if (nonblocking) return FailWith(EAGAIN, args.what, ": still connecting");
    if (!WaitUntil(s, s->writable, Deadline(*s, false, start), args.what, where)) {
      return FailWith(EAGAIN, args.what, ": timed out while connecting");
    }
  }
  size_t copied = 0;
  for (;;) {
    if (s->error != 0 || (s->shutdown & kSendShutdown)) {
      if (copied > 0) break;
      if (s->error != 0) {
        const int error = s->error;
        s->error = 0;
        return FailWith(error, args.what, ": ", error == ECONNRESET
                                                  ? "the peer reset the connection"
                                                  : "the connection failed");
      }
      return FailWith(EPIPE, args.what, " after shutdown for writing");
    }
    if (copied == length) break;
    const size_t free = s->send_free_bytes();
    if (free == 0) {
      if (nonblocking) {
        if (copied > 0) break;
        return FailWith(EAGAIN, args.what, ": the send buffer is full");
      }
      if (!WaitUntil(s, s->writable, Deadline(*s, false, start), args.what, where)) {
        if (copied > 0) break;
        return FailWith(EAGAIN, args.what, ": timed out waiting for buffer space");
      }
      continue;
    }
    const size_t n = std::min(free, length - copied);
    // The chunk is taken whole or not at all: Linux copies it into one buffer and
    // discards the partial copy when a piece faults (EFAULT, nothing sent), so a
    // caller that retries does not send the first pieces twice.
    const bool readable = ForEachIovPiece(args.iov, copied, n, [](const char*, size_t) {});
    const bool ok = readable && CopyFromIov(args.iov, copied, n, [s](const char* data, size_t size) {
      s->tx.Append(data, size);
    });
    if (!ok) {
      if (copied > 0) break;
      return FailWith(EFAULT, args.what, ": the buffer is null");
    }
    copied += n;
    TcpPump(s);
    if (length == 0) break;
  }
  return static_cast<ssize_t>(copied);
}

// ---- UDP ---------------------------------------------------------------------------

int HostStack::UdpConnect(SocketState* s, const sockaddr* address, socklen_t length) {
  if (length < sizeof(sa_family_t)) {
    return Fail(EINVAL, absl::StrCat("connect: address length ", length, " is too short"));
  }
  if (address->sa_family == AF_UNSPEC) {
    s->has_remote = false;
    s->sock_state = SockState::kUnconnected;
    if (!s->address_locked) {
      Unbind(s);  // Re-key the binding under the wildcard address.
      s->local.address = s->family == AF_INET ? IpAddress::V4Any() : IpAddress::V6Any();
      if (s->port_locked) BindTo(s, s->local);
    }
    if (!s->port_locked) {
      Unbind(s);
      s->local.port = 0;
    }
    return 0;
  }
  if (!s->bound && AutoBind(s, s->local.address, false) < 0) {
    return Fail(EAGAIN, "connect: no free ephemeral port");
  }
  Endpoint destination;
  if (s->family == AF_INET6 && address->sa_family == AF_INET) {
    // ip6_datagram_connect hands a sockaddr_in to the IPv4 path (its length rules apply).
    if (s->v6only) return Fail(EAFNOSUPPORT, "connect: AF_INET address on IPV6_V6ONLY");
    if (length < sizeof(sockaddr_in)) {
      return Fail(EINVAL, absl::StrCat("connect: address length ", length,
                                       " is shorter than sockaddr_in (16)"));
    }
    sockaddr_in in;
    std::memcpy(&in, address, sizeof(in));
    destination = Endpoint{IpAddress::FromInAddr(in.sin_addr), ntohs(in.sin_port)};
  } else {
    bool unspecified_family;
    if (int r = ParseAddress(*s, address, length, &destination, &unspecified_family, "connect");
        r < 0) {
      return r;
    }
    if (unspecified_family) return Fail(EAFNOSUPPORT, "connect: AF_UNSPEC with an address");
  }
  if (s->family == AF_INET6 && destination.address.is_v4() && s->v6only) {
    return Fail(ENETUNREACH, "connect: an IPv4-mapped address on an IPV6_V6ONLY socket");
  }
  IpAddress source;
  if (int r = Route(*s, &destination, &source); r < 0) return r;
  if (s->local.address.IsUnspecified()) {
    const uint16_t port = s->local.port;
    Unbind(s);
    s->local = Endpoint{source, port};
    Ports(*s, port).sockets.push_back(s);
    s->bound = true;
  }
  s->remote = destination;
  s->has_remote = true;
  s->sock_state = SockState::kConnected;
  return 0;
}

// sendto's destination: the checks of udp_sendmsg / udpv6_sendmsg on a named address.
// Out of line: its sockaddr copy would give UdpSend a stack protector.
int HostStack::UdpNamedDestination(const SocketState* s, const SendArgs& args,
                                   Endpoint* out) {
  Endpoint destination;
  if (args.name_length < sizeof(sa_family_t)) {
    return FailWith(EINVAL, args.what, ": the address is too short");
  }
  const int family = args.name->sa_family;
  if (s->family == AF_INET && family != AF_INET && family != AF_UNSPEC) {
    return FailWith(EAFNOSUPPORT, args.what, ": address family ", family,
                    " on an AF_INET socket");
  }
  if (s->family == AF_INET6 && family != AF_INET6 && family != AF_INET &&
      family != AF_UNSPEC) {
    return FailWith(EINVAL, args.what, ": address family ", family,
                    " on an AF_INET6 socket");
  }
  if (s->family == AF_INET6 && family == AF_INET) {
    // udpv6_sendmsg hands a sockaddr_in to the IPv4 path.
    if (args.name_length < sizeof(sockaddr_in)) {
      return FailWith(EINVAL, args.what, ": the address is too short");
    }
    if (s->v6only) return FailWith(ENETUNREACH, args.what, ": IPv4 on IPV6_V6ONLY");
    sockaddr_in in;
    std::memcpy(&in, args.name, sizeof(in));
    destination = Endpoint{IpAddress::FromInAddr(in.sin_addr), ntohs(in.sin_port)};
    if (destination.port == 0) return FailWith(EINVAL, args.what, ": destination port 0");
  } else if (family == AF_UNSPEC && s->family == AF_INET6) {
    if (!s->has_remote) return FailWith(EDESTADDRREQ, args.what, ": no destination");
    destination = s->remote;
  } else {
    const socklen_t needed = s->family == AF_INET ? sizeof(sockaddr_in) : 24;
    if (args.name_length < needed) {
      return FailWith(EINVAL, args.what, ": address length ", args.name_length,
                      " is too short");
    }
    bool unspecified_family;
    // ParseAddress reads at most name_length bytes, and at most a sockaddr_in6.
    sockaddr_storage storage;
    std::memcpy(&storage, args.name, std::min<size_t>(args.name_length, sizeof(sockaddr_in6)));
    if (family == AF_UNSPEC) reinterpret_cast<sockaddr*>(&storage)->sa_family = AF_INET;
    if (int r = ParseAddress(*s, reinterpret_cast<sockaddr*>(&storage), args.name_length,
                             &destination, &unspecified_family, args.what);
        r < 0) {
      return r;
    }
    if (destination.port == 0) {
      return FailWith(EINVAL, args.what, ": destination port 0");
    }
    if (s->family == AF_INET6 && destination.address.is_v4() && s->v6only) {
      return FailWith(ENETUNREACH, args.what, ": IPv4-mapped on IPV6_V6ONLY");
    }
  }
  *out = destination;
  return 0;
}

ssize_t HostStack::UdpSend(SocketState* s, const SendArgs& args, size_t length) {
  // inet_sendmsg binds an unbound socket before anything else is checked.
  if (!s->bound && AutoBind(s, s->local.address, false) < 0) {
    return FailWith(EAGAIN, args.what, ": no free ephemeral port");
  }
  if (length > 0xFFFF) {
    return FailWith(EMSGSIZE, args.what, ": ", length, " bytes exceed a datagram");
  }
  if (args.flags & MSG_OOB) return FailWith(EOPNOTSUPP, "MSG_OOB on a datagram socket");
  Endpoint destination;
  if (args.name != nullptr && args.name_length > 0) {
    if (s->family == AF_INET && args.name_length >= sizeof(sockaddr_in) &&
        args.name->sa_family == AF_INET) {
      // sendto on an IPv4 socket with a whole sockaddr_in: what UdpNamedDestination
      // and ParseAddress conclude then, without their copies.
      sockaddr_in in;
      std::memcpy(&in, args.name, sizeof(in));
      if (in.sin_port == 0) return FailWith(EINVAL, args.what, ": destination port 0");
      destination = Endpoint{IpAddress::FromInAddr(in.sin_addr), ntohs(in.sin_port)};
    } else if (int r = UdpNamedDestination(s, args, &destination); r < 0) {
      return r;
    }
  } else {
    if (!s->has_remote) {
      return FailWith(EDESTADDRREQ, args.what, " on an unconnected datagram socket "
                      "needs a destination address");
    }
    destination = s->remote;
    if (s->family == AF_INET6 && destination.address.is_v4() && destination.port == 0) {
      // udpv6_sendmsg hands the v4-mapped peer to udp_sendmsg as a sockaddr_in, and
      // udp_sendmsg refuses port 0 in an address (a native connected socket sends).
      return FailWith(EINVAL, args.what, ": the v4-mapped peer has port 0");
    }
  }
  // Linux's order: routing, then the datagram size (ip_append_data), then a pending
  // error and the send shutdown (sock_alloc_send_skb).
  IpAddress source;
  NetworkHost* to = nullptr;
  if (int r = Route(*s, &destination, &source, &to); r < 0) return r;
  const size_t limit = destination.address.is_v4() ? kUdpMaxPayloadV4 : kUdpMaxPayloadV6;
  if (length > limit) {
    return FailWith(EMSGSIZE, args.what, ": ", length, " bytes exceed the ", limit,
                    "-byte datagram limit");
  }
  if (s->error != 0) {
    const int error = s->error;
    s->error = 0;
    return FailWith(error, args.what, ": an earlier datagram was refused (ICMP)");
  }
  if (s->shutdown & kSendShutdown) {
    return FailWith(EPIPE, args.what, " after shutdown for writing");
  }
  Packet* p = network_->NewPacket();
  const bool ok = CopyFromIov(args.iov, 0, length, [p](const char* data, size_t size) {
    p->payload.append(data, size);
  });
  if (!ok) {
    network_->FreePacket(p);
    return FailWith(EFAULT, args.what, ": the buffer is null");
  }
  p->kind = Packet::Kind::kUdp;
  p->source = Endpoint{source, s->local.port};
  p->destination = destination;
  Transmit(p, to);
  return static_cast<ssize_t>(length);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t HostStack::UdpRecv(SocketState* s, const RecvArgs& args, size_t length,
                           absl::Time start, SourceLocation where) {
  if (args.flags & MSG_ERRQUEUE) return FailWith(EAGAIN, "the error queue is empty");
  const bool peek = args.flags & MSG_PEEK;
  const bool nonblocking = s->nonblocking || (args.flags & MSG_DONTWAIT);
  for (;;) {
    if (s->error != 0) {
      const int error = s->error;
      s->error = 0;
      return FailWith(error, args.what, ": an earlier datagram was refused (ICMP)");
    }
    if (!s->datagrams.empty()) break;
    // Linux checks the shutdown only while waiting: a nonblocking call says EAGAIN.
    if (nonblocking) return FailWith(EAGAIN, args.what, ": no datagram is queued");
    if (s->shutdown & kRcvShutdown) return 0;
    if (!WaitReadable(s, start, args.what, where)) {
      return FailWith(EAGAIN, args.what, ": timed out waiting for a datagram");
    }
  }
  Packet* datagram = s->datagrams.front();
  const size_t size = datagram->payload.size();
  const size_t n = std::min(size, length);
  bool copied = true;
  if (args.into != nullptr) {
    ReceivedInto(args.into, datagram->payload.data(), n);
    if (args.from_address != nullptr) {
      *args.from_address = datagram->source.address;
      *args.from_port = datagram->source.port;
    }
    // The wrappers pass no sockaddr and no msghdr (RecvInto), so UdpRecvFinish would
    // only compute the result: done here, without its call.
    DSIM_DCHECK(args.name == nullptr && args.msg == nullptr, "RecvInto passes no sockaddr");
    if (!peek) {
      s->datagram_bytes -= size + options_.udp_datagram_overhead_bytes;
      s->datagrams.pop_front();
      network_->FreePacket(datagram);
    }
    return static_cast<ssize_t>((args.flags & MSG_TRUNC) ? size : n);
  } else if (n > 0) {
    copied = CopyToIov(args.iov, 0, datagram->payload.data(), n);
  }
  if (!peek) {  // Consumed, even if the copy faults (as before).
    s->datagram_bytes -= size + options_.udp_datagram_overhead_bytes;
    s->datagrams.pop_front();
  }
  // The sender's address is read from the packet, which goes back to the pool last.
  const ssize_t result = UdpRecvFinish(s, args, *datagram, copied, n);
  if (!peek) network_->FreePacket(datagram);  // Payload capacity and all.
  return result;
}

// UdpRecv's result once the payload is copied (or not: `copied` false is EFAULT): the
// sender's address and recvmsg's flags.
ssize_t HostStack::UdpRecvFinish(SocketState* s, const RecvArgs& args, const Packet& datagram,
                                 bool copied, size_t n) {
  if (!copied) return FailWith(EFAULT, args.what, ": the buffer is null");
  if (args.name != nullptr) {
    if (int r = CopyAddressOut(*s, datagram.source, args.name, args.name_length, false);
        r < 0) {
      return r;
    }
  }
  const size_t size = datagram.payload.size();
  if (args.msg != nullptr) {
    if (args.msg->msg_name != nullptr) {
      if (int r = CopyAddressOut(*s, datagram.source,
                                 static_cast<sockaddr*>(args.msg->msg_name),
                                 &args.msg->msg_namelen, false);
          r < 0) {
        return r;
      }
    }
    args.msg->msg_flags = n < size ? MSG_TRUNC : 0;
    args.msg->msg_controllen = 0;
  }
  return static_cast<ssize_t>((args.flags & MSG_TRUNC) ? size : n);
}

// Recv once the socket and the length are known (`args.into` is null for streams).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t HostStack::RecvOn(SocketState* s,
                                                              const RecvArgs& args,
                                                              size_t length,
                                                              SourceLocation where) {
  // Read once: a socket's type never changes, and RecvRead's callers know it.
  const bool tcp = s->is_tcp();
  CallGuard guard(this, s);
  const absl::Time start = CallStart(*s, true);
  if (s->read_deadline <= start) {
    return FailWith(EAGAIN, args.what, ": the read deadline has passed");
  }
  // Buggify: a stream read may return a short prefix (never with MSG_WAITALL, whose
  // whole point is the full length, nor MSG_PEEK).
  if (tcp && length > 1 && network_->buggify().enabled &&
      !(args.flags & (MSG_WAITALL | MSG_PEEK))) {
    length = BuggifyLength(length, "fault.buggify.short_read");
  }
  ssize_t result = tcp ? TcpRecv(s, args, length, start, where)
                       : UdpRecv(s, args, length, start, where);
  if (result < 0) return result;
  if (tcp) {
    // TCP reports no source address: a zero length goes back, as in Linux.
    if (args.name != nullptr) {
      if (int r = CopyAddressOut(*s, s->remote, args.name, args.name_length, true); r < 0) {
        return r;
      }
    }
    if (args.msg != nullptr) {
      if (args.msg->msg_name != nullptr) args.msg->msg_namelen = 0;
      args.msg->msg_flags = 0;
      args.msg->msg_controllen = 0;
    }
  }
  return result;
}

// recv, recvfrom, recvmsg, read on a socket. In this file, so that TcpRecv and UdpRecv
// (each called only here) fold into it: one frame per receive call.
ssize_t HostStack::Recv(int fd, const RecvArgs& args, SourceLocation where) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_FALSE(s == nullptr)) {
    // A socketpair end (sockets/internal/unix_socket.h).
    if (std::shared_ptr<UnixSocket> pair_end = UnixSocketRef(fd); pair_end != nullptr) {
      return pair_end->Recv(*this, args, where);
    }
    return FailBadDescriptor(fd);
  }
  size_t length = 0;
  for (const iovec& v : args.iov) length += v.iov_len;
  if (args.into != nullptr) {
    if (s->is_tcp()) return RecvStreamInto(fd, args, where);
    length = args.into_max;
  }
  return RecvOn(s, args, length, where);
}

// read(2) on a stream socket: RecvOn with args a local whose fields the compiler sees
// (one buffer, no flags, no address, no msghdr), so their tests fold away. The same
// code as Recv runs, with those values.
ssize_t HostStack::RecvRead(SocketState* s, int fd, void* buffer, size_t length,
                            SourceLocation where) {
  DSIM_DCHECK(s == Lookup(fd));
  if (ABSL_PREDICT_TRUE(s->is_tcp())) {
    const iovec v{buffer, length};
    RecvArgs args;
    args.iov = absl::MakeConstSpan(&v, 1);
    args.what = "read";
    return RecvOn(s, args, length, where);
  }
  return RecvOneGeneral(fd, buffer, length, 0, "read", where);
}

// recv(2), and recvfrom(2) without an address: the same for streams, with the flags
// left to the call.
ssize_t HostStack::RecvOne(int fd, void* buffer, size_t length, int flags, const char* what,
                           SourceLocation where) {
  SocketState* s = Lookup(fd);
  if (ABSL_PREDICT_TRUE(s != nullptr && s->is_tcp())) {
    const iovec v{buffer, length};
    RecvArgs args;
    args.iov = absl::MakeConstSpan(&v, 1);
    args.flags = flags;
    args.what = what;
    return RecvOn(s, args, length, where);
  }
  return RecvOneGeneral(fd, buffer, length, flags, what, where);
}

ssize_t HostStack::RecvOneGeneral(int fd, void* buffer, size_t length, int flags,
                                  const char* what, SourceLocation where) {
  const iovec v{buffer, length};
  RecvArgs args;
  args.iov = absl::MakeConstSpan(&v, 1);
  args.flags = flags;
  args.what = what;
  return Recv(fd, args, where);
}

// How well a datagram socket matches a packet: 0 for not at all, more for more
// specific (an exact address beats a wildcard, a connected socket beats both).
int HostStack::UdpScore(const SocketState& s, const Packet& packet) const {
  if (!FamilyAccepts(s, packet.destination.address)) return 0;
  int score = LocalAddressScore(s, packet.destination.address);
  if (score == 0) return 0;
  if (s.has_remote) {
    if (!RemoteMatches(s, packet.source)) return 0;  // Connected: filters senders.
    score += 4;
  }
  return score;
}

void HostStack::UdpOnDatagram(Packet* packet) {
  PortEntry* entry = FindPorts(SOCK_DGRAM, packet->destination.port);
  SocketState* s = nullptr;
  if (entry != nullptr && entry->sockets.size() == 1) {
    // One socket on the port (the usual case): it takes the datagram if it matches.
    SocketState* only = entry->sockets[0];
    if (UdpScore(*only, *packet) > 0) s = only;
  } else if (entry != nullptr) {
    absl::InlinedVector<SocketState*, 4> best;
    int best_score = 0;
    for (SocketState* candidate : entry->sockets) {
      const int score = UdpScore(*candidate, *packet);
      if (score == 0 || score < best_score) continue;
      if (score > best_score) best.clear();
      best_score = score;
      best.push_back(candidate);
    }
    if (!best.empty()) {
      s = best.size() == 1 ? best[0]
                           : best[scheduler_->ChooseValue(best.size(), "net.udp_reuse")];
    }
  }
  if (s == nullptr) {
    Packet* reply = network_->NewPacket();
    reply->kind = Packet::Kind::kPortUnreachable;
    reply->source = packet->destination;
    reply->destination = packet->source;
    Transmit(reply);
    network_->FreePacket(packet);
    return;
  }
  if (s->datagram_bytes > static_cast<size_t>(s->receive_buffer_bytes)) {
    // A full receive buffer drops the datagram, as Linux does.
    if (scheduler_->has_listeners()) {
      Annotate("udp.overflow", absl::StrCat(s->local.ToString(), " dropped a datagram from ",
                                            packet->source.ToString()));
    }
    network_->FreePacket(packet);
    return;
  }
  s->datagram_bytes += packet->payload.size() + options_.udp_datagram_overhead_bytes;
  // The queue keeps the packet itself: no copy, and no buffer changes hands.
  s->datagrams.push_back(packet);
  ++s->edges;
  if (!s->readable.empty()) s->readable.WakeAll();
}

void HostStack::UdpOnUnreachable(const Packet& packet) {
  // Only a connected socket hears about it (Linux without IP_RECVERR).
  PortEntry* entry = FindPorts(SOCK_DGRAM, packet.destination.port);
  if (entry == nullptr) return;
  for (SocketState* s : entry->sockets) {
    if (s->has_remote && RemoteMatches(*s, packet.source)) {
      s->error = ECONNREFUSED;
      WakeAll(s);
      return;
    }
  }
}

}  // namespace dsim::internal
