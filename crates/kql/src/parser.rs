//! A recursive-descent parser that follows Kibana's kuery grammar rule for rule.
//!
//! The grammar is a PEG: ordered choice with backtracking, whitespace-sensitive keywords, and
//! values that end where a keyword begins. Each function below is one grammar rule and says so.
//! Errors report the furthest position any rule reached and what could have come next there,
//! which is how PEG parsers (Kibana's included) give messages that point at the real mistake.

use crate::ast::{
    Field, FieldMatch, Literal, LiteralKind, Nested, Node, Piece, RangeMatch, RangeOp, Span,
    ValueList, is_kql_space,
};

/// Parentheses, braces and `not` may nest this deep; deeper input is an error, not a stack
/// overflow.
pub const MAX_NESTING: usize = 128;

/// The longest query accepted, in bytes (1 MiB): a hundred thousand `or`-ed values fit, and
/// every query up to it builds a detector within the component's memory cap and call deadline
/// (checked by a test through wasmtime). A longer query is a [`SyntaxError`], in every engine
/// alike, never a build that runs out of memory in one and succeeds in another.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// A query that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {offset}")]
pub struct SyntaxError {
    /// Byte offset of the problem in the query text.
    pub offset: usize,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

/// Parses a kuery query into its tree.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    if source.len() > MAX_QUERY_BYTES {
        return Err(SyntaxError {
            offset: MAX_QUERY_BYTES,
            message: format!(
                "the query is {} bytes long; queries are limited to {MAX_QUERY_BYTES} bytes (1 MiB)",
                source.len()
            ),
        });
    }
    let mut p = Parser {
        src: source,
        pos: 0,
        furthest: 0,
        expected: Vec::new(),
        depth: 0,
        too_deep: false,
        unterminated_quote: None,
    };
    p.skip_space();
    let query = p.or_query();
    p.skip_space();
    if p.too_deep {
        return Err(SyntaxError {
            offset: p.furthest,
            message: format!("the query nests deeper than {MAX_NESTING} levels"),
        });
    }
    if p.pos == source.len() {
        return Ok(query.unwrap_or(Node::MatchAll));
    }
    p.expect("end of input");
    Err(p.error())
}

/// Whitespace as JavaScript's `String.prototype.trim` removes it; Kibana trims unquoted values
/// with it.
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    /// The furthest position where a rule failed, and what it wanted there.
    furthest: usize,
    expected: Vec<&'static str>,
    depth: usize,
    too_deep: bool,
    /// Where a quoted string that never closes begins: the most useful place to point at.
    unterminated_quote: Option<usize>,
}

/// What the unquoted-literal rule produced, before trimming.
enum Raw {
    Char(char),
    Star,
}

impl<'s> Parser<'s> {
    // --- terminals -----------------------------------------------------------------------

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn expect(&mut self, what: &'static str) {
        if self.pos > self.furthest {
            self.furthest = self.pos;
            self.expected.clear();
        }
        if self.pos == self.furthest && !self.expected.contains(&what) {
            self.expected.push(what);
        }
    }

    fn eat(&mut self, c: char, label: &'static str) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            self.expect(label);
            false
        }
    }

    /// `Space*`
    fn skip_space(&mut self) -> usize {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| is_kql_space(*c)) {
            self.pos += c.len_utf8();
        }
        self.pos - start
    }

    /// Case-insensitive ASCII word at the current position.
    fn at_word(&self, word: &str) -> bool {
        self.rest()
            .get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    /// Length in bytes of `Space+ word Space+` at `at`, if present.
    fn spaced_keyword_len(&self, at: usize, word: &str) -> Option<usize> {
        let rest = self.src.get(at..)?;
        let lead: usize = rest
            .chars()
            .take_while(|c| is_kql_space(*c))
            .map(char::len_utf8)
            .sum();
        if lead == 0 {
            return None;
        }
        let after = rest.get(lead..)?;
        if !after.get(..word.len())?.eq_ignore_ascii_case(word) {
            return None;
        }
        let trail: usize = after
            .get(word.len()..)?
            .chars()
            .take_while(|c| is_kql_space(*c))
            .map(char::len_utf8)
            .sum();
        (trail > 0).then_some(lead + word.len() + trail)
    }

    /// `Or = Space+ 'or'i Space+` (and likewise `And`).
    fn binary_keyword(&mut self, word: &str, label: &'static str) -> bool {
        match self.spaced_keyword_len(self.pos, word) {
            Some(len) => {
                self.pos += len;
                true
            }
            None => {
                // Report the keyword where it would start, after the spaces.
                let save = self.pos;
                self.skip_space();
                self.expect(label);
                self.pos = save;
                false
            }
        }
    }

    /// `Not = 'not'i Space+`
    fn not_keyword(&mut self) -> bool {
        if self.at_word("not") {
            let save = self.pos;
            self.pos += 3;
            if self.skip_space() > 0 {
                return true;
            }
            self.pos = save;
        }
        self.expect("NOT");
        false
    }

    /// `!Keyword` inside an unquoted literal: would `Or`, `And` or `Not` match here?
    fn keyword_ahead(&self) -> bool {
        self.spaced_keyword_len(self.pos, "or").is_some()
            || self.spaced_keyword_len(self.pos, "and").is_some()
            || (self.at_word("not")
                && self
                    .src
                    .get(self.pos + 3..)
                    .and_then(|r| r.chars().next())
                    .is_some_and(is_kql_space))
    }

    fn enter(&mut self) -> bool {
        if self.depth >= MAX_NESTING {
            if !self.too_deep {
                self.too_deep = true;
                self.furthest = self.pos;
            }
            return false;
        }
        self.depth += 1;
        true
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // --- query rules ---------------------------------------------------------------------

    /// `Item (Keyword Item)*`: the operands of a left-to-right `or` or `and` chain. A keyword
    /// not followed by an operand is not consumed (the PEG backtracks to before it).
    fn chain<T>(
        &mut self,
        word: &str,
        label: &'static str,
        item: fn(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut items = vec![item(self)?];
        loop {
            let save = self.pos;
            if self.binary_keyword(word, label)
                && let Some(next) = item(self)
            {
                items.push(next);
                continue;
            }
            self.pos = save;
            return Some(items);
        }
    }

    /// `OrQuery = AndQuery (Or AndQuery)*`
    fn or_query(&mut self) -> Option<Node> {
        let mut items = self.chain("or", "OR", Self::and_query)?;
        Some(if items.len() == 1 {
            items.pop()?
        } else {
            Node::Or(items)
        })
    }

    /// `AndQuery = NotQuery (And NotQuery)*`
    fn and_query(&mut self) -> Option<Node> {
        let mut items = self.chain("and", "AND", Self::not_query)?;
        Some(if items.len() == 1 {
            items.pop()?
        } else {
            Node::And(items)
        })
    }

    /// `NotQuery = Not SubQuery / SubQuery`
    fn not_query(&mut self) -> Option<Node> {
        let save = self.pos;
        if self.not_keyword() {
            if !self.enter() {
                return None;
            }
            let inner = self.sub_query();
            self.leave();
            if let Some(inner) = inner {
                return Some(Node::Not(Box::new(inner)));
            }
            self.pos = save;
        }
        self.sub_query()
    }

    /// `SubQuery = '(' Space* OrQuery Space* ')' / NestedQuery`
    fn sub_query(&mut self) -> Option<Node> {
        let save = self.pos;
        if self.eat('(', "\"(\"") {
            if !self.enter() {
                return None;
            }
            self.skip_space();
            let inner = self.or_query();
            self.leave();
            if let Some(inner) = inner {
                self.skip_space();
                if self.eat(')', "\")\"") {
                    return Some(inner);
                }
            }
            self.pos = save;
        }
        self.nested_query()
    }

    /// `NestedQuery = Field Space* ':' Space* '{' Space* OrQuery Space* '}' / Expression`
    fn nested_query(&mut self) -> Option<Node> {
        let start = self.pos;
        if let Some(field) = self.field() {
            self.skip_space();
            if self.eat(':', "\":\"") {
                self.skip_space();
                if self.eat('{', "\"{\"") {
                    if !self.enter() {
                        return None;
                    }
                    self.skip_space();
                    let inner = self.or_query();
                    self.leave();
                    if let Some(inner) = inner {
                        self.skip_space();
                        if self.eat('}', "\"}\"") {
                            return Some(Node::Nested(Nested {
                                field,
                                query: Box::new(inner),
                                span: start..self.pos,
                            }));
                        }
                    }
                }
            }
        }
        self.pos = start;
        self.expression()
    }

    /// `Expression = FieldRangeExpression / FieldValueExpression / ValueExpression`
    fn expression(&mut self) -> Option<Node> {
        let start = self.pos;
        if let Some(node) = self.field_range(start) {
            return Some(node);
        }
        self.pos = start;
        if let Some(node) = self.field_value(start) {
            return Some(node);
        }
        self.pos = start;
        // `ValueExpression = Value`: free text.
        let value = self.value("value")?;
        if value.is_match_any() {
            return Some(Node::MatchAll);
        }
        Some(Node::FreeText(value))
    }

    /// `FieldRangeExpression = Field Space* RangeOperator Space* Literal`
    fn field_range(&mut self, start: usize) -> Option<Node> {
        let field = self.field()?;
        self.skip_space();
        let op = if self.rest().starts_with("<=") {
            RangeOp::Lte
        } else if self.rest().starts_with(">=") {
            RangeOp::Gte
        } else if self.rest().starts_with('<') {
            RangeOp::Lt
        } else if self.rest().starts_with('>') {
            RangeOp::Gt
        } else {
            self.expect("range operator");
            return None;
        };
        self.pos += op.as_str().len();
        self.skip_space();
        let value = self.value("value")?;
        Some(Node::Range(RangeMatch {
            field,
            op,
            value,
            span: start..self.pos,
        }))
    }

    /// `FieldValueExpression = Field Space* ':' Space* ListOfValues`
    fn field_value(&mut self, start: usize) -> Option<Node> {
        let field = self.field()?;
        self.skip_space();
        if !self.eat(':', "\":\"") {
            return None;
        }
        self.skip_space();
        let values = self.list_of_values()?;
        Some(Node::Match(FieldMatch {
            field,
            values,
            span: start..self.pos,
        }))
    }

    // --- value lists ---------------------------------------------------------------------

    /// `ListOfValues = '(' Space* OrListOfValues Space* ')' / Value`
    fn list_of_values(&mut self) -> Option<ValueList> {
        let save = self.pos;
        if self.eat('(', "\"(\"") {
            if !self.enter() {
                return None;
            }
            self.skip_space();
            let inner = self.or_list();
            self.leave();
            if let Some(inner) = inner {
                self.skip_space();
                if self.eat(')', "\")\"") {
                    return Some(inner);
                }
            }
            self.pos = save;
        }
        self.value("value").map(ValueList::One)
    }

    /// `OrListOfValues = AndListOfValues (Or AndListOfValues)*`
    fn or_list(&mut self) -> Option<ValueList> {
        let mut items = self.chain("or", "OR", Self::and_list)?;
        Some(if items.len() == 1 {
            items.pop()?
        } else {
            ValueList::Or(items)
        })
    }

    /// `AndListOfValues = NotListOfValues (And NotListOfValues)*`
    fn and_list(&mut self) -> Option<ValueList> {
        let mut items = self.chain("and", "AND", Self::not_list)?;
        Some(if items.len() == 1 {
            items.pop()?
        } else {
            ValueList::And(items)
        })
    }

    /// `NotListOfValues = Not ListOfValues / ListOfValues`
    fn not_list(&mut self) -> Option<ValueList> {
        let save = self.pos;
        if self.not_keyword() {
            if !self.enter() {
                return None;
            }
            let inner = self.list_of_values();
            self.leave();
            if let Some(inner) = inner {
                return Some(ValueList::Not(Box::new(inner)));
            }
            self.pos = save;
        }
        self.list_of_values()
    }

    // --- literals ------------------------------------------------------------------------

    /// `Field = Literal`: a quoted or unquoted name; unquoted stars make it a pattern.
    fn field(&mut self) -> Option<Field> {
        let literal = self.value("field name")?;
        Some(match literal.kind {
            LiteralKind::Wildcard(pieces) => Field {
                name: pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.as_str(),
                        Piece::Star => "*",
                    })
                    .collect(),
                pattern: Some(pieces),
                quoted: false,
            },
            other => Field {
                name: match other {
                    LiteralKind::Text(t) => t,
                    LiteralKind::Bool(b) => b.to_string(),
                    LiteralKind::Null => "null".to_owned(),
                    LiteralKind::Wildcard(_) => String::new(),
                },
                pattern: None,
                quoted: literal.quoted,
            },
        })
    }

    /// `Value = QuotedString / UnquotedLiteral`
    fn value(&mut self, label: &'static str) -> Option<Literal> {
        let start = self.pos;
        if self.peek() == Some('"') {
            let text = self.quoted_string()?;
            return Some(Literal {
                kind: LiteralKind::Text(text),
                quoted: true,
                span: start..self.pos,
            });
        }
        let kind = self.unquoted_literal(label)?;
        Some(Literal {
            kind,
            quoted: false,
            span: start..self.pos,
        })
    }

    /// `QuotedString = '"' QuotedCharacter* '"'`
    fn quoted_string(&mut self) -> Option<String> {
        let save = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let mut chars = rest.chars();
            match chars.next() {
                None => {
                    self.expect("closing \"");
                    self.unterminated_quote.get_or_insert(save);
                    self.pos = save;
                    return None;
                }
                Some('"') => {
                    self.pos += 1;
                    return Some(out);
                }
                Some('\\') => {
                    // EscapedWhitespace / EscapedUnicodeSequence / '\' [\\"] / the backslash itself.
                    let next = chars.next();
                    if let Some(c) = escaped_whitespace(next) {
                        out.push(c);
                        self.pos += 2;
                    } else if let Some(c) = unicode_escape(rest) {
                        out.push(c);
                        self.pos += 6;
                    } else if let Some(c @ ('\\' | '"')) = next {
                        out.push(c);
                        self.pos += 2;
                    } else {
                        out.push('\\');
                        self.pos += 1;
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// `UnquotedLiteral = UnquotedCharacter+`, trimmed, typed (`true`/`false`/`null`), and a
    /// wildcard if it has an unescaped `*`.
    fn unquoted_literal(&mut self, label: &'static str) -> Option<LiteralKind> {
        let mut raw: Vec<Raw> = Vec::new();
        loop {
            let rest = self.rest();
            let mut chars = rest.chars();
            let Some(c) = chars.next() else { break };
            if c == '\\' {
                let next = chars.next();
                if let Some(e) = escaped_whitespace(next) {
                    raw.push(Raw::Char(e));
                    self.pos += 2;
                } else if let Some(
                    s @ ('\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'),
                ) = next
                {
                    raw.push(Raw::Char(s));
                    self.pos += 2;
                } else if let Some(u) = unicode_escape(rest) {
                    raw.push(Raw::Char(u));
                    self.pos += 6;
                } else if let Some(kw) = ["or", "and", "not"].iter().find(|kw| {
                    rest.get(1..1 + kw.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(kw))
                }) {
                    let word = rest.get(1..1 + kw.len()).unwrap_or_default();
                    raw.extend(word.chars().map(Raw::Char));
                    self.pos += 1 + kw.len();
                } else {
                    break; // a lone backslash is a special character: the literal ends.
                }
                continue;
            }
            if c == '*' {
                raw.push(Raw::Star);
                self.pos += 1;
                continue;
            }
            if matches!(c, '(' | ')' | ':' | '<' | '>' | '"' | '{' | '}') || self.keyword_ahead() {
                break;
            }
            raw.push(Raw::Char(c));
            self.pos += c.len_utf8();
        }
        if raw.is_empty() {
            self.expect(label);
            return None;
        }
        Some(finish_unquoted(raw))
    }
}

fn escaped_whitespace(next: Option<char>) -> Option<char> {
    match next {
        Some('t') => Some('\t'),
        Some('r') => Some('\r'),
        Some('n') => Some('\n'),
        _ => None,
    }
}

/// `\uXXXX` at the start of `rest` (which begins with the backslash).
fn unicode_escape(rest: &str) -> Option<char> {
    let hex = rest.get(2..6).filter(|_| rest.get(1..2) == Some("u"))?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // JavaScript's String.fromCharCode: a lone surrogate becomes U+FFFD in Rust strings.
    Some(char::from_u32(u32::from_str_radix(hex, 16).ok()?).unwrap_or('\u{fffd}'))
}

/// Trims the way Kibana does (`sequence.trim()` on the joined characters) and types the result.
fn finish_unquoted(raw: Vec<Raw>) -> LiteralKind {
    let first = raw
        .iter()
        .position(|r| !matches!(r, Raw::Char(c) if is_js_space(*c)));
    let last = raw
        .iter()
        .rposition(|r| !matches!(r, Raw::Char(c) if is_js_space(*c)));
    let (Some(first), Some(last)) = (first, last) else {
        return LiteralKind::Text(String::new());
    };
    let kept = raw.get(first..=last).unwrap_or_default();
    if !kept.iter().any(|r| matches!(r, Raw::Star)) {
        let text: String = kept
            .iter()
            .filter_map(|r| match r {
                Raw::Char(c) => Some(*c),
                Raw::Star => None,
            })
            .collect();
        return match text.as_str() {
            "true" => LiteralKind::Bool(true),
            "false" => LiteralKind::Bool(false),
            "null" => LiteralKind::Null,
            _ => LiteralKind::Text(text),
        };
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    for r in kept {
        match r {
            Raw::Char(c) => text.push(*c),
            Raw::Star => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                if pieces.last() != Some(&Piece::Star) {
                    pieces.push(Piece::Star);
                }
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    LiteralKind::Wildcard(pieces)
}

impl Parser<'_> {
    /// A message for the furthest failure, with a plain-words lead for the common mistakes.
    fn error(&self) -> SyntaxError {
        let at = self.furthest;
        let found = match self.src.get(at..).and_then(|r| r.chars().next()) {
            None => "end of input".to_owned(),
            Some(c) => format!("`{c}`"),
        };
        let before = self
            .src
            .get(..at)
            .unwrap_or_default()
            .trim_end_matches(is_kql_space);
        let wants = |w: &str| self.expected.contains(&w);
        if let Some(open) = self.unterminated_quote.filter(|_| wants("closing \"")) {
            return SyntaxError {
                offset: open,
                message: "unterminated quoted string: this `\"` is never closed".to_owned(),
            };
        }
        let message = if wants("value") && before.ends_with(':') {
            format!("expected a value after `:`, found {found}")
        } else if wants("value") && before.ends_with(['<', '>', '=']) {
            format!("expected a value after the range operator, found {found}")
        } else if wants("\")\"") && !wants("value") {
            format!("expected `)` to close a parenthesis, found {found}")
        } else if wants("\"}\"") && !wants("value") {
            format!("expected `}}` to close a nested query, found {found}")
        } else if self.src.get(at..).is_some_and(|r| r.starts_with('\\')) {
            "invalid escape: in an unquoted value only \\t \\r \\n \\uXXXX, \\or \\and \\not and \
             the special characters \\ ( ) : < > \" * { } may follow a backslash"
                .to_owned()
        } else {
            let mut list: Vec<&str> = self.expected.clone();
            list.sort_unstable();
            format!("expected {}, found {found}", join_alternatives(&list))
        };
        SyntaxError {
            offset: at,
            message,
        }
    }
}

fn join_alternatives(items: &[&str]) -> String {
    match items {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The span of a node, where it has one.
pub fn span_of(node: &Node) -> Option<Span> {
    match node {
        Node::Match(m) => Some(m.span.clone()),
        Node::Range(r) => Some(r.span.clone()),
        Node::Nested(n) => Some(n.span.clone()),
        Node::FreeText(l) => Some(l.span.clone()),
        _ => None,
    }
}
