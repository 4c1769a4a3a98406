#!/usr/bin/env bash
# The instructions a line echo round trip costs in user space, for the Chat
# server and the Framed<_, LinesCodec> server (examples/echo_round_trips.rs),
# counted by callgrind: the whole process, client and runtime included. The
# two make the same system calls per round trip (strace -c), so the
# difference is the servers' own work. Unlike a timing, the count moves
# little with the machine's load: about 2% from run to run (the runtime's
# parking and waking), so compare runs, not single counts.
#
#   scripts/echo-instructions.sh [ROUND_TRIPS]     # default 20000
#
# Needs valgrind (apt-get install valgrind).
set -euo pipefail

cd "$(dirname "$0")/.."
round_trips="${1:-20000}"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --example echo_round_trips >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

declare -A per_round_trip
for server in chat framed; do
    if ! valgrind --tool=callgrind --callgrind-out-file="$work/$server.out" \
        "$target_dir/release/examples/echo_round_trips" "$server" "$round_trips" \
        >/dev/null 2>"$work/$server.log"; then
        cat "$work/$server.log" >&2
        exit 1
    fi
    total="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/$server.log")"
    per_round_trip[$server]=$((total / round_trips))
    echo "$server: $total instructions, ${per_round_trip[$server]} per round trip"
done
python3 -c "import sys; print(f'Framed / Chat: {int(sys.argv[2]) / int(sys.argv[1]):.3f}')" \
    "${per_round_trip[chat]}" "${per_round_trip[framed]}"
