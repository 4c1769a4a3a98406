#!/usr/bin/env bash
# Fuzzes the TerminatorCodec with cargo-fuzz (libFuzzer) for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]        # default 60 (or $FUZZ_SECONDS), split between the targets
#   FUZZ_TARGETS="decode" scripts/fuzz.sh 600
#
# Targets (fuzz/fuzz_targets/):
#   decode  streaming, whole-frame and one-shot decoding agree with a model;
#           every input byte comes out exactly once
#   limit   whole-frame mode with a small max_frame_length: FrameTooLong once per
#           overlong message, decoding resumes, memory within the limit
#
# The toolchain here is stable only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly flags (-Zsanitizer=address and friends) to the stable compiler.
# cargo-fuzz is installed from crates.io when missing. The committed seed
# corpus (fuzz/corpus/<target>/) is read but not written: new inputs go to
# fuzz/target/corpus/<target>/ (git-ignored). A crash fails the script and
# leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail

cd "$(dirname "$0")/.."

total=${1:-${FUZZ_SECONDS:-60}}
targets=${FUZZ_TARGETS:-"decode limit"}
read -r -a target_list <<<"$targets"
per_target=$(( total / ${#target_list[@]} ))
(( per_target >= 1 )) || per_target=1

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz
fi

# Build first, so that the time given is spent fuzzing.
cargo fuzz build >&2

status=0
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
        echo "fuzz.sh: $target: ${runs:-?} executions in ${per_target}s, no failure"
    else
        status=1
        echo "fuzz.sh: $target FAILED; the end of its log ($log):"
        tail -40 "$log"
    fi
done
exit "$status"
