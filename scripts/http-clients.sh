#!/usr/bin/env bash
# Drives examples/http_server (release build) with HTTP clients that nobody
# here wrote:
#   curl             GET and POST, keep-alive, uploads by Content-Length (-T file,
#                    100-continue) and chunked (-T -, --data-binary with
#                    Transfer-Encoding: chunked), --store, the limits
#   python3          http.client, chunked requests (encode_chunked=True) on one
#                    keep-alive connection
#   nc               requests with bare LF line endings
# plus a bash /dev/tcp client for bad input.
#
# Each check prints "ok" or "FAIL"; the script exits non-zero if any failed.
# Servers are started on free ports in the background and killed by PID at exit.
#
# Environment:
#   QUICK=1          skip the 1 GiB upload (for CI: under a minute)
#   CARGO_TARGET_DIR where cargo builds (default ./target)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

QUICK="${QUICK:-0}"

# --- clients -----------------------------------------------------------------
section "clients"
need_command curl curl
need_command nc netcat-openbsd
need_command python3 python3
install_needed_packages
curl --version | head -n 1
python3 --version
# OpenBSD nc shuts its write side at the end of its input with -N; others
# have no such flag and quit a moment after it with -q.
if nc -h 2>&1 | grep -q -- '-N'; then NC_EOF=(-N); else NC_EOF=(-q 2); fi

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example http_server
bin="${CARGO_TARGET_DIR:-target}/release/examples"

make_work_directory

# start_http_server NAME [ARGS...]: starts the example on port 0 with a log of
# its own; sets PORT and SERVER_PID.
start_http_server() {
  local name="$1"
  shift
  start_server "http_server ($name)" "$work/$name.log" "$bin/http_server" 0 "$@"
}

# json_string JSON KEY: the value of a string member of the server's echo.
json_string() { grep -o "\"$2\":\"[^\"]*\"" <<<"$1" | head -n 1 | cut -d'"' -f4; }
# sha256_of FILE
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
# vm_hwm PID: the peak resident set of a process, in KiB.
vm_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# echoes_upload NAME JSON FILE: checks that the echo reports FILE's length and digest.
echoes_upload() {
  local name="$1" out="$2" file="$3"
  local length digest got
  length="$(stat -c %s "$file")"
  digest="$(sha256_of "$file")"
  got="$(json_string "$out" sha256)"
  check "$name: $length bytes, sha256 ${got:-none} = sha256sum" \
    contains "$out" "\"body_length\":$length,\"sha256\":\"$digest\""
}

CURL=(curl -sS --max-time 60)
head -c $((5 << 20)) /dev/urandom >"$work/5MiB.bin"
head -c $((7 << 20)) /dev/urandom >"$work/7MiB.bin"

# --- curl: requests and replies ----------------------------------------------
section "curl: requests, replies, keep-alive, limits"
start_http_server main
main_port="$PORT"
base="http://127.0.0.1:$main_port"
echo "listening on $base"

out="$("${CURL[@]}" "$base/hello?x=1")" || out=""
check "GET /hello?x=1 is echoed as JSON" \
  contains "$out" '"method":"GET","path":"/hello?x=1","version":"HTTP/1.1"'

out="$("${CURL[@]}" --data 'some body' "$base/form")" || out=""
check "POST with a body: its length, digest and text" \
  contains "$out" "\"body_length\":9,\"sha256\":\"$(printf 'some body' | sha256sum | cut -d' ' -f1)\",\"stored\":null,\"body\":\"some body\"}"

out="$("${CURL[@]}" --data '' "$base/empty")" || out=""
check "POST with Content-Length: 0" \
  bash -c '[[ "$1" == *"[\"Content-Length\",\"0\"]"* ]] && [[ "$1" == *"\"body_length\":0,"* ]]' _ "$out"

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

# --- curl: uploads -------------------------------------------------------------
section "curl: uploads by Content-Length and chunked"
out="$("${CURL[@]}" -v -T "$work/5MiB.bin" "$base/upload" 2>"$work/curl-T.err")" || out=""
echoes_upload "curl -T file (Content-Length)" "$out" "$work/5MiB.bin"
check "curl -T file: 100 Continue before the body" \
  grep -q '^< HTTP/1.1 100 Continue' "$work/curl-T.err"

out="$("${CURL[@]}" -T - "$base/upload" <"$work/5MiB.bin")" || out=""
check "curl -T - sends it chunked" contains "$out" '["Transfer-Encoding","chunked"]'
echoes_upload "curl -T - < file (chunked)" "$out" "$work/5MiB.bin"

out="$("${CURL[@]}" --data-binary "@$work/5MiB.bin" -H 'Transfer-Encoding: chunked' "$base/post")" || out=""
check "curl --data-binary -H 'Transfer-Encoding: chunked' sends it chunked" \
  contains "$out" '["Transfer-Encoding","chunked"]'
echoes_upload "curl --data-binary @file, chunked" "$out" "$work/5MiB.bin"

# --- python http.client ----------------------------------------------------------
section "python3 http.client: chunked requests on one keep-alive connection"
cat >"$work/chunked_client.py" <<'EOF'
"""Chunked POSTs of several sizes on one keep-alive connection."""
import hashlib
import http.client
import json
import sys

port = int(sys.argv[1])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
failures = 0
first_socket = None
for index, size in enumerate([0, 1, 4095, 70000, 1 << 20, 3]):
    data = bytes((i * 7 + index) % 256 for i in range(size))
    pieces = [data[start:start + 8192] for start in range(0, size, 8192)]
    connection.request(
        "POST",
        f"/python/{index}",
        body=iter(pieces),
        headers={"Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    if first_socket is None:
        first_socket = connection.sock.getsockname()
    response = connection.getresponse()
    echo = json.loads(response.read())
    same = connection.sock is not None and connection.sock.getsockname() == first_socket
    good = (
        response.status == 200
        and echo["path"] == f"/python/{index}"
        and ["Transfer-Encoding", "chunked"] in echo["headers"]
        and echo["body_length"] == size
        and echo["sha256"] == hashlib.sha256(data).hexdigest()
        and same
    )
    print(f"  request {index}: {size} bytes, status {response.status}, "
          f"same connection: {same}, {'good' if good else 'BAD: ' + str(echo)[:300]}")
    failures += not good
connection.close()
sys.exit(1 if failures else 0)
EOF
check "http.client, encode_chunked=True: 6 requests, digests right, one connection" \
  timeout 60 python3 "$work/chunked_client.py" "$main_port"

# --- nc: bare LF ---------------------------------------------------------------
section "nc: bare LF line endings"
out="$(printf 'GET /bare HTTP/1.1\nHost: x\nConnection: close\n\n' |
  timeout 10 nc "${NC_EOF[@]}" 127.0.0.1 "$main_port")" || out=""
check "a request with bare LF line endings" \
  bash -c '[[ "$1" == "HTTP/1.1 200 OK"* ]] && [[ "$1" == *"\"path\":\"/bare\""*"[\"Host\",\"x\"]"* ]]' _ "$out"
out="$(printf 'POST /bare-chunked HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nConnection: close\n\n5\nhello\n0\n\n' |
  timeout 10 nc "${NC_EOF[@]}" 127.0.0.1 "$main_port")" || out=""
check "a chunked body with bare LF line endings" \
  contains "$out" '"body_length":5,'

# --- bad input ------------------------------------------------------------------
section "bash /dev/tcp: bad input"
# refused NAME BYTES STATUS: ok if BYTES (a printf format), sent as they are,
# get the reply STATUS.
refused() { check "$1" contains "$(raw_request "$main_port" "$2")" "HTTP/1.1 $3"; }
refused "a malformed request line gets 400" 'GARBAGE\r\n\r\n' "400 Bad Request"
refused "a bad Content-Length gets 400" 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12abc\r\n\r\n' "400 Bad Request"
refused "Content-Length with Transfer-Encoding gets 400" \
  'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' "400 Bad Request"
refused "a bad chunk size gets 400" 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' "400 Bad Request"
refused "an unknown transfer coding gets 501" \
  'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' "501 Not Implemented"
refused "HTTP/1.1 without Host gets 400" 'GET / HTTP/1.1\r\n\r\n' "400 Bad Request"

# --- --store and --max-body ---------------------------------------------------------
section "--store DIR --max-body 6M"
start_http_server store --store "$work/store" --max-body 6M
store_base="http://127.0.0.1:$PORT"
out="$("${CURL[@]}" -T "$work/5MiB.bin" "$store_base/upload")" || out=""
stored="$(json_string "$out" stored)"
check "curl -T file: stored as ${stored:-nothing}, byte for byte" \
  bash -c '[ -n "$1" ] && cmp -s "$1" "$2"' _ "$stored" "$work/5MiB.bin"
out="$("${CURL[@]}" -T - "$store_base/upload" <"$work/5MiB.bin")" || out=""
stored="$(json_string "$out" stored)"
check "curl -T - (chunked): stored as ${stored:-nothing}, byte for byte" \
  bash -c '[ -n "$1" ] && cmp -s "$1" "$2"' _ "$stored" "$work/5MiB.bin"
code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -T "$work/7MiB.bin" "$store_base/big")" || code=""
check "a Content-Length over --max-body gets 413 (got $code)" [ "$code" = 413 ]
code="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -T - "$store_base/big" <"$work/7MiB.bin")" || code=""
check "a chunked body over --max-body gets 413 (got $code)" [ "$code" = 413 ]

# --- 1 GiB ------------------------------------------------------------------------
section "curl -T: 1 GiB, memory"
if [ "$QUICK" = 1 ]; then
  echo "skipped (QUICK=1)"
else
  head -c $((1 << 30)) /dev/urandom >"$work/1GiB.bin"
  start_http_server gib
  "${CURL[@]}" -o /dev/null "http://127.0.0.1:$PORT/warm-up"
  before="$(vm_hwm "$SERVER_PID")"
  out="$(curl -sS --max-time 600 -T "$work/1GiB.bin" "http://127.0.0.1:$PORT/gib")" || out=""
  after="$(vm_hwm "$SERVER_PID")"
  echoes_upload "curl -T 1 GiB file" "$out" "$work/1GiB.bin"
  check "peak RSS (VmHWM) of the server: $before KiB before, $after KiB after: growth $((after - before)) KiB <= 16 MiB" \
    [ $((after - before)) -le $((16 * 1024)) ]
  rm -f "$work/1GiB.bin"
fi

section "summary"
exit_with_summary
