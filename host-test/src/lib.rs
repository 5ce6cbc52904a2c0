//! The test harness: everything that drives the artefacts for tests and measurements, and
//! nothing that ships.
//!
//! * [`fluent_bit`] runs the Fluent Bit module under an emulation of Fluent Bit's calling
//!   convention, with [`wasi_files`] as its WASI file system;
//! * [`generate`] and [`efficacy`] make synthetic corpora: for speed, and for detection
//!   efficacy;
//! * [`serve`] is the playground's development server.
//!
//! The `host-test` binary exposes them as commands (`generate`, `efficacy`, `fluent-bit`,
//! `serve`).

pub mod efficacy;
pub mod fluent_bit;
pub mod generate;
pub mod serve;
pub mod wasi_files;
