// A server for a subset of the Redis protocol (RESP2), written with plain POSIX calls
// only (socket, bind, listen, accept4, epoll, read, write, close): no dsim call in it.
// Under //posix it runs inside a simulation unchanged, which is what
// //tests:posix_hiredis_test uses it for: the unmodified hiredis client talks to it.
//
// Example (inside a dsim task on a host with an address; outside a simulation it is
// an ordinary server on the real network):
//
//   dsim::Host& server = sim.AddHost({.name = "redis",
//                                     .start = [] { dsim_test::ServeRedisSubset(6379); },
//                                     .addresses = {"10.0.0.1"}});
//
// Requests: multibulk ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", what clients send) and inline
// ("GET k\r\n", what telnet sends; arguments split on spaces and tabs, no quoting),
// pipelined, split across reads anyhow. Commands, case-insensitive, with Redis's
// replies: PING [message], ECHO message, GET key, SET key value, DEL key..., EXISTS
// key..., INCR key, DECR key, QUIT. Errors as Redis words them: unknown command, wrong
// number of arguments, "value is not an integer or out of range", "increment or
// decrement would overflow"; a protocol error is answered and the connection closed,
// as Redis does.
#ifndef DSIM_TESTS_POSIX_REDIS_REDIS_SUBSET_SERVER_H_
#define DSIM_TESTS_POSIX_REDIS_REDIS_SUBSET_SERVER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dsim_test {

// The keyspace: string values only.
using RedisStore = std::map<std::string, std::string>;

// What ParseRedisRequests found in a connection's input.
struct RedisParseResult {
  // Complete requests, in order (inline requests' empty lines are skipped).
  std::vector<std::vector<std::string>> requests;
  // Set when the input holds a protocol error after `requests`: the error reply
  // ("-ERR Protocol error: ...\r\n"). The connection is closed after it.
  std::string protocol_error;
};

// Takes every complete request off the front of `input`; an incomplete tail stays.
RedisParseResult ParseRedisRequests(std::string* input);

// Executes one request on `store`, appending the reply to `output`. Returns false for
// QUIT (the connection closes once the reply is written).
bool ExecuteRedisCommand(const std::vector<std::string>& request, RedisStore* store,
                         std::string* output);

struct RedisServerStats {
  int connections = 0;
  int commands = 0;
};

// Listens on 0.0.0.0:`port` and serves forever with one level-triggered epoll loop.
// Returns only if setting up the listener fails (the errno).
int ServeRedisSubset(uint16_t port, RedisServerStats* stats = nullptr);

}  // namespace dsim_test

#endif  // DSIM_TESTS_POSIX_REDIS_REDIS_SUBSET_SERVER_H_
