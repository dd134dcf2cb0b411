#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang 14 and runs each for a while.
#
#   scripts/fuzz.sh [SECONDS]     SECONDS per target, default 60
#
# For each target (coring-fuzz-http, coring-fuzz-http-parser, coring-fuzz-loop, and
# coring-fuzz-loop again as "loop-epoll" with CORING_BACKEND=epoll: the loop's dispatch
# over the epoll backend, from the same corpus and regressions; coring-fuzz-tls, the TLS
# server's handshake and records) it first replays the inputs of
# tests/fuzz/regressions/<target>/ (one file per bug found, which must stay fixed), then
# fuzzes for SECONDS starting from a copy of the committed corpus tests/fuzz/corpus/<target>/
# in a temporary directory (the tree stays clean). It fails if any target crashes, leaks,
# trips ASan or UBSan, or times out; the inputs that did are kept under the temporary
# directory it names. Per target it prints one line of figures:
#
#   fuzz <target>: <executions> executions in <s> s (<n>/s), cov <edges>, ft <features>,
#   corpus <files> files / <bytes> bytes (committed: <files>)
#
# Build: build-fuzz/ (BUILD_DIR), RelWithDebInfo at -O1 with assertions on (the asserts of
# the runtime are checks the fuzzer should reach), the whole project with coverage,
# ASan and UBSan (tests/fuzz/CMakeLists.txt says why and which checks).
# Environment: BUILD_DIR (default build-fuzz), JOBS (default: the number of CPUs),
# FUZZ_UPDATE_CORPUS=1 to add to each committed corpus afterwards the inputs of the run
# that reach coverage it lacks (-merge=1; the seeds stay) — for a commit that grows it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-60}"
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: $0 [SECONDS]   (a positive number of seconds per target)" >&2
  exit 2
fi
build_dir="${BUILD_DIR:-build-fuzz}"
jobs="${JOBS:-$(nproc)}"
targets=(http http-parser loop loop-epoll tls)
binaries=(http http-parser loop tls)

scripts/install-deps.sh

clangxx="$(command -v clang++-14 || true)"
if [[ -z $clangxx ]]; then
  echo "fuzz: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
# UBSan's checks without `function` (see tests/fuzz/CMakeLists.txt), plus coverage and ASan.
sanitize="fuzzer-no-link,address,alignment,bool,builtin,bounds,enum,float-cast-overflow"
sanitize+=",integer-divide-by-zero,nonnull-attribute,null,object-size,pointer-overflow,return"
sanitize+=",returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound,vptr"

generator=(-G Ninja)
[[ -f "$build_dir/CMakeCache.txt" ]] && generator=()
cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER="$clangxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCORING_SANITIZE="$sanitize" \
  -DCORING_BUILD_FUZZERS=ON \
  -DCORING_BUILD_TESTS=ON \
  -DCORING_BUILD_BENCHES=OFF \
  -DCORING_BUILD_EXAMPLES=OFF
cmake --build "$build_dir" -j "$jobs" --target "${binaries[@]/#/coring-fuzz-}"

work="$(mktemp -d "${TMPDIR:-/tmp}/coring-fuzz.XXXXXX")"
failed=()
summary=()
for target in "${targets[@]}"; do
  # <binary>-epoll: the binary's run on the epoll backend, from the binary's inputs.
  base="${target%-epoll}"
  backend=()
  [[ $target != "$base" ]] && backend=(env CORING_BACKEND=epoll)
  binary="$build_dir/tests/fuzz/coring-fuzz-$base"
  committed="tests/fuzz/corpus/$base"
  corpus="$work/$target/corpus"
  artifacts="$work/$target/artifacts"
  log="$work/$target/fuzz.log"
  mkdir -p "$corpus" "$artifacts"
  cp -r "$committed/." "$corpus/"

  # The regressions: each input once, all must pass (a .gitkeep keeps an empty directory).
  mapfile -t regressions < <(find "tests/fuzz/regressions/$base" -type f ! -name '.*' 2>/dev/null | sort)
  if ((${#regressions[@]} > 0)); then
    echo "fuzz $target: replaying ${#regressions[@]} regression input(s)"
    if ! "${backend[@]}" "$binary" -timeout=10 "${regressions[@]}" >"$work/$target/regressions.log" 2>&1; then
      grep -E '^(http|http_parser|loop|tls)_fuzz: ' "$work/$target/regressions.log" || true
      echo "fuzz $target: FAILED: a regression input fails (log: $work/$target/regressions.log)"
      failed+=("$target regressions")
    fi
  fi

  echo "fuzz $target: ${seconds} s from $(find "$committed" -type f | wc -l) committed inputs"
  status=0
  "${backend[@]}" "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
  if ((status != 0)) || [[ -n "$(ls -A "$artifacts")" ]]; then
    tail -n 80 "$log"
    echo "fuzz $target: FAILED (exit $status); inputs: $artifacts, log: $log"
    failed+=("$target")
    continue
  fi

  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
  files="$(find "$corpus" -type f | wc -l)"
  bytes="$(find "$corpus" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')"
  line="fuzz $target: $execs executions in $seconds s ($rate/s), $cov, corpus"
  line+=" $files files / $bytes bytes (committed: $(find "$committed" -type f | wc -l))"
  echo "$line"
  summary+=("$line")

  if [[ ${FUZZ_UPDATE_CORPUS:-0} == 1 && $target == "$base" ]]; then
    "$binary" -merge=1 "$committed" "$corpus" >"$work/$target/merge.log" 2>&1
    echo "fuzz $target: committed corpus now $(find "$committed" -type f | wc -l) files," \
      "$(find "$committed" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }') bytes"
  fi
done

echo
for line in "${summary[@]}"; do echo "$line"; done
if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: $(IFS=,; echo "${failed[*]}") (kept in $work)"
  exit 1
fi
rm -rf "$work"
echo "fuzz: ${#targets[@]} targets, nothing found"
