//! A rule ready to run on records: prefilter, shape handling, evaluation, alerts, explanations.

use std::borrow::Cow;

use vmext_json::Value;
use vmext_kql::ast::{FieldMatch, Node};
use vmext_kql::{Explanation, Presence, Query, Requirement};

use crate::alert::{Alert, AlertTemplate};
use crate::azure::{
    ACTIVITY_LOGS_DATASET, Shape, ecs_presence, ecs_view, envelope_records_mut,
    is_activity_log_category, raw_presence, shape_of,
};
use crate::exceptions::{Exceptions, Suppression};
use crate::profile::{EXTENSION_TYPE_FIELD, Profile, ProfileError, ProfileName};
use crate::rule::{Rule, RuleError};

/// The field whose matching pattern names the extension family in alerts.
pub const FAMILY_FIELD: &str = "azure.resource.id";

/// Why a document could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The text is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(#[from] vmext_json::Error),
    /// The JSON is valid but not an object (a record must be one).
    #[error("the record is not a JSON object")]
    NotAnObject,
    /// An object repeats a key; Elasticsearch rejects such documents.
    #[error("duplicate key `{0}` (Elasticsearch rejects documents with duplicate keys)")]
    DuplicateKey(String),
}

/// The verdict on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule matched.
    Alert(Box<Alert>),
    /// The rule did not match.
    NoMatch,
    /// The rule matched, and an exception item suppressed the alert.
    Suppressed(Suppression),
    /// This record (an element of an envelope) could not be evaluated.
    Invalid(RecordError),
}

/// One record's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The record's position in a `{"records":[…]}` envelope, if it came in one.
    pub envelope_index: Option<usize>,
    /// The shape the record was recognised as (none for an invalid envelope element).
    pub shape: Option<Shape>,
    /// The verdict.
    pub verdict: Verdict,
    /// Clause-by-clause reasons, when asked for.
    pub explanation: Option<Explanation>,
}

impl Evaluation {
    /// `alert`, `none`, `suppressed` or `invalid`.
    pub fn verdict_name(&self) -> &'static str {
        match self.verdict {
            Verdict::Alert(_) => "alert",
            Verdict::NoMatch => "none",
            Verdict::Suppressed(_) => "suppressed",
            Verdict::Invalid(_) => "invalid",
        }
    }

    /// The alert, if the rule matched.
    pub fn alert(&self) -> Option<&Alert> {
        match &self.verdict {
            Verdict::Alert(a) => Some(a),
            _ => None,
        }
    }

    /// The result as one compact JSON object, the form every artefact (native, component,
    /// Fluent Bit, browser) reports so that they can be compared byte for byte:
    /// `{"index":…,"shape":…,"verdict":…,"alert":{…},"exception":{…},"error":…,
    /// "explanation":{…}}`, with absent parts omitted.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        if let Some(i) = self.envelope_index {
            out.push_str(&format!("\"index\":{i},"));
        }
        if let Some(shape) = self.shape {
            out.push_str(&format!("\"shape\":\"{}\",", shape.as_str()));
        }
        out.push_str(&format!("\"verdict\":\"{}\"", self.verdict_name()));
        match &self.verdict {
            Verdict::Alert(alert) => {
                out.push_str(",\"alert\":");
                out.push_str(&alert.json);
            }
            Verdict::Invalid(e) => {
                out.push_str(",\"error\":");
                vmext_json::write_escaped_str(&mut out, &e.to_string());
            }
            Verdict::Suppressed(s) => {
                out.push_str(",\"exception\":{\"item_id\":");
                vmext_json::write_escaped_str(&mut out, &s.item_id);
                if let Some(name) = &s.name {
                    out.push_str(",\"name\":");
                    vmext_json::write_escaped_str(&mut out, name);
                }
                out.push('}');
            }
            Verdict::NoMatch => {}
        }
        if let Some(e) = &self.explanation {
            out.push_str(",\"explanation\":");
            e.write_json(&mut out);
        }
        out.push('}');
        out
    }
}

/// What evaluating one JSON document (a record or an envelope) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The literal prefilter proved that nothing in the text can match; it was not parsed.
    Rejected,
    /// The document was parsed; one evaluation per record.
    Evaluated(Vec<Evaluation>),
}

/// Where a detector's rule comes from, for [`Detector::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource<'t> {
    /// The built-in seed rule.
    Seed,
    /// The text of an Elastic detection-rules TOML file.
    Toml(&'t str),
    /// A bare KQL query, with neutral metadata.
    Query(&'t str),
}

/// Why [`Detector::build`] failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// The rule could not be loaded.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The profile could not be applied.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The exceptions could not be loaded.
    #[error("exceptions: {0}")]
    Exceptions(#[from] crate::exceptions::ExceptionsError),
}

/// A rule compiled for evaluation, in one profile, with its exceptions.
#[derive(Debug, Clone)]
pub struct Detector {
    rule: Rule,
    /// The hardened profile, when the detector runs it.
    hardening: Option<Profile>,
    /// The query evaluated: the rule's, or the hardened profile's with its case folded.
    query: Query,
    prefilter: Requirement,
    template: AlertTemplate,
    family_clauses: Vec<FieldMatch>,
    exceptions: Exceptions,
}

impl Detector {
    /// A detector for a loaded rule, in the faithful profile, without exceptions.
    pub fn new(rule: Rule) -> Detector {
        let query = rule.query.clone();
        Detector::compile(rule, None, query)
    }

    fn compile(rule: Rule, hardening: Option<Profile>, query: Query) -> Detector {
        let root = query.root();
        let prefilter = match &hardening {
            None => Requirement::any_shape(vec![
                Requirement::derive(root, &ecs_presence),
                Requirement::derive(root, &raw_presence),
            ]),
            Some(profile) => {
                // Folded fields are in the text up to ASCII case; derived fields (decoded from
                // a string inside the record) may not be in it at all.
                let adjust = |field: &str, base: Presence| {
                    if field == BODY_KEY_FIELD {
                        Presence::CaseInsensitive
                    } else if field.starts_with("vmext.") {
                        Presence::Opaque
                    } else if base == Presence::Verbatim
                        && profile.case_insensitive_fields.iter().any(|f| f == field)
                    {
                        Presence::CaseInsensitive
                    } else {
                        base
                    }
                };
                let ecs = |f: &str| adjust(f, ecs_presence(f));
                let raw = |f: &str| adjust(f, raw_presence(f));
                let root = &request_body_stands_in(root);
                Requirement::any_shape(vec![
                    Requirement::derive(root, &ecs),
                    Requirement::derive(root, &raw),
                ])
            }
        };
        let template = AlertTemplate::new(&rule);
        let family_clauses = positive_clauses_on(root, &[FAMILY_FIELD, EXTENSION_TYPE_FIELD]);
        Detector {
            rule,
            hardening,
            query,
            prefilter,
            template,
            family_clauses,
            exceptions: Exceptions::none(),
        }
    }

    /// A detector as every artefact builds one: a rule, a profile and, optionally, the text
    /// of an exceptions file.
    ///
    /// The hardened profile of a TOML rule must be the rule's own (only the seed rule ships
    /// one). With a bare query, the hardened profile is the seed rule's with *that* query in
    /// place of the profile's (same metadata, case-insensitive and derived fields): this is how
    /// the playground edits a hardened query.
    pub fn build(
        source: RuleSource<'_>,
        profile: ProfileName,
        exceptions: Option<&str>,
    ) -> Result<Detector, BuildError> {
        let detector = match (source, profile) {
            (RuleSource::Seed, profile) => Detector::seed_in(profile),
            (RuleSource::Toml(text), ProfileName::Faithful) => {
                Detector::from_toml(text).map_err(BuildError::Rule)?
            }
            (RuleSource::Toml(text), ProfileName::Hardened) => Detector::from_toml(text)
                .map_err(BuildError::Rule)?
                .hardened(&Profile::seed_hardened())
                .map_err(BuildError::Profile)?,
            (RuleSource::Query(text), ProfileName::Faithful) => {
                Detector::new(Rule::from_query(text).map_err(BuildError::Rule)?)
            }
            (RuleSource::Query(text), ProfileName::Hardened) => {
                let query =
                    Query::parse(text).map_err(|e| BuildError::Rule(RuleError::QuerySyntax(e)))?;
                let profile = Profile::seed_hardened().with_query(query);
                let folded = profile.folded_query();
                Detector::compile(Rule::seed(), Some(profile), folded)
            }
        };
        Ok(match exceptions {
            None => detector,
            Some(text) => detector
                .with_exceptions(Exceptions::from_json(text).map_err(BuildError::Exceptions)?),
        })
    }

    /// The same rule in its hardened profile. The profile must be the rule's own.
    pub fn hardened(self, profile: &Profile) -> Result<Detector, ProfileError> {
        if profile.rule_id != self.rule.rule_id {
            return Err(ProfileError::OtherRule {
                profile_rule_id: profile.rule_id.clone(),
                rule_id: self.rule.rule_id.clone(),
            });
        }
        let query = profile.folded_query();
        let exceptions = self.exceptions;
        let mut detector = Detector::compile(self.rule, Some(profile.clone()), query);
        detector.exceptions = exceptions;
        Ok(detector)
    }

    /// The same detector with these exceptions (replacing any it had).
    pub fn with_exceptions(mut self, exceptions: Exceptions) -> Detector {
        self.exceptions = exceptions;
        self
    }

    /// The built-in seed rule in a profile: the faithful rule, or its shipped hardened profile.
    pub fn seed_in(profile: ProfileName) -> Detector {
        let detector = Detector::seed();
        match profile {
            ProfileName::Faithful => detector,
            // The shipped profile is the seed rule's (a test checks the ids), so this holds.
            ProfileName::Hardened => match detector.clone().hardened(&Profile::seed_hardened()) {
                Ok(hardened) => hardened,
                Err(_) => detector,
            },
        }
    }

    /// Which profile the detector runs.
    pub fn profile(&self) -> ProfileName {
        if self.hardening.is_some() {
            ProfileName::Hardened
        } else {
            ProfileName::Faithful
        }
    }

    /// The query evaluated, as written (for the hardened profile, the profile's query).
    pub fn query(&self) -> &Query {
        match &self.hardening {
            Some(profile) => &profile.query,
            None => &self.rule.query,
        }
    }

    /// The exception items in force.
    pub fn exceptions(&self) -> &Exceptions {
        &self.exceptions
    }

    /// The clauses whose first matching literal names an alert's extension family: positive
    /// `azure.resource.id:…` clauses (and, in the hardened profile, `vmext.extension.type:…`
    /// ones), in query order. Translations into other languages name families the same way.
    pub fn family_clauses(&self) -> &[FieldMatch] {
        &self.family_clauses
    }

    /// A detector for the built-in seed rule.
    pub fn seed() -> Detector {
        Detector::new(Rule::seed())
    }

    /// A detector for a rule file's text.
    pub fn from_toml(text: &str) -> Result<Detector, RuleError> {
        Rule::from_toml(text).map(Detector::new)
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The literal prefilter derived from the rule.
    pub fn prefilter(&self) -> &Requirement {
        &self.prefilter
    }

    /// Whether the document's text could match; `false` proves it cannot.
    pub fn may_match(&self, text: &[u8]) -> bool {
        self.prefilter.admits(text)
    }

    /// [`Detector::evaluate`] for text that [`vmext_json::validate_escapes`] found valid,
    /// given what it found of the escapes: the prefilter skips its search for escapes when
    /// there are none ([`Requirement::admits_validated`]). For a caller that validates every
    /// record anyway, as the Fluent Bit filter does in annotate mode.
    pub fn evaluate_validated(
        &self,
        text: &[u8],
        escapes: vmext_json::Escapes,
    ) -> Result<Outcome, RecordError> {
        if !self.prefilter.admits_validated(text, escapes) {
            return Ok(Outcome::Rejected);
        }
        self.evaluate_parsed(text, false).map(Outcome::Evaluated)
    }

    /// Evaluates one JSON document: a record in either shape, or an envelope of records.
    ///
    /// Text the prefilter rejects is not parsed, so it is not validated either: like `grep`,
    /// the filter passes on what cannot match without judging it.
    pub fn evaluate(&self, text: &[u8]) -> Result<Outcome, RecordError> {
        if !self.may_match(text) {
            return Ok(Outcome::Rejected);
        }
        self.evaluate_parsed(text, false).map(Outcome::Evaluated)
    }

    /// Evaluates without the prefilter and explains every verdict.
    pub fn explain(&self, text: &[u8]) -> Result<Vec<Evaluation>, RecordError> {
        self.evaluate_parsed(text, true)
    }

    /// What every adapter does with one document: with `explain`, [`Detector::explain`] (every
    /// record evaluated and explained, never rejected); without, [`Detector::evaluate`].
    pub fn run(&self, text: &[u8], explain: bool) -> Result<Outcome, RecordError> {
        if explain {
            self.explain(text).map(Outcome::Evaluated)
        } else {
            self.evaluate(text)
        }
    }

    /// Evaluates members of a `{"records":[…]}` envelope that a host split apart (see
    /// [`crate::documents::envelope_members`]), numbering them from `first_index`: each gives
    /// the evaluation it would have in the whole envelope, so a host can hand a large envelope
    /// over in bounded pieces. Every member is evaluated (a whole envelope is prefiltered as
    /// one text; its parts are not).
    pub fn evaluate_members(
        &self,
        members: &[&[u8]],
        first_index: usize,
        explain: bool,
    ) -> Vec<Evaluation> {
        members
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let index = first_index + i;
                match vmext_json::parse(text) {
                    Ok(mut record) => self.evaluate_record(&mut record, Some(index), explain),
                    Err(e) => Evaluation {
                        envelope_index: Some(index),
                        shape: None,
                        verdict: Verdict::Invalid(RecordError::InvalidJson(e)),
                        explanation: None,
                    },
                }
            })
            .collect()
    }

    fn evaluate_parsed(&self, text: &[u8], explain: bool) -> Result<Vec<Evaluation>, RecordError> {
        let mut doc = vmext_json::parse(text).map_err(RecordError::InvalidJson)?;
        if doc.as_object().is_none() {
            return Err(RecordError::NotAnObject);
        }
        if let Some(records) = envelope_records_mut(&mut doc) {
            return Ok(records
                .iter_mut()
                .enumerate()
                .map(|(i, record)| self.evaluate_record(record, Some(i), explain))
                .collect());
        }
        if let Some(key) = duplicate_key(&doc) {
            return Err(RecordError::DuplicateKey(key));
        }
        Ok(vec![self.evaluate_record(&mut doc, None, explain)])
    }

    /// Evaluates one record. An ECS record is completed in place with its inferred dataset; a
    /// raw record is evaluated through its ECS view.
    fn evaluate_record(
        &self,
        record: &mut Value<'_>,
        index: Option<usize>,
        explain: bool,
    ) -> Evaluation {
        let invalid = |error| Evaluation {
            envelope_index: index,
            shape: None,
            verdict: Verdict::Invalid(error),
            explanation: None,
        };
        if record.as_object().is_none() {
            return invalid(RecordError::NotAnObject);
        }
        if index.is_some()
            && let Some(key) = duplicate_key(record)
        {
            return invalid(RecordError::DuplicateKey(key));
        }
        let shape = shape_of(record);
        let raw_view;
        let (view, (matched, family, explanation)): (&Value<'_>, _) = match shape {
            Shape::Ecs => {
                infer_dataset(record);
                let judged = self.judge(record, explain);
                (record, judged)
            }
            Shape::AzureRaw => {
                let mut view = ecs_view(record);
                if is_activity_log_category(record) {
                    push_dataset(&mut view);
                }
                let judged = self.judge(&mut view, explain);
                raw_view = view;
                (&raw_view, judged)
            }
        };
        let verdict = if !matched {
            Verdict::NoMatch
        } else if let Some(suppression) = self.suppression(view) {
            Verdict::Suppressed(suppression)
        } else {
            let hardening = self.hardening.as_ref().map(|_| crate::alert::Hardening {
                faithful_match: self.rule.query.matches(view),
            });
            Verdict::Alert(Box::new(
                self.template
                    .alert(&self.rule, view, shape, index, family, hardening),
            ))
        };
        Evaluation {
            envelope_index: index,
            shape: Some(shape),
            verdict,
            explanation,
        }
    }

    /// Whether the query matches the record's view, the extension family it matched and, if
    /// asked, the explanation: on the hardened profile's folded view, which is unfolded again
    /// before this returns (exceptions, the faithful rule and the alert read the record's own
    /// values).
    fn judge(
        &self,
        view: &mut Value<'_>,
        explain: bool,
    ) -> (bool, Option<String>, Option<Explanation>) {
        let folded = self.hardening.as_ref().map(|p| (p, p.fold(view)));
        let matched = self.query.matches(view);
        let family = matched.then(|| self.extension_family(view)).flatten();
        let explanation = explain.then(|| self.query.explain(view));
        if let Some((profile, folded)) = folded {
            profile.unfold(view, folded);
        }
        (matched, family, explanation)
    }

    /// The exception item that suppresses an alert on this record, if any. Exceptions see the
    /// record's own values (never the hardened profile's folded ones), as in Elastic.
    fn suppression(&self, view: &Value<'_>) -> Option<Suppression> {
        if self.exceptions.is_empty() {
            return None;
        }
        let timestamp = vmext_kql::eval::leaves_at(view, "@timestamp")
            .first()
            .and_then(|v| v.as_str())
            .and_then(crate::timestamp::normalise);
        self.exceptions.suppression(view, timestamp.as_deref())
    }

    /// The core of the first pattern, in the rule's order, that the resource id (or, in the
    /// hardened profile, the extension type) matched: `*CUSTOMSCRIPTEXTENSION*` gives
    /// `CUSTOMSCRIPTEXTENSION`, `*/DSC/*` and `*/EXTENSIONS/DSC` give `DSC`.
    fn extension_family(&self, view: &Value<'_>) -> Option<String> {
        self.family_clauses.iter().find_map(|clause| {
            vmext_kql::eval::first_matching_literal(clause, view).map(family_name)
        })
    }
}

/// The family a matching literal names: its last non-empty path segment without stars
/// (`*CUSTOMSCRIPTEXTENSION*` gives `CUSTOMSCRIPTEXTENSION`; `*/DSC/*` and `*/EXTENSIONS/DSC`
/// give `DSC`).
pub fn family_name(literal: &vmext_kql::ast::Literal) -> String {
    let core = literal.text().replace('*', "");
    core.rsplit('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// A pseudo-field for the prefilter: the text of the request body's key.
const BODY_KEY_FIELD: &str = "vmext.prefilter.request_body_key";

/// The query the hardened prefilter is derived from: each clause on a field derived from the
/// request body becomes a clause requiring the body's key. A record the engine derives an
/// extension type or publisher from has a request body at
/// `azure.activitylogs.properties.requestBody` (or `requestbody`), so its text holds that key
/// (as a key of its own or the end of a dotted one) in some ASCII case and JSON spelling; the
/// values inside the body may be escaped twice over, so they are not required.
fn request_body_stands_in(root: &Node) -> Node {
    let Ok(stand_in) = Query::parse(&format!("{BODY_KEY_FIELD}:*REQUESTBODY*")) else {
        return root.clone();
    };
    let stand_in = stand_in.root().clone();
    let mut out = root.clone();
    let mut stack = vec![&mut out];
    while let Some(node) = stack.pop() {
        match node {
            Node::And(items) | Node::Or(items) => stack.extend(items.iter_mut()),
            Node::Not(inner) => stack.push(inner),
            Node::Match(m) if m.field.name.starts_with("vmext.extension.") => {
                *node = stand_in.clone();
            }
            _ => {}
        }
    }
    out
}

/// `field:…` clauses on any of `fields` that are not under a `not`, in query order.
fn positive_clauses_on(root: &Node, fields: &[&str]) -> Vec<FieldMatch> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match node {
            Node::And(items) | Node::Or(items) => stack.extend(items.iter().rev()),
            Node::Match(m)
                if m.field.pattern.is_none() && fields.contains(&m.field.name.as_str()) =>
            {
                out.push(m.clone())
            }
            _ => {}
        }
    }
    out
}

/// `data_stream.dataset` is a `constant_keyword`: Elastic takes it from the data stream, not
/// the document. An ECS document that lacks it (or has only `null`) is taken to be an activity
/// log when it has fields under `azure.activitylogs`. A dataset that is present but of another
/// value or type (a number, an object) is not replaced: Elastic would not file such a document
/// in the activity-logs stream.
fn infer_dataset(record: &mut Value<'_>) {
    let has_dataset = vmext_kql::eval::field_exists(record, "data_stream.dataset");
    if !has_dataset && vmext_kql::eval::field_exists(record, "azure.activitylogs") {
        push_dataset(record);
    }
}

fn push_dataset(view: &mut Value<'_>) {
    if let Value::Object(members) = view {
        members.push((
            Cow::Borrowed("data_stream.dataset"),
            Value::String(Cow::Borrowed(ACTIVITY_LOGS_DATASET)),
        ));
    }
}

/// The first key repeated within one object, anywhere in the document.
fn duplicate_key(doc: &Value<'_>) -> Option<String> {
    doc.repeated_key().map(|r| r.key)
}
