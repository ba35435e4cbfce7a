// What a request/response loop costs once it runs: packets on the wire (delayed ACKs),
// heap allocations (none per exchange), and what the wrappers hand back.
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"
#include "sockets/udp.h"
#include "tests/testing/allocation_counter.h"

namespace dsim {
namespace {

// The zero-allocation tests below mean something only if the counter counts.
TEST(SteadyState, TheAllocationCounterCountsEveryNew) {
  const uint64_t before = dsim::testing::HeapAllocations();
  // Through volatile pointers, so the compiler may not elide the allocations.
  int* volatile one = new int(1);
  int* volatile many = new int[4]();
  const uint64_t after = dsim::testing::HeapAllocations();
  delete one;
  delete[] many;
  EXPECT_EQ(after - before, 2u);
}

sockaddr* Sa(sockaddr_storage* s) { return reinterpret_cast<sockaddr*>(s); }

constexpr size_t kMessageBytes = 32;

struct World {
  explicit World(NetworkOptions options = {})
      : network(&scheduler, std::move(options)),
        server(network.AddHost("server", {"10.0.0.1"})),
        client(network.AddHost("client", {"10.0.0.2"})) {}
  Scheduler scheduler;
  Network network;
  NetworkHost& server;
  NetworkHost& client;
};

void TcpEchoServer() {
  const int listener = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  Bind(listener, Sa(&a), MakeSockaddr("0.0.0.0", 7, &a));
  Listen(listener, 16);
  const int fd = Accept(listener, nullptr, nullptr);
  char buffer[kMessageBytes];
  while (Recv(fd, buffer, sizeof(buffer), MSG_WAITALL) == sizeof(buffer)) {
    Write(fd, buffer, sizeof(buffer));
  }
  Close(fd);
}

// Runs `exchanges` TCP request/responses; calls `mark(i)` before exchange i.
template <typename Mark>
void TcpEchoClient(int exchanges, Mark&& mark) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  ASSERT_EQ(Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", 7, &a)), 0);
  char buffer[kMessageBytes] = "request";
  for (int i = 0; i < exchanges; ++i) {
    mark(i);
    ASSERT_EQ(Write(fd, buffer, sizeof(buffer)), static_cast<ssize_t>(sizeof(buffer)));
    ASSERT_EQ(Recv(fd, buffer, sizeof(buffer), MSG_WAITALL), static_cast<ssize_t>(sizeof(buffer)));
  }
  mark(exchanges);
  Close(fd);
}

// Linux's tcp_event_ack_sent: any ACK that leaves (a pure one, or one riding on data)
// clears the pending delayed-ACK timer. Were it left to fire, it would find data that
// arrived at the same instant unacknowledged and send a pure ACK that Linux would not:
// with the delayed-ACK time a multiple of the round trip, that happens again and again.
TEST(DelayedAck, AnAckRidingOnDataClearsTheTimerSoNoExtraPureAcks) {
  NetworkOptions options;
  options.latency = absl::Milliseconds(10);     // Round trip 20 ms ...
  options.delayed_ack = absl::Milliseconds(40);  // ... delayed ACK two round trips.
  World w(options);
  constexpr int kExchanges = 10000;
  uint64_t sent_before = 0;
  uint64_t sent_after = 0;
  w.server.Spawn("echo", TcpEchoServer, {.daemon = true});
  w.client.Spawn("client", [&] {
    TcpEchoClient(kExchanges, [&](int i) {
      if (i == 0) sent_before = w.network.stats().packets_sent;
      if (i == kExchanges) sent_after = w.network.stats().packets_sent;
    });
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  // One request and one response per exchange, each carrying the ACK of the other.
  EXPECT_EQ(sent_after - sent_before, 2u * kExchanges);
}

// A pure delayed ACK still goes out when no data follows.
TEST(DelayedAck, DataWithNoReplyIsAckedWhenTheTimerFires) {
  NetworkOptions options;
  options.latency = absl::Milliseconds(10);
  options.delayed_ack = absl::Milliseconds(40);
  World w(options);
  uint64_t sent_after_request = 0;
  w.server.Spawn("sink", [] {
    const int listener = Socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_storage a;
    Bind(listener, Sa(&a), MakeSockaddr("0.0.0.0", 7, &a));
    Listen(listener, 16);
    const int fd = Accept(listener, nullptr, nullptr);
    char buffer[kMessageBytes];
    Recv(fd, buffer, sizeof(buffer), MSG_WAITALL);
    dsim::SleepFor(absl::Seconds(1));
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    const int fd = Socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_storage a;
    ASSERT_EQ(Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", 7, &a)), 0);
    dsim::SleepFor(absl::Milliseconds(100));  // The handshake's last ACK is long gone.
    const uint64_t before = w.network.stats().packets_sent;
    char buffer[kMessageBytes] = "request";
    ASSERT_EQ(Write(fd, buffer, sizeof(buffer)), static_cast<ssize_t>(sizeof(buffer)));
    dsim::SleepFor(absl::Milliseconds(200));
    sent_after_request = w.network.stats().packets_sent - before;
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(sent_after_request, 2u);  // The data, and the server's delayed pure ACK.
}

TEST(SteadyState, TcpRequestResponseAllocatesNothing) {
  World w;
  uint64_t allocations_before = 0;
  uint64_t allocations_after = 0;
  w.server.Spawn("echo", TcpEchoServer, {.daemon = true});
  w.client.Spawn("client", [&] {
    // Warm-up covers a few delayed-ACK periods: the timer queue reaches its size.
    TcpEchoClient(4000, [&](int i) {
      if (i == 1000) allocations_before = dsim::testing::HeapAllocations();
      if (i == 4000) allocations_after = dsim::testing::HeapAllocations();
    });
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(allocations_after - allocations_before, 0u);
}

TEST(SteadyState, UdpRoundTripsAllocateNothing) {
  World w;
  uint64_t allocations_before = 0;
  uint64_t allocations_after = 0;
  w.server.Spawn("echo", [] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 53, &a));
    char buffer[kMessageBytes];
    sockaddr_storage from;
    for (;;) {
      socklen_t length = sizeof(from);
      const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length);
      if (n < 0) return;
      Sendto(fd, buffer, n, 0, Sa(&from), length);
    }
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    ASSERT_EQ(Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", 53, &a)), 0);
    char buffer[kMessageBytes] = "request";
    for (int i = 0; i < 2000; ++i) {
      if (i == 100) allocations_before = dsim::testing::HeapAllocations();
      ASSERT_EQ(Send(fd, buffer, sizeof(buffer), 0), static_cast<ssize_t>(sizeof(buffer)));
      ASSERT_EQ(Recv(fd, buffer, sizeof(buffer), 0), static_cast<ssize_t>(sizeof(buffer)));
    }
    allocations_after = dsim::testing::HeapAllocations();
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(allocations_after - allocations_before, 0u);
}

// ReceiveFrom into a reused Datagram: the sender's address stays binary and answers
// go back through it; the buffer is reused (no allocation per datagram); truncation
// is reported as with the returning overload.
TEST(UdpSocketWrapper, ReceiveIntoAReusedDatagramAndAnswerItsBinaryAddress) {
  World w;
  uint64_t allocations_before = 0;
  uint64_t allocations_after = 0;
  w.server.Spawn("echo", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 53);
    ASSERT_TRUE(socket.ok());
    UdpSocket::Datagram request;
    for (int i = 0;; ++i) {
      if (!socket->ReceiveFrom(&request, 16).ok()) return;
      EXPECT_EQ(request.from_ip.ToString(), "10.0.0.2");
      EXPECT_EQ(request.truncated, i == 0) << i;
      ASSERT_TRUE(socket->SendTo(request.data, request.from_ip, request.from_port).ok());
    }
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
    ASSERT_TRUE(socket.ok());
    ASSERT_TRUE(socket->Connect("10.0.0.1", 53).ok());
    ASSERT_TRUE(socket->Send("a datagram longer than sixteen bytes").ok());
    UdpSocket::Datagram reply;
    ASSERT_TRUE(socket->ReceiveFrom(&reply).ok());
    EXPECT_EQ(reply.data, "a datagram longe");
    EXPECT_EQ(reply.from_ip.ToString(), "10.0.0.1");
    EXPECT_EQ(reply.from_port, 53);
    const std::string request(kMessageBytes, 'r');
    for (int i = 0; i < 500; ++i) {
      if (i == 50) allocations_before = dsim::testing::HeapAllocations();
      ASSERT_TRUE(socket->Send(absl::string_view(request).substr(0, 16)).ok());
      ASSERT_TRUE(socket->ReceiveFrom(&reply).ok());
      ASSERT_EQ(reply.data.size(), 16u);
    }
    allocations_after = dsim::testing::HeapAllocations();
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(allocations_after - allocations_before, 0u);
}

}  // namespace
}  // namespace dsim
