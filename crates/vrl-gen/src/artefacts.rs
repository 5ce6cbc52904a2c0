//! The files Vector users copy, generated from the rule and the fixtures: the VRL program and a
//! `vector.yaml` (source → `remap` → `route` → sinks) whose `tests:` run every shipped fixture
//! through the program with `vector test`.
//!
//! Generation is deterministic (fixtures in `cases.toml` order, no time or path in the output),
//! so the committed files can be compared with fresh output.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::code::{json_literal, string};
use crate::{ANNOTATION_KEY, TranslateError, seed_program};

/// The program, relative to the repository root.
pub const PROGRAM_FILE: &str = "vector/azure_vm_extension_deployment_by_user.vrl";

/// The example configuration with its unit tests, relative to the repository root.
pub const CONFIG_FILE: &str = "vector/vector.yaml";

/// Why the artefacts could not be generated.
#[derive(Debug)]
pub enum ArtefactError {
    /// A file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// `fixtures/cases.toml` is not as expected.
    Cases(String),
    /// A fixture is not JSON.
    Fixture(String, String),
    /// The rule cannot be translated.
    Translate(TranslateError),
}

impl fmt::Display for ArtefactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtefactError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            ArtefactError::Cases(e) => write!(f, "fixtures/cases.toml: {e}"),
            ArtefactError::Fixture(file, e) => write!(f, "fixture {file}: {e}"),
            ArtefactError::Translate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ArtefactError {}

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    edge: String,
    expect: Vec<String>,
    #[serde(default)]
    family: Option<String>,
}

/// One `vector test` case: a fixture as an input event and what the program must make of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitTest {
    /// The test's name: the fixture file and its edge case.
    pub name: String,
    /// The fixture file, relative to `fixtures/`.
    pub file: String,
    /// VRL that builds the input event (`. = {…}`).
    pub input: String,
    /// VRL assertions on the program's output event.
    pub conditions: String,
}

/// The assertions for one document's expected verdicts (one per record; several for an
/// envelope).
fn conditions(expect: &[String], family: Option<&str>, rule_id: &str) -> String {
    let alerting: Vec<usize> = expect
        .iter()
        .enumerate()
        .filter(|(_, v)| v.as_str() == "alert")
        .map(|(i, _)| i)
        .collect();
    let key = ANNOTATION_KEY;
    if alerting.is_empty() {
        return format!("assert!(!exists(.{key}), \"the rule must not match\")\n");
    }
    let mut out = format!(
        "assert_eq!(length(array!(.{key})), {}, \"one alert per matching record\")\n",
        alerting.len()
    );
    for (k, index) in alerting.iter().enumerate() {
        out.push_str(&format!(
            "assert_eq!(.{key}[{k}].rule.id, {})\n",
            string(rule_id)
        ));
        out.push_str(&format!("assert_eq!(.{key}[{k}].event.kind, \"alert\")\n"));
        if expect.len() > 1 {
            out.push_str(&format!(
                "assert_eq!(.{key}[{k}].vmext.envelope_index, {index})\n"
            ));
        }
    }
    if let Some(family) = family {
        out.push_str(&format!(
            "assert_eq!(.{key}[0].vmext.extension_family, {})\n",
            string(family)
        ));
    }
    out
}

/// The unit tests for every case of `fixtures/cases.toml`, in its order.
pub fn unit_tests(root: &Path) -> Result<Vec<UnitTest>, ArtefactError> {
    let path = root.join("fixtures/cases.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| ArtefactError::Io(path, e))?;
    let cases: Cases = toml::from_str(&text).map_err(|e| ArtefactError::Cases(e.to_string()))?;
    let rule_id = vmext_engine::Rule::seed().rule_id;
    let mut out = Vec::new();
    for case in cases.case {
        let path = root.join("fixtures").join(&case.file);
        let body = std::fs::read(&path).map_err(|e| ArtefactError::Io(path, e))?;
        let value = vmext_json::parse(&body)
            .map_err(|e| ArtefactError::Fixture(case.file.clone(), e.to_string()))?;
        out.push(UnitTest {
            name: format!("{}: {}", case.file, case.edge),
            file: case.file.clone(),
            input: format!(". = {}", json_literal(&value)),
            conditions: conditions(&case.expect, case.family.as_deref(), &rule_id),
        });
    }
    Ok(out)
}

/// A YAML block scalar (`|`) holding `text` at `indent` spaces: no escaping is needed.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::from("|\n");
    for line in text.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `vector/vector.yaml`: the pipeline and its unit tests.
pub fn config(tests: &[UnitTest]) -> String {
    let program = Path::new(PROGRAM_FILE)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = format!(
        "# Azure VM Extension Deployment by User, in Vector (generated by `cargo xtask vrl`; do not edit).
#
# azure_activity (NDJSON files, one JSON record or Event Hub envelope per line)
#   -> vmext_detect (remap: the rule as VRL; matching events get `{ANNOTATION_KEY}`)
#   -> vmext_route  (route: `alert` carries the events that have alerts)
#   -> activity (every event) and alerts (the alert events) sinks.
#
# Run the unit tests from this folder (the remap reads its program relative to it):
#   vector test vector.yaml

sources:
  azure_activity:
    type: file
    include:
      - /var/log/azure/activity/*.ndjson
    decoding:
      codec: json

transforms:
  vmext_detect:
    type: remap
    inputs:
      - azure_activity
    file: ./{program}
  vmext_route:
    type: route
    inputs:
      - vmext_detect
    route:
      alert: exists(.{ANNOTATION_KEY})

sinks:
  activity:
    type: file
    inputs:
      - vmext_detect
    path: /var/log/vector/activity-%Y-%m-%d.ndjson
    encoding:
      codec: json
  alerts:
    type: file
    inputs:
      - vmext_route.alert
    path: /var/log/vector/alerts-%Y-%m-%d.ndjson
    encoding:
      codec: json

# One test per shipped fixture (fixtures/cases.toml): the fixture as the input event, and the
# engine's expected verdicts as assertions on the remap's output.
tests:
"
    );
    for test in tests {
        // A JSON string is a valid YAML double-quoted scalar (VRL's escapes are not).
        let mut name = String::new();
        vmext_json::write_escaped_str(&mut name, &test.name);
        out.push_str(&format!("  - name: {name}\n"));
        out.push_str("    inputs:\n");
        out.push_str("      - insert_at: vmext_detect\n");
        out.push_str("        type: vrl\n");
        out.push_str(&format!("        source: {}", block(&test.input, 10)));
        out.push_str("    outputs:\n");
        out.push_str("      - extract_from: vmext_detect\n");
        out.push_str("        conditions:\n");
        out.push_str("          - type: vrl\n");
        out.push_str(&format!(
            "            source: {}",
            block(&test.conditions, 14)
        ));
    }
    out
}

/// Every artefact, as (path relative to the repository root, contents).
pub fn generate(root: &Path) -> Result<Vec<(&'static str, String)>, ArtefactError> {
    let program = seed_program().map_err(ArtefactError::Translate)?;
    let tests = unit_tests(root)?;
    Ok(vec![(PROGRAM_FILE, program), (CONFIG_FILE, config(&tests))])
}

/// Writes every artefact under `root`.
pub fn write(root: &Path) -> Result<Vec<&'static str>, ArtefactError> {
    let files = generate(root)?;
    let mut written = Vec::new();
    for (path, contents) in files {
        let full = root.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ArtefactError::Io(dir.to_path_buf(), e))?;
        }
        std::fs::write(&full, contents).map_err(|e| ArtefactError::Io(full, e))?;
        written.push(path);
    }
    Ok(written)
}

/// The artefacts whose committed contents differ from fresh output (missing ones included).
pub fn stale(root: &Path) -> Result<Vec<&'static str>, ArtefactError> {
    let files = generate(root)?;
    Ok(files
        .into_iter()
        .filter(|(path, contents)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(contents.as_str())
        })
        .map(|(path, _)| path)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn committed_artefacts_are_current() {
        let stale = stale(&root()).unwrap();
        assert!(
            stale.is_empty(),
            "{stale:?} differ from the generator's output: run `cargo xtask vrl` and commit"
        );
    }

    #[test]
    fn test_names_are_valid_yaml_scalars() {
        let tests = unit_tests(&root()).unwrap();
        let yaml = config(&tests);
        let names: Vec<&str> = yaml
            .lines()
            .filter_map(|l| l.strip_prefix("  - name: "))
            .collect();
        assert_eq!(names.len(), tests.len());
        // JSON strings are YAML double-quoted scalars with the same value; VRL's `\{` is not.
        for (name, test) in names.iter().zip(&tests) {
            let parsed = vmext_json::parse(name.as_bytes()).unwrap();
            assert_eq!(parsed.as_str(), Some(test.name.as_str()));
        }
    }

    #[test]
    fn generating_twice_gives_identical_files() {
        assert_eq!(generate(&root()).unwrap(), generate(&root()).unwrap());
    }

    #[test]
    fn every_case_becomes_a_test_with_its_verdicts() {
        let tests = unit_tests(&root()).unwrap();
        let text = std::fs::read_to_string(root().join("fixtures/cases.toml")).unwrap();
        assert_eq!(
            tests.len(),
            text.lines().filter(|l| l.trim() == "[[case]]").count()
        );
        let envelope = tests
            .iter()
            .find(|t| t.file == "raw/event-hub-envelope-mixed.json")
            .unwrap();
        assert!(
            envelope
                .conditions
                .contains("length(array!(.vmext_alerts)), 2")
        );
        assert!(
            envelope
                .conditions
                .contains(".vmext_alerts[1].vmext.envelope_index, 4")
        );
        let none = tests
            .iter()
            .find(|t| t.file == "ecs/principal-group.json")
            .unwrap();
        assert!(none.conditions.contains("!exists(.vmext_alerts)"));
    }
}
