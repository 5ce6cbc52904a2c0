//! Reading log files as a sequence of JSON documents.
//!
//! Two layouts occur in practice: NDJSON (one record per line: Fluent Bit and Vector outputs,
//! Azure storage-account exports) and JSON files holding an Event Hub style
//! `{"records":[…]}` envelope, possibly pretty-printed over many lines. NDJSON is streamed line
//! by line, so memory stays flat however large the file; a `.json` file is read whole and
//! split into its top-level values.

use std::io::{self, BufRead};
use std::path::Path;

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

/// Splits text into its top-level JSON values, returning `(line_number, text)` pairs.
///
/// The split follows brackets and strings only; each piece is then parsed (and judged) by the
/// engine. An unbalanced tail becomes one last piece, which the engine reports as invalid.
pub fn split_documents(text: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1u64;
    while i < text.len() {
        let Some(&b) = text.get(i) else { break };
        if b.is_ascii_whitespace() {
            line += u64::from(b == b'\n');
            i += 1;
            continue;
        }
        let start = i;
        let start_line = line;
        let mut depth = 0usize;
        let mut in_string = false;
        while let Some(&c) = text.get(i) {
            if in_string {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    b'\n' => line += 1,
                    _ => {}
                }
            } else {
                match c {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    b'\n' => line += 1,
                    _ => {}
                }
                if depth == 0 {
                    // A container closed, or a scalar ends at whitespace.
                    if matches!(c, b'}' | b']') {
                        i += 1;
                        break;
                    }
                    if text.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) && c != b'"' {
                        i += 1;
                        break;
                    }
                }
            }
            i += 1;
        }
        out.push((
            start_line,
            text.get(start..i.min(text.len())).unwrap_or_default(),
        ));
    }
    out
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

    #[test]
    fn json_files_split_into_top_level_values() {
        let text = b"{\n \"records\": [\n {\"a\": \"}\"}\n ]\n}\n{\"b\":[1]}  7 {\"broken\": ";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].0, 1);
        assert!(docs[0].1.ends_with(b"}"));
        assert_eq!(docs[1], (6, &b"{\"b\":[1]}"[..]));
        assert_eq!(docs[2].1, b"7");
        assert_eq!(docs[3].1, b"{\"broken\": ");
    }
}
