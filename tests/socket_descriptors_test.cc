// The descriptor table of a simulated host: accept's reserved descriptor, dup and its
// shared sockets, FD_CLOEXEC, and where socket error messages live.
// Results Linux also gives are compared with the kernel in linux_differential_test;
// these tests pin what needs tasks or limits the kernel test cannot set up.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"
#include "sockets/socket_status.h"
#include "sockets/tcp.h"
#include "tests/testing/sim_net.h"

namespace dsim {
namespace {

using testing::ConnectTo;
using testing::ListenOn;

NetworkOptions SmallTable(int descriptors) {
  NetworkOptions options;
  options.descriptors_per_host_max = descriptors;
  return options;
}

// Linux's accept takes its descriptor before it blocks (__sys_accept4_file), so other
// threads filling the table cannot take it away; the call still returns a descriptor.
TEST(AcceptReservation, BlockedAcceptReturnsADescriptorAfterAnotherTaskFilledTheTable) {
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  Network network(&scheduler, SmallTable(6));
  NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
  int accepted = -2;
  int filled = 0;
  int fill_error = 0;
  std::string received;
  int listener = -1;
  server.Spawn("acceptor", [&] {
    listener = ListenOn("0.0.0.0", 80);
    accepted = Accept(listener, nullptr, nullptr);
    char buffer[8];
    const ssize_t n = Read(accepted, buffer, sizeof(buffer));
    if (n > 0) received.assign(buffer, n);
  });
  server.Spawn("filler", [&] {
    dsim::SleepFor(absl::Milliseconds(1));  // The acceptor is blocked by now.
    for (;;) {
      const int fd = Socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) {
        fill_error = errno;
        break;
      }
      ++filled;
    }
  });
  client.Spawn("client", [&] {
    dsim::SleepFor(absl::Milliseconds(5));  // The table is full by now.
    const int fd = ConnectTo("10.0.0.1", 80);
    ASSERT_GE(fd, 0) << LastSocketErrorMessage();
    Write(fd, "hi", 2);
    Close(fd);
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(fill_error, EMFILE);
  // Six slots: the listener and the acceptor's reservation leave four.
  EXPECT_EQ(filled, 4);
  EXPECT_GE(accepted, 3);
  EXPECT_NE(accepted, listener);
  EXPECT_EQ(received, "hi");
}

TEST(AcceptReservation, ReservedDescriptorIsBusyForDup2AndBadForOtherCalls) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("host", {"10.0.0.1"});
  int dup2_result = 0, dup2_errno = 0, close_result = 0, close_errno = 0;
  int reserved = -1, next = -1;
  host.Spawn("acceptor", [&] {
    const int listener = ListenOn("127.0.0.1", 80);  // fd 3; accept reserves 4.
    reserved = listener + 1;
    SetReadDeadline(listener, dsim::Now() + absl::Seconds(1));
    EXPECT_EQ(Accept(listener, nullptr, nullptr), -1);
    EXPECT_EQ(errno, EAGAIN);
  });
  host.Spawn("prober", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    next = fd;
    dup2_result = Dup2(fd, reserved);
    dup2_errno = errno;
    close_result = Close(reserved);
    close_errno = errno;
    dsim::SleepFor(absl::Seconds(2));  // The accept gave its reservation back.
    EXPECT_EQ(Dup2(fd, reserved), reserved) << LastSocketErrorMessage();
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(next, reserved + 1);  // The reserved number is taken.
  EXPECT_EQ(dup2_result, -1);
  EXPECT_EQ(dup2_errno, EBUSY);
  EXPECT_EQ(close_result, -1);
  EXPECT_EQ(close_errno, EBADF);
}

// A dup'd descriptor keeps the connection: the peer sees EOF only when the last closes.
TEST(Dup, ConnectionClosesWhenItsLastDescriptorCloses) {
  Scheduler scheduler(SchedulerOptions{.seed = 2});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("host", {"10.0.0.1"});
  std::vector<std::string> events;
  host.Spawn("main", [&] {
    const int listener = ListenOn("127.0.0.1", 80);
    const int client = ConnectTo("127.0.0.1", 80);
    const int server = Accept(listener, nullptr, nullptr);
    const int copy = Dup(client);
    ASSERT_GE(copy, 0);
    EXPECT_EQ(Fcntl(copy, F_GETFD, 0), 0);  // FD_CLOEXEC is not copied.
    EXPECT_EQ(Close(client), 0);
    EXPECT_EQ(Write(copy, "abc", 3), 3);
    char buffer[8];
    EXPECT_EQ(Read(server, buffer, sizeof(buffer)), 3);
    SetReadDeadline(server, dsim::Now() + absl::Milliseconds(100));
    EXPECT_EQ(Read(server, buffer, sizeof(buffer)), -1);  // No FIN yet.
    EXPECT_EQ(errno, EAGAIN);
    SetReadDeadline(server, absl::InfiniteFuture());
    EXPECT_EQ(Close(copy), 0);
    EXPECT_EQ(Read(server, buffer, sizeof(buffer)), 0);  // Now the FIN.
    Close(server);
    Close(listener);
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
}

// Found by the socket fuzzer: SO_REUSEADDR changed on an accepted socket made its port
// record unfindable, and closing it failed an internal check.
TEST(FoundByFuzzing, ChangingSoReuseaddrOnAnAcceptedSocketThenClosingIt) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("host", {"10.0.0.1"});
  host.Spawn("main", [&] {
    const int listener = ListenOn("127.0.0.1", 80);
    const int client = ConnectTo("127.0.0.1", 80);
    const int child = Accept(listener, nullptr, nullptr);
    const int on = 1;
    EXPECT_EQ(Setsockopt(child, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    EXPECT_EQ(Close(child), 0);
    EXPECT_EQ(Close(client), 0);
    EXPECT_EQ(Close(listener), 0);
    // The port is free again once TIME_WAIT records go.
    dsim::SleepFor(absl::Minutes(2));
    EXPECT_GE(ListenOn("127.0.0.1", 80), 0);
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
}

// ---- Error messages belong to a simulation -------------------------------------------

TEST(ErrorMessages, NoTextFromAnEarlierSimulationOnTheSameThread) {
  // Outside any simulation: the thread's own message.
  EXPECT_EQ(Socket(AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_NE(LastSocketErrorMessage().find("outside a simulated task"), std::string::npos);
  {
    bool timer_ran = false;
    Scheduler scheduler(SchedulerOptions{.seed = 1});
    Network network(&scheduler);
    NetworkHost& host = network.AddHost("first", {"10.0.0.1"});
    host.Spawn("fails", [] {
      EXPECT_EQ(Close(77), -1);
      EXPECT_NE(LastSocketErrorMessage().find("descriptor 77"), std::string::npos);
      dsim::SleepFor(absl::Seconds(2));  // Keeps the run going past the timer.
    });
    // A timer callback is outside any host: its failure stays in this simulation.
    scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [&] {
      timer_ran = true;
      EXPECT_EQ(Close(5), -1);
      EXPECT_NE(LastSocketErrorMessage().find("timer callback"), std::string::npos);
    });
    ASSERT_TRUE(scheduler.Run().ok());
    EXPECT_TRUE(timer_ran);
  }
  Scheduler scheduler(SchedulerOptions{.seed = 2});
  Network network(&scheduler);
  NetworkHost& fresh = network.AddHost("second", {"10.0.0.1"});
  std::string on_fresh_host = "unset", after_own_failure, in_timer = "unset";
  fresh.Spawn("asks", [&] {
    on_fresh_host = LastSocketErrorMessage();  // Its socket layer does not exist yet.
    Close(88);
    after_own_failure = LastSocketErrorMessage();
    dsim::SleepFor(absl::Seconds(2));
  });
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1),
                     [&] { in_timer = LastSocketErrorMessage(); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(on_fresh_host, "");
  EXPECT_NE(after_own_failure.find("descriptor 88"), std::string::npos);
  EXPECT_EQ(in_timer, "");  // The first simulation's timer failure is not visible here.
}

TEST(ErrorMessages, SimulationWithoutANetworkExplainsWhyCallsFail) {
  EXPECT_EQ(Close(99), -1);  // Leaves a thread message behind.
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  std::string message;
  scheduler.Spawn("no-network", [&] { message = LastSocketErrorMessage(); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_NE(message.find("no dsim::Network is attached"), std::string::npos) << message;
}

// ---- TcpStream::Connect with a deadline -------------------------------------------------

TEST(ConnectDeadline, GivesUpExactlyAtTheTimeoutWhenNobodyAnswers) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
  absl::Status timed_out, refused;
  absl::Duration waited;
  bool connected = false;
  server.Spawn("full-listener", [&] {
    // Backlog 0 holds one connection; the next SYNs are dropped and retried.
    auto listener = TcpListener::Listen("0.0.0.0", 80, /*backlog=*/0);
    ASSERT_TRUE(listener.ok());
    dsim::SleepFor(absl::Seconds(10));
  });
  client.Spawn("client", [&] {
    auto first = TcpStream::Connect("10.0.0.1", 80, absl::Seconds(1));
    ASSERT_TRUE(first.ok()) << first.status();
    connected = true;
    const absl::Time start = dsim::Now();
    auto second = TcpStream::Connect("10.0.0.1", 80, absl::Milliseconds(2500));
    waited = dsim::Now() - start;
    timed_out = second.status();
    refused = TcpStream::Connect("10.0.0.1", 81, dsim::Now() + absl::Seconds(1)).status();
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_TRUE(connected);
  EXPECT_TRUE(absl::IsDeadlineExceeded(timed_out)) << timed_out;
  EXPECT_EQ(ErrnoFromStatus(timed_out), EAGAIN);
  EXPECT_EQ(waited, absl::Milliseconds(2500));
  EXPECT_EQ(ErrnoFromStatus(refused), ECONNREFUSED) << refused;
}

TEST(ConnectDeadline, ConnectedStreamKeepsNoDeadline) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
  absl::Status wrote;
  server.Spawn("server", [&] {
    auto listener = TcpListener::Listen("0.0.0.0", 80);
    auto stream = listener->Accept();
    dsim::SleepFor(absl::Seconds(5));
    char buffer[4];
    EXPECT_TRUE(stream->ReadFull(buffer, 4).ok());
  });
  client.Spawn("client", [&] {
    auto stream = TcpStream::Connect("10.0.0.1", 80, dsim::Now() + absl::Seconds(1));
    ASSERT_TRUE(stream.ok()) << stream.status();
    dsim::SleepFor(absl::Seconds(2));  // Past the connect deadline.
    wrote = stream->WriteAll("late");
  });
  const RunResult result = scheduler.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_TRUE(wrote.ok()) << wrote;
}

}  // namespace
}  // namespace dsim
