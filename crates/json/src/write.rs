//! Serialising values and strings back to compact JSON text.

use std::fmt::Write;

use crate::value::Value;

/// Appends `s` to `out` as a JSON string literal, quotes included.
///
/// Escapes only what JSON requires (`"`, `\` and control characters); other characters,
/// including non-ASCII, are written as UTF-8.
pub fn write_escaped_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(plain_from..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(escape);
        }
        plain_from = i + c.len_utf8();
    }
    out.push_str(s.get(plain_from..).unwrap_or_default());
    out.push('"');
}

/// Appends `value` to `out` as compact JSON, without recursion.
pub fn write_value(out: &mut String, value: &Value<'_>) {
    enum Step<'v, 'a> {
        Value(&'v Value<'a>),
        Raw(&'static str),
        Key(&'v str),
    }
    let mut steps = vec![Step::Value(value)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Raw(s) => out.push_str(s),
            Step::Key(k) => {
                write_escaped_str(out, k);
                out.push(':');
            }
            Step::Value(Value::Null) => out.push_str("null"),
            Step::Value(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Step::Value(Value::Number(n)) => out.push_str(n.as_str()),
            Step::Value(Value::String(s)) => write_escaped_str(out, s),
            Step::Value(Value::Array(items)) => {
                out.push('[');
                steps.push(Step::Raw("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    steps.push(Step::Value(item));
                    if i > 0 {
                        steps.push(Step::Raw(","));
                    }
                }
            }
            Step::Value(Value::Object(members)) => {
                out.push('{');
                steps.push(Step::Raw("}"));
                for (i, (k, v)) in members.iter().enumerate().rev() {
                    steps.push(Step::Value(v));
                    steps.push(Step::Key(k));
                    if i > 0 {
                        steps.push(Step::Raw(","));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compact_json() {
        let text = r#"{"a":[1,-2.5e3,true,false,null,"q\"\\\n\u0001é"],"b":{}}"#;
        let v = crate::parse(text.as_bytes()).unwrap();
        let mut out = String::new();
        write_value(&mut out, &v);
        assert_eq!(out, text);
    }
}
