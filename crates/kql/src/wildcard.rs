//! Anchored `*` patterns in linear time.
//!
//! A pattern whose only metacharacter is `*` needs no backtracking: the first piece must be a
//! prefix, the last a suffix, and each piece between them can take its leftmost occurrence
//! after the previous one. So `*a*a*a*…b` costs one left-to-right pass, never an exponential
//! search.

use memchr::memmem;

use crate::ast::Piece;

/// Whether `text` matches the whole pattern.
pub fn glob_match(pieces: &[Piece], text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut start, mut end) = (0usize, bytes.len());
    let mut middle = pieces;
    // Leading literal: a prefix.
    if let [Piece::Text(first), rest @ ..] = middle {
        if !bytes.starts_with(first.as_bytes()) {
            return false;
        }
        start = first.len();
        middle = rest;
        if middle.is_empty() {
            return start == end;
        }
    }
    // Trailing literal: a suffix that must not overlap the prefix.
    if let [rest @ .., Piece::Text(last)] = middle {
        if !bytes.ends_with(last.as_bytes()) || end - last.len() < start {
            return false;
        }
        end -= last.len();
        middle = rest;
    }
    // Everything left is `*` separated: leftmost occurrences in order.
    for piece in middle {
        if let Piece::Text(t) = piece {
            let window = bytes.get(start..end).unwrap_or_default();
            match memmem::find(window, t.as_bytes()) {
                Some(at) => start += at + t.len(),
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        for (i, part) in s.split('*').enumerate() {
            if i > 0 {
                out.push(Piece::Star);
            }
            if !part.is_empty() {
                out.push(Piece::Text(part.to_owned()));
            }
        }
        out
    }

    #[test]
    fn anchored_star_semantics() {
        let yes = [
            (
                "*CUSTOMSCRIPTEXTENSION*",
                "/X/EXTENSIONS/CUSTOMSCRIPTEXTENSION",
            ),
            ("*/DSC/*", "/A/DSC/B"),
            ("a*", "a"),
            ("*a", "a"),
            ("a*b", "ab"),
            ("a*b*c", "a\nxbxc"),
            ("*", ""),
            ("**", "x"),
        ];
        for (p, t) in yes {
            assert!(glob_match(&pat(p), t), "{p} should match {t}");
        }
        let no = [
            (
                "*CUSTOMSCRIPTEXTENSION*",
                "/x/extensions/CustomScriptExtension",
            ),
            ("*/DSC/*", "/EXTENSIONS/DSC"),
            ("a*a", "a"),
            ("ab*ba", "aba"),
            ("a*b", "ba"),
            ("?", "x"),
        ];
        for (p, t) in no {
            assert!(!glob_match(&pat(p), t), "{p} should not match {t}");
        }
    }

    #[test]
    fn pathological_pattern_is_linear() {
        let pattern = format!("{}b", "*a".repeat(2_000));
        let text = "a".repeat(100_000);
        assert!(!glob_match(&pat(&pattern), &text));
    }
}
