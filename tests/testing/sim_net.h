// Small socket helpers for tests of the simulated network: listen, connect, write
// everything, read everything, UDP send and receive. Test code, not dsim API.
#ifndef DSIM_TESTS_TESTING_SIM_NET_H_
#define DSIM_TESTS_TESTING_SIM_NET_H_

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

#include "sockets/socket.h"

namespace dsim::testing {

inline sockaddr* Sa(sockaddr_storage* s) { return reinterpret_cast<sockaddr*>(s); }

// A listening TCP socket on ip:port, or -1.
inline int ListenOn(const char* ip, uint16_t port, int backlog = 16) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  if (fd < 0 || Bind(fd, Sa(&a), l) != 0 || Listen(fd, backlog) != 0) return -1;
  return fd;
}

// A connected TCP socket, or -1 (errno set).
inline int ConnectTo(const char* ip, uint16_t port) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  if (Connect(fd, Sa(&a), l) != 0) {
    const int error = errno;
    Close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// Writes all of `data`, looping over short writes. Returns bytes accepted (less than
// data.size() only on an error, left in errno).
inline size_t WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = Write(fd, data.data() + done, data.size() - done);
    if (n <= 0) return done;
    done += static_cast<size_t>(n);
  }
  return done;
}

// Reads until EOF or an error; `*error` gets errno (0 at EOF).
inline std::string ReadAll(int fd, int* error = nullptr) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = Read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (error != nullptr) *error = n == 0 ? 0 : errno;
    return out;
  }
}

inline int UdpBound(const char* ip, uint16_t port) {
  const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  if (fd < 0 || Bind(fd, Sa(&a), l) != 0) return -1;
  return fd;
}

inline ssize_t UdpSend(int fd, const char* ip, uint16_t port, const std::string& message) {
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  return Sendto(fd, message.data(), message.size(), 0, Sa(&a), l);
}

// One datagram, or nullopt when the read deadline passes first.
inline std::optional<std::string> UdpReceive(int fd) {
  char buffer[2048];  // Task stacks are small; the tests send small datagrams.
  const ssize_t n = Recv(fd, buffer, sizeof(buffer), 0);
  if (n < 0) return std::nullopt;
  return std::string(buffer, static_cast<size_t>(n));
}

}  // namespace dsim::testing

#endif  // DSIM_TESTS_TESTING_SIM_NET_H_
