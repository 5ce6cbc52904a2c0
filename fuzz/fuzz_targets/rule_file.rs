//! The rule-file reader on arbitrary text: it never panics; a rule it accepts has a query
//! within the size bound, builds a detector in both profiles' entry point, and that detector
//! evaluates a document without panicking, its prefilter never rejecting an alert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmext_engine::{Detector, ProfileName, Rule, RuleSource, Verdict};

/// An activity-log record the seed rule alerts on (a mutated rule may or may not).
const RECORD: &[u8] = br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"outcome":"success"},"data_stream":{"dataset":"azure.activitylogs"},"azure":{"activitylogs":{"operation_name":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","identity":{"authorization":{"evidence":{"principal_type":"User"}}}},"resource":{"id":"/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM/EXTENSIONS/CUSTOMSCRIPTEXTENSION"}}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = Rule::from_toml(text) else {
        return;
    };
    assert!(rule.query.source().len() <= vmext_engine::MAX_QUERY_BYTES);
    let detector = Detector::new(rule);
    if let Ok(list) = detector.explain(RECORD)
        && list.iter().any(|e| matches!(e.verdict, Verdict::Alert(_)))
    {
        assert!(detector.may_match(RECORD), "the prefilter rejected a match");
    }
    // The entry point every artefact uses: the hardened profile only takes the seed rule's own
    // file, and must refuse any other with an error, never a panic.
    let _ = Detector::build(RuleSource::Toml(text), ProfileName::Hardened, None);
});
