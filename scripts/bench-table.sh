#!/usr/bin/env bash
# The ratio tables: runs the criterion benches (benches/codec.rs,
# benches/chat.rs) and prints their results as Markdown tables.
#
#   scripts/bench-table.sh            # cargo bench, then the tables
#   scripts/bench-table.sh --no-run   # the tables of the last run's results
#
# Results are read from $CARGO_TARGET_DIR/criterion (default target/criterion),
# each bench's new/sample.json. Every ratio is of rates, ours over theirs
# (their time over ours): above 1, ours is faster. Each is given twice, of
# the median times and of the fastest samples (the times least disturbed by
# other work on a shared machine), as "medians / fastest" in the codec
# table. A target is "met" when both meet it, "missed" when neither does,
# and "split" otherwise.
#
# The codec table gives, for each row, ours against its floor (the bare
# search and `split_to().freeze()` any decoder of those frames must do) and
# against the contender (tokio-util's codec where there is one), all three
# measured in the same run. The TCP table gives ours against the
# contender, by the wall clock and per CPU-second. A third table gives the
# paired rounds that benches/codec.rs and benches/chat.rs run before
# criterion's groups, for the rows held to a target: each round times ours
# and the other back to back, and the figure is the median of the rounds'
# ratios.
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

# The codec rows: (case, group, ours, floor, contender, targets). The
# contender may be None. `targets` maps "floor" and "contender" to the
# least ratio of rates (ours over theirs) that meets it; a row without
# targets is shown for reference.
AHEAD = {"floor": 0.95, "contender": 1.0}
LENIENT = '`any_of(["\\r\\n", "\\n"])`'
CODEC_ROWS = [
    row
    for case, group in [("64-byte lines `\\r\\n`", "lines64_crlf"), ("64-byte lines `\\n`", "lines64_lf")]
    for row in [
        (case, group, "ours", "floor", "LinesCodec", AHEAD),
        (case, group, "ours", "floor", "AnyDelimiterCodec", AHEAD),
    ]
] + [
    # Lenient lines: ahead of LinesCodec, and at least 0.9x our single
    # delimiter on the same bytes.
    (f"64-byte lines, mixed endings, {LENIENT}", "lines64_mixed", "ours", "floor", "LinesCodec", {"contender": 1.0}),
    (f"64-byte lines, mixed endings, {LENIENT} / `\\n`", "lines64_mixed", "ours", "floor", "ours_newline", {"contender": 0.9}),
    (f"64-byte lines, mixed endings, {LENIENT} / bare Aho-Corasick", "lines64_mixed", "ours", "floor", "aho_corasick_scan", {}),
    ("1 MiB messages `\\r\\n\\r\\n`", "mib_crlfcrlf", "whole", "memmem_scan", None, {"floor": 0.95}),
    ("1 MiB messages `\\r\\n\\r\\n`", "mib_crlfcrlf", "streaming", "memmem_scan", None, {"floor": 0.95}),
    ("1 MiB messages `\\r\\n\\r\\n`, the bare scan", "mib_crlfcrlf", "memmem_scan", "memmem_in_place", None, {}),
    # Sets of multi-byte delimiters: at least 0.5x a memmem scan for one of
    # them; the bare Aho-Corasick scan of the same set for reference.
    ("1 MiB messages, 3 delimiters, 2 first bytes", "mib_any_of3", "whole", "memmem_scan", "aho_corasick_scan", {"floor": 0.5}),
    ("1 MiB messages, 3 delimiters, 2 first bytes", "mib_any_of3", "streaming", "memmem_scan", "aho_corasick_scan", {"floor": 0.5}),
    ("1 MiB messages, 5 delimiters, 4 first bytes", "mib_any_of5", "whole", "memmem_scan", "aho_corasick_scan", {}),
    ("1 MiB messages, 5 delimiters, 4 first bytes", "mib_any_of5", "streaming", "memmem_scan", "aho_corasick_scan", {}),
    ("256-byte messages, 4-byte length", "length_prefixed256", "ours", "floor", "LengthDelimitedCodec", AHEAD),
    # Linearity: in 1 KiB reads at least 0.4x the rate in one read (at most
    # 2.5x the time).
    ("16 MiB message, 1 KiB reads / one read", "big16mib", "whole_1k_reads", "floor_1k_reads", "whole_one_read", {"contender": 0.4}),
    ("16 MiB message, 1 KiB reads / one read", "big16mib", "streaming_1k_reads", "floor_1k_reads", "streaming_one_read", {"contender": 0.4}),
    ("16 MiB message, one read", "big16mib", "whole_one_read", "floor_one_read", None, {}),
    ("16 MiB message, one read", "big16mib", "streaming_one_read", "floor_one_read", None, {}),
    # Pathological inputs, each against its floor.
    ("`\\r` flood, `\\r\\n`", "flood_cr_crlf", "whole", "floor", "LinesCodec", {}),
    ("`\\r` flood, `\\r\\n`", "flood_cr_crlf", "streaming", "floor", "LinesCodec", {}),
    ("`\\r` flood, `\\r\\n`, the bare memmem scan", "flood_cr_crlf", "memmem_scan", "floor", None, {}),
    (f"`\\r` flood, {LENIENT}", "flood_cr_lenient", "whole", "floor", "LinesCodec", {}),
    (f"`\\r` flood, {LENIENT}", "flood_cr_lenient", "streaming", "floor", "LinesCodec", {}),
    ("`\\r` flood, 3 delimiters", "flood_cr_any_of3", "whole", "memmem_scan", "aho_corasick_scan", {}),
    ("`\\r` flood, 3 delimiters", "flood_cr_any_of3", "streaming", "memmem_scan", "aho_corasick_scan", {}),
    ("one-byte reads, `\\r\\n`", "byte_reads_crlf", "whole", "floor", "LinesCodec", {}),
    ("one-byte reads, `\\r\\n`", "byte_reads_crlf", "streaming", "floor", "LinesCodec", {}),
    (f"one-byte reads, {LENIENT}", "byte_reads_lenient", "whole", "floor", "LinesCodec", {}),
    (f"one-byte reads, {LENIENT}", "byte_reads_lenient", "streaming", "floor", "LinesCodec", {}),
    ("one-byte reads, 3 delimiters", "byte_reads_any_of3", "whole", "memmem_scan", None, {}),
    ("one-byte reads, 3 delimiters", "byte_reads_any_of3", "streaming", "memmem_scan", None, {}),
    ("`abab` in `ababab…`", "overlap_abab", "whole", "memmem_scan", None, {}),
    ("`abab` in `ababab…`", "overlap_abab", "streaming", "memmem_scan", None, {}),
]

# The TCP rows: (case, group, ours, contender, target); a target of None:
# shown for reference.
TCP_ROWS = [
    (case + per, group + suffix, ours, contender, target)
    for per, suffix in [("", ""), (", per CPU-second", "_cpu")]
    for case, group, ours, contender, target in [
        ("`Producer::from_reader` over TCP", "reader_tcp", "ours", "tokio_io_copy", 0.9),
        ("64 KiB `Bytes` pushed over TCP", "push_tcp", "ours", "Framed_BytesCodec", 1.2),
        ("64 KiB `Bytes` pushed over TCP", "push_tcp", "ours_out1m", "Framed_BytesCodec", None),
        ("line echo round trips over TCP", "echo_tcp", "ours", "Framed_LinesCodec", 1.0),
    ]
]

missing = set()


def load(group, bench):
    """(median, fastest) time of one iteration in ns, and the throughput;
    None, noted as missing, when the bench has no results."""
    directory = root / group / bench / "new"
    try:
        estimates = json.loads((directory / "estimates.json").read_text())
        sample = json.loads((directory / "sample.json").read_text())
        benchmark = json.loads((directory / "benchmark.json").read_text())
    except FileNotFoundError:
        missing.add(f"{group}/{bench}")
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


def named_rate(name, result):
    return f"{name} {rate(result[0], result[2])}"


def ratios(ours, theirs):
    """Ours over theirs, as rates: of the medians, and of the fastest samples."""
    return [theirs[i] / ours[i] for i in (0, 1)]


def ratio(value):
    """Two decimals; two significant digits below 0.1, where two decimals
    would read 0.00x."""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def both(values):
    return f"{ratio(values[0])} / {ratio(values[1])}"


def verdict(values, target):
    met = [value >= target for value in values]
    return "met" if all(met) else "**missed**" if not any(met) else "split"


print("| case | ours | floor | ours / floor | contender | ours / contender | target | |")
print("|---|---|---|---|---|---|---|---|")
for case, group, ours_name, floor_name, other_name, targets in CODEC_ROWS:
    ours, floor = load(group, ours_name), load(group, floor_name)
    other = load(group, other_name) if other_name else None
    if ours is None or floor is None or (other_name and other is None):
        continue
    against = {"floor": ratios(ours, floor)}
    other_cells = "| — | — "
    if other is not None:
        against["contender"] = ratios(ours, other)
        other_cells = f"| {named_rate(other_name, other)} | {both(against['contender'])} "
    target_cell = "; ".join(f"≥ {target}x {kind}" for kind, target in targets.items()) or "(reference)"
    verdicts = "; ".join(verdict(against[kind], target) for kind, target in targets.items())
    print(
        f"| {case} | {named_rate(ours_name, ours)} | {named_rate(floor_name, floor)} "
        f"| {both(against['floor'])} {other_cells}| {target_cell} | {verdicts} |"
    )

print()
print("| case | ours (median) | contender (median) | ratio of medians | ratio of fastest | target | |")
print("|---|---|---|---|---|---|---|")
for case, group, ours_name, other_name, target in TCP_ROWS:
    ours, other = load(group, ours_name), load(group, other_name)
    if ours is None or other is None:
        continue
    values = ratios(ours, other)
    target_cell = "(reference)" if target is None else f"≥ {target}x"
    verdict_cell = "" if target is None else verdict(values, target)
    print(
        f"| {case} | {named_rate(ours_name, ours)} | {named_rate(other_name, other)} "
        f"| {ratio(values[0])} | {ratio(values[1])} | {target_cell} | {verdict_cell} |"
    )

# The paired rounds of benches/codec.rs and benches/chat.rs: the median of
# the rounds' ratios (the contender's time over ours), and the lowest and
# highest. Keyed by group and contender.
PAIRED = {
    ("paired_length_prefixed256", "floor"): ("256-byte messages, 4-byte length, against the floor", 0.95),
    ("paired_length_prefixed256", "LengthDelimitedCodec"): ("256-byte messages, 4-byte length", 1.0),
    ("paired_lines64_crlf", "floor"): ("64-byte lines `\\r\\n`, against the floor", 0.95),
    ("paired_lines64_lf", "floor"): ("64-byte lines `\\n`, against the floor", 0.95),
    ("paired_lines64_mixed", "ours_newline"): (f"64-byte lines, mixed endings, {LENIENT} / `\\n`", 0.9),
    ("paired_reader_tcp", "tokio_io_copy"): ("`Producer::from_reader` over TCP", 0.9),
    ("paired_push_tcp", "Framed_BytesCodec"): ("64 KiB `Bytes` pushed over TCP", 1.2),
    ("paired_echo_tcp", "Framed_LinesCodec"): ("line echo round trips over TCP", 1.0),
}
print()
print("| case, paired rounds | ours | contender | median ratio | lowest, highest | rounds | target | |")
print("|---|---|---|---|---|---|---|---|")
results = paired_results.read_text().split("\n") if paired_results.exists() else []
found = set()
for line in filter(None, results):
    _, group, ours_name, other_name, median, lowest, highest, rounds = line.split()
    case, target = PAIRED[(group, other_name)]
    found.add((group, other_name))
    verdict_cell = "met" if float(median) >= target else "**missed**"
    print(
        f"| {case} | {ours_name} | {other_name} | {float(median):.2f}x "
        f"| {float(lowest):.2f}x, {float(highest):.2f}x | {rounds} | ≥ {target}x | {verdict_cell} |"
    )
missing |= {f"{group} against {contender}" for group, contender in set(PAIRED) - found}
if missing:
    print(f"\nno results for: {', '.join(sorted(missing))}", file=sys.stderr)
    sys.exit(1)
EOF
