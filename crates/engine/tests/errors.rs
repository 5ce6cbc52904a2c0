//! Library errors keep their cause: `source()` leads from a wrapping error to the one it wraps,
//! while the messages stay as they were.
#![allow(clippy::unwrap_used)]

use std::error::Error as _;

use vmext_engine::{BuildError, Detector, ProfileName, RecordError, RuleSource};

#[test]
fn wrapping_errors_keep_their_source() {
    let err = Detector::build(RuleSource::Query("a:("), ProfileName::Faithful, None).unwrap_err();
    assert!(matches!(err, BuildError::Rule(_)));
    assert!(err.to_string().starts_with("query syntax error: "), "{err}");
    // The rule error is transparent: its source, the KQL syntax error, is the build error's.
    let source = err.source().unwrap();
    assert!(source.is::<vmext_engine::SyntaxError>(), "{source:?}");
    assert!(err.to_string().ends_with(&source.to_string()));

    let err =
        Detector::build(RuleSource::Seed, ProfileName::Faithful, Some("not json")).unwrap_err();
    assert!(err.to_string().starts_with("exceptions: "), "{err}");
    assert!(err.source().unwrap().is::<vmext_engine::ExceptionsError>());

    let json = vmext_json::parse(b"[1,").unwrap_err();
    let err = RecordError::from(json.clone());
    assert_eq!(err.to_string(), format!("invalid JSON: {json}"));
    assert_eq!(
        err.source().unwrap().downcast_ref::<vmext_json::Error>(),
        Some(&json)
    );
}
