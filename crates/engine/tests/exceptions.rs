//! The shipped example exception list, applied to every fixture: exactly the expected alerts
//! are suppressed, by the expected items, in both profiles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use vmext_engine::{Detector, Exceptions, ProfileName, Verdict};

fn example() -> Exceptions {
    let path =
        vmext_test_support::repo_root().join("fixtures/exceptions/known-good-automation.json");
    Exceptions::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `(fixture, envelope index, item_id)` of every suppressed record, in file order.
fn suppressed(profile: ProfileName) -> Vec<(String, Option<usize>, String)> {
    let plain = Detector::seed_in(profile);
    let tuned = plain.clone().with_exceptions(example());
    let mut out = Vec::new();
    for path in vmext_test_support::fixture_files() {
        let text = std::fs::read(&path).unwrap();
        let before = plain.explain(&text).unwrap();
        let after = tuned.explain(&text).unwrap();
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            match (&b.verdict, &a.verdict) {
                (Verdict::Alert(_), Verdict::Suppressed(s)) => {
                    let name = path
                        .strip_prefix(vmext_test_support::repo_root().join("fixtures"))
                        .unwrap();
                    out.push((
                        name.display().to_string(),
                        a.envelope_index,
                        s.item_id.clone(),
                    ));
                    // The result object names the item.
                    assert!(
                        a.to_json()
                            .contains(&format!("\"exception\":{{\"item_id\":\"{}\"", s.item_id))
                    );
                }
                // Exceptions only ever turn an alert into a suppression.
                (x, y) => assert_eq!(x, y, "{}", path.display()),
            }
        }
    }
    out
}

fn owned(list: &[(&str, Option<usize>, &str)]) -> Vec<(String, Option<usize>, String)> {
    list.iter()
        .map(|(f, i, id)| ((*f).to_owned(), *i, (*id).to_owned()))
        .collect()
}

#[test]
fn the_example_list_suppresses_exactly_the_known_good_activity() {
    assert_eq!(example().items().len(), 4);
    assert_eq!(
        suppressed(ProfileName::Faithful),
        owned(&[
            (
                "ecs/custom-script-extension.json",
                None,
                "app-release-pipeline"
            ),
            (
                "ecs/microsoft-monitoring-agent.json",
                None,
                "ops-monitoring-rollout"
            ),
            (
                "ecs/outcome-capitalized-success.json",
                None,
                "app-release-pipeline"
            ),
            (
                "ecs/resource-id-1024-chars.json",
                None,
                "app-release-pipeline"
            ),
            (
                "ecs/resource-id-array-one-matching.json",
                None,
                "data-team-run-command"
            ),
            (
                "ecs/run-command-windows.json",
                None,
                "data-team-run-command"
            ),
            (
                "raw/custom-script-extension-success.json",
                None,
                "app-release-pipeline"
            ),
            (
                "raw/event-hub-envelope-mixed.json",
                Some(0),
                "data-team-run-command"
            ),
            (
                "raw/result-type-lower-case-success.json",
                None,
                "data-team-run-command"
            ),
        ])
    );
    // The hardened profile raises more alerts; the same items suppress the known-good ones.
    let hardened = suppressed(ProfileName::Hardened);
    assert!(hardened.len() > 9);
    assert!(
        hardened
            .iter()
            .all(|(_, _, id)| id != "expired-migration-window")
    );
}
