//! The generated Vector artefacts in the real Vector, not in the `vrl` crate alone.
//!
//! The binary is found through `$VECTOR`, then `vector` on `PATH`, then `../shared/bin/vector`
//! beside the checkout (or `$VMEXT_SHARED/bin/vector`). Without one this prints a notice and
//! passes; under `CI=true` it fails, since CI always has the binary.
//!
//! What it checks, one Vector process at a time, each bounded by [`TIMEOUT`] (killed when it
//! runs over) and each in a temporary folder removed afterwards:
//!
//! 1. `vector validate` accepts `vector/vector.yaml`, and `vector test` passes its tests.
//! 2. Pipelines of real sources give, for every input document, exactly the engine's alerts:
//!    every shipped fixture (`fixtures/ecs`, `fixtures/raw`, all of `fixtures/cases.toml`) and
//!    a generated corpus of both shapes, through the `file` and the `stdin` sources, in the
//!    legacy and the `vector` log namespaces, with Event Hub envelopes given whole to the
//!    program and split into one event per record upstream. The four runs cover every pair of
//!    these three choices (a two-level orthogonal array), not all eight combinations. The
//!    engine is `vmext_engine::Detector`, the engine `vmext-detect scan --engine native` runs,
//!    on each document as it was written; the corpus is `host-test generate`'s, from the
//!    generator's source file. The last input is a marker that tells the test the input is done.
//! 3. The pipeline the README prints, extracted from the README (only its paths are replaced
//!    with temporary ones), writes exactly the engine's alerts to its alerts file.
//!
//! This is a test without the standard harness (`harness = false`): it prints what it runs
//! and how long each step took, and its notice when it skips, whatever `cargo test` captures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmext_engine::{Detector, Outcome, Verdict};
use vmext_test_support::{fixture_files, repo_root};
use vmext_vrl::ANNOTATION_KEY;
use vmext_vrl::artefacts::{CONFIG_FILE, PROGRAM_FILE, TEST_NAMES};

/// The corpus generator of `host-test generate`, compiled from its one source file: building
/// the host crate here would compile wasmtime.
#[allow(dead_code, missing_docs, unused_imports)]
#[path = "../../../host-test/src/generate.rs"]
mod generate;

/// How long one Vector process may run before it is killed and the test fails. Compiling the
/// program takes seconds in an opt-level-1 Vector; this is for a stuck process, not a budget.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Records of each shape in the generated corpus.
const CORPUS_RECORDS: u64 = 1500;

/// The marker in the README just before the pipeline this test runs.
const README_MARKER: &str =
    "<!-- the Vector pipeline: crates/vrl-gen/tests/real_vector.rs runs it -->";

/// The paths the README's pipeline uses, each replaced with a folder of the test's own.
const README_PATHS: [&str; 4] = [
    "/var/lib/vector",
    "/var/log/azure/activity",
    "/etc/vector",
    "/var/log/vector",
];

type Result<T> = std::result::Result<T, String>;

/// One step of the test: what it runs, given the Vector binary, and a line saying what it saw.
type Step = fn(&Path) -> Result<String>;

fn main() -> ExitCode {
    let Some(vector) = find_vector() else {
        return ExitCode::SUCCESS;
    };
    let version = Command::new(&vector)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    eprintln!("real Vector: {} ({version})", vector.display());
    let steps: [(&str, Step); 4] = [
        ("vector validate vector/vector.yaml", validate),
        ("vector test vector/vector.yaml", unit_tests),
        ("pipelines over the fixtures and a corpus", pipelines),
        ("the README's pipeline as printed", readme_pipeline),
    ];
    let mut failed = 0;
    for (what, step) in steps {
        let start = Instant::now();
        match step(&vector) {
            Ok(detail) => eprintln!(
                "real Vector: {what} ... ok in {:.1} s: {detail}",
                start.elapsed().as_secs_f64()
            ),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "real Vector: {what} ... FAILED after {:.1} s\n{e}",
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    if failed > 0 {
        eprintln!("real Vector: {failed} step(s) failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The Vector binary, or `None` after a notice (a panic under `CI=true`).
fn find_vector() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VECTOR") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "VECTOR={} is not a file", path.display());
        return Some(path);
    }
    if let Some(dirs) = std::env::var_os("PATH")
        && let Some(found) = std::env::split_paths(&dirs)
            .map(|d| d.join("vector"))
            .find(|p| p.is_file())
    {
        return Some(found);
    }
    let found = vmext_test_support::shared_path("bin/vector");
    if found.is_none() {
        eprintln!(
            "notice: the real-Vector tests were SKIPPED: no `vector` binary \
             (set VECTOR, put one on PATH, or provide ../shared/bin/vector; CI=true requires one)"
        );
    }
    found
}

/// A folder of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Result<TempDir> {
        let path =
            std::env::temp_dir().join(format!("vmext-real-vector-{}-{name}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running Vector, killed when dropped (a failed step never leaves one behind).
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    deadline: Instant,
    /// The thread writing the input to stdin; it hands the pipe back, still open.
    writer: Option<std::thread::JoinHandle<std::process::ChildStdin>>,
}

impl Running {
    /// Starts `vector` with `args` in `cwd`; stdout is read line by line, stderr goes to
    /// `log`, and `input` (if any) is written to stdin, which is then closed.
    fn start(
        vector: &Path,
        args: &[&str],
        cwd: &Path,
        log: &Path,
        input: Option<Vec<u8>>,
    ) -> Result<Running> {
        let stderr = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(vector)
            .args(args)
            .current_dir(cwd)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", vector.display()))?;
        let writer = match (child.stdin.take(), input) {
            (Some(mut stdin), Some(bytes)) => Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
                stdin
            })),
            _ => None,
        };
        let (send, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Running {
            child,
            lines,
            deadline: Instant::now() + TIMEOUT,
            writer,
        })
    }

    /// The next line of stdout; `None` at its end. Fails at the deadline.
    fn next_line(&mut self) -> Result<Option<String>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(Some(line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "Vector ran longer than {} s; killed",
                TIMEOUT.as_secs()
            )),
        }
    }

    /// Closes stdin once everything was written: the `stdin` source ends, and Vector with it.
    ///
    /// The pipe stays open until the caller has seen the last input's event: in 2 of about 40
    /// runs that wrote the whole input and closed the pipe straight away, Vector 0.57.0 wrote
    /// one event fewer than it was given.
    fn close_stdin(&mut self) {
        if let Some(writer) = self.writer.take() {
            drop(writer.join());
        }
    }

    /// Asks Vector to stop (SIGTERM: it drains its pipeline, flushes its sinks and exits).
    fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM failed: {status}"))
        }
    }

    /// Waits for the exit, up to the deadline; returns the exit code.
    fn wait(&mut self) -> Result<i32> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() >= self.deadline {
                return Err(format!(
                    "Vector ran longer than {} s; killed",
                    TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of Vector's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    lines.get(from..).unwrap_or_default().join("\n")
}

/// Runs a Vector command to its end; returns (exit code, stdout).
fn run_to_end(vector: &Path, args: &[&str], cwd: &Path, temp: &TempDir) -> Result<(i32, String)> {
    let log = temp.0.join("vector.log");
    let mut running = Running::start(vector, args, cwd, &log, None)?;
    let mut out = String::new();
    while let Some(line) = running.next_line()? {
        out.push_str(&line);
        out.push('\n');
    }
    let code = running.wait()?;
    Ok((code, format!("{out}{}", log_tail(&log))))
}

fn validate(vector: &Path) -> Result<String> {
    let temp = TempDir::new("validate")?;
    let config = repo_root().join(CONFIG_FILE);
    let config = config.display().to_string();
    // `--no-environment`: the sources and sinks' paths are examples, not this machine's.
    let (code, out) = run_to_end(
        vector,
        &["validate", "--no-environment", &config],
        &repo_root().join("vector"),
        &temp,
    )?;
    if code != 0 {
        return Err(format!("exit status {code}\n{out}"));
    }
    Ok("exit status 0".to_owned())
}

fn unit_tests(vector: &Path) -> Result<String> {
    let temp = TempDir::new("test")?;
    let config = repo_root().join(CONFIG_FILE).display().to_string();
    let (code, out) = run_to_end(
        vector,
        &["test", &config],
        &repo_root().join("vector"),
        &temp,
    )?;
    if code != 0 {
        return Err(format!("exit status {code}\n{out}"));
    }
    for name in TEST_NAMES {
        if !out.contains(&format!("test {name} ... passed")) {
            return Err(format!("no passed test {name:?}\n{out}"));
        }
    }
    Ok(format!("{} tests passed", TEST_NAMES.len()))
}

/// One input document: its line and the engine's alerts, whole and split.
struct Document {
    /// Where it comes from, for messages.
    name: String,
    /// The document on one line.
    line: String,
    /// The engine's alerts for the document (canonical JSON, in order).
    whole: Vec<String>,
    /// The engine's alerts for each event when envelopes are split upstream: one entry per
    /// record of an envelope, a single entry for any other document.
    split: Vec<Vec<String>>,
}

/// A JSON value written with sorted keys, so that two writers' alerts compare as text.
fn canonical(value: &serde_json::Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` feature here).
    serde_json::to_string(value).unwrap_or_default()
}

/// The engine's alerts for one document, canonical; an error when the engine refuses it.
fn engine_alerts(detector: &Detector, text: &str) -> Result<Vec<String>> {
    match detector.evaluate(text.as_bytes()) {
        Ok(Outcome::Rejected) => Ok(Vec::new()),
        Ok(Outcome::Evaluated(list)) => list
            .into_iter()
            .filter_map(|e| match e.verdict {
                Verdict::Alert(alert) => Some(alert.json),
                _ => None,
            })
            .map(|json| {
                serde_json::from_str::<serde_json::Value>(&json)
                    .map(|v| canonical(&v))
                    .map_err(|e| format!("the engine's alert is not JSON: {e}"))
            })
            .collect(),
        Err(e) => Err(format!("the engine refused the document: {e}")),
    }
}

impl Document {
    fn new(detector: &Detector, name: String, text: &str) -> Result<Document> {
        let line = text.trim().to_owned();
        if line.contains('\n') {
            return Err(format!("{name}: not on one line"));
        }
        let whole = engine_alerts(detector, &line).map_err(|e| format!("{name}: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{name}: {e}"))?;
        let split = match value.as_object() {
            Some(members) if members.len() == 1 && members.contains_key("records") => {
                match members.get("records") {
                    Some(serde_json::Value::Array(records)) => records
                        .iter()
                        .map(|r| engine_alerts(detector, &canonical(r)))
                        .collect::<Result<Vec<_>>>()
                        .map_err(|e| format!("{name}: a record: {e}"))?,
                    _ => vec![whole.clone()],
                }
            }
            _ => vec![whole.clone()],
        };
        Ok(Document {
            name,
            line,
            whole,
            split,
        })
    }
}

/// The key of the last input document, which marks the end of the input: the `file` source
/// never ends, so Vector is stopped once this document's event is out (it drains what it holds
/// on SIGTERM). Without it, a run that lost events would only end at [`TIMEOUT`].
const END_KEY: &str = "vmext_test_end_of_input";

/// The last input: the first alerting single-record document of `docs` with [`END_KEY`] added
/// (a key no rule reads; the engine's alerts for it are computed like any other's).
fn end_marker(detector: &Detector, docs: &[Document]) -> Result<Document> {
    let first = docs
        .iter()
        .find(|d| !d.whole.is_empty() && d.split.len() == 1)
        .ok_or("no alerting record among the inputs")?;
    let mut value: serde_json::Value =
        serde_json::from_str(&first.line).map_err(|e| e.to_string())?;
    let members = value.as_object_mut().ok_or("not an object")?;
    members.insert(END_KEY.to_owned(), serde_json::Value::Bool(true));
    let doc = Document::new(
        detector,
        format!("{} (end marker)", first.name),
        &canonical(&value),
    )?;
    if doc.whole != first.whole {
        return Err("the end marker changed the engine's alerts".to_owned());
    }
    Ok(doc)
}

/// Every shipped fixture (`fixtures/ecs`, `fixtures/raw`), named by its path under `fixtures/`.
fn fixture_documents(detector: &Detector) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for path in fixture_files() {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .strip_prefix(repo_root().join("fixtures"))
            .unwrap_or(&path)
            .display()
            .to_string();
        docs.push(Document::new(detector, name, &text)?);
    }
    Ok(docs)
}

/// Every shipped fixture and a generated corpus of both shapes, then the end marker.
fn documents() -> Result<Vec<Document>> {
    let detector = Detector::seed();
    let mut docs = Vec::new();
    let files = fixture_files();
    // Every case of cases.toml is among the files read.
    let cases = std::fs::read_to_string(repo_root().join("fixtures/cases.toml"))
        .map_err(|e| format!("fixtures/cases.toml: {e}"))?;
    for line in cases.lines().filter_map(|l| l.strip_prefix("file = ")) {
        let file = line.trim_matches('"');
        if !files.iter().any(|f| f.ends_with(file)) {
            return Err(format!(
                "cases.toml names {file}, which is not a fixture file"
            ));
        }
    }
    docs.extend(fixture_documents(&detector)?);
    for (shape, seed) in [
        (generate::CorpusShape::Ecs, 21),
        (generate::CorpusShape::Raw, 22),
    ] {
        let spec = generate::CorpusSpec {
            records: CORPUS_RECORDS,
            shape,
            true_positive_rate: 0.2,
            near_miss_rate: 0.4,
            seed,
        };
        let mut corpus = Vec::new();
        generate::generate(&spec, &mut corpus).map_err(|e| e.to_string())?;
        let text = String::from_utf8(corpus).map_err(|e| e.to_string())?;
        for (i, line) in text.lines().filter(|l| !l.is_empty()).enumerate() {
            docs.push(Document::new(
                &detector,
                format!("{shape:?} corpus record {i}"),
                line,
            )?);
        }
    }
    docs.push(end_marker(&detector, &docs)?);
    Ok(docs)
}

/// Which source reads the documents.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `file`, each line parsed by a `remap` (the file source has no decoding option).
    File,
    /// `stdin` with the JSON decoder.
    Stdin,
}

/// One pipeline: source, log namespace, and whether envelopes are split upstream.
#[derive(Debug, Clone, Copy)]
struct Pipeline {
    source: Source,
    /// `schema.log_namespace: true`: the event is the document, metadata is kept apart.
    vector_namespace: bool,
    /// A `remap` before the program turns an envelope into one event per record.
    split: bool,
}

/// Every pair of the three choices appears in one of these four runs.
const PIPELINES: [Pipeline; 4] = [
    Pipeline {
        source: Source::File,
        vector_namespace: false,
        split: false,
    },
    Pipeline {
        source: Source::File,
        vector_namespace: true,
        split: true,
    },
    Pipeline {
        source: Source::Stdin,
        vector_namespace: false,
        split: true,
    },
    Pipeline {
        source: Source::Stdin,
        vector_namespace: true,
        split: false,
    },
];

impl Pipeline {
    /// The configuration: source → (parse) → (split) → the program → console (JSON).
    fn config(&self, data: &Path, input: &Path, program: &Path) -> String {
        let mut out = format!(
            "data_dir: {}\nschema:\n  log_namespace: {}\nsources:\n  input:\n",
            yaml_string(&data.display().to_string()),
            self.vector_namespace
        );
        let mut last = "input".to_owned();
        let mut transforms = String::new();
        match self.source {
            Source::File => {
                out.push_str(&format!(
                    "    type: file\n    include:\n      - {}\n    read_from: beginning\n",
                    yaml_string(&input.display().to_string())
                ));
                let parse = if self.vector_namespace {
                    ". = object!(parse_json!(string!(.)))"
                } else {
                    ". = merge(., object!(parse_json!(string!(.message))))"
                };
                transforms.push_str(&format!(
                    "  parse:\n    type: remap\n    inputs: [{last}]\n    source: {}\n",
                    yaml_string(parse)
                ));
                last = "parse".to_owned();
            }
            Source::Stdin => {
                out.push_str("    type: stdin\n    decoding:\n      codec: json\n");
            }
        }
        if self.split {
            transforms.push_str(&format!(
                "  split:\n    type: remap\n    inputs: [{last}]\n    source: {}\n",
                yaml_string("if is_array(.records) { . = array!(.records) }")
            ));
            last = "split".to_owned();
        }
        transforms.push_str(&format!(
            "  detect:\n    type: remap\n    inputs: [{last}]\n    file: {}\n",
            yaml_string(&program.display().to_string())
        ));
        out.push_str("transforms:\n");
        out.push_str(&transforms);
        out.push_str(
            "sinks:\n  out:\n    type: console\n    inputs: [detect]\n    encoding:\n      codec: json\n",
        );
        out
    }
}

/// A YAML double-quoted scalar (a JSON string is one).
fn yaml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The alerts of one output event, canonical (empty when it has none).
fn event_alerts(line: &str) -> Result<Vec<String>> {
    let event: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("output is not JSON ({e}): {line}"))?;
    match event.get(ANNOTATION_KEY) {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(alerts)) if !alerts.is_empty() => {
            Ok(alerts.iter().map(canonical).collect())
        }
        Some(other) => Err(format!("`{ANNOTATION_KEY}` is {other}")),
    }
}

/// Compares the per-event alerts Vector gave with the engine's, as multisets (Vector may
/// reorder events between concurrent transform runs); returns (events, alerts).
fn compare(
    actual: Vec<Vec<String>>,
    expected: Vec<(&str, &Vec<String>)>,
) -> Result<(usize, usize)> {
    let events = actual.len();
    let alerts = actual.iter().map(Vec::len).sum();
    let mut want: BTreeMap<&Vec<String>, Vec<&str>> = BTreeMap::new();
    for &(name, alerts) in &expected {
        want.entry(alerts).or_default().push(name);
    }
    let mut unexpected = Vec::new();
    for got in &actual {
        match want.get_mut(got) {
            Some(names) if !names.is_empty() => {
                names.pop();
            }
            _ => unexpected.push(got),
        }
    }
    let missing: Vec<&str> = want.values().flatten().copied().collect();
    if unexpected.is_empty() && missing.is_empty() {
        return Ok((events, alerts));
    }
    let first = unexpected
        .first()
        .map(|a| a.join("\n    "))
        .unwrap_or_default();
    Err(format!(
        "{events} events out, {} expected; {} events whose alerts the engine did not give \
         (first: [{first}]); inputs whose alerts did not come out: {:?}",
        expected.len(),
        unexpected.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    ))
}

fn pipelines(vector: &Path) -> Result<String> {
    let docs = documents()?;
    let program = repo_root().join(PROGRAM_FILE);
    let mut summary = Vec::new();
    for pipeline in PIPELINES {
        let start = Instant::now();
        let (events, alerts) = run_pipeline(vector, &pipeline, &docs, &program)
            .map_err(|e| format!("{pipeline:?}: {e}"))?;
        summary.push(format!(
            "{:?}/{}/{}: {events} events, {alerts} alerts ({:.1} s)",
            pipeline.source,
            if pipeline.vector_namespace {
                "vector namespace"
            } else {
                "legacy namespace"
            },
            if pipeline.split { "split" } else { "whole" },
            start.elapsed().as_secs_f64()
        ));
    }
    Ok(format!(
        "{} documents, alerts equal to the engine's in every run:\n    {}",
        docs.len(),
        summary.join("\n    ")
    ))
}

fn run_pipeline(
    vector: &Path,
    pipeline: &Pipeline,
    docs: &[Document],
    program: &Path,
) -> Result<(usize, usize)> {
    let temp = TempDir::new("pipeline")?;
    let input = temp.dir("in")?.join("activity.ndjson");
    let mut text = String::new();
    for doc in docs {
        text.push_str(&doc.line);
        text.push('\n');
    }
    let config = temp.0.join("vector.yaml");
    std::fs::write(
        &config,
        pipeline.config(&temp.dir("data")?, &input, program),
    )
    .map_err(|e| e.to_string())?;
    let expected: Vec<(&str, &Vec<String>)> = if pipeline.split {
        docs.iter()
            .flat_map(|d| d.split.iter().map(|s| (d.name.as_str(), s)))
            .collect()
    } else {
        docs.iter().map(|d| (d.name.as_str(), &d.whole)).collect()
    };
    let stdin = match pipeline.source {
        Source::File => {
            std::fs::write(&input, &text).map_err(|e| e.to_string())?;
            None
        }
        Source::Stdin => Some(text.into_bytes()),
    };
    let log = temp.0.join("vector.log");
    let config = config.display().to_string();
    let mut running = Running::start(vector, &["--config", &config], &temp.0, &log, stdin)?;
    let mut actual = Vec::new();
    let fail = |e: String| format!("{e}\n{}", log_tail(&log));
    let mut stopping = false;
    // Once the end marker is out, the input ends: the file source never ends, so Vector is
    // asked to stop; the stdin source ends when stdin is closed. Either way Vector drains
    // what it holds, and whatever it still writes is read too.
    while let Some(line) = running.next_line().map_err(fail)? {
        if line.trim().is_empty() {
            continue;
        }
        actual.push(event_alerts(&line).map_err(fail)?);
        if !stopping && line.contains(END_KEY) {
            match pipeline.source {
                Source::File => running.terminate().map_err(fail)?,
                Source::Stdin => running.close_stdin(),
            }
            stopping = true;
        }
    }
    let code = running.wait().map_err(fail)?;
    if code != 0 {
        return Err(fail(format!("Vector exited with {code}")));
    }
    compare(actual, expected).map_err(fail)
}

/// The README's pipeline: the YAML block after [`README_MARKER`].
fn readme_config() -> Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))
        .map_err(|e| format!("README.md: {e}"))?;
    let after = readme
        .split_once(README_MARKER)
        .map(|(_, after)| after)
        .ok_or("README.md lacks the marker before its Vector pipeline")?;
    let body = after
        .trim_start()
        .strip_prefix("```yaml\n")
        .ok_or("the README's marker is not followed by a ```yaml block")?;
    let end = body
        .find("\n```")
        .ok_or("the README's yaml block is not closed")?;
    Ok(body.get(..=end).unwrap_or_default().to_owned())
}

fn readme_pipeline(vector: &Path) -> Result<String> {
    let temp = TempDir::new("readme")?;
    let mut config = readme_config()?;
    for path in README_PATHS {
        if !config.contains(path) {
            return Err(format!("the README's pipeline no longer uses {path}"));
        }
        let folder = temp.dir(path.trim_start_matches('/').replace('/', "-").as_str())?;
        config = config.replace(path, &folder.display().to_string());
    }
    let etc = temp.0.join("etc-vector");
    let program_name = Path::new(PROGRAM_FILE)
        .file_name()
        .ok_or("no program file name")?;
    std::fs::copy(repo_root().join(PROGRAM_FILE), etc.join(program_name))
        .map_err(|e| e.to_string())?;
    // The fixtures only: every alert of the pipeline must be one the engine gives.
    let detector = Detector::seed();
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut docs = fixture_documents(&detector)?;
    docs.push(end_marker(&detector, &docs)?);
    for doc in docs {
        text.push_str(&doc.line);
        text.push('\n');
        if !doc.whole.is_empty() {
            expected.push(doc);
        }
    }
    std::fs::write(temp.0.join("var-log-azure-activity/activity.ndjson"), text)
        .map_err(|e| e.to_string())?;
    let file = temp.0.join("config.yaml");
    std::fs::write(&file, &config).map_err(|e| e.to_string())?;
    let log = temp.0.join("vector.log");
    let file = file.display().to_string();
    let mut running = Running::start(vector, &["--config", &file], &temp.0, &log, None)?;
    let fail = |e: String| format!("{e}\n{}", log_tail(&log));
    let alerts_file = temp.0.join("var-log-vector/alerts.ndjson");
    // The file sink writes as events arrive: wait until the end marker's alert event is there,
    // then stop Vector (it drains and flushes on SIGTERM) and read the whole file.
    loop {
        let written = std::fs::read_to_string(&alerts_file).unwrap_or_default();
        if written.contains(END_KEY) {
            break;
        }
        if Instant::now() >= running.deadline {
            return Err(fail(format!(
                "{} of {} alert events after {} s, not the end marker's",
                written.lines().count(),
                expected.len(),
                TIMEOUT.as_secs()
            )));
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(fail(format!("Vector exited early: {status}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.terminate().map_err(fail)?;
    let code = running.wait().map_err(fail)?;
    if code != 0 {
        return Err(fail(format!("Vector exited with {code}")));
    }
    let written = std::fs::read_to_string(&alerts_file).map_err(|e| e.to_string())?;
    let actual = written
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(event_alerts)
        .collect::<Result<Vec<_>>>()?;
    let want = expected
        .iter()
        .map(|d| (d.name.as_str(), &d.whole))
        .collect();
    let (events, alerts) = compare(actual, want).map_err(fail)?;
    Ok(format!(
        "{events} alert events, {alerts} alerts in its alerts file, as the engine gives"
    ))
}
