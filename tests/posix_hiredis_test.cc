// Unmodified hiredis under //posix. hiredis is Debian's libhiredis.so (a C library
// built without dsim); its blocking client (redisConnectWithTimeout, redisSetTimeout,
// redisCommand) runs in tasks on client hosts and talks to a server for a subset of the
// Redis protocol written with plain POSIX calls (tests/posix_redis/), all inside one
// dsim::Simulation: replies, replay by seed, timeouts in virtual time under a partition,
// reconnection after the heal, and a seed sweep with latency and loss faults.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/notification.h"
#include "scheduler/wait_group.h"
#include "sim/harness.h"
#include "sim/simulation.h"
#include "tests/posix_redis/redis_subset_server.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr char kServerAddress[] = "10.0.0.1";
constexpr int kPort = 6379;

// A reply as one line: "+OK", ":42", "$value", "(nil)", "-ERR ...", "[a,b]".
std::string Render(const redisReply* reply) {
  if (reply == nullptr) return "(null)";
  switch (reply->type) {
    case REDIS_REPLY_STATUS:
      return "+" + std::string(reply->str, reply->len);
    case REDIS_REPLY_ERROR:
      return "-" + std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return ":" + std::to_string(reply->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_STRING:
      return "$" + std::string(reply->str, reply->len);
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (size_t i = 0; i < reply->elements; ++i) {
        if (i > 0) out += ",";
        out += Render(reply->element[i]);
      }
      return out + "]";
    }
  }
  return "?";
}

// redisCommand, rendered; a failed call renders as "error <err>: <errstr>".
std::string Command(redisContext* c, const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  auto* reply = static_cast<redisReply*>(redisvCommand(c, format, arguments));
  va_end(arguments);
  if (reply == nullptr) return absl::StrCat("error ", c->err, ": ", c->errstr);
  std::string rendered = Render(reply);
  freeReplyObject(reply);
  return rendered;
}

redisContext* Connect(milliseconds timeout, const char* host = kServerAddress) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  return redisConnectWithTimeout(host, kPort, tv);
}

timeval Timeval(milliseconds duration) {
  return timeval{static_cast<time_t>(duration.count() / 1000),
                 static_cast<suseconds_t>(duration.count() % 1000 * 1000)};
}

dsim::Host& AddRedisServer(dsim::Simulation& sim) {
  return sim.AddHost({.name = "redis",
                      .start =
                          [&sim] {
                            const int error = dsim_test::ServeRedisSubset(kPort);
                            sim.FailRun(absl::StrCat("redis server setup failed: ", strerror(error)));
                          },
                      .addresses = {kServerAddress}});
}

void ExpectNoEscapes(dsim::Simulation& sim) {
  for (const auto& escape : dsim::posix::EscapedCalls(sim.scheduler())) {
    ADD_FAILURE() << "escaped: " << escape.ToString();
  }
}

// ---- The server's parser on its own -------------------------------------------------

TEST(RedisSubsetServer, ParsesInlineAndMultibulkRequestsSplitAnywhere) {
  static const char kMultibulkWithNul[] = "*3\r\n$3\r\nSET\r\n$2\r\na\0\r\n$0\r\n\r\n";
  const std::string stream =
      std::string("PING\r\n  SET   k  v \n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") +
      std::string(kMultibulkWithNul, sizeof(kMultibulkWithNul) - 1);
  std::vector<std::vector<std::string>> requests;
  std::string input;
  for (char c : stream) {
    input.push_back(c);  // One byte at a time: every split point.
    for (auto& request : dsim_test::ParseRedisRequests(&input).requests) requests.push_back(request);
  }
  EXPECT_TRUE(input.empty());
  const std::vector<std::vector<std::string>> expected = {
      {"PING"}, {"SET", "k", "v"}, {"GET", "k"}, {"SET", std::string("a\0", 2), ""}};
  EXPECT_EQ(requests, expected);
}

TEST(RedisSubsetServer, ProtocolErrorsAreRedisWords) {
  std::string input = "*1\r\nX\r\n";
  EXPECT_EQ(dsim_test::ParseRedisRequests(&input).protocol_error,
            "-ERR Protocol error: expected '$', got 'X'\r\n");
  input = "*x\r\n";
  EXPECT_EQ(dsim_test::ParseRedisRequests(&input).protocol_error,
            "-ERR Protocol error: invalid multibulk length\r\n");
  input = "*1\r\n$-5\r\n";
  EXPECT_EQ(dsim_test::ParseRedisRequests(&input).protocol_error,
            "-ERR Protocol error: invalid bulk length\r\n");
  input = std::string(70000, 'a');
  EXPECT_EQ(dsim_test::ParseRedisRequests(&input).protocol_error,
            "-ERR Protocol error: too big inline request\r\n");
}

TEST(RedisSubsetServer, IncrFollowsRedisIntegerRules) {
  dsim_test::RedisStore store{{"n", "9223372036854775806"}, {"lead", "01"}, {"neg", "-5"}};
  std::string out;
  dsim_test::ExecuteRedisCommand({"INCR", "n"}, &store, &out);
  dsim_test::ExecuteRedisCommand({"incr", "n"}, &store, &out);
  dsim_test::ExecuteRedisCommand({"INCR", "lead"}, &store, &out);
  dsim_test::ExecuteRedisCommand({"DECR", "neg"}, &store, &out);
  dsim_test::ExecuteRedisCommand({"INCR", "fresh"}, &store, &out);
  EXPECT_EQ(out,
            ":9223372036854775807\r\n"
            "-ERR increment or decrement would overflow\r\n"
            "-ERR value is not an integer or out of range\r\n"
            ":-6\r\n"
            ":1\r\n");
}

// ---- hiredis against it, in a simulation ---------------------------------------------

TEST(PosixHiredis, CommandsGetTheRepliesRedisGives) {
  dsim::Simulation sim({.seed = 5});
  AddRedisServer(sim);
  std::vector<std::string> transcript;
  sim.AddHost({.name = "client",
               .start =
                   [&] {
                     // By the server host's name: hiredis's getaddrinfo resolves it.
                     redisContext* c = Connect(milliseconds(1000), "redis");
                     if (c == nullptr || c->err != 0) {
                       transcript.push_back(absl::StrCat("connect failed: ", c ? c->errstr : "oom"));
                       return;
                     }
                     const std::string binary("hi\0there\r\n", 10);
                     const std::string big(100 * 1000, 'x');
                     transcript.push_back(Command(c, "PING"));
                     transcript.push_back(Command(c, "PING %s", "hello"));
                     transcript.push_back(Command(c, "ECHO %s", "two words"));
                     transcript.push_back(Command(c, "GET missing"));
                     transcript.push_back(Command(c, "SET greeting %b", binary.data(), binary.size()));
                     transcript.push_back(Command(c, "GET greeting") == "$" + binary ? "binary ok" : "binary bad");
                     transcript.push_back(Command(c, "SET counter 41"));
                     transcript.push_back(Command(c, "INCR counter"));
                     transcript.push_back(Command(c, "INCR greeting"));
                     transcript.push_back(Command(c, "EXISTS greeting counter missing"));
                     transcript.push_back(Command(c, "DEL greeting counter missing"));
                     transcript.push_back(Command(c, "GET"));
                     transcript.push_back(Command(c, "FLUSHALL"));
                     transcript.push_back(Command(c, "SET big %b", big.data(), big.size()));
                     transcript.push_back(Command(c, "GET big") == "$" + big ? "100000 bytes ok" : "big bad");
                     // Pipelined: three requests written at once, three replies read.
                     redisAppendCommand(c, "INCR p");
                     redisAppendCommand(c, "INCR p");
                     redisAppendCommand(c, "GET p");
                     for (int i = 0; i < 3; ++i) {
                       void* reply = nullptr;
                       if (redisGetReply(c, &reply) != REDIS_OK) {
                         transcript.push_back(absl::StrCat("pipeline error: ", c->errstr));
                         break;
                       }
                       transcript.push_back(Render(static_cast<redisReply*>(reply)));
                       freeReplyObject(reply);
                     }
                     transcript.push_back(Command(c, "QUIT"));
                     transcript.push_back(Command(c, "PING"));  // The server has closed.
                     redisFree(c);
                   },
               .start_daemon = false,
               .addresses = {"10.0.0.2"}});
  const dsim::RunResult result = sim.RunFor(absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.ToString();
  const std::vector<std::string> expected = {
      "+PONG",
      "$hello",
      "$two words",
      "(nil)",
      "+OK",
      "binary ok",
      "+OK",
      ":42",
      "-ERR value is not an integer or out of range",
      ":2",
      ":2",
      "-ERR wrong number of arguments for 'get' command",
      "-ERR unknown command 'FLUSHALL'",
      "+OK",
      "100000 bytes ok",
      ":1",
      ":2",
      "$2",
      "+OK",
      absl::StrCat("error ", REDIS_ERR_EOF, ": Server closed the connection"),
  };
  EXPECT_EQ(transcript, expected);
  ExpectNoEscapes(sim);
}

// hiredis's other transport, a Unix-domain socket, is not simulated: the run fails
// naming the call, instead of hiredis quietly getting an error Linux would not give.
TEST(PosixHiredis, UnixSocketConnectFailsTheRunLoudly) {
  dsim::Simulation sim({.seed = 5});
  std::string errstr;
  sim.AddHost({.name = "client",
               .start =
                   [&] {
                     redisContext* c = redisConnectUnix("/tmp/redis.sock");
                     errstr = c->errstr;
                     redisFree(c);
                   },
               .start_daemon = false,
               .addresses = {"10.0.0.2"}});
  const dsim::RunResult result = sim.RunFor(absl::Seconds(1));
  EXPECT_EQ(result.outcome, dsim::RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("called socket from "), std::string::npos) << result.ToString();
  EXPECT_NE(result.ToString().find("address family 1 is not simulated"), std::string::npos)
      << result.ToString();
  EXPECT_EQ(errstr, strerror(EAFNOSUPPORT));
  const std::vector<dsim::posix::EscapedCall> escapes = dsim::posix::EscapedCalls(sim.scheduler());
  ASSERT_EQ(escapes.size(), 1u);
  EXPECT_TRUE(escapes[0].fatal);
  EXPECT_EQ(escapes[0].call, "socket");
}

// Telnet-style inline requests and a multibulk request split across writes, from a
// plain POSIX client.
TEST(PosixHiredis, ServerAnswersInlineRequestsAndProtocolErrors) {
  dsim::Simulation sim({.seed = 6});
  AddRedisServer(sim);
  std::string received;
  sim.AddHost({.name = "telnet",
               .start =
                   [&] {
                     const int fd = socket(AF_INET, SOCK_STREAM, 0);
                     sockaddr_in address{};
                     address.sin_family = AF_INET;
                     address.sin_port = htons(kPort);
                     inet_pton(AF_INET, kServerAddress, &address.sin_addr);
                     if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return;
                     for (const char* piece : {"PING\r\nSET k", " v\r\n  INCR   n  \n*2\r\n$3\r\nGE",
                                               "T\r\n$1\r\nk\r\n", "*1\r\nX\r\n"}) {
                       if (write(fd, piece, strlen(piece)) < 0) return;
                       usleep(10 * 1000);
                     }
                     char buffer[256];
                     ssize_t n;
                     while ((n = read(fd, buffer, sizeof(buffer))) > 0) received.append(buffer, n);
                     if (n == 0) received += "<EOF>";
                     close(fd);
                   },
               .start_daemon = false,
               .addresses = {"10.0.0.2"}});
  const dsim::RunResult result = sim.RunFor(absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(received,
            "+PONG\r\n+OK\r\n:1\r\n$1\r\nv\r\n-ERR Protocol error: expected '$', got 'X'\r\n<EOF>");
  ExpectNoEscapes(sim);
}

// Several hiredis clients on their own hosts increment one counter.
struct IncrOutcome {
  uint64_t fingerprint = 0;
  std::vector<std::vector<long long>> replies;  // Per client, in order.
  dsim::RunResult result;
};

IncrOutcome RunIncrements(uint64_t seed) {
  dsim::SimulationOptions options{.seed = seed};
  options.faults.link = {
      .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200), absl::Microseconds(500))};
  dsim::Simulation sim(options);
  AddRedisServer(sim);
  IncrOutcome outcome;
  outcome.replies.resize(3);
  for (int i = 0; i < 3; ++i) {
    sim.AddHost({.name = absl::StrCat("client", i),
                 .start =
                     [&outcome, i] {
                       redisContext* c = Connect(milliseconds(1000));
                       if (c == nullptr || c->err != 0) return;
                       for (int n = 0; n < 10; ++n) {
                         auto* reply = static_cast<redisReply*>(redisCommand(c, "INCR counter"));
                         if (reply == nullptr) break;
                         outcome.replies[i].push_back(reply->integer);
                         freeReplyObject(reply);
                       }
                       redisFree(c);
                     },
                 .start_daemon = false,
                 .addresses = {absl::StrCat("10.0.0.", 2 + i)}});
  }
  outcome.result = sim.RunFor(absl::Seconds(10));
  outcome.fingerprint = sim.trace().fingerprint();
  ExpectNoEscapes(sim);
  return outcome;
}

TEST(PosixHiredis, SameSeedSameTraceDifferentSeedsDiffer) {
  const IncrOutcome first = RunIncrements(11);
  ASSERT_TRUE(first.result.ok()) << first.result.ToString();
  std::set<long long> all;
  for (const auto& client : first.replies) {
    ASSERT_EQ(client.size(), 10u);
    for (size_t n = 1; n < client.size(); ++n) EXPECT_LT(client[n - 1], client[n]);
    all.insert(client.begin(), client.end());
  }
  EXPECT_EQ(all.size(), 30u);  // Every INCR got its own value: 1..30.
  EXPECT_EQ(*all.rbegin(), 30);
  const IncrOutcome again = RunIncrements(11);
  EXPECT_EQ(again.fingerprint, first.fingerprint);
  EXPECT_EQ(again.replies, first.replies);
  const IncrOutcome other = RunIncrements(12);
  EXPECT_NE(other.fingerprint, first.fingerprint);
}

// The partition scenario's observations, from the client task.
struct PartitionOutcome {
  std::string before;
  std::string during;
  int during_err = 0;
  steady_clock::duration command_took{};
  int connect_err = 0;
  std::string connect_errstr;
  steady_clock::duration connect_took{};
  std::string after;
  std::string late_incr;
  dsim::RunResult result;
};

PartitionOutcome RunPartition() {
  dsim::Simulation sim({.seed = 9});
  dsim::Host& server = AddRedisServer(sim);
  PartitionOutcome out;
  dsim::Notification partitioned;
  dsim::Notification healed;
  dsim::Host& client = sim.AddHost(
      {.name = "client",
       .start =
           [&] {
             redisContext* c = Connect(milliseconds(1000));
             if (c == nullptr || c->err != 0) return;
             redisSetTimeout(c, Timeval(milliseconds(250)));
             out.before = Command(c, "SET counter 0");
             partitioned.WaitForNotification();
             // The request is written (into the send buffer); the reply never comes:
             // SO_RCVTIMEO, which redisSetTimeout set, ends the read.
             steady_clock::time_point start = steady_clock::now();
             out.during = Command(c, "INCR counter");
             out.command_took = steady_clock::now() - start;
             out.during_err = c->err;
             redisFree(c);
             // Reconnecting while partitioned: the SYN is lost, poll() times out.
             start = steady_clock::now();
             c = Connect(milliseconds(300));
             out.connect_took = steady_clock::now() - start;
             out.connect_err = c->err;
             out.connect_errstr = c->errstr;
             redisFree(c);
             healed.WaitForNotification();
             c = Connect(milliseconds(1000));
             if (c == nullptr || c->err != 0) return;
             redisSetTimeout(c, Timeval(milliseconds(250)));
             out.after = Command(c, "SET other 1");
             // The timed-out INCR was not lost: its segment was held by the partition
             // and retransmitted after the heal (redisFree closed the socket, which
             // still delivers what it had queued). Wait for it to be applied.
             for (int i = 0; i < 100; ++i) {
               out.late_incr = Command(c, "GET counter");
               if (out.late_incr == "$1") break;
               usleep(100 * 1000);
             }
             redisFree(c);
           },
       .start_daemon = false,
       .addresses = {"10.0.0.2"}});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(100));
    const dsim::PartitionId cut = sim.Partition({server.id()}, {client.id()});
    partitioned.Notify();
    dsim::SleepFor(absl::Seconds(2));
    sim.Heal(cut);
    healed.Notify();
  });
  out.result = sim.RunFor(absl::Seconds(30));
  ExpectNoEscapes(sim);
  return out;
}

TEST(PosixHiredis, PartitionTimesOutAtTheVirtualDeadlineAndReconnectWorksAfterHeal) {
  const PartitionOutcome out = RunPartition();
  ASSERT_TRUE(out.result.ok()) << out.result.ToString();
  EXPECT_EQ(out.before, "+OK");
  // hiredis reports the read timeout as an I/O error with errno's text (EAGAIN).
  EXPECT_EQ(out.during, absl::StrCat("error ", REDIS_ERR_IO, ": ", strerror(EAGAIN)));
  EXPECT_EQ(out.during_err, REDIS_ERR_IO);
  EXPECT_EQ(out.command_took, milliseconds(250));
  // The connect timeout: hiredis's poll() returns 0 and it reports ETIMEDOUT.
  EXPECT_EQ(out.connect_err, REDIS_ERR_IO);
  EXPECT_EQ(out.connect_errstr, strerror(ETIMEDOUT));
  EXPECT_EQ(out.connect_took, milliseconds(300));
  EXPECT_EQ(out.after, "+OK");
  EXPECT_EQ(out.late_incr, "$1");
}

// The server host crashes (its keyspace lived in its start function) and restarts.
TEST(PosixHiredis, ServerCrashResetsTheConnectionAndARestartedServerStartsEmpty) {
  dsim::Simulation sim({.seed = 4});
  dsim::Host& server = AddRedisServer(sim);
  dsim::Notification crashed;
  std::vector<std::string> transcript;
  sim.AddHost({.name = "client",
               .start =
                   [&] {
                     redisContext* c = Connect(milliseconds(1000));
                     if (c == nullptr || c->err != 0) return;
                     transcript.push_back(Command(c, "SET k v"));
                     crashed.WaitForNotification();
                     // The request reaches a host with no stack: it answers with RST.
                     transcript.push_back(Command(c, "GET k"));
                     redisFree(c);
                     // While it is down, connecting is refused (RST to the SYN).
                     c = Connect(milliseconds(1000));
                     transcript.push_back(absl::StrCat("connect: ", c->err, " ", c->errstr));
                     redisFree(c);
                     for (int attempt = 0;; ++attempt) {
                       usleep(100 * 1000);
                       c = Connect(milliseconds(1000));
                       if (c->err == 0) break;
                       redisFree(c);
                     }
                     transcript.push_back(Command(c, "GET k"));
                     transcript.push_back(Command(c, "INCR n"));
                     redisFree(c);
                   },
               .start_daemon = false,
               .addresses = {"10.0.0.2"}});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(50));
    sim.Crash(server.id());
    crashed.Notify();
    dsim::SleepFor(absl::Milliseconds(500));
    sim.Restart(server.id());
  });
  const dsim::RunResult result = sim.RunFor(absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.ToString();
  const std::vector<std::string> expected = {
      "+OK",
      absl::StrCat("error ", REDIS_ERR_IO, ": ", strerror(ECONNRESET)),
      absl::StrCat("connect: ", REDIS_ERR_IO, " ", strerror(ECONNREFUSED)),
      "(nil)",
      ":1",
  };
  EXPECT_EQ(transcript, expected);
  EXPECT_EQ(server.incarnation(), 2);
  ExpectNoEscapes(sim);
}

// ---- A seed sweep: latency, segment loss and partitions; INCR's invariant -------------

struct SweepState {
  std::vector<long long> acknowledged;  // Every value an INCR returned, all clients.
  int unknown = 0;                      // INCRs that failed: applied or not.
  int done = 0;
  std::string final_value;
};

TEST(PosixHiredis, SeedSweepKeepsEveryAcknowledgedIncrement) {
  dsim::SweepOptions sweep_options{.seeds = 8, .check_determinism = true};
  sweep_options.simulation.faults.link = {
      .latency = dsim::LatencyModel::Exponential(absl::Microseconds(200), absl::Milliseconds(2)),
      .segment_loss_probability = 0.05};
  dsim::SeedSweep sweep(sweep_options);
  sweep.Run([](dsim::Simulation& sim) -> absl::Status {
    constexpr int kClients = 3;
    constexpr int kIncrements = 15;
    SweepState& state = sim.Make<SweepState>();
    dsim::WaitGroup& clients_done = sim.Make<dsim::WaitGroup>();
    clients_done.Add(kClients);
    dsim::Host& server = AddRedisServer(sim);
    std::vector<dsim::HostId> client_ids;
    for (int i = 0; i < kClients; ++i) {
      dsim::Host& host = sim.AddHost(
          {.name = absl::StrCat("client", i),
           .start =
               [&state, &clients_done, &sim] {
                 redisContext* c = nullptr;
                 long long last = 0;
                 for (int n = 0; n < kIncrements; ++n) {
                   while (c == nullptr) {  // Reconnect with a backoff.
                     c = Connect(milliseconds(500));
                     if (c->err == 0) break;
                     redisFree(c);
                     c = nullptr;
                     usleep(200 * 1000);
                   }
                   redisSetTimeout(c, Timeval(milliseconds(1000)));
                   auto* reply = static_cast<redisReply*>(redisCommand(c, "INCR counter"));
                   if (reply == nullptr) {
                     ++state.unknown;
                     redisFree(c);
                     c = nullptr;
                     continue;
                   }
                   if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= last) {
                     sim.FailRun(absl::StrCat("INCR went backwards or failed: ", Render(reply),
                                              " after ", last));
                   }
                   last = reply->integer;
                   state.acknowledged.push_back(reply->integer);
                   freeReplyObject(reply);
                 }
                 if (c != nullptr) redisFree(c);
                 clients_done.Done();
               },
           .start_daemon = false,
           .addresses = {absl::StrCat("10.0.0.", 2 + i)}});
      client_ids.push_back(host.id());
    }
    sim.Spawn("chaos", [&sim, &server, client_ids] {
      dsim::BitSource& random = sim.scheduler().random();
      for (int round = 0; round < 2; ++round) {
        dsim::SleepFor(random.UniformDuration(absl::Milliseconds(10), absl::Milliseconds(300)));
        const dsim::HostId victim = client_ids[random.Below(client_ids.size())];
        const dsim::PartitionId cut = sim.Partition({server.id()}, {victim});
        dsim::SleepFor(random.UniformDuration(absl::Milliseconds(100), absl::Milliseconds(2500)));
        sim.Heal(cut);
      }
    });
    sim.AddHost({.name = "checker",
                 .start =
                     [&state, &clients_done] {
                       clients_done.Wait();
                       sleep(60);  // Retransmissions of closed connections land first.
                       redisContext* c = Connect(milliseconds(1000));
                       state.final_value = Command(c, "GET counter");
                       redisFree(c);
                     },
                 .start_daemon = false,
                 .addresses = {"10.0.0.100"}});
    const dsim::RunResult result = sim.RunFor(absl::Seconds(600));
    if (!result.ok()) return result.status();
    std::set<long long> distinct(state.acknowledged.begin(), state.acknowledged.end());
    if (distinct.size() != state.acknowledged.size()) return absl::InternalError("duplicate INCR value");
    const long long acked = static_cast<long long>(state.acknowledged.size());
    const std::string lo = absl::StrCat("$", acked);
    long long final_count = 0;
    if (state.final_value.size() < 2 || state.final_value[0] != '$' ||
        !absl::SimpleAtoi(state.final_value.substr(1), &final_count)) {
      return absl::InternalError(absl::StrCat("final GET: ", state.final_value));
    }
    if (final_count < acked || final_count > acked + state.unknown) {
      return absl::InternalError(absl::StrCat("final ", final_count, " acked ", acked,
                                              " unknown ", state.unknown));
    }
    if (!distinct.empty() && *distinct.rbegin() > final_count) {
      return absl::InternalError("an acknowledged value exceeds the final count");
    }
    if (!dsim::posix::EscapedCalls(sim.scheduler()).empty()) {
      return absl::InternalError(dsim::posix::EscapedCalls(sim.scheduler())[0].ToString());
    }
    return absl::OkStatus();
  });
}

}  // namespace
