#include "scheduler/internal/stack_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
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
constexpr size_t kMaxSlotsPerSlab = 64;
constexpr size_t kMaxSlabBytes = size_t{16} << 20;

size_t RoundUpToPages(size_t bytes) {
  const size_t page = StackPool::PageSize();
  return (bytes + page - 1) / page * page;
}

void* MapOrDie(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  DSIM_CHECK(p != MAP_FAILED, "mmap of ", bytes, " bytes for fiber stacks failed: ",
             std::strerror(errno));
  return p;
}

void ProtectOrDie(void* p, size_t bytes) {  // For slabs: one split per many stacks.
  DSIM_CHECK(mprotect(p, bytes, PROT_NONE) == 0, "mprotect of a stack guard page failed: ",
             std::strerror(errno));
}

}  // namespace

size_t StackPool::PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

int64_t StackPool::GuardedStacksInProcess() { return guarded_in_process.load(); }

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
  if (guarded_in_process.fetch_add(1) >= guarded_budget.load()) {
    guarded_in_process.fetch_sub(1);
    return false;
  }
  const size_t page = PageSize();
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
  const size_t page = PageSize();
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
