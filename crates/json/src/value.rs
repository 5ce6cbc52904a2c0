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
/// Dropping a `Value` never recurses, whatever its depth.
#[derive(Debug, Clone, PartialEq)]
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
