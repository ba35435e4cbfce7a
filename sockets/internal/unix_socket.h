// AF_UNIX sockets made by socketpair(2), as OpenFiles (see open_file.h): SOCK_STREAM,
// SOCK_DGRAM and SOCK_SEQPACKET pairs inside one host. Named AF_UNIX sockets (bind or
// connect by path, abstract names) are not simulated.
//
// Buffer accounting follows Linux 6.x (net/unix/af_unix.c) so that a nonblocking writer
// gets exactly as many bytes in before EAGAIN as on the kernel: every message sent is an
// skb charged to the sender's sk_wmem_alloc at its truesize until the receiver consumes
// it (or closes), and a send may allocate while the charge is below SO_SNDBUF (212,992
// bytes by default, net.core.wmem_default). Stream sends are cut into skbs of at most
// min(SO_SNDBUF / 2 - 64, 36,544) bytes; datagrams are one skb each and fail with
// EMSGSIZE above SO_SNDBUF - 32. The socket is writable (poll) while the charge plus one
// is at most a quarter of SO_SNDBUF. TruesizeOf() is the kernel's formula: the linear
// part rounded up to its kmalloc bucket plus 256 bytes of sk_buff, plus whole pages for
// the paged part. SO_RCVBUF is kept but bounds nothing, as for Linux's AF_UNIX.
#ifndef DSIM_SOCKETS_INTERNAL_UNIX_SOCKET_H_
#define DSIM_SOCKETS_INTERNAL_UNIX_SOCKET_H_

#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "sockets/internal/open_file.h"

namespace dsim::internal {

struct RecvArgs;
struct SendArgs;
class UnixSocket;

// What both ends of a pair share.
struct UnixPair {
  // Linux's net.core.wmem_default and rmem_default.
  static constexpr int kDefaultBufferBytes = 212992;
  struct Skb {
    std::string data;
    size_t consumed = 0;  // Stream: bytes already read from the front.
    size_t truesize = 0;
  };
  struct End {
    std::deque<Skb> queue;  // Received, not yet read.
    size_t wmem = 0;        // Truesize of what this end sent that the peer still holds.
    int sndbuf = kDefaultBufferBytes;
    int rcvbuf = kDefaultBufferBytes;
    int shutdown = 0;       // kRcvShutdown | kSendShutdown (sk_shutdown).
    int error = 0;          // sk_err: ECONNRESET when the peer closed with unread data.
    bool dead = false;      // The last descriptor closed (SOCK_DEAD).
    bool has_peer = true;   // unix_peer(sk): a datagram end loses it on ECONNREFUSED.
    absl::Duration receive_timeout = absl::InfiniteDuration();
    absl::Duration send_timeout = absl::InfiniteDuration();
    // dsim's Go-style absolute deadlines (SetReadDeadline / SetWriteDeadline).
    absl::Time read_deadline = absl::InfiniteFuture();
    absl::Time write_deadline = absl::InfiniteFuture();
    UnixSocket* file = nullptr;  // Null once dead.
  };
  int type = SOCK_STREAM;
  End ends[2];
};

class UnixSocket final : public OpenFile {
 public:
  // Makes a connected pair; `type` is SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
  static void MakePair(int type, int status_flags, std::shared_ptr<UnixSocket>* first,
                       std::shared_ptr<UnixSocket>* second);
  // Linux's skb truesize for `linear` bytes in the head and `paged` bytes in pages.
  static size_t TruesizeOf(size_t linear, size_t paged);

  UnixSocket(std::shared_ptr<UnixPair> pair, int side, int status_flags);
  const char* kind() const override { return "AF_UNIX socket"; }
  UnixSocket* AsUnixSocket() override { return this; }
  ssize_t Read(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  ssize_t Write(HostStack& stack, absl::Span<const iovec> iov, SourceLocation where) override;
  short PollMask() const override;
  void OnLastClose() override;

  // The socket calls (negative errno on failure, message through stack.Fail).
  ssize_t Recv(HostStack& stack, const RecvArgs& args, SourceLocation where);
  ssize_t Send(HostStack& stack, const SendArgs& args, SourceLocation where);
  int Shutdown(HostStack& stack, int how);
  int GetName(HostStack& stack, sockaddr* address, socklen_t* length, bool peer);
  int Getsockopt(HostStack& stack, int level, int name, void* value, socklen_t* length);
  int Setsockopt(HostStack& stack, int level, int name, const void* value, socklen_t length);
  // SIOCINQ / SIOCOUTQ; -ENOTTY for other requests.
  int Ioctl(HostStack& stack, unsigned long request, void* arg) override;
  // dsim's SetReadDeadline / SetWriteDeadline: blocked calls re-evaluate at once.
  void SetDeadline(absl::Time deadline, bool read, bool write);
  // bind, listen, accept and connect on a connected pair end: Linux's errors.
  int Unsupported(HostStack& stack, const char* call, const sockaddr* address,
                  socklen_t length);

  int type() const { return pair_->type; }
  // The pending error (sk_err), read and cleared; and setting it (recvmmsg keeps one).
  int TakeError() {
    const int error = self().error;
    self().error = 0;
    return error;
  }
  void SetError(int error) { self().error = error; }

 private:
  UnixPair::End& self() { return pair_->ends[side_]; }
  const UnixPair::End& self() const { return pair_->ends[side_]; }
  UnixPair::End& peer() { return pair_->ends[1 - side_]; }
  bool stream() const { return pair_->type == SOCK_STREAM; }
  bool connection_based() const { return pair_->type != SOCK_DGRAM; }
  // A datagram end loses its peer (ECONNREFUSED, connect(AF_UNSPEC)).
  void Disconnect();
  // Drops the front skb of this end's queue: uncharges the sender and wakes it.
  void ConsumeFront();
  // Wakes the other end; `key` as OpenFile::NotifyReadiness.
  void NotifyPeer(short key = 0);
  // When a call that started at `start` gives up: SO_RCVTIMEO/SO_SNDTIMEO from its
  // start, or the absolute deadline, whichever comes first.
  absl::Time Deadline(absl::Time start, bool receive) const;
  static absl::Time Now(HostStack& stack);
  ssize_t StreamRecv(HostStack& stack, const RecvArgs& args, char* out, size_t length,
                     SourceLocation where);
  ssize_t RecordRecv(HostStack& stack, const RecvArgs& args, char* out, size_t length,
                     SourceLocation where, bool* truncated);
  ssize_t StreamSend(HostStack& stack, const std::string& bytes, int flags,
                     SourceLocation where);
  ssize_t RecordSend(HostStack& stack, std::string bytes, int flags, SourceLocation where);
  // Waits until the charge is below SO_SNDBUF (sock_alloc_send_pskb): 0, or -EAGAIN,
  // -EPIPE, a pending error.
  int WaitForSendSpace(HostStack& stack, int flags, SourceLocation where);

  // Calls in progress on this description. Linux releases a socket only when its last
  // reference goes, and a blocked call holds one: closing the descriptor meanwhile does
  // not wake it. So the release (OnLastClose) waits for them.
  class CallGuard;
  void Release();
  int active_calls_ = 0;
  bool release_pending_ = false;

  std::shared_ptr<UnixPair> pair_;
  int side_;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_UNIX_SOCKET_H_
