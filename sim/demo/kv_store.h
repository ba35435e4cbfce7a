// The demo's replicated key-value store: replicas that keep versioned values, and a
// client that reads and writes through majority quorums. Plain blocking socket code,
// as anyone would write it for Linux; under dsim it runs on simulated hosts.
//
// Example (inside a Simulation whose hosts have addresses; see sim/demo/scenario.h):
//
//   dsim::demo::ReplicaDisk disk;                     // outlives crashes of the host
//   sim.AddHost({.name = "kv1", .start = [&disk] { dsim::demo::ServeReplica(disk); },
//                .addresses = {"10.0.0.1"}});
//   ...
//   client_host.Spawn("client", [] {
//     dsim::demo::KvClient kv({.id = 1, .replicas = {"10.0.0.1", "10.0.0.2", "10.0.0.3"}});
//     absl::StatusOr<dsim::demo::Version> put = kv.Put("x", "hello");
//     absl::StatusOr<dsim::demo::VersionedValue> got = kv.Get("x");  // "hello" or later
//   });
//
// Protocol (one text line per message, over one TCP connection per client and replica):
//
//   client -> replica   GET <request> <key>
//                       PUT <request> <key> <counter> <writer> <value>
//   replica -> client   VALUE <request> <counter> <writer> <value>
//                       STORED <request>
//
// A replica stores a PUT only if its version is newer than what it has, so versions
// only grow. The client follows the classic ABD register algorithm: a write asks a
// majority for the newest version, then stores a higher one on a majority; a read asks
// a majority, then writes the newest value back to a majority before returning it
// (unless a majority answered with that version already).
// Any two majorities overlap, so a read sees every write that completed before it
// began, and never a value older than what an earlier read returned.
//
// The planted bug (ClientOptions::fast_reads): a read returns the first answer it
// gets and skips the write-back. It looks like a harmless optimization and passes most
// runs; it returns stale values when the first replica to answer missed a write, for
// example because it sat on the minority side of a partition.
#ifndef DSIM_SIM_DEMO_KV_STORE_H_
#define DSIM_SIM_DEMO_KV_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sockets/tcp.h"

namespace dsim::demo {

inline constexpr uint16_t kKvPort = 7000;

// Orders the writes of one key: the higher version wins. Unique per write, because
// the writer's id breaks ties and a writer never reuses a counter.
struct Version {
  uint64_t counter = 0;
  int writer = 0;  // The client's id; 0 for "never written".

  friend bool operator<(const Version& a, const Version& b) {
    return std::tie(a.counter, a.writer) < std::tie(b.counter, b.writer);
  }
  friend bool operator==(const Version& a, const Version& b) {
    return a.counter == b.counter && a.writer == b.writer;
  }
  friend bool operator!=(const Version& a, const Version& b) { return !(a == b); }
  // "7.c2": counter 7, written by client 2.
  std::string ToString() const;
};

struct VersionedValue {
  Version version;
  std::string value;  // "" for a key never written.
};

// What a replica keeps on its simulated disk. The test owns it, outside the host's
// start function, so it survives crashes: a replica acknowledges a PUT only after
// storing it here, as a real one would after fsync.
struct ReplicaDisk {
  std::map<std::string, VersionedValue> values;  // Ordered: never iterate a hash map.
};

// The start function of a replica host: listens on kKvPort and serves every client
// connection in a task of its own. Never returns; a crash unwinds it.
void ServeReplica(ReplicaDisk& disk);

struct ClientOptions {
  int id = 1;                          // Positive, unique per client.
  std::vector<std::string> replicas;   // Replica addresses, e.g. "10.0.0.1".
  // One attempt of a quorum round trip gives up after this long.
  absl::Duration attempt_timeout = absl::Milliseconds(250);
  // Connecting to one replica gives up after this long, so that an unreachable replica
  // costs an attempt little of its time.
  absl::Duration connect_timeout = absl::Milliseconds(20);
  // Attempts per operation, with a pause of `retry_backoff` between them.
  int attempts_max = 3;
  absl::Duration retry_backoff = absl::Milliseconds(50);
  // The planted bug: reads trust the first replica that answers.
  bool fast_reads = false;
};

// A client of the store. Belongs to one task; blocks that task in socket calls.
class KvClient {
 public:
  explicit KvClient(ClientOptions options);

  // Stores `value` under `key` on a majority and returns the version it got. Fails with
  // kUnavailable when no majority answered in any attempt; the value may then still
  // have reached some replicas (the write's outcome is unknown).
  absl::StatusOr<Version> Put(absl::string_view key, absl::string_view value);
  // Returns the newest value of `key` that a majority knows of, or kUnavailable.
  absl::StatusOr<VersionedValue> Get(absl::string_view key);

 private:
  struct Replica {
    std::string address;
    std::optional<TcpStream> stream;  // Empty while disconnected.
    std::string inbox;                // Received bytes not yet parsed into lines.
  };

  // One attempt of a put. `chosen` carries the version between attempts: once an
  // attempt has picked one (and may have stored it somewhere), retries store that same
  // version, never a new one (see Put).
  absl::StatusOr<Version> PutOnce(absl::string_view key, absl::string_view value,
                                  absl::Time deadline, std::optional<Version>& chosen);
  absl::StatusOr<VersionedValue> GetOnce(absl::string_view key, absl::Time deadline);
  // The newest value of `key` among the answers of at least `needed` replicas, and in
  // `holders` (if not null) how many of them answered with that version.
  absl::StatusOr<VersionedValue> ReadQuorum(absl::string_view key, size_t needed,
                                            absl::Time deadline, size_t* holders = nullptr);
  absl::Status WriteQuorum(absl::string_view key, const VersionedValue& value,
                           absl::Time deadline);
  // Sends one request to every replica it can reach, then waits until `needed` of
  // them answered it. Returns the answers (the text after the request id).
  absl::StatusOr<std::vector<std::string>> Ask(absl::string_view verb, absl::string_view args,
                                               size_t needed, absl::Time deadline);
  void Send(Replica& replica, absl::string_view line, absl::Time deadline);
  void CollectAnswers(Replica& replica, uint64_t request, std::vector<std::string>& answers);
  bool Connect(Replica& replica, absl::Time deadline);
  size_t Majority() const { return replicas_.size() / 2 + 1; }

  ClientOptions options_;
  std::vector<Replica> replicas_;
  uint64_t last_request_ = 0;
  // The highest counter this client ever wrote with; its next write goes above it, so
  // that two of its writes never share a version even if one half-failed.
  uint64_t last_counter_ = 0;
};

}  // namespace dsim::demo

#endif  // DSIM_SIM_DEMO_KV_STORE_H_
