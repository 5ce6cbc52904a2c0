//! Reading log files as a sequence of JSON documents.
//!
//! Two layouts occur in practice: NDJSON (one record per line: Fluent Bit and Vector outputs,
//! Azure storage-account exports) and JSON files holding an Event Hub style
//! `{"records":[…]}` envelope, possibly pretty-printed over many lines. NDJSON is streamed line
//! by line, so memory stays flat however large the file; a `.json` file is read whole and
//! split into its top-level values.

use std::io::{self, Read};

use std::path::Path;
pub use vmext_engine::documents::split_documents;

/// How an input's documents are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON document per line; blank lines are skipped.
    Ndjson,
    /// One or more JSON documents, each possibly spanning lines.
    Json,
}

impl Layout {
    /// `.json` files are read as JSON documents, everything else (and stdin) as NDJSON.
    pub fn for_path(path: &Path) -> Layout {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Layout::Json,
            _ => Layout::Ndjson,
        }
    }
}

/// Calls `f(line_number, document)` for every non-blank line. A trailing `\r` is removed.
///
/// The input is read in large chunks and lines are handed out as slices of the chunk, found
/// with a SIMD newline search: no per-line copy. Memory is one buffer that grows only to hold
/// the longest line.
pub fn for_each_line(
    mut reader: impl Read,
    mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut buf: Vec<u8> = vec![0; CHUNK];
    // `buf[..filled]` holds unread text; it starts with the partial line left from the last
    // chunk.
    let mut filled = 0;
    // `buf[..searched]` is known to hold no newline: each byte is searched once, however long
    // the line and however small the reads.
    let mut searched = 0;
    let mut line = 0u64;
    let mut eof = false;
    while !eof {
        if filled == buf.len() {
            // A line longer than the buffer: make room for more of it.
            buf.resize(buf.len() * 2, 0);
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
            emit(line, text.get(start..end).unwrap_or_default(), &mut f)?;
            start = end + 1;
        }
        if eof && start < filled {
            line += 1;
            emit(line, text.get(start..).unwrap_or_default(), &mut f)?;
            start = filled;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        searched = filled;
    }
    Ok(())
}

fn emit(
    line: u64,
    mut doc: &[u8],
    f: &mut impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(rest) = doc.strip_suffix(b"\r") {
        doc = rest;
    }
    if doc.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    f(line, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_carriage_returns() {
        let mut seen = Vec::new();
        for_each_line(&b"{\"a\":1}\r\n\n  \n{\"b\":2}"[..], |n, d| {
            seen.push((n, d.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(1, b"{\"a\":1}".to_vec()), (4, b"{\"b\":2}".to_vec())]
        );
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
            let mut seen = Vec::new();
            let reader = Trickle {
                data: text.as_bytes(),
                step: step.min(text.len()),
            };
            for_each_line(reader, |n, d| {
                seen.push((n, d.len()));
                Ok(())
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![(1, 1), (2, 3 << 20), (4, 1), (5, 1)],
                "step {step}"
            );
        }
        let mut seen = Vec::new();
        let reader = Trickle {
            data: b"ab\r\n\ncd\n",
            step: 1,
        };
        for_each_line(reader, |n, d| {
            seen.push((n, d.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, b"ab".to_vec()), (3, b"cd".to_vec())]);
    }
}
