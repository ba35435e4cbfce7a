// The wrappers' entry points into the socket calls (sockets/udp.h, sockets/tcp.h):
// RecvInto, recvfrom(2) into a std::string and a binary source address; RecvAll and
// SendAll, whole-buffer loops of recv(MSG_WAITALL) and send(MSG_NOSIGNAL).
//
// Example:
//
//   std::string data;
//   dsim::IpAddress from_ip;
//   uint16_t from_port;
//   ssize_t n = dsim::internal::RecvInto(fd, &data, 65536, MSG_TRUNC, &from_ip, &from_port);
//
// The same call as dsim::Recvfrom (same scheduling point, errors, trace annotation),
// except that `data` ends up holding exactly the bytes received (at most max_bytes) and
// the source comes back binary: no zero-filled buffer of the maximum size, no sockaddr
// filled and decoded again.
#ifndef DSIM_SOCKETS_INTERNAL_RECV_INTO_H_
#define DSIM_SOCKETS_INTERNAL_RECV_INTO_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <new>
#include <string>

#include "net/network.h"
#include "scheduler/source_location.h"

namespace dsim::internal {

// The source is left as it was when the socket reports none (a stream socket, a
// socketpair end) or the call fails.
ssize_t RecvInto(int fd, std::string* data, size_t max_bytes, int flags, IpAddress* from_address,
                 uint16_t* from_port, SourceLocation where = SourceLocation::Current());

// recv(fd, ..., MSG_WAITALL) until `length` bytes came or the stream ended: the bytes
// read (less than `length` only at the end of the stream), or -1 with errno set. Each
// round is the same call as dsim::Recv (scheduling point, trace annotation); the loop
// runs inside, so TcpStream::ReadFull costs one call.
ssize_t RecvAll(int fd, char* buffer, size_t length,
                SourceLocation where = SourceLocation::Current());

// send(fd, ..., MSG_NOSIGNAL) until all `length` bytes are sent: `length`, or -1 with
// errno set (some bytes may have been sent). Each round is the same call as dsim::Send.
ssize_t SendAll(int fd, const char* data, size_t length,
                SourceLocation where = SourceLocation::Current());

// `*data` = the n bytes at `bytes`, with at most one allocation of exactly n bytes.
// std::string::assign is out of line (libstdc++ instantiates it in the shared library)
// and grows through _M_mutate; the constructor is inline. So: a string that must grow
// is destroyed and built again in place (one allocation of exactly n bytes, its old
// buffer freed; no temporary moved in: the fresh Datagram of ReceiveFrom() takes this
// path); content that fits the inline buffer (15 bytes in libstdc++) is built and moved
// in (a move of a short string keeps the target's own buffer); a string with room keeps
// its buffer (ReceiveFrom(&datagram) in a loop allocates nothing). noexcept: a failed
// allocation ends the process rather than leave `*data` destroyed.
// AssignReceived's path for a string that must grow: built again in place. n exceeds
// the capacity, so the inline buffer (15 bytes) cannot hold it, and `bytes` is a
// packet's payload: the constructor's branches for a null pointer and for short
// content are dropped.
inline void RebuildReceived(std::string* data, const char* bytes, size_t n) noexcept {
  if (n <= 15 || bytes == nullptr) __builtin_unreachable();
  using String = std::string;
  data->~String();
  new (data) String(bytes, n);
}

inline void AssignReceived(std::string* data, const char* bytes, size_t n) noexcept {
  if (n > data->capacity()) {
    RebuildReceived(data, bytes, n);
  } else if (n <= 15) {
    *data = std::string(bytes, n);
  } else {
    data->assign(bytes, n);
  }
}

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_RECV_INTO_H_
