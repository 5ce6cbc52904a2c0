//! Checking that text is one valid JSON document without building it.
//!
//! A filter that passes records through must never emit invalid JSON, yet parsing every record
//! would cost far more than the rule itself. [`validate`] walks the text once, allocates
//! nothing, and accepts exactly what [`crate::parse`] accepts, with the same error at the same
//! offset (a property test holds the two to that).

use crate::lex::Cursor;
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
        at: Cursor::new(input),
        objects: [0; MAX_TRACKED_DEPTH / 64],
        depth: 0,
    }
    .document(max_depth)
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
            self.skip_plain_string_bytes();
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

    /// Skips string bytes that need no attention (not `"`, `\` or a control character), eight
    /// at a time: most of a log record is string content, and this is its hot loop.
    fn skip_plain_string_bytes(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.at.bytes.get(self.at.pos..self.at.pos + 8) {
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
                self.at.pos += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.at.pos += 8;
        }
    }
}
