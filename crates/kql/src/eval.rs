//! Evaluating a query on one JSON document with the semantics of Elastic's detection engine.
//!
//! The rules, each from the Elasticsearch/Kibana behaviour recorded in the project's notes:
//!
//! * A field's values are every leaf at its dotted path. `{"a.b": x}`, `{"a": {"b": x}}` and
//!   mixtures are the same field; arrays, including arrays of objects, are flattened.
//! * `null`, `[]` and a missing field have no values: every positive predicate is false, `f:*`
//!   is false, `not f:x` is true. `""` is a value.
//! * Values are compared as `keyword`s: whole-value, case-sensitive, code-point equality; numbers
//!   and booleans as their JSON text. Strings longer than `ignore_above` (1024 UTF-16 units, the
//!   Fleet default) are not indexed and match nothing.
//! * Wildcards are anchored; `*` matches any run of characters; nothing else is special.
//! * Fields of the ECS `ip` type (named `ip` or ending in `.ip`) compare as IP addresses, and a
//!   value may be a CIDR block.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

use vmext_json::Value;

use crate::ast::{FieldMatch, Literal, LiteralKind, Node, RangeOp, ValueList};
use crate::wildcard::glob_match;

/// Strings longer than this many UTF-16 code units are not indexed by a `keyword` field with
/// Fleet's default mapping (`ignore_above: 1024`).
pub const IGNORE_ABOVE: usize = 1024;

/// Whether the query holds for the document.
pub fn matches(node: &Node, doc: &Value<'_>) -> bool {
    match node {
        Node::MatchAll => true,
        Node::Or(items) => items.iter().any(|n| matches(n, doc)),
        Node::And(items) => items.iter().all(|n| matches(n, doc)),
        Node::Not(inner) => !matches(inner, doc),
        Node::Match(m) => {
            let values = FieldValues::collect(&m.field, doc);
            list_holds(&m.values, &values)
        }
        Node::FreeText(literal) => {
            let values = FieldValues::all(doc);
            literal_holds(literal, &values)
        }
        Node::Range(r) => FieldValues::collect(&r.field, doc)
            .texts()
            .any(|v| range_holds(&v, r.op, &r.value.text())),
        Node::Nested(n) => objects_at(doc, &n.field.name).any(|object| matches(&n.query, object)),
    }
}

/// The values a field has in a document, as Elasticsearch would have indexed them.
pub(crate) struct FieldValues<'v, 'a> {
    leaves: Vec<&'v Value<'a>>,
    /// Objects found at the path itself (they count for `field:*`).
    objects: Vec<&'v Value<'a>>,
    ip: bool,
}

impl<'v, 'a> FieldValues<'v, 'a> {
    /// The values of `field` (a name or a pattern) in `doc`.
    pub(crate) fn collect(field: &crate::ast::Field, doc: &'v Value<'a>) -> Self {
        match &field.pattern {
            None => {
                let mut leaves = Vec::new();
                let mut objects = Vec::new();
                walk_path(doc, &field.name, &mut leaves, &mut objects, true);
                FieldValues {
                    leaves,
                    objects,
                    ip: is_ip_field(&field.name),
                }
            }
            Some(pattern) => {
                let mut leaves = Vec::new();
                for_each_leaf(doc, |path, leaf| {
                    if glob_match(pattern, path) {
                        leaves.push(leaf);
                    }
                });
                FieldValues {
                    leaves,
                    objects: Vec::new(),
                    ip: false,
                }
            }
        }
    }

    /// Every value of every field (free text).
    fn all(doc: &'v Value<'a>) -> Self {
        let mut leaves = Vec::new();
        for_each_leaf(doc, |_, leaf| leaves.push(leaf));
        FieldValues {
            leaves,
            objects: Vec::new(),
            ip: false,
        }
    }

    /// The indexed values as text, in document order.
    pub(crate) fn texts(&self) -> impl Iterator<Item = Cow<'v, str>> + '_ {
        self.leaves.iter().filter_map(|leaf| indexed_text(leaf))
    }

    fn exists(&self) -> bool {
        self.texts().next().is_some()
            || self.objects.iter().any(|o| {
                let mut found = false;
                for_each_leaf(o, |_, leaf| found = found || indexed_text(leaf).is_some());
                found
            })
    }
}

/// A leaf's text as a `keyword` field indexes it, or `None` if it is not indexed.
pub fn indexed_text<'v>(leaf: &'v Value<'_>) -> Option<Cow<'v, str>> {
    match leaf {
        // UTF-8 length bounds UTF-16 length from above, so short strings skip the count.
        Value::String(s) if s.len() > IGNORE_ABOVE && s.encode_utf16().count() > IGNORE_ABOVE => {
            None
        }
        other => leaf_text(other),
    }
}

/// A scalar's text: strings as they are, numbers as written, booleans as `true`/`false`.
pub fn leaf_text<'v>(leaf: &'v Value<'_>) -> Option<Cow<'v, str>> {
    match leaf {
        Value::String(s) => Some(Cow::Borrowed(s.as_ref())),
        Value::Number(n) => Some(Cow::Borrowed(n.as_str())),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn list_holds(list: &ValueList, values: &FieldValues<'_, '_>) -> bool {
    match list {
        ValueList::One(literal) => literal_holds(literal, values),
        ValueList::Or(items) => items.iter().any(|l| list_holds(l, values)),
        ValueList::And(items) => items.iter().all(|l| list_holds(l, values)),
        ValueList::Not(inner) => !list_holds(inner, values),
    }
}

pub(crate) fn literal_holds(literal: &Literal, values: &FieldValues<'_, '_>) -> bool {
    if literal.is_match_any() {
        return values.exists();
    }
    values
        .texts()
        .any(|text| literal_matches(literal, &text, values.ip))
}

/// Whether one indexed value satisfies one literal.
pub fn literal_matches(literal: &Literal, text: &str, ip_field: bool) -> bool {
    match &literal.kind {
        LiteralKind::Text(t) if ip_field => ip_matches(t, text),
        LiteralKind::Text(t) => text == t,
        LiteralKind::Bool(b) => text == if *b { "true" } else { "false" },
        LiteralKind::Null => text == "null",
        LiteralKind::Wildcard(pieces) => glob_match(pieces, text),
    }
}

/// ECS gives the `ip` type to fields named `ip` or ending in `.ip`.
pub fn is_ip_field(name: &str) -> bool {
    name == "ip" || name.ends_with(".ip")
}

/// Term query on an `ip` field: an address or a CIDR block against one indexed address.
fn ip_matches(query: &str, value: &str) -> bool {
    let Ok(value) = value.parse::<IpAddr>() else {
        return false;
    };
    let value = to_v6(value);
    match parse_cidr(query) {
        Some((network, prefix)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            (u128::from(value) & mask) == (u128::from(network) & mask)
        }
        None => false,
    }
}

/// An address (`/128` or `/32`) or CIDR block, in the IPv6 space where IPv4 is mapped.
pub(crate) fn parse_cidr(text: &str) -> Option<(Ipv6Addr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr = addr.parse::<IpAddr>().ok()?;
    let prefix = match (addr, prefix) {
        (IpAddr::V4(_), Some(p)) if p <= 32 => p + 96,
        (IpAddr::V6(_), Some(p)) if p <= 128 => p,
        (_, Some(_)) => return None,
        (_, None) => 128,
    };
    Some((to_v6(addr), prefix))
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A range comparison: numeric when both sides are numbers, otherwise by UTF-8 bytes, which is
/// how Elasticsearch orders `keyword` terms.
fn range_holds(value: &str, op: RangeOp, bound: &str) -> bool {
    let ordering = match (parse_number(value), parse_number(bound)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(value.as_bytes().cmp(bound.as_bytes())),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        RangeOp::Lt => ordering.is_lt(),
        RangeOp::Lte => ordering.is_le(),
        RangeOp::Gt => ordering.is_gt(),
        RangeOp::Gte => ordering.is_ge(),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Collects the leaves and objects at a dotted path, without recursion.
///
/// A key that extends the path through a dot (`{"a.b.c": 1}` for the path `a.b`) holds a value
/// *under* the path: Elasticsearch maps it into the same object field, so for `exists` it is
/// part of the object at the path. With `dotted_descendants` such values are added to
/// `objects`; nested queries, which need whole objects, leave them out.
fn walk_path<'v, 'a>(
    doc: &'v Value<'a>,
    path: &str,
    leaves: &mut Vec<&'v Value<'a>>,
    objects: &mut Vec<&'v Value<'a>>,
    dotted_descendants: bool,
) {
    let mut stack: Vec<(&'v Value<'a>, &str)> = vec![(doc, path)];
    while let Some((value, rest)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev().map(|item| (item, rest))),
            Value::Object(_) if rest.is_empty() => objects.push(value),
            Value::Object(members) => {
                for (key, child) in members.iter().rev() {
                    if key.is_empty() {
                        continue;
                    }
                    if rest == key {
                        stack.push((child, ""));
                    } else if let Some(after) = rest
                        .strip_prefix(key.as_ref())
                        .and_then(|r| r.strip_prefix('.'))
                    {
                        stack.push((child, after));
                    } else if dotted_descendants
                        && key.strip_prefix(rest).is_some_and(|r| r.starts_with('.'))
                    {
                        objects.push(child);
                    }
                }
            }
            Value::Null => {}
            leaf if rest.is_empty() => leaves.push(leaf),
            _ => {}
        }
    }
}

/// Every non-null leaf at a dotted path (arrays flattened, dotted keys and nested objects
/// alike), in document order, whether or not it is indexed.
pub fn leaves_at<'v, 'a>(doc: &'v Value<'a>, path: &str) -> Vec<&'v Value<'a>> {
    let mut leaves = Vec::new();
    let mut objects = Vec::new();
    walk_path(doc, path, &mut leaves, &mut objects, true);
    leaves
}

/// Whether the field has an indexed value (what `field:*` tests).
pub fn field_exists(doc: &Value<'_>, field: &str) -> bool {
    let field = crate::ast::Field {
        name: field.to_owned(),
        pattern: None,
        quoted: false,
    };
    FieldValues::collect(&field, doc).exists()
}

/// The objects at a dotted path (arrays flattened): the scopes of a nested query.
pub fn objects_at<'v, 'a>(doc: &'v Value<'a>, path: &str) -> impl Iterator<Item = &'v Value<'a>> {
    let mut leaves = Vec::new();
    let mut objects = Vec::new();
    walk_path(doc, path, &mut leaves, &mut objects, false);
    objects.into_iter()
}

/// Calls `f` with the dotted path and value of every leaf (not null, not a container).
pub(crate) fn for_each_leaf<'v, 'a>(doc: &'v Value<'a>, mut f: impl FnMut(&str, &'v Value<'a>)) {
    // Each frame: the value and the length of the path prefix that leads to it.
    let mut path = String::new();
    let mut stack: Vec<(&'v Value<'a>, usize, Option<&'v str>)> = vec![(doc, 0, None)];
    while let Some((value, prefix_len, key)) = stack.pop() {
        path.truncate(prefix_len);
        if let Some(key) = key {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        }
        match value {
            Value::Array(items) => {
                let here = path.len();
                stack.extend(items.iter().rev().map(|item| (item, here, None)));
            }
            Value::Object(members) => {
                let here = path.len();
                stack.extend(
                    members
                        .iter()
                        .rev()
                        .map(|(k, child)| (child, here, Some(k.as_ref()))),
                );
            }
            Value::Null => {}
            leaf => f(&path, leaf),
        }
    }
}

/// The first literal of a field clause's value list that the document satisfies, in the order
/// the list is written. Used to name what matched (for example the extension family).
pub fn first_matching_literal<'q>(m: &'q FieldMatch, doc: &Value<'_>) -> Option<&'q Literal> {
    let values = FieldValues::collect(&m.field, doc);
    m.values
        .literals()
        .into_iter()
        .find(|literal| !literal.is_match_any() && literal_holds(literal, &values))
}
