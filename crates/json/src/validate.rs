//! Checking that text is one valid JSON document without building it.
//!
//! A filter that passes records through must never emit invalid JSON, yet parsing every record
//! would cost far more than the rule itself. [`validate`] walks the text once, allocates
//! nothing, and accepts exactly what [`crate::parse`] accepts, with the same error at the same
//! offset (a property test holds the two to that).

use crate::parse::{Error, ErrorKind, Limits};

/// Nesting this validator can track without allocating: the default [`Limits::max_depth`].
const MAX_TRACKED_DEPTH: usize = 512;

/// Whether `input` is one JSON document that [`crate::parse`] accepts with the default limits.
pub fn validate(input: &[u8]) -> Result<(), Error> {
    if let Err(e) = std::str::from_utf8(input) {
        return Err(Error {
            offset: e.valid_up_to(),
            kind: ErrorKind::InvalidUtf8,
        });
    }
    let max_depth = Limits::default().max_depth.min(MAX_TRACKED_DEPTH);
    Validator {
        b: input,
        pos: 0,
        objects: [0; MAX_TRACKED_DEPTH / 64],
        depth: 0,
    }
    .document(max_depth)
}

struct Validator<'a> {
    b: &'a [u8],
    pos: usize,
    /// One bit per open container: set for an object, clear for an array.
    objects: [u64; MAX_TRACKED_DEPTH / 64],
    depth: usize,
}

impl Validator<'_> {
    fn err<T>(&self, kind: ErrorKind) -> Result<T, Error> {
        Err(Error {
            offset: self.pos,
            kind,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn push(&mut self, object: bool, max_depth: usize) -> Result<(), Error> {
        if self.depth >= max_depth {
            return self.err(ErrorKind::TooDeep(max_depth));
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
        self.skip_ws();
        'value: loop {
            match self.peek() {
                None => return self.err(ErrorKind::UnexpectedEnd),
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.push(true, max_depth)?;
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.push(false, max_depth)?;
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b't') => self.keyword(b"true")?,
                Some(b'f') => self.keyword(b"false")?,
                Some(b'n') => self.keyword(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.err(ErrorKind::ExpectedValue),
            }
            // A value ended: close the containers that end here.
            loop {
                self.skip_ws();
                if self.depth == 0 {
                    if self.pos != self.b.len() {
                        return self.err(ErrorKind::TrailingCharacters);
                    }
                    return Ok(());
                }
                let object = self.top_is_object();
                let close = if object { b'}' } else { b']' };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        self.depth -= 1;
                    }
                    None => return self.err(ErrorKind::UnexpectedEnd),
                    Some(_) => return self.err(ErrorKind::ExpectedCommaOrClose(close as char)),
                }
            }
        }
    }

    fn key(&mut self) -> Result<(), Error> {
        match self.peek() {
            Some(b'"') => {}
            None => return self.err(ErrorKind::UnexpectedEnd),
            Some(_) => return self.err(ErrorKind::ExpectedKey),
        }
        self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return self.err(ErrorKind::ExpectedColon);
        }
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    fn keyword(&mut self, word: &[u8]) -> Result<(), Error> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
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

    fn number(&mut self) -> Result<(), Error> {
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

    fn string(&mut self) -> Result<(), Error> {
        self.pos += 1;
        loop {
            self.skip_plain_string_bytes();
            match self.peek() {
                None => return self.err(ErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(0..=0x1f) => return self.err(ErrorKind::ControlCharacter),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.unicode_escape()?;
                        }
                        None => return self.err(ErrorKind::UnexpectedEnd),
                        Some(_) => return self.err(ErrorKind::InvalidEscape),
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips string bytes that need no attention (not `"`, `\` or a control character), eight
    /// at a time: most of a log record is string content, and this is its hot loop.
    fn skip_plain_string_bytes(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            // A byte is flagged when it is zero after xor with `"` or `\`, or below 0x20;
            // the classic "has a byte less than n" test, exact for n <= 128.
            let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
            let special = below(v ^ (ONES * u64::from(b'"')), 1)
                | below(v ^ (ONES * u64::from(b'\\')), 1)
                | below(v, 0x20);
            if special != 0 {
                // Stop at the first flagged byte (little-endian: the lowest set bit).
                self.pos += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self.b.get(self.pos..self.pos + 4);
        match digits.filter(|d| d.iter().all(u8::is_ascii_hexdigit)) {
            Some(d) => {
                self.pos += 4;
                Ok(d.iter().fold(0, |n, c| {
                    n * 16 + (*c as char).to_digit(16).unwrap_or_default()
                }))
            }
            None => self.err(ErrorKind::InvalidUnicodeEscape),
        }
    }

    /// The same acceptance as the parser: surrogates must pair, the result must be a char.
    fn unicode_escape(&mut self) -> Result<(), Error> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return self.err(ErrorKind::InvalidUnicodeEscape);
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return self.err(ErrorKind::InvalidUnicodeEscape);
            }
            Ok(())
        } else if char::from_u32(first).is_some() {
            Ok(())
        } else {
            self.err(ErrorKind::InvalidUnicodeEscape)
        }
    }
}
