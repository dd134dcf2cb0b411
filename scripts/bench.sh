#!/usr/bin/env bash
# Builds coring in Release (build-release/) with its comparison peers and runs the
# benchmark suite.
#
#   scripts/bench.sh                 the suite (BENCH_ARGS below)
#   scripts/bench.sh ARGS...         coring-bench ARGS... instead, e.g. `ring-nop --batch 32`
#
# Installs what is missing first, including liburing-dev for the comparison
# (scripts/install-deps.sh --peers; needs root only then).
#
# Pinning: the benchmark runs on one CPU (the last one) so that the scheduler does
# not migrate it between samples, and io_uring's task work runs on the same CPU as
# the submitter, as it would in a thread-per-core runtime. Set BENCH_CPUS to choose
# other CPUs (a taskset list such as "1" or "2-3"), or BENCH_CPUS=none to not pin.
set -euo pipefail

# The one place that says what the suite runs. When coring-bench grows `all`, this
# becomes (all).
# shellcheck disable=SC2054 # "1,8,32,128" is one argument
BENCH_ARGS=(ring-nop-compare --batches 1,8,32,128)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

build_dir="${BUILD_DIR:-build-release}"
jobs="${JOBS:-$(nproc)}"

scripts/install-deps.sh --peers

generator=(-G Ninja)
[[ -f "$build_dir/CMakeCache.txt" ]] && generator=()

cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCORING_BUILD_TESTS=OFF \
  -DCORING_BUILD_BENCHES=ON \
  -DCORING_BUILD_EXAMPLES=OFF
cmake --build "$build_dir" -j "$jobs"

if (($# > 0)); then
  BENCH_ARGS=("$@")
fi

bench="$build_dir/benches/coring-bench"
cpus="${BENCH_CPUS:-$(($(nproc) - 1))}"
if [[ "$cpus" == none ]] || ! command -v taskset >/dev/null 2>&1; then
  pin=()
else
  pin=(taskset -c "$cpus")
fi

echo "bench: ${pin[*]:+${pin[*]} }$bench ${BENCH_ARGS[*]}"
exec "${pin[@]}" "$bench" "${BENCH_ARGS[@]}"
