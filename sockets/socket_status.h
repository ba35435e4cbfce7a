// Socket errors as absl::Status, with the errno kept as a payload.
//
// Example:
//
//   absl::StatusOr<dsim::TcpStream> stream = dsim::TcpStream::Connect("10.0.0.1", 80);
//   if (!stream.ok() && dsim::ErrnoFromStatus(stream.status()) == ECONNREFUSED) {
//     // retry later
//   }
//
// The status code follows the errno (ECONNREFUSED -> kUnavailable, EAGAIN ->
// kDeadlineExceeded, EADDRINUSE -> kAlreadyExists, ...); the message names the call and
// repeats LastSocketErrorMessage(); the payload under kErrnoPayloadUrl holds the errno.
#ifndef DSIM_SOCKETS_SOCKET_STATUS_H_
#define DSIM_SOCKETS_SOCKET_STATUS_H_

#include <sys/socket.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsim {

inline constexpr absl::string_view kErrnoPayloadUrl = "dsim.dev/errno";

// A status for a failed call: `call` ("connect"), `error` (an errno) and `detail`.
absl::Status ErrnoToStatus(int error, absl::string_view call, absl::string_view detail = "");
// The errno a status carries; 0 for OK or a status without one.
int ErrnoFromStatus(const absl::Status& status);

// The calling task's last failed socket call (`call`, errno and message) as a status.
absl::Status LastSocketError(absl::string_view call);

// Fills `out` with `ip`:`port` (IPv4 or IPv6 text) and returns its length, or
// InvalidArgument when `ip` is not an IP address.
absl::StatusOr<socklen_t> ParseSockaddr(absl::string_view ip, uint16_t port,
                                        sockaddr_storage* out);

}  // namespace dsim

#endif  // DSIM_SOCKETS_SOCKET_STATUS_H_
