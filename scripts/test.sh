#!/usr/bin/env bash
# Builds everything (library, tests, benches, examples) in build/ and runs every test.
#
#   scripts/test.sh
#
# Installs what is missing first (scripts/install-deps.sh; needs root only then).
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo),
# JOBS (default: the number of CPUs), CTEST_JOBS (default 2; the tests are independent:
# each owns its rings, loopback sockets and temporary directory).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-RelWithDebInfo}"
jobs="${JOBS:-$(nproc)}"
ctest_jobs="${CTEST_JOBS:-2}"

scripts/install-deps.sh

# Ninja for a new build tree; an existing one keeps its generator (cmake refuses to switch).
generator=(-G Ninja)
[[ -f "$build_dir/CMakeCache.txt" ]] && generator=()

cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE="$build_type" \
  -DCORING_BUILD_TESTS=ON \
  -DCORING_BUILD_BENCHES=ON \
  -DCORING_BUILD_EXAMPLES=ON
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$ctest_jobs"
