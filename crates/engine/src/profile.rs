//! Detection profiles: the faithful default and opt-in variants that close a rule's blind spots.
//!
//! The **faithful** profile is the rule exactly as Elastic evaluates it. A **hardened** profile
//! is an opt-in variant, kept in a TOML file next to the rule (its one source of truth), made of:
//!
//! * a query, written in KQL like the rule's own; the seed rule's is generated from its coverage
//!   table ([`crate::coverage`]), the data listing the operations and extension handlers that run
//!   code on a machine;
//! * fields compared ASCII-case-insensitively: their values are upper-cased in the view the
//!   query runs on, and the query's values on those fields are upper-cased to match
//!   ([`vmext_kql::Query::fold_case`]). Only ASCII letters change, so the literal prefilter
//!   can stay sound with ASCII-case-insensitive needles;
//! * fields derived from the record: `vmext.extension.type` and `vmext.extension.publisher`,
//!   read from the request body (`properties.type` and `properties.publisher` of
//!   `azure.activitylogs.properties.requestBody`, a JSON string or an object). Unlike the
//!   resource id's last segment, which is an instance name the deployer chooses, these name the
//!   extension handler that will run;
//! * the list of changes, each with why and the fixtures that prove it (the README's list is
//!   generated from it).
//!
//! Alerts and exceptions always see the record's own values, never the folded ones.

use std::borrow::Cow;

use serde::Deserialize;
use vmext_json::Value;
use vmext_kql::{Query, SyntaxError};

/// The seed rule's hardened profile, as shipped in `rules/`.
pub const SEED_HARDENED_TOML: &str =
    include_str!("../../../rules/azure_vm_extension_deployment_by_user.hardened.toml");

/// Derived field: the extension handler's type from the request body.
pub const EXTENSION_TYPE_FIELD: &str = "vmext.extension.type";
/// Derived field: the extension handler's publisher from the request body.
pub const EXTENSION_PUBLISHER_FIELD: &str = "vmext.extension.publisher";

/// Which profile a detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileName {
    /// The rule as Elastic evaluates it.
    #[default]
    Faithful,
    /// The rule's hardened profile.
    Hardened,
}

impl ProfileName {
    /// `faithful` or `hardened`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Faithful => "faithful",
            ProfileName::Hardened => "hardened",
        }
    }

    /// Parses `faithful` or `hardened`.
    pub fn parse(text: &str) -> Result<ProfileName, ProfileError> {
        match text {
            "faithful" => Ok(ProfileName::Faithful),
            "hardened" => Ok(ProfileName::Hardened),
            other => Err(ProfileError::Unknown(other.to_owned())),
        }
    }
}

/// A hardened profile of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The `rule_id` of the rule this profile hardens.
    pub rule_id: String,
    /// One paragraph on what the profile is for.
    pub summary: String,
    /// Fields compared ASCII-case-insensitively.
    pub case_insensitive_fields: Vec<String>,
    /// The query, as written (not folded).
    pub query: Query,
    /// Each change against the faithful rule, with its evidence.
    pub changes: Vec<Change>,
}

/// One change a hardened profile makes, with the fixtures that show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// What changes.
    pub title: String,
    /// Why: the blind spot it closes.
    pub why: String,
    /// Fixtures (paths under `fixtures/`) the faithful profile misses and this one catches.
    pub catches: Vec<String>,
    /// Fixtures near the change that must still not alert.
    pub still_quiet: Vec<String>,
}

/// Why a profile could not be loaded or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The profile name is neither `faithful` nor `hardened`.
    #[error("unknown profile `{0}`; expected `faithful` or `hardened`")]
    Unknown(String),
    /// The file is not valid TOML or lacks a key.
    #[error("invalid profile file: {0}")]
    Toml(String),
    /// The profile's query does not parse.
    #[error("the profile's query: {0}")]
    QuerySyntax(#[from] SyntaxError),
    /// The profile belongs to another rule.
    #[error("the hardened profile is defined for rule {profile_rule_id}, not for rule {rule_id}")]
    OtherRule {
        /// The rule the profile is for.
        profile_rule_id: String,
        /// The rule it was applied to.
        rule_id: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    rule_id: String,
    profile: String,
    summary: String,
    case_insensitive_fields: Vec<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default, rename = "change")]
    changes: Vec<Change>,
}

impl Profile {
    /// Loads a hardened profile from its TOML text, which must contain its query.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        Profile::load(text, None)
    }

    /// Loads a hardened profile whose query is generated from a coverage table; the profile's
    /// file must then not have a query of its own.
    pub fn from_toml_with_coverage(text: &str, coverage: &str) -> Result<Profile, ProfileError> {
        let coverage = crate::coverage::Coverage::from_toml(coverage)
            .map_err(|e| ProfileError::Toml(e.to_string()))?;
        Profile::load(text, Some(coverage.query_text()))
    }

    fn load(text: &str, generated: Option<String>) -> Result<Profile, ProfileError> {
        let file: ProfileFile =
            toml::from_str(text).map_err(|e| ProfileError::Toml(e.message().to_owned()))?;
        if file.profile != "hardened" {
            return Err(ProfileError::Toml(format!(
                "`profile` is {:?}; only \"hardened\" profiles are defined",
                file.profile
            )));
        }
        let source = match (file.query, generated) {
            (Some(q), None) => q,
            (None, Some(q)) => q,
            (None, None) => return Err(ProfileError::Toml("missing key `query`".to_owned())),
            (Some(_), Some(_)) => {
                return Err(ProfileError::Toml(
                    "`query` is generated from the coverage table; remove it from the profile"
                        .to_owned(),
                ));
            }
        };
        let query = Query::parse(&source).map_err(ProfileError::QuerySyntax)?;
        Ok(Profile {
            rule_id: file.rule_id,
            summary: file.summary.trim().to_owned(),
            case_insensitive_fields: file.case_insensitive_fields,
            query,
            changes: file.changes,
        })
    }

    /// The seed rule's hardened profile, its query generated from the coverage table.
    pub fn seed_hardened() -> Profile {
        match Profile::from_toml_with_coverage(
            SEED_HARDENED_TOML,
            crate::coverage::SEED_COVERAGE_TOML,
        ) {
            Ok(profile) => profile,
            // The files are part of the build and a test loads them; this cannot be reached.
            Err(e) => unreachable!("the shipped hardened profile does not load: {e}"),
        }
    }

    /// The same profile running another query (the playground lets users edit it).
    pub fn with_query(&self, query: Query) -> Profile {
        Profile {
            query,
            ..self.clone()
        }
    }

    /// The query as evaluated: values on case-insensitive fields upper-cased.
    pub(crate) fn folded_query(&self) -> Query {
        self.query.fold_case(&self.case_insensitive_fields)
    }

    /// Turns `view` into the view the hardened query runs on, in place: the case-insensitive
    /// fields' string values upper-cased and the derived extension fields appended to its top
    /// level. [`Profile::unfold`] puts it back as it was.
    ///
    /// In place rather than on a copy: the hardened profile parses every record that names one
    /// of its operations, and a deep copy of each was about a tenth of its run time (BENCHMARKS.md,
    /// "Hardened against faithful profile").
    pub(crate) fn fold<'v>(&self, view: &mut Value<'v>) -> Folded<'v> {
        let (kind, publisher) = extension_from_request_body(view);
        let mut originals = Vec::new();
        for field in &self.case_insensitive_fields {
            strings_at(view, field, &mut |s| {
                originals.push(if s.bytes().any(|b| b.is_ascii_lowercase()) {
                    let upper = Cow::Owned(s.to_ascii_uppercase());
                    Some(std::mem::replace(s, upper))
                } else {
                    None
                });
            });
        }
        let mut added = 0;
        if let Value::Object(members) = view {
            for (field, value) in [
                (EXTENSION_TYPE_FIELD, kind),
                (EXTENSION_PUBLISHER_FIELD, publisher),
            ] {
                if let Some(mut value) = value {
                    if self.case_insensitive_fields.iter().any(|f| f == field) {
                        value.make_ascii_uppercase();
                    }
                    members.push((Cow::Borrowed(field), Value::String(Cow::Owned(value))));
                    added += 1;
                }
            }
        }
        Folded { originals, added }
    }

    /// Undoes [`Profile::fold`] on the view it folded: the derived members removed, each
    /// upper-cased string given back its own text.
    pub(crate) fn unfold<'v>(&self, view: &mut Value<'v>, folded: Folded<'v>) {
        if let Value::Object(members) = view {
            members.truncate(members.len().saturating_sub(folded.added));
        }
        // The structure is what `fold` walked (only string contents changed, and the members
        // it appended are gone), so this walk meets the same leaves in the same order.
        let mut originals = folded.originals.into_iter();
        for field in &self.case_insensitive_fields {
            strings_at(view, field, &mut |s| {
                if let Some(Some(original)) = originals.next() {
                    *s = original;
                }
            });
        }
    }
}

/// What [`Profile::fold`] changed in a view, for [`Profile::unfold`].
#[must_use = "a folded view must be unfolded before the record's own values are read"]
pub(crate) struct Folded<'v> {
    /// For each string leaf on a folded path, in the order the walk meets them: its own text,
    /// if folding changed it.
    originals: Vec<Option<Cow<'v, str>>>,
    /// How many derived members were appended to the view's top level.
    added: usize,
}

/// Calls `f` on every string leaf at a dotted path, through arrays and dotted keys, in an order
/// fixed by the document's structure.
fn strings_at<'v>(doc: &mut Value<'v>, path: &str, f: &mut dyn FnMut(&mut Cow<'v, str>)) {
    let mut stack: Vec<(&mut Value<'v>, &str)> = vec![(doc, path)];
    while let Some((value, rest)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter_mut().map(|item| (item, rest))),
            Value::String(s) if rest.is_empty() => f(s),
            Value::Object(members) if !rest.is_empty() => {
                for (key, child) in members.iter_mut() {
                    if key.is_empty() {
                        continue;
                    }
                    if rest == key.as_ref() {
                        stack.push((child, ""));
                    } else if let Some(after) = rest
                        .strip_prefix(key.as_ref())
                        .and_then(|r| r.strip_prefix('.'))
                    {
                        stack.push((child, after));
                    }
                }
            }
            _ => {}
        }
    }
}

/// `properties.type` and `properties.publisher` of the first request body that has them.
fn extension_from_request_body(view: &Value<'_>) -> (Option<String>, Option<String>) {
    const BODIES: [&str; 2] = [
        "azure.activitylogs.properties.requestBody",
        "azure.activitylogs.properties.requestbody",
    ];
    for path in BODIES {
        for body in body_values(view, path) {
            let text_at = |field: &str| {
                vmext_kql::eval::leaves_at(&body, field)
                    .first()
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let kind = text_at("properties.type");
            if kind.is_some() {
                return (kind, text_at("properties.publisher"));
            }
        }
    }
    (None, None)
}

/// The request bodies at `path`: objects as they are, JSON strings decoded.
fn body_values(view: &Value<'_>, path: &str) -> Vec<Value<'static>> {
    let mut out: Vec<Value<'static>> = vmext_kql::eval::objects_at(view, path)
        .map(crate::azure::owned)
        .collect();
    for leaf in vmext_kql::eval::leaves_at(view, path) {
        if let Value::String(s) = leaf
            && let Ok(parsed) = vmext_json::parse(s.as_bytes())
        {
            out.push(crate::azure::owned(&parsed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_loads_and_belongs_to_the_seed_rule() {
        let p = Profile::seed_hardened();
        assert_eq!(p.rule_id, crate::Rule::seed().rule_id);
        assert!(!p.changes.is_empty());
        assert!(
            p.case_insensitive_fields
                .contains(&"azure.resource.id".to_owned())
        );
    }

    #[test]
    fn the_view_folds_listed_fields_only_and_derives_the_extension() {
        let p = Profile::seed_hardened();
        let doc = vmext_json::parse(
            br#"{"azure":{"resource":{"id":["/a/extensions/x"]},"activitylogs":{"operation_name":"m/w","properties":{"requestBody":"{\"properties\":{\"publisher\":\"Microsoft.Azure.Extensions\",\"type\":\"CustomScript\"}}"}}},"user":{"name":"alice"}}"#,
        )
        .unwrap();
        let mut view = doc.clone();
        let folded = p.fold(&mut view);
        let text = |view: &Value<'_>, f: &str| {
            vmext_kql::eval::leaves_at(view, f)
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        assert_eq!(text(&view, "azure.resource.id"), ["/A/EXTENSIONS/X"]);
        assert_eq!(text(&view, "azure.activitylogs.operation_name"), ["M/W"]);
        assert_eq!(text(&view, "user.name"), ["alice"]);
        assert_eq!(text(&view, EXTENSION_TYPE_FIELD), ["CUSTOMSCRIPT"]);
        assert_eq!(
            text(&view, EXTENSION_PUBLISHER_FIELD),
            ["MICROSOFT.AZURE.EXTENSIONS"]
        );
        p.unfold(&mut view, folded);
        assert_eq!(view, doc);
        assert!(text(&view, EXTENSION_TYPE_FIELD).is_empty());
    }

    /// Unfolding gives back the record exactly, whatever its structure: values in arrays, under
    /// dotted keys and nested objects at once, already upper-case or not strings at all, a
    /// field listed twice, and a record that spells the derived fields itself.
    #[test]
    fn unfolding_gives_back_the_record() {
        let mut p = Profile::seed_hardened();
        p.case_insensitive_fields
            .push("azure.activitylogs.operation_name".to_owned());
        let docs: [&[u8]; 5] = [
            br#"{"azure":{"activitylogs":{"operation_name":["a/b",{"x":"y"},"C/D",7,["e"]]}},"azure.activitylogs.operation_name":"f","azure.resource":{"id":"/Sub/rg"}}"#,
            br#"{"azure":{"resource":{"id":null}},"event":{"outcome":"success"},"event.outcome":["Failure","SUCCESS"]}"#,
            br#"{"vmext.extension.type":"mine","azure.activitylogs.properties.requestBody":{"properties":{"type":"CustomScript","publisher":"p"}}}"#,
            br#"{"":"x","azure":{"":{"id":"y"},"resource":{"id":"\u0041bc\n"}}}"#,
            br#"[1,2]"#,
        ];
        for text in docs {
            let doc = vmext_json::parse(text).unwrap();
            let mut view = doc.clone();
            let folded = p.fold(&mut view);
            for field in &p.case_insensitive_fields {
                for leaf in vmext_kql::eval::leaves_at(&view, field) {
                    if let Some(s) = leaf.as_str() {
                        assert!(!s.bytes().any(|b| b.is_ascii_lowercase()), "{field}: {s}");
                    }
                }
            }
            p.unfold(&mut view, folded);
            assert_eq!(view, doc, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn a_request_body_object_is_read_too() {
        let doc = vmext_json::parse(
            br#"{"azure.activitylogs.properties.requestbody":{"properties":{"type":"DSC","publisher":"Microsoft.Powershell"}}}"#,
        )
        .unwrap();
        assert_eq!(
            extension_from_request_body(&doc),
            (
                Some("DSC".to_owned()),
                Some("Microsoft.Powershell".to_owned())
            )
        );
        let none = vmext_json::parse(
            br#"{"azure":{"activitylogs":{"properties":{"requestBody":"not json"}}}}"#,
        )
        .unwrap();
        assert_eq!(extension_from_request_body(&none), (None, None));
    }

    #[test]
    fn profile_errors_are_worded() {
        assert_eq!(
            ProfileName::parse("strict").unwrap_err().to_string(),
            "unknown profile `strict`; expected `faithful` or `hardened`"
        );
        let bad = SEED_HARDENED_TOML.replace("profile = \"hardened\"", "profile = \"loose\"");
        assert!(
            Profile::from_toml_with_coverage(&bad, crate::coverage::SEED_COVERAGE_TOML)
                .unwrap_err()
                .to_string()
                .contains("\"loose\"")
        );
        assert!(
            Profile::from_toml(SEED_HARDENED_TOML)
                .unwrap_err()
                .to_string()
                .contains("query")
        );
    }
}
