#!/usr/bin/env bash
# The ratio table of issue 6: runs the criterion benches (benches/codec.rs,
# benches/chat.rs) and prints, per target, our rate, the contender's, their
# ratio, the target and whether it is met, as a Markdown table.
#
#   scripts/bench-table.sh            # cargo bench, then the table
#   scripts/bench-table.sh --no-run   # the table of the last run's results
#
# Results are read from $CARGO_TARGET_DIR/criterion (default target/criterion),
# each bench's new/sample.json. Ratios are of rates (the contender's time over
# ours), except the 16 MiB row: a ratio of our own times, 1 KiB reads over one
# read. Each ratio is given twice: of the median times, and of the fastest
# samples (the times least disturbed by other work on a shared machine). A
# target is "met" when both meet it, "missed" when neither does, and "split"
# otherwise. A second table gives the TCP rows' paired rounds (benches/chat.rs
# runs them before criterion's groups): each round times ours and the
# contender back to back, and the figure is the median of the rounds' ratios.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

paired="$target_dir/criterion/paired.txt"
if [[ "${1:-}" != "--no-run" ]]; then
    mkdir -p "$target_dir/criterion"
    cargo bench --bench codec --bench chat | tee /dev/stderr | { grep '^paired ' || true; } >"$paired.new"
    mv "$paired.new" "$paired"
fi

python3 - "$target_dir/criterion" "$paired" <<'EOF'
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
paired_results = Path(sys.argv[2])

# (case, group, ours, contender, kind, target); kind "rate": contender time /
# our time, at least the target; kind "time": our first time / our second,
# at most the target; kind "info": no target, shown for reference.
ROWS = [
    row
    for case, group in [("64-byte lines `\\r\\n`", "lines64_crlf"), ("64-byte lines `\\n`", "lines64_lf")]
    for row in [
        (case, group, "ours", "LinesCodec", "rate", 2.0),
        (case, group, "ours", "AnyDelimiterCodec", "rate", 1.5),
        (case, group, "floor", "LinesCodec", "info", None),
    ]
] + [
    ("1 MiB messages `\\r\\n\\r\\n`", "mib_crlfcrlf", "whole", "memmem_scan", "rate", 0.9),
    ("1 MiB messages `\\r\\n\\r\\n`", "mib_crlfcrlf", "streaming", "memmem_scan", "rate", 0.9),
    ("1 MiB messages `\\r\\n\\r\\n`", "mib_crlfcrlf", "memmem_scan", "memmem_in_place", "info", None),
    ("256-byte messages, 4-byte length", "length_prefixed256", "ours", "LengthDelimitedCodec", "rate", 1.2),
    ("16 MiB message, 1 KiB reads / one read", "big16mib", "whole_1k_reads", "whole_one_read", "time", 2.5),
    ("16 MiB message, 1 KiB reads / one read", "big16mib", "streaming_1k_reads", "streaming_one_read", "time", 2.5),
] + [
    (case + per, group + suffix, ours, contender, kind, target)
    for per, suffix in [("", ""), (", per CPU-second", "_cpu")]
    for case, group, ours, contender, kind, target in [
        ("`Producer::from_reader` over TCP", "reader_tcp", "ours", "tokio_io_copy", "rate", 0.9),
        ("64 KiB `Bytes` pushed over TCP", "push_tcp", "ours", "Framed_BytesCodec", "rate", 1.2),
        ("64 KiB `Bytes` pushed over TCP", "push_tcp", "ours_out1m", "Framed_BytesCodec", "info", None),
        ("line echo round trips over TCP", "echo_tcp", "ours", "Framed_LinesCodec", "rate", 1.0),
    ]
]


def load(group, bench):
    """(median, fastest) time of one iteration in ns, and the throughput."""
    directory = root / group / bench / "new"
    try:
        estimates = json.loads((directory / "estimates.json").read_text())
        sample = json.loads((directory / "sample.json").read_text())
        benchmark = json.loads((directory / "benchmark.json").read_text())
    except FileNotFoundError:
        return None
    fastest = min(time / iterations for time, iterations in zip(sample["times"], sample["iters"]))
    median = estimates["median"]["point_estimate"]
    return median, fastest, benchmark.get("throughput") or {}


def rate(nanoseconds, throughput):
    """A rate, in the bench's throughput unit per second."""
    for kind, step, units in [
        ("Bytes", 1024, ("B/s", "KiB/s", "MiB/s", "GiB/s")),
        ("Elements", 1000, ("/s", "K/s", "M/s", "G/s")),
    ]:
        if kind in throughput:
            value = throughput[kind] * 1e9 / nanoseconds
            for unit in units:
                if value < step or unit == units[-1]:
                    return f"{value:.3g} {unit}"
                value /= step
    return f"{nanoseconds / 1e6:.3g} ms"


print("| case | ours (median) | contender (median) | ratio of medians | ratio of fastest | target | |")
print("|---|---|---|---|---|---|---|")
missing = []
for case, group, ours_name, other_name, kind, target in ROWS:
    ours, other = load(group, ours_name), load(group, other_name)
    if ours is None or other is None:
        missing.append(f"{group}/{ours_name if ours is None else other_name}")
        continue
    if kind == "time":
        ratios = [ours[i] / other[i] for i in (0, 1)]
        ours_cell = f"{ours_name} {ours[0] / 1e6:.3g} ms"
        other_cell = f"{other_name} {other[0] / 1e6:.3g} ms"
        target_cell = f"≤ {target}"
        met = [ratio <= target for ratio in ratios]
    else:
        ratios = [other[i] / ours[i] for i in (0, 1)]
        ours_cell = f"{ours_name} {rate(ours[0], ours[2])}"
        other_cell = f"{other_name} {rate(other[0], other[2])}"
        target_cell = "(reference)" if kind == "info" else f"≥ {target}x"
        met = [kind == "info" or ratio >= target for ratio in ratios]
    if kind == "info":
        verdict = ""
    else:
        verdict = "met" if all(met) else "**missed**" if not any(met) else "split"
    print(
        f"| {case} | {ours_cell} | {other_cell} | {ratios[0]:.2f}x | {ratios[1]:.2f}x "
        f"| {target_cell} | {verdict} |"
    )

# The paired rounds of benches/chat.rs: the median of the rounds' ratios
# (the contender's time over ours), and the lowest and highest.
PAIRED = {
    "paired_reader_tcp": ("`Producer::from_reader` over TCP", 0.9),
    "paired_push_tcp": ("64 KiB `Bytes` pushed over TCP", 1.2),
    "paired_echo_tcp": ("line echo round trips over TCP", 1.0),
}
print()
print("| case, paired rounds | ours | contender | median ratio | lowest, highest | rounds | target | |")
print("|---|---|---|---|---|---|---|---|")
results = paired_results.read_text().split("\n") if paired_results.exists() else []
found = set()
for line in filter(None, results):
    _, group, ours_name, other_name, median, lowest, highest, rounds = line.split()
    case, target = PAIRED[group]
    found.add(group)
    verdict = "met" if float(median) >= target else "**missed**"
    print(
        f"| {case} | {ours_name} | {other_name} | {float(median):.2f}x "
        f"| {float(lowest):.2f}x, {float(highest):.2f}x | {rounds} | ≥ {target}x | {verdict} |"
    )
missing += sorted(set(PAIRED) - found)
if missing:
    print(f"\nno results for: {', '.join(missing)}", file=sys.stderr)
    sys.exit(1)
EOF
