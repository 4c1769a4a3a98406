#!/usr/bin/env bash
# Drives the examples with real clients that nobody here wrote:
#   redis-cli       against examples/redis.rs
#   nc              against examples/redis.rs (inline commands) and examples/echo.rs
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
#                    not checked with QUICK=1 unless set); the other tests of
#                    -t ping,set,get,incr,mset are reported, not checked
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
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

# --- clients -----------------------------------------------------------------
section "clients"
need_command redis-cli redis-tools
need_command redis-benchmark redis-tools
need_command redis-server redis-server
need_command nc netcat-openbsd
install_needed_packages
redis-cli --version
redis-server --version

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example redis --example echo
bin="${CARGO_TARGET_DIR:-target}/release/examples"

make_work_directory

# start_example NAME [ARGS...]: starts an example on port 0 and sets PORT.
start_example() {
  local name="$1"
  shift
  start_server "$name" "$work/$name.log" "$bin/$name" 0 "$@"
}

# talk PORT: what nc gets back for its standard input, sent as it is (printf
# 'line\n' sends \n line endings, as nc does typed lines); the write side is
# shut at the end of the input and nc waits up to 2 s for the server to close.
talk() { timeout 5 nc -N -q 2 127.0.0.1 "$1"; }

# --- echo with bash and nc ---------------------------------------------------
section "bash /dev/tcp and nc against examples/echo.rs"
start_example echo
out="$(
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  printf 'hello\r\nwor' >&3
  sleep 0.1
  printf 'ld\n\r\n' >&3
  timeout 5 head -c 15 <&3 | od -An -c | tr -s ' \n' ' '
)" || out=""
check "echo: \\n and \\r\\n lines split across writes come back whole, each with its ending ($out)" \
  [ "$out" = " h e l l o \r \n w o r l d \n \r \n " ]
out="$(printf 'one\ntwo\n' | talk "$PORT")" || out=""
check "echo: nc's \\n lines" [ "$out" = $'one\ntwo' ]

start_example echo --max-line 16
out="$(printf 'a line of more than sixteen bytes\nshort\n' | talk "$PORT")" || out=""
check "echo: a line over --max-line gets ERR and the connection goes on" \
  [ "$out" = $'ERR line longer than 16 bytes\r\nshort' ]
out="$(printf 'short\nan unterminated tail over sixteen bytes' | talk "$PORT")" || out=""
check "echo: an unterminated tail over --max-line at the end gets ERR" \
  [ "$out" = $'short\nERR line longer than 16 bytes' ]

start_example echo --delimiter '\r\n' --max-line 2
out="$(printf 'a\nb\r\nok\r\n' | talk "$PORT")" || out=""
check "echo --delimiter '\\r\\n': a \\n alone does not end a line" \
  [ "$out" = $'ERR line longer than 2 bytes\r\nok\r' ]

# --- redis with redis-cli ----------------------------------------------------
section "redis-cli against examples/redis.rs"
start_example redis
ours="$PORT"
echo "listening on 127.0.0.1:$ours"
cli() { timeout 10 redis-cli -p "$ours" "$@"; }
# A real redis-server beside it: where replies must match, they are compared.
start_redis_server
real="$PORT"
check "redis-server is up on port $real" [ "$(redis-cli -p "$real" PING)" = PONG ]

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

out="$(cli NOSUCHCOMMAND arg 'two words' 2>&1 || true)"
check "an unknown command gets redis-server's error ($out)" \
  [ "$out" = "$(timeout 10 redis-cli -p "$real" NOSUCHCOMMAND arg 'two words' 2>&1 || true)" ]
out="$(cli SET onlykey 2>&1 || true)"
check "a wrong number of arguments gets redis-server's error ($out)" \
  [ "$out" = "$(timeout 10 redis-cli -p "$real" SET onlykey 2>&1 || true)" ]

out="$(raw_request "$ours" '*1\r\n$abc\r\n')"
check "a malformed bulk length gets -ERR Protocol error and a close" \
  [ "$out" = $'-ERR Protocol error: invalid bulk length\r' ]
out="$(raw_request "$ours" '*2\r\n$3\r\nGET\r\n$1099511627776\r\n')"
check "a bulk length of 2^40 gets -ERR and a close" \
  [ "$out" = $'-ERR Protocol error: invalid bulk length\r' ]

out="$(raw_request "$ours" 'PING\r\nECHO inline\r\nQUIT\r\n')"
check "inline commands" [ "$out" = $'+PONG\r\n$6\r\ninline\r\n+OK\r' ]

for i in $(seq 10000); do printf '*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$1\r\nv\r\n' $((${#i} + 4)) "$i"; done >"$work/pipe.resp"
out="$(timeout 30 redis-cli -p "$ours" --pipe <"$work/pipe.resp" 2>&1 || true)"
check "redis-cli --pipe, 10000 commands" contains "$out" "errors: 0, replies: 10000"
check "DBSIZE after them" [ "$(cli DBSIZE)" = 10001 ]
check "FLUSHALL" [ "$(cli FLUSHALL)" = OK ]

# --- redis with nc: inline commands, reply for reply as redis-server ----------
section "nc against examples/redis.rs and redis-server: the same bytes back"
# same_as_redis NAME REQUEST: sends REQUEST (printf format, \n line endings as
# nc sends typed lines) to both servers; ok if the replies are byte for byte
# the same. Each request ends in QUIT or breaks the protocol, so both close.
same_as_redis() {
  local name="$1" request="$2" mine theirs
  # shellcheck disable=SC2059
  mine="$(printf "$request" | talk "$ours" | od -An -c)" || mine="(nc failed)"
  # shellcheck disable=SC2059
  theirs="$(printf "$request" | talk "$real" | od -An -c)" || theirs="(nc failed)"
  if [ "$mine" = "$theirs" ] && [ -n "$mine" ]; then
    ok "$name"
  else
    fail "$name"
    printf '  examples/redis.rs:%s\n  redis-server:%s\n' "$mine" "$theirs"
  fi
}
same_as_redis "PING, SET and GET with a quoted value" 'PING\nSET q "hello world"\nGET q\nDEL q\nQUIT\n'
same_as_redis "\\r\\n and \\n line endings, blank lines" 'PING\r\n\n  \nECHO a\r\r\nQUIT\r\n'
same_as_redis "double-quote escapes" 'ECHO "\\x41\\xfF\\n\\r\\t\\b\\a\\\\\\"\\q"\nQUIT\n'
same_as_redis "single quotes" "ECHO 'it\\\\'s \\\\n'\nECHO a'b c'\nQUIT\n"
same_as_redis "an unknown command and its arguments" 'foo a "b c" d\nQUIT\n'
same_as_redis "wrong numbers of arguments" 'GET\nECHO a b\nMSET a\nQUIT\n'
same_as_redis "MSET, MGET, INCR" 'MSET nc:a 1 nc:b 2\nMGET nc:a nc:b nc:c\nINCR nc:a\nDEL nc:a nc:b\nQUIT\n'
same_as_redis "unbalanced quotes close the connection" 'PING\nGET "abc\nPING\n'
same_as_redis "a closing quote followed by a letter" 'GET "abc"x\nPING\n'
same_as_redis "a RESP header without its \\r" '*1\n$4\r\nPING\r\n'

# --- redis-benchmark: examples/redis.rs and redis-server ----------------------
section "redis-benchmark: examples/redis.rs against redis-server"

# The tests of redis-benchmark's defaults that examples/redis.rs supports (the
# others use lists, sets, hashes, sorted sets and streams).
TESTS=(PING_INLINE PING_MBULK SET GET INCR MSET)
BENCH=(-q -t ping,set,get,incr,mset -n "$BENCH_REQUESTS" -P 16 -c 50)
echo "redis-benchmark ${BENCH[*]}, $BENCH_ROUNDS round(s) each, alternating; $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"

# bench PORT: prints "TEST <requests/s>" for each test redis-benchmark ran;
# fails if it did not run to the end (it stops at the first error reply).
bench() {
  local out status=0
  out="$(timeout 300 redis-benchmark -p "$1" "${BENCH[@]}" 2>&1)" || status=$?
  tr '\r' '\n' <<<"$out" |
    sed -nE 's/^ *([A-Z_]+)[^:]*: ([0-9.]+) requests per second.*/\1 \2/p'
  grep -m1 'Error' <<<"$out" >&2 || true
  return "$status"
}
# ran_to_the_end STATUS FILE: redis-benchmark exited 0 and gave a figure for
# every test, in order.
ran_to_the_end() { [ "$1" = 0 ] && [ "$(cut -d' ' -f1 "$2" | tr '\n' ' ')" = "${TESTS[*]} " ]; }

: >"$work/ours.txt"
: >"$work/real.txt"
for round in $(seq "$BENCH_ROUNDS"); do
  for side in ours real; do
    if [ "$side" = ours ]; then port="$ours" name="examples/redis.rs"; else port="$real" name="redis-server"; fi
    status=0
    bench "$port" >"$work/round.txt" || status=$?
    sed "s/^/$round /" "$work/round.txt" >>"$work/$side.txt"
    awk -v n="$name" -v r="$round" '{ printf "  round %s %-17s %-11s %s\n", r, n, $1, $2 }' "$work/round.txt"
    check "round $round: redis-benchmark -t ping,set,get,incr,mset ran to the end against $name (exit $status)" \
      ran_to_the_end "$status" "$work/round.txt"
  done
done

# The ratio of each round (the two servers measured back to back, so under
# the same load from whatever else runs on the machine), then their median.
for test in "${TESTS[@]}"; do
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
  if [ "$test" != SET ] && [ "$test" != GET ]; then
    ok "$line (reported, no target)"
  elif [ -n "$MIN_RATIO" ]; then
    check "$line, target ${MIN_RATIO}x" awk -v x="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(x >= m) }'
  else
    ok "$line (not checked: QUICK)"
  fi
done

section "summary"
exit_with_summary
