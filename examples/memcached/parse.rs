//! Command lines as memcached reads them: words split by spaces, numbers
//! read by the C library's `strtoull` and `strtol` with memcached's checks
//! around them (`safe_strtoull` and friends in its `util.c`).
//!
//! The quirks are kept on purpose, so that a line gets the reply memcached
//! gives it: a tab is part of a word, a number may have leading blanks and
//! a `+` or `-` sign, `-0` is a valid unsigned number, and a value stored as
//! `" 5 "` can be incremented.

/// The most words of a line kept for a command other than the retrieval
/// ones: `cas <key> <flags> <exptime> <bytes> <cas unique> noreply` has
/// seven. The retrieval commands walk the line again for their keys.
const KEPT_WORDS: usize = 8;

/// The words of a command line, split at spaces only, as memcached's
/// tokenizer splits them (runs of spaces count as one; tabs and other
/// blanks are part of a word). The line is cut at its first NUL byte first,
/// as memcached's `strlen` cuts it.
pub struct Words<'a> {
    line: &'a [u8],
    kept: [&'a [u8]; KEPT_WORDS],
    count: usize,
}

impl<'a> Words<'a> {
    pub fn new(line: &'a [u8]) -> Self {
        let line = match memchr::memchr(0, line) {
            Some(end) => &line[..end],
            None => line,
        };
        let mut words = Words {
            line,
            kept: [&[]; KEPT_WORDS],
            count: 0,
        };
        for word in split(line) {
            if words.count < KEPT_WORDS {
                words.kept[words.count] = word;
            }
            words.count += 1;
        }
        words
    }

    /// How many words the line has.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Word `index` (0 is the command), or empty past the words kept.
    pub fn get(&self, index: usize) -> &'a [u8] {
        if index < self.count.min(KEPT_WORDS) {
            self.kept[index]
        } else {
            &[]
        }
    }

    /// The last word, or empty if it is past the words kept (memcached
    /// looks for `noreply` there; no command that takes it has that many).
    pub fn last(&self) -> &'a [u8] {
        match self.count {
            0 => &[],
            count => self.get(count - 1),
        }
    }

    /// Whether the command ends in `noreply`: its reply, even an error, is
    /// not sent.
    pub fn noreply(&self) -> bool {
        self.last() == b"noreply"
    }

    /// The words from `index` on, however many: the keys of a retrieval
    /// command.
    pub fn rest(&self, index: usize) -> impl Iterator<Item = &'a [u8]> + Clone {
        split(self.line).skip(index)
    }
}

fn split(line: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    line.split(|&byte| byte == b' ')
        .filter(|word| !word.is_empty())
}

/// The C library's `isspace` in the C locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What `strtoull` and `strtol` read: leading blanks, a sign, decimal
/// digits (at least one), and then memcached's check that the number ends
/// the text or is followed by a blank (or a NUL, where C's string ends).
/// `None` when no digits, when something else follows, or when the
/// magnitude passes `u64::MAX` (`ERANGE`).
fn sign_and_magnitude(text: &[u8]) -> Option<(bool, u64)> {
    let start = text.iter().position(|&byte| !is_space(byte))?;
    let (negative, digits) = match text[start] {
        b'-' => (true, &text[start + 1..]),
        b'+' => (false, &text[start + 1..]),
        _ => (false, &text[start..]),
    };
    let length = digits
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if length == 0 {
        return None;
    }
    match digits.get(length) {
        None => {}
        Some(&byte) if byte == 0 || is_space(byte) => {}
        Some(_) => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in &digits[..length] {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    Some((negative, magnitude))
}

/// An unsigned 64-bit number as memcached's `safe_strtoull` reads it (a
/// delta of `incr`, a CAS unique, the value being incremented). As in C, a
/// minus sign negates modulo 2^64 (`-0` is 0, `-1` is refused because the
/// result looks negative).
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let (negative, magnitude) = sign_and_magnitude(text)?;
    let value = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    // memcached's own check: a result that is negative as a signed number
    // is refused if the text holds a minus sign anywhere.
    if (value as i64) < 0 && text.contains(&b'-') {
        return None;
    }
    Some(value)
}

/// A signed number as `strtol` reads it on a 64-bit machine, refused
/// outside the 32 bits memcached keeps (an exptime, a data length).
/// memcached itself truncates such a number to its low 32 bits, so that an
/// exptime of 2^32 + 1 would mean 1 second; refusing it is the one place
/// this server answers otherwise, with `CLIENT_ERROR`.
pub fn parse_i32(text: &[u8]) -> Option<i32> {
    let (negative, magnitude) = sign_and_magnitude(text)?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    i32::try_from(value).ok()
}

/// The client flags of a storage command: an unsigned 32-bit number (read
/// as memcached reads it; above 2^32 - 1 it is refused, where memcached
/// keeps its low 32 bits).
pub fn parse_u32(text: &[u8]) -> Option<u32> {
    u32::try_from(parse_u64(text)?).ok()
}
