//! The literal prefilter against the full evaluator: a prefilter rejection implies no match,
//! for the seed rule and for arbitrary queries (first line: the query; the rest: a document);
//! on valid text, told what validation found of its escapes, it answers as it does alone; and
//! rebuilt from its terms (as a component's host runs it), it answers as the detector's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmext_engine::{Detector, Outcome, Verdict};

fn check(detector: &Detector, document: &[u8]) {
    // Told what validation found of the escapes, the prefilter answers as it does alone.
    if let Ok(escapes) = vmext_json::validate_escapes(document) {
        assert_eq!(
            matches!(
                detector.evaluate_validated(document, escapes),
                Ok(Outcome::Rejected)
            ),
            !detector.may_match(document),
            "the prefilter answered differently on validated text"
        );
    }
    // Rebuilt from its terms, as a component's host rebuilds it, it answers as it does here.
    let rebuilt = vmext_engine::Requirement::from_terms(&detector.prefilter().terms());
    assert_eq!(
        rebuilt.map(|r| r.admits(document)),
        Ok(detector.may_match(document)),
        "the prefilter rebuilt from its terms answered differently"
    );
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
