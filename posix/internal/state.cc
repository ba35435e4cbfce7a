#include "posix/internal/state.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include <cstdlib>
#include <mutex>
#include <unordered_set>
#include <cstring>

#include "absl/debugging/symbolize.h"
#include "scheduler/internal/check.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dsim::posix {
namespace internal {

// Entries are kept for the whole simulation (an idle entry is the same as none), so no
// reference a blocked or blocking task holds can ever dangle. A simulation touches few
// distinct objects; they go with the scheduler.
void PosixState::EraseMutexIfIdle(const void*) {}
void PosixState::EraseWaitIfIdle(const void*) {}

WaitQueue* PosixState::WaitsOfSlow(WaitSlot& slot, const void* address, bool create) {
  WaitQueue* queue;
  if (create) {
    queue = &waits[address];  // Stable: a node of the map.
  } else {
    auto it = waits.find(address);
    if (it == waits.end()) return nullptr;
    queue = &it->second;
  }
  slot.address = address;
  slot.queue = queue;
  return queue;
}

const char* PosixState::Intern(std::string text) {
  InternalsScope internals;  // The lock below is the real one, even inside a task.
  static std::mutex* const mu = new std::mutex;
  static std::unordered_set<std::string>* const strings = new std::unordered_set<std::string>;
  std::lock_guard<std::mutex> lock(*mu);
  return strings->insert(std::move(text)).first->c_str();
}

RuntimeRanges runtime_ranges;

bool IsSanitizerRuntimeName(const char* file_name) {
  if (file_name == nullptr) return false;
  const char* base = std::strrchr(file_name, '/');
  base = base == nullptr ? file_name : base + 1;
  for (const char* prefix : {"libasan.", "liblsan.", "libtsan.", "libubsan.", "libhwasan.",
                             "libclang_rt."}) {
    if (std::strncmp(base, prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

void AddRuntimeRangeForTesting(const void* begin, const void* end) {
  DSIM_CHECK(runtime_ranges.count < RuntimeRanges::kMaxRanges);
  runtime_ranges.begin[runtime_ranges.count] = reinterpret_cast<uintptr_t>(begin);
  runtime_ranges.end[runtime_ranges.count] = reinterpret_cast<uintptr_t>(end);
  ++runtime_ranges.count;
}

namespace {

int AddRuntimeSegments(dl_phdr_info* info, size_t, void*) {
  if (!IsSanitizerRuntimeName(info->dlpi_name)) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    if (header.p_type != PT_LOAD || (header.p_flags & PF_X) == 0) continue;
    if (runtime_ranges.count == RuntimeRanges::kMaxRanges) return 1;
    const uintptr_t begin = info->dlpi_addr + header.p_vaddr;
    runtime_ranges.begin[runtime_ranges.count] = begin;
    runtime_ranges.end[runtime_ranges.count] = begin + header.p_memsz;
    ++runtime_ranges.count;
  }
  return 0;
}

// Sanitizer runtimes are loaded before the executable's constructors run, and no task
// runs before main, so the ranges are complete before the first check that matters.
__attribute__((constructor)) void FindRuntimeRanges() {
  dl_iterate_phdr(AddRuntimeSegments, nullptr);
}

}  // namespace

PosixState& CreateState(Scheduler& scheduler) {
  auto owned = std::make_shared<PosixState>(&scheduler);
  PosixState* raw = owned.get();
  scheduler.SetOwnedExtension(Scheduler::kPosixExtension, std::move(owned));
  return *raw;
}

namespace {

// Frames in these objects are plumbing between the user's call and ours.
bool IsPlumbing(const char* object) {
  if (object == nullptr) return true;
  const char* base = std::strrchr(object, '/');
  base = base ? base + 1 : object;
  return std::strncmp(base, "libc.so", 7) == 0 || std::strncmp(base, "libstdc++.so", 12) == 0 ||
         std::strncmp(base, "libposix", 8) == 0;
}

// The function containing `address` (demangled), and "function (object+offset)".
bool Describe(void* address, std::string* function, std::string* text) {
  Dl_info info;
  if (dladdr(address, &info) == 0) return false;
  const char* object = info.dli_fname ? std::strrchr(info.dli_fname, '/') : nullptr;
  object = object ? object + 1 : (info.dli_fname ? info.dli_fname : "?");
  const uintptr_t offset =
      reinterpret_cast<uintptr_t>(address) - reinterpret_cast<uintptr_t>(info.dli_fbase);
  *function = "?";
  char symbol[512];
  if (info.dli_sname == nullptr && absl::Symbolize(address, symbol, sizeof(symbol))) {
    *function = symbol;  // Not exported: found in the ELF symbol table.
  } else if (info.dli_sname != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    *function = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
    std::free(demangled);
  }
  *text = absl::StrCat(*function, " (", object, "+0x", absl::Hex(offset), ")");
  return true;
}

// Standard-library wrappers between the user's code and libc (std::mutex::lock,
// __gthread_mutex_lock, std::condition_variable::wait, ...), when not inlined.
bool IsLibraryWrapper(const std::string& function) {
  return absl::StartsWith(function, "__gthread") || absl::StartsWith(function, "std::") ||
         absl::StartsWith(function, "__gnu_cxx::") || absl::StartsWith(function, "dsim::posix") ||
         absl::StartsWith(function, "pthread_") || absl::StartsWith(function, "syscall") ||
         absl::StartsWith(function, "void std::") || absl::StartsWith(function, "bool std::");
}

}  // namespace

// The description of state.call_site, made once per address.
SourceLocation DescribeCallSite(PosixState& state);

const bool full_caller_walks = [] {
  const char* mode = std::getenv("DSIM_POSIX_CALLERS");
  return mode != nullptr && std::strcmp(mode, "full") == 0;
}();

SourceLocation CallerLocation(PosixState& state) {
  if (full_caller_walks || state.call_site == nullptr) return FullCallerLocation(state);
  const uintptr_t key = reinterpret_cast<uintptr_t>(state.call_site);
  PosixState::CallSiteSlot& slot =
      state.call_site_cache[PosixState::CallSiteSlotOf(key)];
  if (__builtin_expect(slot.address == state.call_site, 1)) return slot.location;
  slot.address = state.call_site;
  slot.location = DescribeCallSite(state);
  return slot.location;
}

SourceLocation DescribeCallSite(PosixState& state) {
  auto [it, inserted] = state.call_sites.try_emplace(state.call_site);
  if (inserted) {
    InternalsScope internals;
    std::string function, text;
    if (Describe(static_cast<char*>(state.call_site) - 1, &function, &text)) {
      it->second = SourceLocation::Described(state.Intern(std::move(text)));
    }
  }
  return it->second;
}

SourceLocation FullCallerLocation(PosixState& state) {
  InternalsScope internals;
  void* frames[12];
  const int n = backtrace(frames, 12);
  // frames[0] is this function. //posix is linked into the executable, so its own
  // frames (the interposer, its helpers) cannot be told from the user's by object: start
  // at the return address of the interposer the task called, if it is on the stack.
  int first = 1;
  for (int i = 1; i < n; ++i) {
    if (frames[i] == entry_caller) {
      first = i;
      break;
    }
  }
  std::string function, text;
  for (int i = first; i < n; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) == 0) continue;
    if (IsPlumbing(info.dli_fname)) continue;
    // Return addresses point after the call; step back into it.
    if (!Describe(static_cast<char*>(frames[i]) - 1, &function, &text)) continue;
    if (IsLibraryWrapper(function)) continue;
    return SourceLocation::Described(state.Intern(std::move(text)));
  }
  return SourceLocation();
}

void RecordEscape(Scheduler& scheduler, const char* call, std::string detail, bool fatal) {
  PosixState& state = State(scheduler);
  InternalsScope internals;
  EscapedCall escape;
  escape.task = scheduler.CurrentTaskId();
  escape.task_name = std::string(scheduler.CurrentTaskName());
  escape.call = call;
  escape.detail = std::move(detail);
  escape.location = FullCallerLocation(state).ToString();
  escape.fatal = fatal;
  if (fatal) scheduler.Fail(escape.ToString());
  state.escapes.push_back(std::move(escape));
}

}  // namespace internal

std::string EscapedCall::ToString() const {
  return absl::StrCat("task \"", task_name, "\" called ", call, " from ", location, ": ", detail);
}

std::vector<EscapedCall> EscapedCalls(const Scheduler& scheduler) {
  const void* state = scheduler.extension(Scheduler::kPosixExtension);
  if (state == nullptr) return {};
  return static_cast<const internal::PosixState*>(state)->escapes;
}

bool Linked() { return true; }

}  // namespace dsim::posix
