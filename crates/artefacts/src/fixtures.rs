//! The shipped fixtures' manifest, `fixtures/cases.toml`: one definition of its schema for
//! every reader (the engine's fixture tests, the VRL generator's `vector test` cases, the
//! playground's fixture index).

use std::path::Path;

use serde::Deserialize;

/// Where the manifest is, relative to the repository root.
pub const MANIFEST: &str = "fixtures/cases.toml";

/// The manifest: one case per fixture file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The cases, in the manifest's order.
    pub case: Vec<Case>,
}

/// One fixture file and what the rule must make of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The file, relative to `fixtures/`.
    pub file: String,
    /// The edge case it covers, in words.
    pub edge: String,
    /// The faithful profile's verdict for each record (`alert` or `none`).
    pub expect: Vec<String>,
    /// The extension family of the first alerting record, when one alerts.
    #[serde(default)]
    pub family: Option<String>,
    /// The hardened profile's verdicts, when they differ from `expect`.
    #[serde(default)]
    pub hardened: Option<Vec<String>>,
    /// The hardened profile's family, when it differs from `family`.
    #[serde(default)]
    pub hardened_family: Option<String>,
}

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read (the reason is the source).
    #[error("cannot read {MANIFEST}")]
    Io(#[source] std::io::Error),
    /// The file is not a manifest (the reason is the source).
    #[error("{MANIFEST} is not a fixture manifest")]
    Toml(#[source] toml::de::Error),
}

impl Case {
    /// The hardened profile's verdicts: `hardened` where given, else `expect`.
    pub fn hardened_expect(&self) -> &[String] {
        self.hardened.as_deref().unwrap_or(&self.expect)
    }

    /// The hardened profile's family: `hardened_family` where given, else `family`.
    pub fn hardened_family(&self) -> Option<&str> {
        self.hardened_family.as_deref().or(self.family.as_deref())
    }
}

impl Manifest {
    /// Reads the manifest of the repository at `root`.
    pub fn read(root: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(root.join(MANIFEST)).map_err(ManifestError::Io)?;
        toml::from_str(&text).map_err(ManifestError::Toml)
    }
}
