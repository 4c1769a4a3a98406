#!/usr/bin/env bash
# Fuzzes the TerminatorCodec and the Chat with cargo-fuzz (libFuzzer), each
# target for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]        # per target; default $FUZZ_SECONDS, else 60
#   FUZZ_TARGETS="chat" scripts/fuzz.sh 600
#
# Targets (fuzz/fuzz_targets/):
#   decode  streaming, whole-frame and one-shot decoding agree with a model;
#           every input byte comes out exactly once
#   limit   whole-frame mode with a small max_frame_length: FrameTooLong once per
#           overlong message, decoding resumes, memory within the limit
#   chat    a Chat over an in-memory IO that cuts reads and writes, goes Pending
#           and fails where told, driven by a reading and a writing task and by
#           operations between polls (every producer, terminators, any_of,
#           set_terminator_after, streaming, discards, close, upgrade, parts):
#           frames, output and the end of the stream agree with a model; no
#           lost wake-up, no poll loop
#
# The toolchain here is stable only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly flags (-Zsanitizer=address and friends) to the stable compiler.
# cargo-fuzz is installed from crates.io when missing. Before fuzzing, the
# harness's own tests run (seeds, the committed corpus replayed, random inputs).
# The committed seed corpus (fuzz/corpus/<target>/) is read but not written:
# new inputs go to fuzz/target/corpus/<target>/ (git-ignored). A crash fails the
# script and leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
# and, once understood, keep it in fuzz/corpus/<target>/ as a regression.
set -euo pipefail

cd "$(dirname "$0")/.."

per_target=${1:-${FUZZ_SECONDS:-60}}
targets=${FUZZ_TARGETS:-"decode limit chat"}
read -r -a target_list <<<"$targets"
(( per_target >= 1 )) || per_target=1

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz
fi

status=0
mkdir -p fuzz/target
if (cd fuzz && cargo test --lib --quiet) >fuzz/target/harness-tests.log 2>&1; then
    echo "ok   harness tests (seeds, corpus replayed, random inputs)"
else
    status=1
    echo "FAIL harness tests; the end of fuzz/target/harness-tests.log:"
    tail -40 fuzz/target/harness-tests.log
fi

# Build first, so that the time given is spent fuzzing.
cargo fuzz build >&2

for target in "${target_list[@]}"; do
    work="fuzz/target/corpus/$target"
    mkdir -p "$work"
    log="fuzz/target/fuzz-$target.log"
    echo "fuzz.sh: $target for ${per_target}s" >&2
    # -timeout: a single input taking 10 s is a hang, and fails the run.
    if cargo fuzz run "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$per_target" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "ok   fuzz $target: ${runs:-?} executions in ${per_target}s, ${coverage:-cov: ?}, no failure"
    else
        status=1
        echo "FAIL fuzz $target; the end of its log ($log):"
        tail -60 "$log"
    fi
done
exit "$status"
