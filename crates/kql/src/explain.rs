//! Why a query did or did not match a document, clause by clause.

use vmext_json::Value;

use crate::ast::{Node, ValueList};
use crate::eval::{FieldValues, literal_holds, matches};

/// At most this many values of a field are reported, each cut to [`MAX_VALUE_CHARS`].
pub const MAX_VALUES_SHOWN: usize = 8;
/// Reported values longer than this many characters are cut and end with `…`.
pub const MAX_VALUE_CHARS: usize = 200;

/// Composite clauses longer than this are cut in outlines; their children follow in full.
const OUTLINE_CLAUSE_CHARS: usize = 60;

/// The verdict of one clause, with the values it looked at and its sub-clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The clause as written in the query (or printed, for composite clauses).
    pub clause: String,
    /// Whether the clause held on the document.
    pub held: bool,
    /// The field the clause tests, if it tests one.
    pub field: Option<String>,
    /// The field's indexed values in the document, in order (cut, see [`MAX_VALUES_SHOWN`]).
    pub seen: Vec<String>,
    /// The clauses this one is made of; for `field:(a or b)`, one per value.
    pub children: Vec<Explanation>,
}

impl Explanation {
    /// Explains `node` (parsed from `source`) on `doc`.
    pub fn of(node: &Node, source: &str, doc: &Value<'_>) -> Explanation {
        let clause = |span: Option<std::ops::Range<usize>>| -> String {
            span.and_then(|s| source.get(s))
                .map(str::to_owned)
                .unwrap_or_else(|| node.to_string())
        };
        match node {
            Node::MatchAll => Explanation::leaf("*".to_owned(), true, None, Vec::new()),
            Node::Or(items) | Node::And(items) => {
                let children: Vec<Explanation> = items
                    .iter()
                    .map(|n| Explanation::of(n, source, doc))
                    .collect();
                let held = if matches!(node, Node::Or(_)) {
                    children.iter().any(|c| c.held)
                } else {
                    children.iter().all(|c| c.held)
                };
                Explanation {
                    clause: clause(composite_span(node)),
                    held,
                    field: None,
                    seen: Vec::new(),
                    children,
                }
            }
            Node::Not(inner) => {
                let child = Explanation::of(inner, source, doc);
                Explanation {
                    clause: format!("not {}", child.clause),
                    held: !child.held,
                    field: None,
                    seen: Vec::new(),
                    children: vec![child],
                }
            }
            Node::Match(m) => {
                let values = FieldValues::collect(&m.field, doc);
                let seen = shown(values.texts().map(|t| t.into_owned()));
                let children = m
                    .values
                    .literals()
                    .into_iter()
                    .map(|literal| {
                        Explanation::leaf(
                            source
                                .get(literal.span.clone())
                                .map(str::to_owned)
                                .unwrap_or_else(|| literal.to_string()),
                            literal_holds(literal, &values),
                            None,
                            Vec::new(),
                        )
                    })
                    .collect::<Vec<_>>();
                let children = if matches!(m.values, ValueList::One(_)) {
                    Vec::new()
                } else {
                    children
                };
                Explanation {
                    clause: clause(Some(m.span.clone())),
                    held: matches(node, doc),
                    field: Some(m.field.name.clone()),
                    seen,
                    children,
                }
            }
            Node::FreeText(l) => Explanation::leaf(
                clause(Some(l.span.clone())),
                matches(node, doc),
                None,
                Vec::new(),
            ),
            Node::Range(r) => {
                let values = FieldValues::collect(&r.field, doc);
                Explanation::leaf(
                    clause(Some(r.span.clone())),
                    matches(node, doc),
                    Some(r.field.name.clone()),
                    shown(values.texts().map(|t| t.into_owned())),
                )
            }
            Node::Nested(n) => Explanation::leaf(
                clause(Some(n.span.clone())),
                matches(node, doc),
                Some(n.field.name.clone()),
                Vec::new(),
            ),
        }
    }

    fn leaf(clause: String, held: bool, field: Option<String>, seen: Vec<String>) -> Self {
        Explanation {
            clause,
            held,
            field,
            seen,
            children: Vec::new(),
        }
    }

    /// The explanation as compact JSON:
    /// `{"clause":…,"held":…,"field":…,"seen":[…],"children":[…]}` (`field` omitted when the
    /// clause tests none).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends [`Explanation::to_json`]'s text to `out`.
    pub fn write_json(&self, out: &mut String) {
        // Depth is bounded by the query's nesting (at most `MAX_NESTING`), so recursion is safe.
        out.push_str("{\"clause\":");
        vmext_json::write_escaped_str(out, &self.clause);
        out.push_str(if self.held {
            ",\"held\":true"
        } else {
            ",\"held\":false"
        });
        if let Some(field) = &self.field {
            out.push_str(",\"field\":");
            vmext_json::write_escaped_str(out, field);
            out.push_str(",\"seen\":[");
            for (i, v) in self.seen.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                vmext_json::write_escaped_str(out, v);
            }
            out.push(']');
        }
        if !self.children.is_empty() {
            out.push_str(",\"children\":[");
            for (i, c) in self.children.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                c.write_json(out);
            }
            out.push(']');
        }
        out.push('}');
    }

    /// The explanation as an indented, human-readable outline (`✓`/`✗` per clause). Clauses
    /// and seen values are shown through [`vmext_json::visible`]: a control character in a
    /// record cannot act on the terminal or forge a line.
    pub fn to_outline(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![(self, 0usize)];
        while let Some((e, depth)) = stack.pop() {
            let mark = if e.held { "✓" } else { "✗" };
            out.push_str(&"  ".repeat(depth));
            out.push_str(mark);
            out.push(' ');
            let clause = e.clause.split_whitespace().collect::<Vec<_>>().join(" ");
            if e.children.is_empty() || clause.chars().count() <= OUTLINE_CLAUSE_CHARS {
                out.push_str(&vmext_json::visible(&clause));
            } else {
                // Composite clauses are spelled out by their children below.
                let cut: String = clause.chars().take(OUTLINE_CLAUSE_CHARS).collect();
                out.push_str(&vmext_json::visible(&cut));
                out.push('…');
            }
            if e.field.is_some() {
                if e.seen.is_empty() {
                    out.push_str("   (no value)");
                } else {
                    // Record content: shown with its control characters escaped.
                    out.push_str("   seen: ");
                    for (i, value) in e.seen.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(&vmext_json::visible(value));
                    }
                }
            }
            out.push('\n');
            stack.extend(e.children.iter().rev().map(|c| (c, depth + 1)));
        }
        out
    }
}

fn shown(values: impl Iterator<Item = String>) -> Vec<String> {
    values
        .take(MAX_VALUES_SHOWN)
        .map(|v| {
            if v.chars().count() > MAX_VALUE_CHARS {
                let mut cut: String = v.chars().take(MAX_VALUE_CHARS).collect();
                cut.push('…');
                cut
            } else {
                v
            }
        })
        .collect()
}

/// The source span covering a composite node's children, when they all have spans.
fn composite_span(node: &Node) -> Option<std::ops::Range<usize>> {
    match node {
        Node::Or(items) | Node::And(items) => {
            let first = composite_span(items.first()?)?;
            let last = composite_span(items.last()?)?;
            Some(first.start..last.end)
        }
        Node::Not(inner) => composite_span(inner),
        other => crate::parser::span_of(other),
    }
}
