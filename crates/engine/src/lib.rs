//! The detection engine: rules from Elastic's TOML, records in ECS or raw Azure shape, alerts.
//!
//! Everything here is plain Rust with no WebAssembly in it. The guest crate wraps it for each
//! ABI (component, Fluent Bit, wasm-bindgen); the host and the tests use it directly.
//!
//! ```
//! use vmext_engine::{Detector, Outcome, Verdict};
//!
//! let detector = Detector::seed();
//! let record = br#"{"category":"Administrative","operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","resultType":"Success","resourceId":"/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1/EXTENSIONS/CUSTOMSCRIPTEXTENSION","identity":{"authorization":{"evidence":{"principalType":"User"}}}}"#;
//! let Outcome::Evaluated(results) = detector.evaluate(record).unwrap() else { panic!() };
//! assert!(matches!(results[0].verdict, Verdict::Alert(_)));
//! // A record that cannot match is rejected from its text alone.
//! assert_eq!(detector.evaluate(br#"{"operationName":"X"}"#).unwrap(), Outcome::Rejected);
//! ```

#![forbid(unsafe_code)]

pub mod alert;
pub mod azure;
pub mod coverage;
mod detector;
pub mod documents;
pub mod exceptions;
pub mod profile;
pub mod rule;
pub mod timestamp;

pub use alert::Alert;
pub use azure::Shape;
pub use coverage::Coverage;
pub use detector::{
    BuildError, Detector, Evaluation, FAMILY_FIELD, Outcome, RecordError, RuleSource, Verdict,
    family_name,
};
pub use exceptions::{Exceptions, ExceptionsError, Suppression};
pub use profile::{Profile, ProfileError, ProfileName};
pub use rule::{Rule, RuleError, SEED_RULE_TOML};
pub use vmext_kql::{
    Explanation, MAX_QUERY_BYTES, MAX_TERM_DEPTH, Query, Requirement, SyntaxError, Term, TermsError,
};
