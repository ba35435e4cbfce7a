// The fault model and host lifecycle at the socket level: every fault kind of
// sim/faults.h, partitions, hold/release with the in-flight view, reset injection,
// buggify, and what crash, restart and pause look like to a peer.
#include "sim/faults.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "sim/simulation.h"
#include "sockets/socket.h"
#include "tests/testing/sim_net.h"

namespace dsim {
namespace {

using testing::ConnectTo;
using testing::ListenOn;
using testing::ReadAll;
using testing::UdpBound;
using testing::UdpReceive;
using testing::UdpSend;
using testing::WriteAll;

absl::Duration Ms(double ms) { return absl::Microseconds(ms * 1000); }

// Counts annotations by category.
class AnnotationCounter final : public SchedulerListener {
 public:
  void OnAnnotation(const Annotation& a) override { ++counts_[std::string(a.category)]; }
  int count(const std::string& category) const {
    auto it = counts_.find(category);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, int> counts_;
};

// A simulation with a server (10.0.0.1) and a client (10.0.0.2) whose start functions do
// nothing: tests spawn on them.
// `annotations` counts every annotation as a listener (which sends packets through the
// network's general paths), or, with `fault_annotations_only`, only "fault.*" ones as
// a prefix listener (packets then take the short paths, as in most runs).
struct World {
  explicit World(SimulationOptions options = {}, bool fault_annotations_only = false)
      : sim(std::move(options)),
        server(sim.AddHost({.name = "server", .start = [] {}, .addresses = {"10.0.0.1"}})),
        client(sim.AddHost({.name = "client", .start = [] {}, .addresses = {"10.0.0.2"}})) {
    if (fault_annotations_only) {
      sim.scheduler().AddAnnotationListener(&annotations, "fault.");
    } else {
      sim.scheduler().AddListener(&annotations);
    }
  }
  ~World() { sim.scheduler().RemoveListener(&annotations); }
  Simulation sim;
  Host& server;
  Host& client;
  AnnotationCounter annotations;
};

SimulationOptions WithLink(LinkFaults link, uint64_t seed = 1) {
  SimulationOptions options{.seed = seed};
  options.faults.link = std::move(link);
  return options;
}

// ---- Latency distributions ------------------------------------------------------------

// Draws `n` samples of a model inside a task (the strategy draws them).
std::vector<absl::Duration> Samples(const LatencyModel& model, int n) {
  Simulation sim(SimulationOptions{.seed = 5});
  std::vector<absl::Duration> out;
  sim.Spawn("sampler", [&] {
    for (int i = 0; i < n; ++i) out.push_back(model.Sample(sim.scheduler()));
  });
  EXPECT_TRUE(sim.Run().ok());
  return out;
}

double MeanMs(const std::vector<absl::Duration>& samples) {
  double sum = 0;
  for (absl::Duration d : samples) sum += absl::ToDoubleMilliseconds(d);
  return sum / samples.size();
}

// The Network skips Decide when the model's published plain() covers a packet; that is
// sound only when the answer is exactly Decide's fate (one delivery, in order, no delay)
// and it covers a packet only when Decide would draw nothing: no fault active and
// buggify off, or faults stopped.
TEST(Latency, PlainLatencyIsDecidesFateAndOnlyWhenNoFaultIsActive) {
  Scheduler scheduler;
  Network network(&scheduler, NetworkOptions{.latency = Ms(3), .loopback_latency = Ms(0.02)});
  Packet between_hosts;
  between_hosts.source_host = 1;
  between_hosts.destination_host = 2;
  Packet loopback;
  loopback.source_host = loopback.destination_host = 1;
  FaultLinkModel plain(&network, FaultOptions{});
  for (const Packet* packet : {&between_hosts, &loopback}) {
    int64_t latency_ns = -1;
    ASSERT_TRUE(plain.PlainLatencyNanos(*packet, /*buggify_enabled=*/false, &latency_ns));
    const PacketFate fate = plain.Decide(*packet, scheduler);
    ASSERT_EQ(fate.deliveries.size(), 1u);
    EXPECT_EQ(latency_ns, absl::ToInt64Nanoseconds(fate.deliveries[0]));
    EXPECT_FALSE(fate.unordered);
    EXPECT_EQ(fate.connection_delay, absl::ZeroDuration());
  }
  int64_t latency_ns = -1;
  ASSERT_TRUE(plain.PlainLatencyNanos(between_hosts, false, &latency_ns));
  EXPECT_EQ(latency_ns, 3000000);
  // Buggify may multiply a latency: Decide draws for it, so nothing is plain.
  EXPECT_FALSE(plain.PlainLatencyNanos(between_hosts, /*buggify_enabled=*/true, &latency_ns));

  FaultOptions lossy;
  lossy.link.datagram_loss_probability = 0.5;
  FaultLinkModel faulty(&network, lossy);
  EXPECT_FALSE(faulty.PlainLatencyNanos(between_hosts, false, &latency_ns));
  faulty.StopFaults();  // The liveness phase: base latency only, nothing drawn.
  EXPECT_TRUE(faulty.PlainLatencyNanos(between_hosts, false, &latency_ns));
  EXPECT_EQ(latency_ns, 3000000);
  EXPECT_TRUE(faulty.PlainLatencyNanos(between_hosts, /*buggify_enabled=*/true, &latency_ns));

  // Faults set at run time end plainness; setting them back to none restores it.
  FaultLinkModel later(&network, FaultOptions{});
  later.SetDefaultLinkFaults(LinkFaults{.latency = LatencyModel::Uniform(Ms(1), Ms(2))});
  EXPECT_FALSE(later.PlainLatencyNanos(between_hosts, false, &latency_ns));
  later.SetDefaultLinkFaults(LinkFaults{.latency = LatencyModel::Fixed(Ms(5))});
  ASSERT_TRUE(later.PlainLatencyNanos(between_hosts, false, &latency_ns));
  EXPECT_EQ(latency_ns, 5000000);
  later.SetLinkFaults(1, 2, LinkFaults{.segment_loss_probability = 0.5});
  EXPECT_FALSE(later.PlainLatencyNanos(loopback, false, &latency_ns));
}

TEST(Latency, FixedIsAlwaysTheSame) {
  for (absl::Duration d : Samples(LatencyModel::Fixed(Ms(3)), 100)) EXPECT_EQ(d, Ms(3));
}

TEST(Latency, UniformStaysInItsRangeAndAveragesItsMidpoint) {
  const auto samples = Samples(LatencyModel::Uniform(Ms(1), Ms(5)), 20000);
  for (absl::Duration d : samples) {
    ASSERT_GE(d, Ms(1));
    ASSERT_LE(d, Ms(5));
  }
  EXPECT_NEAR(MeanMs(samples), 3.0, 0.05);
}

TEST(Latency, ExponentialHasItsFloorAndMean) {
  const auto samples = Samples(LatencyModel::Exponential(Ms(1), Ms(2)), 20000);
  for (absl::Duration d : samples) ASSERT_GE(d, Ms(1));
  EXPECT_NEAR(MeanMs(samples), 3.0, 0.1);
}

TEST(Latency, RareTailAddsLongDelaysWithItsProbability) {
  const auto samples =
      Samples(LatencyModel::Fixed(Ms(1)).WithTail(0.1, Ms(50), Ms(100)), 20000);
  int tail = 0;
  for (absl::Duration d : samples) {
    ASSERT_TRUE(d == Ms(1) || (d >= Ms(51) && d <= Ms(101))) << d;
    tail += d > Ms(1);
  }
  EXPECT_NEAR(tail / 20000.0, 0.1, 0.01);
}

TEST(Latency, JitterSpreadsSymmetricallyWithinItsBound) {
  const auto samples = Samples(LatencyModel::Fixed(Ms(1)).WithJitter(Ms(0.2)), 20000);
  for (absl::Duration d : samples) {
    ASSERT_GE(d, Ms(0.8));
    ASSERT_LE(d, Ms(1.2));
  }
  EXPECT_NEAR(MeanMs(samples), 1.0, 0.01);
  EXPECT_NE(*std::min_element(samples.begin(), samples.end()),
            *std::max_element(samples.begin(), samples.end()));
}

// A task on the server that receives datagrams on port 9000, each holding its send time
// (RFC 3339), for `listen` and records every datagram's delay in `delays`.
void SpawnDelayReceiver(World& w, absl::Duration listen, std::vector<absl::Duration>* delays) {
  w.server.Spawn("receiver", [listen, delays] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + listen);
    while (auto m = UdpReceive(fd)) {
      absl::Time sent;
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, *m, &sent, nullptr));
      delays->push_back(dsim::Now() - sent);
    }
  });
}

TEST(Latency, PacketsBetweenHostsFollowTheModel) {
  World w(WithLink({.latency = LatencyModel::Uniform(Ms(2), Ms(4))}));
  std::vector<absl::Duration> delays;
  SpawnDelayReceiver(w, absl::Seconds(1), &delays);
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    for (int i = 0; i < 200; ++i) {
      UdpSend(fd, "10.0.0.1", 9000, absl::FormatTime(absl::RFC3339_full, dsim::Now(), absl::UTCTimeZone()));
      dsim::SleepFor(Ms(0.1));
    }
  });
  ASSERT_TRUE(w.sim.Run().ok());
  ASSERT_EQ(delays.size(), 200u);
  for (absl::Duration d : delays) {
    EXPECT_GE(d, Ms(2));
    EXPECT_LE(d, Ms(4) + absl::Microseconds(1));  // FIFO may push a packet 1 ns later.
  }
}

// ---- Bandwidth -------------------------------------------------------------------------

TEST(Bandwidth, PacketsWaitForTheLinkAndTakeSizeOverBandwidthToSerialize) {
  // 972-byte datagrams are 1000 bytes on the wire: 1 ms each at 1 MB/s.
  World w(WithLink({.latency = LatencyModel::Fixed(Ms(1)), .bandwidth_bytes_per_second = 1'000'000}));
  std::vector<absl::Time> arrivals;
  absl::Time sent;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(1));
    while (UdpReceive(fd)) arrivals.push_back(dsim::Now());
  });
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    dsim::SleepFor(Ms(1));
    sent = dsim::Now();
    for (int i = 0; i < 10; ++i) UdpSend(fd, "10.0.0.1", 9000, std::string(972, 'x'));
  });
  ASSERT_TRUE(w.sim.Run().ok());
  ASSERT_EQ(arrivals.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    // Serialized one after another, then 1 ms of propagation.
    EXPECT_EQ(arrivals[i] - sent, Ms(1) * (i + 1) + Ms(1)) << i;
  }
}

// ---- Datagram loss, duplication, reordering -------------------------------------------

// Sends `n` numbered datagrams client -> server, 10 us apart; returns what arrived.
std::vector<int> SendNumbered(World& w, int n) {
  std::vector<int> received;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(5));
    while (auto m = UdpReceive(fd)) received.push_back(std::stoi(*m));
  });
  w.client.Spawn("sender", [&, n] {
    const int fd = UdpBound("0.0.0.0", 0);
    for (int i = 0; i < n; ++i) {
      UdpSend(fd, "10.0.0.1", 9000, std::to_string(i));
      dsim::SleepFor(absl::Microseconds(10));
    }
  });
  EXPECT_TRUE(w.sim.Run().ok());
  return received;
}

TEST(Datagrams, AreLostWithTheLossProbabilityAndEachLossIsAnnotated) {
  World w(WithLink({.datagram_loss_probability = 0.25}));
  const std::vector<int> received = SendNumbered(w, 4000);
  EXPECT_NEAR(received.size() / 4000.0, 0.75, 0.03);
  EXPECT_EQ(w.annotations.count("fault.drop"), 4000 - static_cast<int>(received.size()));
  EXPECT_TRUE(std::is_sorted(received.begin(), received.end()));
  const NetworkStats stats = w.sim.network().stats();
  EXPECT_EQ(stats.packets_sent, 4000u);
  EXPECT_EQ(stats.packets_delivered, received.size());
  EXPECT_EQ(stats.packets_dropped, 4000u - received.size());
  EXPECT_EQ(stats.packets_in_flight, 0u);
}

TEST(Datagrams, AreDuplicatedWithTheDuplicateProbability) {
  World w(WithLink({.datagram_duplicate_probability = 0.25}));
  const std::vector<int> received = SendNumbered(w, 4000);
  EXPECT_NEAR(received.size() / 4000.0, 1.25, 0.03);
  EXPECT_EQ(w.annotations.count("fault.duplicate"), static_cast<int>(received.size()) - 4000);
  // Each copy counts as a packet sent and delivered.
  const NetworkStats stats = w.sim.network().stats();
  EXPECT_EQ(stats.packets_sent, received.size());
  EXPECT_EQ(stats.packets_delivered, received.size());
  EXPECT_EQ(stats.packets_dropped, 0u);
  EXPECT_EQ(stats.packets_in_flight, 0u);
}

TEST(Datagrams, AreReorderedWhenLaterOnesOvertakeADelayedOne) {
  World w(WithLink({.datagram_reorder_probability = 0.2,
                    .datagram_reorder_delay_max = absl::Milliseconds(1)}));
  std::vector<int> received = SendNumbered(w, 2000);
  ASSERT_EQ(received.size(), 2000u);  // Nothing lost...
  EXPECT_FALSE(std::is_sorted(received.begin(), received.end()));  // ... but out of order.
  std::sort(received.begin(), received.end());
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(received[i], i);
  EXPECT_GT(w.annotations.count("fault.reorder"), 300);
}

TEST(Datagrams, PerLinkOverridesApplyOnlyToTheirLink) {
  SimulationOptions options;
  options.faults.overrides.push_back(
      {.from = "client", .to = "server", .link = {.datagram_loss_probability = 1.0}});
  World w(options);
  Host& other = w.sim.AddHost({.name = "other", .start = [] {}, .addresses = {"10.0.0.3"}});
  int from_client = 0, from_other = 0;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(1));
    while (auto m = UdpReceive(fd)) (*m == "client" ? from_client : from_other)++;
  });
  w.client.Spawn("a", [] { UdpSend(UdpBound("0.0.0.0", 0), "10.0.0.1", 9000, "client"); });
  other.Spawn("b", [] { UdpSend(UdpBound("0.0.0.0", 0), "10.0.0.1", 9000, "other"); });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(from_client, 0);
  EXPECT_EQ(from_other, 1);
}

// One datagram client -> server and one other -> server; returns their one-way delays.
std::pair<absl::Duration, absl::Duration> DelaysFromClientAndOther(World& w) {
  Host& other = w.sim.AddHost({.name = "other", .start = [] {}, .addresses = {"10.0.0.3"}});
  absl::Duration from_client = absl::InfiniteDuration(), from_other = absl::InfiniteDuration();
  const absl::Time start = w.sim.scheduler().Now();
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(1));
    while (auto m = UdpReceive(fd)) (*m == "client" ? from_client : from_other) = dsim::Now() - start;
  });
  w.client.Spawn("a", [] { UdpSend(UdpBound("0.0.0.0", 0), "10.0.0.1", 9000, "client"); });
  other.Spawn("b", [] { UdpSend(UdpBound("0.0.0.0", 0), "10.0.0.1", 9000, "other"); });
  EXPECT_TRUE(w.sim.Run().ok());
  return {from_client, from_other};
}

// A link whose only "fault" is its own fixed latency is still that link's latency when
// no other link has a fault (the no-fault fast path must not give every link the
// default latency).
TEST(Latency, PerLinkFixedLatencyOverridesApplyWhenNoLinkHasAFault) {
  SimulationOptions options = WithLink({.latency = LatencyModel::Fixed(Ms(2))});
  options.faults.overrides.push_back(
      {.from = "client", .to = "server", .link = {.latency = LatencyModel::Fixed(Ms(40))}});
  for (bool short_paths : {false, true}) {  // Through Decide, and the network's short path.
    World w(options, short_paths);
    const auto [from_client, from_other] = DelaysFromClientAndOther(w);
    EXPECT_EQ(from_client, Ms(40)) << short_paths;
    EXPECT_EQ(from_other, Ms(2)) << short_paths;
  }
}

// An override without a latency model takes NetworkOptions::latency (LinkFaults::latency
// unset), not the default link's model, also on the fast path.
TEST(Latency, OverrideWithoutALatencyTakesTheNetworksLatency) {
  SimulationOptions options = WithLink({.latency = LatencyModel::Fixed(Ms(2))});
  options.network.latency = Ms(7);
  options.faults.overrides.push_back({.from = "client", .to = "server", .link = {}});
  for (bool short_paths : {false, true}) {
    World w(options, short_paths);
    const auto [from_client, from_other] = DelaysFromClientAndOther(w);
    EXPECT_EQ(from_client, Ms(7)) << short_paths;
    EXPECT_EQ(from_other, Ms(2)) << short_paths;
  }
}

// SetLinkFaults at run time with only a new fixed latency takes effect on the fast path.
TEST(Latency, SetLinkFaultsWithOnlyAFixedLatencyChangesThatLink) {
  for (bool short_paths : {false, true}) {
    World w({}, short_paths);
    FaultLinkModel* model = w.sim.fault_model();
    ASSERT_NE(model, nullptr);
    model->SetLinkFaults(w.client.network_host()->id(), w.server.network_host()->id(),
                         LinkFaults{.latency = LatencyModel::Fixed(Ms(30))});
    const auto [from_client, from_other] = DelaysFromClientAndOther(w);
    EXPECT_EQ(from_client, Ms(30)) << short_paths;
    EXPECT_EQ(from_other, w.sim.network().options().latency) << short_paths;
  }
}

// ---- Streams stay reliable ---------------------------------------------------------

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

// Streams `data` client -> server; returns what the server read to EOF and the time.
std::string Stream(World& w, const std::string& data, absl::Duration* took = nullptr) {
  std::string received;
  absl::Time done;
  w.server.Spawn("reader", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    const int fd = Accept(listener, nullptr, nullptr);
    received = ReadAll(fd);
    done = dsim::Now();
  });
  w.client.Spawn("writer", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(WriteAll(fd, data), data.size());
    Close(fd);
  });
  const RunResult result = w.sim.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  if (took != nullptr) *took = done - Scheduler::Epoch();
  return received;
}

TEST(Streams, LostSegmentsShowUpAsDelayNeverAsMissingBytes) {
  const std::string data = Pattern(300'000);
  World clean;
  absl::Duration clean_time;
  ASSERT_EQ(Stream(clean, data, &clean_time), data);
  World lossy(WithLink({.segment_loss_probability = 0.2}));
  absl::Duration lossy_time;
  EXPECT_EQ(Stream(lossy, data, &lossy_time), data);
  EXPECT_GT(lossy.annotations.count("fault.retransmit"), 0);
  EXPECT_GT(lossy_time, clean_time + absl::Milliseconds(200));
}

// A "lost" segment is a hole in its own connection's receive window: later segments
// of that connection wait behind it, other connections between the same hosts do not.
TEST(Streams, LostSegmentDelaysOnlyLaterSegmentsOfItsOwnConnection) {
  World w(WithLink({.latency = LatencyModel::Fixed(Ms(1))}, /*seed=*/4));
  std::string first;
  absl::Duration first_done, second_connected;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    const int a = Accept(listener, nullptr, nullptr);
    const int b = Accept(listener, nullptr, nullptr);
    Close(b);
    first = ReadAll(a);
    first_done = dsim::Now() - Scheduler::Epoch();
  });
  w.client.Spawn("client", [&] {
    const int a = ConnectTo("10.0.0.1", 80);
    dsim::SleepFor(Ms(10));
    LinkFaults lossy{.latency = LatencyModel::Fixed(Ms(1)),
                     .segment_loss_probability = 0.999, .segment_losses_max = 1};
    w.sim.SetLinkFaults(w.client.id(), w.server.id(), lossy);
    Write(a, "x", 1);  // Lost once: arrives 200 ms late.
    w.sim.SetLinkFaults(w.client.id(), w.server.id(), {.latency = LatencyModel::Fixed(Ms(1))});
    Write(a, "y", 1);  // Waits behind "x".
    const absl::Time start = dsim::Now();
    const int b = ConnectTo("10.0.0.1", 80);  // Another connection: not held back.
    second_connected = dsim::Now() - start;
    Close(b);
    Close(a);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(w.annotations.count("fault.retransmit"), 1);
  EXPECT_EQ(first, "xy");
  EXPECT_GE(first_done, absl::Milliseconds(210));
  EXPECT_LT(second_connected, Ms(5)) << "the new connection's SYN waited behind the hole";
}

// A lost pure ACK holds nothing back, and a later segment of its connection makes it
// redundant: it is dropped on arrival instead of being "retransmitted".
TEST(Streams, LostPureAckHoldsNothingBackAndALaterSegmentSupersedesIt) {
  World w(WithLink({.latency = LatencyModel::Fixed(Ms(1))}, /*seed=*/4));
  absl::Duration reply_arrived;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    const int fd = Accept(listener, nullptr, nullptr);
    Write(fd, "ping", 4);
    char buffer[8];
    EXPECT_EQ(Read(fd, buffer, sizeof(buffer)), 4);
    reply_arrived = dsim::Now() - Scheduler::Epoch();
    Close(fd);
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    LinkFaults lossy{.latency = LatencyModel::Fixed(Ms(1)),
                     .segment_loss_probability = 0.999, .segment_losses_max = 1};
    w.sim.SetLinkFaults(w.client.id(), w.server.id(), lossy);
    char buffer[8];
    EXPECT_EQ(Read(fd, buffer, sizeof(buffer)), 4);
    dsim::SleepFor(Ms(60));  // The delayed ACK (40 ms) goes out, and is lost.
    w.sim.SetLinkFaults(w.client.id(), w.server.id(), {.latency = LatencyModel::Fixed(Ms(1))});
    Write(fd, "pong", 4);  // Not held behind the lost ACK.
    ReadAll(fd);
    Close(fd);
    dsim::SleepFor(absl::Seconds(1));  // Until the lost ACK would have arrived.
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(w.annotations.count("fault.retransmit"), 1);
  EXPECT_EQ(w.annotations.count("net.drop.superseded_ack"), 1);
  EXPECT_LT(reply_arrived, absl::Milliseconds(100));
}

TEST(Streams, JitterAndBandwidthKeepTheStreamInOrder) {
  const std::string data = Pattern(200'000);
  World w(WithLink({.latency = LatencyModel::Exponential(Ms(0.1), Ms(1)).WithJitter(Ms(0.5)),
                    .bandwidth_bytes_per_second = 5'000'000}));
  EXPECT_EQ(Stream(w, data), data);
}

// ---- Reset injection --------------------------------------------------------------------

TEST(Reset, InjectedResetGivesBothEndsEconnreset) {
  World w;
  int server_error = 0, client_error = 0;
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    server_error = errno;
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    client_error = errno;
  });
  int reset = 0;
  w.sim.Spawn("chaos", [&] {
    dsim::SleepFor(Ms(10));
    reset = w.sim.InjectReset(w.client.id(), w.server.id());
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(reset, 2);
  EXPECT_EQ(server_error, ECONNRESET);
  EXPECT_EQ(client_error, ECONNRESET);
  EXPECT_EQ(w.annotations.count("fault.reset"), 1);
}

// ---- Partitions ---------------------------------------------------------------------

TEST(Partition, TwoWayStallsAnEstablishedStreamWhichResumesIntactAfterHeal) {
  World w;
  std::string before, during_partition, after_heal;
  std::vector<InFlightMessage> held;
  PartitionId cut = 0;
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    char buffer[64];
    ssize_t n = Read(fd, buffer, sizeof(buffer));
    before.assign(buffer, std::max<ssize_t>(n, 0));
    dsim::SleepFor(Ms(20));  // The partition is up now.
    SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(500));
    EXPECT_EQ(Read(fd, buffer, sizeof(buffer)), -1);  // Stalled, not broken.
    EXPECT_EQ(errno, EAGAIN);
    SetReadDeadline(fd, absl::InfiniteFuture());
    after_heal = ReadAll(fd);
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    WriteAll(fd, "hello");
    dsim::SleepFor(Ms(20));
    EXPECT_EQ(WriteAll(fd, "during the partition"), 20u);
    dsim::SleepFor(Ms(1));
    held = w.sim.InFlight(w.client.id(), w.server.id());
    Close(fd);
  });
  w.sim.Spawn("chaos", [&] {
    dsim::SleepFor(Ms(10));
    cut = w.sim.Partition({w.client.id()}, {w.server.id()});
    dsim::SleepFor(absl::Seconds(2));
    EXPECT_TRUE(w.sim.Heal(cut));
    EXPECT_FALSE(w.sim.Heal(cut));
  });
  const RunResult result = w.sim.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(before, "hello");
  EXPECT_EQ(after_heal, "during the partition");
  ASSERT_FALSE(held.empty());
  EXPECT_TRUE(held.front().held);
  EXPECT_EQ(held.front().payload_bytes, 20u);
  EXPECT_EQ(held.front().deliver_at, absl::InfiniteFuture());
  EXPECT_EQ(w.annotations.count("fault.partition"), 1);
}

TEST(Partition, OneWayBlocksOnlyItsDirection) {
  World w;
  std::string at_client, at_server;
  absl::Time server_got;
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    dsim::SleepFor(Ms(20));
    WriteAll(fd, "down");
    char buffer[16];
    const ssize_t n = Read(fd, buffer, sizeof(buffer));
    at_server.assign(buffer, std::max<ssize_t>(n, 0));
    server_got = dsim::Now();
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    dsim::SleepFor(Ms(20));
    WriteAll(fd, "up");
    char buffer[16];
    const ssize_t n = Read(fd, buffer, sizeof(buffer));
    at_client.assign(buffer, std::max<ssize_t>(n, 0));
    dsim::SleepFor(absl::Seconds(2));
  });
  w.sim.Spawn("chaos", [&] {
    dsim::SleepFor(Ms(10));
    const PartitionId cut = w.sim.Partition({w.client.id()}, {w.server.id()}, /*one_way=*/true);
    dsim::SleepFor(absl::Seconds(1));
    w.sim.Heal(cut);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(at_client, "down");  // server -> client flows.
  EXPECT_EQ(at_server, "up");    // client -> server waited for the heal.
  EXPECT_GE(server_got - Scheduler::Epoch(), absl::Seconds(1) + Ms(10));
}

TEST(Partition, DropsDatagramsInsteadOfHoldingThem) {
  World w;
  std::vector<std::string> received;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(3));
    while (auto m = UdpReceive(fd)) received.push_back(*m);
  });
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    dsim::SleepFor(Ms(20));
    UdpSend(fd, "10.0.0.1", 9000, "lost");
    dsim::SleepFor(absl::Seconds(2));
    UdpSend(fd, "10.0.0.1", 9000, "after heal");
  });
  w.sim.Spawn("chaos", [&] {
    dsim::SleepFor(Ms(10));
    w.sim.Partition({w.server.id()}, {w.client.id()});
    dsim::SleepFor(absl::Seconds(1));
    w.sim.HealAll();
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(received, std::vector<std::string>{"after heal"});
}

TEST(Partition, StalledStreamEndsAtTheUsersDeadlineAndStaysUsable) {
  World w;
  std::string received;
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    SetReadDeadline(fd, dsim::Now() + absl::Milliseconds(200));
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    SetReadDeadline(fd, absl::InfiniteFuture());
    received = ReadAll(fd);
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    const PartitionId cut = w.sim.Partition({w.client.id()}, {w.server.id()});
    WriteAll(fd, "late but whole");
    dsim::SleepFor(absl::Seconds(1));
    w.sim.Heal(cut);
    Close(fd);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(received, "late but whole");
}

// ---- Hold, Release, InFlight -----------------------------------------------------------

TEST(Hold, HoldsEveryMessageShowsThemInFlightAndReleasesThemInOrder) {
  World w(WithLink({.latency = LatencyModel::Fixed(Ms(1))}));
  std::vector<std::string> received;
  std::vector<InFlightMessage> flying, held;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(2));
    while (auto m = UdpReceive(fd)) received.push_back(*m + "@" + absl::FormatDuration(dsim::Now() - Scheduler::Epoch()));
  });
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    UdpSend(fd, "10.0.0.1", 9000, "a");
    flying = w.sim.InFlight(w.client.id(), w.server.id());
    dsim::SleepFor(Ms(5));
    w.sim.Hold(w.client.id(), w.server.id());
    UdpSend(fd, "10.0.0.1", 9000, "bb");
    UdpSend(fd, "10.0.0.1", 9000, "ccc");
    dsim::SleepFor(Ms(100));
    held = w.sim.InFlight(w.client.id(), w.server.id());
    EXPECT_TRUE(w.sim.Release(w.client.id(), w.server.id()));
    EXPECT_FALSE(w.sim.Release(w.client.id(), w.server.id()));
  });
  ASSERT_TRUE(w.sim.Run().ok());
  ASSERT_EQ(flying.size(), 1u);
  EXPECT_FALSE(flying[0].held);
  EXPECT_EQ(flying[0].payload_bytes, 1u);
  EXPECT_EQ(flying[0].kind, Packet::Kind::kUdp);
  EXPECT_EQ(flying[0].deliver_at, Scheduler::Epoch() + Ms(1));
  ASSERT_EQ(held.size(), 2u);
  EXPECT_TRUE(held[0].held && held[1].held);
  EXPECT_EQ(held[0].payload_bytes, 2u);
  EXPECT_EQ(held[1].payload_bytes, 3u);
  EXPECT_EQ(held[0].destination.port, 9000);
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0], "a@1ms");
  EXPECT_TRUE(absl::StartsWith(received[1], "bb@105.")) << received[1];
  EXPECT_TRUE(absl::StartsWith(received[2], "ccc@105.")) << received[2];
}

// ---- Buggify -------------------------------------------------------------------------

TEST(Buggify, ShortReadsAndWritesKeepTheStreamIntact) {
  SimulationOptions options;
  options.faults.buggify = true;
  World w(options);
  const std::string data = Pattern(100'000);
  int short_writes = 0, short_reads = 0;
  std::string received;
  w.server.Spawn("reader", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    char buffer[4096];
    for (;;) {
      const ssize_t n = Read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      ASSERT_GE(n, 1);
      if (n < static_cast<ssize_t>(sizeof(buffer)) && received.size() + n < data.size()) ++short_reads;
      received.append(buffer, n);
    }
  });
  w.client.Spawn("writer", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    size_t done = 0;
    while (done < data.size()) {
      const size_t want = std::min<size_t>(8192, data.size() - done);
      const ssize_t n = Write(fd, data.data() + done, want);
      ASSERT_GE(n, 1);
      if (static_cast<size_t>(n) < want) ++short_writes;
      done += n;
    }
    Close(fd);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(received, data);
  EXPECT_GT(short_writes, 0);
  EXPECT_GT(short_reads, 0);
  EXPECT_GT(w.annotations.count("fault.buggify.short_write"), 0);
}

// The network skips the fault model while it is plain; buggify turned on during a run
// must end that at once (latencies are multiplied again), and turned off, restore it.
TEST(Buggify, DelaysFollowSetBuggifyDuringARun) {
  SimulationOptions options;
  options.network.latency = Ms(1);
  options.faults.buggify_delay_probability = 1.0;
  options.faults.buggify_short_io_probability = 0;
  options.faults.buggify_delay_factor = 10;
  World w(options, /*fault_annotations_only=*/true);
  std::vector<absl::Duration> delays;
  SpawnDelayReceiver(w, absl::Seconds(5), &delays);
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    auto send = [&] {
      UdpSend(fd, "10.0.0.1", 9000,
              absl::FormatTime(absl::RFC3339_full, dsim::Now(), absl::UTCTimeZone()));
      dsim::SleepFor(Ms(50));
    };
    send();
    w.sim.SetBuggify(true);
    send();
    w.sim.SetBuggify(false);
    send();
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(delays, (std::vector<absl::Duration>{Ms(1), Ms(10), Ms(1)}));
  EXPECT_EQ(w.annotations.count("fault.buggify.delay"), 1);
}

// The short paths write the trace's send and delivery records themselves when the trace
// alone listens; a listener sends every packet through the general paths. Both must
// record the same: IPv4 and IPv6, loopback, UDP and TCP, over many trace blocks.
int FamilyOf(const char* ip) { return std::string(ip).find(':') != std::string::npos ? AF_INET6 : AF_INET; }

int BoundSocket(const char* ip, uint16_t port, int type) {
  const int fd = Socket(FamilyOf(ip), type, 0);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  EXPECT_EQ(Bind(fd, reinterpret_cast<sockaddr*>(&a), l), 0) << ip;
  return fd;
}

void UdpEchoOn(const char* ip, uint16_t port) {
  const int fd = BoundSocket(ip, port, SOCK_DGRAM);
  SetReadDeadline(fd, dsim::Now() + absl::Seconds(1));
  sockaddr_storage from;
  socklen_t length = sizeof(from);
  char buffer[64];
  ssize_t n;
  while ((n = Recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from),
                       &length)) > 0) {
    Sendto(fd, buffer, n, 0, reinterpret_cast<sockaddr*>(&from), length);
    length = sizeof(from);
  }
}

std::pair<uint64_t, std::string> TracedTraffic(bool listener) {
  SimulationOptions options{.seed = 3};
  options.trace.keep_all_events = true;
  Simulation sim(options);
  SchedulerListener quiet;
  if (listener) sim.scheduler().AddListener(&quiet);
  sim.AddHost({.name = "server", .start = [] {
    dsim::Spawn("udp4", [] { UdpEchoOn("10.0.0.1", 90); });
    dsim::Spawn("udp6", [] { UdpEchoOn("fd00::1", 90); });
    const int listener_fd = BoundSocket("::", 80, SOCK_STREAM);
    Listen(listener_fd, 8);
    for (int i = 0; i < 2; ++i) {
      const int conn = Accept(listener_fd, nullptr, nullptr);
      WriteAll(conn, ReadAll(conn));
      Close(conn);
    }
  }, .addresses = {"10.0.0.1", "fd00::1"}});
  sim.AddHost({.name = "client", .start = [] {
    for (const char* server : {"10.0.0.1", "fd00::1"}) {
      const int udp = BoundSocket(FamilyOf(server) == AF_INET6 ? "::" : "0.0.0.0", 0, SOCK_DGRAM);
      for (int i = 0; i < 40; ++i) {
        sockaddr_storage a;
        const socklen_t l = MakeSockaddr(server, 90, &a);
        const std::string ping = absl::StrCat("ping ", i);
        Sendto(udp, ping.data(), ping.size(), 0, reinterpret_cast<sockaddr*>(&a), l);
        UdpReceive(udp);
      }
      const int fd = Socket(FamilyOf(server), SOCK_STREAM, 0);
      sockaddr_storage a;
      const socklen_t l = MakeSockaddr(server, 80, &a);
      EXPECT_EQ(Connect(fd, reinterpret_cast<sockaddr*>(&a), l), 0);
      WriteAll(fd, std::string(200000, 'x'));
      Shutdown(fd, SHUT_WR);
      ReadAll(fd);
      Close(fd);
    }
    for (const char* self : {"127.0.0.1", "::1"}) {  // Loopback: datagrams to itself.
      const int fd = BoundSocket(self, 95, SOCK_DGRAM);
      sockaddr_storage a;
      const socklen_t l = MakeSockaddr(self, 95, &a);
      Sendto(fd, "self", 4, 0, reinterpret_cast<sockaddr*>(&a), l);
      UdpReceive(fd);
    }
  }, .start_daemon = false, .addresses = {"10.0.0.2", "fd00::2"}});
  EXPECT_TRUE(sim.RunFor(absl::Seconds(10)).ok());
  if (listener) sim.scheduler().RemoveListener(&quiet);
  return {sim.trace().fingerprint(), sim.trace().ToText()};
}

// Delays the first packet it decides by a "lost" segment's hole, then has nothing more
// to decide (plain), as a fault model does after StopFaults.
class LoseFirstThenPlainModel final : public LinkModel {
 public:
  PacketFate Decide(const Packet&, Scheduler&) override {
    PacketFate fate = PacketFate::DeliverAfter(absl::Microseconds(100));
    fate.connection_delay = absl::Milliseconds(200);
    set_plain(Plain{kPlainWithoutBuggify | kPlainWithBuggify, /*latency_ns=*/100000,
                    /*loopback_latency_ns=*/10000});
    return fate;
  }
};

// Records the sequence number of every packet that arrives.
class SequenceRecorder final : public PacketReceiver {
 public:
  SequenceRecorder(Network* network, std::vector<uint64_t>* arrived)
      : network_(network), arrived_(arrived) {}
  void Receive(Packet* packet) override {
    arrived_->push_back(packet->sequence);
    network_->FreePacket(packet);
  }

 private:
  Network* network_;
  std::vector<uint64_t>* arrived_;
};

// A connection's hole outlives the fault that made it: once the model is plain again,
// the connection's later segments still wait behind its "lost" one (the short path is
// closed while any hole is open).
TEST(ShortPaths, AConnectionsLaterSegmentsWaitBehindItsHoleAfterTheModelTurnsPlain) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  NetworkOptions options;
  options.link_model = std::make_shared<LoseFirstThenPlainModel>();
  Network network(&scheduler, options);
  NetworkHost& a = network.AddHost("a", {"10.0.0.1"});
  NetworkHost& b = network.AddHost("b", {"10.0.0.2"});
  std::vector<uint64_t> arrived;
  b.set_stack(std::make_unique<SequenceRecorder>(&network, &arrived));
  const IpAddress to = *IpAddress::Parse("10.0.0.2");
  a.Spawn("sender", [&] {
    for (uint64_t sequence = 0; sequence < 3; ++sequence) {
      Packet* packet = network.NewPacket();
      packet->kind = Packet::Kind::kTcp;
      packet->flags = Packet::kAck;
      packet->source_connection = 7;
      packet->sequence = sequence;
      packet->payload = "x";
      packet->destination = Endpoint{to, 80};
      ASSERT_TRUE(network.Send(a, packet));
    }
    dsim::SleepFor(absl::Seconds(1));  // The run ends with its last task.
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(arrived, (std::vector<uint64_t>{0, 1, 2}));
}

TEST(ShortPaths, RecordWhatTheGeneralPathsRecord) {
  const auto [short_fingerprint, short_text] = TracedTraffic(/*listener=*/false);
  const auto [general_fingerprint, general_text] = TracedTraffic(/*listener=*/true);
  EXPECT_TRUE(absl::StrContains(short_text, "net.send: udp [fd00::2]:")) << short_text.substr(0, 3000);
  EXPECT_TRUE(absl::StrContains(short_text, "net.deliver: udp 127.0.0.1:95->127.0.0.1:95"));
  EXPECT_TRUE(absl::StrContains(short_text, "net.deliver: udp [::1]:95->[::1]:95"));
  EXPECT_GT(std::count(short_text.begin(), short_text.end(), '\n'), 2000);
  EXPECT_TRUE(absl::StrContains(short_text, "net.send: tcp [fd00::2]:"));
  EXPECT_EQ(short_text, general_text);
  EXPECT_EQ(short_fingerprint, general_fingerprint);
}

TEST(Buggify, IsOffByDefaultAndTogglesPerSimulation) {
  World w;
  EXPECT_FALSE(w.sim.buggify());
  std::vector<ssize_t> writes;
  w.server.Spawn("sink", [&] { ReadAll(Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr)); });
  w.client.Spawn("writer", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    const std::string chunk(1000, 'x');
    for (int i = 0; i < 20; ++i) writes.push_back(Write(fd, chunk.data(), chunk.size()));
    w.sim.SetBuggify(true);
    for (int i = 0; i < 40; ++i) writes.push_back(Write(fd, chunk.data(), chunk.size()));
    Close(fd);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(writes[i], 1000);
  EXPECT_LT(*std::min_element(writes.begin() + 20, writes.end()), 1000);
}

// ---- Crash, restart, pause ---------------------------------------------------------

TEST(Crash, PeerSeesResetWhenItSendsToTheDeadHostAndTasksUnwind) {
  World w;
  bool destructor_ran = false;
  int read_error = 0;
  ssize_t read_before_send = 0;
  struct Guard {
    bool* flag;
    int fd;
    ~Guard() {
      *flag = true;
      Close(fd);  // Harmless in a dead incarnation: no FIN leaves the host.
    }
  };
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    Guard guard{&destructor_ran, fd};
    dsim::SleepFor(absl::Hours(1));
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    dsim::SleepFor(Ms(50));  // The server crashed at 10 ms.
    SetReadDeadline(fd, dsim::Now() + Ms(100));
    char c;
    read_before_send = Read(fd, &c, 1);  // Silence: no FIN, no RST.
    SetReadDeadline(fd, absl::InfiniteFuture());
    EXPECT_EQ(Write(fd, "x", 1), 1);
    EXPECT_EQ(Read(fd, &c, 1), -1);
    read_error = errno;
  });
  w.sim.Spawn("chaos", [&] {
    dsim::SleepFor(Ms(10));
    EXPECT_TRUE(w.sim.Crash(w.server.id()));
  });
  const RunResult result = w.sim.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_TRUE(destructor_ran);
  EXPECT_EQ(read_before_send, -1);
  EXPECT_EQ(read_error, ECONNRESET);
}

TEST(Crash, AHostThatCrashesItselfUnwindsInsteadOfSpinning) {
  // The server crashes its own host, then keeps retrying a call that can only fail.
  // The kill must reach it at that call's scheduling point.
  World w;
  int attempts_after_crash = 0;
  w.server.Spawn("self-destruct", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    dsim::SleepFor(Ms(10));
    w.sim.Crash(w.server.id());
    for (;;) {
      if (Accept(listener, nullptr, nullptr) >= 0) break;
      ++attempts_after_crash;
    }
  });
  const RunResult result = w.sim.RunFor(absl::Seconds(1));
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_LE(attempts_after_crash, 1);
  EXPECT_EQ(w.sim.scheduler().live_tasks(), 0u);
}

TEST(Crash, IsSilentWhilePartitionedAndResetsAfterTheHeal) {
  World w;
  std::vector<int> errors;
  w.server.Spawn("server", [&] {
    Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    dsim::SleepFor(absl::Hours(1));
  });
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    const PartitionId cut = w.sim.Partition({w.client.id()}, {w.server.id()});
    w.sim.Crash(w.server.id());
    Write(fd, "x", 1);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(1));
    char c;
    Read(fd, &c, 1);
    errors.push_back(errno);  // EAGAIN: nothing comes back through the partition.
    w.sim.Heal(cut);
    SetReadDeadline(fd, absl::InfiniteFuture());
    Read(fd, &c, 1);
    errors.push_back(errno);  // The held segment reached the dead host: RST.
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(errors, (std::vector<int>{EAGAIN, ECONNRESET}));
}

TEST(Restart, RestartedHostAcceptsNewConnectionsOnTheSameAddress) {
  Simulation sim;
  int starts = 0;
  Host& server = sim.AddHost({.name = "server",
                              .start = [&] {
                                ++starts;
                                const int listener = ListenOn("0.0.0.0", 80);
                                ASSERT_GE(listener, 0) << LastSocketErrorMessage();
                                for (;;) {
                                  const int fd = Accept(listener, nullptr, nullptr);
                                  WriteAll(fd, absl::StrCat("incarnation ", starts));
                                  Close(fd);
                                }
                              },
                              .addresses = {"10.0.0.1"}});
  Host& client = sim.AddHost({.name = "client", .start = [] {}, .addresses = {"10.0.0.2"}});
  std::vector<std::string> greetings;
  int refused_errno = 0;
  client.Spawn("client", [&] {
    dsim::SleepFor(Ms(1));
    greetings.push_back(ReadAll(ConnectTo("10.0.0.1", 80)));
    sim.Crash(server.id());
    EXPECT_EQ(ConnectTo("10.0.0.1", 80), -1);  // Nobody listens on a dead host.
    refused_errno = errno;
    sim.Restart(server.id());
    dsim::SleepFor(Ms(1));
    greetings.push_back(ReadAll(ConnectTo("10.0.0.1", 80)));
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(greetings, (std::vector<std::string>{"incarnation 1", "incarnation 2"}));
  EXPECT_EQ(refused_errno, ECONNREFUSED);
  EXPECT_EQ(server.incarnation(), 2);
}

TEST(Pause, TrafficToAPausedHostIsHeldAndDeliveredAfterResume) {
  World w;
  std::vector<std::pair<std::string, absl::Duration>> received;
  std::vector<InFlightMessage> held;
  w.server.Spawn("receiver", [&] {
    const int fd = UdpBound("0.0.0.0", 9000);
    SetReadDeadline(fd, dsim::Now() + absl::Seconds(5));
    while (auto m = UdpReceive(fd)) received.emplace_back(*m, dsim::Now() - Scheduler::Epoch());
  });
  w.client.Spawn("sender", [&] {
    const int fd = UdpBound("0.0.0.0", 0);
    dsim::SleepFor(Ms(1));
    w.sim.Pause(w.server.id());
    UdpSend(fd, "10.0.0.1", 9000, "one");
    UdpSend(fd, "10.0.0.1", 9000, "two");
    dsim::SleepFor(absl::Seconds(1));
    held = w.sim.InFlight(w.client.id(), w.server.id());
    w.sim.Resume(w.server.id());
  });
  ASSERT_TRUE(w.sim.Run().ok());
  ASSERT_EQ(held.size(), 2u);
  EXPECT_TRUE(held[0].held);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].first, "one");
  EXPECT_EQ(received[1].first, "two");
  EXPECT_GE(received[0].second, absl::Seconds(1));
}

// A held link or a paused host keeps datagrams only up to a bound, like a real queue:
// 1M datagrams used to be kept (1.4 GiB).
TEST(Hold, DatagramsBeyondTheHeldBoundAreDroppedAndTcpIsNever) {
  for (const bool pause : {false, true}) {
    SimulationOptions options;
    options.network.held_datagram_bytes_per_link_max = 10 * (100 + 768);  // Ten datagrams.
    World w(std::move(options));
    int received = 0;
    std::string stream;
    size_t held = 0;
    w.server.Spawn("receiver", [&] {
      const int fd = UdpBound("0.0.0.0", 9000);
      SetReadDeadline(fd, dsim::Now() + absl::Seconds(5));
      while (UdpReceive(fd)) ++received;
    });
    w.server.Spawn("stream-server", [&] {
      const int listener = ListenOn("0.0.0.0", 80);
      const int fd = Accept(listener, nullptr, nullptr);
      stream = ReadAll(fd);
    });
    w.client.Spawn("sender", [&] {
      const int fd = UdpBound("0.0.0.0", 0);
      const int tcp = ConnectTo("10.0.0.1", 80);
      dsim::SleepFor(Ms(1));
      if (pause) {
        w.sim.Pause(w.server.id());
      } else {
        w.sim.Hold(w.client.id(), w.server.id());
      }
      for (int i = 0; i < 10'000; ++i) UdpSend(fd, "10.0.0.1", 9000, std::string(100, 'x'));
      EXPECT_EQ(WriteAll(tcp, std::string(5000, 'y')), 5000u);
      Close(tcp);
      dsim::SleepFor(absl::Seconds(1));
      held = w.sim.InFlight(w.client.id(), w.server.id()).size();
      if (pause) {
        w.sim.Resume(w.server.id());
      } else {
        w.sim.Release(w.client.id(), w.server.id());
      }
    });
    ASSERT_TRUE(w.sim.Run().ok());
    EXPECT_EQ(received, 10) << "pause=" << pause;
    EXPECT_LE(held, 10u + 5u) << "pause=" << pause;  // Ten datagrams and a few segments.
    EXPECT_EQ(stream, std::string(5000, 'y')) << "pause=" << pause;
    EXPECT_GE(w.sim.network().stats().packets_dropped, 9990u);
    EXPECT_EQ(w.annotations.count("net.drop.held_overflow"), 9990);
  }
}

// ---- Keepalive -----------------------------------------------------------------------

// getsockopt of an int option: its value, or -errno.
int IntOption(int fd, int level, int name) {
  int v = -1;
  socklen_t length = sizeof(v);
  return Getsockopt(fd, level, name, &v, &length) == 0 ? v : -errno;
}

// setsockopt of an int option: 0, or -errno.
int SetIntOption(int fd, int level, int name, int value) {
  return Setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0 : -errno;
}

// Keepalive settings for a socket: SO_KEEPALIVE plus TCP_KEEPIDLE, TCP_KEEPINTVL and
// TCP_KEEPCNT (0 keeps the default).
struct KeepaliveSettings {
  int idle_seconds = 0;
  int interval_seconds = 0;
  int probes = 0;
};

void EnableKeepalive(int fd, const KeepaliveSettings& settings) {
  ASSERT_EQ(SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1), 0);
  if (settings.idle_seconds > 0) {
    ASSERT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, settings.idle_seconds), 0);
  }
  if (settings.interval_seconds > 0) {
    ASSERT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, settings.interval_seconds), 0);
  }
  if (settings.probes > 0) {
    ASSERT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, settings.probes), 0);
  }
}

// A socket with keepalive set before connect(), so Linux (and dsim) start the idle
// period when the handshake completes; -1 if the connect failed.
int ConnectWithKeepalive(const char* ip, uint16_t port, const KeepaliveSettings& settings) {
  const int fd = Socket(AF_INET, SOCK_STREAM, 0);
  EnableKeepalive(fd, settings);
  sockaddr_storage a;
  const socklen_t l = MakeSockaddr(ip, port, &a);
  return Connect(fd, testing::Sa(&a), l) == 0 ? fd : -1;
}

// A server that accepts `count` connections and reads each until `deadline_after` of
// silence (so a partition that never heals ends its reads with EAGAIN, not a hang).
void AcceptAndIdle(World& w, int count, absl::Duration deadline_after,
                   std::vector<int>* errors) {
  w.server.Spawn("server", [&w, count, deadline_after, errors] {
    const int listener = ListenOn("0.0.0.0", 80);
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) fds.push_back(Accept(listener, nullptr, nullptr));
    for (int fd : fds) {
      SetReadDeadline(fd, dsim::Now() + deadline_after);
      char c;
      errors->push_back(Read(fd, &c, 1) < 0 ? errno : 0);
    }
  });
}

TEST(Keepalive, OptionsRoundTripWithLinuxDefaultsAndRejectOutOfRangeValues) {
  World w;
  w.client.Spawn("options", [&] {
    const int fd = Socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(IntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7200);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 75);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 9);
    EXPECT_EQ(SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 5), 0);
    EXPECT_EQ(IntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    for (int name : {TCP_KEEPIDLE, TCP_KEEPINTVL}) {
      EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, name, 1), 0);
      EXPECT_EQ(IntOption(fd, IPPROTO_TCP, name), 1);
      EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, name, 32767), 0);
      for (int bad : {0, -1, 32768}) EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, name, bad), -EINVAL);
      EXPECT_EQ(IntOption(fd, IPPROTO_TCP, name), 32767);  // Unchanged by the failures.
    }
    EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, 1), 0);
    EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, 127), 0);
    for (int bad : {0, -1, 128}) {
      EXPECT_EQ(SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, bad), -EINVAL);
    }
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 127);
    const int udp = Socket(AF_INET, SOCK_DGRAM, 0);
    EXPECT_EQ(SetIntOption(udp, IPPROTO_TCP, TCP_KEEPIDLE, 10), -ENOPROTOOPT);
    EXPECT_EQ(SetIntOption(udp, SOL_SOCKET, SO_KEEPALIVE, 1), 0);  // Only a flag on UDP.
  });
  ASSERT_TRUE(w.sim.Run().ok());
}

TEST(Keepalive, NetworkOptionsSetTheDefaultsThatSocketsReportAndUse) {
  SimulationOptions options;
  options.network.tcp_keepalive_time = absl::Seconds(30);
  options.network.tcp_keepalive_interval = absl::Seconds(5);
  options.network.tcp_keepalive_probes = 2;
  World w(options);
  std::vector<int> server_errors;
  AcceptAndIdle(w, 1, absl::Hours(1), &server_errors);
  absl::Duration failed_after;
  int error = 0;
  w.client.Spawn("client", [&] {
    const int fd = ConnectWithKeepalive("10.0.0.1", 80, {});
    ASSERT_GE(fd, 0);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 2);
    const absl::Time connected = dsim::Now();
    w.sim.Partition({w.client.id()}, {w.server.id()});
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    error = errno;
    failed_after = dsim::Now() - connected;
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(error, ETIMEDOUT);
  EXPECT_EQ(failed_after, absl::Seconds(30 + 2 * 5));
}

TEST(Keepalive, AcceptedSocketsInheritTheListenersKeepaliveSettings) {
  World w;
  w.server.Spawn("server", [&] {
    const int listener = ListenOn("0.0.0.0", 80);
    EnableKeepalive(listener, {.idle_seconds = 11, .interval_seconds = 3, .probes = 4});
    const int fd = Accept(listener, nullptr, nullptr);
    EXPECT_EQ(IntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 11);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
    EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
    Close(fd);
  });
  w.client.Spawn("client", [&] { EXPECT_EQ(ReadAll(ConnectTo("10.0.0.1", 80)), ""); });
  ASSERT_TRUE(w.sim.Run().ok());
}

// Two idle connections across a partition that never heals, one waited on by a
// blocked read and one by poll: both fail exactly KEEPIDLE + KEEPCNT * KEEPINTVL after
// their last received segment, and each sends its peer KEEPCNT probes and then an RST
// (held by the partition, so visible in flight).
TEST(Keepalive, PartitionThatNeverHealsFailsIdleConnectionsWithEtimedoutAtIdlePlusCountIntervals) {
  World w;
  const KeepaliveSettings settings{.idle_seconds = 10, .interval_seconds = 2, .probes = 3};
  const absl::Duration expected = absl::Seconds(10 + 3 * 2);
  std::vector<int> server_errors;
  AcceptAndIdle(w, 2, absl::Hours(1), &server_errors);
  absl::Duration read_failed_after, poll_woke_after;
  int read_error = 0;
  short revents = 0;
  int so_error_first = -1, so_error_second = -1;
  ssize_t read_after_error = -2, write_after_error = -2;
  int write_after_error_errno = 0;
  std::vector<InFlightMessage> held;
  w.client.Spawn("reader", [&] {
    const int fd = ConnectWithKeepalive("10.0.0.1", 80, settings);
    ASSERT_GE(fd, 0);
    const absl::Time connected = dsim::Now();
    const int polled = ConnectWithKeepalive("10.0.0.1", 80, settings);
    ASSERT_GE(polled, 0);
    const absl::Time polled_connected = dsim::Now();
    w.sim.Partition({w.client.id()}, {w.server.id()});
    w.client.Spawn("poller", [&, polled, polled_connected] {
      pollfd p{polled, POLLIN, 0};
      EXPECT_EQ(Poll(&p, 1, -1), 1);
      revents = p.revents;
      poll_woke_after = dsim::Now() - polled_connected;
      so_error_first = IntOption(polled, SOL_SOCKET, SO_ERROR);
      so_error_second = IntOption(polled, SOL_SOCKET, SO_ERROR);
    });
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    read_error = errno;
    read_failed_after = dsim::Now() - connected;
    // Reported once, as Linux's sk_err: afterwards the socket reads as shut down.
    read_after_error = Read(fd, &c, 1);
    write_after_error = Write(fd, "x", 1);
    write_after_error_errno = errno;
    dsim::SleepFor(absl::Seconds(1));  // The poller has checked its socket too.
    held = w.sim.InFlight(w.client.id(), w.server.id());
  });
  const RunResult result = w.sim.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(read_error, ETIMEDOUT);
  EXPECT_EQ(read_failed_after, expected);
  EXPECT_EQ(read_after_error, 0);
  EXPECT_EQ(write_after_error, -1);
  EXPECT_EQ(write_after_error_errno, EPIPE);
  EXPECT_EQ(poll_woke_after, expected);
  EXPECT_EQ(revents & (POLLERR | POLLHUP), POLLERR | POLLHUP);
  EXPECT_EQ(so_error_first, ETIMEDOUT);
  EXPECT_EQ(so_error_second, 0);
  int probes = 0, resets = 0;
  for (const InFlightMessage& m : held) {
    EXPECT_TRUE(m.held);
    probes += m.flags == Packet::kAck && m.payload_bytes == 0;
    resets += (m.flags & Packet::kRst) != 0;
  }
  EXPECT_EQ(probes, 2 * 3);
  EXPECT_EQ(resets, 2);
  EXPECT_EQ(w.annotations.count("tcp.keepalive"), 2 * 3);
  EXPECT_EQ(w.annotations.count("tcp.keepalive_timeout"), 2);
  // The server has no keepalive: its connections stay stalled until its own deadline.
  EXPECT_EQ(server_errors, (std::vector<int>{EAGAIN, EAGAIN}));
}

TEST(Keepalive, LinuxDefaultsGiveUpTwoHoursElevenMinutesFifteenSecondsAfterTheLastSegment) {
  World w;
  std::vector<int> server_errors;
  AcceptAndIdle(w, 1, absl::Hours(3), &server_errors);
  absl::Duration failed_after;
  int error = 0;
  w.client.Spawn("client", [&] {
    const int fd = ConnectWithKeepalive("10.0.0.1", 80, {});
    ASSERT_GE(fd, 0);
    const absl::Time connected = dsim::Now();
    w.sim.Partition({w.client.id()}, {w.server.id()});
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    error = errno;
    failed_after = dsim::Now() - connected;
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(error, ETIMEDOUT);
  EXPECT_EQ(failed_after, absl::Seconds(7200 + 9 * 75));
}

TEST(Keepalive, AnsweredProbesKeepAnIdleHealthyConnectionUpPastManyProbePeriods) {
  World w;
  std::string received;
  w.server.Spawn("server", [&] {
    const int fd = Accept(ListenOn("0.0.0.0", 80), nullptr, nullptr);
    received = ReadAll(fd);
  });
  int idle_read_errno = 0;
  w.client.Spawn("client", [&] {
    const int fd = ConnectWithKeepalive("10.0.0.1", 80,
                                        {.idle_seconds = 10, .interval_seconds = 2, .probes = 1});
    ASSERT_GE(fd, 0);
    SetReadDeadline(fd, dsim::Now() + absl::Hours(1));
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    idle_read_errno = errno;
    EXPECT_EQ(WriteAll(fd, "still here"), 10u);
    Close(fd);
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(idle_read_errno, EAGAIN);  // The deadline, not the keepalive, ended the wait.
  EXPECT_EQ(received, "still here");
  // One probe per idle period of 10 s (plus a round trip) over the hour.
  EXPECT_GE(w.annotations.count("tcp.keepalive"), 350);
  EXPECT_LE(w.annotations.count("tcp.keepalive"), 360);
  EXPECT_EQ(w.annotations.count("tcp.keepalive_timeout"), 0);
}

TEST(Keepalive, ProbeToAPeerThatCrashedAndRestartedIsAnsweredWithRstGivingEconnreset) {
  Simulation sim;
  Host& server = sim.AddHost({.name = "server",
                              .start = [] {
                                const int listener = ListenOn("0.0.0.0", 80);
                                for (;;) Accept(listener, nullptr, nullptr);
                              },
                              .addresses = {"10.0.0.1"}});
  Host& client = sim.AddHost({.name = "client", .start = [] {}, .addresses = {"10.0.0.2"}});
  absl::Duration failed_after;
  int error = 0;
  client.Spawn("client", [&] {
    dsim::SleepFor(Ms(1));
    const int fd = ConnectWithKeepalive("10.0.0.1", 80, {.idle_seconds = 10});
    ASSERT_GE(fd, 0);
    const absl::Time connected = dsim::Now();
    sim.Spawn("chaos", [&] {
      dsim::SleepFor(absl::Seconds(1));
      sim.Crash(server.id());
      dsim::SleepFor(absl::Seconds(1));
      sim.Restart(server.id());
    });
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    error = errno;
    failed_after = dsim::Now() - connected;
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(server.incarnation(), 2);
  EXPECT_EQ(error, ECONNRESET);
  // The first probe, 10 s after the handshake, and its RST's round trip.
  EXPECT_GT(failed_after, absl::Seconds(10));
  EXPECT_LT(failed_after, absl::Seconds(10) + Ms(10));
}

TEST(Keepalive, WithoutSoKeepaliveAPartitionedStreamStaysStalledUntilTheUsersDeadline) {
  World w;
  std::vector<int> server_errors;
  AcceptAndIdle(w, 1, absl::Hours(24), &server_errors);
  absl::Duration waited;
  int error = 0;
  std::vector<InFlightMessage> held;
  w.client.Spawn("client", [&] {
    const int fd = ConnectTo("10.0.0.1", 80);
    ASSERT_GE(fd, 0);
    w.sim.Partition({w.client.id()}, {w.server.id()});
    const absl::Time start = dsim::Now();
    SetReadDeadline(fd, start + absl::Hours(24));  // Far past any keepalive default.
    char c;
    EXPECT_EQ(Read(fd, &c, 1), -1);
    error = errno;
    waited = dsim::Now() - start;
    held = w.sim.InFlight(w.client.id(), w.server.id());
  });
  ASSERT_TRUE(w.sim.Run().ok());
  EXPECT_EQ(error, EAGAIN);
  EXPECT_EQ(waited, absl::Hours(24));
  EXPECT_TRUE(held.empty());  // No probe ever left.
  EXPECT_EQ(server_errors, std::vector<int>{EAGAIN});
  EXPECT_EQ(w.annotations.count("tcp.keepalive"), 0);
}

// ---- Determinism -------------------------------------------------------------------

uint64_t FaultyRunFingerprint(uint64_t seed) {
  SimulationOptions options = WithLink(
      {.latency = LatencyModel::Exponential(Ms(0.1), Ms(1)).WithTail(0.05, Ms(5), Ms(20)),
       .datagram_loss_probability = 0.1,
       .segment_loss_probability = 0.05},
      seed);
  options.faults.buggify = true;
  World w(options);
  const std::string data = Pattern(50'000);
  EXPECT_EQ(Stream(w, data), data);
  return w.sim.trace().fingerprint();
}

TEST(Determinism, SameSeedGivesTheSameTraceFingerprintUnderFaults) {
  EXPECT_EQ(FaultyRunFingerprint(11), FaultyRunFingerprint(11));
  EXPECT_NE(FaultyRunFingerprint(11), FaultyRunFingerprint(12));
}

}  // namespace
}  // namespace dsim
