#include "sim/demo/kv_store.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/scheduler.h"
#include "sockets/socket.h"

namespace dsim::demo {
namespace {

// Values travel as one space-free token; "-" stands for "never written".
std::string EncodeValue(absl::string_view value) {
  return value.empty() ? "-" : std::string(value);
}
std::string DecodeValue(absl::string_view token) {
  return token == "-" ? "" : std::string(token);
}

std::string EncodeVersioned(const VersionedValue& v) {
  return absl::StrCat(v.version.counter, " ", v.version.writer, " ", EncodeValue(v.value));
}

// Parses "<counter> <writer> <value>" from `fields`, starting at `first`.
std::optional<VersionedValue> ParseVersioned(const std::vector<absl::string_view>& fields,
                                             size_t first) {
  VersionedValue v;
  if (fields.size() != first + 3 || !absl::SimpleAtoi(fields[first], &v.version.counter) ||
      !absl::SimpleAtoi(fields[first + 1], &v.version.writer)) {
    return std::nullopt;
  }
  v.value = DecodeValue(fields[first + 2]);
  return v;
}

// Removes the complete lines from `inbox` and returns them without their '\n'. A
// partial line stays for the next read: TCP delivers bytes, not messages.
std::vector<std::string> TakeLines(std::string& inbox) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = inbox.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.emplace_back(inbox, start, end - start);
  }
  inbox.erase(0, start);
  return lines;
}

// Applies one request to the disk and returns the answer line ("" for a malformed one).
std::string HandleRequest(ReplicaDisk& disk, absl::string_view line) {
  const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
  if (fields.size() == 3 && fields[0] == "GET") {
    auto it = disk.values.find(std::string(fields[2]));
    const VersionedValue stored = it == disk.values.end() ? VersionedValue{} : it->second;
    return absl::StrCat("VALUE ", fields[1], " ", EncodeVersioned(stored), "\n");
  }
  if (fields.size() == 6 && fields[0] == "PUT") {
    const std::optional<VersionedValue> incoming = ParseVersioned(fields, 3);
    if (!incoming.has_value()) return "";
    VersionedValue& stored = disk.values[std::string(fields[2])];
    // Versions only grow: a late or repeated PUT never overwrites a newer value.
    if (stored.version < incoming->version) stored = *incoming;
    return absl::StrCat("STORED ", fields[1], "\n");
  }
  return "";
}

// Serves one client connection until the client leaves or the connection breaks.
void ServeConnection(ReplicaDisk& disk, TcpStream& stream) {
  std::string inbox;
  char buffer[512];
  for (;;) {
    absl::StatusOr<size_t> n = stream.Read(buffer, sizeof(buffer));
    if (!n.ok() || *n == 0) return;
    inbox.append(buffer, *n);
    std::string answers;
    for (const std::string& line : TakeLines(inbox)) answers += HandleRequest(disk, line);
    if (!stream.WriteAll(answers).ok()) return;
  }
}

// The whole of `duration`, in milliseconds rounded up, for Poll's int timeout.
int CeilMilliseconds(absl::Duration duration) {
  return static_cast<int>(absl::ToInt64Milliseconds(duration + absl::Milliseconds(1) -
                                                    absl::Nanoseconds(1)));
}

}  // namespace

std::string Version::ToString() const { return absl::StrCat(counter, ".c", writer); }

void ServeReplica(ReplicaDisk& disk) {
  absl::StatusOr<TcpListener> listener = TcpListener::Listen("0.0.0.0", kKvPort);
  // A replica that cannot serve is a broken setup, not a fault to tolerate: throwing
  // fails the simulation run with this message.
  if (!listener.ok()) throw std::runtime_error(listener.status().ToString());
  for (int connection = 1;; ++connection) {
    absl::StatusOr<TcpStream> stream = listener->Accept();
    if (!stream.ok()) throw std::runtime_error(stream.status().ToString());
    auto shared = std::make_shared<TcpStream>(*std::move(stream));
    dsim::Spawn(absl::StrCat("conn-", connection),
                [&disk, shared] { ServeConnection(disk, *shared); }, {.daemon = true});
  }
}

KvClient::KvClient(ClientOptions options) : options_(std::move(options)) {
  for (const std::string& address : options_.replicas) {
    replicas_.push_back(Replica{.address = address});
  }
}

// A retry must not pick a new version. If an attempt stored its version on some
// replica before timing out, a reader may already have seen the value; a retry under a
// higher version would then make the same write take effect a second time, after
// writes that came in between (a read sees "c1.1", then "c2.13", then "c1.1" again).
// The linearizability checker found this; the older stale-read checker, which trusted
// the store's own version order, could not.
absl::StatusOr<Version> KvClient::Put(absl::string_view key, absl::string_view value) {
  absl::Status failure;
  std::optional<Version> chosen;
  for (int attempt = 1; attempt <= options_.attempts_max; ++attempt) {
    if (attempt > 1) dsim::SleepFor(options_.retry_backoff);
    absl::StatusOr<Version> version =
        PutOnce(key, value, dsim::Now() + options_.attempt_timeout, chosen);
    if (version.ok()) return version;
    failure = version.status();
  }
  return failure;
}

absl::StatusOr<VersionedValue> KvClient::Get(absl::string_view key) {
  absl::Status failure;
  for (int attempt = 1; attempt <= options_.attempts_max; ++attempt) {
    if (attempt > 1) dsim::SleepFor(options_.retry_backoff);
    absl::StatusOr<VersionedValue> value = GetOnce(key, dsim::Now() + options_.attempt_timeout);
    if (value.ok()) return value;
    failure = value.status();
  }
  return failure;
}

absl::StatusOr<Version> KvClient::PutOnce(absl::string_view key, absl::string_view value,
                                          absl::Time deadline, std::optional<Version>& chosen) {
  if (!chosen.has_value()) {
    absl::StatusOr<VersionedValue> newest = ReadQuorum(key, Majority(), deadline);
    if (!newest.ok()) return newest.status();
    last_counter_ = std::max(last_counter_, newest->version.counter) + 1;
    chosen = Version{last_counter_, options_.id};
  }
  const VersionedValue mine{.version = *chosen, .value = std::string(value)};
  absl::Status stored = WriteQuorum(key, mine, deadline);
  if (!stored.ok()) return stored;
  return mine.version;
}

absl::StatusOr<VersionedValue> KvClient::GetOnce(absl::string_view key, absl::Time deadline) {
  if (options_.fast_reads) {
    // THE PLANTED BUG. One answer is not a quorum: the first replica to answer may
    // have missed the latest writes (it was partitioned away, or just slow).
    return ReadQuorum(key, 1, deadline);
  }
  size_t holders = 0;
  absl::StatusOr<VersionedValue> newest = ReadQuorum(key, Majority(), deadline, &holders);
  if (!newest.ok()) return newest;
  // Make sure a majority has what we return, so that no later read returns older. When
  // a majority answered with it, one does already: the usual case costs one round trip.
  if (holders < Majority()) {
    absl::Status stored = WriteQuorum(key, *newest, deadline);
    if (!stored.ok()) return stored;
  }
  return newest;
}

absl::StatusOr<VersionedValue> KvClient::ReadQuorum(absl::string_view key, size_t needed,
                                                    absl::Time deadline, size_t* holders) {
  absl::StatusOr<std::vector<std::string>> answers = Ask("GET", key, needed, deadline);
  if (!answers.ok()) return answers.status();
  std::vector<VersionedValue> values;
  for (const std::string& answer : *answers) {
    std::optional<VersionedValue> value = ParseVersioned(absl::StrSplit(answer, ' '), 2);
    if (!value.has_value()) return absl::DataLossError(absl::StrCat("bad answer: ", answer));
    values.push_back(*std::move(value));
  }
  VersionedValue newest;
  for (const VersionedValue& value : values) {
    if (newest.version < value.version) newest = value;
  }
  if (holders != nullptr) {
    *holders = std::count_if(values.begin(), values.end(), [&](const VersionedValue& value) {
      return value.version == newest.version;
    });
  }
  return newest;
}

absl::Status KvClient::WriteQuorum(absl::string_view key, const VersionedValue& value,
                                   absl::Time deadline) {
  return Ask("PUT", absl::StrCat(key, " ", EncodeVersioned(value)), Majority(), deadline)
      .status();
}

absl::StatusOr<std::vector<std::string>> KvClient::Ask(absl::string_view verb,
                                                       absl::string_view args, size_t needed,
                                                       absl::Time deadline) {
  const uint64_t request = ++last_request_;
  const std::string line = absl::StrCat(verb, " ", request, " ", args, "\n");
  for (Replica& replica : replicas_) Send(replica, line, deadline);

  std::vector<std::string> answers;
  while (answers.size() < needed) {
    std::vector<pollfd> fds;
    std::vector<Replica*> polled;
    for (Replica& replica : replicas_) {
      if (!replica.stream.has_value()) continue;
      fds.push_back(pollfd{.fd = replica.stream->fd(), .events = POLLIN, .revents = 0});
      polled.push_back(&replica);
    }
    const absl::Duration left = deadline - dsim::Now();
    if (fds.empty() || left <= absl::ZeroDuration()) break;
    if (dsim::Poll(fds.data(), fds.size(), CeilMilliseconds(left)) < 0) break;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) CollectAnswers(*polled[i], request, answers);
    }
  }
  if (answers.size() < needed) {
    return absl::UnavailableError(absl::StrCat(verb, ": ", answers.size(), " of ", needed,
                                               " answers before the deadline"));
  }
  return answers;
}

void KvClient::Send(Replica& replica, absl::string_view line, absl::Time deadline) {
  if (!replica.stream.has_value() && !Connect(replica, deadline)) return;
  replica.stream->handle().SetWriteDeadline(deadline).IgnoreError();
  // A failed or partial write leaves the stream unusable (half a line): drop it.
  if (!replica.stream->WriteAll(line).ok()) replica.stream.reset();
}

void KvClient::CollectAnswers(Replica& replica, uint64_t request,
                              std::vector<std::string>& answers) {
  char buffer[512];
  absl::StatusOr<size_t> n = replica.stream->Read(buffer, sizeof(buffer));
  if (!n.ok() || *n == 0) {  // Reset by a restarted replica, or closed.
    replica.stream.reset();
    return;
  }
  replica.inbox.append(buffer, *n);
  for (std::string& line : TakeLines(replica.inbox)) {
    // Answers to earlier requests, which timed out, may still arrive: skip them.
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    uint64_t id = 0;
    if (fields.size() >= 2 && absl::SimpleAtoi(fields[1], &id) && id == request) {
      answers.push_back(std::move(line));
    }
  }
}

bool KvClient::Connect(Replica& replica, absl::Time deadline) {
  // Raw socket calls here, because the handshake needs a timeout: a SYN into a
  // partition would otherwise wait for the kernel's retries (over a minute). The
  // write deadline bounds connect(), as SO_SNDTIMEO does on Linux.
  SocketHandle socket(dsim::Socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_storage address;
  const socklen_t length = MakeSockaddr(replica.address, kKvPort, &address);
  if (!socket.valid() || length == 0) return false;
  socket.SetWriteDeadline(std::min(deadline, dsim::Now() + options_.connect_timeout))
      .IgnoreError();
  if (dsim::Connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address), length) < 0) {
    return false;
  }
  replica.stream.emplace(std::move(socket));
  replica.inbox.clear();
  return true;
}

}  // namespace dsim::demo
