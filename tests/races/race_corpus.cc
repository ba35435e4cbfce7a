#include "tests/races/race_corpus.h"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/semaphore.h"
#include "scheduler/shared_access.h"
#include "scheduler/wait_group.h"
#include "tests/races/race_programs.h"

namespace dsim::races {
namespace {

// An assertion inside a task: the run ends with kTaskFailed and this message.
void Expect(bool condition, const char* what) {
  if (!condition) throw std::logic_error(what);
}

// One run of one program: a scheduler set up from the options. Declare the program's
// shared state before it, so the state outlives the tasks that use it.
class ProgramRun {
 public:
  explicit ProgramRun(const RaceRunOptions& options)
      : scheduler_(SchedulerOptions{.seed = 1,
                                    .strategy = options.strategy,
                                    .max_steps = options.max_steps,
                                    .shared_access_points = true}) {
    if (options.observer != nullptr) scheduler_.AddListener(options.observer);
  }

  Scheduler& scheduler() { return scheduler_; }
  void Spawn(std::string name, std::function<void()> body) {
    scheduler_.Spawn(std::move(name), std::move(body));
  }

  // Runs to the end; `final_check` (if any) returns a failure message or "" for the
  // state left behind by a successful run.
  RaceOutcome Finish(const std::function<std::string()>& final_check = nullptr) {
    RaceOutcome outcome;
    outcome.result = scheduler_.Run();
    if (outcome.result.ok() && final_check != nullptr) {
      outcome.final_check_failure = final_check();
    }
    outcome.bug = !outcome.result.ok() || !outcome.final_check_failure.empty();
    return outcome;
  }

 private:
  Scheduler scheduler_;
};

// Holds a mutex for a scope, like MutexLock, and survives a run being stopped.
//
// When a run stops (a failure, a deadlock, a step limit, a diverged replay), tearing the
// scheduler down unwinds each unfinished task by throwing from its current scheduling
// point. MutexLock does not survive two of those spots: stopped in the Unlock at a
// scope's end, it would throw out of its (noexcept) destructor and terminate; stopped
// inside CondVar::Wait, where the mutex is released, its destructor would unlock a mutex
// the task does not hold (a misuse abort). So this guard's destructor may throw, and it
// unlocks only a mutex the task holds. Assertions (Expect) are made outside any guard,
// so a task is never switched out halfway through unwinding an exception.
class Locked {
 public:
  explicit Locked(Mutex* mu) : mu_(mu) { mu_->Lock(); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
  ~Locked() noexcept(false) {
    if (mu_->holder() == dsim::CurrentTaskId()) mu_->Unlock();
  }

 private:
  Mutex* const mu_;
};

// ---- Deadlocks ---------------------------------------------------------------------

// Two tasks take two locks in opposite orders. Fix: one global order.
RaceOutcome LockOrder(Variant variant, const RaceRunOptions& options) {
  Mutex accounts_mu;
  Mutex log_mu;
  ProgramRun run(options);
  run.Spawn("transfer", [&] {
    Locked a(&accounts_mu);
    Locked b(&log_mu);
  });
  run.Spawn("rotate-log", [&] {
    Mutex* first = Buggy(variant) ? &log_mu : &accounts_mu;
    Mutex* second = Buggy(variant) ? &accounts_mu : &log_mu;
    Locked a(first);
    Locked b(second);
  });
  return run.Finish();
}

// Objects of one class share a class-wide lock (the registry's). A deposit takes its
// instance lock, then the class lock to log; the auditor takes the class lock, then
// every instance lock. Fix: deposit logs after releasing its instance lock.
struct Registry {
  Mutex class_mu;
  int log_entries = 0;
};

struct Account {
  Mutex mu;
  int balance = 100;
  Registry* registry = nullptr;

  void Deposit(int amount, Variant variant) {
    if (Buggy(variant)) {
      Locked instance(&mu);
      balance += amount;
      Locked log(&registry->class_mu);
      ++registry->log_entries;
      return;
    }
    {
      Locked instance(&mu);
      balance += amount;
    }
    Locked log(&registry->class_mu);
    ++registry->log_entries;
  }
};

RaceOutcome ClassLock(Variant variant, const RaceRunOptions& options) {
  Registry registry;
  Account accounts[2];
  for (Account& account : accounts) account.registry = &registry;
  ProgramRun run(options);
  run.Spawn("deposit-0", [&] { accounts[0].Deposit(10, variant); });
  run.Spawn("deposit-1", [&] { accounts[1].Deposit(20, variant); });
  run.Spawn("auditor", [&] {
    Locked log(&registry.class_mu);
    int total = 0;
    for (Account& account : accounts) {
      Locked instance(&account.mu);
      total += account.balance;
    }
    ++registry.log_entries;
  });
  return run.Finish([&]() -> std::string {
    return registry.log_entries == 3 ? "" : "missing log entries";
  });
}

// ---- Atomicity and data races ------------------------------------------------------

// Read and write of one counter in two separate critical sections. Fix: one section.
RaceOutcome TwoSections(Variant variant, const RaceRunOptions& options) {
  Mutex mu;
  int hits = 0;
  ProgramRun run(options);
  for (int i = 0; i < 2; ++i) {
    run.Spawn(absl::StrCat("increment-", i), [&] {
      if (Buggy(variant)) {
        int seen;
        {
          Locked lock(&mu);
          seen = hits;
        }
        Locked lock(&mu);
        hits = seen + 1;
      } else {
        Locked lock(&mu);
        hits = hits + 1;
      }
    });
  }
  return run.Finish([&]() -> std::string { return hits == 2 ? "" : "lost update"; });
}

// Lazy initialization: check a flag, then act on it, with no lock. Fix: a mutex around
// both.
RaceOutcome CheckThenAct(Variant variant, const RaceRunOptions& options) {
  Mutex mu;
  bool initialized = false;
  int initializations = 0;
  ProgramRun run(options);
  for (int i = 0; i < 2; ++i) {
    run.Spawn(absl::StrCat("user-", i), [&] {
      {
        std::optional<Locked> lock;
        if (!Buggy(variant)) lock.emplace(&mu);
        DSIM_SHARED_ACCESS("initialized");
        if (!initialized) {
          DSIM_SHARED_ACCESS("initialized");
          initialized = true;
          ++initializations;
        }
      }
      Expect(initializations <= 1, "initialized twice");
    });
  }
  return run.Finish();
}

// Three workers bump a counter under a mutex, but one takes the wrong mutex. Fix: the
// same mutex for all.
RaceOutcome WrongLock(Variant variant, const RaceRunOptions& options) {
  Mutex stats_mu;
  Mutex config_mu;
  int requests = 0;
  ProgramRun run(options);
  for (int i = 0; i < 3; ++i) {
    run.Spawn(absl::StrCat("worker-", i), [&, i] {
      Mutex* mu = (Buggy(variant) && i == 2) ? &config_mu : &stats_mu;
      Locked lock(mu);
      DSIM_SHARED_ACCESS("requests");
      const int seen = requests;
      DSIM_SHARED_ACCESS("requests");
      requests = seen + 1;
    });
  }
  return run.Finish([&]() -> std::string { return requests == 3 ? "" : "lost update"; });
}

// ---- Ordering ----------------------------------------------------------------------

// The consumer checks the flag outside the lock, then waits once: a signal sent in
// between is lost and the consumer waits forever. Fix: check in a loop under the lock.
RaceOutcome LostWakeup(Variant variant, const RaceRunOptions& options) {
  Mutex mu;
  CondVar cv;
  bool ready = false;
  ProgramRun run(options);
  run.Spawn("consumer", [&] {
    if (Buggy(variant)) {
      DSIM_SHARED_ACCESS("ready");
      if (!ready) {
        Locked lock(&mu);
        cv.Wait(&mu);
      }
    } else {
      Locked lock(&mu);
      while (!ready) cv.Wait(&mu);
    }
  });
  run.Spawn("producer", [&] {
    Locked lock(&mu);
    ready = true;
    cv.Signal();
  });
  return run.Finish();
}

// A worker uses the configuration the loader has not loaded yet. Fix: the worker waits
// for a notification.
RaceOutcome UseBeforeInit(Variant variant, const RaceRunOptions& options) {
  struct Config {
    bool loaded = false;
    int port = 0;
  } config;
  Notification loaded;
  ProgramRun run(options);
  run.Spawn("worker", [&] {
    if (!Buggy(variant)) loaded.WaitForNotification();
    DSIM_SHARED_ACCESS("config");
    Expect(config.loaded, "config used before it was loaded");
  });
  run.Spawn("loader", [&] {
    DSIM_SHARED_ACCESS("config");
    config.port = 8080;
    config.loaded = true;
    loaded.Notify();
  });
  return run.Finish();
}

// Consumers check for an item in one critical section and pop in another. Fix: check
// and pop in one.
RaceOutcome StackUnderflow(Variant variant, const RaceRunOptions& options) {
  Mutex mu;
  std::vector<int> stack = {1};
  int popped = 0;
  ProgramRun run(options);
  for (int i = 0; i < 2; ++i) {
    run.Spawn(absl::StrCat("popper-", i), [&] {
      if (Buggy(variant)) {
        bool nonempty;
        {
          Locked lock(&mu);
          nonempty = !stack.empty();
        }
        if (!nonempty) return;
        bool underflow;
        {
          Locked lock(&mu);
          underflow = stack.empty();
          if (!underflow) {
            stack.pop_back();
            ++popped;
          }
        }
        Expect(!underflow, "pop from an empty stack");
      } else {
        Locked lock(&mu);
        if (stack.empty()) return;
        stack.pop_back();
        ++popped;
      }
    });
  }
  return run.Finish([&]() -> std::string { return popped == 1 ? "" : "wrong pop count"; });
}

// Three tasks pass a turn around a ring, twice. The passer wakes one waiter with Signal;
// when that is not the next in the ring, it waits again and the ring stops. Fix:
// SignalAll.
RaceOutcome TokenRing(Variant variant, const RaceRunOptions& options) {
  constexpr int kTasks = 3;
  constexpr int kRounds = 2;
  Mutex mu;
  CondVar turn_changed;
  int turn = 0;
  int passes = 0;
  ProgramRun run(options);
  for (int i = 0; i < kTasks; ++i) {
    run.Spawn(absl::StrCat("ring-", i), [&, i] {
      for (int round = 0; round < kRounds; ++round) {
        Locked lock(&mu);
        while (turn != i) turn_changed.Wait(&mu);
        turn = (i + 1) % kTasks;
        ++passes;
        if (Buggy(variant)) {
          turn_changed.Signal();
        } else {
          turn_changed.SignalAll();
        }
      }
    });
  }
  return run.Finish([&]() -> std::string {
    return passes == kTasks * kRounds ? "" : "token lost";
  });
}

// Transfers debit one account and credit the other in two steps; the auditor checks the
// total by reading the accounts one at a time, and catches a transfer halfway. Fix: the
// transfer and the audit hold both locks (in one order).
RaceOutcome BankAudit(Variant variant, const RaceRunOptions& options) {
  constexpr int kTotal = 200;
  struct Balance {
    Mutex mu;
    int amount = 100;
  } checking, savings;
  ProgramRun run(options);
  for (int i = 0; i < 2; ++i) {
    run.Spawn(absl::StrCat("transfer-", i), [&] {
      if (Buggy(variant)) {
        {
          Locked lock(&checking.mu);
          checking.amount -= 10;
        }
        Locked lock(&savings.mu);
        savings.amount += 10;
      } else {
        Locked first(&checking.mu);
        Locked second(&savings.mu);
        checking.amount -= 10;
        savings.amount += 10;
      }
    });
  }
  run.Spawn("auditor", [&] {
    int total = 0;
    if (Buggy(variant)) {
      {
        Locked lock(&checking.mu);
        total += checking.amount;
      }
      Locked lock(&savings.mu);
      total += savings.amount;
    } else {
      Locked first(&checking.mu);
      Locked second(&savings.mu);
      total = checking.amount + savings.amount;
    }
    Expect(total == kTotal, "audit: money vanished between accounts");
  });
  return run.Finish();
}

// Two producers claim a slot of a ring buffer (bump the shared tail) and then fill it,
// with no lock: both may claim the same slot, or the consumer may read a claimed slot
// before it is filled. Fix: claim and fill under a mutex.
RaceOutcome CircularBuffer(Variant variant, const RaceRunOptions& options) {
  constexpr int kSlots = 4;
  constexpr int kPerProducer = 2;
  Mutex mu;
  Semaphore free_slots(kSlots);
  Semaphore filled(0);
  int buffer[kSlots] = {};
  int tail = 0;
  int head = 0;
  int sum = 0;
  ProgramRun run(options);
  for (int p = 0; p < 2; ++p) {
    run.Spawn(absl::StrCat("producer-", p), [&, p] {
      for (int k = 0; k < kPerProducer; ++k) {
        free_slots.Acquire();
        {
          std::optional<Locked> lock;
          if (!Buggy(variant)) lock.emplace(&mu);
          DSIM_SHARED_ACCESS("tail");
          const int slot = tail;
          DSIM_SHARED_ACCESS("tail");
          tail = (slot + 1) % kSlots;
          DSIM_SHARED_ACCESS("buffer");
          buffer[slot] = 10 * (p + 1) + k;
        }
        filled.Release();
      }
    });
  }
  run.Spawn("consumer", [&] {
    for (int k = 0; k < 2 * kPerProducer; ++k) {
      filled.Acquire();
      DSIM_SHARED_ACCESS("buffer");
      const int value = buffer[head];
      Expect(value != 0, "consumer read a slot nobody filled");
      buffer[head] = 0;
      head = (head + 1) % kSlots;
      sum += value;
      free_slots.Release();
    }
  });
  return run.Finish([&]() -> std::string { return sum == 10 + 11 + 20 + 21 ? "" : "lost item"; });
}

// SCTBench's reorder pattern: n setters write a = 1 then b = -1; a checker reads a then
// b and expects to see both writes or neither. Fix: setters and checker share a mutex.
RaceOutcome Reorder(Variant variant, const RaceRunOptions& options) {
  constexpr int kSetters = 4;
  Mutex mu;
  int a = 0;
  int b = 0;
  ProgramRun run(options);
  for (int i = 0; i < kSetters; ++i) {
    run.Spawn(absl::StrCat("setter-", i), [&] {
      std::optional<Locked> lock;
      if (!Buggy(variant)) lock.emplace(&mu);
      DSIM_SHARED_ACCESS("a");
      a = 1;
      DSIM_SHARED_ACCESS("b");
      b = -1;
    });
  }
  run.Spawn("checker", [&] {
    int seen_a;
    int seen_b;
    {
      std::optional<Locked> lock;
      if (!Buggy(variant)) lock.emplace(&mu);
      DSIM_SHARED_ACCESS("a");
      seen_a = a;
      DSIM_SHARED_ACCESS("b");
      seen_b = b;
    }
    Expect((seen_a == 0 && seen_b == 0) || (seen_a == 1 && seen_b == -1),
           "checker saw a half-done update");
  });
  return run.Finish();
}

// Double-checked locking that publishes the instance before building it. Fix: build,
// then publish.
RaceOutcome PublishBeforeInit(Variant variant, const RaceRunOptions& options) {
  struct Widget {
    int value = 0;
  } storage;
  Widget* instance = nullptr;
  Mutex mu;
  ProgramRun run(options);
  const auto get_instance = [&]() -> Widget* {
    DSIM_SHARED_ACCESS("instance");
    if (instance != nullptr) return instance;
    Locked lock(&mu);
    if (instance == nullptr) {
      if (Buggy(variant)) {
        instance = &storage;
        DSIM_SHARED_ACCESS("widget");
        storage.value = 42;
      } else {
        storage.value = 42;
        DSIM_SHARED_ACCESS("instance");
        instance = &storage;
      }
    }
    return instance;
  };
  for (int i = 0; i < 2; ++i) {
    run.Spawn(absl::StrCat("user-", i), [&] {
      Widget* widget = get_instance();
      DSIM_SHARED_ACCESS("widget");
      Expect(widget->value == 42, "saw a half-built instance");
    });
  }
  return run.Finish();
}

// Go's classic: WaitGroup::Add inside the worker, so Wait may run before any Add and
// return at once. Fix: Add before spawning.
RaceOutcome WaitGroupAdd(Variant variant, const RaceRunOptions& options) {
  constexpr int kWorkers = 2;
  WaitGroup workers;
  int finished = 0;
  ProgramRun run(options);
  run.Spawn("main", [&] {
    for (int i = 0; i < kWorkers; ++i) {
      if (!Buggy(variant)) workers.Add(1);
      dsim::Spawn(absl::StrCat("worker-", i), [&, variant] {
        if (Buggy(variant)) workers.Add(1);
        DSIM_SHARED_ACCESS("finished");
        ++finished;
        workers.Done();
      });
    }
    workers.Wait();
    DSIM_SHARED_ACCESS("finished");
    Expect(finished == kWorkers, "Wait returned before the workers finished");
  });
  return run.Finish();
}

// A consumer waits for an item with a timeout; the producer hands it over at the very
// instant the timeout expires. The consumer gives up on "timed out" without looking at
// the slot, and the item is lost. Fix: after a timeout, take the item if it is there.
// Both tasks wake at the same virtual instant; which one takes the mutex first decides.
RaceOutcome TimeoutHandoff(Variant variant, const RaceRunOptions& options) {
  Mutex mu;
  CondVar item_ready;
  std::optional<int> slot;
  bool consumer_gave_up = false;
  bool consumed = false;
  bool kept_by_producer = false;
  ProgramRun run(options);
  run.Spawn("consumer", [&] {
    Locked lock(&mu);
    bool timed_out = false;
    while (!slot.has_value() && !timed_out) {
      timed_out = item_ready.WaitWithTimeout(&mu, absl::Milliseconds(10));
    }
    if (Buggy(variant) ? timed_out : !slot.has_value()) {
      consumer_gave_up = true;
    } else {
      slot.reset();
      consumed = true;
    }
  });
  run.Spawn("producer", [&] {
    dsim::SleepFor(absl::Milliseconds(10));
    Locked lock(&mu);
    if (consumer_gave_up) {
      kept_by_producer = true;
      return;
    }
    slot = 7;
    item_ready.Signal();
  });
  return run.Finish([&]() -> std::string {
    return consumed || kept_by_producer ? "" : "item lost in the hand-off";
  });
}

}  // namespace

std::string RaceOutcome::Signature() const {
  if (!final_check_failure.empty()) return absl::StrCat("final check: ", final_check_failure);
  if (result.ok()) return "";
  if (result.outcome == RunOutcome::kTaskFailed) {
    return absl::StrCat("task failed: ", result.failure);
  }
  return RunOutcomeName(result.outcome);
}

const std::vector<RaceProgram>& Corpus() {
  // Immutable after first use, so simulations on several threads may share it.
  static const std::vector<RaceProgram>* const corpus = new std::vector<RaceProgram>{
      {"lock_order", "lock-order deadlock", "two locks taken in opposite orders", 2,
       &LockOrder},
      {"class_lock", "deadlock through a class lock",
       "instance lock then class lock, against class lock then instance locks", 3, &ClassLock},
      {"two_sections", "atomicity violation",
       "read and write of a counter in two critical sections", 2, &TwoSections},
      {"check_then_act", "check-then-act", "lazy init checks a flag, then sets it, unlocked",
       2, &CheckThenAct},
      {"wrong_lock", "wrong lock", "one of three workers guards the counter with another lock",
       3, &WrongLock},
      {"lost_wakeup", "lost wakeup (signal before wait)",
       "flag checked outside the lock, then one wait", 2, &LostWakeup},
      {"use_before_init", "order violation (use before init)",
       "worker reads config the loader has not loaded", 2, &UseBeforeInit},
      {"stack_underflow", "stack underflow", "emptiness check and pop in two critical sections",
       2, &StackUnderflow},
      {"token_ring", "token ring", "Signal wakes a task whose turn it is not; the ring stops",
       3, &TokenRing},
      {"bank_audit", "bank account, wrong invariant check",
       "auditor sums two accounts one lock at a time", 3, &BankAudit},
      {"circular_buffer", "circular buffer", "producers claim and fill slots without a lock", 3,
       &CircularBuffer},
      {"reorder_4", "reorder with n setters and one checker",
       "checker reads a and b between a setter's two writes", 5, &Reorder},
      {"publish_before_init", "order violation (publish before init)",
       "double-checked locking publishes the instance before building it", 2,
       &PublishBeforeInit},
      {"waitgroup_add", "order violation (WaitGroup::Add in the worker)",
       "Wait runs before the workers' Add", 3, &WaitGroupAdd},
      {"timeout_handoff", "timeout vs hand-off",
       "consumer gives up at the deadline while the item arrives", 2, &TimeoutHandoff},
      {"net_duplicate_retry", "network: duplicated request after a retry timeout",
       "a slow UDP request is retried and applied twice", 2, &DuplicateAfterRetry},
      {"net_stale_read", "network: stale read after a partition heals",
       "fire-and-forget replication lost in a partition; backup read is stale", 4,
       &StaleReadAfterHeal},
  };
  return *corpus;
}

const RaceProgram* FindProgram(const std::string& name) {
  for (const RaceProgram& program : Corpus()) {
    if (name == program.name) return &program;
  }
  return nullptr;
}

FailingRun SameFailure(const RaceProgram& program, std::string signature, uint64_t max_steps) {
  return [&program, signature = std::move(signature), max_steps](
             std::shared_ptr<Strategy> strategy, SchedulerListener* observer) {
    RaceRunOptions options{std::move(strategy), observer, max_steps};
    const RaceOutcome outcome = program.run(Variant::kBuggy, options);
    return outcome.bug && outcome.Signature() == signature;
  };
}

}  // namespace dsim::races
