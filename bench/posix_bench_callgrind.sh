#!/usr/bin/env bash
# Instructions per iteration of //bench:posix_bench's pairs, counted by valgrind's
# callgrind, and their ratios: a loaded machine moves wall times, not these.
#
#   bench/posix_bench_callgrind.sh            # every pair
#   bench/posix_bench_callgrind.sh MutexLockUnlock StdMutexHandoff:DsimMutexHandoff
#
# A pair is "Dsim:Baseline" (benchmark names without BM_), or one word W for
# BM_PassThroughW against BM_DirectW. Each benchmark runs twice under callgrind with a
# fixed iteration count (DSIM_BENCH_ITERATIONS), and the difference in instructions is
# divided by the difference in iterations, so start-up and set-up cancel out (the
# technique of bench/callgrind_exchanges.sh). Needs valgrind and python3.
# DSIM_BENCH_BIN: a posix_bench binary built elsewhere (for before/after).
set -euo pipefail
cd "$(dirname "$0")/.."

LOW="${DSIM_CALLGRIND_LOW:-2000}"
HIGH="${DSIM_CALLGRIND_HIGH:-10000}"
if [[ $# -eq 0 ]]; then
  set -- ClockGettime MutexLockUnlock PipeRead StdMutexHandoff:DsimMutexHandoff \
         StdCondVarPingPong:DsimCondVarPingPong EpollTcpEcho:NativeTcpEcho
fi

if [[ -n "${DSIM_BENCH_BIN:-}" ]]; then
  BIN="$DSIM_BENCH_BIN"
else
  ./bazelw build -c opt //bench:posix_bench >&2
  BIN="$(./bazelw info -c opt bazel-bin 2>/dev/null | grep -v "^INFO" | tail -1)/bench/posix_bench"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Prints the instructions of one benchmark at one iteration count.
measure() {
  local name="$1" iterations="$2"
  DSIM_BENCH_ITERATIONS="$iterations" valgrind --tool=callgrind \
      --callgrind-out-file="$WORK/out" "$BIN" \
      --benchmark_filter="^${name}/iterations:[0-9]+(/manual_time)?\$" \
      >/dev/null 2>"$WORK/valgrind.log" || {
    cat "$WORK/valgrind.log" >&2
    return 1
  }
  awk '/^(summary|totals):/ {print $2}' "$WORK/out" | tail -1
}

per_iteration() {
  local name="$1" i1 i2
  i1="$(measure "$name" "$LOW")"
  i2="$(measure "$name" "$HIGH")"
  python3 -c "import sys; print('%.1f' % ((float(sys.argv[2]) - float(sys.argv[1])) / ($HIGH - $LOW)))" \
      "$i1" "$i2"
}

printf '%-30s %12s   %-30s %12s %7s\n' benchmark instr/iter baseline instr/iter ratio
for pair in "$@"; do
  if [[ "$pair" == *:* ]]; then
    dsim="BM_${pair%%:*}" base="BM_${pair##*:}"
  else
    dsim="BM_PassThrough$pair" base="BM_Direct$pair"
  fi
  a="$(per_iteration "$dsim")"
  b="$(per_iteration "$base")"
  python3 -c "import sys; a,b=float(sys.argv[3]),float(sys.argv[4]); \
print('%-30s %12.1f   %-30s %12.1f %6.2fx' % (sys.argv[1], a, sys.argv[2], b, a / b))" \
      "$dsim" "$base" "$a" "$b"
done
