// StorageFaults: the seeded fault model of one simulated disk (or of every disk, as
// defaults in FaultOptions::storage). All off by default.
//
// Example:
//
//   dsim::SimulationOptions options{.seed = 7};
//   options.faults.storage.fsync_error_probability = 0.01;     // "fsyncgate"
//   options.faults.storage.capacity_bytes = 64 << 20;          // ENOSPC past 64 MiB
//   options.faults.storage.write_latency = {absl::Microseconds(20), absl::Microseconds(200)};
//   options.faults.storage_overrides.push_back({.host = "db2", .storage = {
//       .read_bit_flip_probability = 0.001}});
//
// Decisions. Every yes/no fault is Scheduler::ChooseValue(2^24, "fault.disk.<what>") whose
// small values mean "no fault", so shrinking removes faults; nothing is drawn for a
// probability of 0. Every fault applied is annotated with its "fault.disk.*" category
// and shows in the Perfetto timeline on the host's track.
#ifndef DSIM_DISK_STORAGE_FAULTS_H_
#define DSIM_DISK_STORAGE_FAULTS_H_

#include <cstdint>

#include "absl/time/time.h"

namespace dsim {

// A service time: uniform in [min, max], plus with stall_probability a stall uniform in
// [stall_min, stall_max] ("fault.disk.stall"). All zero: the call takes no virtual time.
struct DiskLatency {
  absl::Duration min = absl::ZeroDuration();
  absl::Duration max = absl::ZeroDuration();
  double stall_probability = 0;
  absl::Duration stall_min = absl::Seconds(1);
  absl::Duration stall_max = absl::Seconds(5);

  bool IsZero() const {
    return max <= absl::ZeroDuration() && min <= absl::ZeroDuration() && !(stall_probability > 0);
  }
};

struct StorageFaults {
  // EIO from read()/pread()/... ("fault.disk.read_eio"): nothing is read.
  double read_error_probability = 0;
  // EIO from write()/pwrite()/... ("fault.disk.write_eio"): nothing is written.
  double write_error_probability = 0;
  // EIO from fsync()/fdatasync()/sync_file_range(WAIT_AFTER) ("fault.disk.fsync_eio"),
  // with Linux's semantics since 4.13: the file's dirty pages are marked clean without
  // reaching the disk (the cache still shows the new data until the next crash), the
  // error is reported once to every descriptor open at the time, and a later fsync that
  // finds nothing dirty returns 0. This is PostgreSQL's "fsyncgate".
  double fsync_error_probability = 0;
  // Total bytes the disk holds (file data in 4 KiB blocks plus one block per
  // directory); 0 is unlimited. A write past it moves what fits, then fails with ENOSPC.
  uint64_t capacity_bytes = 0;
  // Service times.
  DiskLatency read_latency;
  DiskLatency write_latency;
  DiskLatency fsync_latency;
  // A read returns data with one bit flipped ("fault.disk.bit_flip"); the disk is intact.
  double read_bit_flip_probability = 0;
  // When a file's data is made durable, a write lands at a wrong sector-aligned offset of
  // the same file instead ("fault.disk.misdirected_write"). Visible after a crash.
  double misdirected_write_probability = 0;
  // When a file's data is made durable, a write silently never arrives
  // ("fault.disk.lost_write"): fsync returns 0. Visible after a crash.
  double lost_write_probability = 0;

  // The durability model, not a fault. Off (the default): POSIX's rule, which XFS,
  // btrfs and ALICE's model hold to: a new, linked, unlinked or renamed name is durable
  // only once its directory is fsynced. On: ext4's behaviour in practice: an fsync of
  // any file forces a journal commit, which makes every earlier directory operation
  // durable too (a new log file's name with its data). Code that passes only with it on
  // depends on ext4.
  bool fsync_commits_directory_operations = false;

  // True if no fault and no latency is configured (the fast path).
  bool IsNone() const {
    return !(read_error_probability > 0) && !(write_error_probability > 0) &&
           !(fsync_error_probability > 0) && capacity_bytes == 0 && read_latency.IsZero() &&
           write_latency.IsZero() && fsync_latency.IsZero() &&
           !(read_bit_flip_probability > 0) && !(misdirected_write_probability > 0) &&
           !(lost_write_probability > 0);
  }
};

}  // namespace dsim

#endif  // DSIM_DISK_STORAGE_FAULTS_H_
