// RecvfromInto: recvfrom(2) into a std::string, for the wrappers (sockets/udp.h).
//
// Example:
//
//   std::string data;
//   sockaddr_storage from;
//   socklen_t from_length = sizeof(from);
//   ssize_t n = dsim::internal::RecvfromInto(fd, &data, 65536, MSG_TRUNC,
//                                            reinterpret_cast<sockaddr*>(&from), &from_length);
//
// The same call as dsim::Recvfrom (same scheduling point, errors, trace annotation),
// except that `data` ends up holding exactly the bytes received (at most max_bytes),
// reusing its capacity: no zero-filled buffer of the maximum size per call.
#ifndef DSIM_SOCKETS_INTERNAL_RECV_INTO_H_
#define DSIM_SOCKETS_INTERNAL_RECV_INTO_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

#include "scheduler/source_location.h"

namespace dsim::internal {

ssize_t RecvfromInto(int fd, std::string* data, size_t max_bytes, int flags, sockaddr* address,
                     socklen_t* address_length, SourceLocation where = SourceLocation::Current());

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_RECV_INTO_H_
