// What a request/response loop costs once it runs: packets on the wire (delayed ACKs),
// heap allocations (none per exchange), and what the wrappers hand back.
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"
#include "sockets/socket_status.h"
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

// The returning ReceiveFrom (what users write): one allocation of exactly the bytes
// received for a payload longer than std::string's inline buffer, none for a short or
// empty one; a datagram longer than max_bytes gives max_bytes bytes and truncated.
// The sender's address is binary (IPv4 stays IPv4, also on a dual-stack socket).
struct Received {
  std::string data;
  size_t capacity = 0;
  bool truncated = false;
  std::string from;
  uint16_t from_port = 0;
  bool from_v4 = false;
  uint64_t allocations = 0;
};

// Sends `payloads` from 10.0.0.2 to a socket bound to `bind_ip`:53 on 10.0.0.1, twice;
// the server receives each with ReceiveFrom(max_bytes), and counts the allocations of
// each call of the second round. The first round warms the stack up (its pools and
// queues grow then); each round is queued whole before the server reads it,
// so a count is the call's alone, not what other tasks allocate while it blocks.
std::vector<Received> ReceiveEach(const std::vector<std::string>& payloads, size_t max_bytes,
                                  const char* bind_ip = "0.0.0.0") {
  World w;
  std::vector<Received> received;
  received.reserve(payloads.size());
  uint16_t client_port = 0;
  w.server.Spawn("server", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind(bind_ip, 53);
    ASSERT_TRUE(socket.ok()) << socket.status();
    dsim::SleepFor(absl::Seconds(1));
    for (size_t i = 0; i < payloads.size(); ++i) ASSERT_TRUE(socket->ReceiveFrom(max_bytes).ok());
    dsim::SleepFor(absl::Seconds(1));
    for (size_t i = 0; i < payloads.size(); ++i) {
      Received r;
      const uint64_t before = dsim::testing::HeapAllocations();
      absl::StatusOr<UdpSocket::Datagram> datagram = socket->ReceiveFrom(max_bytes);
      r.allocations = dsim::testing::HeapAllocations() - before;
      ASSERT_TRUE(datagram.ok()) << datagram.status();
      r.capacity = datagram->data.capacity();
      r.data = datagram->data;
      r.truncated = datagram->truncated;
      r.from = datagram->from_ip.ToString();
      r.from_port = datagram->from_port;
      r.from_v4 = datagram->from_ip.is_v4();
      received.push_back(std::move(r));
    }
  });
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
    ASSERT_TRUE(socket.ok());
    client_port = socket->port();
    for (int round = 0; round < 2; ++round) {
      for (const std::string& payload : payloads) {
        ASSERT_TRUE(socket->SendTo(payload, "10.0.0.1", 53).ok());
      }
      dsim::SleepFor(absl::Milliseconds(1500));
    }
  });
  EXPECT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(received.size(), payloads.size());
  for (const Received& r : received) EXPECT_EQ(r.from_port, client_port);
  return received;
}

TEST(UdpSocketWrapper, ReceiveFromAllocatesOnceExactlyTheDatagramsSize) {
  const std::vector<Received> r =
      ReceiveEach({std::string(32, 'a'), std::string(1000, 'b'), std::string(16, 'c')}, 65536);
  ASSERT_EQ(r.size(), 3u);
  for (const Received& one : r) {
    EXPECT_EQ(one.allocations, 1u) << one.data.size();
    EXPECT_EQ(one.capacity, one.data.size());
    EXPECT_FALSE(one.truncated);
    EXPECT_EQ(one.from, "10.0.0.2");
    EXPECT_TRUE(one.from_v4);
  }
  EXPECT_EQ(r[0].data, std::string(32, 'a'));
  EXPECT_EQ(r[1].data, std::string(1000, 'b'));
  EXPECT_EQ(r[2].data, std::string(16, 'c'));
}

TEST(UdpSocketWrapper, ReceiveFromOfAShortOrEmptyDatagramAllocatesNothing) {
  const std::vector<Received> r = ReceiveEach({"", "fifteen bytes!!", "x"}, 65536);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].data, "");
  EXPECT_EQ(r[1].data, "fifteen bytes!!");
  EXPECT_EQ(r[2].data, "x");
  for (const Received& one : r) {
    EXPECT_EQ(one.allocations, 0u) << one.data;
    EXPECT_FALSE(one.truncated);
    EXPECT_EQ(one.from, "10.0.0.2");
  }
}

TEST(UdpSocketWrapper, ReceiveFromTruncatesToMaxBytesAndSaysSo) {
  const std::vector<Received> r =
      ReceiveEach({std::string(100, 'a'), std::string(20, 'b'), std::string(21, 'c'), ""}, 20);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].data, std::string(20, 'a'));
  EXPECT_TRUE(r[0].truncated);
  EXPECT_EQ(r[0].allocations, 1u);
  EXPECT_EQ(r[0].capacity, 20u);  // The bytes kept, not the datagram's 100.
  EXPECT_EQ(r[1].data, std::string(20, 'b'));
  EXPECT_FALSE(r[1].truncated);  // Exactly max_bytes is not truncated.
  EXPECT_EQ(r[2].data, std::string(20, 'c'));
  EXPECT_TRUE(r[2].truncated);
  EXPECT_EQ(r[3].data, "");
  EXPECT_FALSE(r[3].truncated);
  const std::vector<Received> none = ReceiveEach({"abc", ""}, 0);
  ASSERT_EQ(none.size(), 2u);
  EXPECT_EQ(none[0].data, "");
  EXPECT_TRUE(none[0].truncated);
  EXPECT_EQ(none[0].allocations, 0u);
  EXPECT_FALSE(none[1].truncated);
}

TEST(UdpSocketWrapper, ADualStackSocketReportsAnIpv4SenderAsIpv4) {
  const std::vector<Received> r = ReceiveEach({std::string(40, 'a')}, 65536, "::");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].from, "10.0.0.2");
  EXPECT_TRUE(r[0].from_v4);
  EXPECT_EQ(r[0].allocations, 1u);
}

// One Datagram reused across sizes: each receive leaves exactly the datagram's bytes.
// A datagram larger than the buffer replaces it by one of exactly its size (the old one
// freed); one that fits keeps the buffer (no allocation), also when it is short enough
// for std::string's inline buffer; the source and truncation are set every time.
TEST(UdpSocketWrapper, AReusedDatagramGrowsToExactlyTheLargerSizeAndKeepsItsBufferOtherwise) {
  World w;
  const std::vector<size_t> sizes = {20, 5, 100, 40, 0, 100, 16, 300, 15, 64};
  struct Seen {
    std::string data;
    size_t capacity;
    uint64_t allocations;
    bool truncated;
  };
  std::vector<Seen> seen;
  w.server.Spawn("server", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 53);
    ASSERT_TRUE(socket.ok());
    // A first round warms the stack up (its packet pool grows then); each round is
    // queued whole before it is read, so a count is the call's alone.
    dsim::SleepFor(absl::Seconds(1));
    UdpSocket::Datagram warm_up;
    for (size_t i = 0; i < sizes.size(); ++i) ASSERT_TRUE(socket->ReceiveFrom(&warm_up).ok());
    dsim::SleepFor(absl::Seconds(1));
    UdpSocket::Datagram datagram;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const uint64_t before = dsim::testing::HeapAllocations();
      ASSERT_TRUE(socket->ReceiveFrom(&datagram, 200).ok());
      const uint64_t allocations = dsim::testing::HeapAllocations() - before;
      seen.push_back({datagram.data, datagram.data.capacity(), allocations, datagram.truncated});
      EXPECT_EQ(datagram.from_ip.ToString(), "10.0.0.2");
    }
  });
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
    ASSERT_TRUE(socket.ok());
    for (int round = 0; round < 2; ++round) {
      for (size_t i = 0; i < sizes.size(); ++i) {
        ASSERT_TRUE(socket->SendTo(std::string(sizes[i], static_cast<char>('a' + i)),
                                   "10.0.0.1", 53).ok());
      }
      dsim::SleepFor(absl::Milliseconds(1500));
    }
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  ASSERT_EQ(seen.size(), sizes.size());
  // Capacity before each call: 15 (inline), 20, 20, 100, 100, 100, 100, 100, 200, 200.
  const std::vector<size_t> capacities = {20, 20, 100, 100, 100, 100, 100, 200, 200, 200};
  const std::vector<uint64_t> allocations = {1, 0, 1, 0, 0, 0, 0, 1, 0, 0};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t kept = std::min<size_t>(sizes[i], 200);
    EXPECT_EQ(seen[i].data, std::string(kept, static_cast<char>('a' + i))) << i;
    EXPECT_EQ(seen[i].truncated, sizes[i] > 200) << i;
    EXPECT_EQ(seen[i].capacity, capacities[i]) << i;
    EXPECT_EQ(seen[i].allocations, allocations[i]) << i;
  }
}

// A failed receive: the errno in the status; the reused Datagram is left as it was.
TEST(UdpSocketWrapper, AFailedReceiveKeepsTheErrnoAndLeavesTheDatagramAlone) {
  World w;
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
    ASSERT_TRUE(socket.ok());
    ASSERT_TRUE(socket->handle().SetNonblock(true).ok());
    absl::StatusOr<UdpSocket::Datagram> none = socket->ReceiveFrom();
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(ErrnoFromStatus(none.status()), EAGAIN);
    UdpSocket::Datagram kept;
    kept.data = "earlier";
    kept.from_ip = IpAddress::FromInAddr(in_addr{htonl(0x0a000009)});
    kept.from_port = 9;
    kept.truncated = true;
    absl::Status status = socket->ReceiveFrom(&kept);
    EXPECT_EQ(ErrnoFromStatus(status), EAGAIN);
    EXPECT_EQ(kept.data, "earlier");
    EXPECT_EQ(kept.from_ip.ToString(), "10.0.0.9");
    EXPECT_EQ(kept.from_port, 9);
    EXPECT_TRUE(kept.truncated);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

}  // namespace
}  // namespace dsim
