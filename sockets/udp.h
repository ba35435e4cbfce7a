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

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/source_location.h"
#include "net/network.h"
#include "sockets/internal/recv_into.h"
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
  absl::Status SendTo(absl::string_view data, const IpAddress& ip, uint16_t port);
  // To the connected destination.
  absl::Status Send(absl::string_view data);
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
  // The status of a failed receive (errno set by the call).
  static absl::Status ReceiveFailed();

  SocketHandle handle_;
};

}  // namespace dsim

#endif  // DSIM_SOCKETS_UDP_H_
