//! The evaluator on arbitrary JSON-ish bytes, against the seed rule and against arbitrary
//! queries (the first line of the input is the query, the rest the document): it never panics,
//! and the fast path (prefilter, no explanations) gives the same verdicts as the explained one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmext_engine::{Detector, Outcome, Verdict};

fn verdicts(list: &[vmext_engine::Evaluation]) -> Vec<bool> {
    list.iter()
        .map(|e| matches!(e.verdict, Verdict::Alert(_)))
        .collect()
}

fn check(detector: &Detector, document: &[u8]) {
    let explained = detector.explain(document);
    match detector.evaluate(document) {
        Ok(Outcome::Rejected) => {
            if let Ok(list) = &explained {
                assert!(verdicts(list).iter().all(|a| !a), "rejected an alert");
            }
        }
        Ok(Outcome::Evaluated(list)) => {
            assert_eq!(Ok(verdicts(&list)), explained.as_deref().map(verdicts));
        }
        Err(e) => assert_eq!(Err(e), explained.map(|l| verdicts(&l))),
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
