//! An iterative JSON parser: RFC 8259 grammar, explicit stack, byte-offset errors.

use std::borrow::Cow;

use crate::lex::Cursor;
use crate::value::{Number, Value};

/// Bounds on what the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deepest nesting of arrays and objects accepted. Deeper input is an
    /// [`ErrorKind::TooDeep`] error rather than unbounded memory or time.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 512 levels: far beyond any log record, small enough to bound work on hostile input.
    fn default() -> Self {
        Limits { max_depth: 512 }
    }
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes are not UTF-8 (JSON text must be).
    InvalidUtf8,
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A value was expected here.
    ExpectedValue,
    /// An object key (a string) was expected here.
    ExpectedKey,
    /// `:` was expected after an object key.
    ExpectedColon,
    /// `,` or the closing bracket was expected.
    ExpectedCommaOrClose(char),
    /// A backslash escape that JSON does not define.
    InvalidEscape,
    /// A `\u` escape that is not four hex digits or is an unpaired surrogate.
    InvalidUnicodeEscape,
    /// A raw control character (below U+0020) inside a string.
    ControlCharacter,
    /// A malformed number.
    InvalidNumber,
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep(usize),
    /// Something other than whitespace after the document.
    TrailingCharacters,
}

/// A parse error: what went wrong and at which byte of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at byte {offset}", self.message())]
pub struct Error {
    /// Byte offset into the input where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// What went wrong, without the offset.
    pub fn message(&self) -> String {
        match &self.kind {
            ErrorKind::InvalidUtf8 => "invalid UTF-8".to_owned(),
            ErrorKind::UnexpectedEnd => "unexpected end of input".to_owned(),
            ErrorKind::ExpectedValue => "expected a JSON value".to_owned(),
            ErrorKind::ExpectedKey => "expected a string key".to_owned(),
            ErrorKind::ExpectedColon => "expected `:` after the key".to_owned(),
            ErrorKind::ExpectedCommaOrClose(c) => format!("expected `,` or `{c}`"),
            ErrorKind::InvalidEscape => "invalid escape sequence".to_owned(),
            ErrorKind::InvalidUnicodeEscape => "invalid \\u escape".to_owned(),
            ErrorKind::ControlCharacter => "control character inside a string".to_owned(),
            ErrorKind::InvalidNumber => "invalid number".to_owned(),
            ErrorKind::TooDeep(limit) => format!("nesting deeper than {limit} levels"),
            ErrorKind::TrailingCharacters => "unexpected characters after the document".to_owned(),
        }
    }
}

/// Parses one JSON document with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Value<'_>, Error> {
    parse_with(input, Limits::default())
}

/// Parses one JSON document (surrounding whitespace allowed) with explicit limits.
pub fn parse_with(input: &[u8], limits: Limits) -> Result<Value<'_>, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error {
        offset: e.valid_up_to(),
        kind: ErrorKind::InvalidUtf8,
    })?;
    Parser {
        text,
        at: Cursor::new(text.as_bytes()),
    }
    .document(limits)
}

/// A container being filled.
enum Open<'a> {
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>, Cow<'a, str>),
}

struct Parser<'a> {
    text: &'a str,
    at: Cursor<'a>,
}

impl<'a> Parser<'a> {
    fn document(mut self, limits: Limits) -> Result<Value<'a>, Error> {
        let mut stack: Vec<Open<'a>> = Vec::new();
        self.at.skip_ws();
        'value: loop {
            // Read one value, or open a container and go round for its first element.
            let mut value = match self.at.peek() {
                None => return self.at.err(ErrorKind::UnexpectedEnd),
                Some(b'{') => {
                    self.at.pos += 1;
                    self.at.skip_ws();
                    if self.at.peek() == Some(b'}') {
                        self.at.pos += 1;
                        Value::Object(Vec::new())
                    } else {
                        if stack.len() >= limits.max_depth {
                            return self.at.err(ErrorKind::TooDeep(limits.max_depth));
                        }
                        let key = self.key()?;
                        stack.push(Open::Object(Vec::new(), key));
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.at.pos += 1;
                    self.at.skip_ws();
                    if self.at.peek() == Some(b']') {
                        self.at.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        if stack.len() >= limits.max_depth {
                            return self.at.err(ErrorKind::TooDeep(limits.max_depth));
                        }
                        stack.push(Open::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::String(self.string()?),
                Some(b't') => {
                    self.at.keyword(b"true")?;
                    Value::Bool(true)
                }
                Some(b'f') => {
                    self.at.keyword(b"false")?;
                    Value::Bool(false)
                }
                Some(b'n') => {
                    self.at.keyword(b"null")?;
                    Value::Null
                }
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.at.pos;
                    self.at.number()?;
                    match self.text.get(start..self.at.pos) {
                        Some(text) => Value::Number(Number::from_source(text)),
                        None => return self.at.err(ErrorKind::InvalidNumber),
                    }
                }
                Some(_) => return self.at.err(ErrorKind::ExpectedValue),
            };
            // Attach the finished value to its parent; close parents that end here.
            loop {
                self.at.skip_ws();
                match stack.last_mut() {
                    None => {
                        if self.at.pos != self.at.bytes.len() {
                            return self.at.err(ErrorKind::TrailingCharacters);
                        }
                        return Ok(value);
                    }
                    Some(Open::Array(items)) => {
                        items.push(value);
                        match self.at.peek() {
                            Some(b',') => {
                                self.at.pos += 1;
                                self.at.skip_ws();
                                continue 'value;
                            }
                            Some(b']') => {
                                self.at.pos += 1;
                                value = Value::Array(std::mem::take(items));
                                stack.pop();
                            }
                            None => return self.at.err(ErrorKind::UnexpectedEnd),
                            Some(_) => return self.at.err(ErrorKind::ExpectedCommaOrClose(']')),
                        }
                    }
                    Some(Open::Object(members, key)) => {
                        members.push((std::mem::take(key), value));
                        match self.at.peek() {
                            Some(b',') => {
                                self.at.pos += 1;
                                self.at.skip_ws();
                                *key = self.key()?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.at.pos += 1;
                                value = Value::Object(std::mem::take(members));
                                stack.pop();
                            }
                            None => return self.at.err(ErrorKind::UnexpectedEnd),
                            Some(_) => return self.at.err(ErrorKind::ExpectedCommaOrClose('}')),
                        }
                    }
                }
            }
        }
    }

    /// `"key"` `:` and the whitespace after it.
    fn key(&mut self) -> Result<Cow<'a, str>, Error> {
        if self.at.peek() != Some(b'"') {
            return self.at.err(if self.at.peek().is_none() {
                ErrorKind::UnexpectedEnd
            } else {
                ErrorKind::ExpectedKey
            });
        }
        let key = self.string()?;
        self.at.skip_ws();
        if self.at.peek() != Some(b':') {
            return self.at.err(ErrorKind::ExpectedColon);
        }
        self.at.pos += 1;
        self.at.skip_ws();
        Ok(key)
    }

    /// A string starting at the opening quote; borrows when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        self.at.pos += 1; // opening quote
        let start = self.at.pos;
        // Fast path: find the end without escapes.
        loop {
            self.at.skip_plain_string();
            match self.at.peek() {
                None => return self.at.err(ErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    let s = self.text.get(start..self.at.pos).unwrap_or_default();
                    self.at.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return self.at.err(ErrorKind::ControlCharacter),
                Some(_) => self.at.pos += 1,
            }
        }
        let mut out = String::from(self.text.get(start..self.at.pos).unwrap_or_default());
        loop {
            // Copy the run of plain characters up to the next quote or backslash.
            let run_start = self.at.pos;
            loop {
                self.at.skip_plain_string();
                match self.at.peek() {
                    None | Some(b'"' | b'\\') => break,
                    Some(0..=0x1f) => return self.at.err(ErrorKind::ControlCharacter),
                    Some(_) => self.at.pos += 1,
                }
            }
            out.push_str(self.text.get(run_start..self.at.pos).unwrap_or_default());
            match self.at.peek() {
                None => return self.at.err(ErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    self.at.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                _ => {
                    // A backslash.
                    self.at.pos += 1;
                    out.push(self.at.escape()?);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &str) -> ErrorKind {
        match parse(input.as_bytes()) {
            Err(e) => e.kind,
            Ok(v) => panic!("parsed {input:?} as {v:?}"),
        }
    }

    #[test]
    fn parses_every_kind_of_value() {
        let v =
            parse(br#" {"a": [1, -2.5e3, true, false, null, "x\"y\u00e9\ud83d\ude00"], "b": {}} "#)
                .unwrap();
        let a = v.get("a").unwrap().as_array().unwrap();
        assert_eq!(a.len(), 6);
        assert!(matches!(&a[0], Value::Number(n) if n.as_str() == "1"));
        assert!(matches!(&a[1], Value::Number(n) if n.as_str() == "-2.5e3"));
        assert_eq!(a[5].as_str(), Some("x\"y\u{e9}\u{1F600}"));
        assert_eq!(v.get("b"), Some(&Value::Object(vec![])));
    }

    #[test]
    fn borrows_plain_strings() {
        let v = parse(br#"["plain"]"#).unwrap();
        assert!(matches!(
            &v.as_array().unwrap()[0],
            Value::String(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let v = parse(br#"{"k":1,"k":2}"#).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn rejects_malformed_input_with_offsets() {
        assert_eq!(kind(""), ErrorKind::UnexpectedEnd);
        assert_eq!(kind("{"), ErrorKind::UnexpectedEnd);
        assert_eq!(kind("{\"a\" 1}"), ErrorKind::ExpectedColon);
        assert_eq!(kind("[1 2]"), ErrorKind::ExpectedCommaOrClose(']'));
        assert_eq!(kind("{\"a\":1,}"), ErrorKind::ExpectedKey);
        assert_eq!(kind("[1,]"), ErrorKind::ExpectedValue);
        assert_eq!(kind("01"), ErrorKind::TrailingCharacters);
        assert_eq!(kind("1."), ErrorKind::InvalidNumber);
        assert_eq!(kind("-"), ErrorKind::InvalidNumber);
        assert_eq!(kind("\"\\x\""), ErrorKind::InvalidEscape);
        assert_eq!(kind("\"\\ud800\""), ErrorKind::InvalidUnicodeEscape);
        assert_eq!(kind("\"a\nb\""), ErrorKind::ControlCharacter);
        assert_eq!(kind("{}{}"), ErrorKind::TrailingCharacters);
        assert_eq!(kind("nul"), ErrorKind::ExpectedValue);
        let e = parse(b"[1, x]").unwrap_err();
        assert_eq!(e.offset, 4);
        assert_eq!(e.to_string(), "expected a JSON value at byte 4");
        assert_eq!(
            parse(b"[\"\xff\"]").unwrap_err().kind,
            ErrorKind::InvalidUtf8
        );
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let deep = "[".repeat(100_000);
        assert_eq!(kind(&deep), ErrorKind::TooDeep(512));
        let ok = format!("{}{}", "[".repeat(512), "]".repeat(512));
        assert!(parse(ok.as_bytes()).is_ok());
        let limits = Limits { max_depth: 100_000 };
        let deeper = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Parsing and dropping 100 000 levels must not overflow the test thread's stack.
        assert!(parse_with(deeper.as_bytes(), limits).is_ok());
        let objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(parse_with(objects.as_bytes(), limits).is_ok());
        // Copying (clone, borrowed, owned) and writing 100 000 levels must not either.
        for text in [deeper, objects] {
            let value = parse_with(text.as_bytes(), limits).unwrap();
            for copy in [value.clone(), value.borrowed(), value.to_static()] {
                let mut out = String::new();
                crate::write_value(&mut out, &copy);
                assert_eq!(out, text);
            }
        }
    }
}
