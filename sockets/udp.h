// UdpSocket: datagrams without raw descriptors. Closes on destruction; failures are
// absl::Status with the errno kept (socket_status.h).
//
// Example (inside tasks on simulated hosts):
//
//   absl::StatusOr<dsim::UdpSocket> server = dsim::UdpSocket::Bind("0.0.0.0", 53);
//   absl::StatusOr<dsim::UdpSocket::Datagram> query = server->ReceiveFrom();
//   server->SendTo("answer", query->from_ip, query->from_port);
//
//   absl::StatusOr<dsim::UdpSocket> client = dsim::UdpSocket::Bind("0.0.0.0", 0);
//   client->SendTo("question", "10.0.0.1", 53);
//
// Cost. The wrappers add nothing the POSIX calls do not do: ReceiveFrom copies only the
// bytes received (no zero-filled 64 KiB buffer) and keeps the sender's address binary
// (from_ip is an IpAddress; from_ip.ToString() gives the text). The returning
// ReceiveFrom makes one allocation of exactly the bytes kept when they exceed
// std::string's inline buffer (15 bytes in libstdc++), none otherwise; in a receive
// loop, ReceiveFrom(&datagram) reuses one Datagram's buffer and allocates nothing.
#ifndef DSIM_SOCKETS_UDP_H_
#define DSIM_SOCKETS_UDP_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/source_location.h"
#include "net/network.h"
#include "sockets/internal/recv_into.h"
#include "sockets/socket.h"
#include "sockets/tcp.h"

namespace dsim {

class UdpSocket {
 public:
  struct Datagram {
    std::string data;
    IpAddress from_ip;       // IPv4 senders come out as IPv4 (ToString: "10.0.0.2").
    uint16_t from_port = 0;
    bool truncated = false;  // The datagram was longer than max_bytes.
  };

  // A socket bound to ip:port (port 0: ephemeral). The family follows `ip`.
  static absl::StatusOr<UdpSocket> Bind(absl::string_view ip, uint16_t port);
  explicit UdpSocket(SocketHandle handle) : handle_(std::move(handle)) {}

  // Sets the default destination; only datagrams from it are received afterwards.
  absl::Status Connect(absl::string_view ip, uint16_t port);
  absl::Status SendTo(absl::string_view data, absl::string_view ip, uint16_t port);
  // To a binary address, such as a received Datagram's from_ip: no text parsing.
  // (Inline, as Send and ReceiveFrom: the sockaddr is built in the caller's frame from
  // the address's bytes; IPv4 is stored IPv4-mapped, its four bytes last.)
  absl::Status SendTo(absl::string_view data, const IpAddress& ip, uint16_t port) {
    if (ip.is_v4()) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      v4.sin_port = htons(port);
      std::memcpy(&v4.sin_addr, ip.bytes().data() + 12, 4);
      return Sent(Sendto(fd(), data.data(), data.size(), 0,
                         reinterpret_cast<const sockaddr*>(&v4), sizeof(v4)),
                  "sendto");
    }
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&v6.sin6_addr, ip.bytes().data(), 16);
    return Sent(Sendto(fd(), data.data(), data.size(), 0,
                       reinterpret_cast<const sockaddr*>(&v6), sizeof(v6)),
                "sendto");
  }
  // To the connected destination.
  absl::Status Send(absl::string_view data) {
    return Sent(dsim::Send(fd(), data.data(), data.size(), 0), "send");
  }
  // Blocks until a datagram arrives. (Inline: the returned Datagram, built in the
  // caller's frame, is received into directly, one call into the socket layer.)
  absl::StatusOr<Datagram> ReceiveFrom(size_t max_bytes = 65536,
                                       SourceLocation where = SourceLocation::Current()) {
    absl::StatusOr<Datagram> result(absl::in_place);
    Datagram& datagram = *result;
    const ssize_t n = internal::RecvInto(fd(), &datagram.data, max_bytes, MSG_TRUNC,
                                         &datagram.from_ip, &datagram.from_port, where);
    if (n < 0) {
      result = ReceiveFailed();
    } else {
      datagram.truncated = static_cast<size_t>(n) > max_bytes;
    }
    return result;
  }
  // The same into `datagram`, reusing its buffer's capacity.
  absl::Status ReceiveFrom(Datagram* datagram, size_t max_bytes = 65536,
                           SourceLocation where = SourceLocation::Current());

  SocketHandle& handle() { return handle_; }
  int fd() const { return handle_.fd(); }
  uint16_t port() const { return handle_.LocalPort(); }

 private:
  // The status of a failed receive or send (errno set by the call).
  static absl::Status ReceiveFailed();
  static absl::Status SendFailed(const char* call);
  static absl::Status Sent(ssize_t result, const char* call) {
    if (result < 0) return SendFailed(call);
    return absl::OkStatus();
  }

  SocketHandle handle_;
};

}  // namespace dsim

#endif  // DSIM_SOCKETS_UDP_H_
