#!/usr/bin/env bash
# Instructions per exchange (or per iteration) of dsim benchmarks, counted by
# valgrind's callgrind: a machine's load cannot move these figures, wall times can.
#
#   bench/callgrind_exchanges.sh                       # the echo paths and BM_DemoSeed
#   bench/callgrind_exchanges.sh 'BM_UdpEchoBare/10'   # chosen benchmarks
#
# Each benchmark runs twice under callgrind with a fixed iteration count
# (DSIM_BENCH_ITERATIONS, see bench/echo_paths.h), and the script divides the
# difference in instructions by the difference in exchanges (the `exchanges` counter,
# or iterations when a benchmark has none), so start-up and set-up costs cancel out.
# Needs valgrind and python3. Builds the binaries with -c opt first.
set -euo pipefail
cd "$(dirname "$0")/.."

LOW="${DSIM_CALLGRIND_LOW:-2000}"
HIGH="${DSIM_CALLGRIND_HIGH:-10000}"
if [[ $# -eq 0 ]]; then
  set -- BM_UdpEchoBare/10 BM_UdpEchoSimulation/10 BM_UdpEchoWrapper/10 \
         BM_TcpEchoBare/10 BM_TcpEchoSimulation/10 BM_TcpEchoWrapper/10 \
         BM_UdpEchoBare/100 BM_UdpEchoSimulation/100 BM_UdpEchoWrapper/100 \
         BM_TcpEchoBare/100 BM_TcpEchoSimulation/100 BM_TcpEchoWrapper/100 \
         BM_TcpEchoRoundTrip BM_UdpDatagram BM_DemoSeed
fi

# DSIM_BENCH_BIN_DIR: binaries built elsewhere (an older commit, for before/after).
if [[ -n "${DSIM_BENCH_BIN_DIR:-}" ]]; then
  BIN_DIR="$DSIM_BENCH_BIN_DIR"
else
  ./bazelw build -c opt //bench:sockets_bench //bench:sim_bench >&2
  BIN_DIR="$(./bazelw info -c opt bazel-bin 2>/dev/null | grep -v "^INFO" | tail -1)/bench"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Prints "<instructions> <exchanges>" for one benchmark at one iteration count.
measure() {
  local binary="$1" name="$2" iterations="$3"
  DSIM_BENCH_ITERATIONS="$iterations" valgrind --tool=callgrind \
      --callgrind-out-file="$WORK/out" "$BIN_DIR/$binary" \
      --benchmark_filter="^${name}(/iterations:[0-9]+)?(/real_time)?\$" --benchmark_format=json \
      --benchmark_out="$WORK/result.json" >/dev/null 2>"$WORK/valgrind.log" || {
    cat "$WORK/valgrind.log" >&2
    return 1
  }
  python3 - "$WORK/out" "$WORK/result.json" <<'PY'
import json, sys
instructions = None
for line in open(sys.argv[1]):
    if line.startswith(("summary:", "totals:")):
        instructions = int(line.split()[1])
run = json.load(open(sys.argv[2]))["benchmarks"][0]
print(instructions, run.get("exchanges", run["iterations"]))
PY
}

printf '%-28s %14s %10s\n' benchmark instructions per
for name in "$@"; do
  binary=sockets_bench
  low="$LOW" high="$HIGH"
  if [[ "$name" == BM_DemoSeed* ]]; then binary=sim_bench; low=2; high=12; fi
  read -r i1 e1 < <(measure "$binary" "$name" "$low")
  read -r i2 e2 < <(measure "$binary" "$name" "$high")
  python3 -c "import sys; i1,e1,i2,e2=map(float,sys.argv[1:]); \
print('%-28s %14.0f %10s' % ('$name', (i2-i1)/(e2-e1), 'seed' if '$name'.startswith('BM_DemoSeed') else 'exchange'))" \
      "$i1" "$e1" "$i2" "$e2"
done
