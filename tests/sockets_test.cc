// Unit tests for the simulated network and socket API: deadlines, backpressure, accept
// queues, scale, determinism by seed, crashes, bad input and the convenience layer.
// Linux conformance of individual results lives in linux_differential_test.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <map>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"
#include "sockets/socket_status.h"
#include "sockets/tcp.h"
#include "sockets/udp.h"

namespace dsim {
namespace {

// One simulation: a scheduler, a network, a server and a client host.
struct World {
  explicit World(uint64_t seed = 1, NetworkOptions options = {})
      : scheduler(SchedulerOptions{.seed = seed}), network(&scheduler, std::move(options)),
        server(network.AddHost("server", {"10.0.0.1", "fd00::1"})),
        client(network.AddHost("client", {"10.0.0.2", "fd00::2"})) {}
  Scheduler scheduler;
  Network network;
  NetworkHost& server;
  NetworkHost& client;
};

sockaddr* Sa(sockaddr_storage* s) { return reinterpret_cast<sockaddr*>(s); }

// Listens on ip:port (SO_REUSEADDR); returns the descriptor.
int ListenOn(const char* ip, uint16_t port, int backlog = 16) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  const int on = 1;
  Setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  EXPECT_EQ(Bind(fd, Sa(&a), l), 0) << LastSocketErrorMessage();
  EXPECT_EQ(Listen(fd, backlog), 0) << LastSocketErrorMessage();
  return fd;
}

int ConnectTo(const char* ip, uint16_t port, int type_flags = 0) {
  const int fd = Socket(AF_INET, SOCK_STREAM | type_flags, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  const int r = Connect(fd, Sa(&a), l);
  if (r < 0 && errno != EINPROGRESS) {
    const int error = errno;
    Close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// A connected pair on one host's loopback: {client, accepted}.
std::pair<int, int> LoopbackPair(uint16_t port) {
  const int listener = ListenOn("127.0.0.1", port);
  const int client = ConnectTo("127.0.0.1", port);
  const int accepted = Accept(listener, nullptr, nullptr);
  Close(listener);
  return {client, accepted};
}

// ---- Deadlines ---------------------------------------------------------------------------

std::string BytesOf(const PacketPayload& payload) {
  return std::string(payload.data(), payload.size());
}

TEST(PacketPayload, AppendKeepsEveryByteAcrossTheInlineBufferAndEachGrowth) {
  PacketPayload payload;
  EXPECT_TRUE(payload.empty());
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    const std::string piece(static_cast<size_t>(i % 7), static_cast<char>('a' + i % 26));
    payload.append(piece.data(), piece.size());
    expected += piece;
    ASSERT_EQ(BytesOf(payload), expected) << "after piece " << i;
  }
  payload.append("z", 1);
  expected += "z";
  EXPECT_EQ(BytesOf(payload), expected);
}

TEST(PacketPayload, ReadsAsAStringViewWhereAStdStringWasRead) {
  PacketPayload payload;
  payload = absl::string_view("PING 42");
  EXPECT_TRUE(absl::StrContains(payload, "PING"));
  EXPECT_EQ(std::string(payload), "PING 42");
  EXPECT_EQ(payload.view().size(), 7u);
  payload.append(" and a tail longer than the inline buffer", 41);
  EXPECT_EQ(absl::string_view(payload), "PING 42 and a tail longer than the inline buffer");
}

TEST(PacketPayload, ClearKeepsTheCapacityForTheNextUse) {
  PacketPayload payload;
  const std::string big(100, 'x');
  payload.append(big.data(), big.size());
  const size_t capacity = payload.capacity();
  const char* buffer = payload.data();
  payload.clear();
  EXPECT_TRUE(payload.empty());
  EXPECT_EQ(payload.capacity(), capacity);
  payload.append("hello", 5);
  EXPECT_EQ(payload.data(), buffer);
  EXPECT_EQ(BytesOf(payload), "hello");
}

TEST(PacketPayload, CopiesAndMovesCarryTheBytesInlineAndOnTheHeap) {
  for (const std::string& bytes : {std::string("short"), std::string(64, 'h')}) {
    PacketPayload original;
    original = bytes;
    PacketPayload copy(original);
    EXPECT_EQ(BytesOf(copy), bytes);
    PacketPayload assigned;
    assigned.append("old", 3);
    assigned = original;
    EXPECT_EQ(BytesOf(assigned), bytes);
    assigned = assigned;  // Self-assignment keeps the bytes.
    EXPECT_EQ(BytesOf(assigned), bytes);
    PacketPayload moved(std::move(copy));
    EXPECT_EQ(BytesOf(moved), bytes);
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty.
    copy.append("again", 5);    // And usable.
    EXPECT_EQ(BytesOf(copy), "again");
    PacketPayload target;
    target = std::string(40, 't');
    target = std::move(moved);
    EXPECT_EQ(BytesOf(target), bytes);
    EXPECT_TRUE(moved.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(BytesOf(original), bytes);
  }
}

TEST(Deadlines, BlockedReadFailsWithEagainExactlyAtTheReadDeadline) {
  World w;
  absl::Time returned;
  int result = 0, error = 0;
  w.server.Spawn("reader", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    const absl::Time deadline = Now() + absl::Milliseconds(250);
    ASSERT_EQ(SetReadDeadline(accepted, deadline), 0);
    char buffer[8];
    result = static_cast<int>(Read(accepted, buffer, sizeof(buffer)));
    error = errno;
    returned = Now();
    EXPECT_EQ(returned, deadline);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(result, -1);
  EXPECT_EQ(error, EAGAIN);
}

TEST(Deadlines, CallAfterThePastDeadlineFailsAtOnceEvenWithDataReady) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    ASSERT_EQ(Write(client, "abc", 3), 3);
    dsim::SleepFor(absl::Milliseconds(1));
    ASSERT_EQ(SetReadDeadline(accepted, Now() - absl::Seconds(1)), 0);
    const absl::Time before = Now();
    char buffer[8];
    EXPECT_EQ(Read(accepted, buffer, sizeof(buffer)), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(Now(), before);
    ASSERT_EQ(SetReadDeadline(accepted, absl::InfiniteFuture()), 0);  // Cleared.
    EXPECT_EQ(Read(accepted, buffer, sizeof(buffer)), 3);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Deadlines, MovingTheDeadlineEarlierWakesABlockedReaderAtTheNewDeadline) {
  World w;
  int fd = -1;
  absl::Time returned;
  w.server.Spawn("reader", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    fd = accepted;
    char buffer[8];
    EXPECT_EQ(Read(accepted, buffer, sizeof(buffer)), -1);
    EXPECT_EQ(errno, EAGAIN);
    returned = Now();
  });
  w.server.Spawn("setter", [&] {
    dsim::SleepFor(absl::Milliseconds(100));
    ASSERT_GE(fd, 0);
    SetReadDeadline(fd, Now() + absl::Milliseconds(5));
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(returned, Scheduler::Epoch() + absl::Milliseconds(105));
}

TEST(Deadlines, SoRcvtimeoReturnsEagainAfterTheTimeout) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    timeval tv{0, 30000};
    ASSERT_EQ(Setsockopt(accepted, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    const absl::Time start = Now();
    char buffer[4];
    EXPECT_EQ(Recv(accepted, buffer, sizeof(buffer), 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(Now() - start, absl::Milliseconds(30));
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Deadlines, BlockedWriterOnAFullBufferFailsAtTheWriteDeadline) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    const absl::Time deadline = Now() + absl::Seconds(2);
    SetWriteDeadline(client, deadline);
    const std::string chunk(1 << 20, 'x');
    size_t total = 0;
    for (;;) {
      const ssize_t n = Write(client, chunk.data(), chunk.size());
      if (n < 0) {
        EXPECT_EQ(errno, EAGAIN);
        break;
      }
      total += n;
    }
    EXPECT_EQ(Now(), deadline);
    EXPECT_GT(total, 0u);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

// A write that fits the send buffer takes a short path; these are the cases it must
// leave to the general one.
TEST(Deadlines, WriteAfterThePastWriteDeadlineFailsAtOnceEvenWithRoomInTheBuffer) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    ASSERT_EQ(Write(client, "abc", 3), 3);
    ASSERT_EQ(SetWriteDeadline(client, Now() - absl::Seconds(1)), 0);
    EXPECT_EQ(Write(client, "def", 3), -1);
    EXPECT_EQ(errno, EAGAIN);
    ASSERT_EQ(SetWriteDeadline(client, absl::InfiniteFuture()), 0);  // Cleared.
    EXPECT_EQ(Write(client, "ghi", 3), 3);
    char buffer[8];
    EXPECT_EQ(Recv(accepted, buffer, 6, MSG_WAITALL), 6);
    EXPECT_EQ(std::string(buffer, 6), "abcghi");
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Deadlines, WritesThatFitStillFailAfterShutdownOrResetOrWithANullBuffer) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    ASSERT_EQ(Write(client, "abc", 3), 3);
    EXPECT_EQ(Send(client, nullptr, 3, 0), -1);
    EXPECT_EQ(errno, EFAULT);
    EXPECT_EQ(Send(client, "abc", 3, MSG_OOB), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    ASSERT_EQ(Shutdown(client, SHUT_WR), 0);
    EXPECT_EQ(Send(client, "abc", 3, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
    // A connection the peer reset (close with unread data sends RST).
    auto [other, other_accepted] = LoopbackPair(7001);
    ASSERT_EQ(Write(other_accepted, "zz", 2), 2);
    dsim::SleepFor(absl::Milliseconds(1));
    Close(other);
    dsim::SleepFor(absl::Milliseconds(1));
    EXPECT_EQ(Send(other_accepted, "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, ECONNRESET);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

// ---- Backpressure ------------------------------------------------------------------------

TEST(Backpressure, BlockingWriterWaitsForTheReaderAndEveryByteArrivesInOrder) {
  World w;
  constexpr size_t kBytes = 3 << 20;
  absl::Time writer_done, reader_started;
  std::string received;
  w.server.Spawn("reader", [&] {
    const int listener = ListenOn("0.0.0.0", 8000);
    const int fd = Accept(listener, nullptr, nullptr);
    dsim::SleepFor(absl::Seconds(1));  // Let the writer fill every buffer and block.
    reader_started = Now();
    std::string buffer(100000, '\0');
    ssize_t n;
    while ((n = Read(fd, buffer.data(), 7000 + received.size() % 5000)) > 0) {
      received.append(buffer.data(), n);
    }
    EXPECT_EQ(n, 0);
  });
  w.client.Spawn("writer", [&] {
    const int fd = ConnectTo("10.0.0.1", 8000);
    ASSERT_GE(fd, 0);
    std::string data(kBytes, '\0');
    for (size_t i = 0; i < kBytes; ++i) data[i] = static_cast<char>(i * 131 % 251);
    EXPECT_EQ(Write(fd, data.data(), data.size()), static_cast<ssize_t>(kBytes));
    writer_done = Now();
    Close(fd);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_GT(writer_done, reader_started);  // The writer blocked until the reader read.
  ASSERT_EQ(received.size(), kBytes);
  for (size_t i = 0; i < kBytes; ++i) {
    ASSERT_EQ(received[i], static_cast<char>(i * 131 % 251)) << "at byte " << i;
  }
}

// Small writes take a short path when everything before them was sent (one segment,
// no pump loop). It must still respect the peer's window: the write that crosses the
// window's edge sends only what fits, and later ones queue. Fails if the short path
// sends a whole write past the edge (the receiver would hold more than its buffer).
TEST(Backpressure, SmallWritesNeverSendPastThePeersWindowAndArriveInOrder) {
  World w;
  constexpr size_t kChunk = 7;  // Does not divide the receive buffer.
  constexpr size_t kChunks = 6000;
  size_t received = 0;
  int receive_buffer = 0;
  w.server.Spawn("reader", [&] {
    const int listener = Socket(AF_INET, SOCK_STREAM, 0);
    const int small = 4096;
    ASSERT_EQ(Setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    sockaddr_storage a;
    const socklen_t l = MakeSockaddr("0.0.0.0", 8001, &a);
    ASSERT_EQ(Bind(listener, Sa(&a), l), 0);
    ASSERT_EQ(Listen(listener, 1), 0);
    const int fd = Accept(listener, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    socklen_t length = sizeof(receive_buffer);
    ASSERT_EQ(Getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, &length), 0);
    dsim::SleepFor(absl::Seconds(1));  // The writer fills the window and waits.
    char buffer[100];
    for (;;) {
      int queued = 0;
      ASSERT_EQ(Ioctl(fd, FIONREAD, &queued), 0);
      ASSERT_LE(queued, receive_buffer);
      const ssize_t n = Read(fd, buffer, 1 + received % sizeof(buffer));
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i, ++received) {
        ASSERT_EQ(buffer[i], static_cast<char>(received % 251)) << "at byte " << received;
      }
    }
  });
  w.client.Spawn("writer", [&] {
    const int fd = ConnectTo("10.0.0.1", 8001);
    ASSERT_GE(fd, 0);
    const int big = 1 << 20;  // Room for everything: the peer's window closes first.
    ASSERT_EQ(Setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    char chunk[kChunk];
    for (size_t c = 0; c < kChunks; ++c) {
      for (size_t i = 0; i < kChunk; ++i) chunk[i] = static_cast<char>((c * kChunk + i) % 251);
      ASSERT_EQ(Write(fd, chunk, kChunk), static_cast<ssize_t>(kChunk));
    }
    Close(fd);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_GT(receive_buffer, 0);
  EXPECT_LT(static_cast<size_t>(receive_buffer), kChunk * kChunks);
  EXPECT_EQ(received, kChunk * kChunks);
}

TEST(Backpressure, NonblockingWriteIsPartialWhenTheBufferFillsThenEagain) {
  World w;
  w.server.Spawn("t", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    SetNonblock(client, true);
    const std::string chunk(100000, 'x');
    bool partial = false;
    ssize_t n;
    while ((n = Write(client, chunk.data(), chunk.size())) > 0) {
      if (n < static_cast<ssize_t>(chunk.size())) partial = true;
    }
    EXPECT_TRUE(partial);
    EXPECT_EQ(errno, EAGAIN);
    pollfd p{client, POLLOUT, 0};
    EXPECT_EQ(Poll(&p, 1, 0), 0);  // Not writable while full.
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Backpressure, UdpReceiveBufferDropsDatagramsBeyondItsLimit) {
  World w;
  int received = 0;
  w.server.Spawn("t", [&] {
    const int rx = Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_storage a;
    socklen_t l = MakeSockaddr("127.0.0.1", 9000, &a);
    ASSERT_EQ(Bind(rx, Sa(&a), l), 0);
    const int tx = Socket(AF_INET, SOCK_DGRAM, 0);
    const std::string datagram(1000, 'd');
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(Sendto(tx, datagram.data(), datagram.size(), 0, Sa(&a), l), 1000);
    }
    dsim::SleepFor(absl::Milliseconds(1));
    char buffer[2000];
    while (Recv(rx, buffer, sizeof(buffer), 0) == 1000) ++received;
    EXPECT_EQ(errno, EAGAIN);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_GT(received, 50);
  EXPECT_LT(received, 1000);
}

// ---- Accept queues ------------------------------------------------------------------------

TEST(AcceptQueue, BacklogNAdmitsNPlusOneConnectionsAndDropsFurtherSyns) {
  World w;
  std::vector<int> clients;
  w.client.Spawn("clients", [&] {
    for (int i = 0; i < 5; ++i) clients.push_back(ConnectTo("10.0.0.1", 80, SOCK_NONBLOCK));
    dsim::SleepFor(absl::Milliseconds(10));
    std::vector<pollfd> fds;
    for (int fd : clients) fds.push_back(pollfd{fd, POLLOUT, 0});
    EXPECT_EQ(Poll(fds.data(), fds.size(), 0), 3);  // backlog 2 -> 3 established.
  });
  w.server.Spawn("listener", [&] {
    ListenOn("0.0.0.0", 80, /*backlog=*/2);
    dsim::SleepFor(absl::Hours(1));
  }, {.daemon = true});
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(AcceptQueue, DroppedSynIsRetransmittedAndConnectsOnceTheQueueDrains) {
  World w;
  absl::Time connected;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80, /*backlog=*/0);
    dsim::SleepFor(absl::Milliseconds(500));
    EXPECT_GE(Accept(listener, nullptr, nullptr), 0);  // Frees the one slot.
    EXPECT_GE(Accept(listener, nullptr, nullptr), 0);  // The retried SYN.
  });
  w.client.Spawn("clients", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    EXPECT_GE(ConnectTo("10.0.0.1", 80), 0);
    const int second = ConnectTo("10.0.0.1", 80);  // Blocks: its SYN is dropped once.
    EXPECT_GE(second, 0);
    connected = Now();
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  // The first SYN retransmission comes 1 s after the first SYN (at ~1 ms).
  EXPECT_GT(connected, Scheduler::Epoch() + absl::Seconds(1));
  EXPECT_LT(connected, Scheduler::Epoch() + absl::Seconds(2));
}

TEST(AcceptQueue, ConnectTimesOutAfterSynRetriesWhenTheQueueNeverDrains) {
  World w;
  w.server.Spawn("server", [&] {
    ListenOn("0.0.0.0", 80, 0);
    dsim::SleepFor(absl::Hours(1));
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    EXPECT_GE(ConnectTo("10.0.0.1", 80), 0);
    const absl::Time start = Now();
    EXPECT_EQ(ConnectTo("10.0.0.1", 80), -1);
    EXPECT_EQ(errno, ETIMEDOUT);
    EXPECT_EQ(Now() - start, absl::Seconds(1 + 2 + 4 + 8 + 16 + 32 + 64));
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(AcceptQueue, ClosingAListenerResetsConnectionsNotYetAccepted) {
  World w;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    dsim::SleepFor(absl::Milliseconds(10));
    Close(listener);
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    EXPECT_EQ(errno, ECONNRESET);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

// ---- Scale ------------------------------------------------------------------------------

TEST(Scale, HundredThousandOpenConnectionsInOneSimulation) {
  constexpr int kClientHosts = 4;
  constexpr int kPerHost = 25000;
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  Network network(&scheduler);
  NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  int accepted = 0;
  server.Spawn("acceptor", [&] {
    const int listener = ListenOn("0.0.0.0", 80, 4096);
    while (accepted < kClientHosts * kPerHost) {
      ASSERT_GE(Accept(listener, nullptr, nullptr), 0) << LastSocketErrorMessage();
      ++accepted;
    }
  });
  std::vector<int> opened(kClientHosts, 0);
  for (int h = 0; h < kClientHosts; ++h) {
    NetworkHost& host = network.AddHost(absl::StrCat("client-", h), {absl::StrCat("10.0.1.", h)});
    host.Spawn("dialer", [&, h] {
      for (int i = 0; i < kPerHost; ++i) {
        const int fd = ConnectTo("10.0.0.1", 80, SOCK_NONBLOCK);
        ASSERT_GE(fd, 0) << LastSocketErrorMessage();
        ++opened[h];
      }
    });
  }
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(accepted, kClientHosts * kPerHost);
  for (int h = 0; h < kClientHosts; ++h) EXPECT_EQ(opened[h], kPerHost);
}

// ---- Determinism ------------------------------------------------------------------------

// Records every annotation and dispatch: the whole observable history of a run.
class TraceRecorder : public SchedulerListener {
 public:
  void OnDispatch(const TaskView& task) override { events.push_back(absl::StrCat("run ", task.name)); }
  void OnAnnotation(const Annotation& a) override {
    events.push_back(absl::StrCat(a.category, " ", a.DetailText()));
  }
  std::vector<std::string> events;
};

// Three clients race to a counter server; returns the trace and the reply order.
std::pair<std::vector<std::string>, std::string> RunRace(uint64_t seed) {
  World w(seed);
  TraceRecorder trace;
  w.scheduler.AddListener(&trace);
  std::string order;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    for (int i = 0; i < 3; ++i) {
      const int fd = Accept(listener, nullptr, nullptr);
      char c;
      ASSERT_EQ(Read(fd, &c, 1), 1);
      order += c;
      Write(fd, &c, 1);
      Close(fd);
    }
  });
  for (char name : {'a', 'b', 'c'}) {
    w.client.Spawn(std::string(1, name), [name] {
      const int fd = ConnectTo("10.0.0.1", 80);
      ASSERT_GE(fd, 0);
      Write(fd, &name, 1);
      char c;
      Read(fd, &c, 1);
      Close(fd);
    });
  }
  EXPECT_TRUE(w.scheduler.Run().ok());
  w.scheduler.RemoveListener(&trace);
  return {trace.events, order};
}

TEST(Determinism, SameSeedReproducesTheWholeTrace) {
  for (uint64_t seed : {1, 2, 99}) {
    const auto first = RunRace(seed);
    const auto second = RunRace(seed);
    EXPECT_EQ(first.first, second.first) << "seed " << seed;
    EXPECT_EQ(first.second, second.second);
    EXPECT_GT(first.first.size(), 50u);
  }
}

TEST(Determinism, DifferentSeedsGiveDifferentInterleavings) {
  std::set<std::string> orders;
  std::set<std::vector<std::string>> traces;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const auto run = RunRace(seed);
    orders.insert(run.second);
    traces.insert(run.first);
  }
  EXPECT_GE(orders.size(), 3u);  // Several of the 6 possible arrival orders.
  EXPECT_GE(traces.size(), 10u);
}

TEST(Determinism, TraceLinksEachPacketSendToItsDelivery) {
  World w;
  std::vector<Annotation> sends, delivers;
  struct Flows : SchedulerListener {
    std::map<uint64_t, int> phases;
    void OnAnnotation(const Annotation& a) override {
      if (a.flow_id != 0) phases[a.flow_id] |= 1 << a.flow_phase;
    }
  } flows;
  w.scheduler.AddListener(&flows);
  w.server.Spawn("t", [] { LoopbackPair(7000); });
  ASSERT_TRUE(w.scheduler.Run().ok());
  w.scheduler.RemoveListener(&flows);
  ASSERT_FALSE(flows.phases.empty());
  for (const auto& [flow, phases] : flows.phases) EXPECT_EQ(phases, 0b110) << "flow " << flow;
}

// ---- Ports ------------------------------------------------------------------------------

TEST(Ports, ExhaustedEphemeralRangeGivesEaddrinuseForBindAndEaddrnotavailForConnect) {
  NetworkOptions options;
  options.ephemeral_port_min = 40000;
  options.ephemeral_port_max = 40002;
  World w(1, options);
  w.server.Spawn("t", [&] {
    ListenOn("0.0.0.0", 80);
    sockaddr_storage any;
    const socklen_t l = MakeSockaddr("0.0.0.0", 0, &any);
    for (int i = 0; i < 3; ++i) {
      const int fd = Socket(AF_INET, SOCK_STREAM, 0);
      EXPECT_EQ(Bind(fd, Sa(&any), l), 0);
    }
    const int fd = Socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(Bind(fd, Sa(&any), l), -1);
    EXPECT_EQ(errno, EADDRINUSE);
    EXPECT_EQ(ConnectTo("127.0.0.1", 80), -1);
    EXPECT_EQ(errno, EADDRNOTAVAIL);
    EXPECT_NE(LastSocketErrorMessage().find("ephemeral"), std::string::npos);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Ports, EachHostHasItsOwnPortSpaceAndDescriptorTable) {
  World w;
  int server_fd = -1, client_fd = -1;
  w.server.Spawn("a", [&] { server_fd = ListenOn("0.0.0.0", 80); });
  w.client.Spawn("b", [&] { client_fd = ListenOn("0.0.0.0", 80); });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(server_fd, 3);
  EXPECT_EQ(client_fd, 3);
}

// ---- Failures, crashes, bad input ---------------------------------------------------------

TEST(Failures, CrashedHostAnswersLaterSegmentsWithReset) {
  World w;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    Accept(listener, nullptr, nullptr);
    dsim::SleepFor(absl::Hours(1));
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    ASSERT_GE(fd, 0);
    dsim::SleepFor(absl::Milliseconds(10));
    w.network.CrashHost(w.server);
    EXPECT_EQ(Write(fd, "x", 1), 1);
    dsim::SleepFor(absl::Milliseconds(10));
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    EXPECT_EQ(errno, ECONNRESET);
  });
  const RunResult result = w.scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
}

TEST(Failures, CallsOutsideATaskFailWithEpermAndAMessage) {
  EXPECT_EQ(Socket(AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(LastSocketErrorMessage().find("outside"), std::string::npos)
      << LastSocketErrorMessage();
  Scheduler scheduler;
  Network network(&scheduler);
  scheduler.Spawn("not-on-a-host", [] {
    EXPECT_EQ(Socket(AF_INET, SOCK_STREAM, 0), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(LastSocketErrorMessage().find("not on a host"), std::string::npos);
  });
  ASSERT_TRUE(scheduler.Run().ok());
}

TEST(Failures, BadInputFailsCleanlyAndLeavesOtherConnectionsIntact) {
  World w;
  std::string received;
  w.server.Spawn("stream", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    for (int i = 0; i < 20; ++i) {
      Write(client, "0123456789", 10);
      dsim::SleepFor(absl::Milliseconds(1));
    }
    Close(client);
    char buffer[64];
    ssize_t n;
    while ((n = Read(accepted, buffer, sizeof(buffer))) > 0) received.append(buffer, n);
  });
  w.server.Spawn("vandal", [&] {
    char buffer[8];
    sockaddr_storage a;
    socklen_t l = sizeof(a);
    for (int fd : {-1, 0, 2, 3, 4, 5, 1 << 30}) {
      Read(fd, buffer, sizeof(buffer) * 1000000000000ull);
      Bind(fd, nullptr, 16);
      Getsockname(fd, nullptr, nullptr);
      Setsockopt(fd, SOL_SOCKET, SO_LINGER, nullptr, 1);
      Shutdown(fd, 99);
      Recvmsg(fd, nullptr, 0);
      Sendmsg(fd, nullptr, 0);
      Getpeername(fd, Sa(&a), &l);
      Poll(nullptr, 3, 0);
      Yield();
    }
    EXPECT_EQ(Read(1 << 30, buffer, 1), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_NE(LastSocketErrorMessage().find("not an open socket"), std::string::npos);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(received.size(), 200u);
}

TEST(Failures, DeadlockReportNamesTheBlockedSocketCall) {
  World w;
  w.server.Spawn("stuck-reader", [&] {
    auto [client, accepted] = LoopbackPair(7000);
    char c;
    Read(accepted, &c, 1);
  });
  const RunResult result = w.scheduler.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kDeadlock);
  EXPECT_NE(result.ToString().find("stuck-reader\" blocked in read at sockets_test.cc"),
            std::string::npos)
      << result.ToString();
}

// ---- Convenience layer --------------------------------------------------------------------

TEST(Convenience, TcpListenerAndStreamEchoAndCloseOnDestruction) {
  World w;
  std::string reply;
  w.server.Spawn("server", [&] {
    absl::StatusOr<TcpListener> listener = TcpListener::Listen("0.0.0.0", 80);
    ASSERT_TRUE(listener.ok()) << listener.status();
    absl::StatusOr<TcpStream> stream = listener->Accept();
    ASSERT_TRUE(stream.ok());
    char buffer[5];
    ASSERT_TRUE(stream->ReadFull(buffer, 5).ok());
    ASSERT_TRUE(stream->WriteAll(std::string(buffer, 5) + "!").ok());
  });
  w.client.Spawn("client", [&] {
    absl::StatusOr<TcpStream> stream = TcpStream::Connect("10.0.0.1", 80);
    ASSERT_TRUE(stream.ok()) << stream.status();
    ASSERT_TRUE(stream->WriteAll("hello").ok());
    char buffer[16];
    absl::StatusOr<size_t> n;
    while ((n = stream->Read(buffer, sizeof(buffer))).ok() && *n > 0) reply.append(buffer, *n);
    EXPECT_TRUE(n.ok());  // 0: the server's stream closed when it went out of scope.
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(reply, "hello!");
}

// ReadFull: a stream that ends early is kOutOfRange with the count read; a read
// deadline that passes after part of the bytes came is kDeadlineExceeded (EAGAIN);
// zero bytes return at once. WriteAll: a buffer many times the send buffer arrives
// whole and in order; a write to a reset stream keeps the errno.
TEST(Convenience, ReadFullAndWriteAllAcrossShortReadsEndsAndDeadlines) {
  World w;
  const std::string big(300000, 'b');
  std::string received;
  w.server.Spawn("server", [&] {
    absl::StatusOr<TcpListener> listener = TcpListener::Listen("0.0.0.0", 80);
    ASSERT_TRUE(listener.ok());
    {  // 1: five bytes, then the end.
      absl::StatusOr<TcpStream> stream = listener->Accept();
      ASSERT_TRUE(stream.ok());
      ASSERT_TRUE(stream->WriteAll("12345").ok());
    }
    {  // 2: three bytes, then silence.
      absl::StatusOr<TcpStream> stream = listener->Accept();
      ASSERT_TRUE(stream.ok());
      ASSERT_TRUE(stream->WriteAll("abc").ok());
      dsim::SleepFor(absl::Seconds(10));
    }
    {  // 3: reads the big buffer slowly, 1000 bytes a millisecond.
      absl::StatusOr<TcpStream> stream = listener->Accept();
      ASSERT_TRUE(stream.ok());
      char buffer[1000];
      while (received.size() < big.size()) {
        ASSERT_TRUE(stream->ReadFull(buffer, sizeof(buffer)).ok()) << received.size();
        received.append(buffer, sizeof(buffer));
        dsim::SleepFor(absl::Milliseconds(1));
      }
    }
    {  // 4: reset at once.
      absl::StatusOr<TcpStream> stream = listener->Accept();
      ASSERT_TRUE(stream.ok());
      ASSERT_TRUE(stream->Abort().ok());
    }
  });
  w.client.Spawn("client", [&] {
    char buffer[10];
    absl::StatusOr<TcpStream> ends = TcpStream::Connect("10.0.0.1", 80);
    ASSERT_TRUE(ends.ok());
    EXPECT_TRUE(ends->ReadFull(buffer, 0).ok());
    absl::Status status = ends->ReadFull(buffer, 10);
    EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;
    EXPECT_EQ(status.message(), "the stream ended after 5 of 10 bytes");
    EXPECT_EQ(std::string(buffer, 5), "12345");

    absl::StatusOr<TcpStream> silent = TcpStream::Connect("10.0.0.1", 80);
    ASSERT_TRUE(silent.ok());
    ASSERT_TRUE(silent->handle().SetReadDeadline(Now() + absl::Seconds(1)).ok());
    status = silent->ReadFull(buffer, 10);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
    EXPECT_EQ(ErrnoFromStatus(status), EAGAIN);
    EXPECT_EQ(std::string(buffer, 3), "abc");

    absl::StatusOr<TcpStream> slow = TcpStream::Connect("10.0.0.1", 80);
    ASSERT_TRUE(slow.ok());
    EXPECT_TRUE(slow->WriteAll("").ok());
    EXPECT_TRUE(slow->WriteAll(big).ok());

    absl::StatusOr<TcpStream> reset = TcpStream::Connect("10.0.0.1", 80);
    ASSERT_TRUE(reset.ok());
    dsim::SleepFor(absl::Seconds(1));
    status = reset->WriteAll("after the reset");
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(ErrnoFromStatus(status), ECONNRESET) << status;
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(received, big);
}

// A dual-stack UdpSocket ("::") answers an IPv4 sender at its binary from_ip; the
// reply comes from the server's IPv4 address. IPv6 senders are answered the same way.
TEST(Convenience, DualStackUdpSocketAnswersIpv4AndIpv6SendersAtTheirBinaryAddress) {
  World w;
  w.server.Spawn("server", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("::", 53);
    ASSERT_TRUE(socket.ok()) << socket.status();
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<UdpSocket::Datagram> request = socket->ReceiveFrom();
      ASSERT_TRUE(request.ok());
      EXPECT_EQ(request->from_ip.is_v4(), request->data == "v4") << request->data;
      ASSERT_TRUE(socket->SendTo("re: " + request->data, request->from_ip,
                                 request->from_port).ok());
    }
  });
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> v4 = UdpSocket::Bind("0.0.0.0", 0);
    ASSERT_TRUE(v4.ok());
    ASSERT_TRUE(v4->SendTo("v4", "10.0.0.1", 53).ok());
    absl::StatusOr<UdpSocket::Datagram> reply = v4->ReceiveFrom();
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->data, "re: v4");
    EXPECT_EQ(reply->from_ip.ToString(), "10.0.0.1");
    EXPECT_EQ(reply->from_port, 53);
    absl::StatusOr<UdpSocket> v6 = UdpSocket::Bind("::", 0);
    ASSERT_TRUE(v6.ok());
    ASSERT_TRUE(v6->SendTo("v6", "fd00::1", 53).ok());
    reply = v6->ReceiveFrom();
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->data, "re: v6");
    EXPECT_EQ(reply->from_ip.ToString(), "fd00::1");
    EXPECT_EQ(reply->from_port, 53);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

// UdpSocket::SendTo with a text address reads common IPv4 text without inet_pton; it
// must accept and refuse exactly what the full parse (MakeSockaddr, inet_pton) does.
TEST(Convenience, UdpSendToTextReadsAddressesExactlyAsInetPton) {
  const std::vector<std::string> texts = {
      "10.0.0.1", "10.0.0.2", "0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.0.10",
      "10.0.0.100", "199.99.9.0", "010.0.0.1", "10.0.0.01", "10.0.0.00", "10.0.0.256",
      "10.0.0.999", "10.0.0", "10.0.0.1.", ".10.0.0.1", "1.2.3.4.5", " 10.0.0.1",
      "10.0.0.1 ", "10..0.1", "1234.0.0.1", "10.0.0.1234", "10.0.0.0x1", "a.b.c.d",
      "", "1.2.3.", "fd00::1", "::ffff:10.0.0.1", "100.100.100.100",
      std::string("10.0.0.1\0junk", 13), std::string("10.0.0.1\0", 9)};
  World w;
  std::vector<std::string> received;
  w.server.Spawn("server", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 53);
    ASSERT_TRUE(socket.ok());
    for (;;) {
      absl::StatusOr<UdpSocket::Datagram> datagram = socket->ReceiveFrom();
      if (!datagram.ok()) return;
      received.push_back(datagram->data);
    }
  }, {.daemon = true});
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("::", 0);
    ASSERT_TRUE(socket.ok());
    for (const std::string& text : texts) {
      sockaddr_storage address;
      const bool parses = MakeSockaddr(text, 53, &address) != 0;
      const absl::Status sent = socket->SendTo(text, text, 53);
      EXPECT_EQ(sent.code() != absl::StatusCode::kInvalidArgument, parses)
          << "\"" << absl::CEscape(text) << "\": " << sent;
    }
    dsim::SleepFor(absl::Seconds(1));
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  // What reached 10.0.0.1:53: the texts naming it (the v4-mapped one included).
  EXPECT_EQ(received, (std::vector<std::string>{"10.0.0.1", "::ffff:10.0.0.1",
                                                 std::string("10.0.0.1\0junk", 13),
                                                 std::string("10.0.0.1\0", 9)}));
}

TEST(Convenience, RefusedConnectKeepsTheErrnoInTheStatus) {
  World w;
  w.client.Spawn("client", [&] {
    absl::StatusOr<TcpStream> stream = TcpStream::Connect("10.0.0.1", 81);
    ASSERT_FALSE(stream.ok());
    EXPECT_EQ(ErrnoFromStatus(stream.status()), ECONNREFUSED);
    EXPECT_EQ(stream.status().code(), absl::StatusCode::kUnavailable);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Convenience, UdpSocketKeepsDatagramBoundariesAndReportsTruncation) {
  World w;
  w.server.Spawn("server", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("fd00::1", 53);
    ASSERT_TRUE(socket.ok()) << socket.status();
    absl::StatusOr<UdpSocket::Datagram> first = socket->ReceiveFrom(4);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(first->data, "ques");
    EXPECT_TRUE(first->truncated);
    EXPECT_EQ(first->from_ip.ToString(), "fd00::2");
    absl::StatusOr<UdpSocket::Datagram> second = socket->ReceiveFrom();
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second->data, "x");
    ASSERT_TRUE(socket->SendTo("answer", first->from_ip, first->from_port).ok());
  });
  w.client.Spawn("client", [&] {
    absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("::", 0);
    ASSERT_TRUE(socket.ok());
    ASSERT_TRUE(socket->SendTo("question", "fd00::1", 53).ok());
    ASSERT_TRUE(socket->SendTo("x", "fd00::1", 53).ok());
    absl::StatusOr<UdpSocket::Datagram> answer = socket->ReceiveFrom();
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->data, "answer");
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
}

TEST(Network, PacketCountersBalanceAndLatencyIsTheConfiguredOne) {
  NetworkOptions options;
  options.latency = absl::Milliseconds(3);
  World w(1, options);
  absl::Duration connect_time;
  w.server.Spawn("server", [&] { Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr); });
  w.client.Spawn("client", [&] {
    const absl::Time start = Now();
    ASSERT_GE(ConnectTo("10.0.0.1", 80), 0);
    connect_time = Now() - start;
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(connect_time, absl::Milliseconds(6));  // SYN there, SYN-ACK back.
  const NetworkStats stats = w.network.stats();
  EXPECT_EQ(stats.packets_sent, stats.packets_delivered + stats.packets_dropped +
                                    stats.packets_in_flight);
  // At least the SYN and the SYN-ACK; all of it arrived and nothing is left on the wire.
  EXPECT_GE(stats.packets_sent, 2u);
  EXPECT_EQ(stats.packets_delivered, stats.packets_sent);
  EXPECT_EQ(stats.packets_in_flight, 0u);
}

// Routes are remembered per destination (an address never changes owner), but an
// address nobody owned is asked again: a host added later owns it from then on.
TEST(Network, AnUnroutableAddressBecomesReachableOnceAHostOwnsIt) {
  World w;
  int before = 0, before_errno = 0;
  std::string received;
  w.client.Spawn("client", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    const socklen_t l = MakeSockaddr("10.0.0.9", 53, &a);
    before = static_cast<int>(Sendto(fd, "x", 1, 0, Sa(&a), l));
    before_errno = errno;
    NetworkHost& late = w.network.AddHost("late", {"10.0.0.9"});
    late.Spawn("late-server", [&] {
      const int server = Socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_storage b;
      Bind(server, Sa(&b), MakeSockaddr("0.0.0.0", 53, &b));
      char buffer[8];
      const ssize_t n = Recv(server, buffer, sizeof(buffer), 0);
      if (n > 0) received.assign(buffer, n);
    });
    dsim::SleepFor(absl::Milliseconds(1));  // The server binds first.
    EXPECT_EQ(Sendto(fd, "yz", 2, 0, Sa(&a), l), 2) << LastSocketErrorMessage();
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(before, -1);
  EXPECT_EQ(before_errno, ENETUNREACH);
  EXPECT_EQ(received, "yz");
}

// The packets of many peers of one host reach each peer (the route cache is small and
// direct-mapped: colliding destinations must not swap their hosts).
TEST(Network, RepliesToManyPeersEachReachTheirOwnPeer) {
  Scheduler scheduler;
  Network network(&scheduler);
  NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  constexpr int kPeers = 70;
  server.Spawn("echo", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 7, &a));
    for (int i = 0; i < 3 * kPeers; ++i) {
      char buffer[16];
      sockaddr_storage from;
      socklen_t length = sizeof(from);
      const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length);
      ASSERT_GT(n, 0);
      Sendto(fd, buffer, n, 0, Sa(&from), length);
    }
  });
  std::vector<std::string> answers(kPeers);
  for (int i = 0; i < kPeers; ++i) {
    const std::string ip = absl::StrCat("10.0.", 1 + i / 200, ".", 1 + i % 200);
    network.AddHost(absl::StrCat("peer", i), {ip}).Spawn("peer", [&, i] {
      const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_storage a;
      Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", 7, &a));
      for (int round = 0; round < 3; ++round) {
        const std::string message = absl::StrCat(i, "/", round);
        Send(fd, message.data(), message.size(), 0);
        char buffer[16];
        const ssize_t n = Recv(fd, buffer, sizeof(buffer), 0);
        ASSERT_GT(n, 0);
        answers[i] += std::string(buffer, n) + " ";
      }
    });
  }
  ASSERT_TRUE(scheduler.Run().ok());
  for (int i = 0; i < kPeers; ++i) {
    EXPECT_EQ(answers[i], absl::StrCat(i, "/0 ", i, "/1 ", i, "/2 ")) << "peer " << i;
  }
}

// A queued datagram keeps the packet it arrived in until it is read; closing the socket
// with datagrams unread hands their packets back to the pool.
TEST(Network, UnreadDatagramsGoBackToThePacketPoolWhenTheirSocketCloses) {
  World w;
  size_t pooled_while_queued = 0, allocated_while_queued = 0;
  w.server.Spawn("server", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 53, &a));
    dsim::SleepFor(absl::Milliseconds(10));  // Five datagrams arrive, unread.
    pooled_while_queued = w.network.packets_pooled();
    allocated_while_queued = w.network.packets_allocated();
    char buffer[8];
    ASSERT_EQ(Recv(fd, buffer, sizeof(buffer), 0), 1);  // One read: its packet goes back.
    EXPECT_EQ(w.network.packets_pooled(), pooled_while_queued + 1);
    Close(fd);
  });
  w.client.Spawn("client", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    const socklen_t l = MakeSockaddr("10.0.0.1", 53, &a);
    for (int i = 0; i < 5; ++i) ASSERT_EQ(Sendto(fd, "d", 1, 0, Sa(&a), l), 1);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(allocated_while_queued - pooled_while_queued, 5u);
  EXPECT_EQ(w.network.packets_pooled(), w.network.packets_allocated());
}

// With nobody watching, the network takes a short path for the default model's
// in-order deliveries; a listener sends every packet through the general one. Both
// must deliver at the same instants, same-instant sends on one link included (each 1 ns
// behind the one before).
std::string ArrivalNotes(uint64_t seed, bool watched) {
  struct Watcher : SchedulerListener {
    int annotations = 0;
    void OnAnnotation(const Annotation&) override { ++annotations; }
  } watcher;
  World w(seed);
  if (watched) w.scheduler.AddListener(&watcher);
  std::string notes;
  auto note = [&](const std::string& what) {
    absl::StrAppend(&notes, absl::ToInt64Nanoseconds(Now() - Scheduler::Epoch()), " ", what,
                    "\n");
  };
  w.server.Spawn("tcp-echo", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    char buffer[4];
    while (Recv(fd, buffer, sizeof(buffer), MSG_WAITALL) == sizeof(buffer)) {
      note(absl::StrCat("server got ", std::string(buffer, 4)));
      Write(fd, buffer, 2);
      Write(fd, buffer + 2, 2);  // Same instant, same link.
    }
  });
  w.server.Spawn("udp-echo", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 53, &a));
    for (int i = 0; i < 6; ++i) {
      char buffer[8];
      sockaddr_storage from;
      socklen_t length = sizeof(from);
      const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length);
      note(absl::StrCat("server datagram ", std::string(buffer, n)));
      Sendto(fd, buffer, n, 0, Sa(&from), length);
    }
  });
  for (int c = 0; c < 2; ++c) {
    w.client.Spawn("client", [&, c] {
      if (c == 0) {
        const int fd = ConnectTo("10.0.0.1", 80);
        for (int i = 0; i < 3; ++i) {
          Write(fd, "ab", 2);
          Write(fd, "cd", 2);
          char buffer[4];
          Recv(fd, buffer, sizeof(buffer), MSG_WAITALL);
          note("client echo");
        }
        Close(fd);
        return;
      }
      const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_storage a;
      Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", 53, &a));
      for (int i = 0; i < 3; ++i) {
        Send(fd, "x", 1, 0);
        Send(fd, "y", 1, 0);
        char buffer[8];
        Recv(fd, buffer, sizeof(buffer), 0);
        Recv(fd, buffer, sizeof(buffer), 0);
        note("client datagrams");
      }
    });
  }
  EXPECT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(watched, watcher.annotations > 0);
  return notes;
}

TEST(Network, DeliveriesAreTheSameWithOrWithoutAListener) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const std::string unwatched = ArrivalNotes(seed, false);
    ASSERT_FALSE(unwatched.empty());
    EXPECT_EQ(unwatched, ArrivalNotes(seed, true)) << "seed " << seed;
  }
}

// The sender's address comes out of recvfrom whole when it fits and cut to the given
// length otherwise, the length always saying 16 (Linux's move_addr_to_user); sendto
// checks its address as udp_sendmsg does. Both have short paths for the usual case.
TEST(Network, RecvfromAndSendtoHandleWholeAndShortAddressesAsLinux) {
  World w;
  w.server.Spawn("server", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 53, &a));
    char buffer[8];
    sockaddr_storage from;
    std::memset(&from, 0xee, sizeof(from));
    socklen_t length = sizeof(sockaddr_in);
    ASSERT_EQ(Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length), 1);
    EXPECT_EQ(length, sizeof(sockaddr_in));
    const auto* in = reinterpret_cast<const sockaddr_in*>(&from);
    EXPECT_EQ(in->sin_family, AF_INET);
    EXPECT_EQ(in->sin_port, htons(4000));
    EXPECT_EQ(in->sin_addr.s_addr, htonl(0x0a000002));  // 10.0.0.2
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(in->sin_zero), 8), std::string(8, 0));
    EXPECT_EQ(reinterpret_cast<const unsigned char*>(&from)[16], 0xee);  // Untouched.

    std::memset(&from, 0xee, sizeof(from));
    length = 6;  // Family, port and the first two address bytes.
    ASSERT_EQ(Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length), 1);
    EXPECT_EQ(length, sizeof(sockaddr_in));
    EXPECT_EQ(in->sin_family, AF_INET);
    EXPECT_EQ(in->sin_port, htons(4000));
    const auto* bytes = reinterpret_cast<const unsigned char*>(&from);
    EXPECT_EQ(bytes[4], 10);
    EXPECT_EQ(bytes[5], 0);
    EXPECT_EQ(bytes[6], 0xee);

    length = 0;
    ASSERT_EQ(Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length), 1);
    EXPECT_EQ(length, sizeof(sockaddr_in));
    EXPECT_EQ(bytes[6], 0xee);

    // sendto: a whole sockaddr_in with port 0, a short one, another family.
    sockaddr_storage to;
    MakeSockaddr("10.0.0.2", 0, &to);
    EXPECT_EQ(Sendto(fd, "x", 1, 0, Sa(&to), sizeof(sockaddr_in)), -1);
    EXPECT_EQ(errno, EINVAL);
    MakeSockaddr("10.0.0.2", 4000, &to);
    EXPECT_EQ(Sendto(fd, "x", 1, 0, Sa(&to), sizeof(sockaddr_in) - 1), -1);
    EXPECT_EQ(errno, EINVAL);
    MakeSockaddr("fd00::2", 4000, &to);
    EXPECT_EQ(Sendto(fd, "x", 1, 0, Sa(&to), sizeof(sockaddr_in6)), -1);
    EXPECT_EQ(errno, EAFNOSUPPORT);
    MakeSockaddr("10.0.0.2", 4000, &to);
    EXPECT_EQ(Sendto(fd, "ok", 2, 0, Sa(&to), sizeof(sockaddr_in)), 2);
  });
  std::string answer;
  w.client.Spawn("client", [&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_storage a;
    Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", 4000, &a));
    const socklen_t l = MakeSockaddr("10.0.0.1", 53, &a);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(Sendto(fd, "d", 1, 0, Sa(&a), l), 1);
    char buffer[8];
    const ssize_t n = Recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) answer.assign(buffer, n);
  });
  ASSERT_TRUE(w.scheduler.Run().ok());
  EXPECT_EQ(answer, "ok");
}

}  // namespace
}  // namespace dsim
