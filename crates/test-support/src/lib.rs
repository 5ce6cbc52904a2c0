//! Helpers for tests that read the reference data kept beside the repository.
//!
//! The reference data (Elastic's rule corpus, Elastic's pipeline test files) is not ours to
//! redistribute, so it is read from `../shared` next to the checkout and never copied in. A
//! user's clone does not have it: tests print a notice and skip. CI always has it, so under
//! `CI=true` a missing directory is a failure, not a skip.

use std::path::{Path, PathBuf};

/// SplitMix64 (Steele, Lea and Flood, 2014): the project's one deterministic generator for
/// reproducible test inputs. Small, fast, and it passes BigCrush, where plain xorshift64 does
/// not; any seed (zero included) gives a full-period stream.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// A path inside `../shared` (or `$VMEXT_SHARED`), or `None` with a notice when it is absent
/// outside CI.
///
/// # Panics
/// When the path is absent and `CI=true`: in CI the reference data must be there.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let base = std::env::var_os("VMEXT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    let path = base.join(relative);
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "reference data {relative} is missing under {} (CI=true requires it)",
        base.display()
    );
    eprintln!(
        "notice: skipping, reference data {relative} not found (set VMEXT_SHARED to the shared directory)"
    );
    None
}

/// Checks that the README's text between the `begin` and `end` markers is `generated`. With
/// `VMEXT_BLESS=1` it rewrites that text instead; otherwise a difference fails, naming
/// `regenerate`, the command that rewrites it.
///
/// # Panics
/// When the README or its markers are missing, or the section differs without `VMEXT_BLESS=1`.
#[allow(clippy::panic)]
pub fn check_readme_section(begin: &str, end: &str, generated: &str, regenerate: &str) {
    let path = repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (Some(start), Some(stop)) = (readme.find(begin), readme.find(end)) else {
        panic!("README.md lacks the markers {begin:?} and {end:?}");
    };
    let start = start + begin.len();
    if readme.get(start..stop) == Some(generated) {
        return;
    }
    if std::env::var("VMEXT_BLESS").is_ok_and(|v| v == "1") {
        let updated = format!(
            "{}{generated}{}",
            readme.get(..start).unwrap_or_default(),
            readme.get(stop..).unwrap_or_default()
        );
        std::fs::write(&path, updated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    } else {
        panic!("a generated README section is stale: run `VMEXT_BLESS=1 {regenerate}`");
    }
}

/// Every shipped fixture file (`fixtures/ecs/*`, `fixtures/raw/*`), in a stable order.
///
/// # Panics
/// When the fixtures folder cannot be read.
#[allow(clippy::panic)]
pub fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for shape in ["ecs", "raw"] {
        let dir = repo_root().join("fixtures").join(shape);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.sort();
    files
}

pub use vmext_artefacts::Artefact;

/// Builds `artefact` from the current sources (a no-op when it is fresh) and returns its path.
///
/// Tests call this instead of trusting a file on disk, so they never run a stale build.
///
/// # Panics
/// When the build fails; the message says how to install the missing target.
pub fn build_artefact(artefact: Artefact) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<Artefact, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = built.get(&artefact) {
        return path.clone();
    }
    let target = artefact.target();
    let root = repo_root();
    // The target may be missing on a fresh machine (rustup does not add targets on its own
    // here); adding one that is present is a no-op.
    let _ = std::process::Command::new("rustup")
        .current_dir(&root)
        .args(["target", "add", target])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(artefact.cargo_args("build"))
        .status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "building the guest for {target} failed ({status:?}); install the target with \
         `rustup target add {target}` or run `cargo xtask test`, which does"
    );
    let path = root.join(artefact.path());
    built.insert(artefact, path.clone());
    path
}

/// Finds an external program that end-to-end tests run (such as `fluent-bit`): the path in the
/// environment variable `env_var` if it is set, else `name` on `PATH`, else `bin/name` in the
/// shared directory beside the checkout (`../shared`, or `$VMEXT_SHARED`). `None`, with a
/// visible notice, when none exists and `CI` is not `true`.
///
/// # Panics
/// When `env_var` is set but does not name an executable file (a wrong setting is an error,
/// never a reason to fall back to another binary), and when no binary is found under
/// `CI=true`.
#[allow(clippy::panic)]
pub fn find_program(env_var: &str, name: &str) -> Option<PathBuf> {
    use std::io::Write as _;
    if let Some(explicit) = std::env::var_os(env_var) {
        let path = PathBuf::from(explicit);
        assert!(
            is_executable(&path),
            "{env_var}={} is not an executable file",
            path.display()
        );
        return Some(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|dirs| std::env::split_paths(&dirs).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p));
    if on_path.is_some() {
        return on_path;
    }
    let base = std::env::var_os("VMEXT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    let shared = base.join("bin").join(name);
    if is_executable(&shared) {
        return Some(shared);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{name} was not found (set {env_var}, put it on PATH or in {}); CI=true requires it",
        base.join("bin").display()
    );
    // Straight to stderr, past the test harness's capture, so that the skip shows in a normal
    // `cargo test` run.
    let _ = writeln!(
        std::io::stderr(),
        "notice: SKIPPED, {name} not found (set {env_var}, put it on PATH or in {})",
        base.join("bin").display()
    );
    None
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// A fresh directory under the system's temporary folder, removed with everything in it when
/// dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/vmext-<label>-<pid>-<n>`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    #[allow(clippy::panic)]
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vmext-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a bounded run of a program ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr, lossily decoded.
    pub stderr: String,
    /// Resident set sizes sampled from `/proc` while it ran, in bytes (Linux only).
    pub rss_samples: Vec<u64>,
}

/// Runs `command` with stdout and stderr captured in files under `scratch`, killing it (and
/// failing) if it has not finished after `limit`. Every `sample` its resident set size is read
/// from `/proc/<pid>/status` into [`Finished::rss_samples`].
///
/// # Panics
/// When the program cannot start or runs longer than `limit` (it is killed first).
#[allow(clippy::panic)]
pub fn run_bounded(
    command: &mut std::process::Command,
    scratch: &Path,
    limit: std::time::Duration,
    sample: std::time::Duration,
) -> Finished {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("run-{n}.stdout"));
    let err_path = scratch.join(format!("run-{n}.stderr"));
    let create = |p: &Path| {
        std::fs::File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()))
    };
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let started = std::time::Instant::now();
    let mut rss_samples = Vec::new();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {command:?}: {e}"),
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!("{command:?} ran longer than {limit:?} and was killed; stderr:\n{stderr}");
        }
        if let Some(rss) = resident_bytes(child.id()) {
            rss_samples.push(rss);
        }
        std::thread::sleep(sample);
    };
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let stderr =
        String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default()).into_owned();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Finished {
        code: status.code(),
        stdout,
        stderr,
        rss_samples,
    }
}

/// `VmRSS` of a running process, in bytes, from `/proc` (`None` elsewhere or once it exited).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The rule's literals, so that the prefilter lets a hostile document through to the parser.
const NEEDLES: &str =
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE User success CUSTOMSCRIPTEXTENSION";

#[allow(clippy::unwrap_used)]
fn alerting_ecs() -> String {
    std::fs::read_to_string(repo_root().join("fixtures/ecs/custom-script-extension.json"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `{"pad":…}` spliced into a record that alerts.
#[allow(clippy::indexing_slicing)]
fn with_field(record: &str, field: &str) -> String {
    format!("{},{field}}}", &record[..record.len() - 1])
}

/// Replaces the value of `key` (a string value) in an ECS record with `value`.
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
fn replace_value(record: &str, key: &str, value: &str) -> String {
    let at = record.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let end = at + record[at..].find('"').unwrap() + 1;
    assert!(record[at..].starts_with('"'));
    let end = end + record[end..].find('"').unwrap() + 1;
    format!("{}{}{}", &record[..at], value, &record[end..])
}

/// A raw Azure record that alerts, `depth` levels deep (about) under `identity`, under
/// `properties` and under a key the activity-log mapping does not name: the engine's raw view
/// copies all three.
pub fn deep_raw_record(depth: usize) -> String {
    let deep = |inner: &str| {
        format!(
            "{}{inner}{}",
            "{\"a\":[".repeat(depth / 2),
            "]}".repeat(depth / 2)
        )
    };
    format!(
        r#"{{"operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","category":"Administrative","resultType":"Success","resourceId":"/SUBSCRIPTIONS/00000000-0000-4000-8000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM/EXTENSIONS/CUSTOMSCRIPTEXTENSION","identity":{{"authorization":{{"evidence":{{"principalType":"User","deep":{}}}}}}},"properties":{{"deep":{}}},"other":{}}}"#,
        deep("1"),
        deep("\"x\""),
        deep("null")
    )
}

/// The hostile inputs every artefact is tested with, by name: broken, huge, deep and
/// mistyped documents (see `host-test/tests/hostile.rs` and the real Fluent Bit tests).
///
/// # Panics
/// When the fixture they are built from cannot be read.
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub fn hostile_cases() -> Vec<(String, Vec<u8>)> {
    let ecs = alerting_ecs();
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("truncated".into(), ecs.as_bytes()[..ecs.len() * 2 / 3].to_vec()),
        ("invalid JSON".into(), format!("{{\"x\":\"{NEEDLES}\",,}}").into_bytes()),
        ("not JSON at all".into(), NEEDLES.as_bytes().to_vec()),
        ("invalid UTF-8".into(), [format!("{{\"x\":\"{NEEDLES} ").as_bytes(), b"\xff\xfe\"}"].concat()),
        ("lone surrogate".into(), format!("{{\"x\":\"{NEEDLES} \\ud800\"}}").into_bytes()),
        ("raw NUL byte in a string".into(), [format!("{{\"x\":\"{NEEDLES}").as_bytes(), b"\0\"}"].concat()),
        ("escaped NUL".into(), with_field(&ecs, "\"nul\":\"a\\u0000b\"").into_bytes()),
        ("10 MB record that alerts".into(), with_field(&ecs, &format!("\"pad\":\"{}\"", "x".repeat(10 << 20))).into_bytes()),
        ("nesting 100 000 deep".into(), format!("{{\"x\":\"{NEEDLES}\",\"d\":{}", "[".repeat(100_000)).into_bytes()),
        ("nesting 500 deep, valid".into(), format!("{{\"x\":\"{NEEDLES}\",\"d\":{}1{}}}", "[".repeat(500), "]".repeat(500)).into_bytes()),
        ("raw Azure record nesting 500 deep, valid".into(), deep_raw_record(500).into_bytes()),
        ("100 000 keys".into(), {
            let keys: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect();
            with_field(&ecs, &keys.join(",")).into_bytes()
        }),
        ("huge numbers".into(), with_field(&ecs, "\"big\":1e999999,\"long\":123456789012345678901234567890123456789,\"neg\":-0.0000000000000000000001").into_bytes()),
        ("duplicate keys".into(), with_field(&ecs, "\"pad\":1,\"pad\":2").into_bytes()),
        ("an array, not an object".into(), format!("[\"{NEEDLES}\"]").into_bytes()),
        ("envelope of non-objects".into(), format!("{{\"records\":[1,\"{NEEDLES}\",null,[],{ecs}]}}").into_bytes()),
        ("empty".into(), Vec::new()),
        ("whitespace".into(), b" \n\t ".to_vec()),
    ];
    // Every field of the rule with the wrong type: number, object, array of arrays, null.
    let fields = [
        "operation_name",
        "principal_type",
        "outcome",
        "id",
        "dataset",
    ];
    for field in fields {
        for (kind, value) in [
            ("a number", "5"),
            ("an object", "{\"v\":\"User\"}"),
            ("an array of arrays", "[[\"success\"],[[\"User\"]]]"),
            ("null", "null"),
        ] {
            out.push((
                format!("{field} as {kind}"),
                replace_value(&ecs, field, value).into_bytes(),
            ));
        }
    }
    out
}

/// Runs `command` from the repository root with `stdin` written to it from another thread (the
/// program may stop reading early: a broken pipe there is not a failure) and its output
/// captured. Returns its status (-1 when killed by a signal), its stdout, which must be UTF-8,
/// and its stderr, lossily decoded.
///
/// # Panics
/// When the program cannot start, or writes stdout that is not UTF-8.
#[allow(clippy::panic)]
pub fn run_with_stdin(mut command: std::process::Command, stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let feeder = child.stdin.take().map(|mut input| {
        let stdin = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {command:?}: {e}"));
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("{command:?} wrote stdout that is not UTF-8: {e}"));
    (
        out.status.code().unwrap_or(-1),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts what a command does when its stdout is full (`/dev/full`): status 2, a message on
/// stderr that names stdout, and no panic. `what` names the run in a failure.
///
/// # Panics
/// When any of these does not hold.
#[allow(clippy::panic)]
pub fn assert_stdout_failure_reported(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(err.contains("stdout"), "{what}: {err}");
}
