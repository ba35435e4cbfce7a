// Disks: every simulated disk of one simulation, and which host incarnation (scheduler
// group) uses which. The file calls (files/file.h) find the calling task's disk here,
// as the socket calls find its network host in the Network.
//
// A Simulation owns one and gives every host a disk (Simulation::disks()); a bare
// Scheduler can use one directly:
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 3});
//   dsim::Disks disks(&scheduler);
//   dsim::DiskId disk = disks.AddDisk("db");
//   dsim::TaskHandle writer = scheduler.Spawn("writer", [] {
//     int fd = dsim::Open("/log", O_CREAT | O_WRONLY, 0644);
//     dsim::Write(fd, "x", 1);
//     dsim::Fsync(fd);
//   }, {.group = 1});
//   disks.BindGroup(1, disk);        // tasks of group 1 use disk "db"
//   scheduler.Run();
//   disks.UnbindGroup(1);            // the process died: descriptors go away
//   disks.Crash(disk);               // power loss: non-durable state resolved by seed
//
// Lifetime. Disks registers itself in the scheduler's kDiskExtension slot; declare it
// after the Scheduler. Disks survive host crashes and restarts; each incarnation's open
// files (a DiskAttachment the files layer keeps) die with UnbindGroup.
#ifndef DSIM_DISK_DISKS_H_
#define DSIM_DISK_DISKS_H_

#include <memory>
#include <string>
#include <vector>

#include "disk/disk.h"
#include "disk/storage_faults.h"
#include "scheduler/scheduler.h"

namespace dsim {

// Per-incarnation state a layer above keeps for a group (the files layer's descriptor
// table). When the group is unbound (the process died) it is detached (its files
// closed) and kept until the Disks goes, since the dead incarnation's tasks, still
// unwinding, may be linked into its wait queues.
class DiskAttachment {
 public:
  virtual ~DiskAttachment() = default;
  virtual void Detach() {}
};

class Disks {
 public:
  explicit Disks(Scheduler* scheduler, StorageFaults defaults = {});
  ~Disks();
  Disks(const Disks&) = delete;
  Disks& operator=(const Disks&) = delete;

  // The Disks of the scheduler running on this thread, or null.
  static Disks* Current();

  // A new, empty disk with the default faults. Ids count from 1.
  DiskId AddDisk(std::string name);
  Disk& disk(DiskId id);
  size_t disk_count() const { return disks_.size(); }

  // Tasks of `group` use `disk` from now on (and annotations of the disk go to group).
  void BindGroup(GroupId group, DiskId disk);
  // The group's process is gone: its attachment (open descriptors) is detached.
  void UnbindGroup(GroupId group);
  // The disk of `group`, or null.
  Disk* DiskOfGroup(GroupId group) {
    return group < bindings_.size() ? bindings_[group].disk : nullptr;
  }
  // The attachment slot of a bound group (null until the layer above fills it).
  std::unique_ptr<DiskAttachment>& attachment(GroupId group);

  // Power loss of a disk: Disk::Crash. Call after unbinding the groups that used it.
  void Crash(DiskId id) { disk(id).Crash(); }
  // Erases a disk ("fault.disk.wipe").
  void Wipe(DiskId id) { disk(id).Wipe(); }
  // Exchanges the contents of two disks ("fault.disk.swap"): as FoundationDB does, a
  // restarted host may come back with another host's disk.
  void Swap(DiskId a, DiskId b);

  Scheduler& scheduler() { return *scheduler_; }

 private:
  struct Binding {
    Disk* disk = nullptr;
    std::unique_ptr<DiskAttachment> attachment;
  };
  Scheduler* scheduler_;
  StorageFaults defaults_;
  std::vector<std::unique_ptr<Disk>> disks_;  // disks_[id - 1].
  std::vector<Binding> bindings_;             // By GroupId.
  std::vector<std::unique_ptr<DiskAttachment>> retired_;
};

}  // namespace dsim

#endif  // DSIM_DISK_DISKS_H_
