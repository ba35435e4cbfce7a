#include "posix/internal/state.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <cstdlib>
#include <cstring>

#include "absl/debugging/symbolize.h"
#include "absl/strings/str_cat.h"

namespace dsim::posix {
namespace internal {

void PosixState::EraseMutexIfIdle(const void* address) {
  auto it = mutexes.find(address);
  if (it != mutexes.end() && it->second.owner == kNoTask && it->second.readers == 0 &&
      it->second.waiters.empty()) {
    mutexes.erase(it);
  }
}

void PosixState::EraseWaitIfIdle(const void* address) {
  auto it = waits.find(address);
  if (it != waits.end() && it->second.empty()) waits.erase(it);
}

PosixState& State(Scheduler& scheduler) {
  void* state = scheduler.extension(Scheduler::kPosixExtension);
  if (__builtin_expect(state != nullptr, 1)) return *static_cast<PosixState*>(state);
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

std::string Describe(void* address) {
  Dl_info info;
  if (dladdr(address, &info) == 0) return absl::StrCat("0x", absl::Hex(address));
  const char* object = info.dli_fname ? std::strrchr(info.dli_fname, '/') : nullptr;
  object = object ? object + 1 : (info.dli_fname ? info.dli_fname : "?");
  const uintptr_t offset =
      reinterpret_cast<uintptr_t>(address) - reinterpret_cast<uintptr_t>(info.dli_fbase);
  std::string function = "?";
  char symbol[512];
  if (info.dli_sname == nullptr && absl::Symbolize(address, symbol, sizeof(symbol))) {
    function = symbol;  // Not exported: found in the ELF symbol table.
  } else if (info.dli_sname != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    function = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
    std::free(demangled);
  }
  return absl::StrCat(function, " (", object, "+0x", absl::Hex(offset), ")");
}

}  // namespace

SourceLocation CallerLocation(PosixState& state) {
  InternalsScope internals;
  void* frames[12];
  const int n = backtrace(frames, 12);
  // frames[0] is this function, frames[1] the interposer.
  Dl_info self;
  dladdr(reinterpret_cast<void*>(&CallerLocation), &self);
  for (int i = 1; i < n; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) == 0) continue;
    if (IsPlumbing(info.dli_fname)) continue;
    // Skip //posix's own frames when it is linked statically into the binary.
    if (info.dli_sname != nullptr &&
        (std::strncmp(info.dli_sname, "_ZN4dsim5posix", 14) == 0 ||
         std::strncmp(info.dli_sname, "pthread_", 8) == 0 ||
         std::strcmp(info.dli_sname, "syscall") == 0)) {
      continue;
    }
    // Return addresses point after the call; step back into it.
    return SourceLocation::Described(
        state.Intern(Describe(static_cast<char*>(frames[i]) - 1)));
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
  escape.location = CallerLocation(state).ToString();
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
