#include "tests/races/std_races.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace dsim::races {
namespace {

using std::chrono::milliseconds;

bool Buggy(Variant variant) { return variant == Variant::kBuggy; }

// Runs `main` as the one dsim task; everything else it starts is std::thread.
RaceOutcome RunMain(const RaceRunOptions& options, std::function<void()> main,
                    std::function<std::string()> final_check = nullptr) {
  Scheduler scheduler(SchedulerOptions{.seed = 1,
                                       .strategy = options.strategy,
                                       .max_steps = options.max_steps});
  if (options.observer != nullptr) scheduler.AddListener(options.observer);
  scheduler.Spawn("main", std::move(main));
  RaceOutcome outcome;
  outcome.result = scheduler.Run();
  if (outcome.result.ok() && final_check != nullptr) outcome.final_check_failure = final_check();
  outcome.bug = !outcome.result.ok() || !outcome.final_check_failure.empty();
  return outcome;
}

// ---- A bounded queue, as one writes it with the standard library --------------------

class BoundedQueue {
 public:
  BoundedQueue(size_t capacity, bool notify_all) : capacity_(capacity), notify_all_(notify_all) {}

  void Push(int item) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(item);
    Notify();
  }

  // An item, or nothing if none arrives within `timeout`.
  std::optional<int> Pop(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!changed_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
    const int item = items_.front();
    items_.pop_front();
    Notify();
    return item;
  }

 private:
  // The planted bug: producers and consumers wait on one condition variable, and
  // notify_one may wake a waiter of the wrong kind (a consumer when only a producer can
  // proceed): a lost wakeup. The fix wakes everyone.
  void Notify() {
    if (notify_all_) {
      changed_.notify_all();
    } else {
      changed_.notify_one();
    }
  }

  const size_t capacity_;
  const bool notify_all_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<int> items_;
};

// Two producers push three items each, pausing a millisecond between pushes; two
// consumers pop until 50 ms pass without an item. Every item must be consumed and
// every thread must finish. Bug: see BoundedQueue::Notify; producers left waiting for
// room after the consumers gave up show as a deadlock.
RaceOutcome StdBoundedQueue(Variant variant, const RaceRunOptions& options) {
  constexpr int kProducers = 2, kConsumers = 2, kItemsEach = 3;
  BoundedQueue queue(/*capacity=*/1, /*notify_all=*/!Buggy(variant));
  int consumed = 0;  // Only the consumers' own counts are summed, after joining.
  return RunMain(options, [&] {
    std::vector<std::thread> threads;
    std::vector<int> counts(kConsumers, 0);
    for (int p = 0; p < kProducers; ++p) {
      threads.emplace_back([&queue, p] {
        for (int i = 0; i < kItemsEach; ++i) {
          queue.Push(p * 100 + i);
          std::this_thread::sleep_for(milliseconds(1));
        }
      });
    }
    for (int c = 0; c < kConsumers; ++c) {
      threads.emplace_back([&queue, &counts, c] {
        while (queue.Pop(milliseconds(50)).has_value()) ++counts[c];
      });
    }
    for (std::thread& t : threads) t.join();
    for (int n : counts) consumed += n;
  }, [&]() -> std::string {
    if (consumed != kProducers * kItemsEach) {
      return absl::StrCat("consumed ", consumed, " of ", kProducers * kItemsEach, " items");
    }
    return "";
  });
}

// ---- Twins of two corpus programs --------------------------------------------------

// lock_order with std::mutex and std::thread.
RaceOutcome StdLockOrder(Variant variant, const RaceRunOptions& options) {
  std::mutex accounts_mu, log_mu;
  return RunMain(options, [&] {
    std::thread transfer([&] {
      std::lock_guard<std::mutex> a(accounts_mu);
      std::lock_guard<std::mutex> b(log_mu);
    });
    std::thread rotate([&] {
      std::mutex& first = Buggy(variant) ? log_mu : accounts_mu;
      std::mutex& second = Buggy(variant) ? accounts_mu : log_mu;
      std::lock_guard<std::mutex> a(first);
      std::lock_guard<std::mutex> b(second);
    });
    transfer.join();
    rotate.join();
  });
}

// lost_wakeup with std::condition_variable: the consumer checks the flag before taking
// the lock, so the producer's notify can come between the check and the wait.
RaceOutcome StdLostWakeup(Variant variant, const RaceRunOptions& options) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  return RunMain(options, [&] {
    std::thread consumer([&] {
      if (Buggy(variant)) {
        if (!ready) {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock);
        }
      } else {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ready; });
      }
    });
    std::thread producer([&] {
      std::lock_guard<std::mutex> lock(mu);
      ready = true;
      cv.notify_one();
    });
    consumer.join();
    producer.join();
  });
}

}  // namespace

const std::vector<RaceProgram>& StdCorpus() {
  static const std::vector<RaceProgram>* const corpus = new std::vector<RaceProgram>{
      {"std_bounded_queue", "lost wakeup (std::condition_variable, one cv for two kinds)",
       "notify_one wakes a consumer when only a producer can proceed", 5, &StdBoundedQueue},
      {"std_lock_order", "lock-order deadlock (std::mutex)",
       "two std::threads take two std::mutexes in opposite orders", 3, &StdLockOrder},
      {"std_lost_wakeup", "lost wakeup (std::condition_variable)",
       "flag checked outside the lock, then one wait", 3, &StdLostWakeup},
  };
  return *corpus;
}

}  // namespace dsim::races
