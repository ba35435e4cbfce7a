// The closed-loop echo workload of issue 10, through the three paths users take:
//   Bare:       a Scheduler and a Network, POSIX-shaped calls (sockets/socket.h).
//   Simulation: a dsim::Simulation (trace and fingerprint on, the fault model with no
//               faults configured), POSIX-shaped calls.
//   Wrapper:    a Scheduler and a Network, the UdpSocket / TcpStream wrappers.
// N client hosts (10.0.1.x) each send a 32-byte request to one server host (10.0.0.1)
// and wait for the 32-byte echo, forever; links are 1 ms one way. One "exchange" is
// one request and its reply (a UDP round trip, or a TCP request/response).
//
// Every benchmark iteration is one exchange (client 0 runs the benchmark loop in
// batches of N; the other clients keep pace, since every client waits 2 ms per
// exchange). Counters: `allocs_per_exchange` (heap allocations counted by this
// binary's operator new, in steady state), `exchanges` (measured exchanges).
//
// DSIM_BENCH_ITERATIONS=n fixes the iteration count (bench/callgrind_exchanges.sh
// runs two counts under callgrind and divides the instruction difference).
#ifndef DSIM_BENCH_ECHO_PATHS_H_
#define DSIM_BENCH_ECHO_PATHS_H_

#include <cstdint>
#include <cstdlib>

#include <benchmark/benchmark.h>

namespace dsim::bench {

enum class EchoPath { kBare, kSimulation, kWrapper };
enum class EchoProtocol { kUdp, kTcp };

// Runs the echo with state.range(0) clients.
void RunEcho(benchmark::State& state, EchoPath path, EchoProtocol protocol);

// Heap allocations made by this process so far (operator new calls).
uint64_t HeapAllocations();

// ->Apply(FixedIterationsFromEnv): honours DSIM_BENCH_ITERATIONS (for callgrind runs).
inline void FixedIterationsFromEnv(benchmark::internal::Benchmark* benchmark) {
  if (const char* n = std::getenv("DSIM_BENCH_ITERATIONS")) {
    benchmark->Iterations(std::strtoll(n, nullptr, 10));
  }
}

}  // namespace dsim::bench

#endif  // DSIM_BENCH_ECHO_PATHS_H_
