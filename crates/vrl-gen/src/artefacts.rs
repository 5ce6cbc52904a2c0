//! The files Vector users copy, generated from the rule and the fixtures: the VRL program and a
//! `vector.yaml` (source → `remap` → `route` → sinks) whose `tests:` run every shipped fixture
//! through the program with `vector test`.
//!
//! Generation is deterministic (fixtures in `cases.toml` order, no time or path in the output),
//! so the committed files can be compared with fresh output.

use std::path::{Path, PathBuf};

use crate::code::{json_literal, string};
use crate::{ANNOTATION_KEY, TranslateError, seed_program};

/// The program, relative to the repository root.
pub const PROGRAM_FILE: &str = "vector/azure_vm_extension_deployment_by_user.vrl";

/// The example configuration with its unit tests, relative to the repository root.
pub const CONFIG_FILE: &str = "vector/vector.yaml";

/// Why the artefacts could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    /// A file could not be read or written.
    #[error("{path}: {1}", path = .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    /// `fixtures/cases.toml` is not as expected.
    #[error(transparent)]
    Cases(#[from] vmext_artefacts::fixtures::ManifestError),
    /// A fixture is not JSON.
    #[error("fixture {0}: {1}")]
    Fixture(String, String),
    /// The rule cannot be translated.
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

/// One shipped fixture as `vector test` checks it: the input event and what the program must
/// make of it.
///
/// `vector.yaml` does not give each fixture its own test: every test builds the pipeline and
/// compiles the program again, which takes seconds. Its two tests each take every fixture as
/// one input, and check each fixture's output with one condition that first picks that
/// fixture's event out of all the outputs ([`UnitTest::document_conditions`],
/// [`UnitTest::line_conditions`]): Vector passes a condition when at least one output event
/// satisfies it, so a condition that only its own event can satisfy checks that event alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitTest {
    /// The fixture file and its edge case.
    pub name: String,
    /// The fixture file, relative to `fixtures/`.
    pub file: String,
    /// VRL that builds the input event (`. = {…}`).
    pub input: String,
    /// The fixture's text on one line, as an NDJSON file holds it.
    pub line: String,
    /// VRL that builds the event the program must leave unchanged (the input's literal).
    pub literal: String,
    /// VRL assertions on the program's output event: the fixture's expected verdicts.
    pub conditions: String,
}

impl UnitTest {
    /// The condition for the fixture given as a document (inserted at the `remap`): the event
    /// without `vmext_alerts` must be the document itself, then the verdicts must hold.
    pub fn document_conditions(&self) -> String {
        format!(
            "_event = .\ndel(_event.{ANNOTATION_KEY})\n_document = {}\nassert!(_event == _document, {})\n{}",
            self.literal,
            string(&format!("not the output of {}", self.name)),
            self.conditions
        )
    }

    /// The condition for the fixture given as a line of text (inserted at the parsing step):
    /// the event must be the one whose `message` is that line, then the verdicts must hold.
    pub fn line_conditions(&self) -> String {
        format!(
            "assert!(.message == {}, {})\n{}",
            string(&self.line),
            string(&format!("not the output of {}", self.name)),
            self.conditions
        )
    }
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
    let cases = vmext_artefacts::fixtures::Manifest::read(root)?;
    let rule_id = vmext_engine::Rule::seed().rule_id;
    let mut out = Vec::new();
    for case in cases.case {
        let path = root.join("fixtures").join(&case.file);
        let body = std::fs::read(&path).map_err(|e| ArtefactError::Io(path, e))?;
        let value = vmext_json::parse(&body)
            .map_err(|e| ArtefactError::Fixture(case.file.clone(), e.to_string()))?;
        let text = String::from_utf8_lossy(&body);
        let line = text.trim();
        if line.contains('\n') {
            return Err(ArtefactError::Fixture(
                case.file.clone(),
                "not on one line, as an NDJSON file would hold it".to_owned(),
            ));
        }
        let literal = json_literal(&value);
        out.push(UnitTest {
            name: format!("{}: {}", case.file, case.edge),
            file: case.file.clone(),
            input: format!(". = {literal}"),
            line: line.to_owned(),
            literal,
            conditions: conditions(&case.expect, case.family.as_deref(), &rule_id),
        });
    }
    Ok(out)
}

/// A YAML block scalar (`|`) holding `text` at `indent` spaces: no escaping is needed.
fn block(text: &str, indent: usize) -> String {
    block_with(text, indent, "|")
}

/// A YAML block scalar without its final line break (`|-`), for a value that must be `text`
/// exactly.
fn block_stripped(text: &str, indent: usize) -> String {
    block_with(text, indent, "|-")
}

fn block_with(text: &str, indent: usize, style: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = format!("{style}\n");
    for line in text.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The transform that parses each line of the `file` source into the event.
pub const PARSE_TRANSFORM: &str = "azure_json";

/// The transform that runs the program.
pub const DETECT_TRANSFORM: &str = "vmext_detect";

/// The names of the two tests of `vector.yaml`.
pub const TEST_NAMES: [&str; 2] = [
    "every fixture as a parsed document, at vmext_detect",
    "every fixture as an NDJSON line, at azure_json",
];

/// `vector/vector.yaml`: the pipeline and its unit tests.
pub fn config(tests: &[UnitTest]) -> String {
    let program = Path::new(PROGRAM_FILE)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (parse, detect) = (PARSE_TRANSFORM, DETECT_TRANSFORM);
    let mut out = format!(
        "# Azure VM Extension Deployment by User, in Vector (generated by `cargo xtask vrl`; do not edit).
#
# azure_activity (NDJSON files, one JSON record or Event Hub envelope per line)
#   -> {parse}   (remap: each line, which the file source puts in `message`, parsed into the event)
#   -> {detect} (remap: the rule as VRL; matching events get `{ANNOTATION_KEY}`)
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

transforms:
  {parse}:
    type: remap
    inputs:
      - azure_activity
    # The document's members join the keys the source added (`message`, `host`, `file`, ...);
    # a line that is not a JSON object leaves the event as it came, and it raises no alert.
    source: |
      . = merge(., object!(parse_json!(string!(.message))))
  {detect}:
    type: remap
    inputs:
      - {parse}
    file: ./{program}
  vmext_route:
    type: route
    inputs:
      - {detect}
    route:
      alert: exists(.{ANNOTATION_KEY})

sinks:
  activity:
    type: file
    inputs:
      - {detect}
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

# Every shipped fixture (fixtures/cases.toml) with the engine's expected verdicts, in two tests
# (each test builds the pipeline and compiles the program once): as the parsed document, and as
# the NDJSON line the file source reads. Vector passes a condition when at least one output
# event satisfies it; each condition first requires its own fixture's event (the document
# unchanged apart from `{ANNOTATION_KEY}`, or the line as its `message`), so it checks that
# event alone.
tests:
"
    );
    let head = |out: &mut String, name: &str| {
        let mut quoted = String::new();
        // A JSON string is a valid YAML double-quoted scalar (VRL's escapes are not).
        vmext_json::write_escaped_str(&mut quoted, name);
        out.push_str(&format!("  - name: {quoted}\n"));
        out.push_str("    inputs:\n");
    };
    let conditions = |out: &mut String, at: &str, sources: Vec<String>| {
        out.push_str("    outputs:\n");
        out.push_str(&format!("      - extract_from: {at}\n"));
        out.push_str("        conditions:\n");
        for source in sources {
            out.push_str("          - type: vrl\n");
            out.push_str(&format!("            source: {}", block(&source, 14)));
        }
    };
    head(&mut out, TEST_NAMES[0]);
    for test in tests {
        out.push_str(&format!("      - insert_at: {detect}\n"));
        out.push_str("        type: vrl\n");
        out.push_str(&format!("        source: {}", block(&test.input, 10)));
    }
    conditions(
        &mut out,
        detect,
        tests.iter().map(UnitTest::document_conditions).collect(),
    );
    head(&mut out, TEST_NAMES[1]);
    for test in tests {
        out.push_str(&format!("      - insert_at: {parse}\n"));
        out.push_str("        type: raw\n");
        out.push_str(&format!(
            "        value: {}",
            block_stripped(&test.line, 10)
        ));
    }
    conditions(
        &mut out,
        detect,
        tests.iter().map(UnitTest::line_conditions).collect(),
    );
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
        assert_eq!(names.len(), TEST_NAMES.len());
        // JSON strings are YAML double-quoted scalars with the same value; VRL's `\{` is not.
        for (name, expected) in names.iter().zip(TEST_NAMES) {
            let parsed = vmext_json::parse(name.as_bytes()).unwrap();
            assert_eq!(parsed.as_str(), Some(expected));
        }
    }

    #[test]
    fn each_test_takes_every_fixture_with_one_condition_each() {
        let tests = unit_tests(&root()).unwrap();
        let yaml = config(&tests);
        let count = |needle: &str| yaml.lines().filter(|l| l.trim() == needle).count();
        assert_eq!(count("type: vrl"), tests.len(), "the documents' inputs");
        assert_eq!(count("type: raw"), tests.len(), "the lines' inputs");
        assert_eq!(count("- type: vrl"), 2 * tests.len(), "the conditions");
        assert_eq!(count("- extract_from: vmext_detect"), 2);
        // Each condition first requires its own fixture's event, then its verdicts.
        for test in &tests {
            let document = test.document_conditions();
            assert!(document.contains(&format!("_document = {}\n", test.literal)));
            assert!(document.ends_with(&test.conditions));
            let line = test.line_conditions();
            assert!(line.starts_with(&format!("assert!(.message == {}", string(&test.line))));
            assert!(line.ends_with(&test.conditions));
        }
        assert_eq!(
            yaml.matches("not the output of ").count(),
            2 * tests.len(),
            "one condition per fixture in each test"
        );
        // The file source has no `decoding`: the line is parsed by a remap instead.
        assert!(!yaml.contains("decoding"));
        assert!(yaml.contains("parse_json!(string!(.message))"));
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
