#!/bin/bash
# Builds the libFuzzer socket fuzzer with clang-14 (Bazel's toolchain here is gcc, which
# has no -fsanitize=fuzzer), with AddressSanitizer and UndefinedBehaviorSanitizer:
#
#   tests/fuzz/build_libfuzzer.sh [output]          # default /tmp/dsim-socket-fuzz
#   mkdir -p /tmp/dsim-socket-corpus
#   /tmp/dsim-socket-fuzz -max_total_time=600 -timeout=20 -rss_limit_mb=4096 \
#       /tmp/dsim-socket-corpus
#
# Each input is a socket program (tests/fuzz/socket_program.h) run twice; different
# fingerprints abort with "ran differently twice", as do crashes and sanitizer reports.
# Reproduce one input:  /tmp/dsim-socket-fuzz crash-<hash>
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-/tmp/dsim-socket-fuzz}"
objects="$(mktemp -d /tmp/dsim-socket-fuzz-objs.XXXXXX)"
trap 'rm -rf "$objects"' EXIT

sources=(scheduler/*.cc scheduler/internal/*.cc net/network.cc sim/faults.cc
         sim/simulation.cc sim/trace.cc sim/internal/*.cc sockets/*.cc sockets/internal/*.cc
         tests/fuzz/socket_program.cc tests/fuzz/socket_fuzz_libfuzzer.cc)
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -I. -DDSIM_ASAN
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
pids=()
for source in "${sources[@]}"; do
  object="$objects/$(echo "$source" | tr / _).o"
  clang++-14 "${flags[@]}" -c "$source" -o "$object" &
  pids+=($!)
  # Two compilers at a time: the machine is shared.
  if (( ${#pids[@]} >= 2 )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

absl_libraries=$(ls /usr/lib/x86_64-linux-gnu/libabsl_*.so | sed 's|.*/lib\(.*\)\.so|-l\1|')
# shellcheck disable=SC2086
clang++-14 -fsanitize=fuzzer,address,undefined "$objects"/*.o -o "$out" \
    -Wl,--start-group $absl_libraries -Wl,--end-group -l:libboost_context.a -pthread
echo "built $out"
