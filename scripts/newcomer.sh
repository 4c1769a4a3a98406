#!/usr/bin/env bash
# Does what README.md tells a newcomer to do, step by step, from a fresh
# clone of this repository, and checks every reply:
#   1. git clone into a temporary directory;
#   2. the two set-up commands: the main job (the HTTP server, talked to
#      with curl at once) and `cargo test`;
#   3. the quick start, as a crate of one's own, talked to with `nc -C`;
#   4. each example with the client the README names; `nc` sends `\n` line
#      endings, as it does for typed lines.
# Every command run here is first looked up, word for word, in the clone's
# README: a README whose commands change fails here until this script
# follows it. Servers listen on free ports (a README port is replaced by
# one) and are killed by PID at exit.
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
#
# Environment:
#   NEWCOMER_SKIP_TESTS=1  skip `cargo test` (for CI, which runs it already)
#   NEWCOMER_REPOSITORY    what to clone (default: this repository; its
#                          committed HEAD, without uncommitted changes)
#   CARGO_TARGET_DIR       where cargo builds (default: this repository's
#                          target/, so the clone does not rebuild every
#                          dependency)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

repository="${NEWCOMER_REPOSITORY:-$PWD}"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
[[ "$CARGO_TARGET_DIR" = /* ]] || CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
export CARGO_TARGET_DIR

# Steps here take minutes (builds, cargo test): each heading says when it began.
section() { printf '\n== %s (%s) ==\n' "$*" "$(date +%T)"; }

# --- clients -----------------------------------------------------------------
section "clients"
need_command git git
need_command curl curl
need_command nc netcat-openbsd
need_command redis-cli redis-tools
need_command redis-benchmark redis-tools
need_command swaks swaks
need_command python3 python3
install_needed_packages
cargo --version

make_work_directory

# readme_says TEXT: ok if the clone's README holds TEXT word for word.
readme_says() {
  check "the README says: $1" grep -qF -- "$1" "$clone/README.md"
}

# serve NAME DIRECTORY DEFAULT_PORT COMMAND: runs COMMAND, as the README writes
# it, in DIRECTORY, in the background, with DEFAULT_PORT replaced by a free
# port (in the command if it names it, else through $PORT, which the examples
# read), and waits for it to print the address it listens on. Sets PORT to
# that address's port. Up to 300 s, as cargo run may build first; only the
# program's "listening on" line counts, not an address in cargo's output.
serve() {
  local name="$1" directory="$2" default_port="$3" command="$4"
  PORT="$(free_port)"
  local run="${command//$default_port/$PORT}"
  echo "\$ $run"
  # exec all the way down: cargo run execs the program, so the PID kept
  # is the server's.
  (cd "$directory" && PORT="$PORT" exec bash -c "exec $run") >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  if PORT="$(wait_for_address "$work/$name.log" "$pid" 300 'listening on [^0-9]*127\.0\.0\.1:[0-9]+')"; then
    ok "$name listens on port $PORT"
    return 0
  fi
  fail "$name did not start:"
  tail -n 30 "$work/$name.log"
  return 1
}

# talk PORT: sends standard input to 127.0.0.1:PORT as it is, shuts the
# write side at its end, and prints what comes back until the server closes
# (at most 2 s more): `nc 127.0.0.1 PORT` with a line typed in.
talk() { timeout 10 nc -N -q 2 127.0.0.1 "$1"; }

# bytes TEXT: TEXT as `od -c` shows it, on one line, for messages.
bytes() { printf '%s' "$1" | od -An -c | tr -s ' \n' ' '; }

# --- 1. a fresh clone ----------------------------------------------------------
section "git clone"
clone="$work/asynchat"
git clone --quiet "$repository" "$clone"
check "a fresh clone of $repository ($(git -C "$clone" log -1 --format=%h))" [ -f "$clone/README.md" ]
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

# The examples' release builds, all at once, so each `cargo run` below
# starts at once. (The README's commands would build them one by one.)
section "cargo build --release --examples"
check "the examples build" bash -c "cd '$clone' && cargo build --release --examples --keep-going --quiet"

# --- 2. the set-up commands ----------------------------------------------------
section "set-up: the main job, an HTTP server, with curl"
readme_says "cargo run --release --example http_server"
readme_says "curl -s http://127.0.0.1:8080/hello"
readme_says "curl -s --data 'some body' http://127.0.0.1:8080/form"
if serve http_server "$clone" 8080 "cargo run --release --example http_server"; then
  out="$(curl -s --max-time 10 "http://127.0.0.1:$PORT/hello")" || out=""
  check "curl GET /hello comes back as JSON ($out)" \
    contains "$out" '"method":"GET","path":"/hello","version":"HTTP/1.1"'
  out="$(curl -s --max-time 10 --data 'some body' "http://127.0.0.1:$PORT/form")" || out=""
  check "curl POST with a body comes back with it ($out)" \
    contains "$out" '"body":"some body"'
fi

section "set-up: the tests"
readme_says "cargo test"
if [ "${NEWCOMER_SKIP_TESTS:-0}" = 1 ]; then
  echo "skipped: NEWCOMER_SKIP_TESTS=1"
else
  check "cargo test" bash -c "cd '$clone' && cargo test --quiet"
fi

# --- 3. the quick start --------------------------------------------------------
section "quick start: a crate of one's own"
# The README's first toml and rust blocks after its "## Quick start" heading.
readme_block() {
  awk -v language="$1" '
    /^## Quick start/ { started = 1; next }
    started && !inside && $0 ~ "^```" language { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
  ' "$clone/README.md"
}
readme_says 'asynchat = { path = "../asynchat" }'
quick="$work/quickstart" # beside the clone: "../asynchat" is the clone
mkdir -p "$quick/src"
{
  printf '[package]\nname = "quickstart"\nversion = "0.1.0"\nedition = "2021"\n\n'
  readme_block toml
} >"$quick/Cargo.toml"
# The clone's lock file, so the dependencies resolve to the versions already
# built (cargo drops what the new crate does not use).
cp "$clone/Cargo.lock" "$quick/Cargo.lock"
quick_port="$(free_port)"
readme_block rust | sed "s/127\.0\.0\.1:2525/127.0.0.1:$quick_port/" >"$quick/src/main.rs"
check "the quick start listens on 127.0.0.1:2525 (here: $quick_port)" grep -q "127.0.0.1:$quick_port" "$quick/src/main.rs"
readme_says "cargo run"
readme_says "nc -C 127.0.0.1 2525"
if serve quickstart "$quick" 2525 "cargo run"; then
  # Lines typed into `nc -C`: DATA with an empty message, then with one.
  out="$(printf 'HELO me\nDATA\n.\nDATA\nSubject: hi\n\nHello\n.\nNOOP\nQUIT\n' |
    timeout 10 nc -C -N -q 2 127.0.0.1 "$PORT")" || out=""
  expected=$'220 ready\r\n250 ok\r\n354 end with a line holding only .\r\n250 0 bytes queued\r\n'
  expected+=$'354 end with a line holding only .\r\n250 20 bytes queued\r\n250 ok\r\n221 bye\r'
  check "HELO, DATA of an empty message, DATA of a short one, QUIT: every reply" \
    [ "$out" = "$expected" ]
  [ "$out" = "$expected" ] || printf '  got:     %s\n  expected:%s\n' "$(bytes "$out")" "$(bytes "$expected")"
fi

# --- 4. the examples -----------------------------------------------------------
section "examples: echo with nc"
readme_says "cargo run --release --example echo"
readme_says "nc 127.0.0.1 7777"
if serve echo "$clone" 7777 "cargo run --release --example echo"; then
  out="$(printf 'hello\nworld\n' | talk "$PORT")" || out=""
  check "\\n lines come back ($(bytes "$out"))" [ "$out" = $'hello\nworld' ]
  out="$(printf 'typed in telnet\r\n' | talk "$PORT")" || out=""
  check "a \\r\\n line comes back with its \\r\\n ($(bytes "$out"))" [ "$out" = $'typed in telnet\r' ]
fi

section "examples: redis with redis-cli, nc and redis-benchmark"
readme_says "cargo run --release --example redis"
readme_says "redis-cli -p 6379 set greeting hello"
readme_says "redis-benchmark -p 6379 -q -t ping,set,get,incr,mset"
readme_says "nc 127.0.0.1 6379"
readme_says 'SET q "hello world"'
if serve redis "$clone" 6379 "cargo run --release --example redis"; then
  out="$(timeout 10 redis-cli -p "$PORT" set greeting hello 2>&1)" || out=""
  check "redis-cli set ($out)" [ "$out" = OK ]
  out="$(timeout 10 redis-cli -p "$PORT" get greeting 2>&1)" || out=""
  check "redis-cli get ($out)" [ "$out" = hello ]
  out="$(printf 'PING\nSET q "hello world"\nGET q\nfoo a b\nQUIT\n' | talk "$PORT")" || out=""
  expected=$'+PONG\r\n+OK\r\n$11\r\nhello world\r\n'
  expected+=$'-ERR unknown command \'foo\', with args beginning with: \'a\' \'b\' \r\n+OK\r'
  check "nc: PING, a quoted value, an unknown command ($(bytes "$out"))" [ "$out" = "$expected" ]
  status=0
  out="$(timeout 300 redis-benchmark -p "$PORT" -q -t ping,set,get,incr,mset 2>&1)" || status=$?
  tests="$(tr '\r' '\n' <<<"$out" | sed -nE 's/^ *([A-Z_]+)[^:]*: [0-9.]+ requests per second.*/\1/p' | tr '\n' ' ')"
  check "redis-benchmark -t ping,set,get,incr,mset runs to the end (exit $status: $tests)" \
    test "$status:$tests" = "0:PING_INLINE PING_MBULK SET GET INCR MSET "
fi

# ------------------------------------------------------------------------------
# The examples whose README sections their authors write: http_server,
# smtp_server and memcached. Keep these steps in step with those sections
# (readme_says fails when a command here is no longer in the README).
# ------------------------------------------------------------------------------
section "examples: http_server with curl"
echo "(the main job of the set-up, above)"

section "examples: smtp_server with swaks"
readme_says "cargo run --release --example smtp_server -- --port 2525 --maildir ./mail"
readme_says "swaks --server 127.0.0.1:2525 --to someone@example.org"
if serve smtp_server "$clone" 2525 "cargo run --release --example smtp_server -- --port 2525 --maildir ./mail"; then
  status=0
  out="$(timeout 30 swaks --server "127.0.0.1:$PORT" --to someone@example.org 2>&1)" || status=$?
  check "swaks sends a message (exit $status)" [ "$status" = 0 ]
  [ "$status" = 0 ] || tail -n 20 <<<"$out"
  delivered="$(find "$clone/mail/new" -type f 2>/dev/null | wc -l)"
  check "and it is in ./mail/new ($delivered file)" [ "$delivered" = 1 ]
fi

section "examples: memcached with nc"
memcached_example="printf 'set greeting 0 0 5\\r\\nhello\\r\\nget greeting\\r\\n' | nc -q 1 127.0.0.1 11211"
readme_says "cargo run --release --example memcached -- --port 11211"
readme_says "$memcached_example"
if serve memcached "$clone" 11211 "cargo run --release --example memcached -- --port 11211"; then
  out="$(timeout 10 bash -c "${memcached_example//11211/$PORT}")" || out=""
  check "set and get, as the README sends them ($(bytes "$out"))" \
    [ "$out" = $'STORED\r\nVALUE greeting 0 5\r\nhello\r\nEND\r' ]
  out="$(printf 'get greeting\n' | talk "$PORT")" || out=""
  check "a \\n line from nc ($(bytes "$out"))" [ "$out" = $'VALUE greeting 0 5\r\nhello\r\nEND\r' ]
fi

section "summary"
exit_with_summary
