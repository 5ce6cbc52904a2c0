//! Every shipped fixture gives its expected verdicts in both profiles, with and without the
//! prefilter; the README's edge-case table and list of hardened changes are generated from the
//! same manifest and from the hardened profile's file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use vmext_artefacts::fixtures::{Case, Manifest};
use vmext_engine::{Coverage, Detector, Outcome, Profile, ProfileName, Verdict};

/// A case's verdicts and family in `profile`.
fn expected(case: &Case, profile: ProfileName) -> (&[String], Option<&str>) {
    match profile {
        ProfileName::Faithful => (&case.expect, case.family.as_deref()),
        ProfileName::Hardened => (case.hardened_expect(), case.hardened_family()),
    }
}

fn fixtures_dir() -> PathBuf {
    vmext_test_support::repo_root().join("fixtures")
}

fn manifest() -> Manifest {
    Manifest::read(&vmext_test_support::repo_root()).unwrap()
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Alert(_) => "alert",
        Verdict::NoMatch => "none",
        Verdict::Invalid(_) => "invalid",
        Verdict::Suppressed(_) => "suppressed",
    }
}

#[test]
fn every_fixture_gives_its_expected_verdicts() {
    check_profile(ProfileName::Faithful);
}

#[test]
fn every_fixture_gives_its_expected_verdicts_in_the_hardened_profile() {
    check_profile(ProfileName::Hardened);
}

fn check_profile(profile: ProfileName) {
    let detector = Detector::seed_in(profile);
    assert_eq!(detector.profile(), profile);
    let mut alerts = 0;
    for case in manifest().case {
        let (expect, family) = expected(&case, profile);
        let text = std::fs::read(fixtures_dir().join(&case.file)).unwrap();
        let explained = detector
            .explain(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let got: Vec<&str> = explained.iter().map(|e| verdict_name(&e.verdict)).collect();
        assert_eq!(got, expect, "{}: {}", case.file, case.edge);
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
                assert_eq!(alert.extension_family.as_deref(), family, "{}", case.file);
                // Compact JSON, as the writer writes a tree, and no key twice: the members
                // written from the template's text join the record's without a seam.
                let doc = vmext_json::parse(alert.json.as_bytes()).unwrap();
                assert_eq!(doc.repeated_key(), None, "{}", case.file);
                let mut again = String::new();
                vmext_json::write_value(&mut again, &doc);
                assert_eq!(again, alert.json, "{}", case.file);
            }
        }
        // The prefilter never changes a verdict.
        match detector.evaluate(&text).unwrap() {
            Outcome::Rejected => assert!(
                expect.iter().all(|e| e == "none"),
                "{}: prefilter rejected a record expected to alert",
                case.file
            ),
            Outcome::Evaluated(results) => {
                let fast: Vec<&str> = results.iter().map(|e| verdict_name(&e.verdict)).collect();
                assert_eq!(fast, expect, "{} (with prefilter)", case.file);
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

fn verdict_cell(expect: &[String], family: Option<&str>) -> String {
    match (expect, family) {
        ([one], Some(f)) if one == "alert" => format!("alert ({f})"),
        ([one], _) => one.clone(),
        (many, _) => many.join(", "),
    }
}

/// The README's edge-case table, generated from `fixtures/cases.toml`.
fn edge_case_table() -> String {
    let mut out =
        String::from("| Edge case | Fixture | Verdict | Hardened profile |\n|---|---|---|---|\n");
    for case in manifest().case {
        let (expect, family) = expected(&case, ProfileName::Faithful);
        let faithful = verdict_cell(expect, family);
        let (expect, family) = expected(&case, ProfileName::Hardened);
        let hardened = verdict_cell(expect, family);
        let hardened = if hardened == faithful {
            "same".to_owned()
        } else {
            format!("**{hardened}**")
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            case.edge.replace('|', "\\|"),
            case.file,
            faithful,
            hardened
        ));
    }
    out
}

/// The README's list of hardened changes, generated from the profile's TOML file.
fn hardened_changes_list() -> String {
    let profile = Profile::seed_hardened();
    let mut out = String::new();
    for (i, change) in profile.changes.iter().enumerate() {
        let files = |list: &[String]| {
            list.iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "{}. **{}.** {}\n   Caught (missed by the faithful profile): {}.\n   Still no alert: {}.\n",
            i + 1,
            change.title,
            change.why.split_whitespace().collect::<Vec<_>>().join(" "),
            files(&change.catches),
            files(&change.still_quiet),
        ));
    }
    out
}

/// Each change's fixtures do what the profile file claims: the faithful profile misses every
/// `catches` fixture and the hardened one alerts on it; `still_quiet` fixtures never alert.
#[test]
fn hardened_changes_are_proven_by_their_fixtures() {
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    let verdicts = |d: &Detector, file: &str| -> Vec<&'static str> {
        let text = std::fs::read(fixtures_dir().join(file)).unwrap();
        d.explain(&text)
            .unwrap()
            .iter()
            .map(|e| verdict_name(&e.verdict))
            .collect()
    };
    for change in Profile::seed_hardened().changes {
        assert!(!change.catches.is_empty() && !change.still_quiet.is_empty());
        for file in &change.catches {
            assert_eq!(
                verdicts(&faithful, file),
                ["none"],
                "{file}: {}",
                change.title
            );
            assert_eq!(
                verdicts(&hardened, file),
                ["alert"],
                "{file}: {}",
                change.title
            );
        }
        for file in &change.still_quiet {
            assert_eq!(
                verdicts(&hardened, file),
                ["none"],
                "{file}: {}",
                change.title
            );
        }
    }
}

/// Run with `VMEXT_BLESS=1` to rewrite the table after changing the fixtures.
#[test]
fn readme_edge_case_table_is_current() {
    vmext_test_support::check_readme_section(
        "<!-- edge-cases:begin (generated from fixtures/cases.toml) -->\n",
        "<!-- edge-cases:end -->",
        &edge_case_table(),
        "cargo test -p vmext-engine --test fixtures",
    );
}

/// Run with `VMEXT_BLESS=1` to rewrite the list after changing the hardened profile.
#[test]
fn readme_hardened_changes_are_current() {
    vmext_test_support::check_readme_section(
        "<!-- hardened-changes:begin (generated from rules/azure_vm_extension_deployment_by_user.hardened.toml) -->\n",
        "<!-- hardened-changes:end -->",
        &hardened_changes_list(),
        "cargo test -p vmext-engine --test fixtures",
    );
}

/// What a fixture's records say about the channel: their operation names and the extension
/// handlers (publisher, type) their request bodies name, upper-cased.
fn operations_and_handlers(text: &[u8]) -> (Vec<String>, Vec<(String, String)>) {
    let doc = vmext_json::parse(text).unwrap();
    let mut operations = Vec::new();
    let mut handlers = Vec::new();
    let mut bodies: Vec<String> = Vec::new();
    let mut stack = vec![&doc];
    while let Some(v) = stack.pop() {
        match v {
            vmext_json::Value::Array(items) => stack.extend(items),
            vmext_json::Value::Object(members) => {
                if let (Some(p), Some(t)) = (
                    v.get("publisher").and_then(|v| v.as_str()),
                    v.get("type").and_then(|v| v.as_str()),
                ) {
                    handlers.push((p.to_ascii_uppercase(), t.to_ascii_uppercase()));
                }
                for (key, value) in members {
                    match (key.as_ref(), value) {
                        ("operation_name" | "operationName", vmext_json::Value::String(s)) => {
                            operations.push(s.to_ascii_uppercase())
                        }
                        ("requestBody" | "requestbody", vmext_json::Value::String(s)) => {
                            bodies.push(s.to_string());
                            continue;
                        }
                        _ => {}
                    }
                    stack.push(value);
                }
            }
            _ => {}
        }
    }
    for body in bodies {
        handlers.extend(operations_and_handlers(body.as_bytes()).1);
    }
    (operations, handlers)
}

/// The coverage table and the fixtures agree: every row names its source, every handler has a
/// fixture whose request body names it and that the hardened profile alerts on and the faithful
/// one misses, and so has every operation.
#[test]
fn every_coverage_row_has_a_source_and_a_fixture() {
    let coverage = Coverage::seed();
    assert_eq!(
        coverage.rows_without_source(),
        Vec::<String>::new(),
        "rows without a source"
    );
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    let alerts = |d: &Detector, text: &[u8]| {
        d.explain(text)
            .unwrap()
            .iter()
            .any(|e| matches!(e.verdict, Verdict::Alert(_)))
    };
    let mut seen_handlers = BTreeSet::new();
    let mut seen_operations = BTreeSet::new();
    for case in manifest().case {
        let text = std::fs::read(fixtures_dir().join(&case.file)).unwrap();
        if !alerts(&hardened, &text) || alerts(&faithful, &text) {
            continue;
        }
        let (operations, handlers) = operations_and_handlers(&text);
        seen_operations.extend(operations);
        seen_handlers.extend(handlers);
    }
    for h in &coverage.handlers {
        let key = (
            h.publisher.to_ascii_uppercase(),
            h.kind.to_ascii_uppercase(),
        );
        assert!(
            seen_handlers.contains(&key),
            "handler {}/{} has no fixture that only the hardened profile alerts on",
            h.publisher,
            h.kind
        );
    }
    for o in &coverage.operations {
        assert!(
            seen_operations.contains(&o.name.to_ascii_uppercase()),
            "operation {} has no fixture that only the hardened profile alerts on",
            o.name
        );
    }
}

/// The README's coverage table is the coverage file's. Run with `VMEXT_BLESS=1` to rewrite it.
#[test]
fn readme_coverage_table_is_current() {
    vmext_test_support::check_readme_section(
        "<!-- coverage:begin (generated from rules/azure_vm_extension_deployment_by_user.coverage.toml) -->\n",
        "<!-- coverage:end -->",
        &Coverage::seed().markdown(),
        "cargo test -p vmext-engine --test fixtures",
    );
}
