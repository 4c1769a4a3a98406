#!/usr/bin/env bash
# Drives examples/smtp_server.rs (release build) with mail clients nobody
# here wrote, and compares what the Maildir holds with what was sent, byte
# for byte:
#   Postfix's smtp-source   200 messages from 20 parallel connections into the Maildir
#   Python's smtplib        a plain message, lines starting with dots, starttls(),
#                           a pipelined transaction, a large message (peak memory measured)
#   curl                    a normal and an empty message, and one over STARTTLS
#   swaks                   a pipelined transaction, when swaks is installed
#   nc                      commands ending in a bare LF (accepted), and a message
#                           whose dot line ends in a bare LF (never ended by it)
# then races the example (--discard) against Postfix's smtp-sink under the same
# smtp-source load and prints the messages/s of each and their ratio
# (informational: no target is checked).
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
# Servers are started on free ports in the background and killed by PID at exit.
#
# Environment:
#   QUICK=1          shorter loads for CI (one race round, a 10 MiB message): under a minute
#   RACE_ROUNDS      race rounds, each running both servers back to back, in
#                    alternating order; the median of the rounds' ratios is printed
#                    (default 3, or 1 with QUICK=1)
#   RACE_MESSAGES    smtp-source -m for each server and round (default 20000, or 2000 with QUICK=1)
#   RACE_PARALLEL    smtp-source -s: connections at once (default 50)
#   LARGE_MIB        the large message's size in MiB (default 100, or 10 with QUICK=1)
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  RACE_ROUNDS="${RACE_ROUNDS:-1}"
  RACE_MESSAGES="${RACE_MESSAGES:-2000}"
  LARGE_MIB="${LARGE_MIB:-10}"
else
  RACE_ROUNDS="${RACE_ROUNDS:-3}"
  RACE_MESSAGES="${RACE_MESSAGES:-20000}"
  LARGE_MIB="${LARGE_MIB:-100}"
fi
RACE_PARALLEL="${RACE_PARALLEL:-50}"

# --- clients -----------------------------------------------------------------
section "clients"
need_command curl curl
need_command python3 python3
need_command nc netcat-openbsd
if ! command -v smtp-source >/dev/null || ! command -v smtp-sink >/dev/null; then
  needed_packages+=(postfix)
  # Postfix without a configuration: only its test programs are wanted.
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
fi
install_needed_packages
curl --version | head -n 1
python3 --version
echo "postfix $(postconf -h mail_version 2>/dev/null || dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo '(version unknown)') smtp-source and smtp-sink"

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example smtp_server
bin="${CARGO_TARGET_DIR:-target}/release/examples/smtp_server"

make_work_directory
chmod 755 "$work" # smtp-sink drops to nobody; nothing of it is written here

# start_smtp_server LOG [ARGS...]: starts the example on port 0, sets PORT and
# SERVER_PID.
start_smtp_server() {
  local log="$1"
  shift
  start_server smtp_server "$log" "$bin" --port 0 --hostname mx.test "$@"
}

# The Python side: smtplib and a raw socket as clients, and the comparison of a stored message
# with what was sent. A stored message is "Return-Path: <..>", a folded
# "Received:" field, then the message as sent.
cat >"$work/clients.py" <<'PY'
import hashlib, os, re, smtplib, socket, ssl, sys, time

def fail(message):
    print(f"  {message}", file=sys.stderr)
    sys.exit(1)

def delivered(maildir):
    names = os.listdir(os.path.join(maildir, "new"))
    return sorted(names, key=lambda name: int(re.search(r"Q(\d+)\.", name).group(1)))

def split_stored(data):
    """(trace fields, message) of a stored file."""
    if not data.startswith(b"Return-Path: <"):
        fail(f"no Return-Path: {data[:80]!r}")
    end = data.index(b"\r\n") + 2
    if not data[end:].startswith(b"Received: from "):
        fail(f"no Received: {data[:160]!r}")
    end = data.index(b"\r\n", end) + 2
    while data[end:end + 1] == b"\t":
        end = data.index(b"\r\n", end) + 2
    return data[:end], data[end:]

def newest(maildir, before):
    """The trace and the message of the one message stored since `before` were."""
    names = delivered(maildir)
    if len(names) != before + 1:
        fail(f"{len(names) - before} messages stored, not 1")
    if os.listdir(os.path.join(maildir, "tmp")):
        fail("tmp/ is not empty")
    with open(os.path.join(maildir, "new", names[-1]), "rb") as file:
        return split_stored(file.read())

def expect_stored(maildir, before, expected, protocol=None):
    trace, message = newest(maildir, before)
    if message != expected:
        fail(f"stored {message[:200]!r}... ({len(message)} bytes), sent {expected[:200]!r}... ({len(expected)} bytes)")
    if protocol and f" with {protocol} id ".encode() not in trace:
        fail(f"not received with {protocol}: {trace!r}")

def no_verification():
    # The server's certificate is self-signed, made at its start.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

def message(subject, body_lines):
    head = f"From: a@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\n"
    return head.encode() + b"".join(line + b"\r\n" for line in body_lines)

def main():
    case, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    before = len(delivered(maildir))
    if case == "stored":  # stored PORT MAILDIR BEFORE FILE [PROTOCOL]
        before = int(sys.argv[4])
        with open(sys.argv[5], "rb") as file:
            expected = file.read()
        expect_stored(maildir, before, expected, sys.argv[6] if len(sys.argv) > 6 else None)
    elif case == "plain":
        sent = message("plain", [b"Hello from smtplib.", b"", b"Bye."])
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.sendmail("a@example.org", ["b@example.com"], sent)
        expect_stored(maildir, before, sent, "ESMTP")
    elif case == "dots":
        sent = message("dots", [b".", b"..", b".leading", b"...three", b" .space", b"end .", b"."])
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.sendmail("a@example.org", ["b@example.com"], sent)
        expect_stored(maildir, before, sent)
    elif case == "starttls":
        sent = message("over TLS", [b"Hello over TLS.", b".dot"])
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.ehlo("client.example")
            if not smtp.has_extn("starttls"):
                fail("STARTTLS not offered")
            smtp.starttls(context=no_verification())
            smtp.ehlo("client.example")
            if smtp.has_extn("starttls"):
                fail("STARTTLS offered again under TLS")
            version = smtp.sock.version()
            smtp.sendmail("a@example.org", ["b@example.com"], sent)
        expect_stored(maildir, before, sent, "ESMTPS")
        print(f"  ({version})")
    elif case == "pipelined":
        # One write for the transaction, as RFC 2920 allows: the replies come
        # back in order.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            replies = connection.makefile("rb")
            def reply():
                lines = []
                while True:
                    line = replies.readline()
                    lines.append(line)
                    if line[3:4] != b"-":
                        return int(line[:3]), lines
            if reply()[0] != 220:
                fail("no greeting")
            connection.sendall(b"EHLO client.example\r\n")
            code, lines = reply()
            if code != 250 or b"250-PIPELINING\r\n" not in lines:
                fail(f"EHLO: {lines!r}")
            connection.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                               b"RCPT TO:<bad address>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
            codes = [reply()[0] for _ in range(5)]
            if codes != [250, 250, 501, 250, 354]:
                fail(f"replies {codes}")
            sent = message("pipelined", [b"Two recipients."])
            connection.sendall(sent + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
            codes = [reply()[0] for _ in range(4)]
            if codes != [250, 250, 250, 221]:
                fail(f"replies {codes}")
        expect_stored(maildir, before, sent)
    elif case == "large":  # large PORT MAILDIR MIB
        # Streamed through smtplib's socket, so that neither side holds the
        # message: a block of 100 lines, one starting with a dot, again and
        # again, dot-stuffed here.
        mib = int(sys.argv[4])
        head = message("large", [])
        line = b"x" * 76 + b"\r\n"
        block = b"." + line[1:] + line * 99
        stuffed = b"." + block
        count = mib * 1024 * 1024 // len(block)
        sent = hashlib.sha256(head)
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
            smtp.ehlo("client.example")
            for code, _ in (smtp.mail("a@example.org"), smtp.rcpt("b@example.com")):
                if code != 250:
                    fail(f"MAIL or RCPT got {code}")
            code, _ = smtp.docmd("DATA")
            if code != 354:
                fail(f"DATA got {code}")
            smtp.sock.sendall(head)
            for first in range(0, count, 100):
                blocks = min(100, count - first)
                smtp.sock.sendall(stuffed * blocks)
                sent.update(block * blocks)
            smtp.sock.sendall(b".\r\n")
            code, text = smtp.getreply()
            if code != 250:
                fail(f"the message got {code} {text!r}")
        seconds = time.monotonic() - started
        newest(maildir, before)
        path = os.path.join(maildir, "new", delivered(maildir)[-1])
        stored = hashlib.sha256()
        with open(path, "rb") as file:
            trace, _ = split_stored(file.read(65536))
            file.seek(len(trace))
            while piece := file.read(1 << 20):
                stored.update(piece)
        size = len(head) + count * len(block)
        if stored.digest() != sent.digest():
            fail(f"the stored message differs from the {size} bytes sent")
        print(f" ({size / 1048576:.0f} MiB in {seconds:.2f} s)")
    else:
        fail(f"unknown case {case}")

main()
PY
clients() { python3 "$work/clients.py" "$@"; }
count_new() { find "$1/new" -type f | wc -l; }

# --- the Maildir server ------------------------------------------------------
section "mail clients against examples/smtp_server.rs"
maildir="$work/Maildir"
start_smtp_server "$work/server.log" --maildir "$maildir" --max-size $(((LARGE_MIB + 16) << 20))
echo "listening on 127.0.0.1:$PORT, Maildir $maildir"
server_pid="$SERVER_PID"
mail_port="$PORT"

# smtp-source: 200 messages, 20 connections at once, one message each.
before="$(count_new "$maildir")"
out="$(timeout 60 smtp-source -s 20 -m 200 -l 4096 -c "127.0.0.1:$mail_port" 2>&1)" && status=0 || status=$?
stored=$(($(count_new "$maildir") - before))
check "smtp-source -s 20 -m 200 -l 4096: 200 messages in new/ (exit $status, $stored stored)" \
  [ "$status" = 0 ] && [ "$stored" = 200 ]
check "  and tmp/ is empty" [ -z "$(ls -A "$maildir/tmp")" ]
# Each has the trace fields, smtp-source's head and its 4096-byte body.
bad="$(find "$maildir/new" -type f -exec python3 -c '
import sys
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    body = data.split(b"\r\n\r\n", 1)[1]
    if not data.startswith(b"Return-Path: <") or not data.endswith(b"\r\n") or len(body) < 4096:
        print(path)
' {} + | wc -l)"
check "  each with its trace fields, head and body" [ "$bad" = 0 ]

check "smtplib: a plain message, byte for byte" clients plain "$mail_port" "$maildir"
check "smtplib: lines starting with dots, unstuffed byte for byte" clients dots "$mail_port" "$maildir"
check "smtplib: starttls() then sendmail()" clients starttls "$mail_port" "$maildir"
check "a pipelined transaction (Python socket): replies in order" clients pipelined "$mail_port" "$maildir"

printf 'From: a@example.org\r\nTo: b@example.com\r\nSubject: curl\r\n\r\nHello from curl.\r\n.a dot\r\n' >"$work/curl.eml"
CURL=(curl -sS --max-time 20 --mail-from a@example.org --mail-rcpt b@example.com)
before="$(count_new "$maildir")"
"${CURL[@]}" --upload-file "$work/curl.eml" "smtp://127.0.0.1:$mail_port" || true
check "curl --upload-file: a normal message" clients stored "$mail_port" "$maildir" "$before" "$work/curl.eml"
before="$(count_new "$maildir")"
"${CURL[@]}" -T /dev/null "smtp://127.0.0.1:$mail_port" || true
check "curl -T /dev/null: an empty message" clients stored "$mail_port" "$maildir" "$before" /dev/null
before="$(count_new "$maildir")"
"${CURL[@]}" --ssl-reqd -k -T "$work/curl.eml" "smtp://127.0.0.1:$mail_port" || true
check "curl --ssl-reqd -k (STARTTLS)" clients stored "$mail_port" "$maildir" "$before" "$work/curl.eml" ESMTPS

if command -v swaks >/dev/null; then
  before="$(count_new "$maildir")"
  out="$(timeout 20 swaks --server "127.0.0.1:$mail_port" --pipeline --from a@example.org \
    --to b@example.com,c@example.com --body 'Pipelined by swaks.' 2>&1)" && status=0 || status=$?
  check "swaks --pipeline (exit $status)" \
    bash -c '[ "$1" = 0 ] && [ "$(find "$2/new" -type f | wc -l)" = $(($3 + 1)) ]' _ "$status" "$maildir" "$before"
fi

# Bare LF: commands are taken as if they ended in CRLF (Postfix's default);
# a message ends only at CRLF.CRLF.
nc_send() { timeout 10 nc -N 127.0.0.1 "$mail_port" 2>/dev/null || timeout 10 nc -q 2 127.0.0.1 "$mail_port"; }
out="$(printf 'EHLO x\nQUIT\n' | nc_send | tr -d '\r')" || out=""
printf '%s\n' "$out" | sed 's/^/  | /'
check "printf 'EHLO x\\nQUIT\\n' | nc: the commands are answered" \
  bash -c '[[ "$1" == "220 mx.test ESMTP asynchat"*"250-mx.test"*"250 ENHANCEDSTATUSCODES"*"221 2.0.0 Bye" ]]' _ "$out"
before="$(count_new "$maildir")"
out="$(printf 'EHLO x\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.com>\nDATA\nhello\n.\nQUIT\n' |
  nc_send | tr -d '\r')" || out=""
check "a message ended by LF.LF is never ended: no 250 after the 354, nothing stored" \
  bash -c '[[ "$1" == *"354 End data"* && "$1" != *"queued as"* && "$1" != *"221 "* ]] &&
           [ "$(find "$2/new" -type f | wc -l)" = "$3" ]' _ "$out" "$maildir" "$before"

# A large message, and the server's memory: its peak resident size after
# the message (VmHWM) against its resident size before (VmRSS).
kib() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }
resident_before="$(kib "$server_pid" VmRSS)"
out="$(clients large "$mail_port" "$maildir" "$LARGE_MIB" 2>&1)" && status=0 || status=$?
peak_after="$(kib "$server_pid" VmHWM)"
growth=$(((peak_after - resident_before) / 1024))
check "smtplib: a $LARGE_MIB MiB message, byte for byte $(tr -d '\n' <<<"$out")" [ "$status" = 0 ]
check "  the server's peak resident memory: $((peak_after / 1024)) MiB, $growth MiB over its $((resident_before / 1024)) MiB before (at most 16 more)" \
  [ "$growth" -le 16 ]
rm -f "$maildir"/new/*

# --- the race: examples/smtp_server.rs --discard against smtp-sink -----------
section "smtp-source against examples/smtp_server.rs --discard and smtp-sink"
start_smtp_server "$work/discard.log" --discard
ours="$PORT"
ours_pid="$SERVER_PID"
sink="$(free_port)"
SINK=(smtp-sink)
[ "$(id -u)" -ne 0 ] || SINK+=(-u nobody) # it will not run as root
(cd "$work" && exec "${SINK[@]}" "127.0.0.1:$sink" 1000) >"$work/smtp-sink.log" 2>&1 &
pids+=("$!")
# A sink that never listens shows as a failed race below.
wait_for_port "$sink" 10 || true

SOURCE=(smtp-source -s "$RACE_PARALLEL" -m "$RACE_MESSAGES" -l 4096 -d)
echo "${SOURCE[*]} 127.0.0.1:PORT, $RACE_ROUNDS round(s), alternating; $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
# rate PORT: runs the load, prints messages/s (nothing if smtp-source failed).
rate() {
  local start end
  start="$(date +%s.%N)"
  timeout 300 "${SOURCE[@]}" "127.0.0.1:$1" >/dev/null 2>&1 || return 0
  end="$(date +%s.%N)"
  awk -v s="$start" -v e="$end" -v m="$RACE_MESSAGES" 'BEGIN { printf "%.0f\n", m / (e - s) }'
}
: >"$work/race.txt"
for round in $(seq "$RACE_ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order=(ours sink); else order=(sink ours); fi
  for who in "${order[@]}"; do
    if [ "$who" = ours ]; then port="$ours"; else port="$sink"; fi
    figure="$(rate "$port")"
    printf '  round %s %-34s %s messages/s\n' "$round" \
      "$([ "$who" = ours ] && echo examples/smtp_server.rs || echo smtp-sink)" "${figure:-(failed)}"
    echo "$round $who ${figure:-0}" >>"$work/race.txt"
  done
done
ratios="$(awk '{ r[$1, $2] = $3 } END { for (k in r) { split(k, p, SUBSEP); if (p[2] == "ours" && r[p[1], "sink"] > 0) printf "%.4f\n", r[k] / r[p[1], "sink"] } }' "$work/race.txt")"
o="$(awk '$2 == "ours" { print $3 }' "$work/race.txt" | median)"
s="$(awk '$2 == "sink" { print $3 }' "$work/race.txt" | median)"
if grep -q ' 0$' "$work/race.txt" || [ -z "$ratios" ]; then
  fail "smtp-source failed against one of the servers"
else
  ok "examples/smtp_server.rs $o messages/s, smtp-sink $s messages/s (medians), ratio $(printf '%.2f' "$(median <<<"$ratios")")x (median of $RACE_ROUNDS round(s); informational)"
fi

# Every message was read to its end and counted.
kill -TERM "$ours_pid"
wait "$ours_pid" 2>/dev/null || true
expected=$((RACE_ROUNDS * RACE_MESSAGES))
counted="$(grep -o 'received [0-9]* messages' "$work/discard.log" | grep -o '[0-9]*' || true)"
check "--discard counted $counted messages of the $expected sent" [ "$counted" = "$expected" ]

section "summary"
exit_with_summary
