//! Writing VRL source: literals that read back as exactly the given text, and an indenting
//! line writer with fresh variable names.

use std::fmt::Write as _;

/// A VRL string literal whose value is exactly `text`.
///
/// Everything outside printable ASCII is written as a `\u{…}` escape, so the program text stays
/// ASCII and no character can be misread; `{` and `}` are escaped because `{{` opens a template
/// in a VRL string.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            other => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(other));
            }
        }
    }
    out.push('"');
    out
}

/// A VRL array literal of strings, e.g. a path for `get` or `set`.
pub fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(string).collect();
    format!("[{}]", items.join(", "))
}

/// A VRL expression for a JSON value, exactly: integers as literals, any other number through
/// `parse_json` (which reads it as Vector's JSON decoder does; VRL has no exponent literals).
pub fn json_literal(value: &vmext_json::Value<'_>) -> String {
    use vmext_json::Value;
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let text = n.as_str();
            if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                text.to_owned()
            } else {
                format!("parse_json!({})", string(text))
            }
        }
        Value::String(s) => string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}: {}", string(k), json_literal(v)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
    }
}

/// Conditions joined by `operator` (` && ` or ` || `) as a balanced tree of parentheses, or
/// `None` for no conditions.
///
/// The same test, evaluated left to right with the same short circuit; but VRL's compiler
/// type-checks each operator's whole left side again, so a chain written flat (which leans
/// all the way left) costs it n² steps, and a balanced one n·log n.
pub fn balanced(parts: &[String], operator: &str) -> Option<String> {
    match parts {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            Some(format!(
                "({}{operator}{})",
                balanced(left, operator)?,
                balanced(right, operator)?
            ))
        }
    }
}

/// An array variable as an expression VRL types as "any array".
///
/// VRL infers a variable's type from its assignments, but not from `push`es made inside a
/// closure: an array started as `[]` and filled in `for_each` keeps the type "empty array",
/// and the compiler then rejects ordinary uses of its elements (or calls their checks
/// unnecessary). Reading it back through `get`, which is untyped, gives it a neutral type.
pub fn array(var: &str) -> String {
    format!("(array(get([{var}], [0]) ?? null) ?? [])")
}

/// Element `index` of an array variable, untyped (see [`array()`]).
pub fn item(var: &str, index: usize) -> String {
    format!("(get({var}, [{index}]) ?? null)")
}

/// Collects VRL lines with indentation.
#[derive(Debug, Default)]
pub struct Code {
    out: String,
    indent: usize,
}

impl Code {
    /// An empty program.
    pub fn new() -> Code {
        Code::default()
    }

    /// One line at the current indentation.
    pub fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// A line that opens a block (ends in `{`); what follows is indented.
    pub fn open(&mut self, text: &str) {
        self.line(text);
        self.indent += 1;
    }

    /// Closes the innermost block with `}` (or with `close`, e.g. `} else {`).
    pub fn close_with(&mut self, text: &str) {
        self.indent = self.indent.saturating_sub(1);
        self.line(text);
    }

    /// Closes the innermost block.
    pub fn close(&mut self) {
        self.close_with("}");
    }

    /// `} else {`: closes a block and opens the next at the same depth.
    pub fn reopen(&mut self, text: &str) {
        self.indent = self.indent.saturating_sub(1);
        self.line(text);
        self.indent += 1;
    }

    /// A comment line (`# …`), one per line of `text`.
    pub fn comment(&mut self, text: &str) {
        for l in text.lines() {
            if l.is_empty() {
                self.line("#");
            } else {
                self.line(&format!("# {l}"));
            }
        }
    }

    /// An empty line, for reading.
    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    /// The source written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_everything_vrl_could_misread() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("{{ .x }}"), r#""\{\{ .x \}\}""#);
        assert_eq!(string("t\tn\nr\r"), r#""t\tn\nr\r""#);
        assert_eq!(string("é😀\u{0}"), r#""\u{e9}\u{1f600}\u{0}""#);
        assert_eq!(string_array(["a.b", "c"]), r#"["a.b", "c"]"#);
    }

    #[test]
    fn json_values_are_written_exactly() {
        let v =
            vmext_json::parse(br#"{"a":[1,-2,1.50,1e3,"x\"{"],"b":{"c":true,"d":null}}"#).unwrap();
        assert_eq!(
            json_literal(&v),
            r#"{"a": [1, -2, parse_json!("1.50"), parse_json!("1e3"), "x\"\{"], "b": {"c": true, "d": null}}"#
        );
    }

    #[test]
    fn blocks_indent() {
        let mut code = Code::new();
        code.open("if true {");
        code.line("x = 1");
        code.reopen("} else {");
        code.comment("why\n\nbecause");
        code.close();
        assert_eq!(
            code.finish(),
            "if true {\n  x = 1\n} else {\n  # why\n  #\n  # because\n}\n"
        );
    }
}
