//! The detection rule as a VRL program for Vector's `remap` transform, translated from the
//! engine's parsed query rather than from text, with the engine's semantics.
//!
//! No Vector release can load a WebAssembly filter, so Vector users get the rule in VRL:
//!
//! * [`Translator`] turns a `vmext_kql::ast::Node` into VRL statements: exact values,
//!   anchored wildcards as prefix/suffix/contains steps, value lists, `and`/`or`/`not`,
//!   existence, ranges, nested queries, arrays (any element), missing fields, dotted keys
//!   mixed with nested objects. What VRL cannot decide exactly is a [`TranslateError`].
//! * [`program`] wraps the query into a whole program: Event Hub envelopes, the record's shape,
//!   the raw-Azure → ECS view for the fields the rule and its alert read, and the alert the
//!   Fluent Bit annotate mode adds (`vmext_alerts`).
//! * The program's fast path settles the events that cannot match before anything copies
//!   them: first the query's top-level clauses read in place on an ECS event whose fields lie
//!   on their plain paths, then the engine's literal prefilter on `encode_json(.)` (the
//!   `prefilter` module says why that is sound). Within the general walk, each field is read
//!   on its plain path when no dotted key or array is on the way, and walked only otherwise.
//! * [`artefacts`] writes the files Vector users copy: the `.vrl` program and a `vector.yaml`
//!   with unit tests built from the fixtures.
//!
//! The program is exact with respect to the event Vector holds: a Vector event is JSON decoded
//! into a value whose object keys are sorted, whose numbers are numbers (their spelling is
//! gone) and which cannot repeat a key. On such an event the program's verdict and alert equal
//! the engine's on the same event written back as JSON, which the `vrl-parity` crate checks in
//! the VRL runtime. One difference is deliberate: a document holding `records` (an array) beside
//! only the keys Vector's sources add in the legacy log namespace ([`SOURCE_METADATA_KEYS`]) is
//! an envelope to the program, as the same document without those keys is to the engine.

#![forbid(unsafe_code)]

pub mod artefacts;
pub mod code;
mod error;
mod prefilter;
mod program;
mod query;
mod raw;
mod timestamp;

pub use error::TranslateError;
pub use program::{ANNOTATION_KEY, SOURCE_METADATA_KEYS, program, seed_program};
pub use query::Translator;

/// Statements that normalise an Azure `time` string as the engine does, for tests that compare
/// the VRL with `vmext_engine::timestamp::normalise` directly: sets `out` from the string
/// expression `text` (to `null` when the engine would give nothing).
pub fn timestamp_program(text: &str, out: &str) -> String {
    let mut code = code::Code::new();
    timestamp::normalise(&mut code, text, out);
    code.finish()
}
