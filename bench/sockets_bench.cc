// Socket benchmarks: simulated TCP/UDP against real loopback TCP, side by side.
//
//   ./bazelw run -c opt //bench:sockets_bench
//
// BM_TcpEchoRoundTrip and BM_LinuxLoopbackTcpEcho do the same thing, a 1-byte
// ping-pong, per iteration one round trip: the first between two simulated hosts (two
// tasks, one OS thread, virtual time), the second over real loopback TCP between two
// real threads. Their ratio is the speedup of simulating over running for real.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>

#include "bench/echo_paths.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

sockaddr* Sa(sockaddr_storage* s) { return reinterpret_cast<sockaddr*>(s); }

int SimListen(uint16_t port, int type = SOCK_STREAM) {
  const int fd = Socket(AF_INET, type, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr("0.0.0.0", port, &a);
  Bind(fd, Sa(&a), l);
  if (type == SOCK_STREAM) Listen(fd, 1024);
  return fd;
}

int SimConnect(uint16_t port, int type = SOCK_STREAM) {
  const int fd = Socket(AF_INET, type, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr("10.0.0.1", port, &a);
  Connect(fd, Sa(&a), l);
  return fd;
}

// A scheduler, a network, a server host and a client host.
struct Sim {
  Sim() : network(&scheduler), server(network.AddHost("server", {"10.0.0.1"})),
          client(network.AddHost("client", {"10.0.0.2"})) {}
  Scheduler scheduler;
  Network network;
  NetworkHost& server;
  NetworkHost& client;
};

void BM_TcpEchoRoundTrip(benchmark::State& state) {
  Sim sim;
  sim.server.Spawn("echo", [] {
    const int fd = Accept(SimListen(7), nullptr, nullptr);
    char c;
    while (Read(fd, &c, 1) == 1) Write(fd, &c, 1);
  }, {.daemon = true});
  sim.client.Spawn("pinger", [&] {
    const int fd = SimConnect(7);
    char c = 'x';
    for (auto _ : state) {
      Write(fd, &c, 1);
      if (Read(fd, &c, 1) != 1) state.SkipWithError("echo failed");
    }
  });
  sim.scheduler.Run();
  state.counters["virtual_us_per_round_trip"] = benchmark::Counter(
      absl::ToDoubleMicroseconds(sim.scheduler.Now() - Scheduler::Epoch()) /
      std::max<double>(1, state.iterations()));
}
BENCHMARK(BM_TcpEchoRoundTrip)->Apply(bench::FixedIterationsFromEnv);

void BM_LinuxLoopbackTcpEcho(benchmark::State& state) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::listen(listener, 1);
  socklen_t l = sizeof(a);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &l);
  std::thread server([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    char c;
    while (::read(fd, &c, 1) == 1) ::write(fd, &c, 1);
    ::close(fd);
  });
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  char c = 'x';
  for (auto _ : state) {
    ::write(fd, &c, 1);
    if (::read(fd, &c, 1) != 1) state.SkipWithError("echo failed");
  }
  ::close(fd);
  server.join();
  ::close(listener);
}
BENCHMARK(BM_LinuxLoopbackTcpEcho)->UseRealTime();

void BM_TcpBulkTransfer(benchmark::State& state) {
  constexpr size_t kChunk = 64 * 1024;
  Sim sim;
  sim.server.Spawn("sink", [] {
    const int fd = Accept(SimListen(9), nullptr, nullptr);
    std::string buffer(1 << 20, '\0');
    while (Read(fd, buffer.data(), buffer.size()) > 0) {
    }
  }, {.daemon = true});
  sim.client.Spawn("source", [&] {
    const int fd = SimConnect(9);
    const int buffer_bytes = 4 << 20;
    Setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
    const std::string chunk(kChunk, 'b');
    for (auto _ : state) {
      if (Write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(kChunk)) {
        state.SkipWithError("write failed");
      }
    }
    Close(fd);
  });
  sim.scheduler.Run();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kChunk);
}
BENCHMARK(BM_TcpBulkTransfer);

// A datagram to a server that answers it: one datagram each way per iteration.
void BM_UdpDatagram(benchmark::State& state) {
  Sim sim;
  sim.server.Spawn("udp-echo", [] {
    const int fd = SimListen(53, SOCK_DGRAM);
    char buffer[64];
    sockaddr_storage from;
    for (;;) {
      socklen_t l = sizeof(from);
      const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &l);
      if (n < 0) return;
      Sendto(fd, buffer, n, 0, Sa(&from), l);
    }
  }, {.daemon = true});
  sim.client.Spawn("udp-client", [&] {
    const int fd = SimConnect(53, SOCK_DGRAM);
    char buffer[64] = "datagram";
    for (auto _ : state) {
      Send(fd, buffer, 8, 0);
      if (Recv(fd, buffer, sizeof(buffer), 0) != 8) state.SkipWithError("no answer");
    }
  });
  sim.scheduler.Run();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_UdpDatagram)->Apply(bench::FixedIterationsFromEnv);

// One full connection per iteration: connect, accept, close on both sides.
void BM_AcceptConnectClose(benchmark::State& state) {
  Sim sim;
  sim.server.Spawn("acceptor", [] {
    const int listener = SimListen(80);
    for (;;) {
      const int fd = Accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      Close(fd);
    }
  }, {.daemon = true});
  sim.client.Spawn("dialer", [&] {
    for (auto _ : state) {
      const int fd = SimConnect(80);
      if (fd < 0) state.SkipWithError("connect failed");
      Close(fd);
    }
  });
  sim.scheduler.Run();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcceptConnectClose);

// The closed-loop echo of issue 10 through the three paths (bench/echo_paths.h): one
// iteration is one exchange; 10 and 100 clients on 1 ms links.
#define DSIM_ECHO_BENCHMARK(name, path, protocol)                              \
  void name(benchmark::State& state) { bench::RunEcho(state, path, protocol); } \
  BENCHMARK(name)->Arg(10)->Arg(100)->Apply(bench::FixedIterationsFromEnv)
DSIM_ECHO_BENCHMARK(BM_UdpEchoBare, bench::EchoPath::kBare, bench::EchoProtocol::kUdp);
DSIM_ECHO_BENCHMARK(BM_UdpEchoSimulation, bench::EchoPath::kSimulation, bench::EchoProtocol::kUdp);
DSIM_ECHO_BENCHMARK(BM_UdpEchoWrapper, bench::EchoPath::kWrapper, bench::EchoProtocol::kUdp);
DSIM_ECHO_BENCHMARK(BM_TcpEchoBare, bench::EchoPath::kBare, bench::EchoProtocol::kTcp);
DSIM_ECHO_BENCHMARK(BM_TcpEchoSimulation, bench::EchoPath::kSimulation, bench::EchoProtocol::kTcp);
DSIM_ECHO_BENCHMARK(BM_TcpEchoWrapper, bench::EchoPath::kWrapper, bench::EchoProtocol::kTcp);
#undef DSIM_ECHO_BENCHMARK

}  // namespace
}  // namespace dsim

