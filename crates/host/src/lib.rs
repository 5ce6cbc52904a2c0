//! Running the rule over inputs, for the `vmext-detect` command and the test harness.
//!
//! * [`input`] frames any input (NDJSON, JSON Lines, pretty-printed JSON, gzip) into JSON
//!   documents by content, with a size cap and every byte accounted for;
//! * [`evaluator`] is the interface every engine implements, with the native engine;
//! * [`component`] runs the rule as the WebAssembly component under wasmtime, with a memory
//!   cap and a deadline per document, compiled once through [`compile_cache`];
//! * [`scan`] drives an evaluator over inputs and reports alerts, explanations and a summary;
//! * [`program`] is how every command-line program of the project parses its arguments and
//!   ends (help, usage errors, status, errors on stderr).

pub mod compile_cache;
pub mod component;
pub mod evaluator;
pub mod input;
pub mod program;
pub mod scan;
