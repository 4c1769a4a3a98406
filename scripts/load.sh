#!/usr/bin/env bash
# Load: many concurrent connections to the line echo example, each doing a
# few round trips and then idling; none may be refused, dropped or answered
# wrongly. Then the resident memory of the server per idle connection (VmRSS
# with the connections idle, minus VmRSS before the first connection,
# divided by their number), against the same server written with tokio-util's
# Framed<TcpStream, LinesCodec> (examples/lines_echo.rs), in the same run.
#
#   scripts/load.sh [CONNECTIONS]     # default 10000 (or $CONNECTIONS)
#   ROUNDS=5 scripts/load.sh 1000
#
# Exits non-zero if a connection failed, or if the echo example holds more
# memory per idle connection than the LinesCodec server (the target), with
# a tolerance of $TOLERANCE_KIB (default 0.5 KiB) per connection for noise.
# Everything runs on 127.0.0.1, ephemeral ports; every wait is bounded.
set -euo pipefail

cd "$(dirname "$0")/.."

connections=${1:-${CONNECTIONS:-10000}}
rounds=${ROUNDS:-3}
tolerance_kib=${TOLERANCE_KIB:-0.5}

# Each process holds one descriptor per connection, and some more.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < connections + 64 )); then
    echo "load.sh: the open-file limit $(ulimit -n) is too low for $connections connections" >&2
    exit 1
fi

cargo build --release --example echo --example lines_echo --example load_client >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples"

work=$(mktemp -d)
server_pid=
client_pid=
cleanup() {
    [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Waits (at most $2 seconds) for a line matching $3 in file $1.
wait_for() {
    local deadline=$((SECONDS + $2))
    until grep -q "$3" "$1" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            echo "load.sh: timed out waiting for '$3' in $1:" >&2
            cat "$1" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

# measure NAME: runs the load against examples/NAME and sets per_connection
# (KiB, two decimals), baseline and loaded (KiB).
measure() {
    local name=$1
    "$bin/$name" 0 >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    wait_for "$work/$name.out" 30 "listening on"
    local address
    address=$(grep -o '127\.0\.0\.1:[0-9]*' "$work/$name.out" | head -1)
    sleep 0.5
    baseline=$(rss_kib "$server_pid")

    mkfifo "$work/go"
    "$bin/load_client" "$address" "$connections" "$rounds" \
        <"$work/go" >"$work/client.out" 2>"$work/client.err" &
    client_pid=$!
    exec 3>"$work/go" # the client idles until this closes
    if ! wait_for "$work/client.out" 600 "^ready"; then
        cat "$work/client.err" >&2
        return 1
    fi
    # Let the server settle into idleness, then read its memory.
    sleep 2
    loaded=$(rss_kib "$server_pid")
    exec 3>&-
    local status=0
    wait "$client_pid" || status=$?
    client_pid=
    rm -f "$work/go"
    cat "$work/client.err" >&2
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if (( status != 0 )); then
        echo "load.sh: $name: connections failed" >&2
        return 1
    fi
    per_connection=$(awk -v l="$loaded" -v b="$baseline" -v n="$connections" \
        'BEGIN { printf "%.2f", (l - b) / n }')
    printf '%-10s %6d connections: VmRSS %7d KiB idle-loaded, %6d KiB baseline: %6s KiB per idle connection\n' \
        "$name" "$connections" "$loaded" "$baseline" "$per_connection"
}

measure echo
ours=$per_connection
measure lines_echo
theirs=$per_connection

echo "per idle connection: Chat echo (examples/echo.rs) $ours KiB, Framed<_, LinesCodec> (examples/lines_echo.rs) $theirs KiB, $connections connections, $rounds round trips each"
if awk -v a="$ours" -v b="$theirs" -v t="$tolerance_kib" 'BEGIN { exit !(a <= b + t) }'; then
    echo "load.sh: target met: the Chat echo holds no more per idle connection than LinesCodec"
else
    echo "load.sh: target MISSED: the Chat echo holds more per idle connection than LinesCodec" >&2
    exit 1
fi
