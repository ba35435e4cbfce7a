#include "sockets/udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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

namespace {

// "a.b.c.d" exactly as inet_pton(AF_INET) reads it: four decimal numbers of 1 to 3
// digits, at most 255, no leading zero, separated by dots, nothing else. False for
// anything else, which then takes the full parse (inet_pton decides): so every text is
// read as before, and the common one without a string copy, a 128-byte clear and
// inet_pton. One pass, no inner loop.
bool ParseDottedQuad(absl::string_view text, in_addr* out) {
  if (text.size() < 7 || text.size() > 15) return false;
  uint32_t address = 0;
  uint32_t value = 0;
  int digits = 0;
  int dots = 0;
  for (const char c : text) {
    if (c >= '0' && c <= '9') {
      if (digits == 1 && value == 0) return false;  // A leading zero.
      value = value * 10 + static_cast<uint32_t>(c - '0');
      if (++digits > 3) return false;
    } else if (c == '.') {
      if (digits == 0 || value > 255 || ++dots > 3) return false;
      address = (address << 8) | value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (dots != 3 || digits == 0 || value > 255) return false;
  out->s_addr = htonl((address << 8) | value);
  return true;
}

absl::Status SendToAddress(int fd, absl::string_view data, const void* address,
                           socklen_t length) {
  if (Sendto(fd, data.data(), data.size(), 0, static_cast<const sockaddr*>(address), length) < 0) {
    return LastSocketError("sendto");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status UdpSocket::SendTo(absl::string_view data, absl::string_view ip, uint16_t port) {
  // Common IPv4 text: the same sockaddr_in that ParseSockaddr builds, built here.
  sockaddr_in v4{};
  if (ParseDottedQuad(ip, &v4.sin_addr)) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return SendToAddress(fd(), data, &v4, sizeof(v4));
  }
  sockaddr_storage address;
  absl::StatusOr<socklen_t> length = ParseSockaddr(ip, port, &address);
  if (!length.ok()) return length.status();
  return SendToAddress(fd(), data, &address, *length);
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

absl::Status UdpSocket::ReceiveFailed() { return LastSocketError("recvfrom"); }

absl::Status UdpSocket::SendFailed(const char* call) { return LastSocketError(call); }

}  // namespace dsim
