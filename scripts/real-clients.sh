#!/usr/bin/env bash
# Drives the examples with real clients that nobody here wrote:
#   redis-cli     against examples/redis.rs
#   redis-benchmark against examples/redis.rs and a real redis-server, same run
# plus a bash /dev/tcp client against examples/echo.rs.
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
# Servers are started on free ports in the background and killed by PID at exit.
#
# Environment:
#   QUICK=1          a short benchmark (-n 20000, one round) and no speed target: for CI
#   BENCH_REQUESTS   redis-benchmark -n (default 100000, or 20000 with QUICK=1)
#   BENCH_ROUNDS     benchmark rounds, each running both servers back to back; the
#                    median of the rounds' ratios counts (default 5, or 1 with QUICK=1)
#   MIN_RATIO        fail unless examples/redis.rs does at least this fraction of
#                    redis-server's requests/s for SET and for GET (default 1.0;
#                    not checked with QUICK=1 unless set)
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  BENCH_REQUESTS="${BENCH_REQUESTS:-20000}"
  BENCH_ROUNDS="${BENCH_ROUNDS:-1}"
  MIN_RATIO="${MIN_RATIO:-}"
else
  BENCH_REQUESTS="${BENCH_REQUESTS:-100000}"
  BENCH_ROUNDS="${BENCH_ROUNDS:-5}"
  MIN_RATIO="${MIN_RATIO:-1.0}"
fi

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
need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
redis-cli --version
redis-server --version

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example redis --example echo
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

# free_port: a port nothing listens on (the kernel's pick, released at once).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
      echo "$port"
      return
    }
  done
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

# --- echo with bash ----------------------------------------------------------
section "bash /dev/tcp against examples/echo.rs"
start_example echo --delimiter '\r\n'
out="$(
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  printf 'hello\r\nwor' >&3
  sleep 0.1
  printf 'ld\r\n\r\n' >&3
  timeout 5 head -c 16 <&3 | od -An -c | tr -s ' \n' ' '
)" || out=""
check "echo: lines split across writes come back whole ($out)" [ "$out" = " h e l l o \r \n w o r l d \r \n \r \n " ]

# --- redis with redis-cli ----------------------------------------------------
section "redis-cli against examples/redis.rs"
start_example redis
ours="$PORT"
echo "listening on 127.0.0.1:$ours"
cli() { timeout 10 redis-cli -p "$ours" "$@"; }

check "PING" [ "$(cli PING)" = PONG ]
check "SET" [ "$(cli SET greeting 'hello world')" = OK ]
check "GET" [ "$(cli GET greeting)" = "hello world" ]
check "INCR" [ "$(cli INCR counter)" = 1 ]
check "DEL" [ "$(cli DEL greeting counter nothing)" = 2 ]
check "EXISTS" [ "$(cli EXISTS greeting)" = 0 ]

# 786432 random bytes are 1048576 in base64: text, as redis-cli -x reads it.
head -c 786432 /dev/urandom | base64 -w0 >"$work/value.txt"
check "a 1 MiB value with -x" [ "$(cli -x SET big <"$work/value.txt")" = OK ]
check "STRLEN of it" [ "$(cli STRLEN big)" = 1048576 ]
check "GET of it, byte for byte" cmp -s <(cli GET big | head -c 1048576) "$work/value.txt"

check "SET with PX" [ "$(cli SET short lived PX 100)" = OK ]
sleep 0.3
check "and it expired" [ -z "$(cli GET short)" ]

out="$(cli NOSUCHCOMMAND arg 2>&1 || true)"
check "an unknown command gets -ERR" contains "$out" "ERR unknown command 'NOSUCHCOMMAND'"
out="$(cli SET onlykey 2>&1 || true)"
check "a wrong number of arguments gets -ERR" contains "$out" "ERR wrong number of arguments"

out="$(raw "$ours" '*1\r\n$abc\r\n')"
check "a malformed bulk length gets -ERR Protocol error and a close" \
  [ "$out" = $'-ERR Protocol error: invalid bulk length\r' ]
out="$(raw "$ours" '*2\r\n$3\r\nGET\r\n$1099511627776\r\n')"
check "a bulk length of 2^40 gets -ERR and a close" \
  [ "$out" = $'-ERR Protocol error: invalid bulk length\r' ]

out="$(raw "$ours" 'PING\r\nECHO inline\r\nQUIT\r\n')"
check "inline commands" [ "$out" = $'+PONG\r\n$6\r\ninline\r\n+OK\r' ]

for i in $(seq 10000); do printf '*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$1\r\nv\r\n' $((${#i} + 4)) "$i"; done >"$work/pipe.resp"
out="$(timeout 30 redis-cli -p "$ours" --pipe <"$work/pipe.resp" 2>&1 || true)"
check "redis-cli --pipe, 10000 commands" contains "$out" "errors: 0, replies: 10000"
check "DBSIZE after them" [ "$(cli DBSIZE)" = 10001 ]
check "FLUSHALL" [ "$(cli FLUSHALL)" = OK ]

# --- redis-benchmark: examples/redis.rs and redis-server ----------------------
section "redis-benchmark: examples/redis.rs against redis-server"
real="$(free_port)"
redis-server --port "$real" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --logfile "$work/redis-server.log" &
pids+=("$!")
for _ in $(seq 100); do
  [ "$(redis-cli -p "$real" PING 2>/dev/null || true)" = PONG ] && break
  sleep 0.1
done
check "redis-server is up on port $real" [ "$(redis-cli -p "$real" PING)" = PONG ]

BENCH=(-q -t set,get -n "$BENCH_REQUESTS" -P 16 -c 50)
echo "redis-benchmark ${BENCH[*]}, $BENCH_ROUNDS round(s) each, alternating; $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"

# bench PORT: prints "SET <rps>" and "GET <rps>".
bench() {
  timeout 300 redis-benchmark -p "$1" "${BENCH[@]}" 2>&1 | tr '\r' '\n' |
    awk '/requests per second/ { sub(":", "", $1); print $1, $2 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

: >"$work/ours.txt"
: >"$work/real.txt"
for round in $(seq "$BENCH_ROUNDS"); do
  bench "$ours" | sed "s/^/$round /" | tee -a "$work/ours.txt" | sed 's/^/  round /; s/ SET / examples\/redis.rs SET /; s/ GET / examples\/redis.rs GET /'
  bench "$real" | sed "s/^/$round /" | tee -a "$work/real.txt" | sed 's/^/  round /; s/ SET / redis-server       SET /; s/ GET / redis-server       GET /'
done

# The ratio of each round (the two servers measured back to back, so under
# the same load from whatever else runs on the machine), then their median.
for test in SET GET; do
  ratios="$(awk -v t="$test" 'NR == FNR { if ($2 == t) ours[$1] = $3; next }
    $2 == t && ($1 in ours) && $3 > 0 { printf "%.4f\n", ours[$1] / $3 }' "$work/ours.txt" "$work/real.txt")"
  o="$(awk -v t="$test" '$2 == t { print $3 }' "$work/ours.txt" | median)"
  r="$(awk -v t="$test" '$2 == t { print $3 }' "$work/real.txt" | median)"
  ratio="$(median <<<"$ratios")"
  if [ -z "$ratio" ]; then
    fail "$test: redis-benchmark gave no figure (examples/redis.rs: '${o}', redis-server: '${r}')"
    continue
  fi
  ratio="$(printf '%.2f' "$ratio")"
  line="$test: examples/redis.rs $o requests/s, redis-server $r requests/s (medians), ratio ${ratio}x (median of $(wc -l <<<"$ratios") rounds)"
  if [ -n "$MIN_RATIO" ]; then
    check "$line, target ${MIN_RATIO}x" awk -v x="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(x >= m) }'
  else
    ok "$line (not checked: QUICK)"
  fi
done

section "summary"
if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) FAILED"
  exit 1
fi
echo "all checks passed"
