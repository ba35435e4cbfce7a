// //posix: unmodified code under simulation. Linked into a test (add "//posix" to a
// cc_test's deps), it defines the libc and pthread entry points that code written
// against std::thread, std::mutex, std::condition_variable, std::chrono and POSIX calls
// reaches. Each asks whether the caller is a dsim task: if not (GoogleTest, Bazel's
// runner, main, other threads), it calls the real libc function; if so, it simulates
// the call on the virtual clock and the task scheduler.
//
// Example:
//
//   // BUILD: cc_test(..., deps = ["//posix", "//scheduler", ...])
//   std::mutex mu;
//   std::condition_variable cv;
//   bool ready = false;
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 1});
//   scheduler.Spawn("main", [&] {
//     std::thread t([&] {                                  // a dsim task
//       std::this_thread::sleep_for(std::chrono::seconds(1));  // virtual: instant
//       std::lock_guard<std::mutex> lock(mu);
//       ready = true;
//       cv.notify_one();
//     });
//     std::unique_lock<std::mutex> lock(mu);
//     cv.wait(lock, [&] { return ready; });
//     lock.unlock();
//     t.join();
//   });
//   scheduler.Run();
//   // dsim::posix::EscapedCalls(scheduler) lists calls that reached the real libc.
//
// What is captured, what is not, and what fails the run: README, "Unmodified code".
#ifndef DSIM_POSIX_POSIX_H_
#define DSIM_POSIX_POSIX_H_

#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace dsim::posix {

// A call made from inside a task that reached the real libc (or, if fatal, would have).
struct EscapedCall {
  TaskId task = kNoTask;
  std::string task_name;
  std::string call;      // "write", "fork", "syscall(SYS_socket)", ...
  std::string detail;    // "fd 1 is not a simulated descriptor", ...
  std::string location;  // The calling function, when it can be found.
  bool fatal = false;    // The run was failed for it.

  // `task "worker" called fork from Server::Start() (server_test+0x1c2): not simulated`
  std::string ToString() const;
};

// Calls forwarded to the real libc from inside tasks of `scheduler`, in call order.
std::vector<EscapedCall> EscapedCalls(const Scheduler& scheduler);

// True when //posix is linked into this binary.
bool Linked();

// Real descriptors a task obtains (a real file it opens, when //posix:files is not
// linked) are moved at once to numbers at or above this one (half the process's
// RLIMIT_NOFILE soft limit), so they never share a number with a host's simulated
// descriptors, which count up from 3.
int RealDescriptorFloor();

}  // namespace dsim::posix

#endif  // DSIM_POSIX_POSIX_H_
