//! Reading log files as a sequence of JSON documents.
//!
//! Two layouts occur in practice: NDJSON (one record per line: Fluent Bit and Vector outputs,
//! Azure storage-account exports) and JSON files holding an Event Hub style
//! `{"records":[…]}` envelope, possibly pretty-printed over many lines. NDJSON is streamed line
//! by line, so memory stays flat however large the file; a `.json` file is read whole and
//! split into its top-level values.

use std::io::{self, BufRead};

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
/// One buffer is reused for every line.
pub fn for_each_line(
    mut reader: impl BufRead,
    mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line += 1;
        let mut doc = buf.as_slice();
        while let Some((last, rest)) = doc.split_last() {
            if matches!(last, b'\n' | b'\r') {
                doc = rest;
            } else {
                break;
            }
        }
        if doc.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        f(line, doc)?;
    }
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
}
