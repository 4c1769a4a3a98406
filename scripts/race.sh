#!/usr/bin/env bash
# Races each protocol example against the server people would run instead,
# the two measured back to back in each round (ours, then theirs), and
# prints the median of the rounds' ratios:
#   redis      examples/redis.rs (one thread)  against redis-server 7:
#              redis-benchmark -t set,get -P 16 -c 50, requests/s and p50
#   http       examples/http_server            against examples/hyper_contender.rs
#              (both on tokio's multi-threaded runtime): wrk -t1 -c50 on a
#              small GET, requests/s and p50
#   smtp       the race of scripts/smtp-clients.sh, if it offers RACE_ONLY=1
#   memcached  the race of scripts/memcached-clients.sh, if it offers RACE_ONLY=1
# then a table: protocol, ours, theirs, ratio (ours / theirs, requests/s),
# latency ratio (ours / theirs, p50; below 1 is faster).
#
# Informational: no figure is checked unless MIN_RATIO or MAX_LATENCY_RATIO
# is set. Each check prints "ok" or "FAIL"; the script exits non-zero if any
# failed. Servers listen on free ports and are killed by PID at exit.
#
# Environment:
#   QUICK=1            one short round of each race: under a minute once built
#   ROUNDS             rounds of each race (default 5, or 1 with QUICK=1)
#   REDIS_REQUESTS     redis-benchmark -n (default 1000000, or 100000 with QUICK=1)
#   WRK_SECONDS        wrk -d (default 5, or 2 with QUICK=1)
#   MIN_RATIO          fail a race whose throughput ratio is below this
#   MAX_LATENCY_RATIO  fail a race whose p50 latency ratio is above this
#   CARGO_TARGET_DIR   where cargo builds (default ./target)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  ROUNDS="${ROUNDS:-1}"
  REDIS_REQUESTS="${REDIS_REQUESTS:-100000}"
  WRK_SECONDS="${WRK_SECONDS:-2}"
else
  ROUNDS="${ROUNDS:-5}"
  REDIS_REQUESTS="${REDIS_REQUESTS:-1000000}"
  WRK_SECONDS="${WRK_SECONDS:-5}"
fi
MIN_RATIO="${MIN_RATIO:-}"
MAX_LATENCY_RATIO="${MAX_LATENCY_RATIO:-}"

# --- clients -----------------------------------------------------------------
section "clients"
need_command redis-benchmark redis-tools
need_command redis-server redis-server
need_command wrk wrk
need_command python3 python3
need_command curl curl
install_needed_packages
redis-server --version
wrk --version 2>&1 | head -n 1 || true

# --- build -------------------------------------------------------------------
section "build (release)"
cargo build --release --example redis --example http_server --example hyper_contender
bin="${CARGO_TARGET_DIR:-target}/release/examples"

make_work_directory

# start_example NAME [ARGS...]: starts an example on port 0 and sets PORT.
start_example() {
  local name="$1"
  shift
  start_server "$name" "$work/$name.log" "$bin/$name" 0 "$@"
}

# averaged_median: the median of the numbers on standard input, one a line;
# of an even count, the mean of the middle two (lib.sh's median takes the
# lower of them).
averaged_median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else if (NR) print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The results, one line per race and round: RACE ROUND SIDE REQUESTS/S P50_MS.
: >"$work/results.txt"

# summarize RACE: "ours_rps ours_p50 theirs_rps theirs_p50 ratio latency_ratio",
# each the median over the rounds; the ratios are the medians of the rounds'
# ratios (each round's two runs met the same load from the rest of the machine).
summarize() {
  local race="$1" side
  for side in ours theirs; do
    for column in 4 5; do
      awk -v r="$race" -v s="$side" -v c="$column" '$1 == r && $3 == s { print $c }' "$work/results.txt" | averaged_median
    done
  done | tr '\n' ' '
  for column in 4 5; do
    awk -v r="$race" -v c="$column" '
      $1 == r && $3 == "ours" { ours[$2] = $c }
      $1 == r && $3 == "theirs" && ($2 in ours) && $c > 0 { printf "%.4f\n", ours[$2] / $c }' "$work/results.txt" | averaged_median
  done | tr '\n' ' '
  echo
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- redis -------------------------------------------------------------------
section "redis: examples/redis.rs against redis-server"
start_example redis
redis_ours="$PORT"
start_redis_server
redis_theirs="$PORT"
REDIS_BENCH=(-t set,get -n "$REDIS_REQUESTS" -P 16 -c 50 --csv)
echo "redis-benchmark ${REDIS_BENCH[*]}; examples/redis.rs on one thread; $ROUNDS round(s)"
# redis_round ROUND SIDE PORT: one redis-benchmark run, its SET and GET lines
# added to the results.
redis_round() {
  local round="$1" side="$2" port="$3" out
  out="$(timeout 600 redis-benchmark -p "$port" "${REDIS_BENCH[@]}" 2>&1)" || true
  # "SET","412371.00","1.2","0.3","1.071",...: test, requests/s, avg, min, p50.
  tr -d '"' <<<"$out" | awk -F, -v r="$round" -v s="$side" \
    '$1 == "SET" || $1 == "GET" { printf "redis-%s %s %s %s %s\n", $1, r, s, $2, $5 }' |
    tee -a "$work/results.txt" | awk '{ printf "  round %s %-6s %-4s %12.0f requests/s  p50 %s ms\n", $2, $3, substr($1, 7), $4, $5 }'
}
for round in $(seq "$ROUNDS"); do
  redis_round "$round" ours "$redis_ours"
  redis_round "$round" theirs "$redis_theirs"
done
for test in SET GET; do
  check "redis $test: a figure from every run" \
    [ "$(grep -c "^redis-$test " "$work/results.txt")" = $((2 * ROUNDS)) ]
done

# --- http --------------------------------------------------------------------
section "http: examples/http_server against examples/hyper_contender"
start_example http_server
http_ours="$PORT"
start_example hyper_contender
http_theirs="$PORT"
check "the same reply to the same GET, but for the case of field names" \
  [ "$(curl -s "http://127.0.0.1:$http_ours/" | sed "s/$http_ours/PORT/" | tr 'A-Z' 'a-z')" = \
  "$(curl -s "http://127.0.0.1:$http_theirs/" | sed "s/$http_theirs/PORT/" | tr 'A-Z' 'a-z')" ]
WRK=(-t1 -c50 "-d${WRK_SECONDS}s" --latency)
echo "wrk ${WRK[*]} http://127.0.0.1:PORT/; $ROUNDS round(s)"
# http_round ROUND SIDE PORT: one wrk run, added to the results.
http_round() {
  local round="$1" side="$2" port="$3" out
  out="$(timeout $((WRK_SECONDS + 60)) wrk "${WRK[@]}" "http://127.0.0.1:$port/" 2>&1)" || true
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    fail "http round $round $side: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ')"
  fi
  # "Requests/sec: 24691.23" and, under "Latency Distribution", "50% 394.00us".
  awk -v r="$round" -v s="$side" '
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "50%" {
      v = $2 + 0
      if ($2 ~ /us$/) v /= 1000; else if ($2 ~ /ms$/) v += 0; else if ($2 ~ /m$/) v *= 60000; else if ($2 ~ /s$/) v *= 1000
      p50 = v
    }
    END { if (rps != "" && p50 != "") printf "http %s %s %s %.3f\n", r, s, rps, p50 }' <<<"$out" |
    tee -a "$work/results.txt" | awk '{ printf "  round %s %-6s %12.0f requests/s  p50 %s ms\n", $2, $3, $4, $5 }'
}
for round in $(seq "$ROUNDS"); do
  http_round "$round" ours "$http_ours"
  http_round "$round" theirs "$http_theirs"
done
check "http: a figure from every run" [ "$(grep -c '^http ' "$work/results.txt")" = $((2 * ROUNDS)) ]

# --- smtp and memcached: the races of their own scripts ------------------------
# other_race NAME SCRIPT: runs SCRIPT's race alone (RACE_ONLY=1) if it offers
# one, and adds the figures of its "..., ratio N.NNx" line to the table.
other=()
other_race() {
  local name="$1" script="$2" out line
  section "$name: the race of $script"
  if ! grep -q 'RACE_ONLY' "$script"; then
    echo "$script has no RACE_ONLY mode: run it whole for its race"
    other+=("$name|(no RACE_ONLY mode in $script)|||")
    return
  fi
  out="$(RACE_ONLY=1 QUICK="$QUICK" bash "$script" 2>&1)" || fail "$name: $script failed"
  sed 's/^/  /' <<<"$out" | grep -E 'round|ratio|FAIL' || true
  line="$(grep -E '^ok .*ratio [0-9.]+x' <<<"$out" | head -n 1 || true)"
  if [ -z "$line" ]; then
    fail "$name: no ratio in the output of $script"
    other+=("$name|(no figure)|||")
    return
  fi
  # "examples/x.rs 1234 messages/s, y 2345 messages/s (medians), ratio 0.53x".
  local figures ratio
  figures="$(grep -oE '[0-9.]+ (messages/s|TPS|requests/s)' <<<"$line" | head -n 2 | tr '\n' '|')"
  ratio="$(grep -oE 'ratio [0-9.]+x' <<<"$line" | grep -oE '[0-9.]+')"
  if [ "$(tr -cd '|' <<<"$figures")" != "||" ]; then
    fail "$name: not two figures in: $line"
    figures="(no figures)||"
  fi
  other+=("$name|${figures%|}|$ratio|")
}
other_race smtp scripts/smtp-clients.sh
other_race memcached scripts/memcached-clients.sh

# --- the table -----------------------------------------------------------------
section "summary"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "redis: redis-benchmark ${REDIS_BENCH[*]}; http: wrk ${WRK[*]}; medians of $ROUNDS round(s)"
printf '%-10s %-28s %-40s %7s %14s\n' protocol ours theirs ratio "latency ratio"
row() {
  local race="$1" label="$2" theirs_name="$3" figures
  read -r ours_rps ours_p50 theirs_rps theirs_p50 ratio latency_ratio <<<"$(summarize "$race")"
  if [ -z "${latency_ratio:-}" ]; then
    fail "$label: no figures"
    return
  fi
  printf '%-10s %-28s %-40s %6.2fx %13.2fx\n' "$label" \
    "$(printf '%.0f/s p50 %.3f ms' "$ours_rps" "$ours_p50")" \
    "$(printf '%s %.0f/s p50 %.3f ms' "$theirs_name" "$theirs_rps" "$theirs_p50")" \
    "$ratio" "$latency_ratio"
  echo "$race $ratio $latency_ratio" >>"$work/ratios.txt"
}
: >"$work/ratios.txt"
row redis-SET "redis SET" redis-server
row redis-GET "redis GET" redis-server
row http http hyper
for entry in "${other[@]}"; do
  IFS='|' read -r name ours theirs ratio _ <<<"$entry"
  if [ -n "$ratio" ]; then
    printf '%-10s %-28s %-40s %6.2fx %14s\n' "$name" "$ours" "$theirs" "$ratio" "-"
    echo "$name $ratio -" >>"$work/ratios.txt"
  else
    printf '%-10s %s\n' "$name" "$ours"
  fi
done

# The targets, only when asked for.
while read -r label ratio latency_ratio; do
  if [ -n "$MIN_RATIO" ]; then
    check "$label: throughput ratio $(printf '%.2f' "$ratio")x, target at least ${MIN_RATIO}x" \
      awk -v x="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(x >= m) }'
  fi
  if [ -n "$MAX_LATENCY_RATIO" ] && [ "$latency_ratio" != - ]; then
    check "$label: p50 latency ratio $(printf '%.2f' "$latency_ratio")x, target at most ${MAX_LATENCY_RATIO}x" \
      awk -v x="$latency_ratio" -v m="$MAX_LATENCY_RATIO" 'BEGIN { exit !(x <= m) }'
  fi
done <"$work/ratios.txt"

exit_with_summary
