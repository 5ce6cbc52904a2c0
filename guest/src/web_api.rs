//! The browser API's fixed-shape objects, declared once: serde writes them for the page, and
//! their TypeScript declarations in `web_api.d.ts` are generated from these same types (by
//! ts-rs, in this module's test, which fails while the checked-in file is not its output).
//! The per-record results are the engine's own canonical JSON and are declared by hand in
//! `web.rs`.

use serde::Serialize;

/// The rule a detector runs.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    /// The rule's id (`rule.rule_id` in the TOML).
    pub rule_id: String,
    /// The rule's name.
    pub name: String,
    /// The rule's description.
    pub description: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// 0 to 100.
    pub risk_score: u8,
    /// The KQL query the detector evaluates (the profile's).
    pub query: String,
    /// The profile the detector runs.
    pub profile: Profile,
    /// How many exception items it applies.
    pub exception_items: u32,
    /// MITRE ATT&CK tactics, as `ID name`.
    pub tactics: Vec<String>,
    /// MITRE ATT&CK techniques, as `ID name`.
    pub techniques: Vec<String>,
    /// The query's warnings, as `offset: message`.
    pub warnings: Vec<String>,
}

/// A detection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The rule exactly as Elastic evaluates it.
    Faithful,
    /// The opt-in hardened profile.
    Hardened,
}

/// A rule that could not be loaded (what `fromToml`, `fromQuery` and `configure` throw).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RuleFailure {
    /// What kind of failure.
    pub kind: RuleFailureKind,
    /// What went wrong, for people.
    pub message: String,
    /// Byte offset of a query syntax error in the query text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub offset: Option<u32>,
}

/// The kinds of [`RuleFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum RuleFailureKind {
    /// The TOML is not a detection rule.
    InvalidRule,
    /// The rule's type is not `query`.
    UnsupportedRuleType,
    /// The rule's language is not `kuery`.
    UnsupportedLanguage,
    /// The query does not parse.
    QuerySyntax,
    /// The profile name is unknown.
    InvalidProfile,
    /// The exception list cannot be read.
    InvalidExceptions,
}

/// The generated TypeScript declarations, as `web.rs` includes them into the module's `.d.ts`.
pub const DECLARATIONS: &str = include_str!("web_api.d.ts");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ts_rs::TS;

    /// The declarations as ts-rs writes them from the types above, exported.
    fn generated() -> String {
        let cfg = ts_rs::Config::new();
        let mut out = String::from(
            "// Generated from guest/src/web_api.rs by its test (ts-rs); do not edit by hand.\n",
        );
        for decl in [
            RuleInfo::decl(&cfg),
            Profile::decl(&cfg),
            RuleFailure::decl(&cfg),
            RuleFailureKind::decl(&cfg),
        ] {
            out.push_str("\nexport ");
            out.push_str(&decl);
            out.push('\n');
        }
        out
    }

    /// Run with `VMEXT_WRITE_TS=1` to rewrite the file after changing a type.
    #[test]
    fn declarations_are_generated_from_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web_api.d.ts");
        let fresh = generated();
        if std::env::var_os("VMEXT_WRITE_TS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        assert_eq!(
            DECLARATIONS, fresh,
            "guest/src/web_api.d.ts is stale: run `VMEXT_WRITE_TS=1 cargo test -p vmext-guest declarations`"
        );
    }

    #[test]
    fn serialised_as_declared() {
        let failure = RuleFailure {
            kind: RuleFailureKind::QuerySyntax,
            message: "expected a value".to_owned(),
            offset: Some(3),
        };
        assert_eq!(
            serde_json::to_string(&failure).unwrap(),
            r#"{"kind":"query-syntax","message":"expected a value","offset":3}"#
        );
        let failure = RuleFailure {
            kind: RuleFailureKind::InvalidExceptions,
            message: "m".to_owned(),
            offset: None,
        };
        assert_eq!(
            serde_json::to_string(&failure).unwrap(),
            r#"{"kind":"invalid-exceptions","message":"m"}"#
        );
    }
}
