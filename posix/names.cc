// Name resolution inside tasks: gethostname gives the host's name; getaddrinfo resolves
// the simulation's host names (and numeric addresses, "localhost", passive wildcards) to
// their simulated addresses; getnameinfo answers numerically or with a simulated host's
// name. Results are allocated as glibc allocates them, so the real freeaddrinfo frees
// them. Service names other than numbers are not resolved (EAI_SERVICE).
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "net/network.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(gethostname);
DSIM_DECLARE_REAL(getaddrinfo);
DSIM_DECLARE_REAL(getnameinfo);

dsim::Network* NetworkOf(dsim::Scheduler& scheduler) {
  return static_cast<dsim::Network*>(scheduler.extension(dsim::Scheduler::kNetworkExtension));
}

dsim::NetworkHost* HostNamed(dsim::Network& network, const char* name) {
  for (size_t id = 1; id <= network.host_count(); ++id) {
    dsim::NetworkHost* host = network.FindHost(static_cast<dsim::NetworkHostId>(id));
    if (host != nullptr && host->name() == name) return host;
  }
  return nullptr;
}

// One addrinfo in one malloc block (the sockaddr inside it), as glibc's freeaddrinfo
// expects.
addrinfo* NewEntry(const dsim::IpAddress& address, uint16_t port, int socktype, int protocol) {
  struct Block {
    addrinfo info;
    sockaddr_storage storage;
  };
  auto* block = static_cast<Block*>(std::calloc(1, sizeof(Block)));
  addrinfo* info = &block->info;
  info->ai_socktype = socktype;
  info->ai_protocol = protocol;
  info->ai_addr = reinterpret_cast<sockaddr*>(&block->storage);
  if (address.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&block->storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr = address.ToInAddr();
    info->ai_family = AF_INET;
    info->ai_addrlen = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&block->storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = address.ToIn6Addr();
    info->ai_family = AF_INET6;
    info->ai_addrlen = sizeof(sockaddr_in6);
  }
  return info;
}

}  // namespace

extern "C" {

int gethostname(char* name, size_t length) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(gethostname)(name, length);
  dsim::Network* network = NetworkOf(*scheduler);
  dsim::NetworkHost* host = network ? network->HostOfGroup(scheduler->CurrentGroup()) : nullptr;
  if (host == nullptr) return DSIM_REAL(gethostname)(name, length);
  if (host->name().size() + 1 > length) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(name, host->name().c_str(), host->name().size() + 1);
  return 0;
}

int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                struct addrinfo** result) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  dsim::Network* network = scheduler ? NetworkOf(*scheduler) : nullptr;
  if (network == nullptr) return DSIM_REAL(getaddrinfo)(node, service, hints, result);
  const int family = hints ? hints->ai_family : AF_UNSPEC;
  const int flags = hints ? hints->ai_flags : 0;
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) return EAI_FAMILY;
  if (node == nullptr && service == nullptr) return EAI_NONAME;
  uint32_t port = 0;
  if (service != nullptr && !absl::SimpleAtoi(service, &port)) return EAI_SERVICE;
  if (port > 65535) return EAI_SERVICE;
  std::vector<dsim::IpAddress> addresses;
  if (node == nullptr) {
    const bool passive = flags & AI_PASSIVE;
    if (family != AF_INET) {
      addresses.push_back(passive ? dsim::IpAddress::V6Any() : dsim::IpAddress::V6Loopback());
    }
    if (family != AF_INET6) {
      addresses.push_back(passive ? dsim::IpAddress::V4Any() : dsim::IpAddress::V4Loopback());
    }
  } else if (auto parsed = dsim::IpAddress::Parse(node); parsed.ok()) {
    addresses.push_back(*parsed);
  } else if (flags & AI_NUMERICHOST) {
    return EAI_NONAME;
  } else if (std::strcmp(node, "localhost") == 0) {
    if (family != AF_INET6) addresses.push_back(dsim::IpAddress::V4Loopback());
    if (family != AF_INET) addresses.push_back(dsim::IpAddress::V6Loopback());
  } else if (dsim::NetworkHost* host = HostNamed(*network, node); host != nullptr) {
    addresses = host->addresses();
  } else {
    return EAI_NONAME;  // No simulated host has this name; nothing is asked of real DNS.
  }
  std::vector<std::pair<int, int>> kinds;  // (socktype, protocol)
  const int socktype = hints ? hints->ai_socktype : 0;
  if (socktype == 0 || socktype == SOCK_STREAM) kinds.push_back({SOCK_STREAM, IPPROTO_TCP});
  if (socktype == 0 || socktype == SOCK_DGRAM) kinds.push_back({SOCK_DGRAM, IPPROTO_UDP});
  addrinfo* head = nullptr;
  addrinfo** tail = &head;
  for (const dsim::IpAddress& address : addresses) {
    if (family == AF_INET && !address.is_v4()) continue;
    if (family == AF_INET6 && address.is_v4()) continue;
    for (const auto& [type, protocol] : kinds) {
      *tail = NewEntry(address, static_cast<uint16_t>(port), type, protocol);
      if (head == *tail && (flags & AI_CANONNAME) && node != nullptr) {
        (*tail)->ai_canonname = strdup(node);
      }
      tail = &(*tail)->ai_next;
    }
  }
  if (head == nullptr) return EAI_ADDRFAMILY;
  *result = head;
  return 0;
}

int getnameinfo(const struct sockaddr* address, socklen_t length, char* host, socklen_t host_length,
                char* service, socklen_t service_length, int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  dsim::Network* network = scheduler ? NetworkOf(*scheduler) : nullptr;
  if (network == nullptr) {
    return DSIM_REAL(getnameinfo)(address, length, host, host_length, service, service_length,
                                  flags);
  }
  if (address == nullptr) return EAI_FAIL;
  dsim::IpAddress ip;
  uint16_t port = 0;
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    ip = dsim::IpAddress::FromInAddr(in->sin_addr);
    port = ntohs(in->sin_port);
  } else if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    ip = dsim::IpAddress::FromIn6Addr(in6->sin6_addr);
    port = ntohs(in6->sin6_port);
  } else {
    return EAI_FAMILY;
  }
  if (host != nullptr && host_length > 0) {
    std::string text = ip.ToString();
    if (!(flags & NI_NUMERICHOST)) {
      if (dsim::NetworkHost* owner = network->HostByAddress(ip); owner != nullptr) {
        text = owner->name();
      } else if (flags & NI_NAMEREQD) {
        return EAI_NONAME;
      }
    }
    if (text.size() + 1 > host_length) return EAI_OVERFLOW;
    std::memcpy(host, text.c_str(), text.size() + 1);
  }
  if (service != nullptr && service_length > 0) {
    const std::string text = std::to_string(port);
    if (text.size() + 1 > service_length) return EAI_OVERFLOW;
    std::memcpy(service, text.c_str(), text.size() + 1);
  }
  return 0;
}

}  // extern "C"
