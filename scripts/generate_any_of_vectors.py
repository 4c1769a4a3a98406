#!/usr/bin/env python3
"""Generate tests/data/any_of_vectors.txt: vectors for Terminator::any_of.

The oracle is the rule of API.md ("Several delimiters", "A delimiter that may
begin before the message") written as plainly as possible and run over the
whole input at once, with no reads, buffers or streaming in it:

* a message ends at the delimiter that starts earliest; of several that start
  at the same byte the longest wins; the frame excludes the delimiter, and
  the next message starts right after it;
* empty delimiters are dropped; with none left nothing ever ends a message;
* the first message may be searched as if preceded by some bytes (the codec's
  set_terminator_after): a delimiter must end inside the message (at least
  one of its bytes in the input), and one that starts in the preceding bytes
  starts earliest of all; the messages after it are searched plainly;
* at the end of input the unterminated rest is left over (the codec hands it
  out as one Frame::Partial when it is not empty).

The read splits are only recorded: the Rust test replays each of them (and
one-byte reads) in whole-frame and streaming mode and derives the streaming
expectation from the whole-input one.

Run from the crate root (the output is committed; Rust never runs Python):

    python3 scripts/generate_any_of_vectors.py

Format (one record per line, fields separated by single spaces; every byte
string is written ``x`` followed by its lowercase hex, so ``x`` alone is the
empty string):

    # comment
    case <name>
    set <bytes>*        the delimiters given to any_of, in order: duplicates
                        and empty ones included, as a user might pass them
    after <bytes>       the preceding bytes of set_terminator_after; empty
                        means a plain set_terminator
    input <bytes>
    reads <size>*       one line per recorded split: the sizes of the reads,
                        in order, adding up to the input's length; there may
                        be several such lines
    msgs <bytes>*       the messages, in order
    matched <bytes>*    the delimiter that ended each message (of one begun
                        in the preceding bytes, its part in the input)
    left <bytes>        the unterminated rest
    end
    count <cases>       last line: the total, checked by the test
"""

import os
import random

SEED = 20240612
RANDOM_CASES = 3000
RANDOM_AFTER_CASES = 1000
SPLITS_PER_CASE = 2
LONGEST_INPUT = 120


def earliest_match(delimiters, text, context_length):
    """(start, delimiter) of the match in `text` that starts earliest, the
    longest at a tie, among those ending past `context_length`; or None."""
    for start in range(len(text)):
        here = [
            d
            for d in delimiters
            if text.startswith(d, start) and start + len(d) > context_length
        ]
        if here:
            return start, max(here, key=len)
    return None


def frame(delimiters, data, preceding=b""):
    """The rule over the whole input: ([(message, delimiter)], left)."""
    delimiters = [d for d in delimiters if d]
    messages = []
    position = 0
    context = preceding
    while delimiters:
        found = earliest_match(delimiters, context + data[position:], len(context))
        if found is None:
            break
        start, delimiter = found
        # A delimiter that starts in the preceding bytes ends an empty
        # message, and only its part in the input is reported.
        length = max(start - len(context), 0)
        in_input = delimiter[max(len(context) - start, 0) :]
        messages.append((data[position : position + length], in_input))
        position += start + len(delimiter) - len(context)
        context = b""
    return messages, data[position:]


def check_every_byte_once(name, preceding, data, messages, left):
    """Messages, the delimiters' bytes in the input and the rest give back
    the input."""
    rebuilt = b"".join(m + d for m, d in messages) + left
    assert rebuilt == data, name


def encode_bytes(data):
    return "x" + data.hex()


def read_sizes(rng, length):
    """Random read sizes adding up to `length`; a few empty reads."""
    style = rng.random()
    if style < 0.1:
        return [length] if length else []
    sizes, total = [], 0
    while total < length:
        size = rng.choice([0, 1, 1, 2, 2, 3, 4, 5, 7, 11, 30])
        if size == 0 and rng.random() < 0.7:
            continue
        size = min(size, length - total)
        sizes.append(size)
        total += size
    return sizes


def hand_picked():
    """(name, delimiters, preceding, input)."""
    crlf_lf = [b"\r\n", b"\n"]
    all_endings = [b"\n", b"\r\n", b"\r"]
    smtp = [b"\r\n.\r\n"]
    return [
        ("lenient_lines", crlf_lf, b"", b"EHLO a\r\nMAIL\nRCPT\r\n\r\n\nrest"),
        ("lenient_lines_lone_cr", crlf_lf, b"", b"a\rb\r\r\nc\r"),
        ("every_line_ending", all_endings, b"", b"a\rb\nc\r\nd\n\re\r\r\n"),
        # "\r" at the very end: "\r\n" cannot follow any more, so "\r" ends it.
        ("cr_or_crlf_cr_at_end", [b"\r", b"\r\n"], b"", b"one\r\ntwo\r"),
        ("cr_or_crlf_listed_short_first", [b"\r", b"\r\n"], b"", b"a\r\nb\rc\r\n"),
        ("longest_at_a_tie", [b"ab", b"abcd", b"abc"], b"", b"xabcdyabczabw"),
        ("longer_candidate_fails", [b"abcd", b"ab"], b"", b"abcxab"),
        ("earlier_start_beats_longer", [b"bc", b"abcd"], b"", b"xabcy"),
        ("earlier_candidate_fails", [b"abc", b"b"], b"", b"abxab"),
        ("earlier_start_shorter", [b"b", b"bcde"], b"", b"abcde"),
        ("self_overlapping", [b"abab", b"ba"], b"", b"abababa"),
        ("self_overlapping_alone", [b"abab"], b"", b"abababab"),
        ("duplicates", [b"\n", b"\n", b"\r\n"], b"", b"a\nb\r\nc"),
        ("duplicates_only", [b"ab", b"ab"], b"", b"xabyab"),
        ("empty_delimiter_dropped", [b"", b";"], b"", b"a;b;;c"),
        ("only_empty_delimiters", [b"", b""], b"", b"no end\r\n"),
        ("no_delimiters", [], b"", b"no end"),
        ("one_delimiter", [b"\r\n"], b"", b"a\r\nb\r\n"),
        ("empty_input", crlf_lf, b"", b""),
        ("only_delimiters", crlf_lf, b"", b"\r\n\n\r\n"),
        ("smtp_data_empty", smtp, b"\r\n", b".\r\nQUIT\r\n"),
        ("smtp_data_body", smtp, b"\r\n", b"Subject: a\r\n\r\nhi\r\n.\r\n"),
        ("smtp_data_then_next_block", smtp, b"\r\n", b".\r\n.\r\nx\r\n.\r\n"),
        ("smtp_data_dot_stuffed", smtp, b"\r\n", b"..\r\n.\r\n"),
        ("smtp_data_split_preceding", smtp, b"\r\n", b"\n.\r\n.\r\n"),
        ("smtp_data_or_line", [b"\r\n.\r\n", b"\r\n"], b"\r\n", b".\r\nnext\r\n"),
        ("preceding_longer_than_delimiter", smtp, b"DATA\r\n", b".\r\nQUIT\r\n"),
        ("preceding_much_longer", [b"\n"], b"abcdefgh\n", b"x\ny"),
        ("delimiter_inside_preceding_ignored", [b"\n"], b"\n", b"x\ny"),
        ("delimiter_inside_preceding_ignored_crlf", [b"\r\n"], b"\r\n", b"\r\nx\r\n"),
        ("preceding_partial_match", [b"abc"], b"a", b"bcxabc"),
        ("preceding_wrong_start", [b"abc"], b"b", b"bcxabc"),
        ("preceding_longest_at_tie", [b"ab", b"abc"], b"a", b"bcx"),
        ("preceding_earlier_start", [b"abc", b"c"], b"ab", b"cx"),
        ("preceding_nothing_follows", smtp, b"\r\n", b".\r"),
        ("preceding_empty_input", smtp, b"\r\n", b""),
        ("preceding_no_delimiters", [b""], b"\r\n", b"abc"),
    ]


def random_delimiters(rng, alphabet):
    def word(low, high):
        return bytes(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    style = rng.random()
    if style < 0.15:
        return rng.choice(
            [
                [b"\r\n", b"\n"],
                [b"\n", b"\r\n", b"\r"],
                [b"\r", b"\r\n"],
                [b"\r\n.\r\n", b"\r\n"],
                [b"\r\n\r\n", b"\n\n"],
                [b"abab", b"ab"],
                [b"aab", b"ab", b"b"],
                [b"aa", b"aaa", b"a"],
                [b"abcab", b"cab"],
            ]
        )
    delimiters = [word(1, 5) for _ in range(rng.randint(1, 4))]
    if style < 0.35:
        # A prefix pair, as "\r" and "\r\n".
        base = rng.choice(delimiters)
        if len(base) < 5:
            delimiters.append(base + word(1, 5 - len(base)))
    elif style < 0.45:
        delimiters.append(rng.choice(delimiters))
    elif style < 0.55:
        # Self-overlapping: a word repeated, or its first byte again at the end.
        base = word(1, 2)
        delimiters.append(rng.choice([base + base, base + base[:1]])[:5])
    elif style < 0.58:
        delimiters.append(b"")
    rng.shuffle(delimiters)
    return delimiters[:5]


def random_input(rng, alphabet, delimiters, preceding):
    usable = [d for d in delimiters if d]
    pieces = []
    if preceding and usable and rng.random() < 0.4:
        # Complete a delimiter begun by the preceding bytes, if one can be.
        for delimiter in usable:
            for cut in range(1, len(delimiter)):
                if preceding.endswith(delimiter[:cut]):
                    pieces.append(delimiter[cut:])
                    break
    for _ in range(rng.randint(0, 14)):
        if usable and rng.random() < 0.4:
            pieces.append(rng.choice(usable))
        else:
            pieces.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 10))))
    return b"".join(pieces)[:LONGEST_INPUT]


def random_case(rng, name, with_preceding):
    alphabet = rng.choice([b"ab", b"abc", b"a", b"\r\n", b"\r\n.", b"xy\r\n", b"aab", b"01"])
    delimiters = random_delimiters(rng, alphabet)
    preceding = b""
    if with_preceding:
        usable = [d for d in delimiters if d] or [b"\r\n"]
        roll = rng.random()
        if roll < 0.5:
            # A proper prefix of one of the delimiters, the useful case.
            delimiter = rng.choice(usable)
            preceding = delimiter[: rng.randint(1, max(1, len(delimiter) - 1))]
        elif roll < 0.8:
            preceding = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        else:
            # Longer than every delimiter: only its tail can matter.
            preceding = bytes(rng.choice(alphabet) for _ in range(rng.randint(6, 9)))
    data = random_input(rng, alphabet, delimiters, preceding)
    return (name, delimiters, preceding, data)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(root, "tests", "data", "any_of_vectors.txt")
    rng = random.Random(SEED)

    cases = hand_picked()
    cases += [random_case(rng, "random_%04d" % i, False) for i in range(RANDOM_CASES)]
    cases += [random_case(rng, "after_%04d" % i, True) for i in range(RANDOM_AFTER_CASES)]
    lines = [
        "# Generated by scripts/generate_any_of_vectors.py: the any_of rule over whole inputs.",
        "# Do not edit: change the script and run it again. Format: see the script.",
    ]
    messages_total = 0
    for name, delimiters, preceding, data in cases:
        messages, left = frame(delimiters, data, preceding)
        check_every_byte_once(name, preceding, data, messages, left)
        messages_total += len(messages)
        lines.append("case " + name)
        lines.append(" ".join(["set"] + [encode_bytes(d) for d in delimiters]))
        lines.append("after " + encode_bytes(preceding))
        lines.append("input " + encode_bytes(data))
        for _ in range(SPLITS_PER_CASE):
            lines.append(" ".join(["reads"] + [str(s) for s in read_sizes(rng, len(data))]))
        lines.append(" ".join(["msgs"] + [encode_bytes(m) for m, _ in messages]))
        lines.append(" ".join(["matched"] + [encode_bytes(d) for _, d in messages]))
        lines.append("left " + encode_bytes(left))
        lines.append("end")
    lines.append("count %d" % len(cases))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", newline="\n") as out:
        out.write("\n".join(lines) + "\n")
    print(
        "%s: %d cases, %d messages, %d bytes"
        % (out_path, len(cases), messages_total, os.path.getsize(out_path))
    )


if __name__ == "__main__":
    main()
