//! The raw-record view agrees with Elastic's own ingest pipeline.
//!
//! Elastic's azure integration ships pipeline tests: raw Activity Log records and the ECS
//! documents its pipeline produces from them. For every such pair, the engine's view of the raw
//! record must give the same values as Elastic's output on every field the seed rule and its
//! investigation fields use. The data is read from `../shared` (never copied into this repo).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use vmext_engine::azure::{Shape, ecs_view, shape_of};
use vmext_engine::{Detector, Outcome, Rule};
use vmext_json::Value;
use vmext_kql::ast::Node;
use vmext_kql::eval::{leaf_text, leaves_at};

const DIR: &str = "data/azure-reference/elastic-integrations";

/// Fields a filter cannot produce: GeoIP lookups need a database Elastic's pipeline has and a
/// pipeline filter does not. `data_stream.dataset` is set by the data stream, not the pipeline.
const NOT_PRODUCED: [&str; 3] = [
    "source.geo.country_name",
    "source.as.organization.name",
    "data_stream.dataset",
];

/// The seed rule's query fields and investigation fields.
fn rule_fields() -> BTreeSet<String> {
    let rule = Rule::seed();
    let mut fields: BTreeSet<String> = rule.investigation_fields.iter().cloned().collect();
    let mut stack = vec![rule.query.root().clone()];
    while let Some(node) = stack.pop() {
        match node {
            Node::And(items) | Node::Or(items) => stack.extend(items),
            Node::Not(inner) => stack.push(*inner),
            Node::Match(m) => {
                fields.insert(m.field.name.clone());
            }
            _ => {}
        }
    }
    for f in NOT_PRODUCED {
        fields.remove(f);
    }
    fields
}

fn texts(doc: &Value<'_>, field: &str) -> Vec<String> {
    leaves_at(doc, field)
        .into_iter()
        .filter_map(|v| leaf_text(v).map(|t| t.into_owned()))
        .collect()
}

fn read(relative: &str) -> Option<String> {
    vmext_test_support::shared_path(&format!("{DIR}/{relative}"))
        .map(|p| std::fs::read_to_string(p).unwrap())
}

/// Compares our view of `raw` with Elastic's `expected` document on `fields`; returns how many
/// fields had a value on either side.
fn compare(raw: &str, expected: &Value<'_>, fields: &BTreeSet<String>, label: &str) -> usize {
    let record = vmext_json::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        shape_of(&record),
        Shape::AzureRaw,
        "{label}: recognised as raw"
    );
    let view = ecs_view(&record);
    let mut compared = 0;
    for field in fields {
        let ours = texts(&view, field);
        let theirs = texts(expected, field);
        assert_eq!(ours, theirs, "{label}: field {field}");
        if !theirs.is_empty() {
            compared += 1;
        }
    }
    compared
}

#[test]
fn raw_view_matches_elastic_pipeline_output() {
    let Some(raw) = read("c81e9fe78b8c969e7b96b4a6486e10b6a9fc3d94/test-activitylogs-raw.log")
    else {
        return;
    };
    let expected_text =
        read("136ebec10fe34f4161b2ea919f5b4f8de2e487fe/test-activitylogs-raw.log-expected.json")
            .unwrap();
    let expected = vmext_json::parse(expected_text.as_bytes()).unwrap();
    let docs = expected.get("expected").unwrap().as_array().unwrap();
    let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), docs.len());
    let fields = rule_fields();
    let mut compared = 0;
    for (line, doc) in lines.iter().zip(docs) {
        compared += compare(line, doc, &fields, "test-activitylogs-raw");
    }
    // operation_name, principal_id, principal_type, resource.id, source.ip, subscription_id,
    // @timestamp at least: the comparison is not vacuous.
    assert!(compared >= 7, "compared {compared} fields");
}

#[test]
fn timestamps_match_elastic_for_every_accepted_format() {
    let Some(raw) =
        read("811c7f0405acdfb7833d6126c799568fd5637678/test-time-formats-corner-cases.log")
    else {
        return;
    };
    let expected_text = read(
        "6b515b51e53e11ab582e2b8669ddbf6c05f2b220/test-time-formats-corner-cases.log-expected.json",
    )
    .unwrap();
    let expected = vmext_json::parse(expected_text.as_bytes()).unwrap();
    let docs = expected.get("expected").unwrap().as_array().unwrap();
    let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), docs.len());
    let fields: BTreeSet<String> = ["@timestamp".to_owned()].into();
    for (i, (line, doc)) in lines.iter().zip(docs).enumerate() {
        assert_eq!(
            compare(line, doc, &fields, &format!("time format line {}", i + 1)),
            1
        );
    }
}

/// This expected file comes from a newer pipeline generation (it writes `cloud.resource_id`
/// instead of `azure.resource.id`) and its inputs are its own `event.original` values, so
/// only the fields it does write are compared.
#[test]
fn raw_view_matches_newer_pipeline_where_fields_exist() {
    let Some(expected_text) = read(
        "bdc388283459fc0a703849ea965e1d61f22a18d6/test-activitylogs-mixedcase-resourceid.log-expected.json",
    ) else {
        return;
    };
    let expected = vmext_json::parse(expected_text.as_bytes()).unwrap();
    let docs = expected.get("expected").unwrap().as_array().unwrap();
    let mut compared = 0;
    for (i, doc) in docs.iter().enumerate() {
        let original = texts(doc, "event.original");
        let Some(raw) = original.first() else {
            continue;
        };
        let present: BTreeSet<String> = rule_fields()
            .into_iter()
            .filter(|f| !texts(doc, f).is_empty())
            .collect();
        compared += compare(raw, doc, &present, &format!("mixed-case doc {}", i + 1));
    }
    assert!(compared >= 4, "compared {compared} fields");
}

/// Elastic's sample activity-log document is an ECS document with a user principal writing a
/// deployment (not a VM extension): the rule must not fire, and the document must be read as
/// ECS.
#[test]
fn elastic_sample_event_is_ecs_and_does_not_alert() {
    let Some(text) = read("37c97e14a21b18ede9e543cea66a6957d0db7dc4/sample_event.json") else {
        return;
    };
    let doc = vmext_json::parse(text.as_bytes()).unwrap();
    assert_eq!(shape_of(&doc), Shape::Ecs);
    let detector = Detector::seed();
    let outcome = detector.explain(text.as_bytes()).unwrap();
    let explanation = outcome[0].explanation.as_ref().unwrap();
    assert!(!explanation.held);
    // It fails on the operation only: the other clauses hold on Elastic's own document.
    let failing: Vec<&str> = explanation
        .children
        .iter()
        .filter(|c| !c.held)
        .map(|c| c.field.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        failing,
        vec!["azure.activitylogs.operation_name", "azure.resource.id"]
    );
    assert!(matches!(
        detector.evaluate(text.as_bytes()).unwrap(),
        Outcome::Rejected | Outcome::Evaluated(_)
    ));
}
