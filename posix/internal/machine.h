// The machine a task sees: the same on every real machine, so a seed reproduces a run
// anywhere. Used by posix/machine.cc (CPU count, memory, uname, sysinfo), posix/threads.cc
// (the affinity of simulated threads) and posix/signals.cc (pids and tids).
#ifndef DSIM_POSIX_INTERNAL_MACHINE_H_
#define DSIM_POSIX_INTERNAL_MACHINE_H_

#include <sys/types.h>

#include <cstdint>

#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

// CPUs 0..kSimulatedCpus-1, all online: get_nprocs, sysconf(_SC_NPROCESSORS_*),
// std::thread::hardware_concurrency, sched_getaffinity and pthread_getaffinity_np agree.
// Four, not one, so code that sizes thread pools by the CPU count still runs concurrently.
inline constexpr int kSimulatedCpus = 4;
// Memory: sysconf(_SC_PHYS_PAGES / _SC_AVPHYS_PAGES), get_(av)phys_pages, sysinfo.
inline constexpr uint64_t kSimulatedMemoryBytes = uint64_t{8} << 30;      // 8 GiB
inline constexpr uint64_t kSimulatedFreeMemoryBytes = uint64_t{4} << 30;  // 4 GiB

// Process identity inside a task. A host is a process: getpid() is kPidBase plus the
// host's group (kPidBase itself for tasks on no host); getppid() is 1 (init); gettid()
// is kTidBase plus the task id. Deterministic, unlike the real values; nothing that
// would reach the kernel with them is allowed (kill and friends fail the run).
inline constexpr pid_t kPidBase = 1000;
inline constexpr pid_t kTidBase = 100000;
inline pid_t SimulatedPid(const Scheduler& scheduler) {
  return kPidBase + static_cast<pid_t>(scheduler.CurrentGroup());
}
inline pid_t SimulatedTid(const Scheduler& scheduler) {
  return kTidBase + static_cast<pid_t>(scheduler.CurrentTaskId());
}

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_MACHINE_H_
