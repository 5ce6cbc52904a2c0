//! Anchored wildcard patterns, the one matcher for KQL's `*` values and field names and for
//! Elasticsearch's `wildcard` query (exception items), which adds `?` and `\` escapes.
//!
//! Between its stars a pattern is a run of fixed length (in characters). Such runs need no
//! backtracking: the first must be a prefix, the last a suffix, and each run between them can
//! take its leftmost occurrence after the previous one (a later occurrence never ends
//! sooner). So `*a*a*a*…b` costs one left-to-right pass, never an exponential search. Runs of
//! plain text (all of KQL's) are found with `memchr`'s substring search; a run with `?` is
//! tried at each position, at worst the text's length times the run's.

use memchr::memmem;

use crate::ast::Piece;

/// What a piece of a pattern is to the matcher.
enum Unit<'p> {
    /// Any run of characters, including none.
    Star,
    /// This text exactly.
    Text(&'p str),
    /// Exactly one character.
    AnyChar,
}

/// A piece of some pattern type.
trait GlobPiece {
    fn unit(&self) -> Unit<'_>;

    #[inline]
    fn is_star(&self) -> bool {
        matches!(self.unit(), Unit::Star)
    }
}

impl GlobPiece for Piece {
    #[inline]
    fn unit(&self) -> Unit<'_> {
        match self {
            Piece::Text(t) => Unit::Text(t),
            Piece::Star => Unit::Star,
        }
    }
}

/// Whether `text` matches the whole KQL pattern.
pub fn glob_match(pieces: &[Piece], text: &str) -> bool {
    matches(pieces, text)
}

/// An Elasticsearch `wildcard` query pattern on a keyword: anchored, `*` any run of
/// characters, `?` exactly one, `\` takes the next character literally (a final `\` is
/// itself), case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pieces: Vec<WildcardPiece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WildcardPiece {
    Text(String),
    One,
    Star,
}

impl GlobPiece for WildcardPiece {
    #[inline]
    fn unit(&self) -> Unit<'_> {
        match self {
            WildcardPiece::Text(t) => Unit::Text(t),
            WildcardPiece::One => Unit::AnyChar,
            WildcardPiece::Star => Unit::Star,
        }
    }
}

impl Wildcard {
    /// Reads a pattern; every string is one.
    pub fn new(pattern: &str) -> Wildcard {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let literal = match c {
                '*' => {
                    pieces.push(WildcardPiece::Star);
                    continue;
                }
                '?' => {
                    pieces.push(WildcardPiece::One);
                    continue;
                }
                '\\' => chars.next().unwrap_or('\\'),
                c => c,
            };
            match pieces.last_mut() {
                Some(WildcardPiece::Text(t)) => t.push(literal),
                _ => pieces.push(WildcardPiece::Text(literal.to_string())),
            }
        }
        Wildcard { pieces }
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches(&self.pieces, text)
    }
}

/// The matcher: prefix, suffix, then the runs between them leftmost first.
fn matches<P: GlobPiece>(pieces: &[P], text: &str) -> bool {
    let Some(first_star) = pieces.iter().position(P::is_star) else {
        return forward(pieces, text, 0) == Some(text.len());
    };
    let last_star = pieces.iter().rposition(P::is_star).unwrap_or(first_star);
    let (first, middle, last) = (
        pieces.get(..first_star).unwrap_or_default(),
        pieces.get(first_star + 1..last_star).unwrap_or_default(),
        pieces.get(last_star + 1..).unwrap_or_default(),
    );
    let Some(mut start) = forward(first, text, 0) else {
        return false;
    };
    // The suffix must not overlap the prefix.
    let Some(end) = backward(last, text, text.len()).filter(|&end| end >= start) else {
        return false;
    };
    for run in middle.split(P::is_star).filter(|run| !run.is_empty()) {
        let window = text.get(start..end).unwrap_or_default();
        match find(run, window) {
            Some(after) => start += after,
            None => return false,
        }
    }
    true
}

/// Where a run that starts at `at` ends in `text`, if it matches there.
fn forward<P: GlobPiece>(run: &[P], text: &str, mut at: usize) -> Option<usize> {
    for piece in run {
        let rest = text.get(at..)?;
        at += match piece.unit() {
            Unit::Text(t) => rest.starts_with(t).then_some(t.len())?,
            Unit::AnyChar => rest.chars().next()?.len_utf8(),
            Unit::Star => 0,
        };
    }
    Some(at)
}

/// Where a run that ends at `end` starts in `text`, if it matches there.
fn backward<P: GlobPiece>(run: &[P], text: &str, mut end: usize) -> Option<usize> {
    for piece in run.iter().rev() {
        let before = text.get(..end)?;
        end -= match piece.unit() {
            Unit::Text(t) => before.ends_with(t).then_some(t.len())?,
            Unit::AnyChar => before.chars().next_back()?.len_utf8(),
            Unit::Star => 0,
        };
    }
    Some(end)
}

/// The end of the run's leftmost occurrence in `window`.
fn find<P: GlobPiece>(run: &[P], window: &str) -> Option<usize> {
    if let [piece] = run
        && let Unit::Text(t) = piece.unit()
    {
        return memmem::find(window.as_bytes(), t.as_bytes()).map(|at| at + t.len());
    }
    window
        .char_indices()
        .map(|(at, _)| at)
        .chain(std::iter::once(window.len()))
        .find_map(|at| forward(run, window, at))
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
    fn elasticsearch_wildcards_take_question_marks_and_escapes() {
        let yes = [
            ("*/extensions/custom*", "/x/extensions/customscript"),
            ("vm-??", "vm-01"),
            (r"a\*b", "a*b"),
            ("*", ""),
            ("a*b*c", "aXbYbZc"),
            ("é?", "éü"),
            ("?*?", "ab"),
            ("*?b", "ab"),
            ("a?*?c", "a12c"),
            (r"a\", r"a\"),
            ("", ""),
        ];
        for (p, t) in yes {
            assert!(Wildcard::new(p).matches(t), "{p} should match {t}");
        }
        let no = [
            ("vm-??", "vm-1"),
            ("vm-??", "vm-001"),
            (r"a\*b", "axb"),
            ("a*b*c", "aXbYbZ"),
            ("?*?", "a"),
            ("a?*?c", "a1c"),
            ("", "x"),
            ("a*a", "a"),
        ];
        for (p, t) in no {
            assert!(!Wildcard::new(p).matches(t), "{p} should not match {t}");
        }
        let text = "a".repeat(100_000);
        let pattern = format!("{}?b", "*a?".repeat(2_000));
        assert!(!Wildcard::new(&pattern).matches(&text));
    }

    #[test]
    fn pathological_pattern_is_linear() {
        let pattern = format!("{}b", "*a".repeat(2_000));
        let text = "a".repeat(100_000);
        assert!(!glob_match(&pat(&pattern), &text));
    }
}
