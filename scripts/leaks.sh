#!/usr/bin/env bash
# Leaks: the Chat's tests (tests/chat.rs, and tests/two_tasks.rs at a small
# count) under valgrind's memcheck with --leak-check=full. No block may be
# definitely lost, and no lost block (definitely or possibly) may have been
# allocated by asynchat: a loss record whose stack names `asynchat::` fails.
# What the test harness and the runtimes keep until exit (thread-locals,
# still reachable) is reported, not checked.
#
#   scripts/leaks.sh
#   TWO_TASKS_CONVERSATIONS=5000 scripts/leaks.sh
#
# Environment: TWO_TASKS_CONVERSATIONS (default 1000 under valgrind),
# CARGO_TARGET_DIR. valgrind is installed with apt-get when missing.
# Each test binary prints a line (ok or FAIL) with its leak summary; the
# script exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "installing valgrind" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq valgrind >/dev/null
fi
valgrind --version >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The test binaries, as cargo names them.
cargo test --test chat --test two_tasks --no-run 2>&1 | tee "$work/build.log" >&2
binary() {
    sed -n "s|.*Executable tests/$1.rs (\(.*\))|\1|p" "$work/build.log" | tail -1
}

failures=0
# check NAME BINARY: runs it under memcheck and judges its leak summary.
check() {
    local name=$1 binary=$2 log="$work/$1.valgrind" status=0
    TWO_TASKS_CONVERSATIONS=${TWO_TASKS_CONVERSATIONS:-1000} \
        valgrind --leak-check=full --show-leak-kinds=definite,possible \
        --errors-for-leak-kinds=definite --error-exitcode=3 --num-callers=40 \
        --log-file="$log" "$binary" --test-threads=1 >"$work/$name.out" 2>&1 || status=$?
    local tests summary ours
    tests=$(grep -m1 '^test result' "$work/$name.out" || echo "no test result")
    summary=$(sed -n 's/^==[0-9]*== *\(definitely lost\|indirectly lost\|possibly lost\|still reachable\): \(.*\)/\1 \2/p' "$log" | paste -sd ';' -)
    # Loss records (definite or possible) with one of asynchat's frames.
    ours=$(awk '
        / are (definitely|possibly) lost in loss record / { record = $0; inside = 1; next }
        inside && /^==[0-9]*== *$/ { if (record ~ /asynchat::/) count++; inside = 0; next }
        inside { record = record "\n" $0 }
        END { print count + 0 }' "$log")
    local line="$name: $tests; ${summary:-no leak summary}; $ours lost records of asynchat's"
    if (( status == 0 )) && [[ $tests == *" 0 failed"* ]] && (( ours == 0 )) && [[ -n $summary ]]; then
        printf 'ok   %s\n' "$line"
    else
        printf 'FAIL %s (exit %s)\n' "$line" "$status"
        grep -A30 ' are \(definitely\|possibly\) lost in loss record ' "$log" | head -80
        tail -20 "$work/$name.out"
        failures=$((failures + 1))
    fi
    grep -m1 'total heap usage' "$log" | sed 's/^==[0-9]*== */     /'
}

for name in chat two_tasks; do
    path=$(binary "$name")
    if [[ -z $path ]]; then
        printf 'FAIL %s: no test binary built\n' "$name"
        failures=$((failures + 1))
        continue
    fi
    check "$name" "$path"
done
exit $(( failures > 0 ))
