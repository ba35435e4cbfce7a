#include "sockets/socket_status.h"

#include <cerrno>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

absl::StatusCode CodeFor(int error) {
  switch (error) {
    case EAGAIN:
    case ETIMEDOUT: return absl::StatusCode::kDeadlineExceeded;
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENETUNREACH:
    case EHOSTUNREACH: return absl::StatusCode::kUnavailable;
    case EADDRINUSE:
    case EISCONN:
    case EALREADY: return absl::StatusCode::kAlreadyExists;
    case EADDRNOTAVAIL:
    case EMFILE:
    case ENOBUFS: return absl::StatusCode::kResourceExhausted;
    case ENOTCONN:
    case EDESTADDRREQ:
    case EINPROGRESS: return absl::StatusCode::kFailedPrecondition;
    case EOPNOTSUPP:
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
    case ESOCKTNOSUPPORT:
    case ENOPROTOOPT: return absl::StatusCode::kUnimplemented;
    case EPERM:
    case EACCES: return absl::StatusCode::kPermissionDenied;
    default: return absl::StatusCode::kInvalidArgument;
  }
}

}  // namespace

absl::Status ErrnoToStatus(int error, absl::string_view call, absl::string_view detail) {
  std::string message = absl::StrCat(call, ": ", strerrorname_np(error), " (", strerror(error), ")");
  if (!detail.empty()) absl::StrAppend(&message, ": ", detail);
  absl::Status status(CodeFor(error), message);
  status.SetPayload(kErrnoPayloadUrl, absl::Cord(absl::StrCat(error)));
  return status;
}

int ErrnoFromStatus(const absl::Status& status) {
  const absl::optional<absl::Cord> payload = status.GetPayload(kErrnoPayloadUrl);
  int error = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &error)) return 0;
  return error;
}

absl::Status LastSocketError(absl::string_view call) {
  return ErrnoToStatus(errno, call, LastSocketErrorMessage());
}

absl::StatusOr<socklen_t> ParseSockaddr(absl::string_view ip, uint16_t port,
                                        sockaddr_storage* out) {
  const socklen_t length = MakeSockaddr(ip, port, out);
  if (length == 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"", ip, "\" is not an IP address"));
  }
  return length;
}

}  // namespace dsim
