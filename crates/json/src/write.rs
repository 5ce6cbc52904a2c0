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
    // Byte by byte: everything escaped is ASCII, and no byte of a multi-byte UTF-8 sequence is,
    // so each escaped byte is a whole character and every cut below is on a char boundary.
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(plain_from..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
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

    /// The escaping written one character at a time, as the writer did before it went byte by
    /// byte: `"`, `\` and the control characters escaped (short forms where JSON has them,
    /// lower-case `\u00xx` otherwise), everything else as itself.
    fn reference(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        /// Any string, multi-byte characters next to escaped ones included, is written as the
        /// character-by-character reference writes it, and parses back to itself.
        #[test]
        fn strings_are_escaped_as_json_requires(s in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f]|\\u{e9}|\\u{1F600})*") {
            let mut out = String::new();
            write_escaped_str(&mut out, &s);
            proptest::prop_assert_eq!(&out, &reference(&s));
            let back = crate::parse(out.as_bytes()).unwrap();
            proptest::prop_assert_eq!(back, Value::string(s.clone()));
        }
    }
}
