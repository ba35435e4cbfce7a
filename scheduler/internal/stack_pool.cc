#include "scheduler/internal/stack_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include <optional>

#include "scheduler/internal/check.h"

#if defined(__SANITIZE_ADDRESS__)
#define DSIM_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DSIM_POOL_ASAN 1
#endif
#endif
#ifdef DSIM_POOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace dsim::internal {
namespace {

// Process-wide accounting of guarded stacks. This is resource accounting, not simulation
// state: whether a stack is guarded never changes what a simulation does.
std::atomic<int64_t> guarded_in_process{0};
std::atomic<int64_t> guarded_budget{kDefaultGuardedStackBudget};

// Bytes at the top of each slab slot reserved for the canary of the slot above.
constexpr size_t kCanaryReserve = kCanaryWords * sizeof(uint64_t);
// Slab sizing: at most this many slots, and at most this many bytes, per slab.
// 256 slots of the default 64 KiB make a 16 MiB slab: two mappings per 256 tasks, so
// vm.max_map_count's default (65530) allows about 5.7 million live slab stacks; memory
// (about 4.5 KiB per idle task) runs out first on most machines.
constexpr size_t kMaxSlotsPerSlab = 256;
constexpr size_t kMaxSlabBytes = size_t{16} << 20;

size_t RoundUpToPages(size_t bytes) {
  const size_t page = StackPool::PageSize();
  return (bytes + page - 1) / page * page;
}

std::atomic<bool> fail_mappings_for_testing{false};

// The kernel's cap on a process's mappings, or 0 if unknown.
long MaxMapCount() {
  static const long limit = [] {
    long value = 0;
    if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
      if (std::fscanf(f, "%ld", &value) != 1) value = 0;
      std::fclose(f);
    }
    return value;
  }();
  return limit;
}

long MappingsInUse() {
  long lines = 0;
  if (FILE* f = std::fopen("/proc/self/maps", "r")) {
    for (int c; (c = std::fgetc(f)) != EOF;) lines += c == '\n';
    std::fclose(f);
  }
  return lines;
}

// ENOMEM from mmap or mprotect of a stack almost always means the mapping limit, not
// memory: say so, and what to do.
[[noreturn]] void MappingFailed(const char* call, size_t bytes, int error) {
  if (error == ENOMEM) {
    MisuseFailed(__FILE__, __LINE__,
                 absl::StrCat(
                     "cannot create more fiber stacks: ", call, " of ", bytes,
                     " bytes failed with ENOMEM, which here means the process reached the "
                     "kernel's limit on memory mappings, vm.max_map_count = ", MaxMapCount(),
                     " (", MappingsInUse(), " mappings in use). Each guarded stack takes two mappings and "
                     "each slab of up to ", kMaxSlotsPerSlab,
                     " stacks two more. Raise the limit (sysctl -w vm.max_map_count=1048576), "
                     "or run fewer live tasks at once"));
  }
  CheckFailed(__FILE__, __LINE__, call,
              absl::StrCat(call, " of ", bytes, " bytes for fiber stacks failed: ",
                           std::strerror(error)));
}

void* MapOrDie(size_t bytes) {
  void* p = fail_mappings_for_testing.load()
                ? MAP_FAILED
                : mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (fail_mappings_for_testing.load()) errno = ENOMEM;
  if (p == MAP_FAILED) MappingFailed("mmap", bytes, errno);
  return p;
}

void ProtectOrDie(void* p, size_t bytes) {  // For slabs: one split per many stacks.
  if (mprotect(p, bytes, PROT_NONE) != 0) MappingFailed("mprotect of a stack guard", bytes, errno);
}

}  // namespace

size_t StackPool::PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

int64_t StackPool::GuardedStacksInProcess() { return guarded_in_process.load(); }

void StackPool::FailMappingsForTesting(bool fail) { fail_mappings_for_testing.store(fail); }

int64_t StackPool::SetGuardedStackBudgetForTesting(int64_t budget) {
  return guarded_budget.exchange(budget);
}

// One retired pool per thread, unmapped when the thread exits.
class StackPool::ThreadCache {
 public:
  ~ThreadCache() {
    if (retired_.has_value()) Unmap(*retired_);
  }
  std::optional<Contents> Take() {
    std::optional<Contents> taken = std::move(retired_);
    retired_.reset();
    return taken;
  }
  // Keeps `contents` for the next pool on this thread, or unmaps it.
  void Offer(Contents contents) {
    if (retired_.has_value() || contents.stacks > kMaxCachedStacks) {
      Unmap(contents);
      return;
    }
    retired_ = std::move(contents);
  }

 private:
  std::optional<Contents> retired_;
};

StackPool::ThreadCache& StackPool::Cache() {
  thread_local ThreadCache cache;
  return cache;
}

StackPool::StackPool() {
  if (std::optional<Contents> cached = Cache().Take()) contents_ = *std::move(cached);
}

StackPool::~StackPool() { Cache().Offer(std::move(contents_)); }

void StackPool::Unmap(Contents& contents) {
  for (const Mapping& m : contents.mappings) {
    munmap(m.address, m.bytes);
    if (m.guarded) guarded_in_process.fetch_sub(1);
  }
  contents.mappings.clear();
  contents.free.clear();
  contents.stacks = 0;
}

Stack StackPool::Allocate(size_t size) {
  size = RoundUpToPages(size);
  auto it = contents_.free.find(size);
  if (it == contents_.free.end() || it->second.empty()) {
    Stack stack;
    if (TryAllocateGuarded(size, &stack)) return stack;
    AllocateSlab(size);
    it = contents_.free.find(size);
  }
  DSIM_CHECK(it != contents_.free.end() && !it->second.empty());
  Stack stack = it->second.back();
  it->second.pop_back();
  return stack;
}

void StackPool::Release(const Stack& stack) {
  DSIM_DCHECK(!stack.empty());
#ifdef DSIM_POOL_ASAN
  // A finished fiber never returns through its frames, so their redzones stay poisoned
  // in ASan's shadow memory; the next task on this stack would trip over them.
  __asan_unpoison_memory_region(stack.lo, stack.size);
#endif
  const size_t key = stack.guarded ? stack.size : stack.size + kCanaryReserve;
  contents_.free[key].push_back(stack);
}

bool StackPool::TryAllocateGuarded(size_t size, Stack* stack) {
  if (fail_mappings_for_testing.load()) return false;
  if (guarded_in_process.fetch_add(1) >= guarded_budget.load()) {
    guarded_in_process.fetch_sub(1);
    return false;
  }
  // The guard is kGuardBytes, not one page: it costs address space only (PROT_NONE,
  // never committed) and still one mapping split, and it catches a frame of up to that
  // size stepping over the guard even in code built without -fstack-clash-protection.
  const size_t page = kGuardBytes;
  void* mapped = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mapped != MAP_FAILED && mprotect(mapped, page, PROT_NONE) != 0) {
    munmap(mapped, size + page);
    mapped = MAP_FAILED;
  }
  if (mapped == MAP_FAILED) {
    // Out of mappings sooner than the budget assumed (vm.max_map_count, or a sanitizer
    // runtime that maps memory per fiber). Guard no more stacks in this process; slab
    // stacks need one mapping per many tasks.
    const int64_t in_use = guarded_in_process.fetch_sub(1) - 1;
    guarded_budget.store(in_use);
    return false;
  }
  char* base = static_cast<char*>(mapped);
  contents_.mappings.push_back({base, size + page, true});
  ++contents_.stacks;
  stack->lo = base + page;
  stack->size = size;
  stack->guard_lo = base;
  stack->guard_hi = base + page;
  stack->canary = nullptr;
  stack->guarded = true;
  return true;
}

void StackPool::AllocateSlab(size_t slot_bytes) {
  const size_t page = kGuardBytes;
  size_t slots = kMaxSlabBytes / slot_bytes;
  if (slots > kMaxSlotsPerSlab) slots = kMaxSlotsPerSlab;
  if (slots == 0) slots = 1;
  char* base = static_cast<char*>(MapOrDie(page + slots * slot_bytes));
  ProtectOrDie(base, page);
  contents_.mappings.push_back({base, page + slots * slot_bytes, false});
  std::vector<Stack>& free_list = contents_.free[slot_bytes];
  contents_.stacks += slots;
  // Push in reverse so that Allocate hands out the lowest slot first.
  for (size_t i = slots; i-- > 0;) {
    char* slot_lo = base + page + i * slot_bytes;
    Stack stack;
    stack.lo = slot_lo;
    stack.size = slot_bytes - kCanaryReserve;
    stack.guard_lo = base;
    stack.guard_hi = base + page;
    stack.guarded = false;
    if (i > 0) {
      // The canary of slot i lives in the top bytes of slot i-1, reserved for it.
      stack.canary = reinterpret_cast<uint64_t*>(slot_lo - kCanaryReserve);
      for (int w = 0; w < kCanaryWords; ++w) stack.canary[w] = kStackCanary;
    }
    free_list.push_back(stack);
  }
}

}  // namespace dsim::internal
