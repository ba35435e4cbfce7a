#include "disk/disks.h"

#include <utility>

#include "scheduler/internal/check.h"

namespace dsim {

Disks::Disks(Scheduler* scheduler, StorageFaults defaults)
    : scheduler_(scheduler), defaults_(defaults) {
  DSIM_CHECK(scheduler_->extension(Scheduler::kDiskExtension) == nullptr,
             "a scheduler has one Disks");
  scheduler_->SetExtension(Scheduler::kDiskExtension, this);
}

Disks::~Disks() {
  // Tasks blocked on file locks must unwind before the tables holding the wait queues.
  if (scheduler_->live_tasks() > 0 && Scheduler::Current() == nullptr) scheduler_->Shutdown();
  // Attachments (open files) go first: they point into the disks.
  for (Binding& binding : bindings_) binding.attachment.reset();
  retired_.clear();
  scheduler_->SetExtension(Scheduler::kDiskExtension, nullptr);
}

Disks* Disks::Current() {
  Scheduler* scheduler = Scheduler::Current();
  return scheduler == nullptr
             ? nullptr
             : static_cast<Disks*>(scheduler->extension(Scheduler::kDiskExtension));
}

DiskId Disks::AddDisk(std::string name) {
  const DiskId id = static_cast<DiskId>(disks_.size() + 1);
  disks_.push_back(std::make_unique<Disk>(scheduler_, id, std::move(name)));
  disks_.back()->set_faults(defaults_);
  return id;
}

Disk& Disks::disk(DiskId id) {
  DSIM_CHECK(id >= 1 && id <= disks_.size(), "no disk ", id);
  return *disks_[id - 1];
}

void Disks::BindGroup(GroupId group, DiskId id) {
  if (bindings_.size() <= group) bindings_.resize(group + 1);
  UnbindGroup(group);
  bindings_[group].disk = &disk(id);
  bindings_[group].disk->set_group(group);
}

void Disks::UnbindGroup(GroupId group) {
  if (group >= bindings_.size()) return;
  if (bindings_[group].attachment != nullptr) {
    bindings_[group].attachment->Detach();
    retired_.push_back(std::move(bindings_[group].attachment));
  }
  bindings_[group].disk = nullptr;
}

std::unique_ptr<DiskAttachment>& Disks::attachment(GroupId group) {
  DSIM_CHECK(group < bindings_.size() && bindings_[group].disk != nullptr, "group ", group,
             " has no disk");
  return bindings_[group].attachment;
}

void Disks::Swap(DiskId a, DiskId b) {
  if (a == b) return;
  disk(a).SwapContents(disk(b));
}

}  // namespace dsim
