//! Helpers for tests that read the reference data kept beside the repository.
//!
//! The reference data (Elastic's rule corpus, Elastic's pipeline test files) is not ours to
//! redistribute, so it is read from `../shared` next to the checkout and never copied in. A
//! user's clone does not have it: tests print a notice and skip. CI always has it, so under
//! `CI=true` a missing directory is a failure, not a skip.

use std::path::{Path, PathBuf};

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

/// A WebAssembly artefact of the guest crate that tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Artefact {
    /// The component (`wasm32-wasip2`).
    Component,
    /// The component with the `test-hooks` feature (injected traps and endless loops).
    ComponentWithTestHooks,
    /// The Fluent Bit filter module (`wasm32-wasip1`).
    FluentBit,
    /// The Fluent Bit filter module with the `test-hooks` feature.
    FluentBitWithTestHooks,
    /// The Fluent Bit filter built for `wasm32-unknown-unknown` (feature `fluent-bit`).
    FluentBitUnknown,
}

impl Artefact {
    /// (target, features, target directory) of the build.
    fn build(self) -> (&'static str, Option<&'static str>, &'static str) {
        match self {
            Artefact::Component => ("wasm32-wasip2", None, "target"),
            Artefact::ComponentWithTestHooks => {
                ("wasm32-wasip2", Some("test-hooks"), "target/test-hooks")
            }
            Artefact::FluentBit => ("wasm32-wasip1", None, "target"),
            Artefact::FluentBitWithTestHooks => {
                ("wasm32-wasip1", Some("test-hooks"), "target/test-hooks")
            }
            Artefact::FluentBitUnknown => ("wasm32-unknown-unknown", Some("fluent-bit"), "target"),
        }
    }
}

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
    let (target, features, target_dir) = artefact.build();
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
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "vmext-guest",
        "--target",
        target,
        "--profile",
        "wasm-release",
        "--target-dir",
        target_dir,
    ]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    let status = cmd.status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "building the guest for {target} failed ({status:?}); install the target with \
         `rustup target add {target}` or run `cargo xtask test`, which does"
    );
    let path = root
        .join(target_dir)
        .join(target)
        .join("wasm-release")
        .join("vmext_guest.wasm");
    built.insert(artefact, path.clone());
    path
}
