//! The Fluent Bit module in the real Fluent Bit (5.1.1 in CI), end to end.
//!
//! The binary is `$FLUENT_BIT`, else `fluent-bit` on `PATH`, else `../shared/bin/fluent-bit`
//! beside the checkout. Without one each test prints a notice and passes (a user's clone);
//! under `CI=true` it fails. Every run of Fluent Bit is killed after a time limit, runs in a
//! temporary directory that is removed afterwards, and reads its records with `tail`
//! (`exit_on_eof`), so it ends on its own once every record went through.
//!
//! Fluent Bit parses each line (`parser json`) and hands the module its own JSON encoding of
//! the record, not the line: the tests first run the same lines through Fluent Bit without a
//! filter to learn what the module sees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use host_test::fluent_bit::{FluentBitModule, Mode, Reply};
use host_test::generate::{CorpusShape, CorpusSpec};
use host_test::wasi_files::WasiFiles;
use vmext_engine::{Detector, Exceptions, Outcome, ProfileName, Verdict};
use vmext_test_support::{
    Artefact, Finished, TempDir, build_artefact, find_program, fixture_files, hostile_cases,
    repo_root, run_bounded,
};

/// No run here takes more than a few seconds on a quiet machine; the limit only stops a hang.
const LIMIT: Duration = Duration::from_secs(300);
/// How often a running Fluent Bit is polled (and its resident size sampled).
const POLL: Duration = Duration::from_millis(20);

/// The real Fluent Bit and the module it loads.
struct Host {
    bin: PathBuf,
    module: PathBuf,
}

/// The host, or `None` (after a notice) when no Fluent Bit binary is available outside CI.
fn host() -> Option<Host> {
    let bin = find_program("FLUENT_BIT", "fluent-bit")?;
    Some(Host {
        bin,
        module: build_artefact(Artefact::FluentBit),
    })
}

/// The `wasm` filter of a pipeline.
#[derive(Clone, Copy)]
struct Filter<'a> {
    function: &'a str,
    accessible_paths: Option<&'a str>,
}

impl<'a> Filter<'a> {
    fn of(mode: Mode) -> Filter<'a> {
        Filter {
            function: mode.function_name(),
            accessible_paths: None,
        }
    }
}

impl Host {
    /// A YAML configuration: `tail` over `input` from its first line to its end, the filter if
    /// any, and each record on stdout as one JSON line.
    fn config(&self, input: &Path, filter: Option<Filter<'_>>) -> String {
        let filters = filter.map(|f| wasm_filter(&self.module, f));
        pipeline(input, filters.as_deref())
    }

    /// Runs Fluent Bit on `config` (written to `dir`, which is also its working directory).
    fn run(&self, dir: &Path, config: &str) -> Finished {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("fluent-bit-{}.yaml", NEXT.fetch_add(1, Ordering::Relaxed));
        std::fs::write(dir.join(&name), config).unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c").arg(&name).current_dir(dir);
        run_bounded(&mut cmd, dir, LIMIT, POLL)
    }

    /// Runs `lines` through a pipeline and returns the records Fluent Bit wrote, checking that
    /// it exited normally and that stdout carries records and nothing else.
    fn records(&self, dir: &Path, lines: &[Vec<u8>], filter: Option<Filter<'_>>) -> Vec<String> {
        let input = dir.join("input.ndjson");
        let mut text = Vec::new();
        for line in lines {
            assert!(!line.contains(&b'\n'), "an input line holds a newline");
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        std::fs::write(&input, text).unwrap();
        let finished = self.run(dir, &self.config(&input, filter));
        assert_eq!(
            finished.code,
            Some(0),
            "Fluent Bit failed; stderr:\n{}",
            finished.stderr
        );
        assert!(
            !finished.stderr.contains("[error]"),
            "Fluent Bit logged an error:\n{}",
            finished.stderr
        );
        stdout_records(&finished)
    }

    /// `replies` as Fluent Bit writes them: each through a pipeline without a filter, so that
    /// they compare byte for byte with what Fluent Bit writes after the filter (Fluent Bit
    /// re-encodes a reply before it goes on: non-ASCII text as `\uXXXX`, per its default
    /// `json.escape_unicode`). `None` (a dropped record) stays `None`.
    fn reencode(&self, dir: &Path, replies: &[Option<String>]) -> Vec<Option<String>> {
        let lines: Vec<Vec<u8>> = replies
            .iter()
            .flatten()
            .map(|r| r.clone().into_bytes())
            .collect();
        let mut out = self.records(dir, &lines, None).into_iter();
        let result: Vec<Option<String>> = replies
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|_| out.next().expect("one record per reply"))
            })
            .collect();
        assert!(out.next().is_none(), "one record per reply");
        result
    }
}

/// The YAML of a `wasm` filter (one list item under `filters:`) loading `module`.
fn wasm_filter(module: &Path, f: Filter<'_>) -> String {
    let mut yaml = format!(
        "    - name: wasm\n      match: t\n      wasm_path: {}\n      function_name: {}\n      \
         event_format: json\n      wasm_stack_size: 1M\n",
        module.display(),
        f.function
    );
    if let Some(paths) = f.accessible_paths {
        yaml.push_str(&format!("      accessible_paths: {paths}\n"));
    }
    yaml
}

/// A YAML configuration: `tail` over `input` from its first line to its end, then `filters`
/// (list items under `filters:`) if any, and each record on stdout as one JSON line.
fn pipeline(input: &Path, filters: Option<&str>) -> String {
    let mut yaml = format!(
        "service:\n  flush: 0.2\n  log_level: info\nparsers:\n  - name: json\n    format: json\n\
         pipeline:\n  inputs:\n    - name: tail\n      path: {}\n      parser: json\n      \
         read_from_head: true\n      exit_on_eof: true\n      buffer_chunk_size: 1M\n      \
         buffer_max_size: 32M\n      tag: t\n",
        input.display()
    );
    if let Some(filters) = filters {
        yaml.push_str("  filters:\n");
        yaml.push_str(filters);
    }
    yaml.push_str(
        "  outputs:\n    - name: stdout\n      match: t\n      format: json_lines\n      \
         json_date_key: false\n",
    );
    yaml
}

/// Fluent Bit's stdout as lines, each checked to be one JSON object: no log line, no runtime
/// warning (WAMR's "a module with WASI apis should be either a command or a reactor", printed
/// for a module without `_initialize`), nothing but records.
fn stdout_records(finished: &Finished) -> Vec<String> {
    let text = String::from_utf8(finished.stdout.clone()).expect("stdout is UTF-8");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in &lines {
        assert!(
            line.starts_with('{') && vmext_json::validate(line.as_bytes()).is_ok(),
            "stdout carries something other than a record: {}",
            &line[..line.len().min(200)]
        );
    }
    lines
}

fn profile_of(mode: Mode) -> ProfileName {
    match mode {
        Mode::Annotate | Mode::Alerts => ProfileName::Faithful,
        Mode::AnnotateHardened | Mode::AlertsHardened => ProfileName::Hardened,
    }
}

fn engine_alerts(detector: &Detector, text: &[u8]) -> Vec<String> {
    match detector.evaluate(text) {
        Ok(Outcome::Evaluated(list)) => list
            .into_iter()
            .filter_map(|e| match e.verdict {
                Verdict::Alert(a) => Some(a.json),
                _ => None,
            })
            .collect(),
        Ok(Outcome::Rejected) | Err(_) => Vec::new(),
    }
}

/// What the module must return in `mode` for `seen` (a valid JSON object, as Fluent Bit sends
/// it), given the engine's alerts: `None` when the record is dropped.
fn expected_reply(mode: Mode, seen: &str, alerts: &[String]) -> Option<String> {
    if mode.annotates() {
        if alerts.is_empty() {
            return Some(seen.to_owned());
        }
        let end = seen.rfind('}').unwrap();
        return Some(format!(
            "{},\"vmext_alerts\":[{}]}}",
            &seen[..end],
            alerts.join(",")
        ));
    }
    match alerts {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("{{\"vmext_alerts\":[{}]}}", many.join(","))),
    }
}

fn fixture_lines() -> Vec<(String, Vec<u8>)> {
    fixture_files()
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(repo_root().join("fixtures"))
                .unwrap()
                .display()
                .to_string();
            let bytes = std::fs::read(&path).unwrap().trim_ascii().to_vec();
            (name, bytes)
        })
        .collect()
}

/// `records` records of each shape from the corpus generator, interleaved.
fn mixed_corpus(records: u64) -> Vec<Vec<u8>> {
    let lines = |shape| {
        let mut out = Vec::new();
        let spec = CorpusSpec {
            records,
            shape,
            true_positive_rate: 0.2,
            near_miss_rate: 0.1,
            seed: 18,
        };
        host_test::generate::generate(&spec, &mut out).unwrap();
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    };
    let (ecs, raw) = (lines(CorpusShape::Ecs), lines(CorpusShape::Raw));
    ecs.into_iter().zip(raw).flat_map(|(a, b)| [a, b]).collect()
}

/// Compares Fluent Bit's records with the expected ones, naming the first differences.
fn assert_same_records(what: &str, actual: &[String], expected: &[String]) {
    let differing: Vec<String> = actual
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (a, e))| a != e)
        .take(3)
        .map(|(i, (a, e))| {
            let at = a
                .bytes()
                .zip(e.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(e.len()));
            let around = |t: &str| {
                let from = (at.saturating_sub(120)..=at).find(|i| t.is_char_boundary(*i));
                let from = from.unwrap_or(0).min(t.len());
                let to = (at + 200..t.len()).find(|i| t.is_char_boundary(*i));
                t[from..to.unwrap_or(t.len())].to_owned()
            };
            format!(
                "record {i}, from byte {at} (of {} and {}):\n  got      {}\n  expected {}",
                a.len(),
                e.len(),
                around(a),
                around(e)
            )
        })
        .collect();
    assert!(
        differing.is_empty() && actual.len() == expected.len(),
        "{what}: {} records out, {} expected\n{}",
        actual.len(),
        expected.len(),
        differing.join("\n")
    );
}

/// Every fixture and a mixed 10,000-record corpus through each exported function of the module
/// in the real Fluent Bit: the records that come out are, byte for byte, what the engine
/// decides (each alert exactly as the engine writes it), annotate mode keeps every record, and
/// the alerts mode returns one record per alerting input.
#[test]
fn every_fixture_and_a_mixed_corpus_through_every_function() {
    let Some(host) = host() else { return };
    let dir = TempDir::new("fb-corpus");
    let mut lines: Vec<Vec<u8>> = fixture_lines().into_iter().map(|(_, b)| b).collect();
    let fixtures = lines.len();
    lines.extend(mixed_corpus(5_000));
    // What the module sees: Fluent Bit's own encoding of each parsed line.
    let seen = host.records(dir.path(), &lines, None);
    assert_eq!(seen.len(), lines.len(), "Fluent Bit keeps every line");
    for mode in Mode::ALL {
        let detector = Detector::seed_in(profile_of(mode));
        let mut expected = Vec::new();
        let (mut alerting, mut alerts) = (0, 0);
        for (original, seen) in lines.iter().zip(&seen) {
            let found = engine_alerts(&detector, seen.as_bytes());
            // Fluent Bit's re-encoding never changes the verdict.
            assert_eq!(found, engine_alerts(&detector, original), "{seen}");
            alerting += usize::from(!found.is_empty());
            alerts += found.len();
            expected.push(expected_reply(mode, seen, &found));
        }
        // The engine's alerts, as Fluent Bit writes them out (ASCII ones unchanged).
        let expected: Vec<String> = host
            .reencode(dir.path(), &expected)
            .into_iter()
            .flatten()
            .collect();
        let out = host.records(dir.path(), &lines, Some(Filter::of(mode)));
        assert_same_records(mode.function_name(), &out, &expected);
        let returned_alerts: usize = out
            .iter()
            .map(|r| r.matches("\"kind\":\"alert\"").count())
            .sum();
        assert_eq!(returned_alerts, alerts, "{mode:?}: alerts");
        if mode.annotates() {
            assert_eq!(out.len(), lines.len(), "{mode:?}: records in = records out");
        } else {
            assert_eq!(
                out.len(),
                alerting,
                "{mode:?}: one record per alerting input"
            );
        }
        assert!(alerting > 1_000, "{mode:?}: the corpus alerts ({alerting})");
        eprintln!(
            "{}: {} records in ({fixtures} fixtures), {} out, {alerts} alerts",
            mode.function_name(),
            lines.len(),
            out.len()
        );
    }
}

/// The Fluent Bit module compiled ahead of time for this machine's architecture
/// (`target/aot/vmext_guest.<arch>.aot`), if it was compiled from the module that `wasm` (built
/// from the current sources) holds. Compiling it needs `wamrc`, built from WAMR's C sources, so
/// `cargo test` does not: `cargo xtask aot` and `cargo xtask test` do. Absent or stale, this
/// prints a notice and gives `None`; under `CI=true` it fails.
fn aot_module(wasm: &Path) -> Option<PathBuf> {
    use std::io::Write as _;
    let arch = std::env::consts::ARCH;
    let aot = repo_root().join(vmext_artefacts::aot_path(arch));
    let source = std::fs::read(repo_root().join(vmext_artefacts::aot_source_path(arch)));
    let why = if !aot.is_file() {
        "not built"
    } else if source.ok() != Some(std::fs::read(wasm).unwrap()) {
        "stale: compiled from another build of the module than the current sources give"
    } else {
        return Some(aot);
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{} is {why}; CI=true requires it (cargo xtask aot)",
        aot.display()
    );
    let _ = writeln!(
        std::io::stderr(),
        "notice: SKIPPED, {} is {why} (run cargo xtask aot)",
        aot.display()
    );
    None
}

/// The AOT-compiled module, loaded by `wasm_path` alone, gives byte for byte what the
/// interpreted module gives in the real Fluent Bit, in every mode, on every fixture and a mixed
/// 4,000-record corpus: the same alerts, and every record kept in annotate mode. (The
/// interpreted module's output is held to the engine by the test above.)
#[test]
fn the_aot_module_gives_what_the_wasm_module_gives() {
    let Some(host) = host() else { return };
    let Some(aot) = aot_module(&host.module) else {
        return;
    };
    let aot_host = Host {
        bin: host.bin.clone(),
        module: aot,
    };
    let dir = TempDir::new("fb-aot");
    let mut lines: Vec<Vec<u8>> = fixture_lines().into_iter().map(|(_, b)| b).collect();
    lines.extend(mixed_corpus(2_000));
    for mode in Mode::ALL {
        let interpreted = host.records(dir.path(), &lines, Some(Filter::of(mode)));
        let compiled = aot_host.records(dir.path(), &lines, Some(Filter::of(mode)));
        assert_same_records(
            &format!("{} AOT vs wasm", mode.function_name()),
            &compiled,
            &interpreted,
        );
        let alerts: usize = compiled
            .iter()
            .map(|r| r.matches("\"kind\":\"alert\"").count())
            .sum();
        assert!(alerts > 500, "{mode:?}: the corpus alerts ({alerts})");
        if mode.annotates() {
            assert_eq!(
                compiled.len(),
                lines.len(),
                "{mode:?}: records in = records out"
            );
        }
        eprintln!(
            "{} (AOT): {} records in, {} out, {alerts} alerts, as interpreted",
            mode.function_name(),
            lines.len(),
            compiled.len()
        );
    }
    // What an operator sees with an AOT file from another WAMR version (the header's AOT format
    // version, 5 in WAMR 2.4.1, changed to 4) or for another architecture: Fluent Bit refuses to
    // start, and says why.
    let mut other_version = std::fs::read(&aot_host.module).unwrap();
    other_version[4..8].copy_from_slice(&4u32.to_le_bytes());
    let other_arch = if std::env::consts::ARCH == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let other_arch = repo_root().join(vmext_artefacts::aot_path(other_arch));
    let mut refused = vec![(
        "another WAMR version",
        other_version,
        "unknown binary version",
    )];
    if let Ok(bytes) = std::fs::read(&other_arch) {
        refused.push(("another architecture", bytes, "invalid target type"));
    }
    for (what, bytes, said) in refused {
        let module = dir.path().join("refused.aot");
        std::fs::write(&module, bytes).unwrap();
        let refusing = Host {
            bin: host.bin.clone(),
            module,
        };
        let input = dir.path().join("input.ndjson");
        let config = refusing.config(&input, Some(Filter::of(Mode::Annotate)));
        let finished = refusing.run(dir.path(), &config);
        assert_eq!(finished.code, Some(255), "{what}: {}", finished.stderr);
        assert!(
            finished.stderr.contains(said)
                && finished.stderr.contains("filter initialization failed"),
            "{what}: Fluent Bit does not say {said:?}:\n{}",
            finished.stderr
        );
        eprintln!(
            "an AOT file for {what}: exit 255, {}",
            finished
                .stderr
                .lines()
                .find(|l| l.contains(said))
                .unwrap_or_default()
        );
    }
}

/// Hostile lines that `tail` can carry (one line each; the others are listed), and a few
/// Fluent-Bit-specific ones (invalid escapes).
/// Named inputs, and named inputs left out with the reason.
type Cases = Vec<(String, Vec<u8>)>;
type LeftOut = Vec<(String, &'static str)>;

fn hostile_lines() -> (Cases, LeftOut) {
    let mut cases = hostile_cases();
    let ecs =
        std::fs::read_to_string(repo_root().join("fixtures/ecs/custom-script-extension.json"))
            .unwrap();
    let ecs = ecs.trim();
    let with = |field: &str| format!("{},{field}}}", &ecs[..ecs.len() - 1]).into_bytes();
    cases.push(("invalid escape \\q".into(), with("\"bad\":\"a\\qb\"")));
    cases.push(("truncated \\u escape".into(), with("\"bad\":\"a\\u12\"")));
    cases.push((
        "escaped lone low surrogate".into(),
        with("\"bad\":\"\\udc00\""),
    ));
    cases.push((
        "non-ASCII text".into(),
        with("\"txt\":\"caf\u{e9} \u{1f600}\""),
    ));
    cases.push((
        "escaped slash and unicode".into(),
        with("\"txt\":\"a\\/b \\u00e9\""),
    ));
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    for (name, bytes) in cases {
        if name == "100 000 keys" {
            left_out.push((
                name,
                "Fluent Bit's json parser spends about 13 s of CPU on it (its cost grows with the \
                 square of the keys): run with 10 000 keys instead",
            ));
            let keys: Vec<String> = (0..10_000).map(|i| format!("\"k{i}\":{i}")).collect();
            kept.push(("10 000 keys".into(), with(&keys.join(","))));
        } else if bytes.contains(&b'\n') {
            left_out.push((
                name,
                "holds a newline: no line-based input carries it as one record",
            ));
        } else if bytes.trim_ascii().is_empty() {
            left_out.push((name, "blank: tail reads no record from an empty line"));
        } else {
            kept.push((name, bytes));
        }
    }
    (kept, left_out)
}

/// The emulation (`host-test/src/fluent_bit.rs`, `vmext-detect fluent-bit`) gives what the real
/// Fluent Bit gives, on every fixture and every hostile case, in every mode: fed the record as
/// Fluent Bit hands it to the module, its replies equal Fluent Bit's output byte for byte. Fed
/// the original line, it differs exactly on the lines Fluent Bit re-encodes before the module
/// sees them (listed with the reason on stderr); Fluent Bit never aborts and never writes
/// anything but records.
#[test]
fn the_emulation_gives_what_real_fluent_bit_gives() {
    let Some(host) = host() else { return };
    let dir = TempDir::new("fb-emulation");
    let (hostile, left_out) = hostile_lines();
    let mut cases = fixture_lines();
    let fixtures = cases.len();
    cases.extend(hostile);
    let lines: Vec<Vec<u8>> = cases.iter().map(|(_, b)| b.clone()).collect();
    let seen = host.records(dir.path(), &lines, None);
    assert_eq!(
        seen.len(),
        lines.len(),
        "Fluent Bit passes every line on as one record"
    );
    let module = FluentBitModule::load(&host.module, false).unwrap();
    // Fluent Bit's default `accessible_paths` is `.`: its (empty) working directory.
    let mut emulation = module
        .instantiate_with(WasiFiles::accessible_paths(".", dir.path()).unwrap())
        .unwrap();
    let mut differences = Vec::new();
    for mode in Mode::ALL {
        let real = host.records(dir.path(), &lines, Some(Filter::of(mode)));
        let mut from_seen = Vec::new();
        let mut from_original = Vec::new();
        for ((name, original), seen) in cases.iter().zip(&seen) {
            let reply = |r: Reply| match r {
                Reply::Record(text) => Some(text),
                Reply::Dropped => None,
                Reply::Corrupt(why) => panic!("{name} {mode:?}: corrupt reply ({why})"),
            };
            from_seen.push(reply(emulation.call(mode, "t", seen.as_bytes()).unwrap()));
            from_original.push(reply(emulation.call(mode, "t", original).unwrap()));
        }
        let from_seen = host.reencode(dir.path(), &from_seen);
        let from_original = host.reencode(dir.path(), &from_original);
        let emulated: Vec<String> = from_seen.iter().flatten().cloned().collect();
        assert_same_records(
            &format!("{} emulation vs real", mode.function_name()),
            &real,
            &emulated,
        );
        if mode.annotates() {
            assert_eq!(
                real.len(),
                lines.len(),
                "{mode:?}: records in = records out"
            );
        }
        for (i, (((name, original), seen), (a, b))) in cases
            .iter()
            .zip(&seen)
            .zip(from_seen.iter().zip(&from_original))
            .enumerate()
        {
            if a == b {
                continue;
            }
            let why = if seen.as_bytes() == original.as_slice() {
                "none: the module saw the line itself"
            } else if seen.starts_with("{\"log\":") {
                "Fluent Bit's json parser refused the line and passed it on as {\"log\": <line>}"
            } else {
                "Fluent Bit re-encodes the parsed record before the module sees it"
            };
            differences.push((mode, i, name.clone(), why));
        }
    }
    for (mode, i, name, why) in &differences {
        let kind = if *i < fixtures { "fixture" } else { "hostile" };
        eprintln!("differs on the original line: {kind} {name} {mode:?}: {why}");
        assert!(
            !why.starts_with("none"),
            "{name} {mode:?}: the emulation and Fluent Bit disagree on the same input"
        );
    }
    for (name, why) in &left_out {
        eprintln!("not run through Fluent Bit: {name}: {why}");
    }
    // The fixtures are plain JSON that Fluent Bit re-encodes without change, except where
    // escapes are involved.
    let fixture_differences: Vec<&String> = differences
        .iter()
        .filter(|(_, i, _, _)| *i < fixtures)
        .map(|(_, _, n, _)| n)
        .collect();
    eprintln!("fixtures that differ on the original line: {fixture_differences:?}");
}

fn exceptions_dir(work: &Path, text: &str) {
    std::fs::create_dir_all(work.join("etc/vmext")).unwrap();
    std::fs::write(work.join("etc/vmext/exceptions.json"), text).unwrap();
}

/// The exception list reaches the module through `accessible_paths`: a directory named
/// `etc/vmext` relative to Fluent Bit's working directory (or Fluent Bit's default `.`) serves
/// the module's `/etc/vmext/exceptions.json`, and the alerts it suppresses are exactly those
/// the engine suppresses. An invalid list leaves the alerts in place with the reason beside
/// each; a missing directory stops Fluent Bit at start-up with the message the emulation gives.
#[test]
fn exceptions_through_accessible_paths() {
    let Some(host) = host() else { return };
    let lines: Vec<Vec<u8>> = fixture_lines().into_iter().map(|(_, b)| b).collect();
    let list =
        std::fs::read_to_string(repo_root().join("fixtures/exceptions/known-good-automation.json"))
            .unwrap();
    let exceptions = Exceptions::from_json(&list).unwrap();

    let valid = TempDir::new("fb-exceptions");
    exceptions_dir(valid.path(), &list);
    let seen = host.records(valid.path(), &lines, None);
    for mode in Mode::ALL {
        let plain = Detector::seed_in(profile_of(mode));
        let detector = plain.clone().with_exceptions(exceptions.clone());
        let mut expected = Vec::new();
        let mut suppressed = 0;
        for s in &seen {
            let alerts = engine_alerts(&detector, s.as_bytes());
            suppressed += engine_alerts(&plain, s.as_bytes()).len() - alerts.len();
            expected.push(expected_reply(mode, s, &alerts));
        }
        assert!(suppressed >= 3, "{mode:?}: the list suppresses alerts");
        let expected: Vec<String> = host
            .reencode(valid.path(), &expected)
            .into_iter()
            .flatten()
            .collect();
        for accessible_paths in [Some("etc/vmext"), Some("."), None] {
            let filter = Filter {
                function: mode.function_name(),
                accessible_paths,
            };
            let out = host.records(valid.path(), &lines, Some(filter));
            assert_same_records(
                &format!("{mode:?} with accessible_paths {accessible_paths:?}"),
                &out,
                &expected,
            );
        }
    }
    // A directory whose name does not lead to /etc/vmext serves nothing: Fluent Bit has no
    // mapping that would show `tuning` to the module as /etc/vmext.
    std::fs::create_dir_all(valid.path().join("tuning")).unwrap();
    std::fs::write(valid.path().join("tuning/exceptions.json"), &list).unwrap();
    let out = host.records(
        valid.path(),
        &lines,
        Some(Filter {
            function: "vmext_alerts",
            accessible_paths: Some("tuning"),
        }),
    );
    let plain = Detector::seed();
    let unsuppressed: usize = seen
        .iter()
        .filter(|s| !engine_alerts(&plain, s.as_bytes()).is_empty())
        .count();
    assert_eq!(out.len(), unsuppressed, "`tuning` hides nothing");

    // An invalid list: every alert kept, each with the reason.
    let invalid = TempDir::new("fb-exceptions-invalid");
    exceptions_dir(
        invalid.path(),
        r#"{"entries":[{"field":"a","type":"list","operator":"included","list":{"id":"x","type":"keyword"}}]}"#,
    );
    let out = host.records(
        invalid.path(),
        &lines,
        Some(Filter {
            function: "vmext_alerts",
            accessible_paths: Some("etc/vmext"),
        }),
    );
    assert_eq!(out.len(), unsuppressed);
    for record in &out {
        let value = vmext_json::parse(record.as_bytes()).unwrap();
        let error = value.get("vmext_config_error").and_then(|v| v.as_str());
        assert!(
            error.is_some_and(|e| e.starts_with(
                "/etc/vmext/exceptions.json: exception item 1: entry 1: `a` uses a value list"
            )),
            "{record}"
        );
    }

    // A missing directory: Fluent Bit refuses to start, and says which directory.
    let input = invalid.path().join("input.ndjson");
    let config = host.config(
        &input,
        Some(Filter {
            function: "vmext_annotate",
            accessible_paths: Some("etc/vmext, etc/missing"),
        }),
    );
    let finished = host.run(invalid.path(), &config);
    assert_eq!(
        finished.code,
        Some(255),
        "Fluent Bit started:\n{}",
        finished.stderr
    );
    assert!(finished.stdout.is_empty());
    let emulated =
        WasiFiles::accessible_paths("etc/vmext, etc/missing", invalid.path()).unwrap_err();
    for said in [
        emulated.as_str(),
        "failed to instantiate wasm program",
        "filter initialization failed",
    ] {
        assert!(
            finished.stderr.contains(said),
            "Fluent Bit does not say {said:?}:\n{}",
            finished.stderr
        );
    }
    eprintln!(
        "a missing accessible_paths directory: exit {:?}, {}",
        finished.code,
        finished
            .stderr
            .lines()
            .filter(|l| l.contains("[error]"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

/// The fenced block that follows `after` in the README, exactly as printed.
fn readme_block(after: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let at = readme
        .find(after)
        .unwrap_or_else(|| panic!("README.md no longer says {after:?}"));
    let rest = &readme[at..];
    let open = rest.find("```").unwrap();
    let body = &rest[open..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("```").unwrap();
    body[start..start + end].to_owned()
}

/// Replaces `from` with `to` in a README block, failing if the block no longer holds `from`
/// (the substitution must change exactly what the test means to change).
fn substitute(block: &str, from: &str, to: &str) -> String {
    assert!(
        block.contains(from),
        "the README block lacks {from:?}:\n{block}"
    );
    block.replace(from, to)
}

/// The configurations the README prints, run as printed: only the paths of the module, the
/// logs and the output files are replaced, and `tail` is told to read the file from its start
/// and stop at its end. The annotate pipeline (YAML and classic format), the exceptions filter
/// and the worked pipeline that routes alerts with `rewrite_tag` give the engine's counts.
#[test]
fn readme_configurations_run_as_printed() {
    let Some(host) = host() else { return };
    let dir = TempDir::new("fb-readme");
    let root = dir.path();
    let lines: Vec<Vec<u8>> = fixture_lines().into_iter().map(|(_, b)| b).collect();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut text = Vec::new();
    for line in &lines {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    std::fs::write(logs.join("activity.ndjson"), &text).unwrap();
    let detector = Detector::seed();
    let alerting = lines
        .iter()
        .filter(|l| !engine_alerts(&detector, l).is_empty())
        .count();
    let module = host.module.display().to_string();
    let logs_glob = format!("{}/*.ndjson", logs.display());
    let yaml_paths = |block: &str| {
        let block = substitute(block, "/etc/fluent-bit/vmext_guest.wasm", &module);
        substitute(
            &block,
            "      path: /var/log/azure/activity/*.ndjson\n",
            &format!(
                "      path: {logs_glob}\n      read_from_head: true\n      exit_on_eof: true\n"
            ),
        )
    };
    // The stdout output's default format: `[N] azure.activity: [[time, {}], {"k"=>v, …}]`.
    let count = |finished: &Finished, needle: &str| {
        assert_eq!(finished.code, Some(0), "{}", finished.stderr);
        assert!(!finished.stderr.contains("[error]"), "{}", finished.stderr);
        // Strings are printed as they are, so a record may span lines; each starts with its
        // index and tag, and stdout starts with the first record (no runtime warning first).
        let out = String::from_utf8_lossy(&finished.stdout).into_owned();
        assert!(
            out.starts_with("[0] azure.activity: [["),
            "{}",
            &out[..out.len().min(300)]
        );
        assert!(!out.contains("a module with WASI apis"));
        let records = out
            .lines()
            .filter(|l| {
                l.split_once("] azure.activity: [[").is_some_and(|(n, _)| {
                    n.strip_prefix('[')
                        .is_some_and(|n| n.parse::<u64>().is_ok())
                })
            })
            .count();
        (records, out.matches(needle).count())
    };

    let annotate = yaml_paths(&readme_block("Annotate every record (YAML):"));
    let finished = host.run(root, &annotate);
    assert_eq!(
        count(&finished, "\"vmext_alerts\"=>[{"),
        (lines.len(), alerting),
        "the README's YAML"
    );

    let classic_filter = substitute(
        &readme_block("The same filter in the classic format:"),
        "/etc/fluent-bit/vmext_guest.wasm",
        &module,
    );
    let classic_parsers = readme_block("Fluent Bit has no built-in `json` parser");
    std::fs::write(root.join("parsers.conf"), &classic_parsers).unwrap();
    let classic = format!(
        "[SERVICE]\n    Parsers_File  parsers.conf\n\n[INPUT]\n    Name            tail\n    \
         Path            {logs_glob}\n    Parser          json\n    Read_From_Head  true\n    \
         Exit_On_Eof     true\n    Tag             azure.activity\n\n{classic_filter}\n\
         [OUTPUT]\n    Name   stdout\n    Match  azure.activity\n"
    );
    std::fs::write(root.join("classic.conf"), &classic).unwrap();
    let mut cmd = Command::new(&host.bin);
    cmd.args(["-c", "classic.conf"]).current_dir(root);
    let finished = run_bounded(&mut cmd, root, LIMIT, POLL);
    assert_eq!(
        count(&finished, "\"vmext_alerts\"=>[{"),
        (lines.len(), alerting),
        "the README's classic filter"
    );

    // The exceptions filter, its directory relative to the working directory (the test cannot
    // write to /etc), in the annotate pipeline.
    let list =
        std::fs::read_to_string(repo_root().join("fixtures/exceptions/known-good-automation.json"))
            .unwrap();
    exceptions_dir(root, &list);
    let with_exceptions = detector
        .clone()
        .with_exceptions(Exceptions::from_json(&list).unwrap());
    let kept = lines
        .iter()
        .filter(|l| !engine_alerts(&with_exceptions, l).is_empty())
        .count();
    let filter = substitute(
        &readme_block("give the filter that directory as a WASI preopen:"),
        "accessible_paths: /etc/vmext",
        "accessible_paths: etc/vmext",
    );
    let start = annotate.find("    - name: wasm\n").unwrap();
    let end = annotate.find("  outputs:").unwrap();
    let exceptions_config = format!(
        "{}{}{}",
        &annotate[..start],
        substitute(&filter, "/etc/fluent-bit/vmext_guest.wasm", &module),
        &annotate[end..]
    );
    let finished = host.run(root, &exceptions_config);
    assert_eq!(
        count(&finished, "\"vmext_alerts\"=>[{"),
        (lines.len(), kept),
        "the README's exceptions filter"
    );
    std::fs::remove_dir_all(root.join("etc")).unwrap();

    // The worked pipeline: every record to one file, each alert document to another.
    let worked = readme_block("A worked pipeline that keeps every annotated record");
    let worked = yaml_paths(&worked);
    let out_dir = root.join("out");
    let worked = substitute(
        &worked,
        "path: /var/log/fluent-bit/activity",
        &format!("path: {}", out_dir.join("activity").display()),
    );
    let worked = substitute(
        &worked,
        "path: /var/log/fluent-bit/alerts",
        &format!("path: {}", out_dir.join("alerts").display()),
    );
    std::fs::create_dir_all(out_dir.join("activity")).unwrap();
    std::fs::create_dir_all(out_dir.join("alerts")).unwrap();
    // The file output writes `tag: [time, {record}]` per line, one file per tag.
    let read = |sub: &str, tag: &str| {
        std::fs::read_to_string(out_dir.join(sub).join(tag)).unwrap_or_default()
    };
    let envelopes = lines
        .iter()
        .filter(|l| l.starts_with(b"{\"records\":") && !engine_alerts(&detector, l).is_empty())
        .count();
    // Run as a service runs: no `exit_on_eof` (whose shutdown can come before `rewrite_tag`'s
    // copies are written), stopped with SIGTERM once both files hold what they should, or
    // after a minute, whatever they hold then.
    let worked = worked.replace("      exit_on_eof: true\n", "");
    let stderr = run_until_stopped(&host, root, &worked, || {
        read("activity", "azure.activity").lines().count() >= lines.len()
            && read("alerts", "vmext.alert").lines().count() >= alerting - envelopes
    });
    assert!(!stderr.contains("[error]"), "{stderr}");
    let activity = read("activity", "azure.activity");
    let alerts = read("alerts", "vmext.alert");
    assert_eq!(activity.lines().count(), lines.len(), "every record kept");
    assert_eq!(
        activity.matches("\"vmext_alerts\":[{").count(),
        alerting,
        "annotated"
    );
    // Known limitation: an Event Hub envelope, once annotated, has a `vmext_alerts` member
    // beside `records`, so the second filter no longer reads it as an envelope and its copy
    // is dropped. Its annotated record (with the alerts) still reaches the activity output.
    assert_eq!(envelopes, 2, "alerting envelopes among the fixtures");
    assert_eq!(
        alerts.lines().count(),
        alerting - envelopes,
        "one alert document for each alerting record that is not an envelope"
    );
    for line in alerts.lines() {
        assert!(
            line.starts_with("vmext.alert: [") && line.contains("\"kind\":\"alert\""),
            "{line}"
        );
    }
}

/// Fluent Bit's resident memory stays flat while the module filters 300,000 records (small
/// ones, every hundredth an alerting fixture), in annotate mode: the peak over the last part
/// of the run is within a few megabytes of the peak over its first part.
#[test]
fn memory_stays_flat_over_300k_records() {
    let Some(host) = host() else { return };
    let dir = TempDir::new("fb-memory");
    let alert = std::fs::read(repo_root().join("fixtures/ecs/custom-script-extension.json"))
        .unwrap()
        .trim_ascii()
        .to_vec();
    let records = 300_000;
    let mut text = Vec::with_capacity(records * 80);
    for i in 0..records {
        if i % 100 == 0 {
            text.extend_from_slice(&alert);
        } else {
            text.extend_from_slice(
                format!(
                    "{{\"n\":{i},\"operationName\":\"Microsoft.Storage/read\",\"x\":\"{:08x}\"}}",
                    i * 7919
                )
                .as_bytes(),
            );
        }
        text.push(b'\n');
    }
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, text).unwrap();
    let config = host
        .config(&input, Some(Filter::of(Mode::Annotate)))
        .replace(
            "  outputs:\n    - name: stdout\n      match: t\n      format: json_lines\n      json_date_key: false\n",
            "  outputs:\n    - name: null\n      match: t\n",
        );
    assert!(config.contains("name: null"));
    let mut cmd = Command::new(&host.bin);
    let name = "memory.yaml";
    std::fs::write(dir.path().join(name), &config).unwrap();
    cmd.args(["-c", name]).current_dir(dir.path());
    let finished = run_bounded(&mut cmd, dir.path(), LIMIT, Duration::from_millis(50));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let samples = &finished.rss_samples;
    assert!(samples.len() >= 10, "too few samples ({})", samples.len());
    let third = samples.len() / 3;
    let early = *samples[..third].iter().max().unwrap();
    let late = *samples[2 * third..].iter().max().unwrap();
    let peak = *samples.iter().max().unwrap();
    eprintln!(
        "resident memory over {records} records: peak {:.1} MB in the first third of the run, \
         {:.1} MB in the last third, {:.1} MB overall ({} samples)",
        early as f64 / 1e6,
        late as f64 / 1e6,
        peak as f64 / 1e6,
        samples.len()
    );
    assert!(
        late <= early + (8 << 20),
        "resident memory grew from {early} to {late} bytes"
    );
}

/// Runs Fluent Bit on `config` in `dir` until `done` holds (checked every 100 ms, for at most
/// a minute), then stops it with SIGTERM as a service manager would, and returns its stderr
/// once it has exited (status 0 asserted).
fn run_until_stopped(host: &Host, dir: &Path, config: &str, done: impl Fn() -> bool) -> String {
    std::fs::write(dir.join("service.yaml"), config).unwrap();
    let stderr_path = dir.join("service.stderr");
    let mut child = Command::new(&host.bin)
        .arg("-c")
        .arg("service.yaml")
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !done() && started.elapsed() < std::time::Duration::from_secs(60) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "Fluent Bit exited early"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopping = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("Fluent Bit did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{stderr}");
    stderr
}

/// Fluent Bit's own JSON encoding of a record is not always JSON: `msgpack2json` (in
/// `src/flb_pack.c`) writes a NaN or infinite number as `nan` or `inf`. A Lua filter before
/// the module makes such records; annotate mode must still give back one valid object per
/// record. The module's validating scan is what keeps them: a filter that returns the record
/// as it came (the pass-through of the test-hooks build) loses every one, as Fluent Bit cannot
/// read its own text back.
#[test]
fn records_that_fluent_bit_encodes_as_invalid_json_are_kept() {
    let Some(host) = host() else { return };
    let work = TempDir::new("fb-nan");
    let dir = work.path();
    let lines = [
        r#"{"operationName":"MICROSOFT.WEB/SITES/WRITE","n":1}"#,
        r#"{"operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","n":2}"#,
        r#"{"azure":{"activitylogs":{"operation_name":"X"}},"n":3}"#,
    ];
    std::fs::write(dir.join("input.ndjson"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("numbers.lua"),
        "function odd_numbers(tag, ts, record)\n  record[\"ratio\"] = 0/0\n  \
         record[\"limit\"] = math.huge\n  return 1, ts, record\nend\n",
    )
    .unwrap();
    let hooks = build_artefact(Artefact::FluentBitWithTestHooks);
    let config = |module: &Path, function: &str| {
        let lua =
            "    - name: lua\n      match: t\n      script: numbers.lua\n      call: odd_numbers\n";
        let wasm = wasm_filter(
            module,
            Filter {
                function,
                accessible_paths: None,
            },
        );
        pipeline(&dir.join("input.ndjson"), Some(&format!("{lua}{wasm}")))
    };

    let kept = host.run(dir, &config(&host.module, Mode::Annotate.function_name()));
    assert_eq!(kept.code, Some(0), "stderr:\n{}", kept.stderr);
    let records = stdout_records(&kept);
    assert_eq!(records.len(), lines.len(), "stderr:\n{}", kept.stderr);
    for (record, n) in records.iter().zip(1..) {
        let value = vmext_json::parse(record.as_bytes()).unwrap();
        let invalid = value
            .get("vmext_invalid_record")
            .unwrap_or_else(|| panic!("not marked invalid: {record}"));
        let text = invalid.get("record").and_then(|r| r.as_str()).unwrap();
        // What Fluent Bit handed over: its record, with the numbers spelled as C prints them.
        assert!(text.contains(&format!("\"n\":{n}")), "{text}");
        assert!(text.contains("nan") && text.contains("inf"), "{text}");
    }

    let lost = host.run(dir, &config(&hooks, "vmext_test_pass_through"));
    assert_eq!(lost.code, Some(0), "stderr:\n{}", lost.stderr);
    assert_eq!(stdout_records(&lost), Vec::<String>::new());
    assert!(
        lost.stderr.contains("invalid JSON format"),
        "{}",
        lost.stderr
    );
}
