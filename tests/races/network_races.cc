// The network-level programs of the race corpus: real UDP sockets on a simulated
// network, with faults injected by a LinkModel that draws each fault through
// Scheduler::ChooseValue, so faults are recorded, replayed and shrunk like task order.
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/notification.h"
#include "net/network.h"
#include "sockets/socket.h"
#include "tests/races/race_corpus.h"
#include "tests/races/race_programs.h"

namespace dsim::races {
namespace {

constexpr absl::Duration kLatency = absl::Milliseconds(1);

// Faults for the network races. Every choice is a labelled ChooseValue whose 0 means
// "no fault", the encoding the shrinker reduces toward:
//   "fault.slow"       per packet: 1 delays it by `slow_latency` instead of kLatency.
//   "fault.partition"  at the first packet between `a` and `b`: 1 cuts that link (both
//                      ways) until `heal_at`; packets sent while cut are dropped.
class FaultyLink final : public LinkModel {
 public:
  struct Options {
    bool slow_packets = false;
    absl::Duration slow_latency = absl::Milliseconds(30);
    bool partition = false;
    uint32_t a = 0;  // NetworkHostIds of the link that may be cut.
    uint32_t b = 0;
    absl::Time heal_at;
  };

  explicit FaultyLink(Options options) : options_(options) {}

  PacketFate Decide(const Packet& packet, Scheduler& scheduler) override {
    if (options_.partition && OnPartitionedLink(packet)) {
      if (!partition_decided_) {
        partition_decided_ = true;
        cut_ = scheduler.ChooseValue(2, "fault.partition") == 1;
        if (cut_) scheduler.Annotate({"fault.partition", "link cut until it heals"});
      }
      if (cut_ && scheduler.Now() < options_.heal_at) return PacketFate::Drop();
    }
    if (options_.slow_packets && scheduler.ChooseValue(2, "fault.slow") == 1) {
      return PacketFate::DeliverAfter(options_.slow_latency);
    }
    return PacketFate::DeliverAfter(kLatency);
  }

 private:
  bool OnPartitionedLink(const Packet& p) const {
    return (p.source_host == options_.a && p.destination_host == options_.b) ||
           (p.source_host == options_.b && p.destination_host == options_.a);
  }

  Options options_;
  bool partition_decided_ = false;
  bool cut_ = false;
};

// ---- Small UDP helpers (the programs' own code, not dsim API) ----------------------

int BoundUdpSocket(uint16_t port) {
  const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_storage address;
  const socklen_t length = MakeSockaddr("0.0.0.0", port, &address);
  if (fd < 0 || Bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    throw std::runtime_error(absl::StrCat("udp bind failed: ", LastSocketErrorMessage()));
  }
  return fd;
}

void SendTo(int fd, const std::string& ip, uint16_t port, const std::string& message) {
  sockaddr_storage address;
  const socklen_t length = MakeSockaddr(ip, port, &address);
  Sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&address), length);
}

// Receives one datagram; nullopt when the read deadline passed first.
std::optional<std::string> Receive(int fd, sockaddr_storage* from = nullptr) {
  char buffer[256];
  sockaddr_storage sender;
  socklen_t sender_length = sizeof(sender);
  const ssize_t n = Recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&sender),
                             &sender_length);
  if (n < 0) return std::nullopt;
  if (from != nullptr) *from = sender;
  return std::string(buffer, static_cast<size_t>(n));
}

void Reply(int fd, const sockaddr_storage& to, const std::string& message) {
  Sendto(fd, message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&to),
         sizeof(to));
}

// One simulation with a network: the scheduler, then the network (the declaration order
// Network asks for).
struct NetworkRun {
  explicit NetworkRun(const RaceRunOptions& options)
      : scheduler(SchedulerOptions{.seed = 1,
                                   .strategy = options.strategy,
                                   .max_steps = options.max_steps,
                                   .shared_access_points = true}),
        network(&scheduler) {
    if (options.observer != nullptr) scheduler.AddListener(options.observer);
  }

  RaceOutcome Finish(const std::function<std::string()>& final_check) {
    RaceOutcome outcome;
    outcome.result = scheduler.Run();
    if (outcome.result.ok()) outcome.final_check_failure = final_check();
    outcome.bug = !outcome.result.ok() || !outcome.final_check_failure.empty();
    return outcome;
  }

  Scheduler scheduler;
  Network network;
};

}  // namespace

// A client deposits 10 through a UDP request and retries when no reply comes within
// its timeout. A request that was only slow, not lost, reaches the server twice, and the
// non-idempotent server applies it twice. Fix: requests carry an id and the server
// applies each id once (and answers duplicates from its record).
RaceOutcome DuplicateAfterRetry(Variant variant, const RaceRunOptions& options) {
  int balance = 0;
  NetworkRun run(options);
  NetworkHost& server = run.network.AddHost("bank", {"10.0.0.1"});
  NetworkHost& client = run.network.AddHost("client", {"10.0.0.2"});
  run.network.set_link_model(std::make_shared<FaultyLink>(FaultyLink::Options{
      .slow_packets = true, .slow_latency = absl::Milliseconds(30)}));
  server.Spawn(
      "bank", [&] {
        const int fd = BoundUdpSocket(7000);
        std::set<std::string> applied;  // Request ids (the fix's dedup record).
        for (;;) {
          sockaddr_storage from;
          const std::optional<std::string> request = Receive(fd, &from);
          if (!request.has_value()) continue;
          const std::vector<std::string> parts = absl::StrSplit(*request, ' ');
          const bool fresh = Buggy(variant) || applied.insert(parts[0]).second;
          int amount = 0;
          if (fresh && parts.size() == 3 && absl::SimpleAtoi(parts[2], &amount)) {
            balance += amount;
          }
          Reply(fd, from, absl::StrCat(parts[0], " ok ", balance));
        }
      },
      {.daemon = true});
  client.Spawn("client", [&] {
    const int fd = BoundUdpSocket(0);
    for (int attempt = 0; attempt < 3; ++attempt) {
      SendTo(fd, "10.0.0.1", 7000, "req-1 deposit 10");
      SetReadDeadline(fd, Now() + absl::Milliseconds(10));
      if (Receive(fd).has_value()) break;  // Otherwise the timeout: retry.
    }
    // Let straggling packets land before the run ends.
    dsim::SleepFor(absl::Milliseconds(200));
  });
  return run.Finish([&]() -> std::string {
    return balance <= 10 ? "" : absl::StrCat("deposit applied twice: balance ", balance);
  });
}

// Two replicas of a register. The primary acknowledges a write at once and forwards it
// to the backup in one fire-and-forget datagram. If the link between them is cut at
// that moment, the write never reaches the backup, and a reader that asks the backup
// after the partition heals (and after the write was acknowledged) reads the old value.
// Fix: the primary forwards until the backup acknowledges, and only then acknowledges
// the client.
RaceOutcome StaleReadAfterHeal(Variant variant, const RaceRunOptions& options) {
  std::optional<std::string> read_value;
  NetworkRun run(options);
  NetworkHost& primary = run.network.AddHost("primary", {"10.0.0.1"});
  NetworkHost& backup = run.network.AddHost("backup", {"10.0.0.2"});
  NetworkHost& client = run.network.AddHost("client", {"10.0.0.3"});
  run.network.set_link_model(std::make_shared<FaultyLink>(FaultyLink::Options{
      .partition = true,
      .a = primary.id(),
      .b = backup.id(),
      .heal_at = Scheduler::Epoch() + absl::Milliseconds(50)}));
  Notification write_acknowledged;
  primary.Spawn(
      "primary", [&] {
        const int clients = BoundUdpSocket(7000);
        const int replication = BoundUdpSocket(7100);
        for (;;) {
          sockaddr_storage from;
          const std::optional<std::string> request = Receive(clients, &from);
          if (!request.has_value()) continue;
          for (;;) {
            SendTo(replication, "10.0.0.2", 7001, *request);
            if (Buggy(variant)) break;
            SetReadDeadline(replication, Now() + absl::Milliseconds(10));
            if (Receive(replication).has_value()) break;  // Backup has it.
          }
          Reply(clients, from, "ok");
        }
      },
      {.daemon = true});
  backup.Spawn(
      "backup", [&] {
        const int fd = BoundUdpSocket(7001);
        std::string value = "old";
        for (;;) {
          sockaddr_storage from;
          const std::optional<std::string> message = Receive(fd, &from);
          if (!message.has_value()) continue;
          if (absl::StartsWith(*message, "set ")) {
            value = message->substr(4);
            Reply(fd, from, "ack");
          } else {
            Reply(fd, from, value);
          }
        }
      },
      {.daemon = true});
  client.Spawn("writer", [&] {
    const int fd = BoundUdpSocket(0);
    SendTo(fd, "10.0.0.1", 7000, "set new");
    if (Receive(fd).has_value()) write_acknowledged.Notify();
  });
  client.Spawn("reader", [&] {
    // Reads once the write was acknowledged and the partition has healed.
    write_acknowledged.WaitForNotification();
    dsim::SleepUntil(Scheduler::Epoch() + absl::Milliseconds(60));
    const int fd = BoundUdpSocket(0);
    SendTo(fd, "10.0.0.2", 7001, "get");
    read_value = Receive(fd);
  });
  return run.Finish([&]() -> std::string {
    if (!read_value.has_value()) return "";
    return *read_value == "new" ? "" : "stale read: the backup missed an acknowledged write";
  });
}

}  // namespace dsim::races
