#include "disk/disk.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/internal/check.h"

namespace dsim {
namespace {

constexpr mode_t kRootMode = S_IFDIR | 0755;

}  // namespace

Disk::Disk(Scheduler* scheduler, DiskId id, std::string name)
    : scheduler_(scheduler), id_(id), name_(std::move(name)) {
  Reset();
}

uint64_t Disk::Blocks(uint64_t bytes) {
  return (bytes + kDiskBlockBytes - 1) / kDiskBlockBytes * kDiskBlockBytes;
}

uint64_t Disk::FileBytes(const Inode& inode) const {
  if (inode.is_dir()) return kDiskBlockBytes;
  return Blocks(std::max<uint64_t>(inode.data.size(), inode.allocated_bytes));
}

void Disk::Reset() {
  image_ = Image{};
  // File times are the host's wall clock (CLOCK_REALTIME, skew and steps included), as
  // the kernel stamps them; outside a host's task, true time. (LocalNow everywhere here.)
  const absl::Time now = scheduler_->LocalNow();
  Inode& root = image_.cache[kRootIno];
  root.ino = kRootIno;
  root.mode = kRootMode;
  root.parent = kRootIno;
  root.nlink = 2;
  root.atime = root.mtime = root.ctime = now;
  DurableInode& durable = image_.durable[kRootIno];
  durable.mode = kRootMode;
  durable.parent = kRootIno;
  durable.mtime = durable.ctime = now;
  image_.used_bytes = kDiskBlockBytes;
}

Inode* Disk::Find(Ino ino) {
  auto it = image_.cache.find(ino);
  return it == image_.cache.end() ? nullptr : &it->second;
}

Ino Disk::Lookup(Ino dir, absl::string_view name) {
  Inode* inode = Find(dir);
  DSIM_CHECK(inode != nullptr && inode->is_dir());
  auto it = inode->entries.find(std::string(name));
  return it == inode->entries.end() ? kNoIno : it->second;
}

void Disk::Push(PendingOp op) {
  image_.pending.push_back(std::move(op));
  ++image_.pending_live;
}

// Drops dead operations: those at the front at once, the others once they outnumber
// the live ones (amortized O(1) per operation), so the queue stays proportional to what
// is pending even when an old operation (a create whose directory is never fsynced)
// stays live at the front.
void Disk::Compact() {
  std::deque<PendingOp>& pending = image_.pending;
  while (!pending.empty() && !pending.front().live) pending.pop_front();
  if (image_.pending_live == 0) {
    pending.clear();
  } else if (pending.size() > 2 * image_.pending_live + 32) {
    pending.erase(std::remove_if(pending.begin(), pending.end(),
                                 [](const PendingOp& op) { return !op.live; }),
                  pending.end());
  }
  DSIM_DCHECK(pending.size() >= image_.pending_live);
}

Ino Disk::Create(Ino dir, absl::string_view name, mode_t mode) {
  Inode* parent = Find(dir);
  DSIM_CHECK(parent != nullptr && parent->is_dir());
  const Ino ino = image_.next_ino++;
  const absl::Time now = scheduler_->LocalNow();
  Inode& inode = image_.cache[ino];
  parent = Find(dir);  // The map insert may not move nodes, but be plain about it.
  inode.ino = ino;
  inode.mode = mode;
  inode.atime = inode.mtime = inode.ctime = now;
  if (inode.is_dir()) {
    inode.parent = dir;
    inode.nlink = 2;
    ++parent->nlink;
  } else {
    inode.nlink = 1;
  }
  parent->entries.emplace(std::string(name), ino);
  parent->mtime = parent->ctime = now;
  image_.used_bytes += FileBytes(inode);
  PendingOp op{OpKind::kDirectory};
  op.edits.push_back({dir, std::string(name), ino, mode, inode.parent});
  Push(std::move(op));
  return ino;
}

void Disk::Link(Ino dir, absl::string_view name, Ino target) {
  Inode* parent = Find(dir);
  Inode* inode = Find(target);
  DSIM_CHECK(parent != nullptr && inode != nullptr && !inode->is_dir());
  parent->entries.emplace(std::string(name), target);
  ++inode->nlink;
  parent->mtime = parent->ctime = inode->ctime = scheduler_->LocalNow();
  PendingOp op{OpKind::kDirectory};
  op.edits.push_back({dir, std::string(name), target, inode->mode, kNoIno});
  Push(std::move(op));
}

void Disk::Unlink(Ino dir, absl::string_view name) {
  Inode* parent = Find(dir);
  DSIM_CHECK(parent != nullptr);
  auto it = parent->entries.find(std::string(name));
  DSIM_CHECK(it != parent->entries.end());
  const Ino target = it->second;
  parent->entries.erase(it);
  Inode* inode = Find(target);
  const absl::Time now = scheduler_->LocalNow();
  parent->mtime = parent->ctime = inode->ctime = now;
  if (inode->is_dir()) {
    --parent->nlink;
    inode->nlink = 0;
  } else {
    --inode->nlink;
  }
  PendingOp op{OpKind::kDirectory};
  op.edits.push_back({dir, std::string(name), kNoIno, 0, kNoIno});
  Push(std::move(op));
  MaybeFree(target);
}

void Disk::Rename(Ino from_dir, absl::string_view from, Ino to_dir, absl::string_view to,
                  bool exchange) {
  Inode* source_parent = Find(from_dir);
  Inode* target_parent = Find(to_dir);
  DSIM_CHECK(source_parent != nullptr && target_parent != nullptr);
  const std::string from_name(from), to_name(to);
  const Ino moved = source_parent->entries.at(from_name);
  auto existing = target_parent->entries.find(to_name);
  const Ino replaced = existing == target_parent->entries.end() ? kNoIno : existing->second;
  const absl::Time now = scheduler_->LocalNow();
  PendingOp op{OpKind::kDirectory};
  Inode* moved_inode = Find(moved);
  if (exchange) {
    DSIM_CHECK(replaced != kNoIno);
    Inode* other = Find(replaced);
    source_parent->entries[from_name] = replaced;
    target_parent->entries[to_name] = moved;
    if (moved_inode->is_dir()) moved_inode->parent = to_dir;
    if (other->is_dir()) other->parent = from_dir;
    if (moved_inode->is_dir() != other->is_dir() && from_dir != to_dir) {
      // A directory moved one way and a file the other: ".." counts follow.
      Inode* gains = moved_inode->is_dir() ? target_parent : source_parent;
      Inode* loses = moved_inode->is_dir() ? source_parent : target_parent;
      ++gains->nlink;
      --loses->nlink;
    }
    other->ctime = now;
    op.edits.push_back({from_dir, from_name, replaced, other->mode, other->parent});
    op.edits.push_back({to_dir, to_name, moved, moved_inode->mode, moved_inode->parent});
  } else {
    source_parent->entries.erase(from_name);
    if (replaced != kNoIno) {
      Inode* old = Find(replaced);
      if (old->is_dir()) {
        old->nlink = 0;
        --target_parent->nlink;
      } else {
        --old->nlink;
      }
    }
    target_parent->entries[to_name] = moved;
    if (moved_inode->is_dir()) {
      moved_inode->parent = to_dir;
      --source_parent->nlink;
      ++target_parent->nlink;
    }
    op.edits.push_back({from_dir, from_name, kNoIno, 0, kNoIno});
    op.edits.push_back({to_dir, to_name, moved, moved_inode->mode, moved_inode->parent});
    if (replaced != kNoIno) MaybeFree(replaced);
  }
  source_parent->mtime = source_parent->ctime = now;
  target_parent->mtime = target_parent->ctime = now;
  moved_inode->ctime = now;
  Push(std::move(op));
}

size_t Disk::Write(Ino ino, uint64_t offset, absl::string_view bytes) {
  Inode* inode = Find(ino);
  DSIM_CHECK(inode != nullptr && inode->is_file());
  size_t length = bytes.size();
  if (length == 0) return 0;
  if (faults_.capacity_bytes != 0) {
    // Whole blocks fit while used + growth <= capacity; write what fits.
    const uint64_t before = FileBytes(*inode);
    const uint64_t free_bytes =
        faults_.capacity_bytes > image_.used_bytes ? faults_.capacity_bytes - image_.used_bytes
                                                   : 0;
    const uint64_t limit_end = before + free_bytes;  // The highest end that fits.
    const uint64_t end = offset + length;
    if (end > std::max<uint64_t>(limit_end, before)) {
      const uint64_t fits_end = std::max<uint64_t>(limit_end, before);
      length = fits_end > offset ? static_cast<size_t>(fits_end - offset) : 0;
      AnnotateFault("fault.disk.enospc",
                    absl::StrCat(name_, ": ino ", ino, " write of ", bytes.size(), " at ", offset,
                                 " fits ", length, " bytes (capacity ", faults_.capacity_bytes,
                                 ")"));
      if (length == 0) return 0;
    }
  }
  const uint64_t before = FileBytes(*inode);
  if (inode->data.size() < offset + length) inode->data.resize(offset + length, '\0');
  std::copy(bytes.data(), bytes.data() + length, inode->data.begin() + offset);
  image_.used_bytes += FileBytes(*inode) - before;
  inode->mtime = inode->ctime = scheduler_->LocalNow();
  PendingOp op{OpKind::kWrite};
  op.ino = ino;
  op.offset = offset;
  op.bytes.assign(bytes.data(), length);
  Push(std::move(op));
  return length;
}

void Disk::Truncate(Ino ino, uint64_t size) {
  Inode* inode = Find(ino);
  DSIM_CHECK(inode != nullptr && inode->is_file());
  const uint64_t before = FileBytes(*inode);
  inode->data.resize(size, '\0');
  if (inode->allocated_bytes > size) inode->allocated_bytes = size;
  image_.used_bytes = image_.used_bytes - before + FileBytes(*inode);
  inode->mtime = inode->ctime = scheduler_->LocalNow();
  PendingOp op{OpKind::kTruncate};
  op.ino = ino;
  op.offset = size;
  Push(std::move(op));
}

bool Disk::Allocate(Ino ino, uint64_t offset, uint64_t length, bool keep_size) {
  Inode* inode = Find(ino);
  DSIM_CHECK(inode != nullptr && inode->is_file());
  const uint64_t end = offset + length;
  const uint64_t before = FileBytes(*inode);
  const uint64_t after = Blocks(std::max<uint64_t>({inode->data.size(), inode->allocated_bytes,
                                                    end}));
  if (faults_.capacity_bytes != 0 && image_.used_bytes - before + after > faults_.capacity_bytes) {
    AnnotateFault("fault.disk.enospc", absl::StrCat(name_, ": fallocate of ", length, " at ",
                                                    offset, " does not fit"));
    return false;
  }
  inode->allocated_bytes = std::max(inode->allocated_bytes, end);
  image_.used_bytes = image_.used_bytes - before + after;
  inode->ctime = scheduler_->LocalNow();
  if (!keep_size && end > inode->data.size()) {
    inode->data.resize(end, '\0');
    inode->mtime = inode->ctime;
    PendingOp op{OpKind::kTruncate};
    op.ino = ino;
    op.offset = end;
    Push(std::move(op));
  }
  return true;
}

size_t Disk::Read(Ino ino, uint64_t offset, char* out, size_t length) {
  Inode* inode = Find(ino);
  DSIM_CHECK(inode != nullptr);
  if (offset >= inode->data.size()) return 0;
  const size_t n = std::min<uint64_t>(length, inode->data.size() - offset);
  std::copy(inode->data.data() + offset, inode->data.data() + offset + n, out);
  return n;
}

void Disk::MaybeFree(Ino ino) {
  Inode* inode = Find(ino);
  if (inode == nullptr || inode->nlink > 0 || inode->open_count > 0 || ino == kRootIno) return;
  image_.used_bytes -= FileBytes(*inode);
  image_.cache.erase(ino);
}

// ---- Durability ----------------------------------------------------------------------

void Disk::ApplyWriteToDurable(Ino ino, uint64_t offset, absl::string_view bytes) {
  DurableInode& durable = image_.durable[ino];
  if (durable.mode == 0) durable.mode = S_IFREG | 0644;
  if (durable.data.size() < offset + bytes.size()) durable.data.resize(offset + bytes.size());
  std::copy(bytes.begin(), bytes.end(), durable.data.begin() + offset);
}

void Disk::ApplyToDurable(const PendingOp& op) {
  switch (op.kind) {
    case OpKind::kWrite:
      ApplyWriteToDurable(op.ino, op.offset, op.bytes);
      return;
    case OpKind::kTruncate: {
      DurableInode& durable = image_.durable[op.ino];
      if (durable.mode == 0) durable.mode = S_IFREG | 0644;
      durable.data.resize(op.offset, '\0');
      return;
    }
    case OpKind::kDirectory:
      for (const EntryEdit& edit : op.edits) {
        auto dir = image_.durable.find(edit.dir);
        // The directory itself never became durable: its entries go with it.
        if (dir == image_.durable.end()) continue;
        if (edit.ino == kNoIno) {
          dir->second.entries.erase(edit.name);
          continue;
        }
        DurableInode& target = image_.durable[edit.ino];
        if (target.mode == 0) target.mode = edit.mode;
        if (S_ISDIR(edit.mode)) target.parent = edit.parent;
        image_.durable[edit.dir].entries[edit.name] = edit.ino;
      }
      return;
  }
}

// Writes a write's data as the disk sees it, with the write-path faults: a lost write
// never arrives, a misdirected one lands at another sector-aligned offset.
void Disk::ApplyDataWithFaults(PendingOp& op) {
  if (op.kind == OpKind::kWrite) {
    if (FaultChance(faults_.lost_write_probability, "fault.disk.lost_write")) {
      AnnotateFault("fault.disk.lost_write",
                    absl::StrCat(name_, ": ino ", op.ino, " ", op.bytes.size(), " bytes at ",
                                 op.offset, " never reach the disk"));
      return;
    }
    if (FaultChance(faults_.misdirected_write_probability, "fault.disk.misdirected_write")) {
      const uint64_t shift_sectors = 1 + scheduler_->random().Below(8);
      const uint64_t wrong = op.offset + shift_sectors * kDiskSectorBytes;
      AnnotateFault("fault.disk.misdirected_write",
                    absl::StrCat(name_, ": ino ", op.ino, " ", op.bytes.size(), " bytes for ",
                                 op.offset, " land at ", wrong));
      ApplyWriteToDurable(op.ino, wrong, op.bytes);
      return;
    }
  }
  ApplyToDurable(op);
}

int Disk::Sync(Ino ino, bool data_only) {
  Inode* inode = Find(ino);
  DSIM_CHECK(inode != nullptr);
  if (inode->is_dir()) {
    CommitDirectoryPrefix(ino);
    return 0;
  }
  bool dirty = false;
  for (const PendingOp& op : image_.pending) {
    if (op.live && op.kind != OpKind::kDirectory && op.ino == ino) {
      dirty = true;
      break;
    }
  }
  if (dirty && FaultChance(faults_.fsync_error_probability, "fault.disk.fsync_eio")) {
    // Linux: the failed pages are marked clean, their data stays in the cache only.
    size_t dropped = 0;
    for (PendingOp& op : image_.pending) {
      if (op.live && op.kind != OpKind::kDirectory && op.ino == ino) {
        op.live = false;
        --image_.pending_live;
        ++dropped;
      }
    }
    ++inode->writeback_error_seq;
    AnnotateFault("fault.disk.fsync_eio",
                  absl::StrCat(name_, ": fsync of ino ", ino, " fails, ", dropped,
                               " dirty writes dropped"));
    Compact();
    return -EIO;
  }
  for (PendingOp& op : image_.pending) {
    if (op.live && op.kind != OpKind::kDirectory && op.ino == ino) {
      ApplyDataWithFaults(op);
      op.live = false;
      --image_.pending_live;
    }
  }
  auto durable = image_.durable.find(ino);
  if (!data_only && durable != image_.durable.end()) {
    durable->second.mtime = inode->mtime;
    durable->second.ctime = inode->ctime;
  }
  if (faults_.fsync_commits_directory_operations) CommitAllDirectoryOperations();
  Compact();
  return 0;
}

// ext4: a journal commit makes every directory operation issued so far durable.
void Disk::CommitAllDirectoryOperations() {
  for (PendingOp& op : image_.pending) {
    if (!op.live || op.kind != OpKind::kDirectory) continue;
    ApplyToDurable(op);
    op.live = false;
    --image_.pending_live;
  }
}

// fsync of a directory: its operations, and (as a journal commit) every directory
// operation issued before the last of them, become durable in order.
void Disk::CommitDirectoryPrefix(Ino dir) {
  size_t last = image_.pending.size();
  for (size_t i = 0; i < image_.pending.size(); ++i) {
    const PendingOp& op = image_.pending[i];
    if (!op.live || op.kind != OpKind::kDirectory) continue;
    for (const EntryEdit& edit : op.edits) {
      if (edit.dir == dir) last = i;
    }
  }
  if (last == image_.pending.size()) return;
  for (size_t i = 0; i <= last; ++i) {
    PendingOp& op = image_.pending[i];
    if (!op.live || op.kind != OpKind::kDirectory) continue;
    ApplyToDurable(op);
    op.live = false;
    --image_.pending_live;
  }
  Inode* inode = Find(dir);
  auto durable = image_.durable.find(dir);
  if (inode != nullptr && durable != image_.durable.end()) {
    durable->second.mtime = inode->mtime;
    durable->second.ctime = inode->ctime;
  }
  Compact();
}

void Disk::SyncAll() {
  for (PendingOp& op : image_.pending) {
    if (!op.live) continue;
    ApplyDataWithFaults(op);
    op.live = false;
  }
  image_.pending.clear();
  image_.pending_live = 0;
  for (auto& [ino, inode] : image_.cache) {
    auto durable = image_.durable.find(ino);
    if (durable == image_.durable.end()) continue;
    durable->second.mtime = inode.mtime;
    durable->second.ctime = inode.ctime;
  }
}

// ---- Crash -------------------------------------------------------------------------------

// Keeps part of a write: a prefix of its sectors when it extends the durable file (an
// append grows the size contiguously), any subset of them when it overwrites.
void Disk::ApplyTornToDurable(const PendingOp& op) {
  const uint64_t first_sector = op.offset / kDiskSectorBytes;
  const uint64_t end = op.offset + op.bytes.size();
  const uint64_t last_sector = (end - 1) / kDiskSectorBytes;
  const uint64_t sectors = last_sector - first_sector + 1;
  if (sectors < 2) return;  // A sector is written whole or not at all.
  auto sector_range = [&](uint64_t sector, uint64_t* from, uint64_t* to) {
    *from = std::max(op.offset, sector * kDiskSectorBytes);
    *to = std::min(end, (sector + 1) * kDiskSectorBytes);
  };
  const auto durable = image_.durable.find(op.ino);
  const uint64_t durable_size = durable == image_.durable.end() ? 0 : durable->second.data.size();
  if (end > durable_size) {
    const uint64_t kept = 1 + scheduler_->ChooseValue(sectors - 1, "fault.disk.torn_sectors");
    uint64_t from, to;
    sector_range(first_sector + kept - 1, &from, &to);
    ApplyWriteToDurable(op.ino, op.offset,
                        absl::string_view(op.bytes).substr(0, to - op.offset));
    return;
  }
  for (uint64_t sector = first_sector; sector <= last_sector; ++sector) {
    if (scheduler_->ChooseValue(2, "fault.disk.torn_sector") == 0) continue;
    uint64_t from, to;
    sector_range(sector, &from, &to);
    ApplyWriteToDurable(op.ino, from,
                        absl::string_view(op.bytes).substr(from - op.offset, to - from));
  }
}

void Disk::Crash() {
  std::vector<PendingOp*> live;
  for (PendingOp& op : image_.pending) {
    if (op.live) live.push_back(&op);
  }
  size_t kept = 0, lost = 0, torn = 0;
  if (!live.empty()) {
    const uint64_t mode = scheduler_->ChooseValue(4, "fault.disk.crash_mode");
    const size_t n = live.size();
    auto keep = [&](PendingOp* op) {
      ApplyToDurable(*op);
      ++kept;
    };
    auto tear = [&](PendingOp* op) {
      if (op->kind == OpKind::kWrite) {
        ApplyTornToDurable(*op);
        ++torn;
      } else {
        ++lost;
      }
    };
    if (mode == 0) {
      for (PendingOp* op : live) keep(op);
    } else if (mode == 1) {
      lost = n;
    } else if (mode == 2) {
      // Value 0 keeps everything: the closer to 0, the smaller the loss.
      const size_t cut = n - scheduler_->ChooseValue(n + 1, "fault.disk.crash_cut");
      for (size_t i = 0; i < cut; ++i) keep(live[i]);
      if (cut < n) {
        if (scheduler_->ChooseValue(2, "fault.disk.crash_torn") == 1) {
          tear(live[cut]);
        } else {
          ++lost;
        }
        lost += n - cut - 1;
      }
    } else {
      size_t directory_ops = 0;
      for (PendingOp* op : live) directory_ops += op->kind == OpKind::kDirectory;
      const size_t journal_cut =
          directory_ops -
          (directory_ops == 0 ? 0
                              : scheduler_->ChooseValue(directory_ops + 1,
                                                        "fault.disk.crash_journal_cut"));
      size_t directory_index = 0;
      for (PendingOp* op : live) {
        if (op->kind == OpKind::kDirectory) {
          if (directory_index++ < journal_cut) {
            keep(op);
          } else {
            ++lost;
          }
          continue;
        }
        const uint64_t fate = scheduler_->ChooseValue(3, "fault.disk.crash_write");
        if (fate == 0) {
          keep(op);
        } else if (fate == 1) {
          ++lost;
        } else {
          tear(op);
        }
      }
    }
    AnnotateFault("fault.disk.crash",
                  absl::StrCat(name_, ": power loss with ", n, " pending operations (mode ",
                               mode, "): ", kept, " kept, ", lost, " lost, ", torn, " torn"));
  }
  image_.pending.clear();
  image_.pending_live = 0;
  CollectUnreachable();
  RebuildCacheFromDurable();
}

void Disk::CollectUnreachable() {
  std::vector<Ino> stack = {kRootIno};
  std::map<Ino, bool> reached;
  while (!stack.empty()) {
    const Ino ino = stack.back();
    stack.pop_back();
    if (reached[ino]) continue;
    reached[ino] = true;
    auto it = image_.durable.find(ino);
    if (it == image_.durable.end()) continue;
    for (const auto& [name, child] : it->second.entries) stack.push_back(child);
  }
  for (auto it = image_.durable.begin(); it != image_.durable.end();) {
    auto found = reached.find(it->first);
    if (found == reached.end()) {
      it = image_.durable.erase(it);
    } else {
      ++it;
    }
  }
}

void Disk::RebuildCacheFromDurable() {
  image_.cache.clear();
  image_.used_bytes = 0;
  for (const auto& [ino, durable] : image_.durable) {
    Inode& inode = image_.cache[ino];
    inode.ino = ino;
    inode.mode = durable.mode;
    inode.data = durable.data;
    inode.entries = durable.entries;
    inode.parent = durable.parent;
    inode.atime = inode.mtime = durable.mtime;
    inode.ctime = durable.ctime;
    inode.nlink = inode.is_dir() ? 2 : 0;
  }
  for (auto& [ino, inode] : image_.cache) {
    for (const auto& [name, child] : inode.entries) {
      Inode& target = image_.cache.at(child);
      if (target.is_dir()) {
        ++inode.nlink;
      } else {
        ++target.nlink;
      }
    }
  }
  for (const auto& [ino, inode] : image_.cache) image_.used_bytes += FileBytes(inode);
}

void Disk::Wipe() {
  AnnotateFault("fault.disk.wipe", absl::StrCat(name_, ": wiped"));
  Reset();
}

void Disk::SwapContents(Disk& other) {
  AnnotateFault("fault.disk.swap", absl::StrCat(name_, " <-> ", other.name_));
  std::swap(image_, other.image_);
}

void Disk::CopyContentsFrom(const Disk& other) {
  image_ = other.image_;
  for (auto& [ino, inode] : image_.cache) inode.open_count = 0;  // Nobody has it open.
}

// ---- Faults and inspection ------------------------------------------------------------

bool Disk::FaultChance(double probability, const char* label) {
  if (!(probability > 0)) return false;
  if (probability >= 1) return true;
  // Values at the top of the range are faults, so 0 (where shrinking goes) is none.
  constexpr uint64_t kRange = uint64_t{1} << 24;
  const auto faults = static_cast<uint64_t>(probability * kRange + 0.5);
  if (faults == 0) return false;
  return scheduler_->ChooseValue(kRange, label) >= kRange - faults;
}

void Disk::AnnotateFault(const char* category, const std::string& detail) {
  if (!scheduler_->has_listeners()) return;
  scheduler_->Annotate(Annotation{category, detail, group_, 0, 0});
}

namespace {

template <typename Map>
const typename Map::mapped_type* WalkPath(const Map& inodes, absl::string_view path) {
  auto it = inodes.find(kRootIno);
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (it == inodes.end()) return nullptr;
    auto entry = it->second.entries.find(std::string(part));
    if (entry == it->second.entries.end()) return nullptr;
    it = inodes.find(entry->second);
  }
  return it == inodes.end() ? nullptr : &it->second;
}

}  // namespace

std::string Disk::DurableContent(absl::string_view path, bool* exists) const {
  const DurableInode* inode = WalkPath(image_.durable, path);
  const bool found = inode != nullptr && S_ISREG(inode->mode);
  if (exists != nullptr) *exists = found;
  return found ? inode->data : std::string();
}

std::string Disk::CachedContent(absl::string_view path, bool* exists) const {
  const Inode* inode = WalkPath(image_.cache, path);
  const bool found = inode != nullptr && inode->is_file();
  if (exists != nullptr) *exists = found;
  return found ? inode->data : std::string();
}

std::vector<std::string> Disk::DurableTree() const {
  std::vector<std::string> out;
  std::vector<std::pair<Ino, std::string>> stack = {{kRootIno, "/"}};
  while (!stack.empty()) {
    auto [ino, prefix] = stack.back();
    stack.pop_back();
    auto it = image_.durable.find(ino);
    if (it == image_.durable.end()) continue;
    for (const auto& [name, child] : it->second.entries) {
      auto target = image_.durable.find(child);
      const bool dir = target != image_.durable.end() && S_ISDIR(target->second.mode);
      out.push_back(absl::StrCat(prefix, name, dir ? "/" : ""));
      if (dir) stack.push_back({child, absl::StrCat(prefix, name, "/")});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dsim
