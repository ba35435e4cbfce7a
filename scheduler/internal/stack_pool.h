// Fiber stacks: mmap'd, lazily committed, pooled, and protected against overflow.
//
// Why two kinds of stack. Linux caps a process at vm.max_map_count mappings (65530 by
// default), and a guard page splits a mapping in two, so one guarded stack costs two
// map entries: guarded stacks alone stop near 32k live tasks. Users must never need a
// sysctl change, so:
//
//   1. Guarded stacks, while a process-wide budget lasts (kDefaultGuardedStackBudget live
//      guarded stacks across all simulations in the process). Each is its own mapping
//      with a PROT_NONE page below it. An overflow faults at once and the SIGSEGV handler,
//      running on an alternate signal stack, names the task and aborts.
//   2. Slab stacks beyond the budget. A slab maps many stack slots at once with a single
//      guard page at its bottom (one split per slab, not per stack). Between slots sits a
//      canary word, stored in the top bytes of the slot below: a page that slot's own
//      task touches anyway, so the canary costs no extra memory. At every switch away
//      from a slab-stack task the scheduler checks the canary and the stack pointer and
//      aborts with the task's name if either shows an overflow, before any other task
//      can run on corrupted memory. A deep overflow runs into the slab's guard page and
//      is caught by the SIGSEGV handler as above.
//
// All stacks are MAP_NORESERVE and touched only as used, so an idle task costs about one
// page of RSS (the top page, where its frames live).
//
// Reuse across simulations. A seed sweep builds thousands of schedulers one after another
// on each thread, and mapping and unmapping their stacks each time used to dominate the
// run time (kernel time). So a pool that dies hands its stacks to a per-thread cache of
// one retired pool, and the next pool on that thread adopts them. This is a resource
// cache like a malloc arena: it holds no simulation state, and no decision ever depends
// on which stack a task gets. Pools over kMaxCachedStacks stacks are unmapped instead.
#ifndef DSIM_SCHEDULER_INTERNAL_STACK_POOL_H_
#define DSIM_SCHEDULER_INTERNAL_STACK_POOL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace dsim::internal {

inline constexpr size_t kDefaultGuardedStackBudget = 10000;
// The PROT_NONE guard below each guarded stack and each slab: address space only.
inline constexpr size_t kGuardBytes = 256 * 1024;
// The largest pool a thread keeps for reuse when its scheduler dies.
inline constexpr size_t kMaxCachedStacks = 4096;
inline constexpr uint64_t kStackCanary = 0xd51dca7a5713c4a1ULL;
// Words of canary between slab slots: the whole 64-byte reserve at the top of each slot.
inline constexpr int kCanaryWords = 8;

struct Stack {
  char* lo = nullptr;         // Lowest usable byte.
  size_t size = 0;            // Usable bytes; the stack grows down from lo + size.
  char* guard_lo = nullptr;   // The PROT_NONE range an overflow runs into.
  char* guard_hi = nullptr;
  uint64_t* canary = nullptr; // Slab stacks: kCanaryWords words just below `lo`; else null.
  bool guarded = false;       // Own mapping with its own guard page.

  char* top() const { return lo + size; }
  bool empty() const { return lo == nullptr; }
  bool Contains(const void* p) const {
    return static_cast<const char*>(p) >= lo && static_cast<const char*>(p) < top();
  }
  // True while neither the canary words nor `stack_pointer` show an overflow. An
  // overflow that writes densely (return addresses, saved registers, filled locals)
  // cannot cross the canary words without changing one; frames with large untouched
  // holes can, which is why the first stacks of a process get guard pages instead.
  bool Intact(const void* stack_pointer) const {
    if (canary == nullptr) return true;
    // Unrolled (every switch checks): straight-line loads and ORs, no loop.
    uint64_t diff = 0;
#pragma GCC unroll 16
    for (int i = 0; i < kCanaryWords; ++i) diff |= canary[i] ^ kStackCanary;
    return diff == 0 && static_cast<const char*>(stack_pointer) >= lo;
  }
};

// One pool per scheduler. Not thread-safe; the guarded budget is process-wide (atomic).
class StackPool {
 public:
  // Adopts the stacks of the last pool that died on this thread, if any.
  StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool();

  // A stack of `size` bytes rounded up to whole pages (slab stacks keep 64 of them for
  // the canary of the slot above).
  Stack Allocate(size_t size);
  // Returns a stack for reuse. Its memory stays mapped until the pool is destroyed.
  void Release(const Stack& stack);

  static size_t PageSize();
  // Live guarded stacks across the process (for tests and documentation).
  static int64_t GuardedStacksInProcess();
  // Lowers the process-wide budget (tests use it to exercise slab stacks). Returns the
  // previous budget.
  static int64_t SetGuardedStackBudgetForTesting(int64_t budget);
  // Makes every new mapping fail with ENOMEM, as at vm.max_map_count (tests only).
  static void FailMappingsForTesting(bool fail);

 private:
  struct Mapping {
    void* address;
    size_t bytes;
    bool guarded;
  };
  // Everything a pool owns. All stacks are free when a pool dies (its scheduler
  // unwound every task first), so Contents moves whole into the thread's cache.
  struct Contents {
    std::vector<Mapping> mappings;
    // Free stacks by usable size. std::map: iteration order never decides anything
    // here, but lookups by size must be cheap.
    std::map<size_t, std::vector<Stack>> free;
    size_t stacks = 0;  // Stacks carved from `mappings`, free or not.
  };
  class ThreadCache;
  static ThreadCache& Cache();

  bool TryAllocateGuarded(size_t size, Stack* stack);
  void AllocateSlab(size_t size);
  static void Unmap(Contents& contents);

  Contents contents_;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_STACK_POOL_H_
