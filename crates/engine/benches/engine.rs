//! Criterion benchmarks of the engine: loading the rule, building one from a 100,000-term
//! query, evaluating one record of each shape
//! (matching, near miss, and rejected by the prefilter), the prefilter alone, explanations, and
//! the alert builder alone.
//!
//! `cargo bench -p vmext-engine --bench engine`. Records are shipped fixtures; the "rejected"
//! records are the same fixtures with another operation name, so they differ only where the
//! prefilter looks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vmext_engine::{Detector, Outcome, Rule, SEED_RULE_TOML};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_ascii()
        .to_vec()
}

/// The record with its operation replaced by an everyday one: nothing the rule needs remains.
fn elsewhere(record: &[u8]) -> Vec<u8> {
    String::from_utf8(record.to_vec())
        .unwrap()
        .replace(
            "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE",
            "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION",
        )
        .into_bytes()
}

fn rule(c: &mut Criterion) {
    c.bench_function("rule/load seed TOML and compile", |b| {
        b.iter(|| Detector::new(Rule::from_toml(black_box(SEED_RULE_TOML)).unwrap()))
    });
    // 100,000 values or-ed on a field both record shapes carry (0.99 MB, inside the 1 MiB
    // query-size bound): parse, derive the prefilter for both shapes (200,000 needles before
    // they are merged), build the detector.
    let values: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
    let query = format!("azure.resource.id:({})", values.join(" or "));
    assert!(query.len() <= vmext_engine::MAX_QUERY_BYTES);
    let mut group = c.benchmark_group("rule");
    group.sample_size(10);
    group.bench_function("build from a 100k-term query", |b| {
        b.iter(|| Detector::new(Rule::from_query(black_box(&query)).unwrap()))
    });
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let detector = Detector::seed();
    let ecs_alert = fixture("ecs/custom-script-extension.json");
    let raw_alert = fixture("raw/custom-script-extension-success.json");
    let cases = [
        ("ecs/alert", ecs_alert.clone()),
        (
            "ecs/near miss (parsed, no match)",
            fixture("ecs/outcome-failure.json"),
        ),
        ("ecs/rejected by the prefilter", elsewhere(&ecs_alert)),
        ("raw/alert", raw_alert.clone()),
        (
            "raw/near miss (parsed, no match)",
            fixture("raw/result-type-failure.json"),
        ),
        ("raw/rejected by the prefilter", elsewhere(&raw_alert)),
    ];
    let mut group = c.benchmark_group("evaluate");
    for (name, record) in &cases {
        // Check the case is what its name says.
        let outcome = detector.evaluate(record).unwrap();
        assert_eq!(
            matches!(outcome, Outcome::Rejected),
            name.ends_with("prefilter"),
            "{name}"
        );
        group.throughput(Throughput::Bytes(record.len() as u64));
        group.bench_function(*name, |b| b.iter(|| detector.evaluate(black_box(record))));
    }
    group.finish();

    let mut group = c.benchmark_group("prefilter alone");
    for (name, record) in &cases {
        group.throughput(Throughput::Bytes(record.len() as u64));
        group.bench_function(*name, |b| b.iter(|| detector.may_match(black_box(record))));
    }
    group.finish();

    let mut group = c.benchmark_group("explain");
    for (name, record) in cases.iter().filter(|(n, _)| n.ends_with("alert")) {
        group.throughput(Throughput::Bytes(record.len() as u64));
        group.bench_function(*name, |b| b.iter(|| detector.explain(black_box(record))));
    }
    group.finish();
}

/// Building one alert from a record's view, without parsing or evaluating: the part the
/// `evaluate: alert` case adds over a near miss.
fn alert_builder(c: &mut Criterion) {
    let rule = Rule::seed();
    let template = vmext_engine::alert::AlertTemplate::new(&rule);
    let text = fixture("ecs/custom-script-extension.json");
    let view = vmext_json::parse(&text).unwrap();
    c.bench_function("alert builder/ecs", |b| {
        b.iter(|| {
            template.alert(
                &rule,
                black_box(&view),
                vmext_engine::Shape::Ecs,
                None,
                Some("CUSTOMSCRIPTEXTENSION".to_owned()),
                None,
            )
        })
    });
}

criterion_group!(benches, rule, evaluate, alert_builder);
criterion_main!(benches);
