#!/usr/bin/env bash
# Soak: the SMTP, HTTP and memcached examples at once under thousands of
# concurrent clients (examples/soak_client.rs) for a set time, on loopback,
# mixing valid conversations with hostile ones: resets in the middle of a
# message, half-closes, one byte every 100 ms, overlong lines, garbage,
# abandoned TLS handshakes, clients that never read.
#
#   scripts/soak.sh [SECONDS]        # default 600; SECONDS=60 scripts/soak.sh works too
#   CLIENTS=500 scripts/soak.sh 120
#
# Environment: CLIENTS (default 2000 connections in all, a third per server),
# SOAK_THINK_MS (the mean pause between a conversation's commands, default
# 1500),
# MAX_GROWTH_PERCENT (default 5), GROWTH_NOISE_KIB (default 1024),
# MAX_PEAK_MIB (default 128), SOAK_KEEP=1 (keep the logs, the samples and
# the Maildir, and print where), CARGO_TARGET_DIR.
#
# Each server's resident memory (VmRSS) is sampled every second. Checks, one
# line per server (ok or FAIL, with the figures):
#   - memory: the median of the last 10 samples of the load is at most
#     MAX_GROWTH_PERCENT above the median of the 10 after the first minute
#     (judged in runs of 120 s or more; reported over the second half of a
#     shorter one), or at most
#     GROWTH_NOISE_KIB above it (a short run's allocator warm-up on a server
#     of a few MiB: a rare large value sets a new high-water mark); and the
#     peak is at most MAX_PEAK_MIB: memory filled within the first minute
#     and kept (a queue that grows while a client does not read) shows only
#     there;
#   - no panic in its log;
#   - every valid conversation's result correct (mail stored byte for byte, values
#     read back, digests equal), and no hostile conversation left hanging;
#   - its open file descriptors back to their number before the load, within
#     30 s of the last client leaving;
#   - for SMTP, every accepted message in the Maildir byte for byte, none of
#     the messages cut off by a reset or a half-close, nothing left in tmp/.
# Exits non-zero if any check failed. Servers run on free ports and are killed
# by PID at exit; every wait is bounded.
set -euo pipefail
# Read first: bash takes SECONDS from the environment as its clock's start.
seconds_from_environment=$SECONDS

# ok and fail, as every script reports.
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

duration=${1:-}
if [[ -z $duration ]]; then
    if (( seconds_from_environment > 0 )); then
        duration=$seconds_from_environment
    else
        duration=600
    fi
fi
clients=${CLIENTS:-2000}
max_growth=${MAX_GROWTH_PERCENT:-5}
max_peak_mib=${MAX_PEAK_MIB:-128}
growth_noise_kib=${GROWTH_NOISE_KIB:-1024}
if (( duration < 40 )); then
    echo "soak.sh: at least 40 seconds, for a warm-up and two windows of samples" >&2
    exit 2
fi
# The servers' memory climbs for about a minute (allocator high-water marks,
# the cache's table) and then stays level: growth is judged after the first
# minute, in runs of 120 s or more. A shorter run (CI's 60 s) reports the
# growth over its second half and judges only the peak.
warmup=$(( duration / 2 < 60 ? duration / 2 : 60 ))
judge_growth=$(( duration >= 120 ))

# Each server holds a descriptor per connection, the client one per conversation.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < clients + 256 )); then
    echo "soak.sh: the open-file limit $(ulimit -n) is too low for $clients clients" >&2
    exit 1
fi

cargo build --release --example smtp_server --example http_server \
    --example memcached --example soak_client >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples"

work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${SOAK_KEEP:-0} == 1 ]]; then
        echo "soak.sh: logs, samples (rss-*) and the Maildir kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# start NAME ARGS...: starts a server, waits (at most 30 s) for the address it
# prints, and sets address and pid.
start() {
    local name=$1
    shift
    "$bin/$name" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    address=""
    local _
    for _ in $(seq 300); do
        address=$(grep -om1 '127\.0\.0\.1:[0-9]*' "$work/$name.log" 2>/dev/null || true)
        [[ -n $address ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "soak.sh: $name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

"$bin/soak_client" certificate "$work/tls"
mkdir -p "$work/Maildir"

servers=(smtp_server http_server memcached)
declare -A server_pid server_address baseline_fds
start smtp_server --port 0 --maildir "$work/Maildir" \
    --cert "$work/tls/certificate.pem" --key "$work/tls/key.pem"
server_pid[smtp_server]=$pid
server_address[smtp_server]=$address
start http_server 0
server_pid[http_server]=$pid
server_address[http_server]=$address
start memcached --port 0
server_pid[memcached]=$pid
server_address[memcached]=$address
sleep 1
for name in "${servers[@]}"; do
    baseline_fds[$name]=$(fds "${server_pid[$name]}")
done

# One sample a second of each server's VmRSS, in KiB, one file per server.
(
    while :; do
        for name in "${servers[@]}"; do
            rss_kib "${server_pid[$name]}" >>"$work/rss-$name"
        done
        sleep 1
    done
) &
sampler=$!
pids+=("$sampler")

echo "soak.sh: $clients clients for ${duration}s (warm-up ${warmup}s): smtp ${server_address[smtp_server]}, http ${server_address[http_server]}, memcached ${server_address[memcached]}" >&2
client_status=0
SOAK_THINK_MS=${SOAK_THINK_MS:-1500} "$bin/soak_client" \
    --smtp "${server_address[smtp_server]}" \
    --http "${server_address[http_server]}" \
    --memcached "${server_address[memcached]}" \
    --maildir "$work/Maildir" --certificate "$work/tls/certificate.pem" \
    --clients "$clients" --seconds "$duration" \
    >"$work/client.out" 2>"$work/client.err" || client_status=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

# Descriptors back to their number before the load: lingering closes and
# timeouts may take a little while.
declare -A end_fds
for name in "${servers[@]}"; do
    for _ in $(seq 30); do
        end_fds[$name]=$(fds "${server_pid[$name]}")
        (( end_fds[$name] <= baseline_fds[$name] )) && break
        sleep 1
    done
done

# median_of_samples FILE FIRST COUNT: the median of COUNT samples from line
# FIRST (1-based).
median_of_samples() {
    sed -n "$2,$(( $2 + $3 - 1 ))p" "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f MiB", kib / 1024 }'; }

grep -v '^case\|^server\|^failure' "$work/client.out" >&2 || true
grep '^case\|^failure' "$work/client.out" || true
[[ -s $work/client.err ]] && head -20 "$work/client.err" >&2

for name in "${servers[@]}"; do
    protocol=${name%_server}
    samples=$(wc -l <"$work/rss-$name")
    start_kib=$(median_of_samples "$work/rss-$name" $(( warmup + 1 )) 10)
    # The last 10 s of the load, not the conversations' wind-down after it.
    last=$(( samples < duration ? samples : duration ))
    end_kib=$(median_of_samples "$work/rss-$name" $(( last - 9 )) 10)
    peak_kib=$(sort -n "$work/rss-$name" | tail -1)
    growth=$(awk -v a="$start_kib" -v b="$end_kib" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')
    panics=$(grep -ci 'panic' "$work/$name.log" || true)
    tally=$(grep "^server $protocol " "$work/client.out" || echo "server $protocol valid_ok=0 valid_failed=? hostile=0 hostile_failed=?")
    valid_ok=$(sed -n 's/.*valid_ok=\([0-9?]*\).*/\1/p' <<<"$tally")
    valid_failed=$(sed -n 's/.*valid_failed=\([0-9?]*\).*/\1/p' <<<"$tally")
    hostile=$(sed -n 's/.* hostile=\([0-9?]*\).*/\1/p' <<<"$tally")
    hostile_failed=$(sed -n 's/.*hostile_failed=\([0-9?]*\).*/\1/p' <<<"$tally")
    problems=()
    if (( judge_growth )) && awk -v g="$growth" -v m="$max_growth" 'BEGIN { exit !(g > m) }' &&
        (( end_kib - start_kib > growth_noise_kib )); then
        problems+=("memory grew ${growth}%")
    fi
    growth_text="${growth}%"
    (( judge_growth )) || growth_text="$growth_text, not judged under 120 s"
    (( peak_kib <= max_peak_mib * 1024 )) || problems+=("peak over ${max_peak_mib} MiB")
    (( panics == 0 )) || problems+=("$panics panic lines in its log")
    [[ $valid_failed == 0 && $valid_ok != 0 ]] || problems+=("valid conversations failed")
    [[ $hostile_failed == 0 ]] || problems+=("hostile conversations hung or went wrong")
    (( end_fds[$name] <= baseline_fds[$name] )) || problems+=("descriptors not back to baseline")
    line="$name: RSS $(mib "$start_kib") after ${warmup}s, $(mib "$end_kib") at ${duration}s (${growth_text}, peak $(mib "$peak_kib"), $samples samples); fds ${baseline_fds[$name]} before, ${end_fds[$name]} after; ${panics} panics; valid conversations ${valid_ok} ok, ${valid_failed} failed; hostile ${hostile}, ${hostile_failed} failed"
    if (( ${#problems[@]} == 0 )); then
        ok "$line"
    else
        fail "$line: $(IFS=';'; echo "${problems[*]}")"
        tail -5 "$work/$name.log"
    fi
done

maildir=$(grep '^maildir' "$work/client.out" || echo "maildir: no report")
left=$(find "$work/Maildir/tmp" -type f 2>/dev/null | wc -l)
if [[ $maildir == "maildir ok"* ]] && (( left == 0 )); then
    ok "smtp_server $maildir; nothing left in tmp/"
else
    fail "smtp_server $maildir; $left files left in tmp/"
fi
if (( client_status != 0 )) && (( failures == 0 )); then
    fail "soak_client exited with $client_status"
fi
exit $(( failures > 0 ))
