#include "bench/echo_paths.h"

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sim/simulation.h"
#include "sockets/socket.h"
#include "sockets/tcp.h"
#include "sockets/udp.h"
#include "tests/testing/allocation_counter.h"

namespace dsim::bench {

uint64_t HeapAllocations() { return dsim::testing::HeapAllocations(); }

namespace {

constexpr uint16_t kPort = 7;
constexpr size_t kMessageBytes = 32;
constexpr int kWarmupExchanges = 3;
const absl::Duration kLinkLatency = absl::Milliseconds(1);

sockaddr* Sa(sockaddr_storage* s) { return reinterpret_cast<sockaddr*>(s); }

std::string ClientAddress(int client) { return absl::StrCat("10.0.1.", client + 1); }

// What the clients share: the benchmark state (driven by client 0) and the counts.
struct EchoRun {
  benchmark::State* state;
  int clients;
  uint64_t exchanges = 0;
  bool stop = false;
  uint64_t measured_exchanges = 0;
  uint64_t measured_allocations = 0;
  uint64_t trace_events = 0;  // Simulation path: events its trace recorded in all.
};

// Runs `exchange` in a closed loop as client `index`; client 0 drives the benchmark.
template <typename Exchange>
void ClientLoop(EchoRun& run, int index, Exchange&& exchange) {
  if (index != 0) {
    while (!run.stop) {
      if (!exchange()) return;
      ++run.exchanges;
    }
    return;
  }
  for (int i = 0; i < kWarmupExchanges; ++i) {
    if (!exchange()) run.state->SkipWithError("warm-up exchange failed");
    ++run.exchanges;
  }
  const uint64_t allocations_before = HeapAllocations();
  const uint64_t exchanges_before = run.exchanges;
  while (run.state->KeepRunningBatch(run.clients)) {
    if (!exchange()) {
      run.state->SkipWithError("exchange failed");
      break;
    }
    ++run.exchanges;
  }
  run.measured_allocations = HeapAllocations() - allocations_before;
  run.measured_exchanges = run.exchanges - exchanges_before;
  run.stop = true;
}

// ---- POSIX-shaped calls (the Bare and Simulation paths) ----------------------------

void PosixUdpServer() {
  const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_storage a;
  Bind(fd, Sa(&a), MakeSockaddr("0.0.0.0", kPort, &a));
  char buffer[kMessageBytes];
  sockaddr_storage from;
  for (;;) {
    socklen_t length = sizeof(from);
    const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length);
    if (n < 0) return;
    Sendto(fd, buffer, n, 0, Sa(&from), length);
  }
}

void PosixUdpClient(EchoRun& run, int index) {
  const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_storage a;
  Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", kPort, &a));
  char buffer[kMessageBytes] = "request";
  sockaddr_storage from;
  ClientLoop(run, index, [&] {
    if (Send(fd, buffer, sizeof(buffer), 0) != sizeof(buffer)) return false;
    socklen_t length = sizeof(from);
    return Recvfrom(fd, buffer, sizeof(buffer), 0, Sa(&from), &length) == sizeof(buffer);
  });
  Close(fd);
}

void PosixTcpServer() {
  const int listener = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  Bind(listener, Sa(&a), MakeSockaddr("0.0.0.0", kPort, &a));
  Listen(listener, 1024);
  for (;;) {
    const int fd = Accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    dsim::Spawn("echo", [fd] {
      char buffer[kMessageBytes];
      while (Recv(fd, buffer, sizeof(buffer), MSG_WAITALL) == sizeof(buffer)) {
        if (Write(fd, buffer, sizeof(buffer)) != sizeof(buffer)) break;
      }
      Close(fd);
    }, {.daemon = true});
  }
}

void PosixTcpClient(EchoRun& run, int index) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_storage a;
  if (Connect(fd, Sa(&a), MakeSockaddr("10.0.0.1", kPort, &a)) < 0) {
    run.state->SkipWithError("connect failed");
  }
  char buffer[kMessageBytes] = "request";
  ClientLoop(run, index, [&] {
    if (Write(fd, buffer, sizeof(buffer)) != sizeof(buffer)) return false;
    return Recv(fd, buffer, sizeof(buffer), MSG_WAITALL) == sizeof(buffer);
  });
  Close(fd);
}

// ---- The wrappers (UdpSocket, TcpListener, TcpStream) ------------------------------

void WrapperUdpServer() {
  absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", kPort);
  for (;;) {
    absl::StatusOr<UdpSocket::Datagram> request = socket->ReceiveFrom();
    if (!request.ok()) return;
    if (!socket->SendTo(request->data, request->from_ip, request->from_port).ok()) return;
  }
}

void WrapperUdpClient(EchoRun& run, int index) {
  absl::StatusOr<UdpSocket> socket = UdpSocket::Bind("0.0.0.0", 0);
  if (!socket.ok() || !socket->Connect("10.0.0.1", kPort).ok()) {
    run.state->SkipWithError("udp setup failed");
  }
  const std::string request(kMessageBytes, 'r');
  ClientLoop(run, index, [&] {
    if (!socket->Send(request).ok()) return false;
    absl::StatusOr<UdpSocket::Datagram> reply = socket->ReceiveFrom();
    return reply.ok() && reply->data.size() == kMessageBytes;
  });
}

void WrapperTcpServer() {
  absl::StatusOr<TcpListener> listener = TcpListener::Listen("0.0.0.0", kPort);
  for (;;) {
    absl::StatusOr<TcpStream> accepted = listener->Accept();
    if (!accepted.ok()) return;
    auto stream = std::make_shared<TcpStream>(*std::move(accepted));
    dsim::Spawn("echo", [stream] {
      char buffer[kMessageBytes];
      while (stream->ReadFull(buffer, sizeof(buffer)).ok()) {
        if (!stream->WriteAll(absl::string_view(buffer, sizeof(buffer))).ok()) break;
      }
    }, {.daemon = true});
  }
}

void WrapperTcpClient(EchoRun& run, int index) {
  absl::StatusOr<TcpStream> stream = TcpStream::Connect("10.0.0.1", kPort);
  if (!stream.ok()) run.state->SkipWithError("connect failed");
  char buffer[kMessageBytes] = "request";
  ClientLoop(run, index, [&] {
    if (!stream->WriteAll(absl::string_view(buffer, sizeof(buffer))).ok()) return false;
    return stream->ReadFull(buffer, sizeof(buffer)).ok();
  });
}

// ---- The three paths -------------------------------------------------------------------

void RunOnEngine(EchoRun& run, void (*server)(), void (*client)(EchoRun&, int)) {
  Scheduler scheduler;
  Network network(&scheduler, NetworkOptions{.latency = kLinkLatency});
  network.AddHost("server", {"10.0.0.1"}).Spawn("server", server, {.daemon = true});
  for (int i = 0; i < run.clients; ++i) {
    network.AddHost(absl::StrCat("client", i), {ClientAddress(i)})
        .Spawn("client", [&run, client, i] { client(run, i); });
  }
  scheduler.Run();
}

void RunOnSimulation(EchoRun& run, void (*server)(), void (*client)(EchoRun&, int)) {
  SimulationOptions options;
  options.network.latency = kLinkLatency;
  Simulation sim(options);
  sim.AddHost({.name = "server", .start = server, .addresses = {"10.0.0.1"}});
  for (int i = 0; i < run.clients; ++i) {
    sim.AddHost({.name = absl::StrCat("client", i),
                 .start = [&run, client, i] { client(run, i); },
                 .start_daemon = false,
                 .addresses = {ClientAddress(i)}});
  }
  sim.Run();
  benchmark::DoNotOptimize(sim.trace().fingerprint());
  run.trace_events = sim.trace().event_count();
  if (std::getenv("DSIM_ECHO_PRINT_TRACE") != nullptr) {  // To see what one exchange records.
    std::fputs(sim.trace().LastEventsText(120).c_str(), stderr);
  }
}

}  // namespace

void RunEcho(benchmark::State& state, EchoPath path, EchoProtocol protocol) {
  EchoRun run{.state = &state, .clients = static_cast<int>(state.range(0))};
  const bool udp = protocol == EchoProtocol::kUdp;
  void (*server)() = nullptr;
  void (*client)(EchoRun&, int) = nullptr;
  if (path == EchoPath::kWrapper) {
    server = udp ? WrapperUdpServer : WrapperTcpServer;
    client = udp ? WrapperUdpClient : WrapperTcpClient;
  } else {
    server = udp ? PosixUdpServer : PosixTcpServer;
    client = udp ? PosixUdpClient : PosixTcpClient;
  }
  if (path == EchoPath::kSimulation) {
    RunOnSimulation(run, server, client);
  } else {
    RunOnEngine(run, server, client);
  }
  const double exchanges = static_cast<double>(run.measured_exchanges);
  state.counters["exchanges"] = exchanges;
  state.counters["allocs_per_exchange"] =
      exchanges > 0 ? static_cast<double>(run.measured_allocations) / exchanges : 0;
  if (run.trace_events > 0) {
    state.counters["trace_events_per_exchange"] =
        static_cast<double>(run.trace_events) / static_cast<double>(run.exchanges);
  }
}

}  // namespace dsim::bench
