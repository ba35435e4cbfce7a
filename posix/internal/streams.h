// stdio streams over simulated descriptors, and the one question stdio's interposers ask
// about the link: are paths simulated (//posix:files linked) or real?
//
// glibc's stdio reaches the kernel through internal calls no interposer sees, so a FILE
// that glibc opens itself over a simulated descriptor number would read and write the
// process's real descriptor of that number. Streams over simulated descriptors are
// therefore fopencookie streams whose functions call dsim's descriptor layer, with the
// stream's _fileno set to the descriptor so that fileno() answers it (libstdc++'s
// filebuf reads, writes and seeks with read/write/lseek64 on fileno(), which //posix
// routes to the same descriptor).
#ifndef DSIM_POSIX_INTERNAL_STREAMS_H_
#define DSIM_POSIX_INTERNAL_STREAMS_H_

#include <cstdio>

namespace dsim::posix::internal {

// True when //posix:files is linked: a task's paths name its host's simulated disk.
// Defined weakly (false) in //posix and strongly (true) in //posix:files.
bool PathsAreSimulated();

// fopen's mode string ("r", "w+", "ae", "rx", ...) as open(2) flags; -1 if invalid.
int OpenFlagsOfStreamMode(const char* mode);

// A stdio stream over the simulated descriptor `fd` (any kind: socket, pipe, device,
// simulated file), which the stream owns: fclose closes it. Seeks reach the descriptor
// (ESPIPE for sockets and pipes). Null with errno if the stream cannot be made; `fd` is
// then left open.
FILE* StreamOverSimulatedDescriptor(int fd, const char* mode);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_STREAMS_H_
