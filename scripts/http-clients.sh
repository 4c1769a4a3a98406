#!/usr/bin/env bash
# Drives examples/http_server.rs (release build) with real HTTP clients that
# nobody here wrote: curl, and a raw bash /dev/tcp client for bad input.
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
# The server is started on a free port in the background and killed by PID at exit.
#
# Environment:
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
ok() { printf 'ok   %s\n' "$*"; }
fail() {
  printf 'FAIL %s\n' "$*"
  failures=$((failures + 1))
}
# check NAME COMMAND...: ok if the command succeeds.
check() {
  local name="$1"
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}
# contains HAYSTACK NEEDLE
contains() { [[ "$1" == *"$2"* ]]; }

section() { printf '\n== %s ==\n' "$*"; }

# --- clients -----------------------------------------------------------------
section "clients"
if ! command -v curl >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing curl"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq curl >/dev/null
fi
curl --version | head -n 1

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example http_server
bin="${CARGO_TARGET_DIR:-target}/release/examples"

work="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start_example NAME [ARGS...]: starts an example on port 0 (a free port, which
# it prints) and sets PORT. Waits at most 10 s for it to listen.
start_example() {
  local name="$1"
  shift
  "$bin/$name" 0 "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  PORT=""
  local _
  for _ in $(seq 100); do
    PORT="$(grep -om1 '127\.0\.0\.1:[0-9]*' "$work/$name.log" 2>/dev/null | cut -d: -f2 || true)"
    [ -n "$PORT" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

# raw PORT BYTES: sends BYTES (printf format) over a bash /dev/tcp connection
# and prints what comes back until the server closes (at most 5 s).
raw() {
  local port="$1" request="$2"
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    # shellcheck disable=SC2059
    printf "$request" >&3
    timeout 5 cat <&3 || true
  )
}

# --- http_server with curl ---------------------------------------------------
section "curl against examples/http_server.rs"
start_example http_server
base="http://127.0.0.1:$PORT"
echo "listening on $base"
CURL=(curl -sS --max-time 10)

out="$("${CURL[@]}" "$base/hello?x=1")" || out=""
check "GET /hello?x=1 is echoed as JSON" \
  contains "$out" '"method":"GET","path":"/hello?x=1","version":"HTTP/1.1"'

out="$("${CURL[@]}" --data 'some body' "$base/form")" || out=""
check "POST with a body" contains "$out" '"body_length":9,"body":"some body"'

out="$("${CURL[@]}" --data '' "$base/empty")" || out=""
check "POST with Content-Length: 0" \
  bash -c '[[ "$1" == *"[\"Content-Length\",\"0\"]"* ]] && [[ "$1" == *"\"body_length\":0,\"body\":\"\""* ]]' _ "$out"

head -c 300000 /dev/urandom | base64 -w0 >"$work/body.txt"
out="$("${CURL[@]}" --data-binary "@$work/body.txt" "$base/upload")" || out=""
check "POST with a 400 KB body" contains "$out" "\"body_length\":$(wc -c <"$work/body.txt"),"

# curl fetches both URLs over one connection when the server keeps it alive:
# %{num_connects} is 1 for the first transfer and 0 for the second, and -v
# says it re-used the connection.
out="$("${CURL[@]}" -v -w ' connects=%{num_connects}\n' "$base/first" "$base/second" 2>&1)" || out=""
check "two requests on one keep-alive connection (curl re-uses it)" \
  bash -c '[[ "$1" == *"\"path\":\"/first\""*"connects=1"*"\"path\":\"/second\""*"connects=0"* ]] &&
           grep -qiE "re-?using (existing )?(http: )?connection" <<<"$1"' _ "$out"

out="$("${CURL[@]}" -H 'Connection: close' -D - "$base/close")" || out=""
check "Connection: close is honoured" contains "$out" $'Connection: close\r'

big_header="X-Big: $(head -c 10000 /dev/zero | tr '\0' a)"
code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "$big_header" "$base/big")" || code=""
check "an oversized head gets 431 (got $code)" [ "$code" = 431 ]

head -c 2000000 /dev/zero >"$work/huge.bin"
code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' --data-binary "@$work/huge.bin" "$base/huge")" || code=""
check "an oversized body gets 413 (got $code)" [ "$code" = 413 ]

out="$(raw "$PORT" 'GARBAGE\r\n\r\n')"
check "a malformed request line gets 400" contains "$out" "HTTP/1.1 400 Bad Request"

out="$(raw "$PORT" 'POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n')"
check "a bad Content-Length gets 400" contains "$out" "HTTP/1.1 400 Bad Request"

section "summary"
if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) FAILED"
  exit 1
fi
echo "all checks passed"
