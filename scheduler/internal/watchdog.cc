#include "scheduler/internal/watchdog.h"

#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/fiber.h"

namespace dsim::internal {

struct WatchdogEntry {
  pthread_t thread;
  const std::atomic<uint64_t>* heartbeat;
  int64_t threshold_ms;
  bool abort;
  // Watchdog thread only (under Registry::mu).
  uint64_t last_seen = 0;
  std::chrono::steady_clock::time_point last_change;
  bool reported = false;
  std::chrono::steady_clock::time_point signalled_at;
  // Shared with the signal handler on the simulation thread.
  std::atomic<bool> report_requested{false};
  std::atomic<int64_t> stalled_ms{0};
};

namespace {

constexpr auto kTick = std::chrono::milliseconds(50);
constexpr int kSignal = SIGURG;

// The entry of the run active on this thread, for the signal handler.
__thread WatchdogEntry* thread_entry = nullptr;

struct sigaction previous_action;

// ---- Async-signal-safe output -------------------------------------------------------

void Write(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

void WriteNumber(uint64_t value) {
  char buffer[24];
  int i = sizeof(buffer);
  do {
    buffer[--i] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  (void)!write(STDERR_FILENO, buffer + i, sizeof(buffer) - i);
}

void WriteSeconds(int64_t ms) {
  WriteNumber(static_cast<uint64_t>(ms / 1000));
  Write(".");
  WriteNumber(static_cast<uint64_t>(ms % 1000 / 100));
  Write(" s");
}

void Report(WatchdogEntry* entry) {
  const Fiber* fiber = RunningFiber();
  Write("dsim: watchdog: ");
  if (fiber != nullptr && !fiber->is_main) {
    Write("task \"");
    Write(fiber->name);
    Write("\" (id ");
    WriteNumber(fiber->id);
    Write(")");
  } else {
    Write("the run loop or a timer callback (no task)");
  }
  Write(" has run for ");
  WriteSeconds(entry->stalled_ms.load(std::memory_order_relaxed));
  Write(" of wall-clock time without reaching a scheduling point. The simulation cannot "
        "go on until it does: a spin loop that never calls a dsim primitive, a real "
        "std::mutex or std::this_thread::sleep_for, a blocking OS call, or a long "
        "computation? Use dsim::Mutex, dsim::SleepFor, dsim::Yield() in loops. "
        "(DSIM_WATCHDOG=<seconds> sets the threshold, DSIM_WATCHDOG=0 turns this off.) "
        "Stack of the running task:\n");
  void* frames[64];
  const int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  if (entry->abort) {
    Write("dsim: watchdog: aborting (DSIM_WATCHDOG_ABORT / SchedulerOptions::watchdog_abort)\n");
    std::abort();
  }
}

void OnSignal(int signal, siginfo_t* info, void* context) {
  WatchdogEntry* entry = thread_entry;
  if (entry != nullptr && entry->report_requested.exchange(false)) {
    const int saved_errno = errno;
    Report(entry);
    errno = saved_errno;
    return;
  }
  if ((previous_action.sa_flags & SA_SIGINFO) && previous_action.sa_sigaction != nullptr) {
    previous_action.sa_sigaction(signal, info, context);
  } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
    previous_action.sa_handler(signal);
  }
  // SIGURG's default action is to ignore it.
}

// Every active watched run in the process. Resource bookkeeping, like the stack budget:
// it holds no simulation state and decides nothing in a simulation.
struct Registry {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchdogEntry*> entries;
  pid_t thread_pid = 0;  // The process that started the thread (a fork has none).
};

Registry& TheRegistry() {
  static Registry* registry = new Registry;  // Never destroyed: the thread outlives main.
  return *registry;
}

void Check(Registry& registry, std::chrono::steady_clock::time_point now) {
  for (WatchdogEntry* entry : registry.entries) {
    const uint64_t beat = entry->heartbeat->load(std::memory_order_relaxed);
    if (beat != entry->last_seen) {
      entry->last_seen = beat;
      entry->last_change = now;
      entry->reported = false;
      continue;
    }
    const int64_t stalled_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - entry->last_change).count();
    if (entry->reported) {
      // The handler has not run a second after the signal (a sanitizer runtime may hold
      // signals back): report from here, without the task's name and stack.
      if (entry->report_requested.load() && now - entry->signalled_at > std::chrono::seconds(1) &&
          entry->report_requested.exchange(false)) {
        std::fprintf(stderr,
                     "dsim: watchdog: the simulation has not reached a scheduling point for "
                     "%.1f s of wall-clock time (step %llu); the running task could not be "
                     "asked for its name and stack\n",
                     stalled_ms / 1000.0, static_cast<unsigned long long>(beat));
        if (entry->abort) std::abort();
      }
      continue;
    }
    if (stalled_ms < entry->threshold_ms) continue;
    entry->reported = true;
    entry->signalled_at = now;
    entry->stalled_ms.store(stalled_ms, std::memory_order_relaxed);
    entry->report_requested.store(true);
    pthread_kill(entry->thread, kSignal);
  }
}

void WatchdogThread(Registry* registry) {
  std::unique_lock<std::mutex> lock(registry->mu);
  for (;;) {
    registry->cv.wait_for(lock, kTick);
    Check(*registry, std::chrono::steady_clock::now());
  }
}

void InstallHandler() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_sigaction = &OnSignal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(kSignal, &action, &previous_action);
    // backtrace() loads libgcc on its first call, which is not safe in a handler.
    void* frames[4];
    (void)backtrace(frames, 4);
  });
}

}  // namespace

WatchdogSettings WatchdogFromEnvironment(WatchdogSettings settings) {
  if (const char* value = std::getenv("DSIM_WATCHDOG"); value != nullptr && *value != '\0') {
    double seconds = 0;
    const absl::string_view text(value);
    if (text == "off" || text == "0") {
      settings.threshold = absl::ZeroDuration();
    } else if (absl::SimpleAtod(text, &seconds) && seconds > 0) {
      settings.threshold = absl::Seconds(seconds);
    } else {
      std::fprintf(stderr, "dsim: DSIM_WATCHDOG=\"%s\" is not a number of seconds or 0/off; "
                   "using %s\n", value, absl::FormatDuration(settings.threshold).c_str());
    }
  }
  if (const char* value = std::getenv("DSIM_WATCHDOG_ABORT"); value != nullptr) {
    settings.abort = absl::string_view(value) == "1";
  }
  return settings;
}

WatchdogEntry* Watch(const std::atomic<uint64_t>* heartbeat, const WatchdogSettings& settings) {
  if (settings.threshold <= absl::ZeroDuration()) return nullptr;
  InstallHandler();
  EnsureOverflowHandler();  // This thread's alternate signal stack.
  auto* entry = new WatchdogEntry;
  entry->thread = pthread_self();
  entry->heartbeat = heartbeat;
  entry->threshold_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(settings.threshold));
  entry->abort = settings.abort;
  entry->last_seen = heartbeat->load(std::memory_order_relaxed);
  entry->last_change = std::chrono::steady_clock::now();
  thread_entry = entry;
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  if (registry.thread_pid != getpid()) {
    registry.thread_pid = getpid();
    std::thread(&WatchdogThread, &registry).detach();
  }
  registry.entries.push_back(entry);
  return entry;
}

void Unwatch(WatchdogEntry* entry) {
  if (entry == nullptr) return;
  thread_entry = nullptr;  // First: a late signal then finds no entry and is ignored.
  Registry& registry = TheRegistry();
  {
    std::lock_guard<std::mutex> lock(registry.mu);
    auto& entries = registry.entries;
    entries.erase(std::remove(entries.begin(), entries.end(), entry), entries.end());
  }
  delete entry;
}

}  // namespace dsim::internal
