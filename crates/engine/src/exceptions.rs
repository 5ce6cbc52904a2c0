//! Rule exceptions in the format of Elastic's exception lists.
//!
//! Security teams tune a rule by adding exception items in Kibana; an alert is suppressed when
//! any item matches the event. This module reads those items as Kibana stores and exports them
//! (the JSON of an exception list item) and evaluates them with the semantics of the query
//! Kibana builds from them:
//!
//! * the entries of one item are AND-ed, the items OR-ed;
//! * `match` is a `match_phrase` on a `keyword` field: the whole value, case-sensitively, like
//!   a quoted KQL value (and an address or CIDR block on an `ip` field);
//! * `match_any` is any of its values; `exists` is Elasticsearch's `exists` query;
//! * `wildcard` is Elasticsearch's `wildcard` query: anchored, `*` any run of characters, `?`
//!   exactly one, `\` escapes the next character, case-sensitive;
//! * `operator: excluded` negates the entry (so it holds when the field is missing);
//! * `nested` holds when one object at its path satisfies all its entries, whose field names
//!   are relative to that path;
//! * `os_types` adds "`host.os.type` or `host.os.name.caseless` is one of them", as Kibana does;
//! * an item with `expire_time` no longer applies to events at or after that instant (Kibana
//!   drops expired items when the rule runs; here the event's `@timestamp` stands for "now", so
//!   an event without a readable `@timestamp` is never suppressed by an expiring item).
//!
//! Value-list entries (`type: list`) need the contents of an Elasticsearch value list, which a
//! pipeline filter does not have: they are a load error, never an item that silently matches
//! nothing (which would let alerts through) or everything (which would hide them).
//!
//! The reader is written over the project's own JSON value rather than derived with serde, a
//! decision with three reasons: a tuning file must be read unambiguously, and only
//! `vmext_json` sees repeated keys (serde_json keeps the last silently); every error names the
//! item and the entry and explains Kibana's semantics where a derived reader would say
//! "unknown variant"; and a serde derive over `vmext_json::Value` would need a `Deserializer`
//! of its own for the same checks, so more code, not less, in a crate that also runs inside
//! the Fluent Bit module.

use vmext_json::Value;
use vmext_kql::ast::{Literal, LiteralKind};
use vmext_kql::eval;

/// A set of exception items, loaded from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exceptions {
    items: Vec<ExceptionItem>,
}

/// One exception item: its identity and the entries that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionItem {
    /// `item_id` (or `id`), or `#N` (its position, from 1) when the item has neither.
    pub item_id: String,
    /// `name`, when given.
    pub name: Option<String>,
    /// The entries, AND-ed.
    pub entries: Vec<Entry>,
    /// `os_types`, when given.
    pub os_types: Vec<String>,
    /// `expire_time`, normalised to `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub expire_time: Option<String>,
}

/// One condition of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A field condition, possibly negated.
    Field {
        /// The ECS field name.
        field: String,
        /// `operator: excluded`.
        excluded: bool,
        /// What the field must satisfy.
        test: Test,
    },
    /// `type: nested`: one object at `field` satisfies every entry.
    Nested {
        /// The path of the objects.
        field: String,
        /// Conditions on each object, with field names relative to `field`.
        entries: Vec<Entry>,
    },
}

/// The test of a field entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `match`: one value.
    Match(String),
    /// `match_any`: any of these values.
    MatchAny(Vec<String>),
    /// `exists`.
    Exists,
    /// `wildcard`: an Elasticsearch wildcard pattern.
    Wildcard(String),
}

/// Why an exceptions file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", item.map(|n| format!("exception item {n}: ")).unwrap_or_default())]
pub struct ExceptionsError {
    /// Which item (from 1, in file order) or line the problem is in, if it is in one.
    pub item: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// The item that suppressed an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The item's `item_id`.
    pub item_id: String,
    /// The item's `name`, when it has one.
    pub name: Option<String>,
}

impl Exceptions {
    /// No exceptions.
    pub fn none() -> Exceptions {
        Exceptions::default()
    }

    /// Reads exception items from a file's text: one item object, a JSON array of items, or a
    /// Kibana export (one JSON object a line: the list, its items, and an export summary; lines
    /// without `entries` are skipped).
    pub fn from_json(text: &str) -> Result<Exceptions, ExceptionsError> {
        let whole = |message: String| ExceptionsError {
            item: None,
            message,
        };
        let values: Vec<Value<'_>> = match vmext_json::parse(text.as_bytes()) {
            // `Value` drops its tree without recursion, so its parts are taken, not moved.
            Ok(mut whole @ Value::Array(_)) => match &mut whole {
                Value::Array(items) => std::mem::take(items),
                _ => Vec::new(),
            },
            Ok(item @ Value::Object(_)) => vec![item],
            Ok(_) => {
                return Err(whole(
                    "expected an exception item object, an array of items, or an NDJSON export"
                        .to_owned(),
                ));
            }
            Err(first_error) => {
                let mut lines = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match vmext_json::parse(line.as_bytes()) {
                        Ok(v) => {
                            if let Some(repeated) = v.repeated_key() {
                                return Err(whole(format!(
                                    "line {}: {}",
                                    n + 1,
                                    repeated_key_message(&repeated)
                                )));
                            }
                            lines.push(v)
                        }
                        Err(e) => {
                            return Err(whole(if n == 0 {
                                format!("not JSON: {first_error}")
                            } else {
                                format!("line {}: not JSON: {e}", n + 1)
                            }));
                        }
                    }
                }
                lines
                    .into_iter()
                    .filter(|v| v.get("entries").is_some())
                    .collect()
            }
        };
        let mut items = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let n = i + 1;
            if let Some(repeated) = value.repeated_key() {
                return Err(ExceptionsError {
                    item: Some(n),
                    message: repeated_key_message(&repeated),
                });
            }
            items.push(item(value, n).map_err(|message| ExceptionsError {
                item: Some(n),
                message,
            })?);
        }
        Ok(Exceptions { items })
    }

    /// The items, in file order.
    pub fn items(&self) -> &[ExceptionItem] {
        &self.items
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The first item, in file order, that matches the event (its ECS view).
    pub fn suppression(&self, view: &Value<'_>, timestamp: Option<&str>) -> Option<Suppression> {
        self.items
            .iter()
            .find(|item| item.applies_at(timestamp) && item.matches(view))
            .map(|item| Suppression {
                item_id: item.item_id.clone(),
                name: item.name.clone(),
            })
    }
}

impl ExceptionItem {
    /// Whether every entry (and the `os_types` condition) holds on the event.
    pub fn matches(&self, view: &Value<'_>) -> bool {
        let os = self.os_types.is_empty()
            || ["host.os.type", "host.os.name.caseless"]
                .iter()
                .any(|field| {
                    eval::leaves_at(view, field).iter().any(|leaf| {
                        eval::indexed_text(leaf)
                            .is_some_and(|t| self.os_types.iter().any(|o| *o == t))
                    })
                });
        os && self.entries.iter().all(|e| e.holds(view))
    }

    /// Whether the item is still in force for an event at `timestamp` (normalised UTC).
    fn applies_at(&self, timestamp: Option<&str>) -> bool {
        match (&self.expire_time, timestamp) {
            (None, _) => true,
            (Some(expiry), Some(at)) => at < expiry.as_str(),
            (Some(_), None) => false,
        }
    }
}

impl Entry {
    /// Whether the entry holds on `doc` (the event, or one object of a nested entry).
    pub fn holds(&self, doc: &Value<'_>) -> bool {
        match self {
            Entry::Field {
                field,
                excluded,
                test,
            } => test.holds(field, doc) != *excluded,
            Entry::Nested { field, entries } => eval::objects_at(doc, field)
                .into_iter()
                .any(|object| entries.iter().all(|e| e.holds(object))),
        }
    }
}

impl Test {
    fn holds(&self, field: &str, doc: &Value<'_>) -> bool {
        if let Test::Exists = self {
            return eval::field_exists(doc, field);
        }
        let ip = eval::is_ip_field(field);
        eval::leaves_at(doc, field).iter().any(|leaf| {
            let Some(text) = eval::indexed_text(leaf) else {
                return false;
            };
            match self {
                Test::Match(value) => phrase_matches(value, &text, ip),
                Test::MatchAny(values) => values.iter().any(|v| phrase_matches(v, &text, ip)),
                Test::Wildcard(pattern) => wildcard_matches(pattern, &text),
                Test::Exists => false,
            }
        })
    }
}

/// `match_phrase` on a `keyword` (or `ip`) field: the term query a quoted KQL value makes.
fn phrase_matches(value: &str, text: &str, ip: bool) -> bool {
    let literal = Literal {
        kind: LiteralKind::Text(value.to_owned()),
        quoted: true,
        span: 0..0,
    };
    eval::literal_matches(&literal, text, ip)
}

/// Elasticsearch's `wildcard` query on a keyword: anchored; `*` any run, `?` one character,
/// `\` takes the next character literally ([`vmext_kql::Wildcard`], the matcher KQL's
/// wildcards use too: linear in practice, never exponential).
pub fn wildcard_matches(pattern: &str, text: &str) -> bool {
    vmext_kql::Wildcard::new(pattern).matches(text)
}

/// A repeated key makes an item ambiguous (Kibana's `JSON.parse` keeps the last value, a
/// first-match reader the first: `"operator":"included","operator":"excluded"` would mean
/// opposite things), so it is refused, as in records.
fn repeated_key_message(repeated: &vmext_json::RepeatedKey) -> String {
    let place = if repeated.pointer.is_empty() {
        "the top-level object".to_owned()
    } else {
        format!("the object at `{}`", repeated.pointer)
    };
    format!(
        "key `{}` appears more than once in {place}; each key may appear only once",
        repeated.key
    )
}

fn string_member(value: &Value<'_>, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.to_string())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn item(value: &Value<'_>, n: usize) -> Result<ExceptionItem, String> {
    if value.as_object().is_none() {
        return Err("an exception item must be a JSON object".to_owned());
    }
    let item_id = string_member(value, "item_id")?
        .or(string_member(value, "id")?)
        .unwrap_or_else(|| format!("#{n}"));
    let name = string_member(value, "name")?;
    let entries = match value.get("entries") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries
            .iter()
            .enumerate()
            .map(|(i, e)| entry(e, false).map_err(|m| format!("entry {}: {m}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) => return Err("`entries` is empty".to_owned()),
        Some(_) => return Err("`entries` must be an array".to_owned()),
        None => return Err("`entries` is missing".to_owned()),
    };
    let os_types = match value.get("os_types") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.to_string()),
                _ => Err("`os_types` must be an array of strings".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`os_types` must be an array of strings".to_owned()),
    };
    let expire_time =
        match string_member(value, "expire_time")? {
            None => None,
            Some(text) => Some(crate::timestamp::normalise(&text).ok_or_else(|| {
                format!("`expire_time` {text:?} is not an ISO 8601 date and time")
            })?),
        };
    Ok(ExceptionItem {
        item_id,
        name,
        entries,
        os_types,
        expire_time,
    })
}

fn entry(value: &Value<'_>, in_nested: bool) -> Result<Entry, String> {
    let field = match string_member(value, "field")? {
        Some(f) if !f.is_empty() => f,
        _ => return Err("`field` is missing or empty".to_owned()),
    };
    let kind = string_member(value, "type")?.ok_or("`type` is missing")?;
    if kind == "nested" {
        if in_nested {
            return Err("a nested entry cannot contain another nested entry".to_owned());
        }
        let entries = match value.get("entries") {
            Some(Value::Array(entries)) if !entries.is_empty() => entries
                .iter()
                .map(|e| entry(e, true))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("a nested entry needs a non-empty `entries` array".to_owned()),
        };
        return Ok(Entry::Nested { field, entries });
    }
    let excluded = match string_member(value, "operator")?.as_deref() {
        Some("included") => false,
        Some("excluded") => true,
        Some(other) => {
            return Err(format!(
                "`operator` is {other:?}; expected \"included\" or \"excluded\""
            ));
        }
        None => return Err("`operator` is missing".to_owned()),
    };
    let single_value = || -> Result<String, String> {
        match value.get("value") {
            Some(Value::String(s)) => Ok(s.to_string()),
            _ => Err(format!("a `{kind}` entry needs a string `value`")),
        }
    };
    let test = match kind.as_str() {
        "match" => Test::Match(single_value()?),
        "wildcard" => Test::Wildcard(single_value()?),
        "exists" => Test::Exists,
        "match_any" => match value.get("value") {
            Some(Value::Array(values)) if !values.is_empty() => Test::MatchAny(
                values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.to_string()),
                        _ => Err("`match_any` values must be strings".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err("a `match_any` entry needs a non-empty array `value`".to_owned()),
        },
        "list" => {
            return Err(format!(
                "`{field}` uses a value list (`type: list`), whose contents live in \
                 Elasticsearch; write its values into a `match_any` entry instead"
            ));
        }
        other => {
            return Err(format!(
                "unknown entry type {other:?}; expected match, match_any, exists, wildcard, \
                 nested or list"
            ));
        }
    };
    Ok(Entry::Field {
        field,
        excluded,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value<'_> {
        vmext_json::parse(text.as_bytes()).unwrap()
    }

    fn one(entries: &str) -> Exceptions {
        Exceptions::from_json(&format!(r#"{{"item_id":"x","entries":{entries}}}"#)).unwrap()
    }

    fn suppressed(ex: &Exceptions, d: &str) -> bool {
        ex.suppression(&doc(d), None).is_some()
    }

    #[test]
    fn match_is_exact_and_case_sensitive() {
        let ex = one(
            r#"[{"field":"user.name","operator":"included","type":"match","value":"svc-deploy"}]"#,
        );
        assert!(suppressed(&ex, r#"{"user":{"name":"svc-deploy"}}"#));
        assert!(suppressed(&ex, r#"{"user.name":["a","svc-deploy"]}"#));
        assert!(!suppressed(&ex, r#"{"user":{"name":"SVC-DEPLOY"}}"#));
        assert!(!suppressed(&ex, r#"{"user":{"name":"svc-deploy2"}}"#));
        assert!(!suppressed(&ex, r#"{}"#));
    }

    #[test]
    fn excluded_match_holds_when_the_field_is_missing() {
        let ex =
            one(r#"[{"field":"user.name","operator":"excluded","type":"match","value":"alice"}]"#);
        assert!(!suppressed(&ex, r#"{"user":{"name":"alice"}}"#));
        assert!(suppressed(&ex, r#"{"user":{"name":"bob"}}"#));
        assert!(suppressed(&ex, r#"{}"#));
    }

    #[test]
    fn match_any_takes_any_value() {
        let ex =
            one(r#"[{"field":"a","operator":"included","type":"match_any","value":["1","2"]}]"#);
        assert!(suppressed(&ex, r#"{"a":2}"#));
        assert!(suppressed(&ex, r#"{"a":"1"}"#));
        assert!(!suppressed(&ex, r#"{"a":"3"}"#));
        let ex =
            one(r#"[{"field":"a","operator":"excluded","type":"match_any","value":["1","2"]}]"#);
        assert!(!suppressed(&ex, r#"{"a":"1"}"#));
        assert!(suppressed(&ex, r#"{"a":"3"}"#));
    }

    #[test]
    fn exists_follows_elasticsearch() {
        let ex = one(r#"[{"field":"a.b","operator":"included","type":"exists"}]"#);
        assert!(suppressed(&ex, r#"{"a":{"b":""}}"#));
        assert!(suppressed(&ex, r#"{"a.b":false}"#));
        assert!(!suppressed(&ex, r#"{"a":{"b":null}}"#));
        assert!(!suppressed(&ex, r#"{"a":{"b":[]}}"#));
        let ex = one(r#"[{"field":"a.b","operator":"excluded","type":"exists"}]"#);
        assert!(suppressed(&ex, r#"{"a":{}}"#));
        assert!(!suppressed(&ex, r#"{"a":{"b":1}}"#));
    }

    #[test]
    fn wildcard_is_anchored_with_question_marks_and_escapes() {
        assert!(wildcard_matches(
            "*/EXTENSIONS/CUSTOM*",
            "/S/X/EXTENSIONS/CUSTOMSCRIPT"
        ));
        assert!(!wildcard_matches(
            "*/EXTENSIONS/CUSTOM*",
            "/S/X/extensions/CUSTOMSCRIPT"
        ));
        assert!(wildcard_matches("vm-??", "vm-01"));
        assert!(!wildcard_matches("vm-??", "vm-1"));
        assert!(!wildcard_matches("vm-??", "vm-001"));
        assert!(wildcard_matches(r"a\*b", "a*b"));
        assert!(!wildcard_matches(r"a\*b", "axb"));
        assert!(wildcard_matches("*", ""));
        assert!(wildcard_matches("a*b*c", "aXbYbZc"));
        assert!(!wildcard_matches("a*b*c", "aXbYbZ"));
        assert!(wildcard_matches("é?", "éü"));
        // Many stars against a long miss stays fast (one backtrack point).
        let text = "a".repeat(10_000);
        assert!(!wildcard_matches("*a*a*a*a*a*a*a*b", &text));
        let ex = one(r#"[{"field":"f","operator":"excluded","type":"wildcard","value":"svc-*"}]"#);
        assert!(suppressed(&ex, r#"{"f":"alice"}"#));
        assert!(!suppressed(&ex, r#"{"f":"svc-1"}"#));
    }

    #[test]
    fn nested_needs_one_object_satisfying_every_entry() {
        let ex = one(r#"[{"field":"claims","type":"nested","entries":[
                {"field":"name","operator":"included","type":"match","value":"a"},
                {"field":"role","operator":"included","type":"match","value":"admin"}]}]"#);
        assert!(suppressed(
            &ex,
            r#"{"claims":[{"name":"a","role":"admin"}]}"#
        ));
        assert!(!suppressed(
            &ex,
            r#"{"claims":[{"name":"a","role":"user"},{"name":"b","role":"admin"}]}"#
        ));
        assert!(suppressed(&ex, r#"{"claims":{"name":"a","role":"admin"}}"#));
        assert!(!suppressed(&ex, r#"{}"#));
    }

    #[test]
    fn entries_are_anded_and_items_ored() {
        let ex = Exceptions::from_json(
            r#"[{"item_id":"one","name":"first","entries":[
                   {"field":"a","operator":"included","type":"match","value":"1"},
                   {"field":"b","operator":"included","type":"match","value":"2"}]},
                {"item_id":"two","entries":[
                   {"field":"c","operator":"included","type":"exists"}]}]"#,
        )
        .unwrap();
        let which = |d: &str| ex.suppression(&doc(d), None).map(|s| s.item_id);
        assert_eq!(which(r#"{"a":"1","b":"2"}"#).as_deref(), Some("one"));
        assert_eq!(which(r#"{"a":"1"}"#), None);
        assert_eq!(which(r#"{"a":"1","c":"x"}"#).as_deref(), Some("two"));
    }

    #[test]
    fn os_types_add_a_host_os_condition() {
        let ex = Exceptions::from_json(
            r#"{"item_id":"w","os_types":["windows"],"entries":[
                {"field":"a","operator":"included","type":"exists"}]}"#,
        )
        .unwrap();
        assert!(suppressed(
            &ex,
            r#"{"a":1,"host":{"os":{"type":"windows"}}}"#
        ));
        assert!(suppressed(
            &ex,
            r#"{"a":1,"host.os.name.caseless":"windows"}"#
        ));
        assert!(!suppressed(
            &ex,
            r#"{"a":1,"host":{"os":{"type":"linux"}}}"#
        ));
        assert!(!suppressed(&ex, r#"{"a":1}"#));
    }

    #[test]
    fn expired_items_stop_applying() {
        let ex = Exceptions::from_json(
            r#"{"item_id":"t","expire_time":"2026-01-01T00:00:00.000Z","entries":[
                {"field":"a","operator":"included","type":"exists"}]}"#,
        )
        .unwrap();
        let d = doc(r#"{"a":1}"#);
        assert!(
            ex.suppression(&d, Some("2025-12-31T23:59:59.999Z"))
                .is_some()
        );
        assert!(
            ex.suppression(&d, Some("2026-01-01T00:00:00.000Z"))
                .is_none()
        );
        assert!(ex.suppression(&d, None).is_none());
    }

    #[test]
    fn kibana_exports_are_read_line_by_line() {
        let text = concat!(
            r#"{"list_id":"l","name":"List","type":"detection","namespace_type":"single"}"#,
            "\n",
            r#"{"item_id":"i1","list_id":"l","type":"simple","entries":[{"field":"a","operator":"included","type":"exists"}]}"#,
            "\n",
            r#"{"exported_exception_list_count":1,"exported_exception_list_item_count":1}"#,
            "\n"
        );
        let ex = Exceptions::from_json(text).unwrap();
        assert_eq!(ex.items().len(), 1);
        assert_eq!(ex.items()[0].item_id, "i1");
    }

    #[test]
    fn errors_name_the_item_and_entry() {
        let err = |t: &str| Exceptions::from_json(t).unwrap_err().to_string();
        assert_eq!(
            err(
                r#"[{"entries":[{"field":"a","operator":"included","type":"exists"}]},{"entries":[{"field":"ip","operator":"included","type":"list","list":{"id":"ips","type":"ip"}}]}]"#
            ),
            "exception item 2: entry 1: `ip` uses a value list (`type: list`), whose contents \
             live in Elasticsearch; write its values into a `match_any` entry instead"
        );
        assert_eq!(
            err(r#"{"entries":[{"field":"a","operator":"is","type":"match","value":"x"}]}"#),
            "exception item 1: entry 1: `operator` is \"is\"; expected \"included\" or \"excluded\""
        );
        assert_eq!(
            err(r#"{"entries":[{"field":"a","operator":"included","type":"match"}]}"#),
            "exception item 1: entry 1: a `match` entry needs a string `value`"
        );
        assert_eq!(
            err(r#"{"entries":[]}"#),
            "exception item 1: `entries` is empty"
        );
        assert_eq!(
            err(r#"{"entries":[{"field":"a","operator":"included","type":"regex","value":"x"}]}"#),
            "exception item 1: entry 1: unknown entry type \"regex\"; expected match, match_any, \
             exists, wildcard, nested or list"
        );
        assert!(err("{nope").starts_with("not JSON"));
        assert_eq!(
            err("1"),
            "expected an exception item object, an array of items, or an NDJSON export"
        );
        assert!(Exceptions::from_json("[]").unwrap().is_empty());
    }

    /// `"operator":"included","operator":"excluded"` was read first-value-wins and suppressed
    /// every alert; Kibana keeps the last. A repeated key anywhere is refused, naming it.
    #[test]
    fn repeated_keys_are_refused_naming_the_key_and_where() {
        let err = |t: &str| Exceptions::from_json(t).unwrap_err().to_string();
        assert_eq!(
            err(
                r#"{"item_id":"x","entries":[{"field":"user.name","operator":"included","operator":"excluded","type":"match","value":"svc"}]}"#
            ),
            "exception item 1: key `operator` appears more than once in the object at \
             `/entries/0`; each key may appear only once"
        );
        assert_eq!(
            err(
                r#"[{"entries":[{"field":"a","operator":"included","type":"exists"}]},
                    {"item_id":"b","item_id":"c","entries":[{"field":"a","operator":"included","type":"exists"}]}]"#
            ),
            "exception item 2: key `item_id` appears more than once in the top-level object; \
             each key may appear only once"
        );
        // In an export, on any line (even one that is not an item), with its line number.
        let export = concat!(
            r#"{"list_id":"l","name":"List","name":"Other"}"#,
            "\n",
            r#"{"item_id":"i1","entries":[{"field":"a","operator":"included","type":"exists"}]}"#,
            "\n"
        );
        assert_eq!(
            err(export),
            "line 1: key `name` appears more than once in the top-level object; each key may \
             appear only once"
        );
        let nested = r#"{"entries":[{"field":"c","type":"nested","entries":[
            {"field":"n","operator":"included","type":"match","value":"a","value":"b"}]}]}"#;
        assert_eq!(
            err(nested),
            "exception item 1: key `value` appears more than once in the object at \
             `/entries/0/entries/0`; each key may appear only once"
        );
    }
}
