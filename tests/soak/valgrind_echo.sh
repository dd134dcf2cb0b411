#!/usr/bin/env bash
# coring-echo under valgrind memcheck, with a short load: every error (invalid access,
# use of an uninitialised value, a leak) fails it, and so does a server that does not
# exit with status 0 after SIGINT.
#
#   tests/soak/valgrind_echo.sh ECHO_BINARY CLIENT_BINARY [CONNECTIONS] [SECONDS]
#
# The ctest test memcheck.echo runs it with 8 connections for 3 seconds. The client
# (coring-soak-client) runs natively and checks every reply; only the server is under
# valgrind. No suppression file: nothing needed one (docs/reliability.md).
set -euo pipefail

echo_bin="$1"
client_bin="$2"
connections="${3:-8}"
seconds="${4:-3}"

command -v valgrind >/dev/null || { echo "valgrind_echo.sh: valgrind is not installed" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/coring-memcheck.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

valgrind --leak-check=full --error-exitcode=1 --log-file="$work/valgrind.log" \
  "$echo_bin" --port 0 >"$work/echo.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 300); do  # valgrind starts slowly: up to 30 s
  port="$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/echo.log")"
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "valgrind_echo.sh: coring-echo did not start under valgrind:" >&2
  cat "$work/echo.log" "$work/valgrind.log" >&2
  exit 1
fi

status=0
"$client_bin" --port "$port" --connections "$connections" --seconds "$seconds" \
  --warmup-seconds 1 || status=$?

kill -INT "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
sed -n '/HEAP SUMMARY/,$p' "$work/valgrind.log"
if ((server_status != 0)); then
  echo "valgrind_echo.sh: coring-echo under valgrind exited with status $server_status:" >&2
  cat "$work/echo.log" "$work/valgrind.log" >&2
  status=1
fi
if ((status == 0)); then echo "valgrind_echo.sh: ok"; else echo "valgrind_echo.sh: FAILED" >&2; fi
exit "$status"
