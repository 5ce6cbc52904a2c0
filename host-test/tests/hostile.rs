//! Hostile input through every artefact: the native engine, the component, the Fluent Bit
//! module (and, from `playground/tests`, the wasm-bindgen build, which reads the cases this test
//! writes to `target/hostile/`). Each input gives a clear error or a verdict, identically across
//! artefacts, and never a panic, a trap or a reply that would lose data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use host_test::fluent_bit::{FluentBitModule, Mode, Reply};
use vmext_engine::Detector;
use vmext_host::component::{ComponentEvaluator, ComponentRuntime, Limits, RuleSource};
use vmext_host::evaluator::{DocumentResult, Evaluator, NativeEvaluator};
use vmext_test_support::{Artefact, build_artefact, hostile_cases as cases, repo_root};

fn component() -> ComponentEvaluator {
    let runtime = ComponentRuntime::load(&build_artefact(Artefact::Component)).unwrap();
    ComponentEvaluator::new(Arc::new(runtime), RuleSource::Seed, Limits::default()).unwrap()
}

#[test]
fn hostile_input_through_every_artefact() {
    let mut native = NativeEvaluator::new(Detector::seed());
    let mut component = component();
    let mut fluent_bit = FluentBitModule::load(&build_artefact(Artefact::FluentBit), false)
        .unwrap()
        .instantiate()
        .unwrap();
    let dir = repo_root().join("target/hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = String::from("[");
    for (i, (name, bytes)) in cases().iter().enumerate() {
        for explain in [false, true] {
            let a = native.evaluate(bytes, explain);
            let b = component.evaluate(bytes, explain);
            assert_eq!(
                a, b,
                "{name} (explain {explain}): native and component differ"
            );
            if let DocumentResult::Failed(message) = &a {
                assert!(!message.is_empty(), "{name}: a failure says why");
                assert!(!message.contains("the guest failed"), "{name}: {message}");
            }
        }
        for mode in [Mode::Annotate, Mode::Alerts] {
            let reply = fluent_bit.call(mode, "hostile", bytes).unwrap();
            assert!(
                !matches!(reply, Reply::Corrupt(_)),
                "{name} {mode:?}: {reply:?}"
            );
            if mode == Mode::Annotate {
                assert!(
                    matches!(reply, Reply::Record(_)),
                    "{name}: annotate lost the record"
                );
            }
        }
        // For the browser build's test: the document and the native canonical answer.
        let file = format!("case-{i}.bin");
        std::fs::write(dir.join(&file), bytes).unwrap();
        let expected = match native.evaluate(bytes, true) {
            DocumentResult::Records(records) => {
                let jsons: Vec<String> = records.iter().map(|r| r.json.clone()).collect();
                format!("{{\"records\":[{}]}}", jsons.join(","))
            }
            DocumentResult::Failed(message) => {
                let mut out = String::from("{\"failed\":");
                vmext_json::write_escaped_str(&mut out, &message);
                out.push('}');
                out
            }
            DocumentResult::Rejected => "{\"rejected\":true}".to_owned(),
        };
        if i > 0 {
            manifest.push(',');
        }
        let mut quoted = String::new();
        vmext_json::write_escaped_str(&mut quoted, name);
        manifest.push_str(&format!(
            "\n{{\"name\":{quoted},\"file\":\"{file}\",\"expected\":{expected}}}"
        ));
    }
    manifest.push_str("\n]\n");
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    assert_eq!(
        component.restarts(),
        0,
        "no hostile input made the component trap"
    );
}

/// Specific promises, each a line of the README's guarantees.
#[test]
fn hostile_input_gets_the_documented_answers() {
    let mut native = NativeEvaluator::new(Detector::seed());
    let all = cases();
    let answer = |native: &mut NativeEvaluator, name: &str| {
        let bytes = &all.iter().find(|(n, _)| n == name).unwrap().1;
        native.evaluate(bytes, true)
    };
    let failed = |r: DocumentResult| match r {
        DocumentResult::Failed(m) => m,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert!(
        failed(answer(&mut native, "truncated"))
            .starts_with("invalid JSON: unexpected end of input")
    );
    assert!(
        failed(answer(&mut native, "invalid UTF-8"))
            .starts_with("invalid JSON: invalid UTF-8 at byte")
    );
    assert!(
        failed(answer(&mut native, "nesting 100 000 deep"))
            .contains("nesting deeper than 512 levels")
    );
    assert!(failed(answer(&mut native, "duplicate keys")).starts_with("duplicate key `pad`"));
    assert!(failed(answer(&mut native, "an array, not an object")).contains("not a JSON object"));
    assert!(failed(answer(&mut native, "raw NUL byte in a string")).contains("control character"));
    let verdicts = |r: DocumentResult| match r {
        DocumentResult::Records(list) => list
            .iter()
            .map(|r| match (&r.alert_json, &r.error) {
                (Some(_), _) => "alert",
                (_, Some(_)) => "invalid",
                _ => "none",
            })
            .collect::<Vec<_>>(),
        other => panic!("expected records, got {other:?}"),
    };
    assert_eq!(
        verdicts(answer(&mut native, "10 MB record that alerts")),
        ["alert"]
    );
    assert_eq!(verdicts(answer(&mut native, "100 000 keys")), ["alert"]);
    assert_eq!(verdicts(answer(&mut native, "huge numbers")), ["alert"]);
    assert_eq!(verdicts(answer(&mut native, "escaped NUL")), ["alert"]);
    assert_eq!(
        verdicts(answer(&mut native, "envelope of non-objects")),
        ["invalid", "invalid", "invalid", "invalid", "alert"]
    );
    for field in [
        "operation_name",
        "principal_type",
        "outcome",
        "id",
        "dataset",
    ] {
        for kind in ["a number", "an object", "an array of arrays", "null"] {
            let v = verdicts(answer(&mut native, &format!("{field} as {kind}")));
            // The wrong type is never an error, and matches only where Elastic would match:
            // arrays of arrays are flattened (this one holds "User" and "success"), and a null
            // dataset is the stream's own (inferred from the azure.activitylogs fields).
            let expected = match (field, kind) {
                ("principal_type" | "outcome", "an array of arrays") => "alert",
                ("dataset", "null") => "alert",
                _ => "none",
            };
            assert_eq!(v, [expected], "{field} as {kind}");
        }
    }
}

/// A small stack is enough for anything: the guest does not recurse on input. Fluent Bit gives
/// modules a few kilobytes of stack by default; here wasmtime runs the module with 64 KiB.
#[test]
fn deep_input_needs_no_stack() {
    let module =
        FluentBitModule::load_with_stack(&build_artefact(Artefact::FluentBit), 64 << 10).unwrap();
    let mut fb = module.instantiate().unwrap();
    for (name, bytes) in cases() {
        let reply = fb.call(Mode::Annotate, "t", &bytes);
        assert!(matches!(reply, Ok(Reply::Record(_))), "{name}: {reply:?}");
    }
}
