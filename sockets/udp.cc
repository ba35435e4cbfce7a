#include "sockets/udp.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/network.h"
#include "sockets/internal/recv_into.h"
#include "sockets/socket.h"
#include "sockets/socket_status.h"

namespace dsim {
absl::StatusOr<UdpSocket> UdpSocket::Bind(absl::string_view ip, uint16_t port) {
  sockaddr_storage address;
  socklen_t length;
  absl::StatusOr<SocketHandle> opened =
      SocketHandle::OpenFor(ip, port, SOCK_DGRAM, &address, &length);
  if (!opened.ok()) return opened.status();
  SocketHandle handle = *std::move(opened);
  if (dsim::Bind(handle.fd(), reinterpret_cast<sockaddr*>(&address), length) < 0) {
    return LastSocketError("bind");
  }
  return UdpSocket(std::move(handle));
}

absl::Status UdpSocket::Connect(absl::string_view ip, uint16_t port) {
  sockaddr_storage address;
  absl::StatusOr<socklen_t> length = ParseSockaddr(ip, port, &address);
  if (!length.ok()) return length.status();
  if (dsim::Connect(fd(), reinterpret_cast<sockaddr*>(&address), *length) < 0) {
    return LastSocketError("connect");
  }
  return absl::OkStatus();
}

absl::Status UdpSocket::SendTo(absl::string_view data, absl::string_view ip, uint16_t port) {
  sockaddr_storage address;
  absl::StatusOr<socklen_t> length = ParseSockaddr(ip, port, &address);
  if (!length.ok()) return length.status();
  if (Sendto(fd(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&address),
             *length) < 0) {
    return LastSocketError("sendto");
  }
  return absl::OkStatus();
}

absl::Status UdpSocket::Send(absl::string_view data) {
  if (dsim::Send(fd(), data.data(), data.size(), 0) < 0) return LastSocketError("send");
  return absl::OkStatus();
}

absl::Status UdpSocket::SendTo(absl::string_view data, const IpAddress& ip, uint16_t port) {
  // The sockaddr built in line from the address's bytes (IPv4 is stored IPv4-mapped,
  // its four bytes last): no calls, and only the bytes the family uses are cleared.
  union {
    sockaddr_in v4;
    sockaddr_in6 v6;
  } address;
  socklen_t length;
  if (ip.is_v4()) {
    address.v4 = sockaddr_in{};
    address.v4.sin_family = AF_INET;
    address.v4.sin_port = htons(port);
    std::memcpy(&address.v4.sin_addr, ip.bytes().data() + 12, 4);
    length = sizeof(sockaddr_in);
  } else {
    address.v6 = sockaddr_in6{};
    address.v6.sin6_family = AF_INET6;
    address.v6.sin6_port = htons(port);
    std::memcpy(&address.v6.sin6_addr, ip.bytes().data(), 16);
    length = sizeof(sockaddr_in6);
  }
  if (Sendto(fd(), data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&address),
             length) < 0) {
    return LastSocketError("sendto");
  }
  return absl::OkStatus();
}

namespace {

// One recvfrom(MSG_TRUNC) into `datagram`: exactly the bytes received, the source kept
// binary. Returns what recvfrom returns (-1 with errno set; `datagram` is then as it was).
ssize_t ReceiveInto(int fd, UdpSocket::Datagram* datagram, size_t max_bytes,
                    SourceLocation where) {
  const ssize_t n = internal::RecvInto(fd, &datagram->data, max_bytes, MSG_TRUNC,
                                      &datagram->from_ip, &datagram->from_port, where);
  if (n >= 0) datagram->truncated = static_cast<size_t>(n) > max_bytes;
  return n;
}

}  // namespace

absl::Status UdpSocket::ReceiveFrom(Datagram* datagram, size_t max_bytes,
                                    SourceLocation where) {
  if (ReceiveInto(fd(), datagram, max_bytes, where) < 0) return LastSocketError("recvfrom");
  return absl::OkStatus();
}

absl::StatusOr<UdpSocket::Datagram> UdpSocket::ReceiveFrom(size_t max_bytes,
                                                            SourceLocation where) {
  // Received straight into the returned object (no Datagram moved into a StatusOr).
  absl::StatusOr<Datagram> result(absl::in_place);
  if (ReceiveInto(fd(), &*result, max_bytes, where) < 0) result = LastSocketError("recvfrom");
  return result;
}

}  // namespace dsim
