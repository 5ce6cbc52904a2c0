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
