//! The host side of the project: the `vmext-detect` command and the harness that drives the
//! rule through each artefact.
//!
//! * [`input`] frames any input (NDJSON, JSON Lines, pretty-printed JSON, gzip) into JSON
//!   documents by content, with a size cap and every byte accounted for;
//! * [`evaluator`] is the interface every artefact implements, with the native engine;
//! * [`scan`] drives an evaluator over inputs and reports alerts, explanations and a summary;
//! * [`generate`] and [`efficacy`] make synthetic corpora: for speed, and for detection efficacy.

pub mod compile_cache;
pub mod component;
pub mod efficacy;
pub mod evaluator;
pub mod fluent_bit;
pub mod generate;
pub mod input;
pub mod scan;
pub mod serve;
pub mod wasi_files;
