#!/usr/bin/env bash
# Soak: coring-echo holds N connections under continuous load, every reply checked, and
# its memory must not grow after warm-up.
#
#   scripts/soak.sh                          # the full soak: 10,000 connections, 60 s
#   scripts/soak.sh --connections 1000 --seconds 10   # the CI variant (ctest soak.short)
#
# Options: --build DIR (default build; coring-echo and coring-soak-client are taken
# from it), --connections N, --seconds S (of load, from the moment every connection is
# open), --warmup-seconds W (default S/2), --message-size B (default 128),
# --max-rss-growth-percent G (default 5).
#
# What it does: raises RLIMIT_NOFILE to the hard limit (both programs inherit it; the
# client raises its own too), starts coring-echo on a free port pinned to CPU 0, runs
# coring-soak-client pinned to CPU 1 (on a single-CPU machine both share it), which
# takes the server's peak RSS over the warm-up (stalling the server a few times with
# SIGSTOP/SIGCONT, so that it meets its worst batch there) and over the rest; then
# stops the server with SIGINT and requires exit status 0 from it. Fails on any client
# error, a connection not held to the end, peak RSS growth >= G %, or a server that
# does not exit cleanly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
client_args=()
connections=10000
seconds=60
while (($# > 0)); do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup-seconds | --message-size | --max-rss-growth-percent)
      client_args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "soak.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

echo_bin="$build/examples/coring-echo"
client_bin="$build/tests/soak/coring-soak-client"
for bin in "$echo_bin" "$client_bin"; do
  [[ -x "$bin" ]] || { echo "soak.sh: $bin not built (cmake --build $build --target $(basename "$bin"))" >&2; exit 2; }
done

ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < connections + 64)); then
  echo "soak.sh: RLIMIT_NOFILE hard limit $(ulimit -Hn) is too low for $connections connections" >&2
  exit 1
fi

# Server on CPU 0, client on CPU 1 (when there is one).
server_cpu=0
client_cpu=$(($(nproc) > 1 ? 1 : 0))
log="$(mktemp "${TMPDIR:-/tmp}/coring-soak.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -f "$log"
}
trap cleanup EXIT

taskset -c "$server_cpu" "$echo_bin" --port 0 >"$log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$log")"
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "soak.sh: coring-echo did not start:" >&2
  cat "$log" >&2
  exit 1
fi
echo "soak.sh: coring-echo pid $server_pid on port $port (CPU $server_cpu), fd limit $(ulimit -n);" \
  "client on CPU $client_cpu: $connections connections, $seconds s"

status=0
taskset -c "$client_cpu" "$client_bin" --port "$port" --connections "$connections" \
  --seconds "$seconds" --server-pid "$server_pid" "${client_args[@]}" || status=$?

# SIGCONT first: a client that died between its SIGSTOP and SIGCONT left it stopped.
kill -CONT "$server_pid" 2>/dev/null || true
kill -INT "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
if ((server_status != 0)); then
  echo "soak.sh: coring-echo exited with status $server_status after SIGINT:" >&2
  cat "$log" >&2
  status=1
fi
if ((status == 0)); then echo "soak.sh: ok"; else echo "soak.sh: FAILED" >&2; fi
exit "$status"
