//! Reading log inputs as a sequence of JSON documents, with every byte accounted for.
//!
//! # What an input may be
//! Text in UTF-8 (a byte order mark at the start of the input or of a line is skipped), plain
//! or gzip-compressed (recognised by its magic bytes, decompressed as it streams, any file
//! name). Anything else that is recognisably not JSON text (UTF-16 or UTF-32, another
//! compression format, binary data with NUL bytes) is refused as a whole with an error that says
//! what it looks like; the scan goes on with the next input.
//!
//! # The framing rule
//! The layout is decided by content, never by file name, so an Azure `PT1H.json` (JSON Lines
//! under a `.json` name), an NDJSON file, a pretty-printed `{"records":[…]}` envelope and stdin
//! are all read the same way:
//!
//! 1. Input is read line by line (`\n`, `\r\n`; a lone `\r` is JSON whitespace). Blank lines are
//!    skipped.
//! 2. A line that holds one or more complete JSON values, separated by whitespace, gives one
//!    document per value (JSON Lines, NDJSON, concatenated JSON).
//! 3. A line that opens a value it does not close (the first line of a pretty-printed document)
//!    starts a document that takes the following lines until the value closes; what follows on
//!    the closing line is read by rule 2.
//! 4. A line that is neither, and a multi-line document that turns out broken (a syntax error
//!    found on a later line, or the input ends first), cost one document: the first line is
//!    reported invalid, and reading resumes at the next line, so the records after a broken one
//!    are never lost. A broken value on a line costs the rest of that line.
//! 5. A document longer than the size cap is reported with its first line and skipped without
//!    being held in memory: a line longer than the cap is skipped as it streams; a multi-line
//!    document that outgrows it is followed to its end by its brackets alone.
//!
//! Every document framed here is checked to be JSON text (the engine's validating scan), so a
//! document counts as valid only when it is, whether or not the prefilter would have looked at
//! it. The framer itself is the engine's ([`vmext_engine::documents::Framer`]), shared with the
//! browser playground; this module adds what only files and streams need: decompression,
//! refusing what is not text, and a line reader whose memory is bounded by the cap.

use std::io::{self, Read};

pub use vmext_engine::documents::{DEFAULT_MAX_DOCUMENT_BYTES, Frame, Framer, Line, trim_line};

/// Why an input cannot be read as JSON text at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening or reading failed (displayed as the I/O error: callers put the input's name in
    /// front).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are recognisably something else; the message says what.
    #[error("not JSON text: {0}")]
    NotText(String),
}

const GZIP_MAGIC: &[u8] = b"\x1F\x8B";

/// How much of an input is looked at to recognise what it is.
const HEAD: usize = 4096;

/// Wraps an input so that it yields JSON text: gzip is decompressed, a leading UTF-8 byte order
/// mark is left for the line reader to skip, and other formats are refused.
pub fn text_reader<'r>(reader: impl Read + 'r) -> Result<Box<dyn Read + 'r>, InputError> {
    let (head, rest) = read_head(reader)?;
    if head.starts_with(GZIP_MAGIC) {
        let decoder = flate2::read::MultiGzDecoder::new(io::Cursor::new(head).chain(rest));
        let (head, rest) = read_head(decoder)?;
        refuse_non_text(&head, " (inside gzip)")?;
        return Ok(Box::new(io::Cursor::new(head).chain(rest)));
    }
    refuse_non_text(&head, "")?;
    Ok(Box::new(io::Cursor::new(head).chain(rest)))
}

/// The fewest bytes looked at before an input is recognised: the longest magic number (xz's).
const MIN_HEAD: usize = 6;

/// Reads the start of an input to recognise it: up to [`HEAD`] bytes, but no more than is
/// already there once [`MIN_HEAD`] bytes are in. A file gives its first [`HEAD`] bytes in one
/// read; a pipe from a live source (`tail -f … |`) gives what has been written so far, and its
/// first record is scanned at once instead of waiting for [`HEAD`] bytes to arrive.
fn read_head<R: Read>(mut reader: R) -> io::Result<(Vec<u8>, R)> {
    let mut head = vec![0; HEAD];
    let mut filled = 0;
    while filled < HEAD {
        let want = HEAD - filled;
        match reader.read(head.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled >= MIN_HEAD && n < want {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok((head, reader))
}

/// Refuses inputs that are recognisably not UTF-8 JSON text.
fn refuse_non_text(head: &[u8], inside: &str) -> Result<(), InputError> {
    let what = if head.starts_with(b"\xFF\xFE\x00\x00") || head.starts_with(b"\x00\x00\xFE\xFF") {
        Some("UTF-32 text (byte order mark); convert it to UTF-8 first, e.g. with iconv")
    } else if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        Some("UTF-16 text (byte order mark); convert it to UTF-8 first, e.g. with iconv")
    } else if head.starts_with(b"PK\x03\x04") {
        Some("a zip archive; unpack it first")
    } else if head.starts_with(b"BZh") {
        Some("bzip2-compressed data; decompress it first (gzip is read directly)")
    } else if head.starts_with(b"\xFD7zXZ\x00") {
        Some("xz-compressed data; decompress it first (gzip is read directly)")
    } else if head.starts_with(b"\x28\xB5\x2F\xFD") {
        Some("zstd-compressed data; decompress it first (gzip is read directly)")
    } else if head.contains(&0) {
        // JSON text never holds a NUL byte, not even inside a string.
        let even_nul = head.iter().step_by(2).all(|&b| b == 0);
        let odd_nul = head.iter().skip(1).step_by(2).all(|&b| b == 0);
        if even_nul != odd_nul {
            Some(
                "UTF-16 text without a byte order mark (every other byte is NUL); convert it to UTF-8 first",
            )
        } else {
            Some("binary data (NUL bytes)")
        }
    } else {
        None
    };
    match what {
        Some(what) => Err(InputError::NotText(format!("{what}{inside}"))),
        None => Ok(()),
    }
}

/// Calls `f(line_number, line)` for every line, blank ones included, and gives the number of
/// lines.
///
/// The input is read in large chunks and lines are handed out as slices of the chunk, found
/// with a SIMD newline search: no per-line copy. Memory is one buffer that grows only to hold
/// the longest line, and never beyond `max_line` bytes plus one chunk: a longer line is handed
/// out in pieces as it streams ([`Line::Piece`], then [`Line::TooLong`]) and never held whole.
pub fn for_each_line(
    mut reader: impl Read,
    max_line: usize,
    mut f: impl FnMut(u64, Line<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    const CHUNK: usize = 1 << 20;
    let mut buf: Vec<u8> = vec![0; CHUNK];
    // `buf[..filled]` holds unread text; it starts with the partial line left from the last
    // chunk.
    let mut filled = 0;
    // `buf[..searched]` is known to hold no newline: each byte is searched once, however long
    // the line and however small the reads.
    let mut searched = 0;
    // Bytes of an over-long line already handed out and dropped (0: none).
    let mut skipped: u64 = 0;
    let mut line = 0u64;
    let mut eof = false;
    while !eof {
        if filled == buf.len() {
            if filled >= max_line {
                // Over the cap: hand out what is held, drop it, and go on to the line's end.
                f(line + 1, Line::Piece(buf.get(..filled).unwrap_or_default()))?;
                skipped += filled as u64;
                filled = 0;
                searched = 0;
            } else {
                // A line longer than the buffer: make room for more of it.
                let grown = (buf.len() * 2).min(max_line.max(CHUNK).saturating_add(CHUNK));
                buf.resize(grown, 0);
            }
        }
        let n = match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        eof = n == 0;
        filled += n;
        let text = buf.get(..filled).unwrap_or_default();
        let mut start = 0;
        let fresh = text.get(searched..).unwrap_or_default();
        for at in memchr::memchr_iter(b'\n', fresh) {
            let end = searched + at;
            line += 1;
            end_line(
                &mut f,
                max_line,
                line,
                text.get(start..end).unwrap_or_default(),
                skipped,
            )?;
            skipped = 0;
            start = end + 1;
        }
        if eof && (start < filled || skipped > 0) {
            line += 1;
            end_line(
                &mut f,
                max_line,
                line,
                text.get(start..).unwrap_or_default(),
                skipped,
            )?;
            start = filled;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        searched = filled;
    }
    Ok(line)
}

/// Ends a line: as text, or as the last piece of an over-long one.
fn end_line(
    f: &mut impl FnMut(u64, Line<'_>) -> io::Result<()>,
    max_line: usize,
    line: u64,
    piece: &[u8],
    skipped: u64,
) -> io::Result<()> {
    if skipped > 0 || piece.len() > max_line {
        f(line, Line::Piece(piece))?;
        f(line, Line::TooLong(skipped + piece.len() as u64))
    } else {
        f(line, Line::Text(trim_line(piece)))
    }
}

/// Reads a whole input through the text reader, the line reader and the framer.
pub fn frames(
    reader: impl Read,
    max_document: usize,
    emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
) -> Result<(), InputError> {
    frames_of(reader, Start::Input, max_document, emit).map(|_| ())
}

/// Where the text handed to [`frames_of`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the start of an input, which is recognised first ([`text_reader`]).
    Input,
    /// At the start of a line of an input that was recognised as plain text as a whole
    /// ([`splittable`]): framed as it is.
    Line,
}

/// How framing a piece of text ended ([`frames_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed {
    /// Lines read.
    pub lines: u64,
    /// Whether the framer was between documents when the text ended ([`Framer::is_idle`]):
    /// the text after it can then be framed on its own, with the same result.
    pub idle: bool,
}

/// [`frames`] for text that starts where `start` says, telling how it ended.
pub fn frames_of(
    reader: impl Read,
    start: Start,
    max_document: usize,
    emit: &mut dyn FnMut(Frame<'_>) -> io::Result<()>,
) -> Result<Framed, InputError> {
    let text: Box<dyn Read> = match start {
        Start::Input => text_reader(reader)?,
        Start::Line => Box::new(reader),
    };
    let mut framer = Framer::new(max_document);
    let lines = for_each_line(text, max_document, |n, line| framer.push(n, line, emit))?;
    let idle = framer.is_idle();
    framer.finish(emit)?;
    Ok(Framed { lines, idle })
}

/// Whether an input that starts with `head` (up to its first [`SPLITTABLE_HEAD`] bytes) can
/// be framed in pieces split at line ends ([`Start::Line`]): plain JSON text, not compressed,
/// whose first line, when `head` holds all of it, does not open a document that goes on over
/// the next lines (a pretty-printed envelope, which pieces would only cut).
pub fn splittable(head: &[u8]) -> bool {
    if head.starts_with(GZIP_MAGIC) || refuse_non_text(head, "").is_err() {
        return false;
    }
    match memchr::memchr(b'\n', head) {
        Some(end) => {
            let first = trim_line(head.get(..end).unwrap_or_default());
            !matches!(
                vmext_json::validate(first),
                Err(e) if e.kind == vmext_json::ErrorKind::UnexpectedEnd
            )
        }
        None => true,
    }
}

/// How many bytes of an input [`splittable`] wants to see.
pub const SPLITTABLE_HEAD: usize = HEAD;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A live source: one record written, then nothing more for now (a further read would
    /// block; here it fails the test).
    struct Live(Option<&'static [u8]>);

    impl Read for Live {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(data) = self.0.take() else {
                panic!("read again: the first record would wait for more input");
            };
            buf[..data.len()].copy_from_slice(data);
            Ok(data.len())
        }
    }

    #[test]
    fn a_live_source_is_not_waited_on_for_a_full_head() {
        let record: &[u8] = b"{\"operationName\":\"x\"}\n";
        let (head, _) = read_head(Live(Some(record))).unwrap();
        assert_eq!(head, record);
        // Fewer bytes than a magic number: reads go on (to the end here).
        let short = io::Cursor::new(b"{}".to_vec()).chain(io::Cursor::new(b"\n".to_vec()));
        let (head, _) = read_head(short).unwrap();
        assert_eq!(head, b"{}\n");
    }

    /// Frames text and describes each frame as `line:D:text`, `line:I` or `line:O:bytes`.
    fn framed(text: &[u8], cap: usize) -> Vec<String> {
        let mut out = Vec::new();
        frames(text, cap, &mut |f| {
            out.push(match f {
                Frame::Document { line, text } => {
                    format!("{line}:D:{}", String::from_utf8_lossy(text).trim())
                }
                Frame::Invalid { line, .. } => format!("{line}:I"),
                Frame::Oversized { line, bytes } => format!("{line}:O:{bytes}"),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn json_lines_under_any_name_lose_nothing_after_a_broken_line() {
        let text = b"{\"a\":1}\n{\"a\":\"x\n{\"b\":2}\n\n{\"c\":3}\r\n";
        assert_eq!(
            framed(text, 1 << 20),
            ["1:D:{\"a\":1}", "2:I", "3:D:{\"b\":2}", "5:D:{\"c\":3}"]
        );
    }

    #[test]
    fn an_unclosed_object_costs_only_its_line() {
        let text = b"{\"a\":1,\n{\"b\":2}\n{\"c\":3}\n";
        assert_eq!(
            framed(text, 1 << 20),
            ["1:I", "2:D:{\"b\":2}", "3:D:{\"c\":3}"]
        );
        let text = b"[\n{\"b\":2}\n";
        assert_eq!(framed(text, 1 << 20), ["1:I", "2:D:{\"b\":2}"]);
    }

    #[test]
    fn pretty_printed_documents_span_lines() {
        let text = b"{\n  \"records\": [\n    {\"a\": \"}\"},\n    {\"b\": 1}\n  ]\n}\n{\"c\":[1]}  7 {\"d\":\n1}";
        let got = framed(text, 1 << 20);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("1:D:{\n  \"records\""), "{got:?}");
        // `7` is a complete value but no record: an invalid document.
        assert_eq!(got[1..], ["7:D:{\"c\":[1]}", "7:I", "7:D:{\"d\":\n1}"]);
    }

    #[test]
    fn a_broken_pretty_printed_envelope_keeps_its_intact_records() {
        let text = b"{\"records\": [\n{\"a\": 1},\n{\"b\": 2}\n";
        let got = framed(text, 1 << 20);
        assert_eq!(got, ["1:I", "2:D:{\"a\": 1}", "2:I", "3:D:{\"b\": 2}"]);
    }

    #[test]
    fn byte_order_marks_and_lone_carriage_returns() {
        let text = b"\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBF{\"b\":2}\r{\"c\":3}\r";
        assert_eq!(
            framed(text, 1 << 20),
            ["1:D:{\"a\":1}", "2:D:{\"b\":2}", "2:D:{\"c\":3}"]
        );
    }

    #[test]
    fn documents_over_the_cap_are_skipped_and_reported() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let text = format!(
            "{{\"s\":1}}\n{long}\n{{\"t\":2}}\n{{\n\"u\": \"{}\"\n}}\n{{\"v\":3}}\n",
            "y".repeat(100)
        );
        assert_eq!(
            framed(text.as_bytes(), 50),
            [
                "1:D:{\"s\":1}".to_owned(),
                format!("2:O:{}", long.len()),
                "3:D:{\"t\":2}".to_owned(),
                "4:O:112".to_owned(),
                "7:D:{\"v\":3}".to_owned(),
            ]
        );
    }

    #[test]
    fn gzip_is_read_and_other_formats_are_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(framed(&gz, 1 << 20), ["1:D:{\"a\":1}", "2:D:{\"b\":2}"]);
        let utf16: Vec<u8> = "{\"a\":1}\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for (bytes, says) in [
            ([b"\xFF\xFE".as_slice(), &utf16].concat(), "UTF-16"),
            (utf16.clone(), "UTF-16"),
            (b"PK\x03\x04rest".to_vec(), "zip"),
            (b"\x00\x01\x02\x03\x04".to_vec(), "binary"),
        ] {
            let err = frames(&bytes[..], 1 << 20, &mut |_| Ok(())).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    /// A line far over the cap is never held: the reader is never asked for more room than
    /// the cap plus one chunk, however long the line.
    #[test]
    fn memory_stays_bounded_by_the_cap_on_an_endless_line() {
        /// 256 MiB of `x` without a line break, then one record; remembers the largest read.
        struct Endless {
            left: usize,
            tail: &'static [u8],
            largest: usize,
        }
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                self.largest = self.largest.max(out.len());
                if self.left > 0 {
                    let n = out.len().min(self.left);
                    out[..n].fill(b'x');
                    self.left -= n;
                    return Ok(n);
                }
                let n = out.len().min(self.tail.len());
                out[..n].copy_from_slice(&self.tail[..n]);
                self.tail = &self.tail[n..];
                Ok(n)
            }
        }
        let cap = 4 << 20;
        let mut reader = Endless {
            left: 256 << 20,
            tail: b"\n{\"after\":1}\n",
            largest: 0,
        };
        let mut framer = Framer::new(cap);
        let mut seen = Vec::new();
        for_each_line(&mut reader, cap, |n, line| {
            framer.push(n, line, &mut |f| {
                seen.push(format!("{f:?}"));
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "Oversized { line: 1, bytes: 268435456 }",
                "Document { line: 2, text: [123, 34, 97, 102, 116, 101, 114, 34, 58, 49, 125] }"
            ]
        );
        assert!(reader.largest <= cap + (1 << 20), "{}", reader.largest);
    }

    /// Lines across chunk boundaries and lines longer than a chunk come out whole, numbered.
    #[test]
    fn lines_longer_than_a_chunk_and_reads_of_any_size() {
        /// A reader that returns at most `step` bytes per read.
        struct Trickle<'a> {
            data: &'a [u8],
            step: usize,
        }
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.step.min(out.len()).min(self.data.len());
                out[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let long = "x".repeat(3 << 20);
        let text = format!("a\n{long}\r\n\nb\nc");
        for step in [7, 4096, usize::MAX] {
            for (cap, long_line) in [(usize::MAX, Some(3 << 20)), (1 << 20, None)] {
                let mut seen = Vec::new();
                let reader = Trickle {
                    data: text.as_bytes(),
                    step: step.min(text.len()),
                };
                for_each_line(reader, cap, |n, l| {
                    seen.push(match l {
                        Line::Text(d) => (n, d.len(), true),
                        Line::TooLong(len) => (n, len as usize, false),
                        Line::Piece(_) => return Ok(()),
                    });
                    Ok(())
                })
                .unwrap();
                let second = match long_line {
                    Some(len) => (2, len, true),
                    None => (2, (3 << 20) + 1, false),
                };
                assert_eq!(
                    seen,
                    vec![
                        (1, 1, true),
                        second,
                        (3, 0, true),
                        (4, 1, true),
                        (5, 1, true)
                    ],
                    "step {step} cap {cap}"
                );
            }
        }
    }
}
