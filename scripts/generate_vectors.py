#!/usr/bin/env python3
"""Generate tests/data/vectors.txt: conformance vectors for TerminatorCodec.

The oracle is CPython's own ``asynchat`` module (deprecated, still shipped by
3.11): each case drives a real ``asynchat.async_chat`` through its real
``handle_read``, with ``recv`` overridden to return the next read of the case
instead of touching a socket. ``collect_incoming_data`` appends to the current
message; ``found_terminator`` records the message and applies the next
terminator of the case's schedule. When the schedule runs out nothing is set:
a delimiter stays in force, and a count has become 0, asynchat's "no
terminator" (the codec's ``Terminator::None``).

Run from the crate root (the output is committed; Rust never runs Python):

    python3 -W ignore scripts/generate_vectors.py

Format (one record per line, fields separated by single spaces; every byte
string is written ``x`` followed by its lowercase hex, so ``x`` alone is the
empty string; a terminator is ``d`` + hex for a delimiter, ``n`` + decimal for
a count, or ``none``):

    # comment
    case <name>
    init <terminator>
    sched <terminator>*         applied after the 1st, 2nd, ... message
    reads <bytes>*              what each recv returns, in order
    msgs <bytes>*               the messages found_terminator ended, in order
    left <bytes>                the unterminated rest: collected data of the
                                unfinished message + asynchat's ac_in_buffer
    end
    prefix <haystack> <needle> <asynchat.find_prefix_at_end(haystack, needle)>
    count <cases> <prefix lines>   last line: the totals, checked by the test
"""

import os
import random
import sys
import warnings

warnings.simplefilter("ignore")
import asynchat  # noqa: E402  (after the warning filter: it is deprecated)

SEED = 20240611
RANDOM_CASES = 3000
RANDOM_PREFIX_CASES = 500


class Oracle(asynchat.async_chat):
    """An async_chat with no socket: reads come from a list."""

    def __init__(self, initial, schedule, reads):
        super().__init__()  # sock=None: nothing is registered or connected
        self.pending_reads = list(reads)
        self.schedule = list(schedule)
        self.current = []
        self.messages = []
        self.set_terminator(initial)

    def recv(self, buffer_size):
        return self.pending_reads.pop(0)

    def collect_incoming_data(self, data):
        self.current.append(data)

    def found_terminator(self):
        self.messages.append(b"".join(self.current))
        self.current = []
        if self.schedule:
            self.set_terminator(self.schedule.pop(0))

    def run(self):
        while self.pending_reads:
            self.handle_read()
        return self.messages, b"".join(self.current) + self.ac_in_buffer


def check_terminator(terminator):
    # No Length(0) (asynchat reads 0 as "no terminator"; the codec completes
    # an empty frame) and no empty delimiter (the codec turns it into None).
    if isinstance(terminator, int):
        assert terminator >= 1, terminator
    elif terminator is not None:
        assert isinstance(terminator, bytes) and terminator, terminator


def encode_bytes(data):
    return "x" + data.hex()


def encode_terminator(terminator):
    if terminator is None:
        return "none"
    if isinstance(terminator, int):
        return "n%d" % terminator
    return "d" + terminator.hex()


def split_at(data, sizes):
    """Cut `data` into reads of the given sizes; the last read takes the rest."""
    reads, position = [], 0
    for size in sizes:
        reads.append(data[position : position + size])
        position += size
    reads.append(data[position:])
    return reads


def every(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def hand_picked():
    """(name, initial terminator, schedule, reads)."""
    crlf = b"\r\n"
    smtp_end = b"\r\n.\r\n"
    http_head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
    http_stream = (
        http_head
        + b"hello"
        + b"GET /b HTTP/1.1\r\n\r\n"
        + b"POST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    )
    cases = [
        ("crlf_one_read", crlf, [], [b"EHLO a\r\nQUIT\r\n"]),
        ("crlf_split_between", crlf, [], [b"EHLO a\r", b"\nQUIT\r", b"\n"]),
        ("crlf_lone_cr_not_delimiter", crlf, [], [b"a\r", b"b\r", b"\rc\r\n"]),
        ("crlf_cr_cr_lf", crlf, [], [b"x\r\r", b"\n"]),
        ("crlf_empty_messages", crlf, [], [b"\r\n\r\n", b"\r", b"\n\r\n"]),
        ("crlf_leftover", crlf, [], [b"one\r\ntwo\r"]),
        ("crlf_bytewise", crlf, [], every(b"EHLO a\r\n\r\nQUIT\r\nrest\r", 1)),
        ("aab_overlap", b"aab", [], [b"aaab"]),
        ("aab_overlap_split", b"aab", [], [b"a", b"a", b"a", b"b", b"aa", b"aab"]),
        ("aab_held_then_not", b"aab", [], [b"xaa", b"a", b"c", b"aab"]),
        ("aab_bytewise", b"aab", [], every(b"aaaabaabaaaab", 1)),
        ("abab_overlap", b"abab", [], [b"ababab"]),
        ("abab_split", b"abab", [], [b"aba", b"babab", b"ab"]),
        ("abab_prefix_not_delimiter", b"abab", [], [b"xaba", b"a", b"bab"]),
        ("abab_bytewise", b"abab", [], every(b"abaababababbabab", 1)),
        ("aaa_runs", b"aaa", [], [b"aaaaaaa", b"a", b"aa", b"baaa"]),
        ("aaa_bytewise", b"aaa", [], every(b"aaaabaaaaaaa", 1)),
        ("smtp_data", smtp_end, [], [b"Subject: hi\r\n\r\nbody\r\n.\r\n"]),
        (
            "smtp_data_split",
            smtp_end,
            [],
            [b"line\r\n", b".", b"\r", b"\nrest\r\n", b".x\r\n.\r", b"\n"],
        ),
        ("smtp_data_dot_stuffing", smtp_end, [], [b"a\r\n..\r\n.\r\nb\r\n.", b"\r\n"]),
        ("smtp_bytewise", smtp_end, [], every(b"x\r\n\r\n.\r\r\n.\r\n.\r\ny\r\n.", 1)),
        (
            "smtp_command_then_data",
            crlf,
            [crlf, smtp_end, crlf],
            [b"MAIL FROM:<a>\r\nDATA\r\nhi\r\n", b".\r\nQUIT\r\n"],
        ),
        ("partial_prefix_turns_out_not", b"\r\n\r\n", [], [b"ab\r\n", b"cd\r\n\r", b"\n"]),
        ("count_many_reads", 20, [crlf], [b"abc", b"defgh", b"i", b"jklmnopqrs", b"tnext\r\n"]),
        ("count_exact_read", 5, [5, 5], [b"hello", b"world", b"again"]),
        ("count_then_leftover", 7, [], [b"abc", b"defghij", b"klm"]),
        ("count_bytewise", 4, [3, 2, crlf], every(b"abcdefghi\r\nj", 1)),
        (
            "count_delimiter_count",
            3,
            [crlf, 4, crlf],
            [b"ab", b"c\r", b"\nwxyz", b"tail\r\nmore"],
        ),
        (
            "http_head_body_next_head",
            b"\r\n\r\n",
            [5, b"\r\n\r\n", b"\r\n\r\n", 3, b"\r\n\r\n"],
            [http_stream],
        ),
        (
            "http_head_body_next_head_split",
            b"\r\n\r\n",
            [5, b"\r\n\r\n", b"\r\n\r\n", 3, b"\r\n\r\n"],
            every(http_stream, 7),
        ),
        (
            "http_head_body_next_head_bytewise",
            b"\r\n\r\n",
            [5, b"\r\n\r\n", b"\r\n\r\n", 3, b"\r\n\r\n"],
            every(http_stream, 1),
        ),
        ("none_from_start", None, [], [b"abc", b"\r\n", b"def"]),
        ("none_after_messages", crlf, [crlf, None], [b"a\r\nb\r", b"\nc\r\nd"]),
        ("count_runs_out_to_none", crlf, [3], [b"x\r\nabcdef\r\n"]),
        ("delimiter_kept_after_schedule", b";", [b"!"], [b"a;b!c!d;e!"]),
        ("switch_delimiter_over_held_bytes", b"ab", [b"b", b"ab"], [b"xab", b"bba", b"b"]),
        ("no_reads", crlf, [], []),
        ("empty_reads", crlf, [], [b"", b"a\r", b"", b"\n", b""]),
        ("one_byte_delimiter_bytewise", b"\n", [], every(b"a\n\nbc\nd", 1)),
        ("five_byte_delimiter", b"abcab", [], [b"abcabcab", b"cabcabab", b"cab"]),
    ]
    return cases


def random_case(rng, index):
    alphabet = rng.choice([b"ab", b"abc", b"a", b"\r\n.", b"xy\r\n", b"aab", b"01"])

    def word(low, high):
        return bytes(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    def terminator():
        roll = rng.random()
        if roll < 0.65:
            return word(1, 5)
        if roll < 0.97:
            return rng.choice([1, 1, 2, 3, 4, 5, 7, 10, 16, 30, 64])
        return None

    initial = terminator()
    schedule = [terminator() for _ in range(rng.randint(0, 8))]

    # The input: random words, with the delimiters in play mixed in so that
    # messages actually end.
    delimiters = [t for t in [initial] + schedule if isinstance(t, bytes)]
    pieces = []
    for _ in range(rng.randint(0, 12)):
        if delimiters and rng.random() < 0.4:
            pieces.append(rng.choice(delimiters))
        else:
            pieces.append(word(0, 12))
    data = b"".join(pieces)[:160]

    style = rng.random()
    if style < 0.15:
        reads = every(data, 1)
    elif style < 0.25:
        reads = [data]
    else:
        sizes = [rng.choice([0, 1, 1, 2, 3, 4, 5, 8, 13]) for _ in range(len(data))]
        reads = split_at(data, sizes)
        # Drop most empty reads and the trailing rest when it is empty.
        reads = [r for r in reads if r or rng.random() < 0.05]
    return ("random_%04d" % index, initial, schedule, reads)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(root, "tests", "data", "vectors.txt")
    rng = random.Random(SEED)

    cases = hand_picked() + [random_case(rng, i) for i in range(RANDOM_CASES)]
    lines = [
        "# Generated by scripts/generate_vectors.py from CPython %s's asynchat."
        % sys.version.split()[0],
        "# Do not edit: change the script and run it again. Format: see the script.",
    ]
    for name, initial, schedule, reads in cases:
        for t in [initial] + schedule:
            check_terminator(t)
        messages, left = Oracle(initial, schedule, reads).run()
        lines.append("case " + name)
        lines.append("init " + encode_terminator(initial))
        lines.append(" ".join(["sched"] + [encode_terminator(t) for t in schedule]))
        lines.append(" ".join(["reads"] + [encode_bytes(r) for r in reads]))
        lines.append(" ".join(["msgs"] + [encode_bytes(m) for m in messages]))
        lines.append("left " + encode_bytes(left))
        lines.append("end")

    prefix_cases = [
        (b"qwerty\r", b"\r\n"),  # test_asynchat.TestHelperFunctions
        (b"qwertydkjf", b"\r\n"),
        (b"", b"\r\n"),
        (b"abc\r\n.", b"\r\n.\r\n"),
        (b"aaaa", b"aab"),
        (b"aba", b"abab"),
        (b"x", b"x"),
    ]
    for _ in range(RANDOM_PREFIX_CASES):
        alphabet = rng.choice([b"ab", b"a", b"abc"])
        needle = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        haystack = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        prefix_cases.append((haystack, needle))
    for haystack, needle in prefix_cases:
        expected = asynchat.find_prefix_at_end(haystack, needle)
        lines.append(
            "prefix %s %s %d" % (encode_bytes(haystack), encode_bytes(needle), expected)
        )

    lines.append("count %d %d" % (len(cases), len(prefix_cases)))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", newline="\n") as out:
        out.write("\n".join(lines) + "\n")
    print(
        "%s: %d cases, %d prefix cases, %d bytes"
        % (out_path, len(cases), len(prefix_cases), os.path.getsize(out_path))
    )


if __name__ == "__main__":
    main()
