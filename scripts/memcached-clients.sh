#!/usr/bin/env bash
# Drives examples/memcached.rs with clients that nobody here wrote, and sets
# it beside a real memcached:
#   parity         the same commands sent to both, the replies compared byte
#                  for byte (CAS uniques included: both count from 1)
#   libmemcached   memccp, memccat, memcrm, memcflush, memcstat (Debian's
#                  libmemcached-tools) store and read back files of 1 B,
#                  1 KiB, 100 KiB and 1 MiB - 1 KiB, byte for byte
#   pymemcache     the same files, and every command pymemcache has
#   nc             by hand, with \n line endings
#   memcaslap      a race of examples/memcached.rs against memcached, one
#                  thread each (then two), alternating rounds: TPS of each and
#                  the ratio of the medians; informational, nothing checked
#
# The largest file is 1 MiB less 1 KiB: memcached's item limit (-I 1m) counts
# the key and a header of 59 bytes, so it takes a value of at most
# 1048576 - 59 - (key length) bytes; examples/memcached.rs counts the value
# only and takes 1048576 (checked with pymemcache).
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
# Servers are started on free ports in the background and killed by PID at exit.
#
# Environment:
#   QUICK=1          one round of 2 seconds per server in the race, no
#                    two-thread round: for CI (the whole script then takes
#                    well under a minute once built)
#   RACE_SECONDS     memcaslap -t per run (default 10, or 2 with QUICK=1)
#   RACE_ROUNDS      rounds, each running both servers back to back (default
#                    5, or 1 with QUICK=1)
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  RACE_SECONDS="${RACE_SECONDS:-2}"
  RACE_ROUNDS="${RACE_ROUNDS:-1}"
else
  RACE_SECONDS="${RACE_SECONDS:-10}"
  RACE_ROUNDS="${RACE_ROUNDS:-5}"
fi

# --- clients -----------------------------------------------------------------
section "clients"
need_command memcached memcached
need_command memccp libmemcached-tools
need_command nc netcat-openbsd
need_command python3 python3
# pymemcache comes from PyPI into a virtual environment, if /opt/pyvenv lacks it.
python3 -c 'import venv, ensurepip' 2>/dev/null || needed_packages+=(python3-venv)
install_needed_packages
memcached -V
memccp --version | head -n 1

# pymemcache: the virtual environment at /opt/pyvenv if it has it, else one
# made under the target directory.
target="${CARGO_TARGET_DIR:-target}"
python=/opt/pyvenv/bin/python
if ! "$python" -c 'import pymemcache' 2>/dev/null; then
  venv="$target/memcached-clients-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  python="$venv/bin/python"
  "$python" -c 'import pymemcache' 2>/dev/null || "$python" -m pip install -q pymemcache
fi
echo "pymemcache $("$python" -c 'import pymemcache; print(pymemcache.__version__)')"

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example memcached
bin="$target/release/examples/memcached"

make_work_directory

# start_ours NAME [ARGS...]: starts examples/memcached.rs on port 0 with the
# log NAME.log, and sets PORT.
start_ours() {
  local log="$work/$1.log"
  shift
  start_server examples/memcached.rs "$log" "$bin" --port 0 "$@"
}

# start_real [ARGS...]: starts memcached on a free port and sets PORT; it
# prints no address, so the wait is for its port to take a connection.
start_real() {
  PORT="$(free_port)"
  local user=()
  [ "$(id -u)" -ne 0 ] || user=(-u nobody) # memcached refuses to run as root
  memcached -l 127.0.0.1 -p "$PORT" -U 0 "${user[@]}" "$@" >"$work/memcached-$PORT.log" 2>&1 &
  pids+=("$!")
  if ! wait_for_port "$PORT" 10; then
    echo "memcached did not start:" >&2
    cat "$work/memcached-$PORT.log" >&2
    exit 1
  fi
}

# run_python NAME: runs the Python program on stdin with ARGS, prints what
# it prints, and counts its FAIL lines as failures.
run_python() {
  local out status=0
  out="$("$python" - "$@" 2>&1)" || status=$?
  printf '%s\n' "$out"
  failures=$((failures + $(grep -c '^FAIL' <<<"$out" || true)))
  if [ "$status" -ne 0 ] && ! grep -q '^FAIL' <<<"$out"; then
    fail "the Python checks ended with status $status"
  fi
}

start_ours ours
ours="$PORT"
start_real
real="$PORT"
echo "examples/memcached.rs on 127.0.0.1:$ours, memcached on 127.0.0.1:$real"

# --- parity ------------------------------------------------------------------
section "parity: the same commands to memcached and to examples/memcached.rs"
# Each case goes on a connection of its own, to both fresh servers in the
# same order, followed by `version` to mark the end of its replies (the
# version line itself is left out of the comparison).
run_python "$real" "$ours" <<'PYTHON'
import socket, sys, time

real, ours = int(sys.argv[1]), int(sys.argv[2])
now = int(time.time())
k250 = b"k" * 250
k251 = b"k" * 251
big = b"z" * 2_000_000

CASES = [
    ("set and get", b"set a 5 0 3\r\none\r\nget a missing a\r\n"),
    ("gets: CAS uniques", b"gets a\r\nset a 5 0 3\r\ntwo\r\ngets a\r\n"),
    ("an empty value", b"set e 0 0 0\r\n\r\nget e\r\n"),
    ("binary data", b"set bin 4294967295 0 6\r\n\r\n\0\n\r\xff\r\nget bin\r\n"),
    ("spaces between words", b"  get   a  bin \r\n"),
    ("bare \\n line endings", b"set n 0 0 2\nhi\r\nget n\ndelete n\ndelete n\n"),
    ("a block ending in a bare \\n", b"set n 0 0 2\nhi\nget n\n"),
    ("a bad data chunk", b"set a 0 0 1\r\nxyz\r\nget a\r\n"),
    ("a bad data chunk, noreply", b"set a 0 0 1 noreply\r\nxy\r\n"),
    ("add, replace", b"add a 0 0 1\r\nq\r\nreplace none 0 0 1\r\nq\r\nadd new 1 0 1\r\nq\r\nreplace new 2 0 1\r\nr\r\ngets new\r\n"),
    ("append, prepend", b"set p 5 0 1\r\nx\r\nappend p 9 0 2\r\nyz\r\nprepend p 7 0 1\r\nw\r\ngets p\r\nappend none 0 0 1\r\nx\r\n"),
    ("cas", b"gets p\r\ncas p 0 0 1 1\r\nq\r\ncas none 0 0 1 1\r\nq\r\ncas p 0 0 1 0\r\nq\r\n"),
    ("cas with the right unique", b"set c 0 0 1\r\na\r\ngets c\r\n"),
    ("cas errors", b"cas c 0 0 1\r\nx\r\ncas c 0 0 1 x\r\nx\r\n"),
    ("noreply", b"set r 0 0 1 noreply\r\n1\r\nadd r 0 0 1 noreply\r\n2\r\nappend r 0 0 1 noreply\r\n0\r\n"
                b"incr r 5 noreply\r\ndecr none 1 noreply\r\ntouch r 0 noreply\r\ndelete none noreply\r\n"
                b"delete none 0 noreply\r\nincr r x noreply\r\nverbosity 1 noreply\r\nget r\r\n"),
    ("noreply with a word too many", b"set r 0 0 1 noreply extra\r\nx\r\n"),
    ("a junk word where noreply goes", b"set r 0 0 1 junk\r\nx\r\nget r\r\n"),
    ("delete", b"set d 0 0 1\r\nx\r\ndelete d\r\ndelete d\r\nset d 0 0 1\r\nx\r\ndelete d 0\r\n"
               b"delete d 10\r\ndelete d 0 x\r\ndelete\r\ndelete d 0 noreply x\r\ndelete d x noreply\r\n"),
    ("incr and decr", b"set i 3 0 3\r\n100\r\nincr i 23\r\ndecr i 24\r\nget i\r\ndecr i 1000\r\nget i\r\n"
                      b"incr i 18446744073709551615\r\nincr i 2\r\ngets i\r\nincr none 1\r\ndecr none 1\r\n"),
    ("incr: numbers as strtoull reads them", b"set i 0 0 4\r\n  7 \r\nincr i +3\r\nincr i -0\r\nincr i -1\r\n"
                                             b"incr i 1x\r\nincr i 18446744073709551616\r\nincr i\r\nincr i 1 noreply x\r\n"),
    ("incr: non-numeric values", b"set i 0 0 3\r\nabc\r\nincr i 1\r\nset i 0 0 5\r\n12abc\r\nincr i 1\r\n"
                                 b"set i 0 0 0\r\n\r\nincr i 1\r\nset i 0 0 20\r\n18446744073709551616\r\nincr i 1\r\n"
                                 b"set i 0 0 2\r\n-5\r\nincr i 1\r\n"),
    ("touch", b"touch t 10\r\nset t 2 0 1\r\nx\r\ntouch t 10\r\ntouch t x\r\ntouch t\r\n"),
    ("gat and gats", b"gat 100 t none\r\ngats 100 t\r\ngat 10\r\ngat x t\r\ngat\r\ngat -1 t\r\nget t\r\n"),
    ("exptimes", b"set x 0 -1 1\r\nx\r\nget x\r\nset x 0 2592000 1\r\ny\r\nget x\r\n"
                 b"set x 0 %d 1\r\nz\r\nget x\r\nset x 0 %d 1\r\nw\r\nget x\r\n" % (now - 10, now + 100)),
    ("add to an expired key", b"set x 0 -1 1\r\nx\r\nadd x 0 0 1\r\nz\r\nget x\r\n"),
    ("storage line errors", b"set a x 0 1\r\nx\r\nset a -1 0 1\r\nx\r\nset a 0 x 1\r\nx\r\nset a 0 0 x\r\nx\r\n"
                            b"set a 0 0 -1\r\nx\r\nset a 0 0 2147483646\r\nx\r\nset a 0 0 1x\r\nx\r\nset a 0 0\r\n"),
    ("a key of 250 bytes", b"set " + k250 + b" 0 0 1\r\nx\r\nget " + k250 + b"\r\n"),
    # Each on a connection of its own: memcached drops the replies still
    # unsent on the connection when a get has an overlong key, those to
    # the commands before it included; this server answers them.
    ("get with a key of 251 bytes", b"get a " + k251 + b"\r\n"),
    ("gat with a key of 251 bytes", b"gat 0 " + k251 + b"\r\n"),
    ("keys of 251 bytes", b"delete " + k251 + b"\r\nincr " + k251 + b" 1\r\ntouch " + k251 + b" 1\r\n"
                          b"set " + k251 + b" 0 0 1\r\nx\r\n"),
    ("a value over the item limit", b"set big 0 0 1\r\nx\r\nset big 0 0 2000000\r\n" + big + b"\r\nget big\r\n"
                                    b"set big 0 0 1\r\nx\r\nappend big 0 0 2000000\r\n" + big + b"\r\nget big\r\n"
                                    b"set big 0 0 2000000 noreply\r\n" + big + b"\r\nget big\r\n"),
    ("flush_all", b"set f 0 0 1\r\nx\r\nflush_all\r\nget f\r\nflush_all 0\r\nflush_all x\r\nflush_all 1 2 3\r\n"
                  b"flush_all -1\r\nflush_all noreply\r\nset f 0 0 1\r\ny\r\ngets f\r\n"),
    ("unknown commands and word counts", b"bogus\r\n\r\n   \r\nx\r\nSET a 0 0 1\r\nGET a\r\nget\r\nget\ta\r\n"
                                         b"incr\r\nverbosity\r\nverbosity 1 2 3\r\nstats bogus\r\nGET / HTTP/1.1 extra\r\n"),
    ("verbosity", b"verbosity 1\r\nverbosity x\r\n"),
    ("a NUL ends the line", b"get a\0 b c\r\n"),
    ("get / HTTP/1.1 is a get", b"get / HTTP/1.1\r\n"),
]
# The connection ends after these: their replies are read to the end.
ENDING = [
    ("quit", b"set q 0 0 1\r\nx\r\nget q\r\nquit\r\n"),
    ("an HTTP request", b"GET / HTTP/1.1\r\n"),
    ("end of input in a block", b"get q\r\nset q 0 0 10\r\nabc"),
]


def run(port, request, marked=True):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request + (b"version\r\n" if marked else b""))
        if not marked:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            reply += data
            if marked and reply.endswith(b"\r\n") and reply[:-2].rsplit(b"\r\n", 1)[-1].startswith(b"VERSION "):
                return reply[: reply[:-2].rfind(b"VERSION ")]
        return reply


for name, request, marked in [(*case, True) for case in CASES] + [(*case, False) for case in ENDING]:
    expected, got = run(real, request, marked), run(ours, request, marked)
    if got == expected:
        print(f"ok   parity: {name}")
    else:
        print(f"FAIL parity: {name}\n  memcached: {expected[:300]!r}\n  ours:      {got[:300]!r}")
PYTHON

# --- files -------------------------------------------------------------------
mkdir "$work/files"
head -c 1 /dev/urandom >"$work/files/file-1b"
head -c 1024 /dev/urandom >"$work/files/file-1k"
head -c $((100 * 1024)) /dev/urandom >"$work/files/file-100k"
head -c $((1024 * 1024 - 1024)) /dev/urandom >"$work/files/file-1m"
files=(file-1b file-1k file-100k file-1m)

# --- libmemcached ------------------------------------------------------------
section "libmemcached-tools against examples/memcached.rs"
# A fresh server for the clients, whose counts start from nothing.
start_ours clients
clients="$PORT"
servers="--servers=127.0.0.1:$clients"
check "memccp of ${files[*]}" memccp "$servers" --flags=7 "${files[@]/#/$work/files/}"
for file in "${files[@]}"; do
  # memccat ends what it prints with a newline of its own; --file does not.
  check "memccat $file, byte for byte ($(wc -c <"$work/files/$file") bytes)" \
    bash -c 'memccat "$1" --file="$2" "$3" && cmp -s "$2" "$4"' _ \
    "$servers" "$work/$file.out" "$file" "$work/files/$file"
done
out="$(memccat "$servers" --flags file-1b 2>&1 | head -n 1 || true)"
check "memccat --flags shows the flags memccp set ($out)" [ "$out" = 7 ]
check "memcrm file-1k" memcrm "$servers" file-1k
check "memccat of a removed key fails" bash -c '! memccat "$1" file-1k >/dev/null 2>&1' _ "$servers"
out="$(memcstat "$servers" 2>&1)" || out=""
check "memcstat shows curr_items 3" grep -qE '^\s*curr_items: 3$' <<<"$out"
out="$(memcstat "$servers" --server-version 2>&1)" || out=""
check "memcstat --server-version ($(tr -s ' \n' ' ' <<<"$out"))" grep -q '1\.6\.18' <<<"$out"
check "memcflush" memcflush "$servers"
check "nothing is left after memcflush" bash -c '! memccat "$1" file-1b >/dev/null 2>&1' _ "$servers"

# --- pymemcache --------------------------------------------------------------
section "pymemcache against examples/memcached.rs"
run_python "$clients" "$work/files" "${files[@]}" <<'PYTHON'
import os, sys
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheServerError

port, directory, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
client = Client(("127.0.0.1", port), default_noreply=False, timeout=10)


def check(name, condition):
    print(f"ok   {name}" if condition else f"FAIL {name}")


for name in names:
    data = open(os.path.join(directory, name), "rb").read()
    stored = client.set(name, data)
    check(f"set and get {name} ({len(data)} bytes), byte for byte", stored and client.get(name) == data)
check("get_many", client.get_many(names) == {n: open(os.path.join(directory, n), "rb").read() for n in names})

exactly = os.urandom(1 << 20)
check("a value of exactly 1 MiB (the limit here)", client.set("mib", exactly) and client.get("mib") == exactly)
try:
    client.set("mib", exactly + b"x")
    check("a value of 1 MiB + 1 is refused", False)
except MemcacheServerError as error:
    check(f"a value of 1 MiB + 1 is refused ({error})", "object too large for cache" in str(error))
check("and the key is forgotten, as memcached does", client.get("mib") is None)

check("add on an existing key", client.add("file-1b", b"x") is False)
check("add", client.add("fresh", b"1", expire=100) is True)
check("replace", client.replace("fresh", b"2") is True and client.get("fresh") == b"2")
check("append, prepend", client.append("fresh", b"3") and client.prepend("fresh", b"1") and client.get("fresh") == b"123")
value, cas = client.gets("fresh")
check("gets and cas", client.cas("fresh", b"4", cas) is True and client.cas("fresh", b"5", cas) is False)
check("cas of a missing key", client.cas("missing", b"x", b"1") is None)
check("incr", client.incr("fresh", 10) == 14)
check("decr stops at 0", client.decr("fresh", 100) == 0)
check("incr of a missing key", client.incr("missing", 1) is None)
check("touch", client.touch("fresh", 100) is True and client.touch("missing", 100) is False)
check("gat (raw_command)", client.raw_command(b"gat 100 fresh", b"END\r\n") == b"VALUE fresh 0 2\r\n0 \r\n")
_, cas = client.gets("fresh")
gats = client.raw_command(b"gats 100 fresh", b"END\r\n")
check("gats (raw_command)", gats == b"VALUE fresh 0 2 " + cas + b"\r\n0 \r\n")
check("gets_many", client.gets_many(["fresh", "missing"]) == {"fresh": (b"0 ", cas)})
check("delete", client.delete("fresh") is True and client.delete("fresh") is False)
check("delete_many", client.set("gone", b"1") and client.delete_many(["gone", "missing"]) and client.get("gone") is None)
check("set with noreply, then get", client.set("quiet", b"q", noreply=True) and client.get("quiet") == b"q")
many = {f"key{i}": str(i).encode() for i in range(100)}
check("set_many and get_many of 100 keys", client.set_many(many) == [] and client.get_many(list(many)) == many)
stats = client.stats()
check(f"stats (curr_items {stats.get(b'curr_items')})", stats[b"curr_items"] == 105 and b"cmd_get" in stats)
check(f"version ({client.version()!r})", client.version() == b"1.6.18-asynchat")
check("flush_all", client.flush_all() is True and client.get("quiet") is None)
client.quit()
PYTHON

# --- nc ----------------------------------------------------------------------
section "nc, by hand, \\n line endings"
by_hand() {
  # shellcheck disable=SC2059
  printf "$2" | timeout 5 nc -q 2 127.0.0.1 "$1" || true
}
request='set hand 3 0 5\nhello\r\nget hand\nincr hand 1\nappend hand 0 0 1\n!\r\nget hand\ndelete hand\nget hand\nquit\n'
expected=$'STORED\r\nVALUE hand 3 5\r\nhello\r\nEND\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nSTORED\r\nVALUE hand 3 6\r\nhello!\r\nEND\r\nDELETED\r\nEND\r\n'
check "nc: set, get, incr, append, delete, quit" \
  cmp -s <(by_hand "$clients" "$request") <(printf '%s' "$expected")
check "nc: memcached answers the same" \
  cmp -s <(by_hand "$real" "$request") <(printf '%s' "$expected")
# 4 MiB in lines that never end: refused as soon as the line passes 2048
# bytes, skipped, and the connection goes on.
out="$(
  {
    head -c $((4 << 20)) /dev/zero | tr '\0' x
    printf '\nversion\nquit\n'
  } | timeout 10 nc -q 2 127.0.0.1 "$clients" || true
)"
check "nc: a 4 MiB line gets one CLIENT_ERROR, then the next line is read" \
  [ "$out" = $'CLIENT_ERROR bad command line format\r\nVERSION 1.6.18-asynchat\r' ]

# --- memcaslap -----------------------------------------------------------------
section "memcaslap: examples/memcached.rs against memcached"
if ! command -v memcaslap >/dev/null; then
  echo "memcaslap is not installed: no race"
else
  # A server of each per thread count, fresh for the race.
  race() {
    local threads="$1" rounds="$2" ours_port real_port round
    start_ours "race-ours-$threads" --threads "$threads"
    ours_port="$PORT"
    start_real -t "$threads"
    real_port="$PORT"
    : >"$work/race-ours-$threads.txt"
    : >"$work/race-real-$threads.txt"
    echo "memcaslap -T 1 -c 32 -t ${RACE_SECONDS}s; examples/memcached.rs --threads $threads, memcached -t $threads -U 0; $rounds round(s), alternating; $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
    for round in $(seq "$rounds"); do
      tps "$ours_port" | tee -a "$work/race-ours-$threads.txt" | sed "s/^/  round $round examples\/memcached.rs TPS /"
      tps "$real_port" | tee -a "$work/race-real-$threads.txt" | sed "s/^/  round $round memcached           TPS /"
    done
    local o r
    o="$(median <"$work/race-ours-$threads.txt")"
    r="$(median <"$work/race-real-$threads.txt")"
    if [ -n "$o" ] && [ -n "$r" ] && [ "$r" -gt 0 ]; then
      ok "$threads thread(s): examples/memcached.rs $o TPS, memcached $r TPS (medians), ratio $(awk -v o="$o" -v r="$r" 'BEGIN { printf "%.2f", o / r }')x (informational)"
    else
      fail "$threads thread(s): memcaslap gave no figure (examples/memcached.rs: '$o', memcached: '$r')"
    fi
  }
  # tps PORT: the TPS of one memcaslap run.
  tps() {
    timeout $((RACE_SECONDS + 30)) memcaslap -s "127.0.0.1:$1" -T 1 -c 32 -t "${RACE_SECONDS}s" 2>&1 |
      awk '/^Run time:/ { for (i = 1; i < NF; i++) if ($i == "TPS:") print $(i + 1) }'
  }
  race 1 "$RACE_ROUNDS"
  [ "$QUICK" = 1 ] || race 2 1
fi

section "summary"
exit_with_summary
