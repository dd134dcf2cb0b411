#!/usr/bin/env bash
# Builds coring in Release (build-release/) with its comparison peers and runs the
# benchmark suite.
#
#   scripts/bench.sh                 the suite: coring-bench all, every benchmark against
#                                    its peers in one table (about two minutes on 2 CPUs),
#                                    results in bench-results/results.json and a chart of
#                                    CPU per operation in bench-results/results.png
#   scripts/bench.sh ARGS...         coring-bench ARGS... instead, e.g. `ring-nop --batch 32`
#
# Installs what is missing first: the comparison peers (liburing-dev, libboost1.81-dev
# for the Asio peers, fio, nginx, wrk) and gnuplot for the chart (scripts/install-deps.sh
# --peers; needs root only then). A peer that still cannot be had is a "skipped" cell
# of the table, with the apt-get line that adds it.
#
# Pinning: `all` pins its own processes (servers on the first CPU it may use, load
# clients and in-process benchmarks on the second), so it runs unpinned here: a taskset
# would shut its servers and clients into one CPU. Any other subcommand runs on one CPU
# (the last one) so that the scheduler does not migrate it between samples, and
# io_uring's task work runs on the same CPU as the submitter, as it would in a
# thread-per-core runtime. Set BENCH_CPUS to choose other CPUs (a taskset list such as
# "1" or "2-3"), or BENCH_CPUS=none to not pin.
set -euo pipefail

# The one place that says what the suite runs.
BENCH_ARGS=(all --json bench-results/results.json)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

build_dir="${BUILD_DIR:-build-release}"
jobs="${JOBS:-$(nproc)}"

# A peer that cannot be installed is no reason to stop: the suite shows it as skipped.
# A build dependency that is missing stops the build below, with cmake's message.
if ! scripts/install-deps.sh --peers; then
  echo "bench: not every package could be installed; what is missing shows as skipped" >&2
fi

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
if [[ "${BENCH_ARGS[0]}" == all && -z "${BENCH_CPUS:-}" ]]; then
  cpus=none  # it pins its children itself
fi
if [[ "$cpus" == none ]] || ! command -v taskset >/dev/null 2>&1; then
  pin=()
else
  pin=(taskset -c "$cpus")
fi
# --json's directory, so that `all --json bench-results/results.json` can write there.
for ((i = 0; i + 1 < ${#BENCH_ARGS[@]}; i++)); do
  if [[ "${BENCH_ARGS[i]}" == --json ]]; then
    mkdir -p "$(dirname "${BENCH_ARGS[i + 1]}")"
  fi
done

echo "bench: ${pin[*]:+${pin[*]} }$bench ${BENCH_ARGS[*]}"
exec "${pin[@]}" "$bench" "${BENCH_ARGS[@]}"
