#include "files/internal/file_table.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "scheduler/internal/check.h"

namespace dsim::internal {
namespace {

bool Overlaps(const RangeLock& lock, uint64_t start, uint64_t end) {
  return lock.start < end && start < lock.end;
}

}  // namespace

FileTable::~FileTable() {
  Detach();
  for (auto& [address, length] : mappings_) munmap(address, length);
}

void FileTable::Detach() {
  if (disk_ == nullptr) return;
  range_locks_.clear();
  flocks_.clear();
  lock_waiters_.WakeAll();
  disk_ = nullptr;
}

void FileTable::OnFileClosed(Ino ino, uint64_t file_id) {
  if (detached()) return;
  ReleaseLocks(ino, file_id);
  if (Inode* inode = disk_->Find(ino); inode != nullptr) {
    --inode->open_count;
    disk_->MaybeFree(ino);
  }
}

// close(2) drops the description's OFD and flock locks and, POSIX's famous rule, every
// POSIX lock the process holds on the file, whichever descriptor took it.
void FileTable::ReleaseLocks(Ino ino, uint64_t file_id) {
  bool released = false;
  if (auto it = range_locks_.find(ino); it != range_locks_.end()) {
    auto& locks = it->second;
    const size_t before = locks.size();
    locks.erase(std::remove_if(locks.begin(), locks.end(),
                               [&](const RangeLock& l) {
                                 return l.owner == 0 || l.owner == file_id;
                               }),
                locks.end());
    released |= locks.size() != before;
    if (locks.empty()) range_locks_.erase(it);
  }
  if (auto it = flocks_.find(ino); it != flocks_.end()) {
    released |= it->second.erase(file_id) != 0;
    if (it->second.empty()) flocks_.erase(it);
  }
  if (released) lock_waiters_.WakeAll();
}

const RangeLock* FileTable::FindConflict(Ino ino, uint64_t owner, short type, uint64_t start,
                                         uint64_t end) const {
  auto it = range_locks_.find(ino);
  if (it == range_locks_.end()) return nullptr;
  for (const RangeLock& lock : it->second) {
    if (lock.owner == owner || !Overlaps(lock, start, end)) continue;
    if (lock.type == F_WRLCK || type == F_WRLCK) return &lock;
  }
  return nullptr;
}

// Replaces the owner's locks over [start, end) by one of `type` (none for F_UNLCK),
// splitting the owner's locks that stick out on either side.
void FileTable::SetRangeLock(Ino ino, uint64_t owner, short type, uint64_t start,
                             uint64_t end) {
  std::vector<RangeLock>& locks = range_locks_[ino];
  std::vector<RangeLock> kept;
  for (const RangeLock& lock : locks) {
    if (lock.owner != owner || !Overlaps(lock, start, end)) {
      kept.push_back(lock);
      continue;
    }
    if (lock.start < start) kept.push_back({owner, lock.type, lock.start, start});
    if (lock.end > end) kept.push_back({owner, lock.type, end, lock.end});
  }
  if (type != F_UNLCK) kept.push_back({owner, type, start, end});
  locks = std::move(kept);
  if (locks.empty()) range_locks_.erase(ino);
  lock_waiters_.WakeAll();
}

bool FileTable::FlockConflict(Ino ino, uint64_t owner, bool exclusive) const {
  auto it = flocks_.find(ino);
  if (it == flocks_.end()) return false;
  for (const auto& [holder, type] : it->second) {
    if (holder == owner) continue;
    if (exclusive || type == LOCK_EX) return true;
  }
  return false;
}

void FileTable::SetFlock(Ino ino, uint64_t owner, int type) {
  if (type == LOCK_UN) {
    if (auto it = flocks_.find(ino); it != flocks_.end()) {
      it->second.erase(owner);
      if (it->second.empty()) flocks_.erase(it);
    }
  } else {
    flocks_[ino][owner] = type;
  }
  lock_waiters_.WakeAll();
}

DirStream* FileTable::NewDirStream() {
  auto stream = std::make_unique<DirStream>();
  DirStream* raw = stream.get();
  dir_streams_.emplace(raw, std::move(stream));
  return raw;
}

size_t FileTable::TakeMapping(void* address) {
  auto it = mappings_.find(address);
  if (it == mappings_.end()) return 0;
  const size_t length = it->second;
  mappings_.erase(it);
  return length;
}

int FileTable::Fail(int error, std::string message) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler != nullptr && scheduler->InTask()) {
    messages_[scheduler->CurrentTaskId()] = std::move(message);
  }
  return -error;
}

const std::string& FileTable::LastMessage(TaskId task) const {
  static const std::string* const kNone = new std::string();
  auto it = messages_.find(task);
  return it == messages_.end() ? *kNone : it->second;
}

}  // namespace dsim::internal
