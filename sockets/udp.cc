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
  sockaddr_storage address;
  socklen_t length;
  std::memset(&address, 0, sizeof(sockaddr_in6));
  if (ip.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr = ip.ToInAddr();
    length = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = ip.ToIn6Addr();
    length = sizeof(sockaddr_in6);
  }
  if (Sendto(fd(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&address),
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
  Endpoint from;
  const ssize_t n =
      internal::RecvInto(fd, &datagram->data, max_bytes, MSG_TRUNC, &from, where);
  if (n < 0) return n;
  datagram->truncated = static_cast<size_t>(n) > max_bytes;
  datagram->from_ip = from.address;
  datagram->from_port = from.port;
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
