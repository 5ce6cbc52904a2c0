//! Every shipped fixture gives its expected verdicts, with and without the prefilter, and the
//! README's edge-case table is generated from the same manifest.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use vmext_engine::{Detector, Outcome, Verdict};

#[derive(Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    edge: String,
    expect: Vec<String>,
    family: Option<String>,
}

fn fixtures_dir() -> PathBuf {
    vmext_test_support::repo_root().join("fixtures")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixtures_dir().join("cases.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Alert(_) => "alert",
        Verdict::NoMatch => "none",
        Verdict::Invalid(_) => "invalid",
    }
}

#[test]
fn every_fixture_gives_its_expected_verdicts() {
    let detector = Detector::seed();
    let mut alerts = 0;
    for case in manifest().case {
        let text = std::fs::read(fixtures_dir().join(&case.file)).unwrap();
        let explained = detector
            .explain(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let got: Vec<&str> = explained.iter().map(|e| verdict_name(&e.verdict)).collect();
        assert_eq!(got, case.expect, "{}: {}", case.file, case.edge);
        for evaluation in &explained {
            let explanation = evaluation.explanation.as_ref().unwrap();
            assert_eq!(
                explanation.held,
                matches!(evaluation.verdict, Verdict::Alert(_)),
                "{}: the explanation's verdict agrees",
                case.file
            );
            if let Verdict::Alert(alert) = &evaluation.verdict {
                alerts += 1;
                assert_eq!(alert.extension_family, case.family, "{}", case.file);
                vmext_json::parse(alert.json.as_bytes()).unwrap();
            }
        }
        // The prefilter never changes a verdict.
        match detector.evaluate(&text).unwrap() {
            Outcome::Rejected => assert!(
                case.expect.iter().all(|e| e == "none"),
                "{}: prefilter rejected a record expected to alert",
                case.file
            ),
            Outcome::Evaluated(results) => {
                let fast: Vec<&str> = results.iter().map(|e| verdict_name(&e.verdict)).collect();
                assert_eq!(fast, case.expect, "{} (with prefilter)", case.file);
                assert_eq!(
                    results.iter().map(|r| &r.verdict).collect::<Vec<_>>(),
                    explained.iter().map(|r| &r.verdict).collect::<Vec<_>>(),
                    "{}: same alerts with and without explanations",
                    case.file
                );
            }
        }
    }
    assert!(alerts >= 20, "the fixtures exercise alerts ({alerts})");
}

#[test]
fn manifest_and_fixture_files_correspond() {
    let listed: BTreeSet<String> = manifest().case.into_iter().map(|c| c.file).collect();
    let mut on_disk = BTreeSet::new();
    for shape in ["ecs", "raw"] {
        for entry in std::fs::read_dir(fixtures_dir().join(shape)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            on_disk.insert(format!("{shape}/{name}"));
        }
    }
    assert_eq!(listed, on_disk);
}

/// The README's edge-case table, generated from `fixtures/cases.toml`.
fn edge_case_table() -> String {
    let mut out = String::from("| Edge case | Fixture | Verdict |\n|---|---|---|\n");
    for case in manifest().case {
        let verdict = if case.expect.len() == 1 {
            match (case.expect[0].as_str(), &case.family) {
                ("alert", Some(f)) => format!("alert ({f})"),
                (v, _) => v.to_owned(),
            }
        } else {
            case.expect.join(", ")
        };
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            case.edge.replace('|', "\\|"),
            case.file,
            verdict
        ));
    }
    out
}

const BEGIN: &str = "<!-- edge-cases:begin (generated from fixtures/cases.toml) -->\n";
const END: &str = "<!-- edge-cases:end -->";

/// Run with `VMEXT_BLESS=1` to rewrite the table after changing the fixtures.
#[test]
fn readme_edge_case_table_is_current() {
    let path = vmext_test_support::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README has the edge-case markers")
        + BEGIN.len();
    let end = readme.find(END).unwrap();
    let table = edge_case_table();
    if readme[start..end] != table {
        if std::env::var("VMEXT_BLESS").is_ok_and(|v| v == "1") {
            let updated = format!("{}{}{}", &readme[..start], table, &readme[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "README edge-case table is stale: run `VMEXT_BLESS=1 cargo test -p vmext-engine --test fixtures`"
            );
        }
    }
}
