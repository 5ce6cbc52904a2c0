//! The token scanners shared by the parser and the validator, so that both accept exactly the
//! same text and report the same error at the same offset.

use crate::parse::{Error, ErrorKind};

/// A position in the input.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn err<T>(&self, kind: ErrorKind) -> Result<T, Error> {
        Err(Error {
            offset: self.pos,
            kind,
        })
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Moves past string content that needs no attention ([`skip_plain_words`]).
    pub(crate) fn skip_plain_string(&mut self) {
        self.pos = skip_plain_words(self.bytes, self.pos);
    }

    /// `true`, `false` or `null`.
    pub(crate) fn keyword(&mut self, word: &[u8]) -> Result<(), Error> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.err(ErrorKind::ExpectedValue)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Moves past one number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub(crate) fn number(&mut self) -> Result<(), Error> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err(ErrorKind::InvalidNumber),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err(ErrorKind::InvalidNumber);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err(ErrorKind::InvalidNumber);
            }
        }
        Ok(())
    }

    /// The character of a backslash escape, the cursor positioned after the backslash and
    /// moved past the escape ([`decode_escape`]).
    pub(crate) fn escape(&mut self) -> Result<char, Error> {
        match decode_escape(self.bytes.get(self.pos..).unwrap_or_default()) {
            Ok((c, len)) => {
                self.pos += len;
                Ok(c)
            }
            Err(e) => Err(Error {
                offset: self.pos + e.offset,
                kind: e.kind,
            }),
        }
    }
}

/// A one in every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes of `chunk` as one little-endian word.
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    u64::from_le_bytes(word)
}

/// The high bit of each byte of `v` that equals `byte`, and possibly of bytes after such a
/// byte (borrows run upwards, so the lowest flag is exact), with other high bits mixed in: mask
/// with [`HIGHS`].
#[inline(always)]
fn equal_bytes(v: u64, byte: u8) -> u64 {
    let x = v ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x
}

/// The high bit of each byte of `chunk` (eight bytes) that is `"`, `\`, a control character
/// or above 0x7F, and possibly of bytes after such a byte (borrows run upwards, so the lowest
/// flag is exact); zero when none is.
///
/// Two subtractions do it. Flipping bit 1 maps `"` (0x22) to 0x20 and keeps every control
/// character below 0x20, while no other byte lands below 0x21; so subtracting 0x21 from each
/// byte flags the control characters and the quote together. Subtracting one after an XOR
/// with `\` flags the backslash. Either subtraction also flags bytes above 0x80, which the
/// last term flags anyway, and a byte borrows only from a flagged byte below it.
#[inline(always)]
fn special_bytes(chunk: &[u8]) -> u64 {
    let v = word(chunk);
    let below_0x21 = (v ^ (ONES * 0x02)).wrapping_sub(ONES * 0x21);
    let backslash = (v ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (below_0x21 | backslash | v) & HIGHS
}

/// The offset of the first backslash in `text`: 32 bytes per step while none is found (four
/// words tested together), then eight, then byte by byte over the last few. For WebAssembly
/// without SIMD (the Fluent Bit module), which has 64-bit arithmetic natively, where memchr's
/// portable search steps a `usize`: four bytes there. Most records hold no backslash at all,
/// so the first loop, which pays its loop and bounds checks once per four words, does nearly
/// all the work. Elsewhere memchr's vector searches are faster.
#[inline]
pub fn find_backslash(text: &[u8]) -> Option<usize> {
    let mut at = 0;
    for block in text.chunks_exact(32) {
        // No false flag in a word without a backslash (borrows start at one), so the union is
        // zero exactly when the block has none.
        let any = block
            .chunks_exact(8)
            .fold(0, |flags, chunk| flags | equal_bytes(word(chunk), b'\\'));
        if any & HIGHS != 0 {
            break;
        }
        at += 32;
    }
    while let Some(chunk) = text.get(at..at + 8) {
        let backslashes = equal_bytes(word(chunk), b'\\') & HIGHS;
        if backslashes != 0 {
            return Some(at + (backslashes.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    text.get(at..)?
        .iter()
        .position(|&b| b == b'\\')
        .map(|i| at + i)
}

/// From `i`, inside a string, the position of the first byte that may need attention (`"`,
/// `\`, a control character or a byte above 0x7F), eight bytes per step while eight remain;
/// the last few bytes of the input it leaves to the caller, which looks at one byte at a time
/// anyway.
#[inline(always)]
pub(crate) fn skip_plain_words(b: &[u8], mut i: usize) -> usize {
    // One comparison per step: `i <= last` implies the eight bytes are there.
    let Some(last) = b.len().checked_sub(8) else {
        return i;
    };
    while i <= last {
        let Some(chunk) = b.get(i..i + 8) else {
            break;
        };
        let special = special_bytes(chunk);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// A malformed backslash escape: what is wrong and where, counted from the byte after the
/// backslash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapeError {
    /// Bytes after the backslash at which the problem was found.
    pub offset: usize,
    /// [`ErrorKind::InvalidEscape`], [`ErrorKind::InvalidUnicodeEscape`] or
    /// [`ErrorKind::UnexpectedEnd`].
    pub kind: ErrorKind,
}

/// Decodes the JSON escape whose text, after the backslash, starts `rest`: the character and
/// how many bytes after the backslash the escape takes (`\uXXXX\uXXXX` surrogate pairs
/// joined). The parser, the validator and the prefilter's canonical spelling all decode
/// escapes with this.
pub fn decode_escape(rest: &[u8]) -> Result<(char, usize), EscapeError> {
    let fail = |offset, kind| Err(EscapeError { offset, kind });
    let c = match rest.first() {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(rest),
        Some(_) => return fail(0, ErrorKind::InvalidEscape),
        None => return fail(0, ErrorKind::UnexpectedEnd),
    };
    Ok((c, 1))
}

/// `uXXXX`, joining a surrogate pair.
fn unicode_escape(rest: &[u8]) -> Result<(char, usize), EscapeError> {
    let fail = |offset| {
        Err(EscapeError {
            offset,
            kind: ErrorKind::InvalidUnicodeEscape,
        })
    };
    let hex4 = |at: usize| {
        let digits = rest.get(at..at + 4)?;
        digits
            .iter()
            .try_fold(0u32, |n, c| char::from(*c).to_digit(16).map(|d| n * 16 + d))
    };
    let Some(first) = hex4(1) else {
        return fail(1);
    };
    let (code, len) = if (0xD800..0xDC00).contains(&first) {
        if rest.get(5..7) != Some(b"\\u") {
            return fail(5);
        }
        let Some(second) = hex4(7) else {
            return fail(7);
        };
        if !(0xDC00..0xE000).contains(&second) {
            return fail(11);
        }
        (0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00), 11)
    } else {
        (first, 5)
    };
    match char::from_u32(code) {
        Some(c) => Ok((c, len)),
        None => fail(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs_attention(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80
    }

    /// The lowest flag of `special_bytes` is the first byte that needs attention, for every
    /// byte value at every position among fillers of every value, and no flag is set when no
    /// byte needs attention.
    #[test]
    fn special_bytes_flag_exactly_the_first_byte_that_needs_attention() {
        for filler in 0..=255u8 {
            let plain = [filler; 8];
            let flags = special_bytes(&plain);
            if needs_attention(filler) {
                assert_eq!(flags.trailing_zeros() / 8, 0, "{filler:#x}");
            } else {
                assert_eq!(flags, 0, "{filler:#x}");
            }
            for at in 0..8 {
                for byte in 0..=255u8 {
                    let mut chunk = plain;
                    chunk[at] = byte;
                    let first = chunk.iter().position(|&b| needs_attention(b));
                    let flags = special_bytes(&chunk);
                    let found = (flags != 0).then(|| (flags.trailing_zeros() / 8) as usize);
                    assert_eq!(found, first, "{chunk:x?}");
                }
            }
        }
    }

    /// The word-at-a-time backslash search agrees with a byte-by-byte search at every offset
    /// and length, with bytes around it that differ from a backslash by one bit or by a borrow.
    #[test]
    fn find_backslash_agrees_with_a_byte_by_byte_search() {
        let fillers: [u8; 6] = [b'a', b'\\' ^ 1, b'\\' + 1, b'\\' - 1, 0x00, 0xDC];
        for len in 0..72 {
            for filler in fillers {
                let text = vec![filler; len];
                assert_eq!(find_backslash(&text), None, "{len} {filler}");
                for at in 0..len {
                    let mut one = text.clone();
                    one[at] = b'\\';
                    assert_eq!(find_backslash(&one), Some(at), "{len} {filler} {at}");
                    // A second one after it changes nothing.
                    for later in at + 1..len {
                        let mut two = one.clone();
                        two[later] = b'\\';
                        assert_eq!(find_backslash(&two), two.iter().position(|&b| b == b'\\'));
                    }
                }
            }
        }
    }

    #[test]
    fn escapes_decode_with_their_length_or_where_they_break() {
        assert_eq!(decode_escape(b"n..."), Ok(('\n', 1)));
        assert_eq!(decode_escape(b"u00e9"), Ok(('\u{e9}', 5)));
        assert_eq!(decode_escape(br"ud83d\ude00!"), Ok(('\u{1F600}', 11)));
        let err = |rest: &[u8]| decode_escape(rest).map_err(|e| (e.offset, e.kind));
        assert_eq!(err(b"q"), Err((0, ErrorKind::InvalidEscape)));
        assert_eq!(err(b""), Err((0, ErrorKind::UnexpectedEnd)));
        assert_eq!(err(b"u12"), Err((1, ErrorKind::InvalidUnicodeEscape)));
        assert_eq!(err(b"ud800x"), Err((5, ErrorKind::InvalidUnicodeEscape)));
        assert_eq!(
            err(br"ud800\uzzzz"),
            Err((7, ErrorKind::InvalidUnicodeEscape))
        );
        assert_eq!(
            err(br"ud800\u0041"),
            Err((11, ErrorKind::InvalidUnicodeEscape))
        );
        assert_eq!(err(b"udc00"), Err((5, ErrorKind::InvalidUnicodeEscape)));
    }
}
