//! The literal prefilter against the full evaluator: a prefilter rejection implies no match,
//! for the seed rule and for arbitrary queries (first line: the query; the rest: a document).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmext_engine::{Detector, Verdict};

fn check(detector: &Detector, document: &[u8]) {
    if let Ok(list) = detector.explain(document)
        && list.iter().any(|e| matches!(e.verdict, Verdict::Alert(_)))
    {
        assert!(detector.may_match(document), "the prefilter rejected a match");
    }
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static SEED: Detector = Detector::seed();
    }
    SEED.with(|d| check(d, data));
    if let Some((detector, document)) = vmext_fuzz::query_and_document(data) {
        check(&detector, document);
    }
});
