//! Kibana Query Language (kuery) with the semantics of Elastic's detection engine.
//!
//! * [`parse`] follows Kibana's grammar: precedence, case-insensitive keywords, value lists,
//!   quoted and unquoted values with their escape rules, wildcards, ranges, nested queries,
//!   field-name patterns and free text. Errors carry a byte offset.
//! * [`Query::matches`] decides one JSON document the way Elasticsearch would for the query
//!   Kibana builds (see [`eval`] for the rules).
//! * [`Query::explain`] says why, clause by clause.
//! * [`Requirement`] is a literal prefilter derived from the query that never rejects a
//!   document the query would match.
//!
//! ```
//! let query = vmext_kql::Query::parse(r#"event.outcome:(success or Success) and user.name:adm*"#).unwrap();
//! let doc = vmext_json::parse(br#"{"event":{"outcome":"success"},"user.name":"admin"}"#).unwrap();
//! assert!(query.matches(&doc));
//! ```

#![forbid(unsafe_code)]

pub mod ast;
pub mod eval;
mod explain;
mod parser;
pub mod prefilter;
mod wildcard;

pub use ast::Node;
pub use explain::{Explanation, MAX_VALUE_CHARS, MAX_VALUES_SHOWN};
pub use parser::{MAX_NESTING, MAX_QUERY_BYTES, SyntaxError, parse};
pub use prefilter::{MAX_TERM_DEPTH, MAX_TERMS, Presence, Requirement, Term, TermsError};
pub use wildcard::{Wildcard, glob_match};

use vmext_json::Value;

/// A parsed query together with its source and what could not be evaluated faithfully.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    source: String,
    root: Node,
    warnings: Vec<Warning>,
}

/// A part of a query whose verdict may differ from Elastic's, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Byte range of the clause in the query.
    pub span: ast::Span,
    /// The reason.
    pub message: String,
}

impl Query {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Query, SyntaxError> {
        let root = parse(source)?;
        let warnings = warnings(&root);
        Ok(Query {
            source: source.to_owned(),
            root,
            warnings,
        })
    }

    /// The query text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Clauses evaluated without knowledge Elastic has (mappings, analysers).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Whether the query matches the document.
    pub fn matches(&self, doc: &Value<'_>) -> bool {
        eval::matches(&self.root, doc)
    }

    /// The same query with the values of `fields` upper-cased (ASCII only), for a view in
    /// which those fields' values are upper-cased too: together they compare those fields
    /// ASCII-case-insensitively, while everything else keeps Elastic's exact semantics.
    ///
    /// Only plain `field:values` clauses on a listed name are folded; ranges, nested queries
    /// and wildcard field names are left as they are.
    pub fn fold_case(&self, fields: &[String]) -> Query {
        let mut root = self.root.clone();
        let mut stack = vec![&mut root];
        while let Some(node) = stack.pop() {
            match node {
                Node::Or(items) | Node::And(items) => stack.extend(items.iter_mut()),
                Node::Not(inner) => stack.push(inner),
                Node::Match(m) if m.field.pattern.is_none() && fields.contains(&m.field.name) => {
                    m.values
                        .for_each_literal_mut(&mut |literal| match &mut literal.kind {
                            ast::LiteralKind::Text(t) => t.make_ascii_uppercase(),
                            ast::LiteralKind::Wildcard(pieces) => {
                                for piece in pieces {
                                    if let ast::Piece::Text(t) = piece {
                                        t.make_ascii_uppercase();
                                    }
                                }
                            }
                            ast::LiteralKind::Bool(_) | ast::LiteralKind::Null => {}
                        });
                }
                _ => {}
            }
        }
        Query {
            source: self.source.clone(),
            root,
            warnings: self.warnings.clone(),
        }
    }

    /// Clause-by-clause reasons for the verdict on `doc`.
    pub fn explain(&self, doc: &Value<'_>) -> Explanation {
        Explanation::of(&self.root, &self.source, doc)
    }
}

/// Fields that ECS maps as analysed `text`: a `keyword` comparison cannot reproduce them.
fn is_text_field(name: &str) -> bool {
    matches!(name, "message" | "error.message" | "error.stack_trace") || name.ends_with(".text")
}

fn warnings(root: &Node) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match node {
            Node::Or(items) | Node::And(items) => stack.extend(items.iter()),
            Node::Not(inner) => stack.push(inner),
            Node::Nested(n) => stack.push(&n.query),
            Node::MatchAll => {}
            Node::FreeText(l) => out.push(Warning {
                span: l.span.clone(),
                message: "free text is compared as an exact keyword against every field; \
                          Elastic also searches analysed text fields, which may match more"
                    .to_owned(),
            }),
            Node::Range(r) => out.push(Warning {
                span: r.span.clone(),
                message: format!(
                    "range on `{}` compares numbers when both sides are numeric and text \
                     otherwise; Elastic uses the field's mapping (dates, date math)",
                    r.field.name
                ),
            }),
            Node::Match(m) => {
                if is_text_field(&m.field.name) {
                    out.push(Warning {
                        span: m.span.clone(),
                        message: format!(
                            "`{}` is an analysed text field in ECS; it is compared here as a \
                             keyword, so word matches Elastic would find are missed",
                            m.field.name
                        ),
                    });
                }
                if eval::is_ip_field(&m.field.name) {
                    for literal in m.values.literals() {
                        if let ast::LiteralKind::Text(t) = &literal.kind
                            && eval::parse_cidr(t).is_none()
                        {
                            out.push(Warning {
                                span: literal.span.clone(),
                                message: format!(
                                    "`{t}` is not an IP address or CIDR block; Elastic \
                                     rejects this query on an `ip` field"
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    out.sort_by_key(|w| w.span.start);
    out
}
