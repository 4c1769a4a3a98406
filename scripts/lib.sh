# shellcheck shell=bash
# What the client scripts share, sourced by each before it does anything:
#   source "$(dirname "$0")/lib.sh"
# Every script reports the same way, installs what is missing the same way and
# starts and stops its servers the same way, so that a fix to any of these
# (a tighter wait, a cleaner install) reaches all of them at once.

# --- reporting ---------------------------------------------------------------
# One line per check, "ok   NAME" or "FAIL NAME": the two words are the same
# width, so a run reads as a column and `grep ^FAIL` finds what went wrong.
# failures counts the FAILs for the exit status.
failures=0
ok() { printf 'ok   %s\n' "$*"; }
fail() {
  printf 'FAIL %s\n' "$*"
  failures=$((failures + 1))
}

# check NAME COMMAND...: ok if the command succeeds. The command runs as a
# condition, so a failing check is counted instead of ending the script
# under set -e.
check() {
  local name="$1"
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

# contains HAYSTACK NEEDLE: a command for check, which takes no [[ ]].
contains() { [[ "$1" == *"$2"* ]]; }

section() { printf '\n== %s ==\n' "$*"; }

# exit_with_summary: the last line of a run, and the exit status CI goes by:
# non-zero if any check failed, though the script ran on past it.
exit_with_summary() {
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) FAILED"
    exit 1
  fi
  echo "all checks passed"
}

# --- installing the clients --------------------------------------------------
# CI starts from a fresh Debian machine as root; a developer's machine has the
# clients already and must not be touched. So a package is installed only when
# the command it brings is missing.
needed_packages=()

# need_command COMMAND PACKAGE: PACKAGE joins the install list unless COMMAND
# is on the PATH.
need_command() { command -v "$1" >/dev/null || needed_packages+=("$2"); }

# as_root COMMAND...: a CI container runs as root and may have no sudo.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# install_needed_packages: apt-get installs the list, if there is one. A
# policy-rc.d that refuses every start is in place for the time of the
# install: redis-server, memcached and postfix would otherwise start their
# services on their standard ports (or fail to, in a container without init),
# and the scripts start their own servers on free ports. env carries
# DEBIAN_FRONTEND past sudo, which resets the environment.
install_needed_packages() {
  [ ${#needed_packages[@]} -gt 0 ] || return 0
  echo "installing ${needed_packages[*]}"
  as_root apt-get update -qq
  local policy=/usr/sbin/policy-rc.d placed="" status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    placed=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed_packages[@]}" >/dev/null || status=$?
  # Removed even when the install failed: a policy left behind would keep
  # every service of the machine from starting.
  [ -z "$placed" ] || as_root rm -f "$policy"
  return "$status"
}

# --- servers -----------------------------------------------------------------
# pids: every server started in the background, stopped at exit.
pids=()

# make_work_directory: sets work to a fresh temporary directory for the logs
# and files of the run, and stops the servers and removes it at exit, however
# the script ends: a server left running would hold its port and a CPU of a
# shared or CI machine.
make_work_directory() {
  work="$(mktemp -d)"
  trap stop_servers_and_remove_work EXIT
}

stop_servers_and_remove_work() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    # Waited for, so that it no longer writes into the directory removed next.
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}

# free_port: a port nothing listens on, for a server that cannot be told to
# take port 0 and print what it got. The kernel's pick, released at once: a
# race with other programs is possible but short.
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

# wait_for_address LOG PID SECONDS [PATTERN]: prints the port of the address
# a server printed to LOG once it listens: the first match of PATTERN (an
# extended regular expression ending in 127.0.0.1:PORT; by default that
# address alone). Fails if PID ends first or SECONDS pass: a server that
# never starts must not hang the script.
wait_for_address() {
  local log="$1" pid="$2" seconds="$3" pattern="${4:-127\.0\.0\.1:[0-9]+}" address _
  for _ in $(seq $((seconds * 10))); do
    address="$(grep -oEm1 "$pattern" "$log" 2>/dev/null | head -n 1 || true)"
    if [ -n "$address" ]; then
      echo "${address##*:}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_server NAME LOG COMMAND...: runs COMMAND, a server told to listen on
# port 0 (a free port, which it prints), in the background with its output in
# LOG; sets PORT and SERVER_PID once it listens, within 10 s. A server that
# does not start ends the script, its log shown: no check after it could pass.
start_server() {
  local name="$1" log="$2"
  shift 2
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  pids+=("$SERVER_PID")
  if ! PORT="$(wait_for_address "$log" "$SERVER_PID" 10)"; then
    echo "$name did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# wait_for_port PORT SECONDS: succeeds once 127.0.0.1:PORT takes a
# connection, for a server that prints no address; fails after SECONDS.
wait_for_port() {
  local port="$1" seconds="$2" _
  for _ in $(seq $((seconds * 10))); do
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_redis_server: a real redis-server on a free port, to compare replies
# with or race against; sets PORT. Nothing saved to disk: it must leave no
# files behind. Waits up to 10 s for its PONG but does not fail: the
# caller's checks show a server that never answered.
start_redis_server() {
  PORT="$(free_port)"
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$work/redis-server.log" &
  pids+=("$!")
  local _
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$PORT" PING 2>/dev/null || true)" = PONG ] && return 0
    sleep 0.1
  done
  return 0
}

# --- talking to servers ------------------------------------------------------
# raw_request PORT BYTES: sends BYTES (a printf format, so that \r\n and
# malformed input can be written out) over a bash /dev/tcp connection, which
# sends them exactly as given, and prints what comes back until the server
# closes (at most 5 s).
raw_request() {
  local port="$1" request="$2"
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    # shellcheck disable=SC2059
    printf "$request" >&3
    timeout 5 cat <&3 || true
  )
}

# median: the median of the numbers on standard input, one a line; of an even
# count, the lower of the middle two, so that the figure is one measured.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
