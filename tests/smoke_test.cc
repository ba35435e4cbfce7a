#include <gtest/gtest.h>
#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/scheduler.h"

TEST(Smoke, Basic) {
  dsim::Scheduler s(dsim::SchedulerOptions{.seed = 7});
  dsim::Mutex mu; int counter = 0; std::string order;
  for (int i = 0; i < 3; ++i) s.Spawn(absl::StrCat("w", i), [&, i] {
    dsim::SleepFor(absl::Milliseconds(10));
    dsim::MutexLock l(&mu); ++counter; absl::StrAppend(&order, i);
  });
  auto r = s.Run();
  EXPECT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(counter, 3);
  EXPECT_EQ(s.Now(), dsim::Scheduler::Epoch() + absl::Milliseconds(10));
  std::cerr << order << " steps " << r.steps << "\n";
}
TEST(Smoke, Deadlock) {
  dsim::Mutex a, b;
  dsim::Scheduler s;
  s.Spawn("t1", [&] { dsim::MutexLock l(&a); dsim::SleepFor(absl::Seconds(1)); dsim::MutexLock m(&b); });
  s.Spawn("t2", [&] { dsim::MutexLock l(&b); dsim::SleepFor(absl::Seconds(1)); dsim::MutexLock m(&a); });
  auto r = s.Run();
  EXPECT_EQ(r.outcome, dsim::RunOutcome::kDeadlock);
  std::cerr << r.ToString() << "\n";
}
