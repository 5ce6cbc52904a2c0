//! Splitting pasted or stored text into JSON documents.
//!
//! Logs come as NDJSON (one document per line) or as JSON files whose documents span lines (an
//! Event Hub `{"records":[…]}` envelope, pretty-printed). [`split_documents`] handles both by
//! following brackets and strings, so a command-line tool and a browser page read text the
//! same way.

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
