//! Framing text into JSON documents, and splitting large envelopes.
//!
//! Logs come as NDJSON or JSON Lines (one document per line), as JSON documents spanning lines
//! (a pretty-printed Event Hub `{"records":[…]}` envelope), or as a mix. [`Framer`] turns
//! lines into documents by content, never by file name, so the command-line tool and the
//! browser playground read text the same way:
//!
//! 1. A line that holds one or more complete JSON values, separated by whitespace, gives one
//!    document per value; a value that is not an object (no record, no envelope) is an invalid
//!    document.
//! 2. A line that opens a value it does not close starts a document that takes the following
//!    lines until the value closes; what follows on the closing line is read by rule 1.
//! 3. A line that is neither, and a multi-line document that turns out broken (a syntax error
//!    on a later line, or the input ends first), cost one document: the first line is reported
//!    invalid and reading resumes at the next line, so the records after a broken one are never
//!    lost. A broken value on a line costs the rest of that line.
//! 4. A document longer than the size cap is reported with its first line and skipped without
//!    being held: a line longer than the cap comes in pieces ([`Line::Piece`]); a multi-line
//!    document that outgrows the cap is followed to its end by its brackets alone.
//!
//! Every document is checked with the engine's validator, so a document is valid exactly when
//! the engine can parse it, whether or not the prefilter would have looked at it. The framer is
//! written by hand because it needs that exact grammar and the resynchronisation above, which
//! no streaming JSON crate offers.

use std::io;

use vmext_json::{ErrorKind, validate};

/// The default cap on one document's size: far above any Azure record (Event Hub messages
/// are at most 1 MB), low enough that memory stays bounded.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Envelopes larger than this are evaluated in pieces ([`envelope_members`],
/// [`crate::Detector::evaluate_members`]) by the command line and the playground; smaller
/// documents go whole. The results are the same.
pub const ENVELOPE_SPLIT_BYTES: usize = 1 << 20;

/// At most this many members per piece of a split envelope.
pub const MEMBERS_PER_PIECE: usize = 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One framed piece of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete JSON object (valid JSON text: a record or an envelope), starting on `line`.
    Document {
        /// The line it starts on (1-based).
        line: u64,
        /// Its text.
        text: &'a [u8],
    },
    /// A piece of input that is not a JSON document.
    Invalid {
        /// The line it starts on.
        line: u64,
        /// Why, for people.
        reason: String,
    },
    /// A document longer than the cap, skipped unread.
    Oversized {
        /// The line it starts on.
        line: u64,
        /// How many bytes of it were seen (at least the cap).
        bytes: u64,
    },
}

/// One line of input as the line reader hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line (without its `\n`, `\r\n` or leading byte order mark).
    Text(&'a [u8]),
    /// The next piece of a line longer than the cap, handed out as it streams and then
    /// dropped, so that a caller can follow its brackets without holding it.
    Piece(&'a [u8]),
    /// The end of a line longer than the cap (after its pieces); its length in bytes.
    TooLong(u64),
}

/// Removes a trailing `\r` and a leading byte order mark from a line.
pub fn trim_line(mut line: &[u8]) -> &[u8] {
    if let Some(rest) = line.strip_suffix(b"\r") {
        line = rest;
    }
    if let Some(rest) = line.strip_prefix(UTF8_BOM) {
        line = rest;
    }
    line
}

/// Whether the text is JSON whitespace only.
fn is_blank(text: &[u8]) -> bool {
    text.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Frames lines into documents by the rule in the module documentation.
pub struct Framer {
    max_document: usize,
    /// The multi-line document being assembled, if any.
    open: Option<Open>,
    /// A multi-line document over the cap, followed to its end without keeping it.
    skipping: Option<Skip>,
}

/// A multi-line document being assembled.
struct Open {
    /// Its text so far, lines joined with `\n`.
    text: Vec<u8>,
    /// Each line's number and where it starts in `text`.
    lines: Vec<(u64, usize)>,
    /// Bracket state after `text`.
    brackets: Brackets,
    /// Validate the whole text again once it is this long (doubling: linear in total).
    next_check: usize,
}

/// An oversized document being skipped: followed by its brackets alone.
struct Skip {
    /// The line it starts on.
    line: u64,
    /// Bytes seen so far.
    bytes: u64,
    /// Bracket state after them.
    brackets: Brackets,
    /// The value closed inside an over-long line: the rest of that line is dropped with it.
    closed: bool,
}

/// Just enough of JSON's lexical structure to find where a value ends: bracket depth and
/// strings. The validator judges the text; this only finds its end.
#[derive(Debug, Clone, Copy, Default)]
struct Brackets {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

/// What feeding bytes to [`Brackets`] found.
enum Step {
    /// The value is still open after all the bytes.
    Open,
    /// The value closed just before this offset.
    Closed(usize),
    /// A raw line break inside a string: never valid JSON.
    Broken,
}

impl Brackets {
    fn feed(&mut self, bytes: &[u8]) -> Step {
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else if b == b'\n' {
                    return Step::Broken;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Step::Closed(i + 1);
                    }
                }
                _ => {}
            }
        }
        Step::Open
    }
}

impl Skip {
    /// An over-long line outside any document: it is one oversized document by itself (its
    /// brackets are not followed past its end, so a cut line cannot swallow the lines after
    /// it).
    fn line(number: u64) -> Skip {
        Skip {
            line: number,
            bytes: 0,
            brackets: Brackets::default(),
            closed: true,
        }
    }
}

/// Why a document being assembled is already broken, or `None` while it is a valid prefix.
fn prefix_error(text: &[u8]) -> Option<String> {
    match validate(text) {
        Err(e) if !(e.kind == ErrorKind::UnexpectedEnd && e.offset >= text.len()) => {
            Some(format!("invalid JSON: {e}"))
        }
        _ => None,
    }
}

impl Framer {
    /// A framer with a cap on one document's size.
    pub fn new(max_document: usize) -> Framer {
        Framer {
            max_document: max_document.max(1),
            open: None,
            skipping: None,
        }
    }

    /// Frames one line (as `vmext_host::input::for_each_line` gives it), calling `emit` for each
    /// frame it ends.
    pub fn push(
        &mut self,
        number: u64,
        line: Line<'_>,
        emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        match line {
            Line::Text(text) => self.push_text(number, text, emit),
            Line::Piece(piece) => {
                if self.skipping.is_none() {
                    let skip = match self.open.take() {
                        // An over-long line inside a document being assembled: the document
                        // is over the cap. If what came before is already broken, that is
                        // reported instead, and the lines after its first are read again.
                        Some(open) => {
                            let mut brackets = open.brackets;
                            let broken = match prefix_error(&open.text) {
                                Some(reason) => Some(reason),
                                None => matches!(brackets.feed(b"\n"), Step::Broken).then(|| {
                                    "invalid JSON: a line break inside a string (the document is cut)"
                                        .to_owned()
                                }),
                            };
                            if let Some(reason) = broken {
                                self.resync(open, reason, emit)?;
                                return self.push(number, Line::Piece(piece), emit);
                            }
                            let first = open.lines.first().map_or(number, |l| l.0);
                            Skip {
                                line: first,
                                bytes: open.text.len() as u64 + 1,
                                brackets,
                                closed: false,
                            }
                        }
                        None => Skip::line(number),
                    };
                    self.skipping = Some(skip);
                }
                if let Some(skip) = &mut self.skipping {
                    skip.bytes += piece.len() as u64;
                    if !skip.closed && !matches!(skip.brackets.feed(piece), Step::Open) {
                        skip.closed = true;
                    }
                }
                Ok(())
            }
            Line::TooLong(_) => match self.skipping.take() {
                Some(mut skip) if !skip.closed => {
                    // The document goes on after this line, or the line was one on its own.
                    if skip.brackets.depth == 0 || matches!(skip.brackets.feed(b"\n"), Step::Broken)
                    {
                        return emit(Frame::Oversized {
                            line: skip.line,
                            bytes: skip.bytes,
                        });
                    }
                    skip.bytes += 1;
                    self.skipping = Some(skip);
                    Ok(())
                }
                Some(skip) => emit(Frame::Oversized {
                    line: skip.line,
                    bytes: skip.bytes,
                }),
                None => Ok(()),
            },
        }
    }

    fn push_text(
        &mut self,
        number: u64,
        text: &[u8],
        emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(mut skip) = self.skipping.take() {
            skip.bytes += text.len() as u64 + 1;
            match skip.brackets.feed(text) {
                Step::Closed(end) => {
                    emit(Frame::Oversized {
                        line: skip.line,
                        bytes: skip.bytes,
                    })?;
                    return self.push_values(number, text.get(end..).unwrap_or_default(), emit);
                }
                // A line break inside a string cannot happen in a document: it ends here.
                Step::Broken => {
                    return emit(Frame::Oversized {
                        line: skip.line,
                        bytes: skip.bytes,
                    });
                }
                Step::Open => {
                    if matches!(skip.brackets.feed(b"\n"), Step::Broken) {
                        // A line break inside a string: the document ends, cut, here.
                        return emit(Frame::Oversized {
                            line: skip.line,
                            bytes: skip.bytes,
                        });
                    }
                    self.skipping = Some(skip);
                    return Ok(());
                }
            }
        }
        match self.open.take() {
            None => self.push_values(number, text, emit),
            Some(open) => self.continue_open(open, number, text, emit),
        }
    }

    /// Rule 2 and the start of rule 3: the values on a line outside any open document.
    fn push_values(
        &mut self,
        number: u64,
        mut text: &[u8],
        emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            if let Some(rest) = text.strip_prefix(UTF8_BOM) {
                text = rest;
            }
            if is_blank(text) {
                return Ok(());
            }
            match validate(text) {
                Ok(()) => return emit_value(number, text, emit),
                Err(e) if e.kind == ErrorKind::TrailingCharacters && e.offset > 0 => {
                    let (value, rest) = text.split_at(e.offset.min(text.len()));
                    emit_value(number, value, emit)?;
                    text = rest;
                }
                Err(e) if e.kind == ErrorKind::UnexpectedEnd && e.offset >= text.len() => {
                    let mut brackets = Brackets::default();
                    if let Step::Open = brackets.feed(text) {
                        if text.len() > self.max_document {
                            self.skipping = Some(Skip {
                                line: number,
                                bytes: text.len() as u64 + 1,
                                brackets,
                                closed: false,
                            });
                            return Ok(());
                        }
                        self.open = Some(Open {
                            text: text.to_vec(),
                            lines: vec![(number, 0)],
                            brackets,
                            next_check: 0,
                        });
                        return Ok(());
                    }
                    // Unfinished without an open bracket (a cut string or number): broken.
                    return emit(Frame::Invalid {
                        line: number,
                        reason: format!("invalid JSON: {e}"),
                    });
                }
                Err(e) => {
                    return emit(Frame::Invalid {
                        line: number,
                        reason: format!("invalid JSON: {e}"),
                    });
                }
            }
        }
    }

    /// Rule 3: one more line of an open multi-line document.
    fn continue_open(
        &mut self,
        mut open: Open,
        number: u64,
        text: &[u8],
        emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let joined_at = open.text.len() + 1;
        open.text.push(b'\n');
        open.text.extend_from_slice(text);
        open.lines.push((number, joined_at));
        // The line break itself first: inside a string it breaks the document.
        let step = match open.brackets.feed(b"\n") {
            Step::Broken => Step::Broken,
            _ => match open.brackets.feed(text) {
                Step::Closed(end) => Step::Closed(joined_at + end),
                other => other,
            },
        };
        match step {
            Step::Closed(end) => {
                let (value, rest) = open.text.split_at(end.min(open.text.len()));
                match validate(value) {
                    Ok(()) => {
                        let first = open.lines.first().map_or(number, |l| l.0);
                        emit_value(first, value, emit)?;
                        let rest = rest.to_vec();
                        self.push_values(number, &rest, emit)
                    }
                    Err(e) => self.resync(open, format!("invalid JSON: {e}"), emit),
                }
            }
            Step::Broken => self.resync(
                open,
                "invalid JSON: a line break inside a string (the document is cut)".to_owned(),
                emit,
            ),
            Step::Open => {
                let over = open.text.len() > self.max_document;
                if over || open.text.len() >= open.next_check {
                    if let Some(reason) = prefix_error(&open.text) {
                        return self.resync(open, reason, emit);
                    }
                    open.next_check = open.text.len().saturating_mul(2);
                }
                if over {
                    let mut brackets = open.brackets;
                    let first = open.lines.first().map_or(number, |l| l.0);
                    let broken = matches!(brackets.feed(b"\n"), Step::Broken);
                    if broken {
                        return emit(Frame::Oversized {
                            line: first,
                            bytes: open.text.len() as u64,
                        });
                    }
                    self.skipping = Some(Skip {
                        line: first,
                        bytes: open.text.len() as u64 + 1,
                        brackets,
                        closed: false,
                    });
                    return Ok(());
                }
                self.open = Some(open);
                Ok(())
            }
        }
    }

    /// Rule 4: a broken multi-line document costs its first line; the lines after it are read
    /// again from the start.
    fn resync(
        &mut self,
        open: Open,
        reason: String,
        emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let first = open.lines.first().map_or(0, |l| l.0);
        emit(Frame::Invalid {
            line: first,
            reason,
        })?;
        let ends: Vec<usize> = open
            .lines
            .iter()
            .skip(1)
            .map(|&(_, start)| start.saturating_sub(1))
            .chain(std::iter::once(open.text.len()))
            .collect();
        for (&(number, start), &end) in open.lines.iter().skip(1).zip(ends.iter().skip(1)) {
            let line = open.text.get(start..end).unwrap_or_default();
            self.push_text(number, line, emit)?;
        }
        Ok(())
    }

    /// Whether the framer is between documents: no document open across lines and none being
    /// skipped. Framing the lines that follow then goes exactly as framing them afresh, which
    /// is what lets a file be framed in pieces split at such a point.
    pub fn is_idle(&self) -> bool {
        self.open.is_none() && self.skipping.is_none()
    }

    /// The input ended: a document still open is broken (rule 4), one being skipped is
    /// reported oversized.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>) -> io::Result<()> {
        if let Some(skip) = self.skipping.take() {
            emit(Frame::Oversized {
                line: skip.line,
                bytes: skip.bytes,
            })?;
        }
        while let Some(open) = self.open.take() {
            self.resync(
                open,
                "invalid JSON: the input ends inside the document".to_owned(),
                emit,
            )?;
            if let Some(skip) = self.skipping.take() {
                emit(Frame::Oversized {
                    line: skip.line,
                    bytes: skip.bytes,
                })?;
            }
        }
        Ok(())
    }
}

/// Emits one complete JSON value: a document when it is an object (a record or an envelope),
/// an invalid one otherwise, so that a value that is no record is reported even where the
/// prefilter would pass over it unparsed.
fn emit_value(
    line: u64,
    text: &[u8],
    emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
) -> io::Result<()> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        emit(Frame::Document { line, text })
    } else {
        emit(Frame::Invalid {
            line,
            reason: crate::RecordError::NotAnObject.to_string(),
        })
    }
}

/// Frames a whole text held in memory (a paste, a file read whole), calling `emit` for each
/// frame: the same framing as a stream read line by line.
pub fn frame_text(
    text: &[u8],
    max_document: usize,
    emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut framer = Framer::new(max_document);
    let mut lines = text.split(|&b| b == b'\n').peekable();
    let mut number = 0u64;
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break; // the text ended with a line break
        }
        number += 1;
        if line.len() > max_document {
            framer.push(number, Line::Piece(line), emit)?;
            framer.push(number, Line::TooLong(line.len() as u64), emit)?;
        } else {
            framer.push(number, Line::Text(trim_line(line)), emit)?;
        }
    }
    framer.finish(emit)
}

/// The byte ranges of the members of a `{"records":[…]}` envelope, when `text` is one: a
/// valid JSON text (as [`vmext_json::validate`] accepts) whose only key is `records` (however
/// escaped) and whose value is an array. `None` for anything else.
///
/// This lets a host hand a large envelope to [`crate::Detector::evaluate_members`] in bounded
/// pieces instead of as one document: memory and time then grow with the piece, not with the
/// envelope. It scans the text once and allocates only the list of ranges.
pub fn envelope_members(text: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut at = skip_ws(text, 0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(text, at + 1);
    let key_end = string_end(text, at)?;
    let key = text.get(at..key_end)?;
    let is_records = key == b"\"records\""
        || (key.contains(&b'\\')
            && vmext_json::parse(key)
                .ok()
                .is_some_and(|k| k.as_str() == Some("records")));
    if !is_records {
        return None;
    }
    at = skip_ws(text, key_end);
    if text.get(at) != Some(&b':') {
        return None;
    }
    at = skip_ws(text, at + 1);
    if text.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_ws(text, at + 1);
    let mut members = Vec::new();
    if text.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            let start = at;
            at = value_end(text, at)?;
            members.push(start..at);
            at = skip_ws(text, at);
            match text.get(at) {
                Some(b',') => at = skip_ws(text, at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    at = skip_ws(text, at);
    if text.get(at) != Some(&b'}') {
        return None;
    }
    (skip_ws(text, at + 1) == text.len()).then_some(members)
}

/// The members of an envelope (`members` as [`envelope_members`] found them in `text`) in
/// pieces of at most `max_members` members and about [`ENVELOPE_SPLIT_BYTES`] bytes, each with
/// the envelope index of its first member: what a host hands to
/// [`crate::Detector::evaluate_members`] one piece at a time.
pub fn envelope_pieces<'t>(
    text: &'t [u8],
    members: &[std::ops::Range<usize>],
    max_members: usize,
) -> Vec<(usize, Vec<&'t [u8]>)> {
    let mut pieces = Vec::new();
    let mut piece: Vec<&[u8]> = Vec::new();
    let mut first = 0;
    let mut bytes = 0;
    for (i, range) in members.iter().enumerate() {
        if !piece.is_empty() && (piece.len() >= max_members || bytes >= ENVELOPE_SPLIT_BYTES) {
            pieces.push((first, std::mem::take(&mut piece)));
            first = i;
            bytes = 0;
        }
        piece.push(text.get(range.clone()).unwrap_or_default());
        bytes += range.len();
    }
    if !piece.is_empty() {
        pieces.push((first, piece));
    }
    pieces
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while text
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string starting at `at`, if a string starts there.
fn string_end(text: &[u8], at: usize) -> Option<usize> {
    if text.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match text.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `at` in valid JSON text.
fn value_end(text: &[u8], at: usize) -> Option<usize> {
    match text.get(at)? {
        b'"' => string_end(text, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match text.get(i)? {
                    b'"' => {
                        i = string_end(text, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while text
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n'))
            {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_pieces_are_bounded_and_numbered() {
        let text = b"{\"records\":[1,22,333,4444,55555]}";
        let members = envelope_members(text).unwrap();
        let pieces = envelope_pieces(text, &members, 2);
        let got: Vec<(usize, Vec<&[u8]>)> = pieces;
        assert_eq!(
            got,
            vec![
                (0, vec![&b"1"[..], b"22"]),
                (2, vec![&b"333"[..], b"4444"]),
                (4, vec![&b"55555"[..]])
            ]
        );
        assert_eq!(envelope_pieces(text, &[], 2), vec![]);
    }

    #[test]
    fn envelope_members_are_found_in_valid_envelopes_only() {
        let text = b" {\"records\" : [ {\"a\":\"]\\\"\"} , 7,\"s\",[1,{}] ,null]}\n";
        let members: Vec<&[u8]> = envelope_members(text)
            .unwrap()
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(
            members,
            [
                &b"{\"a\":\"]\\\"\"}"[..],
                b"7",
                b"\"s\"",
                b"[1,{}]",
                b"null"
            ]
        );
        assert_eq!(envelope_members(b"{\"rec\\u006frds\":[]}"), Some(vec![]));
        for other in [
            &b"{\"records\":[],\"more\":1}"[..],
            b"{\"records\":{}}",
            b"{\"record\":[]}",
            b"[{\"records\":[]}]",
            b"{\"records\":[1]} x",
        ] {
            assert_eq!(
                envelope_members(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
