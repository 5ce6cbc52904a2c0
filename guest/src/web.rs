//! The browser adapter (wasm-bindgen, `wasm32-unknown-unknown`, feature `web`).
//!
//! A small typed API for the rule playground: a `Detector` made from the built-in rule, a
//! rule's TOML text or a bare KQL query (in either profile, with or without exception items),
//! and `evaluateText`, which frames pasted text into JSON documents by the engine's framing
//! rule (the command line's: NDJSON lines, multi-line envelopes, a broken document costing only
//! itself) and returns one plain object per record; large envelopes are evaluated in pieces.
//! Results are built as JSON by the engine and handed to JavaScript through `JSON.parse`, so
//! the page sees exactly the engine's canonical result (`resultJson`) plus a few conveniences.

use vmext_engine::documents::{
    DEFAULT_MAX_DOCUMENT_BYTES, ENVELOPE_SPLIT_BYTES, Frame, MEMBERS_PER_PIECE, envelope_members,
    envelope_pieces, frame_text,
};
use vmext_engine::{BuildError, Evaluation, Explanation, ProfileName, RuleError, RuleSource};
use wasm_bindgen::prelude::*;

use crate::web_api::{Profile, RuleFailure, RuleFailureKind, RuleInfo};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = JSON, js_name = parse)]
    fn json_parse(text: &str) -> JsValue;
}

/// The fixed-shape objects' declarations, generated from their Rust types (`web_api`).
#[wasm_bindgen(typescript_custom_section)]
const API_TYPES: &str = crate::web_api::DECLARATIONS;

/// The per-record results: the engine's canonical result objects, with a few conveniences.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A clause of the explanation: whether it held, and the values it saw. */
export interface Explanation {
  clause: string;
  held: boolean;
  field?: string;
  seen?: string[];
  children?: Explanation[];
}

/** One record's result. */
export interface RecordResult {
  /** 1-based line where the record's document starts in the text. */
  line: number;
  /** Position in a {"records":[…]} envelope. */
  index?: number;
  shape?: "ecs" | "azure-raw";
  verdict: "alert" | "none" | "suppressed" | "invalid";
  /** The exception item that suppressed the alert. */
  exception?: { item_id: string; name?: string };
  /** The ECS alert, when the rule matched. */
  alert?: Record<string, unknown>;
  /** Why the record could not be evaluated. */
  error?: string;
  explanation?: Explanation;
  /** The matched extension family, for alerts. */
  family?: string;
  /** The principal type the record carries, when the rule tests one. */
  principal?: string;
  /** The engine's canonical result object, identical in every artefact of the project. */
  resultJson: string;
}

/** What one document gave: rejected by the prefilter, one result per record, or a failure. */
export type DocumentResult =
  | { rejected: true }
  | { records: Record<string, unknown>[] }
  | { failed: string };

"#;

/// A compiled rule.
#[wasm_bindgen]
pub struct Detector {
    inner: vmext_engine::Detector,
}

fn to_js(value: &impl serde::Serialize) -> JsValue {
    match serde_json::to_string(value) {
        Ok(json) => json_parse(&json),
        // The API's own types always serialise; say so rather than hand back nothing.
        Err(e) => JsValue::from_str(&format!("cannot serialise the result: {e}")),
    }
}

fn build_failure(e: &BuildError) -> JsValue {
    let kind = match e {
        BuildError::Rule(rule) => return rule_failure(rule),
        BuildError::Profile(_) => RuleFailureKind::InvalidProfile,
        BuildError::Exceptions(_) => RuleFailureKind::InvalidExceptions,
    };
    to_js(&RuleFailure {
        kind,
        message: e.to_string(),
        offset: None,
    })
}

fn rule_failure(e: &RuleError) -> JsValue {
    let (kind, offset) = match e {
        RuleError::Toml(_) => (RuleFailureKind::InvalidRule, None),
        RuleError::UnsupportedType(_) => (RuleFailureKind::UnsupportedRuleType, None),
        RuleError::UnsupportedLanguage(_) => (RuleFailureKind::UnsupportedLanguage, None),
        RuleError::QuerySyntax(s) => (
            RuleFailureKind::QuerySyntax,
            Some(u32::try_from(s.offset).unwrap_or(u32::MAX)),
        ),
    };
    let message = match e {
        RuleError::QuerySyntax(s) => s.message.clone(),
        other => other.to_string(),
    };
    to_js(&RuleFailure {
        kind,
        message,
        offset,
    })
}

/// The first value seen by a clause on a field ending in `principal_type`.
fn principal_of(e: &Explanation) -> Option<String> {
    let mut stack = vec![e];
    while let Some(node) = stack.pop() {
        if node
            .field
            .as_deref()
            .is_some_and(|f| f.ends_with("principal_type"))
        {
            return node.seen.first().cloned();
        }
        stack.extend(node.children.iter().rev());
    }
    None
}

fn record_json(out: &mut String, line: usize, e: &Evaluation) {
    let canonical = e.to_json();
    // The canonical object, with `line`, `family`, `principal` and `resultJson` added.
    out.push_str(&format!("{{\"line\":{line},"));
    out.push_str(canonical.get(1..canonical.len() - 1).unwrap_or_default());
    if let Some(family) = e.alert().and_then(|a| a.extension_family.as_ref()) {
        out.push_str(",\"family\":");
        vmext_json::write_escaped_str(out, family);
    }
    if let Some(principal) = e.explanation.as_ref().and_then(principal_of) {
        out.push_str(",\"principal\":");
        vmext_json::write_escaped_str(out, &principal);
    }
    out.push_str(",\"resultJson\":");
    vmext_json::write_escaped_str(out, &canonical);
    out.push('}');
}

#[wasm_bindgen]
impl Detector {
    /// The built-in rule, Elastic's "Azure VM Extension Deployment by User".
    pub fn seed() -> Detector {
        Detector {
            inner: vmext_engine::Detector::seed(),
        }
    }

    /// A rule from the text of an Elastic detection-rules TOML file; throws a `RuleFailure`.
    #[wasm_bindgen(js_name = fromToml)]
    pub fn from_toml(toml: &str) -> Result<Detector, JsValue> {
        Detector::configure("toml", toml, "faithful", None)
    }

    /// A rule made of a bare KQL query; throws a `RuleFailure`.
    #[wasm_bindgen(js_name = fromQuery)]
    pub fn from_query(kql: &str) -> Result<Detector, JsValue> {
        Detector::configure("query", kql, "faithful", None)
    }

    /// A rule (`source`: `seed`, `toml` or `query`, with its `text`) in a profile
    /// (`faithful` or `hardened`), with the text of an Elastic exception list or none;
    /// throws a `RuleFailure`.
    pub fn configure(
        source: &str,
        text: &str,
        profile: &str,
        exceptions: Option<String>,
    ) -> Result<Detector, JsValue> {
        let source = match source {
            "seed" => RuleSource::Seed,
            "toml" => RuleSource::Toml(text),
            "query" => RuleSource::Query(text),
            other => {
                return Err(rule_failure(&RuleError::Toml(format!(
                    "unknown rule source `{other}`; expected seed, toml or query"
                ))));
            }
        };
        let profile =
            ProfileName::parse(profile).map_err(|e| build_failure(&BuildError::Profile(e)))?;
        vmext_engine::Detector::build(source, profile, exceptions.as_deref())
            .map(|inner| Detector { inner })
            .map_err(|e| build_failure(&e))
    }

    /// The rule this detector runs.
    #[wasm_bindgen(unchecked_return_type = "RuleInfo")]
    pub fn rule(&self) -> JsValue {
        let rule = self.inner.rule();
        let query = self.inner.query();
        to_js(&RuleInfo {
            rule_id: rule.rule_id.clone(),
            name: rule.name.clone(),
            description: rule.description.clone(),
            severity: rule.severity.clone(),
            risk_score: rule.risk_score,
            query: query.source().to_owned(),
            profile: match self.inner.profile() {
                ProfileName::Faithful => Profile::Faithful,
                ProfileName::Hardened => Profile::Hardened,
            },
            exception_items: u32::try_from(self.inner.exceptions().items().len())
                .unwrap_or(u32::MAX),
            tactics: rule
                .threat
                .iter()
                .map(|t| format!("{} {}", t.tactic.id, t.tactic.name))
                .collect(),
            techniques: rule
                .threat
                .iter()
                .flat_map(|t| &t.techniques)
                .map(|t| format!("{} {}", t.id, t.name))
                .collect(),
            warnings: query
                .warnings()
                .iter()
                .map(|w| format!("{}: {}", w.span.start, w.message))
                .collect(),
        })
    }

    /// Evaluates exactly one JSON document given as bytes (which need not be UTF-8), as the
    /// component and the Fluent Bit module do: `{rejected: true}`, `{records: [resultJson…]}`
    /// with the canonical result objects, or `{failed: message}`.
    #[wasm_bindgen(js_name = evaluateDocument, unchecked_return_type = "DocumentResult")]
    pub fn evaluate_document(&self, document: &[u8], explain: bool) -> JsValue {
        let evaluations = match self.inner.run(document, explain) {
            Ok(vmext_engine::Outcome::Rejected) => return json_parse("{\"rejected\":true}"),
            Ok(vmext_engine::Outcome::Evaluated(list)) => Ok(list),
            Err(e) => Err(e),
        };
        let json = match evaluations {
            Ok(list) => {
                let records: Vec<String> = list.iter().map(Evaluation::to_json).collect();
                format!("{{\"records\":[{}]}}", records.join(","))
            }
            Err(e) => {
                let mut out = String::from("{\"failed\":");
                vmext_json::write_escaped_str(&mut out, &e.to_string());
                out.push('}');
                out
            }
        };
        json_parse(&json)
    }

    /// Evaluates every JSON document in `text` (NDJSON, or JSON documents spanning lines) and
    /// returns one result per record. With `explain`, every record gets its explanation (and
    /// the prefilter is skipped, so every record is parsed).
    #[wasm_bindgen(js_name = evaluateText, unchecked_return_type = "RecordResult[]")]
    pub fn evaluate_text(&self, text: &str, explain: bool) -> JsValue {
        json_parse(&self.evaluate_text_json(text, explain))
    }
}

impl Detector {
    /// [`Detector::evaluate_text`] as JSON text.
    pub fn evaluate_text_json(&self, text: &str, explain: bool) -> String {
        let mut items: Vec<String> = Vec::new();
        let framed = frame_text(text.as_bytes(), DEFAULT_MAX_DOCUMENT_BYTES, &mut |frame| {
            match frame {
                Frame::Document { line, text } => {
                    self.document_items(usize::try_from(line).unwrap_or(usize::MAX), text, explain, &mut items)
                }
                Frame::Invalid { line, reason } => items.push(invalid_item(line, &reason)),
                Frame::Oversized { line, bytes } => items.push(invalid_item(
                    line,
                    &format!(
                        "document of {bytes} bytes or more is over the size cap of {DEFAULT_MAX_DOCUMENT_BYTES} bytes; skipped"
                    ),
                )),
            }
            Ok(())
        });
        debug_assert!(framed.is_ok(), "framing text in memory cannot fail");
        format!("[{}]", items.join(","))
    }

    /// The result items of one framed document: its records, or one invalid item. A large
    /// envelope is evaluated in pieces, as the command line does.
    fn document_items(&self, line: usize, doc: &[u8], explain: bool, items: &mut Vec<String>) {
        if doc.len() > ENVELOPE_SPLIT_BYTES
            && let Some(members) = envelope_members(doc)
        {
            for (first, piece) in envelope_pieces(doc, &members, MEMBERS_PER_PIECE) {
                for e in self.inner.evaluate_members(&piece, first, explain) {
                    let mut item = String::new();
                    record_json(&mut item, line, &e);
                    items.push(item);
                }
            }
            return;
        }
        let evaluations = match self.inner.run(doc, explain) {
            Ok(vmext_engine::Outcome::Rejected) => Ok(Vec::new()),
            Ok(vmext_engine::Outcome::Evaluated(list)) => Ok(list),
            Err(e) => Err(e),
        };
        match evaluations {
            Ok(list) => {
                for e in &list {
                    let mut item = String::new();
                    record_json(&mut item, line, e);
                    items.push(item);
                }
            }
            Err(e) => items.push(invalid_item(line as u64, &e.to_string())),
        }
    }
}

/// The item for a document that could not be evaluated, with its canonical result.
fn invalid_item(line: u64, message: &str) -> String {
    let mut canonical = String::from("{\"verdict\":\"invalid\",\"error\":");
    vmext_json::write_escaped_str(&mut canonical, message);
    canonical.push('}');
    let mut item = format!("{{\"line\":{line},\"verdict\":\"invalid\",\"error\":");
    vmext_json::write_escaped_str(&mut item, message);
    item.push_str(",\"resultJson\":");
    vmext_json::write_escaped_str(&mut item, &canonical);
    item.push('}');
    item
}

/// The seed rule's hardened query, for the playground's editor.
#[wasm_bindgen(js_name = hardenedQuery)]
pub fn hardened_query() -> String {
    vmext_engine::Profile::seed_hardened()
        .query
        .source()
        .to_owned()
}

/// An example exception list (the project's `fixtures/exceptions/known-good-automation.json`),
/// for the playground's exceptions panel.
#[wasm_bindgen(js_name = exampleExceptions)]
pub fn example_exceptions() -> String {
    include_str!("../../fixtures/exceptions/known-good-automation.json").to_owned()
}

/// The built-in rule's TOML text, for the playground's editor.
#[wasm_bindgen(js_name = seedRuleToml)]
pub fn seed_rule_toml() -> String {
    vmext_engine::SEED_RULE_TOML.to_owned()
}
