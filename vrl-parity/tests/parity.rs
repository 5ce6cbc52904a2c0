//! The generated VRL program against the engine, in the VRL runtime.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::{Path, PathBuf};

use vmext_vrl_parity::generate::{CorpusShape, CorpusSpec, generate};
use vmext_vrl_parity::{Parity, Vrl, to_json, vector_event};

/// The seed program, compiled once for all tests (compiling it takes a while).
fn parity() -> &'static Parity {
    static PARITY: std::sync::OnceLock<Parity> = std::sync::OnceLock::new();
    PARITY.get_or_init(|| Parity::seed().unwrap())
}
use vrl::value::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for shape in ["ecs", "raw"] {
        for entry in std::fs::read_dir(root().join("fixtures").join(shape)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    files
}

#[test]
fn every_fixture_gives_the_engines_verdicts_and_alerts() {
    let parity = parity();
    let mut alerts = 0;
    let files = fixtures();
    for path in &files {
        let text = std::fs::read(path).unwrap();
        let checked = parity
            .check(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Every fixture means the same after Vector's decoding.
        assert!(!checked.decoding_matters, "{}", path.display());
        alerts += checked.alerts;
    }
    // cases.toml lists one verdict per record; every "alert" must have been raised.
    let cases = std::fs::read_to_string(root().join("fixtures/cases.toml")).unwrap();
    let expected: usize = cases
        .lines()
        .filter(|l| l.starts_with("expect ="))
        .map(|l| l.matches("\"alert\"").count())
        .sum();
    assert_eq!(alerts, expected);
    assert!(files.len() >= 59, "{} fixtures", files.len());
    eprintln!("parity: {} fixtures, {alerts} alerts", files.len());
}

#[test]
fn generated_records_of_both_shapes_give_the_engines_verdicts_and_alerts() {
    let parity = parity();
    for (shape, seed) in [(CorpusShape::Ecs, 11), (CorpusShape::Raw, 12)] {
        let spec = CorpusSpec {
            records: 3000,
            shape,
            true_positive_rate: 0.2,
            near_miss_rate: 0.4,
            seed,
        };
        let mut corpus = Vec::new();
        generate(&spec, &mut corpus).unwrap();
        let (mut records, mut alerts) = (0, 0);
        for line in corpus.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let checked = parity.check(line).unwrap_or_else(|e| {
                panic!(
                    "{shape:?} record {records}: {e}\n{}",
                    String::from_utf8_lossy(line)
                )
            });
            assert!(!checked.decoding_matters);
            records += 1;
            alerts += checked.alerts;
        }
        assert_eq!(records, 3000);
        assert!(alerts > 400, "{shape:?}: {alerts} alerts");
        eprintln!("parity: {records} generated {shape:?} records, {alerts} alerts");
    }
}

#[test]
fn the_vector_unit_tests_pass_in_the_vrl_runtime() {
    let program = &parity().program;
    let tests = vmext_vrl::artefacts::unit_tests(&root()).unwrap();
    assert!(!tests.is_empty());
    for test in &tests {
        let input = Vrl::compile(&test.input).unwrap();
        let event = input.run(Value::Object(Default::default())).unwrap();
        let output = program.run(event).unwrap();
        let conditions =
            Vrl::compile(&test.conditions).unwrap_or_else(|e| panic!("{}: {e}", test.name));
        conditions
            .run(output.clone())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", test.name, to_json(&output)));
    }
    // The assertions can fail: a test's conditions reject another fixture's output.
    let yes = tests
        .iter()
        .find(|t| t.conditions.contains("length("))
        .unwrap();
    let no = tests
        .iter()
        .find(|t| t.conditions.contains("!exists("))
        .unwrap();
    let input = Vrl::compile(&no.input).unwrap();
    let event = program
        .run(input.run(Value::Object(Default::default())).unwrap())
        .unwrap();
    assert!(Vrl::compile(&yes.conditions).unwrap().run(event).is_err());
}

#[test]
fn the_program_changes_nothing_but_the_alert_key() {
    let parity = parity();
    let text = br#"{"operationName":"X","vmext_alerts":"kept","records":[1]}"#;
    let event = vector_event(text).unwrap();
    assert_eq!(parity.program.run(event.clone()).unwrap(), event);
}

/// The alerts the program adds to an event (parsed as JSON values), and the event without them.
fn run_alerts(event: Value) -> (Vec<serde_json::Value>, Value) {
    let Value::Object(mut members) = parity().program.run(event).unwrap() else {
        panic!("the program's output is not an object");
    };
    let alerts = match members.remove(vmext_vrl::ANNOTATION_KEY) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| serde_json::from_str(&to_json(a)).unwrap())
            .collect(),
        Some(other) => panic!("`vmext_alerts` is {}", to_json(&other)),
    };
    (alerts, Value::Object(members))
}

/// The event a legacy-namespace `file` source and a `remap` merging the parsed line into it
/// make of a document: the source's keys, then the document's members over them.
fn with_source_keys(text: &[u8]) -> Value {
    let Some(Value::Object(document)) = vector_event(text) else {
        panic!("not a JSON object");
    };
    let line = String::from_utf8_lossy(text).trim().to_owned();
    let mut event: std::collections::BTreeMap<_, _> = [
        ("file", "/logs/activity.ndjson"),
        ("host", "collector-1"),
        ("message", line.as_str()),
        ("source_type", "file"),
        ("timestamp", "2026-05-21T14:10:51.000000Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), Value::from(v)))
    .collect();
    assert_eq!(event.len(), vmext_vrl::SOURCE_METADATA_KEYS.len());
    event.extend(document);
    Value::Object(event)
}

#[test]
fn the_keys_vector_sources_add_change_no_verdict_and_no_alert() {
    let parity = parity();
    let mut envelopes = 0;
    for path in fixtures() {
        let text = std::fs::read(&path).unwrap();
        let decoded = to_json(&vector_event(&text).unwrap());
        let expected =
            vmext_vrl_parity::engine_alerts(&parity.detector, decoded.as_bytes()).unwrap();
        let event = with_source_keys(&text);
        let (alerts, rest) = run_alerts(event.clone());
        assert_eq!(alerts, expected, "{}", path.display());
        assert_eq!(rest, event, "{}", path.display());
        envelopes += usize::from(decoded.starts_with("{\"records\":"));
    }
    assert_eq!(envelopes, 2, "the envelope fixtures are among them");
}

#[test]
fn only_the_source_keys_may_stand_beside_records() {
    let record =
        std::fs::read_to_string(root().join("fixtures/raw/event-hub-envelope-mixed.json")).unwrap();
    let records = record
        .trim()
        .strip_prefix("{\"records\":")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap();
    // Any other key beside `records` makes the document a record, for both sides.
    let other = format!("{{\"records\":{records},\"tenant\":\"x\"}}");
    let checked = parity().check(other.as_bytes()).unwrap();
    assert_eq!(checked.alerts, 0);
    // A source key does not: the program splits it, where the engine, which never sees such
    // keys, reads one record (the documented difference).
    let host = format!("{{\"host\":\"collector-1\",\"records\":{records}}}");
    let (alerts, _) = run_alerts(vector_event(host.as_bytes()).unwrap());
    assert_eq!(alerts.len(), 2);
    assert!(parity().check(host.as_bytes()).is_err());
}

/// Every nested object turned into dotted keys at the top level.
fn flattened(value: &serde_json::Value) -> serde_json::Value {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut serde_json::Map<String, serde_json::Value>,
    ) {
        match value {
            serde_json::Value::Object(members) if !members.is_empty() => {
                for (k, v) in members {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = serde_json::Map::new();
    walk("", value, &mut out);
    serde_json::Value::Object(out)
}

/// Every string leaf as a one-element array.
fn leaves_in_arrays(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), leaves_in_arrays(v)))
                .collect(),
        ),
        serde_json::Value::String(_) => serde_json::Value::Array(vec![value.clone()]),
        other => other.clone(),
    }
}

/// The program's fast path (the clauses read on plain paths, the literal prefilter on the
/// event's text) must let through every spelling of a match the engine accepts: each alerting
/// ECS fixture with its fields as dotted keys, under a dotted `azure.activitylogs` key, with
/// its string values in arrays, and with `azure` inside an array, still alerts, as the engine.
#[test]
fn the_fast_path_lets_every_spelling_of_a_match_through() {
    let parity = parity();
    let mut variants = 0;
    for path in fixtures()
        .iter()
        .filter(|p| p.to_string_lossy().contains("/ecs/"))
    {
        let text = std::fs::read(path).unwrap();
        if parity.check(&text).map(|c| c.alerts).unwrap_or(0) == 0 {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(azure) = doc.get("azure").cloned() else {
            continue;
        };
        let mut partly = doc.clone();
        if let Some(activity) = azure.get("activitylogs") {
            let mut inner = azure.clone();
            inner.as_object_mut().unwrap().remove("activitylogs");
            partly["azure"] = inner;
            partly["azure.activitylogs"] = activity.clone();
        }
        let mut in_array = doc.clone();
        in_array["azure"] = serde_json::Value::Array(vec![azure]);
        for (kind, variant) in [
            ("dotted keys", flattened(&doc)),
            ("a dotted azure.activitylogs", partly),
            ("values in arrays", leaves_in_arrays(&doc)),
            ("azure in an array", in_array),
        ] {
            let text = serde_json::to_vec(&variant).unwrap();
            let checked = parity
                .check(&text)
                .unwrap_or_else(|e| panic!("{} with {kind}: {e}", path.display()));
            assert!(
                checked.alerts > 0,
                "{} with {kind}: no alert",
                path.display()
            );
            variants += 1;
        }
    }
    assert!(variants >= 40, "{variants} variants");
}
