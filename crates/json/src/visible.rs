//! Text from records made safe to show on a terminal.
//!
//! A log record is attacker-controlled text. Written raw to a terminal, an ESC sequence in a
//! field can clear the screen, retitle the window or hide text, and a CR or LF can forge lines
//! of a report. Human-readable outputs therefore pass record content (and file names, and
//! queries from files) through [`visible`], which shows every control character as a JSON
//! style escape (`\u001b`), so it is seen and never acted on.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is shown escaped: the C0 controls (line breaks and tabs included), DEL, the C1
/// controls, the Unicode line and paragraph separators, and the bidirectional embedding,
/// override and isolate controls (which reorder what follows them on screen).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character shown as `\uXXXX` (borrowed when there is none).
///
/// Backslashes are left as they are: the result is for people; the JSON outputs
/// (`--explain-json`, alerts) carry the exact text.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn control_characters_are_shown_not_acted_on() {
        assert_eq!(visible("plain text é ✓"), "plain text é ✓");
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u001b[2Jb");
        assert_eq!(visible("x\r\nFAKE LINE"), "x\\u000d\\u000aFAKE LINE");
        assert_eq!(visible("\u{1b}]0;title\u{7}"), "\\u001b]0;title\\u0007");
        assert_eq!(visible("\u{9b}31m"), "\\u009b31m");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u202efed");
        assert_eq!(visible("tab\there"), "tab\\u0009here");
    }
}
