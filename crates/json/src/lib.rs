//! A small, strict JSON reader built for evaluating detection rules on log records.
//!
//! Log pipelines hand a filter untrusted bytes, and a filter that panics, overflows its stack or
//! loses precision loses data. This crate therefore differs from a general-purpose JSON library
//! in a few deliberate ways:
//!
//! * **No recursion.** Parsing, dropping and walking a [`Value`] use explicit heap stacks, so a
//!   document nested to the [`Limits::max_depth`] costs heap, never call stack. This matters inside
//!   WebAssembly hosts whose stacks are a few kilobytes (Fluent Bit's default is 8 KiB).
//! * **Borrowed text.** Strings without escapes and every number borrow from the input; a
//!   number keeps its exact source text, because Elasticsearch indexes a number sent to a
//!   `keyword` field as that text.
//! * **Duplicate keys are kept** in document order; callers decide what they mean, and
//!   [`Value::repeated_key`] is the one way they find them (records, exception lists).
//! * **Errors are values** with a byte offset ([`Error`]), never panics.
//!
//! ```
//! let doc = vmext_json::parse(br#"{"a":{"b":[1,"x\/y"]}}"#).unwrap();
//! let b = doc.get("a").and_then(|a| a.get("b")).unwrap();
//! assert_eq!(b.as_array().unwrap()[1].as_str(), Some("x/y"));
//! ```

#![forbid(unsafe_code)]

mod lex;
mod parse;
mod validate;
mod value;
mod visible;
mod write;

pub use lex::{EscapeError, decode_escape, find_backslash};
pub use parse::{Error, ErrorKind, Limits, parse, parse_with};
pub use validate::{Escapes, validate, validate_escapes};
pub use value::{Number, RepeatedKey, Value};
pub use visible::visible;
pub use write::{write_escaped_str, write_value};
