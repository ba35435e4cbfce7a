// Unmodified standalone Asio under //posix: an async TCP echo server and a client with
// asio::steady_timer timeouts, each running io_context::run() in a task on its own host.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "asio.hpp"
#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/notification.h"
#include "sim/simulation.h"

namespace {

using asio::ip::tcp;

// The echo server: one session per connection, as in Asio's examples.
class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}
  void Start() { Read(); }

 private:
  void Read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(data_), [this, self](asio::error_code error, size_t n) {
      if (!error) Write(n);
    });
  }
  void Write(size_t n) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(data_, n), [this, self](asio::error_code error, size_t) {
      if (!error) Read();
    });
  }
  tcp::socket socket_;
  char data_[256];
};

void Accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](asio::error_code error, tcp::socket socket) {
    if (!error) std::make_shared<Session>(std::move(socket))->Start();
    Accept(acceptor);
  });
}

void Serve(asio::io_context** running) {
  asio::io_context io;
  *running = &io;
  tcp::acceptor acceptor(io, tcp::endpoint(tcp::v4(), 7000));
  Accept(acceptor);
  io.run();
  *running = nullptr;
}

struct ClientResult {
  int echoed = 0;
  int timeouts = 0;
  std::optional<std::chrono::steady_clock::time_point> timeout_at;
  std::chrono::steady_clock::time_point request_at;
};

// Sends `requests` messages, each with a 500 ms deadline on its echo.
void Client(int requests, ClientResult* result) {
  asio::io_context io;
  tcp::socket socket(io);
  asio::steady_timer timer(io);
  std::string reply;
  char buffer[64];
  socket.connect(tcp::endpoint(asio::ip::make_address("10.0.0.1"), 7000));
  std::function<void(int)> send = [&](int i) {
    if (i == requests) {
      socket.close();
      return;
    }
    const std::string message = "request " + std::to_string(i);
    result->request_at = std::chrono::steady_clock::now();
    timer.expires_after(std::chrono::milliseconds(500));
    timer.async_wait([&](asio::error_code error) {
      if (error) return;  // Cancelled: the echo came first.
      ++result->timeouts;
      result->timeout_at = std::chrono::steady_clock::now();
      socket.close();
    });
    asio::async_write(socket, asio::buffer(message), [&, i, message](asio::error_code error, size_t) {
      if (error) return;
      asio::async_read(socket, asio::buffer(buffer, message.size()),
                       [&, i, message](asio::error_code error, size_t n) {
                         if (error) return;
                         timer.cancel();
                         if (std::string(buffer, n) == message) ++result->echoed;
                         send(i + 1);
                       });
    });
  };
  send(0);
  io.run();
}

struct Outcome {
  ClientResult client;
  uint64_t fingerprint = 0;
  dsim::RunResult result;
  std::vector<dsim::posix::EscapedCall> escapes;
};

Outcome RunEcho(uint64_t seed, bool partition) {
  dsim::SimulationOptions options{.seed = seed};
  options.faults.link = {
      .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200), absl::Microseconds(300))};
  Outcome outcome;
  asio::io_context* server_io = nullptr;
  dsim::Notification client_done;
  dsim::Simulation sim(options);
  dsim::Host& server = sim.AddHost(
      {.name = "server", .start = [&] { Serve(&server_io); }, .addresses = {"10.0.0.1"}});
  dsim::Host& client = sim.AddHost({.name = "client",
                                    .start = [&] {
                                      Client(20, &outcome.client);
                                      client_done.Notify();
                                    },
                                    .start_daemon = false,
                                    .addresses = {"10.0.0.2"}});
  // The server stops as a server would, from one of its own host's tasks, so its
  // io_context::run() returns. (A server left in run() is unwound at the end of the
  // simulation instead: the crash test below leaves its restarted server so.)
  server.Spawn("stopper", [&] {
    client_done.WaitForNotification();
    if (server_io != nullptr) server_io->stop();
  });
  if (partition) {
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Milliseconds(5));
      sim.Partition({server.id()}, {client.id()});
    });
  }
  outcome.result = sim.RunFor(absl::Seconds(10));
  outcome.fingerprint = sim.trace().fingerprint();
  outcome.escapes = dsim::posix::EscapedCalls(sim.scheduler());
  return outcome;
}

TEST(PosixAsio, EchoesEveryRequestAndReplaysBySeed) {
  const Outcome first = RunEcho(3, false);
  ASSERT_TRUE(first.result.ok()) << first.result.ToString();
  EXPECT_EQ(first.client.echoed, 20);
  EXPECT_EQ(first.client.timeouts, 0);
  for (const auto& escape : first.escapes) ADD_FAILURE() << escape.ToString();
  EXPECT_EQ(RunEcho(3, false).fingerprint, first.fingerprint);
  EXPECT_NE(RunEcho(4, false).fingerprint, first.fingerprint);
}

TEST(PosixAsio, PartitionFiresTheClientTimerExactlyAtItsDeadline) {
  const Outcome outcome = RunEcho(3, true);
  ASSERT_TRUE(outcome.result.ok()) << outcome.result.ToString();
  EXPECT_LT(outcome.client.echoed, 20);
  EXPECT_EQ(outcome.client.timeouts, 1);
  ASSERT_TRUE(outcome.client.timeout_at.has_value());
  EXPECT_EQ(*outcome.client.timeout_at - outcome.client.request_at, std::chrono::milliseconds(500));
}

// ---- Crash and restart of the server host, survived by a reconnecting client ---------

// An echo server that serves until its host dies: its task is killed while blocked in
// epoll_wait inside io_context::run(), and Asio's destructors run as it unwinds.
void ServeUntilKilled() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(tcp::v4(), 7000));
  Accept(acceptor);
  io.run();
}

struct ReconnectResult {
  std::vector<std::chrono::steady_clock::time_point> echoes;
  int connects = 0;
  int failures = 0;  // Failed connects, resets, timeouts.
};

// Echoes one message every 20 ms with a 300 ms deadline; on any error closes, waits
// 100 ms (asio::steady_timer), resolves the server's name again and reconnects. Stops
// after `wanted` echoes.
class ReconnectingClient {
 public:
  ReconnectingClient(asio::io_context& io, int wanted, ReconnectResult* result)
      : io_(io), resolver_(io), socket_(io), timer_(io), wanted_(wanted), result_(result) {}

  void Start() { Resolve(); }

 private:
  void Resolve() {
    resolver_.async_resolve("server", "7000", [this](asio::error_code error,
                                                      tcp::resolver::results_type endpoints) {
      if (error) return Retry();
      asio::async_connect(socket_, endpoints, [this](asio::error_code error, const tcp::endpoint&) {
        if (error) return Retry();
        ++result_->connects;
        Send();
      });
    });
  }
  void Retry() {
    ++result_->failures;
    asio::error_code ignored;
    socket_.close(ignored);
    timer_.expires_after(std::chrono::milliseconds(100));
    timer_.async_wait([this](asio::error_code error) {
      if (!error) Resolve();
    });
  }
  void Send() {
    message_ = "echo " + std::to_string(sent_++);
    timer_.expires_after(std::chrono::milliseconds(300));
    timer_.async_wait([this](asio::error_code error) {
      if (error) return;  // Cancelled: the echo came first.
      asio::error_code ignored;
      socket_.cancel(ignored);  // The read below fails with operation_aborted.
    });
    asio::async_write(socket_, asio::buffer(message_), [this](asio::error_code error, size_t) {
      if (error) return Retry();
      asio::async_read(socket_, asio::buffer(buffer_, message_.size()),
                       [this](asio::error_code error, size_t n) {
                         timer_.cancel();
                         if (error || std::string(buffer_, n) != message_) return Retry();
                         result_->echoes.push_back(std::chrono::steady_clock::now());
                         if (static_cast<int>(result_->echoes.size()) == wanted_) {
                           socket_.close();
                           return;
                         }
                         timer_.expires_after(std::chrono::milliseconds(20));
                         timer_.async_wait([this](asio::error_code error) {
                           if (!error) Send();
                         });
                       });
    });
  }

  asio::io_context& io_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  const int wanted_;
  ReconnectResult* result_;
  int sent_ = 0;
  std::string message_;
  char buffer_[64];
};

struct CrashOutcome {
  ReconnectResult client;
  std::chrono::steady_clock::time_point restarted_at;
  int server_incarnation = 0;
  uint64_t fingerprint = 0;
  dsim::RunResult result;
  std::vector<dsim::posix::EscapedCall> escapes;
};

CrashOutcome RunCrashRestart(uint64_t seed) {
  dsim::SimulationOptions options{.seed = seed};
  options.faults.link = {
      .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200), absl::Microseconds(300))};
  CrashOutcome outcome;
  dsim::Simulation sim(options);
  dsim::Host& server = sim.AddHost({.name = "server", .start = ServeUntilKilled, .addresses = {"10.0.0.1"}});
  sim.AddHost({.name = "client",
               .start =
                   [&] {
                     asio::io_context io;
                     ReconnectingClient client(io, 40, &outcome.client);
                     client.Start();
                     io.run();
                   },
               .start_daemon = false,
               .addresses = {"10.0.0.2"}});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(200));
    sim.Crash(server.id());
    dsim::SleepFor(absl::Milliseconds(500));
    sim.Restart(server.id());
  });
  // The restart time as the client's steady_clock reads it (hosts share true time).
  sim.Spawn("clock", [&] {
    dsim::SleepFor(absl::Milliseconds(700));
    outcome.restarted_at = std::chrono::steady_clock::now();
  });
  outcome.result = sim.RunFor(absl::Seconds(10));
  outcome.server_incarnation = server.incarnation();
  outcome.fingerprint = sim.trace().fingerprint();
  outcome.escapes = dsim::posix::EscapedCalls(sim.scheduler());
  return outcome;
}

TEST(PosixAsio, ClientReconnectsAfterTheServerHostCrashesAndRestarts) {
  const CrashOutcome outcome = RunCrashRestart(3);
  ASSERT_TRUE(outcome.result.ok()) << outcome.result.ToString();
  EXPECT_EQ(outcome.server_incarnation, 2);
  ASSERT_EQ(outcome.client.echoes.size(), 40u);
  EXPECT_GE(outcome.client.connects, 2);
  EXPECT_GE(outcome.client.failures, 1);
  // Echoes before the crash and again after the restart, none while the host was down.
  const auto crashed_at = outcome.restarted_at - std::chrono::milliseconds(500);
  int before = 0, after = 0;
  for (const auto& at : outcome.client.echoes) {
    EXPECT_TRUE(at <= crashed_at || at >= outcome.restarted_at);
    (at <= crashed_at ? before : after) += 1;
  }
  EXPECT_GT(before, 0);
  EXPECT_GT(after, 0);
  for (const auto& escape : outcome.escapes) ADD_FAILURE() << escape.ToString();
  EXPECT_EQ(RunCrashRestart(3).fingerprint, outcome.fingerprint);
}

}  // namespace
