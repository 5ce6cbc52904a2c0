//! Detection rules in the TOML format of Elastic's detection-rules repository.
//!
//! Only `type = "query"` rules in `language = "kuery"` are evaluated; anything else is a clear
//! [`RuleError`], never a rule that silently matches nothing.

use serde::Deserialize;
use vmext_kql::{Query, SyntaxError};

/// The project's seed rule, *Azure VM Extension Deployment by User*, as shipped in `rules/`.
pub const SEED_RULE_TOML: &str =
    include_str!("../../../rules/azure_vm_extension_deployment_by_user.toml");

/// A loaded rule: its query and the metadata an alert carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `rule_id`, stable across versions of the rule.
    pub rule_id: String,
    /// Human-readable name.
    pub name: String,
    /// What the rule detects.
    pub description: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// 0–100.
    pub risk_score: u8,
    /// The rule's authors.
    pub author: Vec<String>,
    /// The rule's license.
    pub license: String,
    /// Reference URLs.
    pub references: Vec<String>,
    /// Tags such as `Tactic: Persistence`.
    pub tags: Vec<String>,
    /// Index patterns the rule reads in Elastic.
    pub index: Vec<String>,
    /// `[metadata].integration`: the integrations whose data the rule reads.
    pub integrations: Vec<String>,
    /// MITRE ATT&CK mappings.
    pub threat: Vec<Threat>,
    /// Fields an analyst should look at first; copied into alerts.
    pub investigation_fields: Vec<String>,
    /// The parsed query.
    pub query: Query,
}

/// One `[[rule.threat]]` entry: a tactic and the techniques under it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Threat {
    /// `MITRE ATT&CK`.
    pub framework: String,
    /// The tactic.
    pub tactic: MitreRef,
    /// Techniques, each with its sub-techniques.
    #[serde(default, rename = "technique")]
    pub techniques: Vec<Technique>,
}

/// A technique and its sub-techniques.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Technique {
    /// e.g. `T1578`.
    pub id: String,
    /// e.g. `Modify Cloud Compute Infrastructure`.
    pub name: String,
    /// The ATT&CK page.
    pub reference: String,
    /// e.g. `T1578.002`.
    #[serde(default, rename = "subtechnique")]
    pub subtechniques: Vec<MitreRef>,
}

/// An ATT&CK identifier with its name and page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MitreRef {
    /// e.g. `TA0003`.
    pub id: String,
    /// e.g. `Persistence`.
    pub name: String,
    /// The ATT&CK page.
    pub reference: String,
}

/// Why a rule file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The text is not valid TOML or lacks a required key.
    #[error("invalid rule file: {0}")]
    Toml(String),
    /// `type` is not `query` (EQL, ES|QL, threshold, machine learning… are not evaluated).
    #[error("unsupported rule type `{0}`: only `query` rules (KQL) can be evaluated")]
    UnsupportedType(String),
    /// `language` is not `kuery`.
    #[error("unsupported query language `{0}`: only `kuery` (KQL) can be evaluated")]
    UnsupportedLanguage(String),
    /// The query does not parse.
    #[error("query syntax error: {0}")]
    QuerySyntax(#[from] SyntaxError),
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    metadata: Metadata,
    rule: RawRule,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    integration: Vec<String>,
}

#[derive(Deserialize)]
struct RawRule {
    rule_id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "type")]
    rule_type: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default)]
    risk_score: u8,
    #[serde(default)]
    author: Vec<String>,
    #[serde(default)]
    license: String,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    index: Vec<String>,
    #[serde(default)]
    threat: Vec<Threat>,
    #[serde(default)]
    investigation_fields: Option<InvestigationFields>,
}

/// Both forms Elastic has used: a table with `field_names`, or a plain list.
#[derive(Deserialize)]
#[serde(untagged)]
enum InvestigationFields {
    Table { field_names: Vec<String> },
    List(Vec<String>),
}

fn default_severity() -> String {
    "low".to_owned()
}

impl Rule {
    /// Loads a rule from the text of a detection-rules TOML file.
    pub fn from_toml(text: &str) -> Result<Rule, RuleError> {
        let file: File = toml::from_str(text).map_err(|e| RuleError::Toml(e.to_string()))?;
        let raw = file.rule;
        if raw.rule_type != "query" {
            return Err(RuleError::UnsupportedType(raw.rule_type));
        }
        let language = raw.language.unwrap_or_else(|| "kuery".to_owned());
        if language != "kuery" {
            return Err(RuleError::UnsupportedLanguage(language));
        }
        let source = raw
            .query
            .ok_or_else(|| RuleError::Toml("missing `query` in [rule]".to_owned()))?;
        let query = Query::parse(&source).map_err(RuleError::QuerySyntax)?;
        Ok(Rule {
            rule_id: raw.rule_id,
            name: raw.name,
            description: raw.description.trim().to_owned(),
            severity: raw.severity,
            risk_score: raw.risk_score.min(100),
            author: raw.author,
            license: raw.license,
            references: raw.references,
            tags: raw.tags,
            index: raw.index,
            integrations: file.metadata.integration,
            threat: raw.threat,
            investigation_fields: match raw.investigation_fields {
                Some(InvestigationFields::Table { field_names }) => field_names,
                Some(InvestigationFields::List(list)) => list,
                None => Vec::new(),
            },
            query,
        })
    }

    /// A rule made from a bare KQL query (for the playground and ad-hoc scans), with neutral
    /// metadata.
    pub fn from_query(query: &str) -> Result<Rule, RuleError> {
        Ok(Rule {
            rule_id: "ad-hoc-query".to_owned(),
            name: "Ad-hoc KQL query".to_owned(),
            description: String::new(),
            severity: "low".to_owned(),
            risk_score: 21,
            author: Vec::new(),
            license: String::new(),
            references: Vec::new(),
            tags: Vec::new(),
            index: Vec::new(),
            integrations: Vec::new(),
            threat: Vec::new(),
            investigation_fields: Vec::new(),
            query: Query::parse(query).map_err(RuleError::QuerySyntax)?,
        })
    }

    /// The seed rule.
    #[allow(clippy::expect_used)]
    pub fn seed() -> Rule {
        // The seed file is compiled into this crate and loaded by a unit test, so this cannot
        // fail at run time; it does not depend on any input.
        Rule::from_toml(SEED_RULE_TOML).expect("the built-in seed rule loads")
    }

    /// The members every alert of this rule carries whatever the record (`event.kind`,
    /// severity, risk score, `rule.*`, `threat.*`, `kibana.*`), as one compact JSON object.
    /// Alerts add the record's timestamp, investigation fields and `vmext.*` to these.
    pub fn alert_template_json(&self) -> String {
        crate::alert::AlertTemplate::new(self).json()
    }

    /// The numeric severity ECS alerts carry, from Elastic's default mapping of the name.
    pub fn severity_number(&self) -> u8 {
        match self.severity.as_str() {
            "critical" => 99,
            "high" => 73,
            "medium" => 47,
            _ => 21,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_rule_loads_with_all_metadata() {
        let rule = Rule::from_toml(SEED_RULE_TOML).unwrap();
        assert_eq!(rule.rule_id, "e842d39d-ead1-48c6-97f1-6b055476c2f3");
        assert_eq!(rule.severity, "medium");
        assert_eq!(rule.risk_score, 47);
        assert_eq!(rule.threat.len(), 3);
        assert_eq!(
            rule.threat[2].techniques[0].subtechniques[0].id,
            "T1578.002"
        );
        assert_eq!(rule.investigation_fields.len(), 13);
        assert_eq!(rule.integrations, vec!["azure"]);
        assert_eq!(Rule::seed(), rule);
    }

    #[test]
    fn alert_template_holds_the_rule_only_members() {
        let json = Rule::seed().alert_template_json();
        let template = vmext_json::parse(json.as_bytes()).unwrap();
        let text = |path: &str| {
            vmext_kql::eval::leaves_at(&template, path)
                .first()
                .and_then(|v| vmext_kql::eval::leaf_text(v))
                .map(|t| t.into_owned())
        };
        assert_eq!(text("event.kind").as_deref(), Some("alert"));
        assert_eq!(
            text("rule.id").as_deref(),
            Some("e842d39d-ead1-48c6-97f1-6b055476c2f3")
        );
        assert_eq!(text("kibana.alert.risk_score").as_deref(), Some("47"));
        assert_eq!(text("@timestamp"), None);
        assert_eq!(text("vmext.record_shape"), None);
    }

    #[test]
    fn other_rule_types_and_languages_are_refused() {
        let eql = SEED_RULE_TOML.replace("type = \"query\"", "type = \"eql\"");
        assert_eq!(
            Rule::from_toml(&eql).unwrap_err(),
            RuleError::UnsupportedType("eql".into())
        );
        let lucene = SEED_RULE_TOML.replace("language = \"kuery\"", "language = \"lucene\"");
        assert!(matches!(
            Rule::from_toml(&lucene),
            Err(RuleError::UnsupportedLanguage(l)) if l == "lucene"
        ));
        let broken = SEED_RULE_TOML.replace("event.outcome:(success", "event.outcome:((success");
        let err = Rule::from_toml(&broken).unwrap_err();
        assert!(err.to_string().starts_with("query syntax error"), "{err}");
        assert!(matches!(
            Rule::from_toml("not toml ["),
            Err(RuleError::Toml(_))
        ));
    }

    /// A rule file must say one thing: a key, a table or an array element defined twice is a
    /// TOML error (the `toml` crate follows the specification here), reported with its place.
    #[test]
    fn repeated_keys_and_tables_are_refused() {
        let err = |text: &str| match Rule::from_toml(text) {
            Err(RuleError::Toml(m)) => m,
            other => panic!("expected a TOML error, got {other:?}"),
        };
        // The same key twice in [rule]: the second `type` would otherwise change the verdict.
        let twice = SEED_RULE_TOML.replace("type = \"query\"", "type = \"query\"\ntype = \"eql\"");
        let m = err(&twice);
        assert!(m.contains("duplicate key"), "{m}");
        assert!(m.contains("type"), "{m}");
        assert!(m.contains("line "), "{m}");
        // The same table twice.
        let m = err(&format!(
            "{SEED_RULE_TOML}\n[metadata]\nintegration = [\"other\"]\n"
        ));
        assert!(
            m.contains("duplicate key") || m.contains("duplicate"),
            "{m}"
        );
        assert!(m.contains("metadata"), "{m}");
        // A key both dotted and as a table.
        let m = err("[rule]\nrule_id = \"a\"\nrule_id = \"b\"\nname = \"n\"\ntype = \"query\"\n");
        assert!(m.contains("rule_id"), "{m}");
        let m = err("rule.name = \"a\"\n[rule]\nname = \"b\"\n");
        assert!(m.contains("duplicate") || m.contains("rule"), "{m}");
    }
}
