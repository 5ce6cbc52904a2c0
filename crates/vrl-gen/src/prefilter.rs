//! The engine's literal prefilter as a VRL condition on the event's JSON text: the fast path
//! for the events that cannot match.
//!
//! Most events in a pipeline cannot match the rule. The engine proves that for a record without
//! parsing it, from literals every matching record's text must contain
//! ([`vmext_kql::Requirement`]). A Vector event has no text left, but `encode_json(.)` writes
//! one back, and the program's verdict on the event is the engine's on that text (which the
//! `vrl-parity` crate checks). Searching that text for the same literals is far cheaper in the
//! VRL runtime than building the record's view, so the program runs its general walk only for
//! the events the prefilter admits.
//!
//! Why searching `encode_json(.)` is sound: the prefilter is sound on any JSON text in the
//! engine's *canonical* spelling (every character as itself, but `"` and `\` written `\"` and
//! `\\`, and control characters written `\u00xx`). `encode_json` (serde_json) spells every
//! character as the canonical spelling does, except control characters, which it may write
//! `\n`, `\t` and the like. So a literal without control characters occurs in the canonical
//! text of the event exactly where it occurs in `encode_json(.)`. A literal with a control
//! character is not searched for: its requirement is dropped (taken as satisfied), which only
//! admits more events.
//!
//! A literal matched up to ASCII case is searched for in `downcase(text)`, lower-cased: text
//! that contains an ASCII literal in any ASCII case contains it lower-cased once lower-cased
//! (each ASCII letter lower-cases alone). A folded literal with a character beyond ASCII is
//! dropped like one with a control character, as Unicode lower-casing depends on context.
//! With one folded literal, `downcase` is written where it is searched for, so that only the
//! events that reach that search pay for lower-casing their text (in the faithful profile, the
//! raw record's outcome, behind the operation name); with several, the lower-cased text is set
//! once in [`LOWER`].

use vmext_kql::Requirement;
use vmext_kql::prefilter::Needle;

use crate::code::{balanced, string};

/// The variable holding `encode_json(.)`.
pub const TEXT: &str = "_vmext_text";
/// The variable holding `downcase(TEXT)`, set only when a folded literal is searched for.
pub const LOWER: &str = "_vmext_lower";

/// A VRL condition that is false only for events the requirement rejects, over the variables
/// [`TEXT`] and (when [`Condition::needs_lower`]) [`LOWER`]. `None` when nothing can be
/// required of the text: the program then runs its general path for every event.
pub fn condition(requirement: &Requirement) -> Option<Condition> {
    let mut lower = if folded_count(requirement) > 1 {
        Lower::Shared(false)
    } else {
        Lower::Inline
    };
    let expression = expression(requirement, &mut lower)?;
    Some(Condition {
        expression,
        needs_lower: lower == Lower::Shared(true),
    })
}

/// Where a folded literal is searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lower {
    /// In `downcase(TEXT)`, written at the search.
    Inline,
    /// In [`LOWER`]; `true` once a search reads it.
    Shared(bool),
}

/// How many folded literals the requirement searches for.
fn folded_count(requirement: &Requirement) -> usize {
    match requirement {
        Requirement::Contains(needle) => usize::from(needle.is_folded()),
        Requirement::All(items) | Requirement::AnyOf(items) => items.iter().map(folded_count).sum(),
        Requirement::Guarded { then, .. } => folded_count(then),
        Requirement::AnyFolded(set) => set.needles().len(),
        Requirement::Anything | Requirement::Nothing => 0,
    }
}

/// A translated requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The boolean VRL expression.
    pub expression: String,
    /// Whether it reads [`LOWER`].
    pub needs_lower: bool,
}

/// `None` stands for "always true".
fn expression(requirement: &Requirement, lower: &mut Lower) -> Option<String> {
    match requirement {
        Requirement::Anything => None,
        Requirement::Nothing => Some("false".to_owned()),
        Requirement::Contains(needle) => search(needle, lower),
        Requirement::All(items) => {
            let parts: Vec<String> = items.iter().filter_map(|r| expression(r, lower)).collect();
            balanced(&parts, " && ")
        }
        Requirement::AnyOf(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(expression(item, lower)?);
            }
            balanced(&parts, " || ")
        }
        // A guard only makes the native search faster; VRL searches literal by literal.
        Requirement::Guarded { then, .. } => expression(then, lower),
        Requirement::AnyFolded(set) => {
            let mut parts = Vec::with_capacity(set.needles().len());
            for needle in set.needles() {
                parts.push(search(needle, lower)?);
            }
            balanced(&parts, " || ")
        }
    }
}

fn search(needle: &Needle, lower: &mut Lower) -> Option<String> {
    let literal = needle.literal();
    if literal.chars().any(char::is_control) {
        return None;
    }
    if needle.is_folded() {
        if !literal.is_ascii() {
            return None;
        }
        let literal = string(&needle.canonical().to_ascii_lowercase());
        return Some(match lower {
            Lower::Inline => format!("contains(downcase({TEXT}), {literal})"),
            Lower::Shared(read) => {
                *read = true;
                format!("contains({LOWER}, {literal})")
            }
        });
    }
    Some(format!("contains({TEXT}, {})", string(needle.canonical())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmext_kql::Presence;

    fn derive(query: &str, presence: Presence) -> Requirement {
        let node = vmext_kql::parse(query).unwrap();
        Requirement::derive(&node, &|_| presence)
    }

    #[test]
    fn literals_become_searches_of_their_canonical_spelling() {
        let c = condition(&derive(r#"a:"x\"y" and b:(p* or *q)"#, Presence::Verbatim)).unwrap();
        assert_eq!(
            c.expression,
            r#"(contains(_vmext_text, "x\\\"y") && (contains(_vmext_text, "p") || contains(_vmext_text, "q")))"#
        );
        assert!(!c.needs_lower);
    }

    #[test]
    fn folded_literals_are_searched_for_in_the_lower_cased_text() {
        // One: lower-cased where it is searched for.
        let c = condition(&derive("a:ABC", Presence::CaseInsensitive)).unwrap();
        assert_eq!(c.expression, r#"contains(downcase(_vmext_text), "abc")"#);
        assert!(!c.needs_lower);
        // Several: lower-cased once.
        let c = condition(&derive("a:ABC and b:xyz", Presence::CaseInsensitive)).unwrap();
        assert_eq!(
            c.expression,
            r#"(contains(_vmext_lower, "abc") && contains(_vmext_lower, "xyz"))"#
        );
        assert!(c.needs_lower);
    }

    #[test]
    fn what_cannot_be_searched_for_admits_everything() {
        // A control character: encode_json may spell it another way.
        assert_eq!(condition(&derive("a:\"x\\ny\"", Presence::Verbatim)), None);
        // A conjunct that cannot be searched for is dropped; the others stay.
        let c = condition(&derive("a:\"x\\ny\" and b:z", Presence::Verbatim)).unwrap();
        assert_eq!(c.expression, r#"contains(_vmext_text, "z")"#);
        // An alternative that cannot be searched for makes the disjunction admit everything.
        assert_eq!(
            condition(&derive("a:\"x\\ny\" or b:z", Presence::Verbatim)),
            None
        );
        // A folded literal beyond ASCII.
        assert_eq!(condition(&derive("a:é", Presence::CaseInsensitive)), None);
        // Nothing to require.
        assert_eq!(condition(&derive("a:*", Presence::Verbatim)), None);
        assert_eq!(condition(&derive("a:x", Presence::Opaque)), None);
    }
}
