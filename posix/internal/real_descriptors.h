// Real descriptors that tasks obtain, kept apart from their hosts' descriptor numbers.
//
// Inside a task the host's descriptor table is consulted first and only numbers the host
// does not hold reach the real libc. A real file a task opens (a test data file, when
// //posix:files is not linked) gets the lowest number free in the *process*, which may be
// one the host already holds for a socket (read() would then read the socket), or one the
// host hands out next (the file would vanish behind it). So every real descriptor a task
// obtains is moved at once to the real range: the lowest free number at or above half the
// process's RLIMIT_NOFILE soft limit that its host does not hold.
#ifndef DSIM_POSIX_INTERNAL_REAL_DESCRIPTORS_H_
#define DSIM_POSIX_INTERNAL_REAL_DESCRIPTORS_H_

#include <cstdio>

#include "posix/posix.h"
#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

using ::dsim::posix::RealDescriptorFloor;

// Moves the real descriptor `fd`, just obtained by a task through the real libc, into the
// real range and returns its new number (close-on-exec kept). If it cannot be moved
// (the process is out of descriptors) and the host holds `fd`, the run fails naming
// `call`: the file would be unreachable. Returns `fd` unchanged when `fd` < 0.
int MoveToRealRange(Scheduler& scheduler, const char* call, int fd);

// The same for a stdio stream opened by the real fopen: its descriptor is moved and the
// stream is pointed at the new number (glibc's FILE keeps it in _fileno).
FILE* MoveStreamToRealRange(Scheduler& scheduler, const char* call, FILE* stream);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_REAL_DESCRIPTORS_H_
