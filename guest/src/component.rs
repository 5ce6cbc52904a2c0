//! The component adapter: `vmext:detect/detector` (wit/detector.wit) over the engine.

use vmext_engine::{
    BuildError, Detector, Evaluation, Explanation, Outcome, ProfileName, RecordError, Rule,
    RuleError, RuleSource, Shape, Term, Verdict,
};

wit_bindgen::generate!({
    path: "../wit",
    world: "filter",
});

use exports::vmext::detect::detector as api;

struct Component;

impl api::Guest for Component {
    type Detector = DetectorResource;
}

/// The resource behind `detector`.
struct DetectorResource {
    detector: Detector,
}

impl api::GuestDetector for DetectorResource {
    fn seed() -> api::Detector {
        api::Detector::new(DetectorResource {
            detector: Detector::seed(),
        })
    }

    fn from_toml(toml: String) -> Result<api::Detector, api::Error> {
        build(RuleSource::Toml(&toml), ProfileName::Faithful, None)
    }

    fn from_query(kql: String) -> Result<api::Detector, api::Error> {
        build(RuleSource::Query(&kql), ProfileName::Faithful, None)
    }

    fn configure(
        rule: api::RuleSource,
        profile: api::Profile,
        exceptions: Option<String>,
    ) -> Result<api::Detector, api::Error> {
        let source = match &rule {
            api::RuleSource::Seed => RuleSource::Seed,
            api::RuleSource::Toml(text) => RuleSource::Toml(text),
            api::RuleSource::Query(text) => RuleSource::Query(text),
        };
        let profile = match profile {
            api::Profile::Faithful => ProfileName::Faithful,
            api::Profile::Hardened => ProfileName::Hardened,
        };
        build(source, profile, exceptions.as_deref())
    }

    fn rule(&self) -> api::RuleInfo {
        rule_info(&self.detector)
    }

    fn evaluate(&self, document: Vec<u8>, explain: bool) -> api::DocumentResult {
        evaluate(&self.detector, &document, explain)
    }

    fn evaluate_batch(&self, documents: Vec<Vec<u8>>, explain: bool) -> Vec<api::DocumentResult> {
        documents
            .iter()
            .map(|d| evaluate(&self.detector, d, explain))
            .collect()
    }

    fn evaluate_chunk(
        &self,
        chunk: Vec<u8>,
        ends: Vec<u32>,
        explain: bool,
    ) -> Vec<api::DocumentResult> {
        let mut start = 0;
        ends.iter()
            .map(|end| {
                let end = usize::try_from(*end).unwrap_or(usize::MAX).min(chunk.len());
                let document = chunk.get(start.min(end)..end).unwrap_or_default();
                start = end;
                evaluate(&self.detector, document, explain)
            })
            .collect()
    }

    fn prefilter(&self) -> Vec<api::PrefilterTerm> {
        crate::test_hooks::apply(self.detector.query().source().as_bytes());
        self.detector
            .prefilter()
            .terms()
            .into_iter()
            .map(|term| match term {
                Term::Anything => api::PrefilterTerm::Anything,
                Term::Nothing => api::PrefilterTerm::Nothing,
                Term::Contains {
                    literal,
                    case_insensitive,
                } => api::PrefilterTerm::Contains(api::Needle {
                    literal,
                    case_insensitive,
                }),
                Term::All(n) => api::PrefilterTerm::All(n),
                Term::AnyOf(n) => api::PrefilterTerm::AnyOf(n),
            })
            .collect()
    }

    fn evaluate_members(
        &self,
        members: Vec<Vec<u8>>,
        first_index: u32,
        explain: bool,
    ) -> Vec<api::RecordResult> {
        for member in &members {
            crate::test_hooks::apply(member);
        }
        let members: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        let first = usize::try_from(first_index).unwrap_or(usize::MAX);
        self.detector
            .evaluate_members(&members, first, explain)
            .iter()
            .map(|e| record_result(e, self.detector.rule()))
            .collect()
    }
}

export!(Component);

/// Every constructor: the engine's one way of building a detector, errors as WIT values.
fn build(
    source: RuleSource<'_>,
    profile: ProfileName,
    exceptions: Option<&str>,
) -> Result<api::Detector, api::Error> {
    let detector = Detector::build(source, profile, exceptions).map_err(|e| match e {
        BuildError::Rule(e) => rule_error(e),
        BuildError::Profile(e) => api::Error::InvalidProfile(e.to_string()),
        BuildError::Exceptions(e) => api::Error::InvalidExceptions(e.to_string()),
    })?;
    Ok(api::Detector::new(DetectorResource { detector }))
}

fn evaluate(detector: &Detector, document: &[u8], explain: bool) -> api::DocumentResult {
    crate::test_hooks::apply(document);
    match detector.run(document, explain) {
        Ok(Outcome::Rejected) => api::DocumentResult::Rejected,
        Ok(Outcome::Evaluated(list)) => api::DocumentResult::Records(
            list.iter()
                .map(|e| record_result(e, detector.rule()))
                .collect(),
        ),
        Err(e) => api::DocumentResult::Failed(failure(&e)),
    }
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn failure(e: &RecordError) -> api::Failure {
    let error = match e {
        RecordError::InvalidJson(j) => api::Error::InvalidJson(api::LocatedError {
            offset: offset(j.offset),
            message: j.message(),
        }),
        RecordError::NotAnObject => api::Error::NotAnObject,
        RecordError::DuplicateKey(k) => api::Error::DuplicateKey(k.clone()),
    };
    api::Failure {
        error,
        message: e.to_string(),
    }
}

fn rule_error(e: RuleError) -> api::Error {
    match e {
        RuleError::Toml(m) => api::Error::InvalidRule(m),
        RuleError::UnsupportedType(t) => api::Error::UnsupportedRuleType(t),
        RuleError::UnsupportedLanguage(l) => api::Error::UnsupportedLanguage(l),
        RuleError::QuerySyntax(s) => api::Error::QuerySyntax(api::LocatedError {
            offset: offset(s.offset),
            message: s.message,
        }),
    }
}

fn record_result(e: &Evaluation, rule: &Rule) -> api::RecordResult {
    api::RecordResult {
        envelope_index: e.envelope_index.map(offset),
        shape: e.shape.map(|s| match s {
            Shape::Ecs => api::RecordShape::Ecs,
            Shape::AzureRaw => api::RecordShape::AzureRaw,
        }),
        verdict: match &e.verdict {
            Verdict::Alert(alert) => api::Verdict::Alert(api::Alert {
                rule_id: rule.rule_id.clone(),
                rule_name: rule.name.clone(),
                severity: rule.severity.clone(),
                risk_score: rule.risk_score,
                tactics: rule
                    .threat
                    .iter()
                    .map(|t| format!("{} {}", t.tactic.id, t.tactic.name))
                    .collect(),
                techniques: rule
                    .threat
                    .iter()
                    .flat_map(|t| &t.techniques)
                    .flat_map(|t| {
                        std::iter::once(format!("{} {}", t.id, t.name)).chain(
                            t.subtechniques
                                .iter()
                                .map(|s| format!("{} {}", s.id, s.name)),
                        )
                    })
                    .collect(),
                timestamp: alert.timestamp.clone(),
                investigation_fields: alert
                    .investigation_fields
                    .iter()
                    .map(|(name, values)| api::FieldValues {
                        name: name.clone(),
                        values: values.clone(),
                    })
                    .collect(),
                extension_family: alert.extension_family.clone(),
                ecs_json: alert.json.clone(),
            }),
            Verdict::NoMatch => api::Verdict::NoMatch,
            Verdict::Suppressed(s) => api::Verdict::Suppressed(api::Suppression {
                item_id: s.item_id.clone(),
                name: s.name.clone(),
            }),
            Verdict::Invalid(err) => api::Verdict::Invalid(failure(err)),
        },
        explanation: e.explanation.as_ref().map(flatten),
        result_json: e.to_json(),
    }
}

/// The explanation tree in depth-first order, each clause with its depth.
fn flatten(root: &Explanation) -> Vec<api::Clause> {
    let mut out = Vec::new();
    let mut stack = vec![(root, 0u32)];
    while let Some((e, depth)) = stack.pop() {
        out.push(api::Clause {
            depth,
            text: e.clause.clone(),
            held: e.held,
            field: e.field.clone(),
            seen: e.seen.clone(),
        });
        stack.extend(e.children.iter().rev().map(|c| (c, depth + 1)));
    }
    out
}

fn mitre(r: &vmext_engine::rule::MitreRef) -> api::MitreRef {
    api::MitreRef {
        id: r.id.clone(),
        name: r.name.clone(),
        reference: r.reference.clone(),
    }
}

fn rule_info(detector: &Detector) -> api::RuleInfo {
    let rule = detector.rule();
    let query = detector.query();
    api::RuleInfo {
        rule_id: rule.rule_id.clone(),
        name: rule.name.clone(),
        description: rule.description.clone(),
        severity: rule.severity.clone(),
        severity_number: rule.severity_number(),
        risk_score: rule.risk_score,
        author: rule.author.clone(),
        license: rule.license.clone(),
        references: rule.references.clone(),
        tags: rule.tags.clone(),
        threat: rule
            .threat
            .iter()
            .map(|t| api::Threat {
                framework: t.framework.clone(),
                tactic: mitre(&t.tactic),
                techniques: t
                    .techniques
                    .iter()
                    .map(|tech| api::Technique {
                        technique: api::MitreRef {
                            id: tech.id.clone(),
                            name: tech.name.clone(),
                            reference: tech.reference.clone(),
                        },
                        subtechniques: tech.subtechniques.iter().map(mitre).collect(),
                    })
                    .collect(),
            })
            .collect(),
        investigation_fields: rule.investigation_fields.clone(),
        query: query.source().to_owned(),
        profile: match detector.profile() {
            ProfileName::Faithful => api::Profile::Faithful,
            ProfileName::Hardened => api::Profile::Hardened,
        },
        exception_items: u32::try_from(detector.exceptions().items().len()).unwrap_or(u32::MAX),
        warnings: query
            .warnings()
            .iter()
            .map(|w| format!("{}: {}", w.span.start, w.message))
            .collect(),
    }
}
