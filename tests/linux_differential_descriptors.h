// Descriptor sequences for //tests:linux_differential_test: epoll, eventfd, timerfd,
// pipe, socketpair, fcntl, dup and select. Unlike the socket sequences (which call
// dsim's API in the simulation), these call the libc names in both worlds: outside any
// task they reach the kernel, inside a task on a simulated host //posix simulates them.
// So the same code is the test on both sides.
#ifndef DSIM_TESTS_LINUX_DIFFERENTIAL_DESCRIPTORS_H_
#define DSIM_TESTS_LINUX_DIFFERENTIAL_DESCRIPTORS_H_

#include <string>
#include <vector>

namespace dsim::differential {

struct DescriptorRun {
  std::string name;
  std::vector<std::string> linux_results;
  std::vector<std::string> dsim_results;
  std::vector<std::string> ops;  // "kind a,b,c,d" per op, for DSIM_DIFFERENTIAL_SHOW.
};

// Runs every descriptor sequence against the kernel, then in a simulation.
std::vector<DescriptorRun> RunDescriptorSequences();

}  // namespace dsim::differential

#endif  // DSIM_TESTS_LINUX_DIFFERENTIAL_DESCRIPTORS_H_
