//! Checking that text is one valid JSON document without building it.
//!
//! A filter that passes records through must never emit invalid JSON, yet parsing every record
//! would cost far more than the rule itself. [`validate`] walks the text once, allocates
//! nothing, and accepts exactly what [`crate::parse`] accepts, with the same error at the same
//! offset (a property test holds the two to that).
//!
//! It does so in two steps, because the one it nearly always takes must be cheap where it runs
//! most: Fluent Bit's interpreter, where every WebAssembly instruction costs and a filter in
//! annotate mode validates every record the rule cannot match.
//!
//! 1. [`accepts`] answers yes or no in a single pass: UTF-8 is checked inside strings, where
//!    alone JSON text may hold a byte above 0x7F, instead of in a separate pass over the whole
//!    input; string bodies are skipped eight bytes per step; the container stack is a bit per
//!    level in a fixed array, and the grammar is a loop over local variables, with a tighter
//!    loop of its own for the compact `"key":"value"` members that make up most of a record
//!    ([`members`]). On the way it notes whether any escape other than `\"` and `\\` occurs
//!    ([`validate_escapes`]).
//! 2. Only when it says no does the exact walk below run, to name the error and its offset the
//!    way [`crate::parse`] does (an invalid UTF-8 sequence anywhere first, as the parser checks
//!    the encoding before the grammar).
//!
//! Written by hand because it must accept exactly this crate's language and name the same
//! error at the same byte offset as its parser, cheaply in an interpreter without SIMD: serde_json
//! (deserialising into `IgnoredAny`) checks its own grammar and reports lines and columns, and
//! the SIMD validators have no SIMD to use there.

use crate::lex::{Cursor, skip_plain_words};
use crate::parse::{Error, ErrorKind, Limits};

/// Nesting this validator can track without allocating: the default [`Limits::max_depth`].
const MAX_TRACKED_DEPTH: usize = 512;

/// Whether `input` is one JSON document that [`crate::parse`] accepts with the default limits.
pub fn validate(input: &[u8]) -> Result<(), Error> {
    validate_escapes(input).map(|_| ())
}

/// What valid JSON text escapes in its strings, as [`validate_escapes`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// No escape but `\"` and `\\`: every other character is written as itself, so the text
    /// is already in the spelling a literal search looks for.
    QuoteAndBackslashOnly,
    /// Some other escape (`\/`, `\n`, `\u0041`, …), or the answer was not worked out.
    Others,
}

/// [`validate`], also telling whether the text holds escapes other than `\"` and `\\`. A
/// caller that must validate anyway (the Fluent Bit filter in annotate mode) learns this for
/// free instead of searching the text for backslashes again.
pub fn validate_escapes(input: &[u8]) -> Result<Escapes, Error> {
    let max_depth = Limits::default().max_depth.min(MAX_TRACKED_DEPTH);
    if let Some(escapes) = accepts(input, max_depth) {
        return Ok(escapes);
    }
    if let Err(e) = std::str::from_utf8(input) {
        return Err(Error {
            offset: e.valid_up_to(),
            kind: ErrorKind::InvalidUtf8,
        });
    }
    Validator {
        at: Cursor::new(input),
        objects: [0; MAX_TRACKED_DEPTH / 64],
        depth: 0,
    }
    .document(max_depth)
    // The one-pass check below and this walk accept the same texts, so this is never reached
    // with `Ok`; if it were, "others" is the answer that costs a caller time, never truth.
    .map(|()| Escapes::Others)
}

/// `validate_escapes(input).ok()` for nesting up to `max_depth` (at most
/// [`MAX_TRACKED_DEPTH`]), in one pass that keeps no error.
fn accepts(b: &[u8], max_depth: usize) -> Option<Escapes> {
    // One bit per open container: set for an object, clear for an array.
    let mut objects = [0u64; MAX_TRACKED_DEPTH / 64];
    let mut depth = 0usize;
    // Whether the innermost open container is an object.
    let mut in_object = false;
    let mut others = false;
    let mut i = skip_ws(b, 0);
    'value: loop {
        // A value starts at `i`.
        let c = *b.get(i)?;
        match c {
            b'"' => i = string_end(b, i + 1, &mut others)?,
            b'{' | b'[' => {
                let object = c == b'{';
                i = skip_ws(b, i + 1);
                if b.get(i) == Some(&if object { b'}' } else { b']' }) {
                    i += 1;
                } else {
                    if depth >= max_depth {
                        return None;
                    }
                    if let Some(word) = objects.get_mut(depth / 64) {
                        let bit = 1u64 << (depth % 64);
                        if object {
                            *word |= bit;
                        } else {
                            *word &= !bit;
                        }
                    }
                    depth += 1;
                    in_object = object;
                    if !object {
                        continue 'value;
                    }
                    let (next, value_ended) = members(b, i, &mut others)?;
                    i = next;
                    if !value_ended {
                        continue 'value;
                    }
                }
            }
            b't' => i = literal_end(b, i, b"true")?,
            b'f' => i = literal_end(b, i, b"false")?,
            b'n' => i = literal_end(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            _ => return None,
        }
        // A value ended at `i`: a separator, or the ends of the containers that close here.
        loop {
            let Some(&c) = b.get(i) else {
                return (depth == 0).then_some(if others {
                    Escapes::Others
                } else {
                    Escapes::QuoteAndBackslashOnly
                });
            };
            match c {
                b',' if in_object && b.get(i + 1) == Some(&b'"') => {
                    let (next, value_ended) = members(b, i + 1, &mut others)?;
                    i = next;
                    if !value_ended {
                        continue 'value;
                    }
                }
                b',' if depth > 0 => {
                    i = skip_ws(b, i + 1);
                    if in_object {
                        i = key_end(b, i, &mut others)?;
                    }
                    continue 'value;
                }
                b'}' | b']' if depth > 0 && in_object == (c == b'}') => {
                    i += 1;
                    depth -= 1;
                    in_object = depth > 0
                        && objects
                            .get((depth - 1) / 64)
                            .is_some_and(|w| w & (1 << ((depth - 1) % 64)) != 0);
                }
                b' ' | b'\t' | b'\n' | b'\r' => i = skip_ws(b, i),
                _ => return None,
            }
        }
    }
}

/// Members of an object from the key at `i`, for as long as they come in the compact form
/// Fluent Bit's encoder writes, `"key":"value"` joined by `,` with no whitespace: one tight
/// loop, where the general one would dispatch on every byte between the strings. Where the
/// form ends it gives the position and whether a value just ended there (`true`: a separator
/// or a close follows) or starts there (`false`: after a key, its colon and any whitespace).
#[inline(always)]
fn members(b: &[u8], mut i: usize, others: &mut bool) -> Option<(usize, bool)> {
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let colon = string_end(b, i + 1, others)?;
        if b.get(colon) != Some(&b':') {
            // Whitespace before the colon: the general path, from the key.
            return key_end(b, i, others).map(|value| (value, false));
        }
        let value = colon + 1;
        if b.get(value) != Some(&b'"') {
            return Some((skip_ws(b, value), false));
        }
        let end = string_end(b, value + 1, others)?;
        if b.get(end) == Some(&b',') && b.get(end + 1) == Some(&b'"') {
            i = end + 1;
        } else {
            return Some((end, true));
        }
    }
}

/// The first position at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// A key at `i` (no whitespace before it), its colon and the whitespace after: the position of
/// the value, or `None`.
#[inline(always)]
fn key_end(b: &[u8], i: usize, others: &mut bool) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut i = string_end(b, i + 1, others)?;
    if b.get(i) != Some(&b':') {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b':') {
            return None;
        }
    }
    Some(skip_ws(b, i + 1))
}

/// `word` at `i`: the position after it, or `None`.
fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end) == Some(word)).then_some(end)
}

/// The position after the number at `i`, or `None` if it is malformed
/// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let start = i;
        while let Some(b'0'..=b'9') = b.get(i) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

/// The position after the closing quote of the string whose body starts at `i`, or `None` if
/// the string is unterminated, holds a control character, a bad escape or invalid UTF-8. An
/// escape other than `\"` and `\\` sets `others`.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize, others: &mut bool) -> Option<usize> {
    loop {
        i = skip_plain_words(b, i);
        let c = *b.get(i)?;
        // The closing quote first: it ends nearly every string.
        if c == b'"' {
            return Some(i + 1);
        }
        match c {
            b'\\' => {
                let rest = b.get(i + 1..).unwrap_or_default();
                let (_, len) = crate::lex::decode_escape(rest).ok()?;
                *others |= !matches!(rest.first(), Some(b'"' | b'\\'));
                i += 1 + len;
            }
            0x80.. => i += utf8_len(b, i)?,
            0..=0x1f => return None,
            // Content among the last few bytes, which the word steps leave.
            _ => i += 1,
        }
    }
}

/// The length of the well-formed UTF-8 sequence at `i`, whose first byte is above 0x7F, or
/// `None` (Unicode's table of well-formed byte sequences: no overlong forms, no surrogates,
/// nothing above U+10FFFF).
fn utf8_len(b: &[u8], i: usize) -> Option<usize> {
    let in_range = |k: usize, lo: u8, hi: u8| b.get(i + k).is_some_and(|c| (lo..=hi).contains(c));
    let tail = |k: usize| in_range(k, 0x80, 0xBF);
    let ok = match *b.get(i)? {
        0xC2..=0xDF => return tail(1).then_some(2),
        0xE0 => in_range(1, 0xA0, 0xBF) && tail(2),
        0xE1..=0xEC | 0xEE..=0xEF => tail(1) && tail(2),
        0xED => in_range(1, 0x80, 0x9F) && tail(2),
        0xF0 => return (in_range(1, 0x90, 0xBF) && tail(2) && tail(3)).then_some(4),
        0xF1..=0xF3 => return (tail(1) && tail(2) && tail(3)).then_some(4),
        0xF4 => return (in_range(1, 0x80, 0x8F) && tail(2) && tail(3)).then_some(4),
        _ => return None,
    };
    ok.then_some(3)
}

struct Validator<'a> {
    at: Cursor<'a>,
    /// One bit per open container: set for an object, clear for an array.
    objects: [u64; MAX_TRACKED_DEPTH / 64],
    depth: usize,
}

impl Validator<'_> {
    fn push(&mut self, object: bool, max_depth: usize) -> Result<(), Error> {
        if self.depth >= max_depth {
            return self.at.err(ErrorKind::TooDeep(max_depth));
        }
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if let Some(w) = self.objects.get_mut(word) {
            if object {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
        self.depth += 1;
        Ok(())
    }

    fn top_is_object(&self) -> bool {
        let i = self.depth - 1;
        self.objects
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn document(mut self, max_depth: usize) -> Result<(), Error> {
        self.at.skip_ws();
        'value: loop {
            match self.at.peek() {
                None => return self.at.err(ErrorKind::UnexpectedEnd),
                Some(b'{') => {
                    self.at.pos += 1;
                    self.at.skip_ws();
                    if self.at.peek() == Some(b'}') {
                        self.at.pos += 1;
                    } else {
                        self.push(true, max_depth)?;
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.at.pos += 1;
                    self.at.skip_ws();
                    if self.at.peek() == Some(b']') {
                        self.at.pos += 1;
                    } else {
                        self.push(false, max_depth)?;
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b't') => self.at.keyword(b"true")?,
                Some(b'f') => self.at.keyword(b"false")?,
                Some(b'n') => self.at.keyword(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.at.number()?,
                Some(_) => return self.at.err(ErrorKind::ExpectedValue),
            }
            // A value ended: close the containers that end here.
            loop {
                self.at.skip_ws();
                if self.depth == 0 {
                    if self.at.pos != self.at.bytes.len() {
                        return self.at.err(ErrorKind::TrailingCharacters);
                    }
                    return Ok(());
                }
                let object = self.top_is_object();
                let close = if object { b'}' } else { b']' };
                match self.at.peek() {
                    Some(b',') => {
                        self.at.pos += 1;
                        self.at.skip_ws();
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.at.pos += 1;
                        self.depth -= 1;
                    }
                    None => return self.at.err(ErrorKind::UnexpectedEnd),
                    Some(_) => return self.at.err(ErrorKind::ExpectedCommaOrClose(close as char)),
                }
            }
        }
    }

    fn key(&mut self) -> Result<(), Error> {
        match self.at.peek() {
            Some(b'"') => {}
            None => return self.at.err(ErrorKind::UnexpectedEnd),
            Some(_) => return self.at.err(ErrorKind::ExpectedKey),
        }
        self.string()?;
        self.at.skip_ws();
        if self.at.peek() != Some(b':') {
            return self.at.err(ErrorKind::ExpectedColon);
        }
        self.at.pos += 1;
        self.at.skip_ws();
        Ok(())
    }

    fn string(&mut self) -> Result<(), Error> {
        self.at.pos += 1;
        loop {
            self.at.skip_plain_string();
            match self.at.peek() {
                None => return self.at.err(ErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    self.at.pos += 1;
                    return Ok(());
                }
                Some(0..=0x1f) => return self.at.err(ErrorKind::ControlCharacter),
                Some(b'\\') => {
                    self.at.pos += 1;
                    self.at.escape()?;
                }
                Some(_) => self.at.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records in the shapes the filter sees: compact as Fluent Bit writes them, spaced as a
    /// person writes them, escapes of every kind, and nesting of both containers.
    const SEEDS: [&str; 6] = [
        r#"{"a":"b","c":{"d":[1,"e",true,null,{"f":-0.5e+3}]},"g":"h\"i\\j"}"#,
        r#"{"op":"MICROSOFT.COMPUTE\/VIRTUALMACHINES","k":"\u0041\ud83d\ude00","n":"x\ny"}"#,
        "{ \"a\" : \"b\" , \"c\" : [ 1 , { } , [ ] ] ,\n\t\"d\" :false }\r\n",
        "[\"a\",\"b\",{\"c\":\"\u{e9}\u{1F600}\"},[[]],0]",
        r#"{"":"","x":{"":{}}}"#,
        r#""just \"a\" string""#,
    ];

    /// Whether valid text holds an escape other than `\"` and `\\`, found without the grammar:
    /// in valid JSON every backslash begins an escape.
    fn has_other_escapes(text: &[u8]) -> bool {
        let mut i = 0;
        while let Some(&c) = text.get(i) {
            if c == b'\\' {
                if !matches!(text.get(i + 1), Some(b'"' | b'\\')) {
                    return true;
                }
                i += 2;
            } else {
                i += 1;
            }
        }
        false
    }

    fn check(text: &[u8]) {
        let max_depth = Limits::default().max_depth.min(MAX_TRACKED_DEPTH);
        let fast = accepts(text, max_depth);
        let exact = crate::parse(text).is_ok();
        assert_eq!(fast.is_some(), exact, "{}", String::from_utf8_lossy(text));
        if exact {
            let expected = if has_other_escapes(text) {
                Escapes::Others
            } else {
                Escapes::QuoteAndBackslashOnly
            };
            assert_eq!(fast, Some(expected), "{}", String::from_utf8_lossy(text));
        }
    }

    /// The one-pass check agrees with the parser on every text one byte's insertion, removal
    /// or replacement away from a seed, and names the escapes exactly. (`validate` would hide
    /// a valid text this check wrongly refused: its exact walk runs then.)
    #[test]
    fn the_one_pass_check_agrees_with_the_parser_one_edit_away() {
        let mut alphabet: Vec<u8> = br#"{}[]:,"\/ u0123456789abcdefnrtEe.+-"#.to_vec();
        alphabet.extend([
            b'\t', b'\n', 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xe0, 0xed, 0xf0, 0xff,
        ]);
        for seed in SEEDS {
            let seed = seed.as_bytes();
            check(seed);
            for at in 0..=seed.len() {
                if at < seed.len() {
                    let mut removed = seed.to_vec();
                    removed.remove(at);
                    check(&removed);
                }
                for &byte in &alphabet {
                    let mut inserted = seed.to_vec();
                    inserted.insert(at, byte);
                    check(&inserted);
                    if at < seed.len() {
                        let mut replaced = seed.to_vec();
                        replaced[at] = byte;
                        check(&replaced);
                    }
                }
            }
        }
    }
}
