#include "tests/posix_redis/redis_subset_server.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace dsim_test {
namespace {

constexpr size_t kMaxInlineBytes = 64 * 1024;           // Redis's PROTO_INLINE_MAX_SIZE.
constexpr int64_t kMaxMultibulkLength = 1024 * 1024;    // Redis's limit on '*' counts.
constexpr int64_t kMaxBulkBytes = 512LL * 1024 * 1024;  // proto-max-bulk-len.

// Redis's string2ll: an optional '-', no '+', no leading zeros, no spaces, in range.
bool ParseInt64(const std::string& text, int64_t* value) {
  if (text.empty() || text.size() > 20) return false;
  size_t i = 0;
  const bool negative = text[0] == '-';
  if (negative) ++i;
  if (i == text.size()) return false;
  if (text[i] == '0') {
    if (text.size() == i + 1 && !negative) {
      *value = 0;
      return true;
    }
    return false;  // "01", "-0".
  }
  uint64_t magnitude = 0;
  for (; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
  }
  const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative) {
    if (magnitude > limit + 1) return false;
    *value = magnitude == limit + 1 ? std::numeric_limits<int64_t>::min()
                                    : -static_cast<int64_t>(magnitude);
  } else {
    if (magnitude > limit) return false;
    *value = static_cast<int64_t>(magnitude);
  }
  return true;
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

void AppendBulk(const std::string& value, std::string* output) {
  *output += "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
}

void AppendInteger(int64_t value, std::string* output) {
  *output += ":" + std::to_string(value) + "\r\n";
}

void AppendError(const std::string& message, std::string* output) {
  *output += "-" + message + "\r\n";
}

// Parses one inline request ("SET k v\r\n") at the front of `input`. Returns false if
// no complete line is there yet.
bool TakeInline(std::string* input, RedisParseResult* result, bool* error) {
  const size_t newline = input->find('\n');
  if (newline == std::string::npos) {
    if (input->size() > kMaxInlineBytes) {
      result->protocol_error = "-ERR Protocol error: too big inline request\r\n";
      *error = true;
    }
    return false;
  }
  std::string line = input->substr(0, newline);
  input->erase(0, newline + 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> arguments;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) arguments.push_back(line.substr(start, i - start));
  }
  if (!arguments.empty()) result->requests.push_back(std::move(arguments));
  return true;
}

// Reads a "<prefix><integer>\r\n" header at `*position`. Returns 1 when read, 0 when
// incomplete, -1 when it is not a valid integer line.
int ReadHeaderLine(const std::string& input, size_t* position, int64_t* value) {
  const size_t end = input.find("\r\n", *position);
  if (end == std::string::npos) return input.size() - *position > kMaxInlineBytes ? -1 : 0;
  if (!ParseInt64(input.substr(*position + 1, end - *position - 1), value)) return -1;
  *position = end + 2;
  return 1;
}

// Parses one multibulk request at the front of `input`. Returns false if it is not
// complete yet (input untouched) or on a protocol error (`*error` set).
bool TakeMultibulk(std::string* input, RedisParseResult* result, bool* error) {
  size_t position = 0;
  int64_t count = 0;
  int read = ReadHeaderLine(*input, &position, &count);
  if (read == 0) return false;
  if (read < 0 || count > kMaxMultibulkLength) {
    result->protocol_error = "-ERR Protocol error: invalid multibulk length\r\n";
    *error = true;
    return false;
  }
  std::vector<std::string> arguments;
  for (int64_t i = 0; i < count; ++i) {
    if (position >= input->size()) return false;
    if ((*input)[position] != '$') {
      result->protocol_error =
          std::string("-ERR Protocol error: expected '$', got '") + (*input)[position] + "'\r\n";
      *error = true;
      return false;
    }
    int64_t length = 0;
    read = ReadHeaderLine(*input, &position, &length);
    if (read == 0) return false;
    if (read < 0 || length < 0 || length > kMaxBulkBytes) {
      result->protocol_error = "-ERR Protocol error: invalid bulk length\r\n";
      *error = true;
      return false;
    }
    const size_t bytes = static_cast<size_t>(length);
    if (input->size() - position < bytes + 2) return false;
    arguments.push_back(input->substr(position, bytes));
    position += bytes + 2;  // Redis skips the CRLF after the data without checking it.
  }
  input->erase(0, position);
  // "*0\r\n" and "*-1\r\n" are requests with no command: Redis ignores them.
  if (!arguments.empty()) result->requests.push_back(std::move(arguments));
  return true;
}

// Whether the request has `arity` arguments (negative: at least -arity), as Redis
// checks command tables; appends Redis's error if not.
bool CheckArity(const std::vector<std::string>& request, int arity, const std::string& name,
                std::string* output) {
  const int given = static_cast<int>(request.size());
  if ((arity >= 0 && given == arity) || (arity < 0 && given >= -arity)) return true;
  AppendError("ERR wrong number of arguments for '" + name + "' command", output);
  return false;
}

void IncrementBy(const std::vector<std::string>& request, int64_t delta, RedisStore* store,
                 std::string* output) {
  int64_t value = 0;
  auto found = store->find(request[1]);
  if (found != store->end() && !ParseInt64(found->second, &value)) {
    AppendError("ERR value is not an integer or out of range", output);
    return;
  }
  if ((delta > 0 && value > std::numeric_limits<int64_t>::max() - delta) ||
      (delta < 0 && value < std::numeric_limits<int64_t>::min() - delta)) {
    AppendError("ERR increment or decrement would overflow", output);
    return;
  }
  value += delta;
  (*store)[request[1]] = std::to_string(value);
  AppendInteger(value, output);
}

}  // namespace

RedisParseResult ParseRedisRequests(std::string* input) {
  RedisParseResult result;
  bool error = false;
  while (!input->empty() && !error) {
    const bool taken = (*input)[0] == '*' ? TakeMultibulk(input, &result, &error)
                                          : TakeInline(input, &result, &error);
    if (!taken) break;
  }
  return result;
}

bool ExecuteRedisCommand(const std::vector<std::string>& request, RedisStore* store,
                         std::string* output) {
  const std::string name = Lower(request[0]);
  if (name == "ping") {
    if (request.size() > 2) {
      AppendError("ERR wrong number of arguments for 'ping' command", output);
    } else if (request.size() == 2) {
      AppendBulk(request[1], output);
    } else {
      *output += "+PONG\r\n";
    }
  } else if (name == "echo") {
    if (CheckArity(request, 2, name, output)) AppendBulk(request[1], output);
  } else if (name == "get") {
    if (!CheckArity(request, 2, name, output)) return true;
    auto found = store->find(request[1]);
    if (found == store->end()) {
      *output += "$-1\r\n";
    } else {
      AppendBulk(found->second, output);
    }
  } else if (name == "set") {
    if (request.size() > 3) {
      AppendError("ERR syntax error", output);  // Options (EX, NX, ...) not in the subset.
    } else if (CheckArity(request, 3, name, output)) {
      (*store)[request[1]] = request[2];
      *output += "+OK\r\n";
    }
  } else if (name == "del" || name == "exists") {
    if (!CheckArity(request, -2, name, output)) return true;
    int64_t count = 0;
    for (size_t i = 1; i < request.size(); ++i) {
      if (name == "del") {
        count += static_cast<int64_t>(store->erase(request[i]));
      } else {
        count += static_cast<int64_t>(store->count(request[i]));
      }
    }
    AppendInteger(count, output);
  } else if (name == "incr" || name == "decr") {
    if (CheckArity(request, 2, name, output)) IncrementBy(request, name == "incr" ? 1 : -1, store, output);
  } else if (name == "quit") {
    *output += "+OK\r\n";
    return false;
  } else {
    AppendError("ERR unknown command '" + request[0] + "'", output);
  }
  return true;
}

namespace {

struct Connection {
  std::string input;
  std::string output;
  bool closing = false;  // QUIT or a protocol error: close once the output is written.
  bool want_write = false;
};

// Writes as much pending output as the socket takes. Returns false on a write error.
bool Flush(int fd, Connection* connection) {
  while (!connection->output.empty()) {
    const ssize_t sent = write(fd, connection->output.data(), connection->output.size());
    if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    connection->output.erase(0, static_cast<size_t>(sent));
  }
  return true;
}

void Watch(int epfd, int fd, Connection* connection) {
  const bool want_write = !connection->output.empty();
  if (want_write == connection->want_write) return;
  connection->want_write = want_write;
  epoll_event event{};
  event.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
  event.data.fd = fd;
  epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event);
}

void Drop(int epfd, int fd, std::map<int, Connection>* connections) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  connections->erase(fd);
}

// Reads what is there, runs every complete request. Returns false if the connection
// should be dropped now.
bool Serve(int fd, Connection* connection, RedisStore* store, RedisServerStats* stats) {
  char buffer[16 * 1024];
  const ssize_t got = read(fd, buffer, sizeof(buffer));
  if (got == 0) return false;
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  if (connection->closing) return true;  // Input after QUIT is ignored, as Redis does.
  connection->input.append(buffer, static_cast<size_t>(got));
  RedisParseResult parsed = ParseRedisRequests(&connection->input);
  for (const auto& request : parsed.requests) {
    if (stats != nullptr) ++stats->commands;
    if (!ExecuteRedisCommand(request, store, &connection->output)) {
      connection->closing = true;
      return true;
    }
  }
  if (!parsed.protocol_error.empty()) {
    connection->output += parsed.protocol_error;
    connection->closing = true;
  }
  return true;
}

}  // namespace

int ServeRedisSubset(uint16_t port, RedisServerStats* stats) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) return errno;
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return errno;
  if (listen(listener, 511) != 0) return errno;
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno;
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;
  listen_event.data.fd = listener;
  epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &listen_event);
  RedisStore store;
  std::map<int, Connection> connections;
  for (;;) {
    epoll_event events[16];
    const int ready = epoll_wait(epfd, events, 16, -1);
    if (ready < 0 && errno != EINTR) return errno;
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        const int accepted = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (accepted < 0) continue;
        if (stats != nullptr) ++stats->connections;
        connections[accepted] = Connection();
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = accepted;
        epoll_ctl(epfd, EPOLL_CTL_ADD, accepted, &event);
        continue;
      }
      auto found = connections.find(fd);
      if (found == connections.end()) continue;
      Connection& connection = found->second;
      bool keep = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        keep = Serve(fd, &connection, &store, stats);
      }
      if (keep) keep = Flush(fd, &connection);
      if (keep && connection.closing && connection.output.empty()) keep = false;
      if (!keep) {
        Drop(epfd, fd, &connections);
        continue;
      }
      Watch(epfd, fd, &connection);
    }
  }
}

}  // namespace dsim_test
