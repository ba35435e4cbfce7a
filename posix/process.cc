// Process calls that cannot be simulated: called from a task, each fails the run with
// a report naming the task, the call and its caller, and returns an error.
#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(fork);
DSIM_DECLARE_REAL(vfork);
DSIM_DECLARE_REAL(execve);
DSIM_DECLARE_REAL(execv);
DSIM_DECLARE_REAL(execvp);
DSIM_DECLARE_REAL(system);
DSIM_DECLARE_REAL(posix_spawn);
DSIM_DECLARE_REAL(posix_spawnp);

// True (and the run fails) if the caller is a task.
// always_inline: TaskScheduler() must see the return address of the interposer.
__attribute__((always_inline)) inline bool Refuse(const char* call) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return false;
  pi::RecordEscape(*scheduler, call,
                   "creating or replacing a process is not simulated", true);
  return true;
}

}  // namespace

extern "C" {

pid_t fork(void) noexcept {
  if (Refuse("fork")) {
    errno = ENOSYS;
    return -1;
  }
  return DSIM_REAL(fork)();
}

pid_t vfork(void) noexcept {
  if (Refuse("vfork")) {
    errno = ENOSYS;
    return -1;
  }
  return DSIM_REAL(fork)();  // vfork's shared-stack contract cannot hold through a wrapper.
}

int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  if (Refuse("execve")) {
    errno = ENOSYS;
    return -1;
  }
  return DSIM_REAL(execve)(path, argv, envp);
}

int execv(const char* path, char* const argv[]) noexcept {
  if (Refuse("execv")) {
    errno = ENOSYS;
    return -1;
  }
  return DSIM_REAL(execv)(path, argv);
}

int execvp(const char* file, char* const argv[]) noexcept {
  if (Refuse("execvp")) {
    errno = ENOSYS;
    return -1;
  }
  return DSIM_REAL(execvp)(file, argv);
}

int system(const char* command) {
  if (Refuse("system")) return -1;
  return DSIM_REAL(system)(command);
}

int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (Refuse("posix_spawn")) return ENOSYS;
  return DSIM_REAL(posix_spawn)(pid, path, actions, attr, argv, envp);
}

int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (Refuse("posix_spawnp")) return ENOSYS;
  return DSIM_REAL(posix_spawnp)(pid, file, actions, attr, argv, envp);
}

}  // extern "C"
