//! The syntax tree of a kuery query, and printing it back to KQL text.
//!
//! The tree keeps the shape of the source (value lists stay lists, quoting is remembered)
//! because explanations and translations (VRL) talk to people about the query they wrote.
//! Printing a tree gives a query that parses back to the same tree.

use std::fmt::{self, Write};
use std::ops::Range;

/// A byte range in the query text.
pub type Span = Range<usize>;

/// One node of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// The empty query, or a lone `*`: matches every document.
    MatchAll,
    /// `a or b or …`: at least one holds.
    Or(Vec<Node>),
    /// `a and b and …`: all hold.
    And(Vec<Node>),
    /// `not a`.
    Not(Box<Node>),
    /// `field:value` or `field:(value list)`.
    Match(FieldMatch),
    /// A value with no field: free text, searched in every field.
    FreeText(Literal),
    /// `field < value` and the other comparisons.
    Range(RangeMatch),
    /// `field:{ query }`: the inner query holds within one object at `field`.
    Nested(Nested),
}

/// `field:values`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMatch {
    /// The field, possibly with wildcards.
    pub field: Field,
    /// The value or value list after the colon.
    pub values: ValueList,
    /// Where the clause is in the query text.
    pub span: Span,
}

/// `field op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeMatch {
    /// The field compared.
    pub field: Field,
    /// The comparison.
    pub op: RangeOp,
    /// The bound.
    pub value: Literal,
    /// Where the clause is in the query text.
    pub span: Span,
}

/// `field:{ query }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Nested {
    /// The path of the nested objects.
    pub field: Field,
    /// The query each object is tested against; its field names are relative to `field`.
    pub query: Box<Node>,
    /// Where the clause is in the query text.
    pub span: Span,
}

/// A range comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl RangeOp {
    /// The operator as written in KQL.
    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
        }
    }
}

/// A field name: plain (`a.b`), quoted (`"a b"`) or a pattern with `*` (`a.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name with escapes resolved; for a pattern, its pieces joined with `*`.
    pub name: String,
    /// Set when the unquoted name contains an unescaped `*`: the field is a pattern.
    pub pattern: Option<Vec<Piece>>,
    /// Whether the name was written in double quotes.
    pub quoted: bool,
}

/// The values of a `field:` clause.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueList {
    /// A single value.
    One(Literal),
    /// `(a or b)`: any of them.
    Or(Vec<ValueList>),
    /// `(a and b)`: all of them, possibly in different elements of an array.
    And(Vec<ValueList>),
    /// `(not a)`.
    Not(Box<ValueList>),
}

impl ValueList {
    /// Calls `f` on every literal of the list, in place.
    pub fn for_each_literal_mut(&mut self, f: &mut dyn FnMut(&mut Literal)) {
        match self {
            ValueList::One(literal) => f(literal),
            ValueList::Or(items) | ValueList::And(items) => {
                for item in items {
                    item.for_each_literal_mut(f);
                }
            }
            ValueList::Not(inner) => inner.for_each_literal_mut(f),
        }
    }

    /// Every literal in the list, in source order.
    pub fn literals(&self) -> Vec<&Literal> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(list) = stack.pop() {
            match list {
                ValueList::One(l) => out.push(l),
                ValueList::Or(items) | ValueList::And(items) => stack.extend(items.iter().rev()),
                ValueList::Not(inner) => stack.push(inner),
            }
        }
        out
    }
}

/// A value as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// What the value is.
    pub kind: LiteralKind,
    /// Whether it was written in double quotes (quoted values are never wildcards).
    pub quoted: bool,
    /// Where the value is in the query text.
    pub span: Span,
}

/// The meaning of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    /// Text compared exactly.
    Text(String),
    /// An unquoted value containing `*`: an anchored pattern. All-star patterns test existence.
    Wildcard(Vec<Piece>),
    /// Unquoted `true` / `false`.
    Bool(bool),
    /// Unquoted `null`.
    Null,
}

impl Literal {
    /// The value as text, as Elasticsearch receives it (`*` for wildcard stars).
    pub fn text(&self) -> String {
        match &self.kind {
            LiteralKind::Text(t) => t.clone(),
            LiteralKind::Wildcard(pieces) => pieces_text(pieces),
            LiteralKind::Bool(b) => b.to_string(),
            LiteralKind::Null => "null".to_owned(),
        }
    }

    /// Whether this is a pattern made only of stars (`*`): an existence test.
    pub fn is_match_any(&self) -> bool {
        matches!(&self.kind, LiteralKind::Wildcard(p) if p.iter().all(|p| *p == Piece::Star))
    }
}

/// A piece of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (may contain `*` characters that were escaped).
    Text(String),
    /// An unescaped `*`: any run of characters, including none.
    Star,
}

fn pieces_text(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.as_str(),
            Piece::Star => "*",
        })
        .collect()
}

impl Node {
    /// The same tree with every span set to `0..0`, so that trees parsed from different texts
    /// compare by meaning (used to check that printing round-trips).
    pub fn without_spans(mut self) -> Node {
        fn literal(l: &mut Literal) {
            l.span = 0..0;
        }
        fn list(v: &mut ValueList) {
            let mut stack = vec![v];
            while let Some(v) = stack.pop() {
                match v {
                    ValueList::One(l) => literal(l),
                    ValueList::Or(items) | ValueList::And(items) => stack.extend(items.iter_mut()),
                    ValueList::Not(inner) => stack.push(inner),
                }
            }
        }
        let mut stack = vec![&mut self];
        while let Some(node) = stack.pop() {
            match node {
                Node::MatchAll => {}
                Node::Or(items) | Node::And(items) => stack.extend(items.iter_mut()),
                Node::Not(inner) => stack.push(inner),
                Node::Match(m) => {
                    m.span = 0..0;
                    list(&mut m.values);
                }
                Node::FreeText(l) => literal(l),
                Node::Range(r) => {
                    r.span = 0..0;
                    literal(&mut r.value);
                }
                Node::Nested(n) => {
                    n.span = 0..0;
                    stack.push(&mut n.query);
                }
            }
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Printing

/// Characters that must be escaped in an unquoted value.
const SPECIAL: &[char] = &['\\', '(', ')', ':', '<', '>', '"', '*', '{', '}'];

pub(crate) fn is_kql_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// Writes unquoted text so that it reads back as the same characters, never as syntax.
fn write_unquoted_text(out: &mut String, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if SPECIAL.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => {
                // A keyword at this position would end the value: escape it. `or`/`and` count
                // only after whitespace, `not` anywhere, as in Kibana's grammar.
                let rest: String = chars.get(i..).unwrap_or_default().iter().collect();
                let after_space = i > 0 && chars.get(i - 1).copied().is_some_and(is_kql_space);
                let kw_len = keyword_at(&rest, after_space);
                if kw_len > 0 {
                    // `\or` would do for `or`, but `\not` reads as the newline escape `\n`
                    // followed by `ot`, and `\NOT` would lose the case: spell the first letter
                    // as a Unicode escape instead, which reads back as exactly that letter.
                    let _ = write!(out, "\\u{:04x}", c as u32);
                    out.extend(chars.get(i + 1..i + kw_len).unwrap_or_default());
                    i += kw_len;
                    continue;
                }
                out.push(c);
            }
        }
        i += 1;
    }
}

/// Length in chars of a keyword (`or`, `and`, `not`) at the start of `rest` that the grammar
/// would treat as a keyword there, or 0.
fn keyword_at(rest: &str, after_space: bool) -> usize {
    let lower: String = rest.chars().take(4).collect::<String>().to_lowercase();
    // The end of the text counts as a space: whatever the printer writes next (` > `, ` or `)
    // may begin with one, and an escaped keyword reads back the same anyway.
    let followed_by_space = |n: usize| rest.chars().nth(n).is_none_or(is_kql_space);
    if lower.starts_with("not") && followed_by_space(3) {
        return 3;
    }
    if after_space {
        if lower.starts_with("or") && followed_by_space(2) {
            return 2;
        }
        if lower.starts_with("and") && followed_by_space(3) {
            return 3;
        }
    }
    0
}

/// Writes a wildcard pattern: unescaped stars between escaped text.
fn write_pattern(out: &mut String, pieces: &[Piece]) {
    for piece in pieces {
        match piece {
            Piece::Star => out.push('*'),
            Piece::Text(t) => write_unquoted_text(out, t),
        }
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Unquoted text keeps its form only if trimming would not change it; text built in code that
/// starts or ends with whitespace is printed quoted instead.
fn unquoted_is_faithful(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(crate::parser::is_js_space)
        && !text.ends_with(crate::parser::is_js_space)
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        match &self.kind {
            // An unquoted value trimmed to nothing (`a:\u0020`) prints as that escape.
            LiteralKind::Text(t) if !self.quoted && t.is_empty() => out.push_str("\\u0020"),
            LiteralKind::Text(t) if self.quoted || !unquoted_is_faithful(t) => {
                write_quoted(&mut out, t)
            }
            LiteralKind::Text(t) => write_unquoted_text(&mut out, t),
            LiteralKind::Wildcard(pieces) => write_pattern(&mut out, pieces),
            LiteralKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            LiteralKind::Null => out.push_str("null"),
        }
        f.write_str(&out)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        match &self.pattern {
            Some(pieces) => write_pattern(&mut out, pieces),
            // An unquoted name trimmed to nothing (`\u000b:x`) prints as a trimmed escape.
            None if !self.quoted && self.name.is_empty() => out.push_str("\\u0020"),
            None if self.quoted || !unquoted_is_faithful(&self.name) => {
                write_quoted(&mut out, &self.name)
            }
            None => write_unquoted_text(&mut out, &self.name),
        }
        f.write_str(&out)
    }
}

impl fmt::Display for ValueList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueList::One(l) => write!(f, "{l}"),
            ValueList::Or(items) | ValueList::And(items) => {
                let sep = if matches!(self, ValueList::Or(_)) {
                    " or "
                } else {
                    " and "
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write_list_operand(f, item)?;
                }
                Ok(())
            }
            ValueList::Not(inner) => {
                f.write_str("not ")?;
                write_list_operand(f, inner)
            }
        }
    }
}

/// Lists nest with explicit parentheses in the grammar, so an inner list is always wrapped.
fn write_list_operand(f: &mut fmt::Formatter<'_>, item: &ValueList) -> fmt::Result {
    match item {
        ValueList::One(l) => write!(f, "{l}"),
        other => write!(f, "({other})"),
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `*` reads back as match-all anywhere, also under `not` or in a list of clauses.
            Node::MatchAll => f.write_str("*"),
            Node::Or(items) | Node::And(items) => {
                let sep = if matches!(self, Node::Or(_)) {
                    " or "
                } else {
                    " and "
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    // `or` binds loosest: an `or` child always needs parentheses, and an `and`
                    // child of an `and` needs them to stay a separate node.
                    let wrap = matches!(
                        (self, item),
                        (_, Node::Or(_)) | (Node::And(_), Node::And(_))
                    );
                    write_operand(f, item, wrap)?;
                }
                Ok(())
            }
            Node::Not(inner) => {
                f.write_str("not ")?;
                let wrap = matches!(**inner, Node::Or(_) | Node::And(_) | Node::Not(_));
                write_operand(f, inner, wrap)
            }
            Node::Match(m) => match &m.values {
                ValueList::One(l) => write!(f, "{}:{}", m.field, l),
                list => write!(f, "{}:({})", m.field, list),
            },
            Node::FreeText(l) => write!(f, "{l}"),
            Node::Range(r) => write!(f, "{} {} {}", r.field, r.op.as_str(), r.value),
            Node::Nested(n) => write!(f, "{}:{{ {} }}", n.field, n.query),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, node: &Node, wrap: bool) -> fmt::Result {
    if wrap {
        let mut inner = String::new();
        write!(inner, "{node}")?;
        write!(f, "({inner})")
    } else {
        write!(f, "{node}")
    }
}
