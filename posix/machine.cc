// Facts about the machine that differ between machines and that glibc reads through its
// own internal calls (files under /sys and /proc, raw system calls): CPU count, memory,
// uname, sysinfo, load average, the current CPU. In a task each answers the fixed
// machine of posix/internal/machine.h, so a seed gives the same run on every machine
// (std::thread::hardware_concurrency, which calls get_nprocs, is 4 everywhere);
// outside tasks each is the real function.
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cstring>

#include "posix/internal/clock.h"
#include "posix/internal/machine.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(get_nprocs);
DSIM_DECLARE_REAL(get_nprocs_conf);
DSIM_DECLARE_REAL(get_phys_pages);
DSIM_DECLARE_REAL(get_avphys_pages);
DSIM_DECLARE_REAL(sysconf);
DSIM_DECLARE_REAL(sched_getaffinity);
DSIM_DECLARE_REAL(sched_setaffinity);
DSIM_DECLARE_REAL(sched_getcpu);
DSIM_DECLARE_REAL(getcpu);
DSIM_DECLARE_REAL(uname);
DSIM_DECLARE_REAL(sysinfo);
DSIM_DECLARE_REAL(getloadavg);
DSIM_DECLARE_REAL(getdomainname);
DSIM_DECLARE_REAL(setdomainname);
DSIM_DECLARE_REAL(gethostid);
DSIM_DECLARE_REAL(sethostid);
DSIM_DECLARE_REAL(sethostname);

long PhysPages() {
  return static_cast<long>(pi::kSimulatedMemoryBytes / static_cast<uint64_t>(getpagesize()));
}
long AvailablePages() {
  return static_cast<long>(pi::kSimulatedFreeMemoryBytes / static_cast<uint64_t>(getpagesize()));
}

// Whether `pid` names the calling task in a task (0, its simulated pid or tid).
bool IsSelf(const dsim::Scheduler& scheduler, pid_t pid) {
  return pid == 0 || pid == pi::SimulatedPid(scheduler) || pid == pi::SimulatedTid(scheduler);
}

// Copies `text` into a utsname field (65 bytes on Linux), truncated and terminated.
template <size_t N>
void SetField(char (&field)[N], const char* text) {
  std::strncpy(field, text, N - 1);
  field[N - 1] = '\0';
}

#if defined(__x86_64__)
constexpr char kMachine[] = "x86_64";
#elif defined(__aarch64__)
constexpr char kMachine[] = "aarch64";
#else
constexpr char kMachine[] = "unknown";
#endif

}  // namespace

extern "C" {

int get_nprocs(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(get_nprocs)();
  return pi::kSimulatedCpus;
}

int get_nprocs_conf(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(get_nprocs_conf)();
  return pi::kSimulatedCpus;
}

long get_phys_pages(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(get_phys_pages)();
  return PhysPages();
}

long get_avphys_pages(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(get_avphys_pages)();
  return AvailablePages();
}

// Only the machine-dependent names are answered; every other name (page size, open
// files limit, clock ticks, ...) is the real sysconf's.
long sysconf(int name) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(sysconf)(name);
  switch (name) {
    case _SC_NPROCESSORS_ONLN:
    case _SC_NPROCESSORS_CONF:
      return pi::kSimulatedCpus;
    case _SC_PHYS_PAGES:
      return PhysPages();
    case _SC_AVPHYS_PAGES:
      return AvailablePages();
    default:
      return DSIM_REAL(sysconf)(name);
  }
}

// The calling task (pid 0, its pid or its tid) may run on CPUs 0..3; another pid is
// ESRCH (no other process exists in the simulation). Linux's size rules: a set smaller
// than the kernel's CPU mask, or not a whole number of longs, is EINVAL.
int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* set) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_getaffinity)(pid, size, set);
  if (!IsSelf(*scheduler, pid)) {
    errno = ESRCH;
    return -1;
  }
  if (size == 0 || size % sizeof(unsigned long) != 0) {
    errno = EINVAL;
    return -1;
  }
  std::memset(set, 0, size);
  for (int cpu = 0; cpu < pi::kSimulatedCpus; ++cpu) CPU_SET_S(cpu, size, set);
  return 0;
}

// Accepted when the set names one of the simulated CPUs; it changes nothing (the
// strategy decides who runs).
int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* set) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_setaffinity)(pid, size, set);
  if (!IsSelf(*scheduler, pid)) {
    errno = ESRCH;
    return -1;
  }
  for (int cpu = 0; cpu < pi::kSimulatedCpus; ++cpu) {
    if (CPU_ISSET_S(cpu, size, set)) return 0;
  }
  errno = EINVAL;
  return -1;
}

int sched_getcpu(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(sched_getcpu)();
  return 0;
}

int getcpu(unsigned int* cpu, unsigned int* node) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(getcpu)(cpu, node);
  if (cpu != nullptr) *cpu = 0;
  if (node != nullptr) *node = 0;
  return 0;
}

// sysname Linux, nodename the host's name (as gethostname answers in the task), release
// "6.1.0-dsim", version "#1 SMP dsim", machine the architecture dsim was built for,
// domainname "(none)" (Linux's default).
int uname(struct utsname* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(uname)(out);
  if (out == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::memset(out, 0, sizeof(*out));
  SetField(out->sysname, "Linux");
  if (gethostname(out->nodename, sizeof(out->nodename)) != 0) SetField(out->nodename, "localhost");
  out->nodename[sizeof(out->nodename) - 1] = '\0';
  SetField(out->release, "6.1.0-dsim");
  SetField(out->version, "#1 SMP dsim");
  SetField(out->machine, kMachine);
#ifdef _GNU_SOURCE
  SetField(out->domainname, "(none)");
#endif
  return 0;
}

// Uptime from the host's monotonic clock, loads 0, kSimulatedMemoryBytes of RAM with
// kSimulatedFreeMemoryBytes free, no swap, one process.
int sysinfo(struct sysinfo* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sysinfo)(out);
  if (out == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::memset(out, 0, sizeof(*out));
  out->uptime = absl::ToInt64Seconds(pi::VirtualMonotonic(*scheduler));
  out->totalram = pi::kSimulatedMemoryBytes;
  out->freeram = pi::kSimulatedFreeMemoryBytes;
  out->procs = 1;
  out->mem_unit = 1;
  return 0;
}

// No load: every average is 0.
int getloadavg(double averages[], int count) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(getloadavg)(averages, count);
  if (count < 0) return -1;
  const int filled = count < 3 ? count : 3;
  for (int i = 0; i < filled; ++i) averages[i] = 0.0;
  return filled;
}

// The domain name: Linux's default, "(none)" (glibc reads it with an internal uname).
int getdomainname(char* name, size_t length) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(getdomainname)(name, length);
  constexpr char kDomain[] = "(none)";
  if (length < sizeof(kDomain)) {
    errno = EINVAL;
    return -1;
  }
  std::memcpy(name, kDomain, sizeof(kDomain));
  return 0;
}

// glibc's answer without /etc/hostid (which is the machine's): the host's IPv4
// address, as its name resolves (in a task: the simulated address), with the halves of
// the 32-bit word swapped; 0 if the name does not resolve to one or no simulated
// network exists.
long gethostid(void) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(gethostid)();
  // Without a simulated network the names below would be resolved for real.
  if (scheduler->extension(dsim::Scheduler::kNetworkExtension) == nullptr) return 0;
  char host[256];
  if (gethostname(host, sizeof(host)) != 0) return 0;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (getaddrinfo(host, nullptr, &hints, &found) != 0 || found == nullptr) return 0;
  const uint32_t address = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr.s_addr;
  freeaddrinfo(found);
  return static_cast<int32_t>(address << 16 | address >> 16);
}

// Changing the machine's names or host id from a task would change them for the whole
// machine (the tests run as root): refused like fork.
int sethostid(long id) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sethostid)(id);
  pi::RecordEscape(*scheduler, "sethostid", "changing the machine's host id is not simulated", true);
  errno = EPERM;
  return -1;
}

int sethostname(const char* name, size_t length) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sethostname)(name, length);
  pi::RecordEscape(*scheduler, "sethostname", "changing the machine's name is not simulated", true);
  errno = EPERM;
  return -1;
}

int setdomainname(const char* name, size_t length) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(setdomainname)(name, length);
  pi::RecordEscape(*scheduler, "setdomainname", "changing the machine's domain name is not simulated", true);
  errno = EPERM;
  return -1;
}

}  // extern "C"
