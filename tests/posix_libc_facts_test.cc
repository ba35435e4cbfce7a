// Calls glibc answers through its own internal calls, which no interposer of the plain
// names sees (time, randomness, machine facts, signals, process identity): inside a task
// each answers from the simulation (posix/libc_time.cc, posix/arc4random.cc,
// posix/machine.cc, posix/signals.cc), so a seed gives the same run on every machine,
// and the calls that would signal a real process fail the run.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "net/network.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"
#include "sim/harness.h"

// Deprecated in glibc's header, still exported: declared here to avoid the warning.
struct timeb;
extern "C" int ftime(struct timeb* out);
struct TimeB {  // glibc's struct timeb.
  time_t time;
  unsigned short millitm;
  short timezone;
  short dstflag;
};

namespace dsim {
namespace {

constexpr int64_t kEpochSeconds = 946684800;  // 2000-01-01 00:00:00 UTC.
constexpr uint64_t kGiB = uint64_t{1} << 30;

RunResult OnHost(std::function<void()> body, uint64_t seed = 1) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  host.Spawn("main", std::move(body));
  return scheduler.Run();
}

// ---- Time --------------------------------------------------------------------------

TEST(PosixLibcTime, TimespecGetReadsTheHostsWallClock) {
  timespec now{};
  int base = -1;
  RunResult result = OnHost([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    base = timespec_get(&now, TIME_UTC);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(base, TIME_UTC);
  EXPECT_EQ(now.tv_sec, kEpochSeconds + 1);
  EXPECT_EQ(now.tv_nsec, 500000000);
}

TEST(PosixLibcTime, ResolutionsAreOneNanosecondOnEveryVirtualClock) {
  timespec coarse{}, monotonic{}, utc{};
  int coarse_rc = -1, base = -1, invalid_rc = 0, invalid_errno = 0;
  RunResult result = OnHost([&] {
    coarse_rc = clock_getres(CLOCK_MONOTONIC_COARSE, &coarse);
    clock_getres(CLOCK_MONOTONIC, &monotonic);
    base = timespec_getres(&utc, TIME_UTC);
    timespec ignored;
    invalid_rc = clock_getres(12345, &ignored);
    invalid_errno = errno;
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(coarse_rc, 0);
  // Linux's COARSE clocks tick at 1/HZ (several ms); the virtual one reads nanoseconds.
  EXPECT_EQ(coarse.tv_sec, 0);
  EXPECT_EQ(coarse.tv_nsec, 1);
  EXPECT_EQ(monotonic.tv_nsec, 1);
  EXPECT_EQ(base, TIME_UTC);
  EXPECT_EQ(utc.tv_sec, 0);
  EXPECT_EQ(utc.tv_nsec, 1);
  EXPECT_EQ(invalid_rc, -1);
  EXPECT_EQ(invalid_errno, EINVAL);
}

TEST(PosixLibcTime, ClockTimesAndGetrusageAgreeWithTheCpuTimeClock) {
  timespec cpu{};
  clock_t clock_ticks = 0, elapsed_ticks = 0;
  tms times_out{};
  rusage self{}, thread{}, children{};
  int bad_rc = 0, bad_errno = 0;
  RunResult result = OnHost([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2250));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    clock_ticks = clock();
    elapsed_ticks = times(&times_out);
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_THREAD, &thread);
    getrusage(RUSAGE_CHILDREN, &children);
    bad_rc = getrusage(7, &self);
    bad_errno = errno;
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(cpu.tv_sec, 2);
  EXPECT_EQ(cpu.tv_nsec, 250000000);
  EXPECT_EQ(clock_ticks, 2250000);  // CLOCKS_PER_SEC units.
  EXPECT_EQ(times_out.tms_utime, 225);  // Clock ticks (USER_HZ, 100).
  EXPECT_EQ(times_out.tms_stime, 0);
  EXPECT_EQ(times_out.tms_cutime, 0);
  EXPECT_EQ(times_out.tms_cstime, 0);
  // The host's CLOCK_MONOTONIC: one hour of imaginary uptime before the epoch.
  EXPECT_EQ(elapsed_ticks, (3600 * 1000 + 2250) / 10);
  for (const rusage* usage : {&self, &thread}) {
    EXPECT_EQ(usage->ru_utime.tv_sec, 2);
    EXPECT_EQ(usage->ru_utime.tv_usec, 250000);
    EXPECT_EQ(usage->ru_stime.tv_sec, 0);
    EXPECT_EQ(usage->ru_stime.tv_usec, 0);
    EXPECT_EQ(usage->ru_maxrss, 0);  // Fixed: nothing in a simulation measures it.
    EXPECT_EQ(usage->ru_minflt, 0);
    EXPECT_EQ(usage->ru_nvcsw, 0);
  }
  EXPECT_EQ(children.ru_utime.tv_sec, 0);
  EXPECT_EQ(children.ru_utime.tv_usec, 0);
  EXPECT_EQ(bad_rc, -1);
  EXPECT_EQ(bad_errno, EINVAL);
}

TEST(PosixLibcTime, FtimeReadsTheHostsWallClock) {
  TimeB now{};
  RunResult result = OnHost([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(3042));
    ftime(reinterpret_cast<struct timeb*>(&now));
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(now.time, kEpochSeconds + 3);
  EXPECT_EQ(now.millitm, 42);
  EXPECT_EQ(now.timezone, 0);
}

TEST(PosixLibcTime, OutsideTasksTheRealClocksAnswer) {
  timespec now{};
  ASSERT_EQ(timespec_get(&now, TIME_UTC), TIME_UTC);
  EXPECT_GT(now.tv_sec, kEpochSeconds + 20 * 365 * 86400);  // Today, not 2000.
  TimeB b{};
  ftime(reinterpret_cast<struct timeb*>(&b));
  EXPECT_GT(b.time, kEpochSeconds + 20 * 365 * 86400);
}

// Local time is UTC in a task, whatever the machine's zone: here UTC+3 ("XYZ-3", a
// POSIX TZ string that needs no zone files).
TEST(PosixLibcTime, LocalTimeInATaskIsUtcWhateverTheMachinesZone) {
  const char* saved = std::getenv("TZ");
  const std::string saved_tz = saved != nullptr ? saved : "";
  setenv("TZ", "XYZ-3", 1);
  tzset();
  const time_t one_am = kEpochSeconds + 3600;
  struct tm outside {};
  localtime_r(&one_am, &outside);
  struct tm r{}, plain{}, made{};
  time_t round_trip = 0;
  std::string ctime_text, ctime_r_text;
  RunResult result = OnHost([&] {
    localtime_r(&one_am, &r);
    plain = *localtime(&one_am);
    made = r;
    made.tm_hour += 25;  // Normalized, as mktime does.
    round_trip = mktime(&made);
    ctime_text = ctime(&one_am);
    char buffer[32];
    ctime_r_text = ctime_r(&one_am, buffer);
  });
  if (saved != nullptr) setenv("TZ", saved_tz.c_str(), 1); else unsetenv("TZ");
  tzset();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(outside.tm_hour, 4);  // Outside tasks: the real zone.
  EXPECT_EQ(r.tm_hour, 1);
  EXPECT_EQ(r.tm_gmtoff, 0);
  EXPECT_STREQ(r.tm_zone, "UTC");
  EXPECT_EQ(plain.tm_hour, 1);
  EXPECT_EQ(round_trip, one_am + 25 * 3600);
  EXPECT_EQ(made.tm_mday, 2);
  EXPECT_EQ(made.tm_hour, 2);
  EXPECT_EQ(ctime_text, "Sat Jan  1 01:00:00 2000\n");
  EXPECT_EQ(ctime_r_text, ctime_text);
}

// ---- Randomness ----------------------------------------------------------------------

struct Draws {
  std::vector<uint32_t> words;
  std::vector<unsigned char> bytes;
  std::vector<uint32_t> bounded;
  bool operator==(const Draws& o) const {
    return words == o.words && bytes == o.bytes && bounded == o.bounded;
  }
};

Draws DrawArc4random(uint64_t seed) {
  Draws draws;
  RunResult result = OnHost(
      [&] {
        for (int i = 0; i < 8; ++i) draws.words.push_back(arc4random());
        draws.bytes.resize(37);
        arc4random_buf(draws.bytes.data(), draws.bytes.size());
        for (int i = 0; i < 8; ++i) draws.bounded.push_back(arc4random_uniform(1000));
      },
      seed);
  EXPECT_TRUE(result.ok()) << result.ToString();
  return draws;
}

TEST(PosixArc4random, DrawsReplayWithTheSeed) {
  const Draws first = DrawArc4random(5);
  EXPECT_EQ(DrawArc4random(5), first);   // glibc's would differ from run to run.
  EXPECT_FALSE(DrawArc4random(6) == first);
  for (uint32_t value : first.bounded) EXPECT_LT(value, 1000u);
}

TEST(PosixArc4random, UniformIsUnbiased) {
  // Bound 3 * 2^30: a modulo of a 32-bit draw would give a result below 2^30 half of
  // the time; the unbiased answer is a third.
  constexpr uint32_t kBound = 0xC0000000u;
  constexpr int kDraws = 30000;
  int low = 0, out_of_range = 0;
  uint32_t zero = 1, one = 1;
  RunResult result = OnHost([&] {
    for (int i = 0; i < kDraws; ++i) {
      const uint32_t value = arc4random_uniform(kBound);
      low += value < (1u << 30);
      out_of_range += value >= kBound;
    }
    zero = arc4random_uniform(0);
    one = arc4random_uniform(1);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(out_of_range, 0);
  EXPECT_NEAR(static_cast<double>(low) / kDraws, 1.0 / 3, 0.02);
  EXPECT_EQ(zero, 0u);
  EXPECT_EQ(one, 0u);
}

// ---- Temporary names ----------------------------------------------------------------

std::vector<std::string> TempNames(uint64_t seed) {
  std::vector<std::string> names;
  RunResult result = OnHost(
      [&] {
        char made[] = "/tmp/dsim-audit-XXXXXX";
        names.push_back(mktemp(made));
        char buffer[L_tmpnam];
        names.push_back(tmpnam_r(buffer));
        names.push_back(tmpnam(nullptr));
        char* chosen = tempnam("/tmp", "abcdefg");
        names.push_back(chosen);
        free(chosen);
      },
      seed);
  EXPECT_TRUE(result.ok()) << result.ToString();
  return names;
}

TEST(PosixTempNames, NamesAreDrawnFromTheSeed) {
  const std::vector<std::string> names = TempNames(11);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0].rfind("/tmp/dsim-audit-", 0), 0u);
  EXPECT_EQ(names[0].size(), std::strlen("/tmp/dsim-audit-XXXXXX"));
  EXPECT_EQ(names[1].rfind(P_tmpdir "/file", 0), 0u);
  EXPECT_NE(names[1], names[2]);
  EXPECT_NE(names[3].find("/abcde"), std::string::npos);  // Prefix cut to five.
  EXPECT_EQ(TempNames(11), names);  // glibc's come from the real clock.
  EXPECT_NE(TempNames(12), names);
}

// ---- Machine facts -------------------------------------------------------------------

TEST(PosixMachine, EveryCpuCountSaysFour) {
  std::vector<long> counts;
  int affinity_count = 0, thread_affinity_count = 0, cpu = -1;
  unsigned getcpu_cpu = 9, getcpu_node = 9;
  RunResult result = OnHost([&] {
    counts = {get_nprocs(), get_nprocs_conf(), sysconf(_SC_NPROCESSORS_ONLN),
              sysconf(_SC_NPROCESSORS_CONF),
              static_cast<long>(std::thread::hardware_concurrency())};
    cpu_set_t set;
    CPU_ZERO(&set);
    EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
    affinity_count = CPU_COUNT(&set);
    CPU_ZERO(&set);
    std::thread worker([&] {
      EXPECT_EQ(pthread_getaffinity_np(pthread_self(), sizeof(set), &set), 0);
    });
    worker.join();
    thread_affinity_count = CPU_COUNT(&set);
    cpu = sched_getcpu();
    getcpu(&getcpu_cpu, &getcpu_node);
    // Setting an affinity that names a simulated CPU is accepted (and changes nothing).
    CPU_ZERO(&set);
    CPU_SET(2, &set);
    EXPECT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
    CPU_ZERO(&set);
    CPU_SET(100, &set);
    EXPECT_EQ(sched_setaffinity(0, sizeof(set), &set), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(sched_getaffinity(4242, sizeof(set), &set), -1);  // No such process.
    EXPECT_EQ(errno, ESRCH);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(counts, (std::vector<long>{4, 4, 4, 4, 4}));
  EXPECT_EQ(affinity_count, 4);
  EXPECT_EQ(thread_affinity_count, 4);
  EXPECT_EQ(cpu, 0);
  EXPECT_EQ(getcpu_cpu, 0u);
  EXPECT_EQ(getcpu_node, 0u);
}

TEST(PosixMachine, MemoryIsEightGibibytesWithFourFree) {
  const long page = sysconf(_SC_PAGESIZE);
  long phys = 0, avail = 0, phys_call = 0, avail_call = 0, page_in_task = 0;
  long open_max_in_task = 0;
  RunResult result = OnHost([&] {
    phys = sysconf(_SC_PHYS_PAGES);
    avail = sysconf(_SC_AVPHYS_PAGES);
    phys_call = get_phys_pages();
    avail_call = get_avphys_pages();
    page_in_task = sysconf(_SC_PAGESIZE);
    open_max_in_task = sysconf(_SC_OPEN_MAX);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(static_cast<uint64_t>(phys) * page, 8 * kGiB);
  EXPECT_EQ(static_cast<uint64_t>(avail) * page, 4 * kGiB);
  EXPECT_EQ(phys_call, phys);
  EXPECT_EQ(avail_call, avail);
  // Other names pass through.
  EXPECT_EQ(page_in_task, page);
  EXPECT_EQ(open_max_in_task, sysconf(_SC_OPEN_MAX));
}

TEST(PosixMachine, UnameNamesTheHostAndAFixedKernel) {
  utsname name{};
  int rc = -1;
  RunResult result = OnHost([&] { rc = uname(&name); });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(rc, 0);
  EXPECT_STREQ(name.sysname, "Linux");
  EXPECT_STREQ(name.nodename, "local");
  EXPECT_STREQ(name.release, "6.1.0-dsim");
  EXPECT_STREQ(name.version, "#1 SMP dsim");
  EXPECT_STREQ(name.machine, "x86_64");
  EXPECT_STREQ(name.domainname, "(none)");
}

TEST(PosixMachine, SysinfoAndLoadAverageAreTheSimulatedMachines) {
  struct sysinfo info {};
  double loads[3] = {-1, -1, -1};
  int loads_rc = -1;
  RunResult result = OnHost([&] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    EXPECT_EQ(sysinfo(&info), 0);
    loads_rc = getloadavg(loads, 3);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(info.uptime, 3600 + 5);  // The host's CLOCK_MONOTONIC.
  EXPECT_EQ(info.loads[0], 0u);
  EXPECT_EQ(info.loads[1], 0u);
  EXPECT_EQ(info.loads[2], 0u);
  EXPECT_EQ(static_cast<uint64_t>(info.totalram) * info.mem_unit, 8 * kGiB);
  EXPECT_EQ(static_cast<uint64_t>(info.freeram) * info.mem_unit, 4 * kGiB);
  EXPECT_EQ(info.totalswap, 0u);
  EXPECT_EQ(info.procs, 1);
  EXPECT_EQ(loads_rc, 3);
  EXPECT_EQ(loads[0], 0.0);
  EXPECT_EQ(loads[1], 0.0);
  EXPECT_EQ(loads[2], 0.0);
}

// ---- Process identity ------------------------------------------------------------------

struct Identity {
  pid_t pid = 0, ppid = 0, tid = 0, raw_pid = 0, raw_tid = 0, thread_pid = 0, thread_tid = 0;
  GroupId group = 0;
  TaskId task = 0;
};

Identity IdentityInATask() {
  Identity id;
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  Network network(&scheduler);
  NetworkHost& host = network.AddHost("local", {"10.0.0.1"});
  host.Spawn("main", [&] {
    id.group = scheduler.CurrentGroup();
    id.task = scheduler.CurrentTaskId();
    id.pid = getpid();
    id.ppid = getppid();
    id.tid = gettid();
    id.raw_pid = static_cast<pid_t>(syscall(SYS_getpid));
    id.raw_tid = static_cast<pid_t>(syscall(SYS_gettid));
    std::thread worker([&] {
      id.thread_pid = getpid();
      id.thread_tid = gettid();
    });
    worker.join();
  });
  RunResult result = scheduler.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  return id;
}

TEST(PosixIdentity, PidAndTidAreTheSimulatedOnes) {
  const Identity id = IdentityInATask();
  EXPECT_EQ(id.pid, 1000 + static_cast<pid_t>(id.group));
  EXPECT_EQ(id.ppid, 1);
  EXPECT_EQ(id.tid, 100000 + static_cast<pid_t>(id.task));
  EXPECT_EQ(id.raw_pid, id.pid);
  EXPECT_EQ(id.raw_tid, id.tid);
  EXPECT_EQ(id.thread_pid, id.pid);  // One host, one process.
  EXPECT_NE(id.thread_tid, id.tid);
  const Identity again = IdentityInATask();
  EXPECT_EQ(again.pid, id.pid);
  EXPECT_EQ(again.tid, id.tid);
  EXPECT_EQ(again.thread_tid, id.thread_tid);
}

TEST(PosixIdentity, OutsideTasksThePidIsReal) {
  EXPECT_EQ(getpid(), static_cast<pid_t>(syscall(SYS_getpid)));
  EXPECT_EQ(gettid(), static_cast<pid_t>(syscall(SYS_gettid)));
  EXPECT_EQ(getppid(), static_cast<pid_t>(syscall(SYS_getppid)));
}

TEST(PosixIdentity, CallsNamingAProcessAnswerForTheSimulatedOne) {
  rlimit real_files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &real_files), 0);
  RunResult result = OnHost([&] {
    const pid_t self = getpid();
    EXPECT_EQ(getpgrp(), self);  // A host leads its own group and session.
    EXPECT_EQ(getpgid(0), self);
    EXPECT_EQ(getpgid(self), self);
    EXPECT_EQ(getsid(0), self);
    EXPECT_EQ(setpgid(0, 0), 0);
    EXPECT_EQ(setsid(), -1);  // Already a group leader (the real one would detach).
    EXPECT_EQ(errno, EPERM);
    errno = 0;
    EXPECT_EQ(getpriority(PRIO_PROCESS, 0), 0);
    EXPECT_EQ(errno, 0);
    EXPECT_EQ(setpriority(PRIO_PROCESS, self, 5), 0);
    EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    sched_param param{.sched_priority = 7};
    EXPECT_EQ(sched_getparam(gettid(), &param), 0);
    EXPECT_EQ(param.sched_priority, 0);
    timespec slice{1, 1};
    EXPECT_EQ(sched_rr_get_interval(0, &slice), 0);
    EXPECT_EQ(slice.tv_sec, 0);
    EXPECT_EQ(slice.tv_nsec, 0);
    rlimit files{};
    EXPECT_EQ(prlimit(self, RLIMIT_NOFILE, nullptr, &files), 0);  // The real limits.
    EXPECT_EQ(files.rlim_cur, real_files.rlim_cur);
    // Another number is no process of the simulation, whatever real process has it.
    const pid_t other = self + 1;
    EXPECT_EQ(getpriority(PRIO_PROCESS, other), -1);
    EXPECT_EQ(errno, ESRCH);
    EXPECT_EQ(sched_getscheduler(other), -1);
    EXPECT_EQ(errno, ESRCH);
    EXPECT_EQ(prlimit(other, RLIMIT_NOFILE, nullptr, &files), -1);
    EXPECT_EQ(errno, ESRCH);
    EXPECT_EQ(getsid(other), -1);
    EXPECT_EQ(errno, ESRCH);
    // No children: a task cannot fork.
    int status = 0;
    EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
    EXPECT_EQ(wait(&status), -1);
    EXPECT_EQ(errno, ECHILD);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixMachine, DomainNameAndHostIdAreTheSimulatedHosts) {
  char domain[64] = "x";
  long id = 0;
  RunResult result = OnHost([&] {
    EXPECT_EQ(getdomainname(domain, sizeof(domain)), 0);
    id = gethostid();
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_STREQ(domain, "(none)");
  // glibc's formula over the host's address (10.0.0.1), halves swapped.
  const uint32_t address = inet_addr("10.0.0.1");
  EXPECT_EQ(id, static_cast<int32_t>(address << 16 | address >> 16));
  // Without a simulated network no name is resolved (for real): 0.
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  long without_network = -1;
  scheduler.Spawn("plain", [&] { without_network = gethostid(); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(without_network, 0);
}

TEST(PosixLibcTime, AdjtimexReadsTheVirtualClockAndRefusesToAdjust) {
  timex tx{};
  ntptimeval ntp{};
  int read_rc = -1, ntp_rc = -1, adjust_rc = 0;
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  Network network(&scheduler);
  network.AddHost("local", {"10.0.0.1"}).Spawn("main", [&] {
    std::this_thread::sleep_for(std::chrono::seconds(7));
    read_rc = adjtimex(&tx);
    ntp_rc = ntp_gettime(&ntp);
    timex adjust{};
    adjust.modes = ADJ_FREQUENCY;
    adjust_rc = adjtimex(&adjust);
  });
  RunResult result = scheduler.Run();
  EXPECT_EQ(read_rc, TIME_OK);
  EXPECT_EQ(tx.time.tv_sec, kEpochSeconds + 7);
  EXPECT_EQ(tx.tai, 37);
  EXPECT_EQ(ntp_rc, TIME_OK);
  EXPECT_EQ(ntp.time.tv_sec, kEpochSeconds + 7);
  EXPECT_EQ(adjust_rc, -1);
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("called adjtimex from"), std::string::npos) << result.ToString();
}

// ---- Signals ---------------------------------------------------------------------------

struct SignalCall {
  const char* name;
  std::function<int()> call;
};

class PosixSignals : public ::testing::TestWithParam<SignalCall> {};

// Signal 0 only checks that the target exists: harmless if a call were not refused.
TEST_P(PosixSignals, SendingASignalFromATaskFailsTheRunNamingTheCall) {
  int rc = 0;
  RunResult result = OnHost([&] { rc = GetParam().call(); });
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed) << result.ToString();
  EXPECT_NE(result.ToString().find(std::string("called ") + GetParam().name + " from"),
            std::string::npos)
      << result.ToString();
  EXPECT_NE(rc, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Calls, PosixSignals,
    ::testing::Values(
        SignalCall{"kill", [] { return kill(getpid(), 0); }},
        SignalCall{"killpg", [] { return killpg(getpgrp(), 0); }},
        SignalCall{"raise", [] { return raise(0); }},
        SignalCall{"gsignal", [] { return gsignal(0); }},
        SignalCall{"tgkill", [] { return tgkill(getpid(), gettid(), 0); }},
        SignalCall{"sigqueue", [] { return sigqueue(getpid(), 0, sigval{}); }},
        SignalCall{"syscall", [] { return static_cast<int>(syscall(SYS_tgkill, getpid(), gettid(), 0)); }},
        SignalCall{"syscall", [] { return static_cast<int>(syscall(SYS_kill, getpid(), 0)); }},
        SignalCall{"pthread_sigqueue", [] { return pthread_sigqueue(pthread_self(), 0, sigval{}); }},
        // Timers that would deliver a real SIGALRM, and waits no signal will end.
        SignalCall{"alarm", [] { return alarm(1000) == 0 ? -1 : 0; }},
        SignalCall{"setitimer", [] {
          itimerval value{};
          value.it_value.tv_sec = 1000;
          return setitimer(ITIMER_REAL, &value, nullptr);
        }},
        SignalCall{"timer_create", [] {
          timer_t timer;
          return timer_create(CLOCK_MONOTONIC, nullptr, &timer);
        }},
        SignalCall{"pause", [] { return pause(); }},
        SignalCall{"sigsuspend", [] {
          sigset_t none;
          sigemptyset(&none);
          return sigsuspend(&none);
        }},
        SignalCall{"sigwaitinfo", [] {
          sigset_t set;
          sigemptyset(&set);
          sigaddset(&set, SIGUSR1);
          return sigwaitinfo(&set, nullptr);
        }}),
    [](const ::testing::TestParamInfo<SignalCall>& info) {
      return std::string(info.param.name) + std::to_string(info.index);
    });

TEST(PosixSignals, SigtimedwaitWaitsItsTimeoutInVirtualTime) {
  int rc = 0, error = 0;
  itimerval armed{};
  armed.it_value.tv_sec = 99;
  absl::Duration waited;
  RunResult result = OnHost([&] {
    EXPECT_EQ(getitimer(ITIMER_REAL, &armed), 0);  // Nothing is ever armed in a task.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    const timespec timeout{0, 250000000};
    const absl::Time start = dsim::Now();
    rc = sigtimedwait(&set, nullptr, &timeout);
    error = errno;
    waited = dsim::Now() - start;
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(error, EAGAIN);
  EXPECT_EQ(waited, absl::Milliseconds(250));
  EXPECT_EQ(armed.it_value.tv_sec, 0);
}

TEST(PosixSignalsDeathTest, AbortInATaskStillAborts) {
  EXPECT_EXIT(OnHost([] { abort(); }), ::testing::KilledBySignal(SIGABRT), "");
}

TEST(PosixSignals, OutsideTasksSignalsAreReal) {
  EXPECT_EQ(kill(getpid(), 0), 0);
  EXPECT_EQ(raise(0), 0);
}

// ---- Determinism -----------------------------------------------------------------------

TEST(PosixLibcFactsDeterminism, ACheckedSweepOverTheseCallsStaysClean) {
  std::ostringstream log;
  SweepOptions options;
  options.seeds = 4;
  options.check_determinism = true;
  options.report_to_gtest = false;
  options.record_schedules = false;
  options.log = &log;
  options.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  SeedSweep sweep(options);
  const SweepResult result = sweep.Run([](Simulation& sim) -> absl::Status {
    sim.Spawn("main", [] {
      std::thread workers[3];
      for (std::thread& worker : workers) {
        worker = std::thread([] {
          // Each source feeds a sleep, so a real value would change the trace.
          timespec now{};
          timespec_get(&now, TIME_UTC);
          uint64_t wait_us = arc4random_uniform(500) + now.tv_nsec / 1000 % 100;
          wait_us += static_cast<uint64_t>(clock()) % 50 + static_cast<uint64_t>(getpid()) % 7;
          wait_us += static_cast<uint64_t>(gettid()) % 11 + get_nprocs();
          struct sysinfo info {};
          sysinfo(&info);
          wait_us += static_cast<uint64_t>(info.uptime) % 13;
          std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
        });
      }
      for (std::thread& worker : workers) worker.join();
    });
    return sim.Run().status();
  });
  EXPECT_TRUE(result.ok()) << log.str();
  EXPECT_EQ(result.outcomes.size(), 4u);
  for (const SeedOutcome& outcome : result.outcomes) {
    EXPECT_FALSE(outcome.nondeterministic) << outcome.report;
  }
}

}  // namespace
}  // namespace dsim
