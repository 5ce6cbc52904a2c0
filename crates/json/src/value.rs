//! The document tree.

use std::borrow::Cow;

/// A JSON number, kept as its exact source text (`1e2` stays `1e2`, `1.50` stays `1.50`).
///
/// Elasticsearch indexes a number sent to a `keyword` field as its text, so the text is what a
/// rule compares against; converting to a float first would change `1.50` into `1.5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number<'a>(Cow<'a, str>);

impl<'a> Number<'a> {
    /// A number from text the parser validated.
    pub(crate) fn from_source(text: &'a str) -> Self {
        Number(Cow::Borrowed(text))
    }

    /// A number from an integer computed by a caller (for documents built in code).
    pub fn from_i128(n: i128) -> Number<'static> {
        Number(Cow::Owned(n.to_string()))
    }

    /// The same number borrowing this one's text.
    pub fn reborrow(&self) -> Number<'_> {
        Number(Cow::Borrowed(&self.0))
    }

    /// The same number owning its text.
    pub fn to_owned_number(&self) -> Number<'static> {
        Number(Cow::Owned(self.0.to_string()))
    }

    /// The number exactly as it was written in the document.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as a float, if it is finite.
    pub fn as_f64(&self) -> Option<f64> {
        self.0.parse::<f64>().ok().filter(|f| f.is_finite())
    }
}

/// One JSON value. Text borrows from the input where it can.
///
/// Dropping, cloning and copying a `Value` ([`Value::borrowed`], [`Value::to_static`]) never
/// recurse, whatever its depth.
#[derive(Debug, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(Number<'a>),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// An array, in document order.
    Array(Vec<Value<'a>>),
    /// An object's members in document order; duplicate keys are kept.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The first member named `key`, if this is an object that has one.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Value<'a>)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A string value that owns its text.
    pub fn string(text: impl Into<String>) -> Value<'static> {
        Value::String(Cow::Owned(text.into()))
    }
}

/// A key that one object of a document repeats, and where that object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedKey {
    /// The repeated key.
    pub key: String,
    /// The object that repeats it, as a JSON Pointer (RFC 6901) from the document's root:
    /// `""` for the root itself, `/entries/0` for the first element of its `entries`.
    pub pointer: String,
}

impl Value<'_> {
    /// The first key repeated within one object, anywhere in the document, with where that
    /// object is. JSON leaves repeated keys undefined and readers disagree (Elasticsearch
    /// refuses the document, JavaScript's `JSON.parse` keeps the last value, this crate's
    /// [`Value::get`] the first), so every caller that must read a document unambiguously
    /// refuses one that has any. Walks the tree without recursion; sorts each object's keys once.
    pub fn repeated_key(&self) -> Option<RepeatedKey> {
        let (object, key) = first_repeat(self)?;
        Some(RepeatedKey {
            key: key.to_owned(),
            pointer: pointer_to(self, object),
        })
    }
}

/// The object repeating a key, and the key (the smallest repeated one, in byte order).
fn first_repeat<'v>(doc: &'v Value<'_>) -> Option<(&'v Value<'v>, &'v str)> {
    let mut stack = vec![doc];
    let mut keys: Vec<&str> = Vec::new();
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(members) => {
                keys.clear();
                keys.extend(members.iter().map(|(k, _)| k.as_ref()));
                keys.sort_unstable();
                if let Some(pair) = keys.windows(2).find(|w| w.first() == w.get(1)) {
                    return pair.first().map(|k| (v, *k));
                }
                stack.extend(members.iter().map(|(_, v)| v));
            }
            _ => {}
        }
    }
    None
}

/// The JSON Pointer of `target`, a value inside `doc` (found by address, without recursion).
fn pointer_to(doc: &Value<'_>, target: &Value<'_>) -> String {
    enum Step<'v> {
        Key(&'v str),
        Index(usize),
    }
    // Each visited container's step from its parent: (parent's slot, step).
    let mut steps: Vec<(Option<usize>, Step<'_>)> = Vec::new();
    let mut stack: Vec<(&Value<'_>, Option<usize>)> = vec![(doc, None)];
    let mut found = None;
    while let Some((v, slot)) = stack.pop() {
        if std::ptr::eq(v, target) {
            found = Some(slot);
            break;
        }
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if is_container(item) {
                        steps.push((slot, Step::Index(i)));
                        stack.push((item, Some(steps.len() - 1)));
                    }
                }
            }
            Value::Object(members) => {
                for (k, item) in members {
                    if is_container(item) {
                        steps.push((slot, Step::Key(k)));
                        stack.push((item, Some(steps.len() - 1)));
                    }
                }
            }
            _ => {}
        }
    }
    let mut path = Vec::new();
    let mut at = found.flatten();
    while let Some((parent, step)) = at.and_then(|i| steps.get(i)) {
        path.push(step);
        at = *parent;
    }
    let mut out = String::new();
    for step in path.iter().rev() {
        out.push('/');
        match step {
            Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

impl Value<'_> {
    /// A copy of the structure whose text (strings, keys, numbers) borrows from `self`.
    pub fn borrowed(&self) -> Value<'_> {
        copy_tree(
            self,
            |leaf| match leaf {
                Value::Number(n) => Value::Number(n.reborrow()),
                Value::String(s) => Value::String(Cow::Borrowed(s.as_ref())),
                other => scalar(other),
            },
            |key| Cow::Borrowed(key.as_ref()),
        )
    }

    /// A copy that owns all its text, so that it outlives the input it was parsed from.
    pub fn to_static(&self) -> Value<'static> {
        copy_tree(
            self,
            |leaf| match leaf {
                Value::Number(n) => Value::Number(n.to_owned_number()),
                Value::String(s) => Value::string(s.as_ref()),
                other => scalar(other),
            },
            |key| Cow::Owned(key.to_string()),
        )
    }
}

impl Clone for Value<'_> {
    fn clone(&self) -> Self {
        copy_tree(
            self,
            |leaf| match leaf {
                Value::Number(n) => Value::Number(n.clone()),
                Value::String(s) => Value::String(s.clone()),
                other => scalar(other),
            },
            Cow::clone,
        )
    }
}

/// `null` and booleans, which hold no text; anything else (never passed) as `null`.
fn scalar(v: &Value<'_>) -> Value<'static> {
    match v {
        Value::Bool(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// Copies a value's structure with a heap stack instead of recursion, converting each scalar
/// with `leaf` and each object key with `key`.
fn copy_tree<'i, 'a, 'o>(
    root: &'i Value<'a>,
    leaf: impl Fn(&'i Value<'a>) -> Value<'o>,
    key: impl Fn(&'i Cow<'a, str>) -> Cow<'o, str>,
) -> Value<'o> {
    /// A container being copied: what is left of the source and the copy so far.
    enum Frame<'i, 'a, 'o> {
        Array(std::slice::Iter<'i, Value<'a>>, Vec<Value<'o>>),
        /// The last member holds the key of the child being copied.
        Object(
            std::slice::Iter<'i, (Cow<'a, str>, Value<'a>)>,
            Vec<(Cow<'o, str>, Value<'o>)>,
            Cow<'o, str>,
        ),
    }
    let mut stack: Vec<Frame<'i, 'a, 'o>> = Vec::new();
    let mut next = root;
    loop {
        // Start on `next`: a scalar is done at once, a container becomes a frame.
        let mut done = match next {
            Value::Array(items) => {
                stack.push(Frame::Array(items.iter(), Vec::with_capacity(items.len())));
                None
            }
            Value::Object(members) => {
                stack.push(Frame::Object(
                    members.iter(),
                    Vec::with_capacity(members.len()),
                    Cow::Borrowed(""),
                ));
                None
            }
            other => Some(leaf(other)),
        };
        // Hand finished values to their parents until some container has a child left.
        loop {
            let Some(frame) = stack.last_mut() else {
                return done.unwrap_or(Value::Null);
            };
            let child = match frame {
                Frame::Array(items, copy) => {
                    copy.extend(done.take());
                    items.next()
                }
                Frame::Object(members, copy, pending) => {
                    if let Some(value) = done.take() {
                        copy.push((std::mem::take(pending), value));
                    }
                    members.next().map(|(k, v)| {
                        *pending = key(k);
                        v
                    })
                }
            };
            if let Some(child) = child {
                next = child;
                break;
            }
            done = match stack.pop() {
                Some(Frame::Array(_, copy)) => Some(Value::Array(copy)),
                Some(Frame::Object(_, copy, _)) => Some(Value::Object(copy)),
                None => None,
            };
        }
    }
}

impl Drop for Value<'_> {
    fn drop(&mut self) {
        // Move the children of any container onto a heap stack so that dropping a document
        // nested thousands of levels deep never recurses.
        let mut pending: Vec<Value<'_>> = match self {
            Value::Array(items) if items.iter().any(is_container) => std::mem::take(items),
            Value::Object(members) if members.iter().any(|(_, v)| is_container(v)) => {
                std::mem::take(members)
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
            }
            _ => return,
        };
        while let Some(mut value) = pending.pop() {
            match &mut value {
                Value::Array(items) => pending.append(items),
                Value::Object(members) => {
                    pending.extend(std::mem::take(members).into_iter().map(|(_, v)| v))
                }
                _ => {}
            }
        }
    }
}

fn is_container(v: &Value<'_>) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    fn repeat(text: &str) -> Option<(String, String)> {
        crate::parse(text.as_bytes())
            .unwrap()
            .repeated_key()
            .map(|r| (r.key, r.pointer))
    }

    #[test]
    fn repeated_keys_are_found_with_their_object() {
        let pair = |k: &str, p: &str| Some((k.to_owned(), p.to_owned()));
        assert_eq!(repeat(r#"{"a":1,"b":2}"#), None);
        assert_eq!(repeat(r#"[{"a":1},{"a":2}]"#), None);
        assert_eq!(repeat(r#"{"a":1,"a":2}"#), pair("a", ""));
        assert_eq!(
            repeat(r#"{"entries":[{"x":1},{"operator":"included","operator":"excluded"}]}"#),
            pair("operator", "/entries/1")
        );
        assert_eq!(
            repeat(r#"[1,{"a/b":{"c~":[{"k":0,"k":1}]}}]"#),
            pair("k", "/1/a~1b/c~0/0")
        );
        // Keys are compared after unescaping.
        assert_eq!(repeat(r#"{"k":1,"\u006b":2}"#), pair("k", ""));
    }
}
