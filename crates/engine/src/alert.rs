//! Alerts as ECS documents.
//!
//! An alert carries the event's time, `event.kind: alert`, the rule's identity (`rule.*`), its
//! severity and risk score, every MITRE ATT&CK tactic, technique and sub-technique
//! (`threat.*`), the rule's investigation fields copied from the record's ECS view, and, under
//! `vmext.*`, what this filter adds: the matched extension family, the record's shape and, in
//! the hardened profile, `vmext.profile` and whether the faithful rule matched too.

use std::borrow::Cow;

use vmext_json::{Number, Value};

use crate::azure::{Shape, borrowed, set_path};
use crate::rule::Rule;

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The alert as compact ECS JSON.
    pub json: String,
    /// The event's `@timestamp`, if the record had one.
    pub timestamp: Option<String>,
    /// The extension family the resource id matched (e.g. `CUSTOMSCRIPTEXTENSION`).
    pub extension_family: Option<String>,
    /// The rule's investigation fields that the record has, with their values as text.
    pub investigation_fields: Vec<(String, Vec<String>)>,
}

/// The top-level key under which an annotating artefact (the Fluent Bit module's
/// `vmext_annotate`, the VRL program) adds a record's alerts: an array of ECS alert objects.
/// No ECS field and no raw Azure field starts with `vmext`.
pub const ANNOTATION_KEY: &str = "vmext_alerts";

/// The fields an alert owns outright (its own values, never an investigation field's).
pub const ALERT_OWNED_FIELDS: [&str; 3] = ["event.kind", "event.severity", "event.risk_score"];

/// The objects an alert owns with everything under them.
pub const ALERT_OWNED_PREFIXES: [&str; 4] = ["rule", "threat", "kibana", "vmext"];

/// Fields the alert itself owns; investigation fields never overwrite them.
pub fn owned_by_alert(field: &str) -> bool {
    ALERT_OWNED_FIELDS.contains(&field)
        || ALERT_OWNED_PREFIXES
            .iter()
            .any(|p| field == *p || field.strip_prefix(p).is_some_and(|r| r.starts_with('.')))
}

/// The template's top-level objects that no record adds to: alert-owned (so no investigation
/// field enters them) and not `vmext`, which [`AlertTemplate::alert`] fills per record.
const SEALED: [&str; 3] = ["rule", "threat", "kibana"];

fn is_sealed(key: &str) -> bool {
    SEALED.contains(&key)
}

/// What a hardened profile's alert says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Hardening {
    /// Whether the faithful rule matched the record too; `false` marks a blind spot closed.
    pub faithful_match: bool,
}

/// The alert builder: the parts of every alert that depend only on the rule, built once per
/// detector, and [`AlertTemplate::alert`], which adds one record's parts.
#[derive(Debug, Clone)]
pub struct AlertTemplate {
    members: Vec<(Cow<'static, str>, Value<'static>)>,
    /// The members no record can add to (`rule`, `threat`, `kibana`: alert-owned objects,
    /// which investigation fields never enter), written as JSON once: most of an alert's
    /// bytes, the rule's description and references above all, are then copied, not
    /// serialised again for every alert.
    sealed: Vec<(Cow<'static, str>, String)>,
}

fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Value<'static> {
    Value::Array(items.into_iter().map(|s| Value::string(s.into())).collect())
}

impl AlertTemplate {
    /// The template for a rule.
    pub fn new(rule: &Rule) -> Self {
        let mut m: Vec<(Cow<'static, str>, Value<'static>)> = Vec::new();
        set_path(&mut m, "event.kind", Value::string("alert"));
        set_path(
            &mut m,
            "event.severity",
            Value::Number(Number::from_i128(rule.severity_number().into())),
        );
        set_path(
            &mut m,
            "event.risk_score",
            Value::Number(Number::from_i128(rule.risk_score.into())),
        );
        set_path(&mut m, "rule.id", Value::string(&*rule.rule_id));
        set_path(&mut m, "rule.uuid", Value::string(&*rule.rule_id));
        set_path(&mut m, "rule.name", Value::string(&*rule.name));
        set_path(
            &mut m,
            "rule.description",
            Value::string(&*rule.description),
        );
        set_path(&mut m, "rule.author", strings(rule.author.iter().cloned()));
        set_path(&mut m, "rule.license", Value::string(&*rule.license));
        set_path(
            &mut m,
            "rule.reference",
            strings(rule.references.iter().cloned()),
        );
        if !rule.integrations.is_empty() {
            set_path(
                &mut m,
                "rule.ruleset",
                Value::string(rule.integrations.join(",")),
            );
        }
        if !rule.threat.is_empty() {
            let tactics = rule.threat.iter().map(|t| &t.tactic);
            let techniques = rule.threat.iter().flat_map(|t| &t.techniques);
            let subs = techniques.clone().flat_map(|t| &t.subtechniques);
            set_path(
                &mut m,
                "threat.framework",
                Value::string(rule.threat.first().map_or("", |t| t.framework.as_str())),
            );
            set_path(
                &mut m,
                "threat.tactic.id",
                strings(tactics.clone().map(|t| t.id.clone())),
            );
            set_path(
                &mut m,
                "threat.tactic.name",
                strings(tactics.clone().map(|t| t.name.clone())),
            );
            set_path(
                &mut m,
                "threat.tactic.reference",
                strings(tactics.map(|t| t.reference.clone())),
            );
            set_path(
                &mut m,
                "threat.technique.id",
                strings(techniques.clone().map(|t| t.id.clone())),
            );
            set_path(
                &mut m,
                "threat.technique.name",
                strings(techniques.clone().map(|t| t.name.clone())),
            );
            set_path(
                &mut m,
                "threat.technique.reference",
                strings(techniques.map(|t| t.reference.clone())),
            );
            if subs.clone().next().is_some() {
                set_path(
                    &mut m,
                    "threat.technique.subtechnique.id",
                    strings(subs.clone().map(|s| s.id.clone())),
                );
                set_path(
                    &mut m,
                    "threat.technique.subtechnique.name",
                    strings(subs.clone().map(|s| s.name.clone())),
                );
                set_path(
                    &mut m,
                    "threat.technique.subtechnique.reference",
                    strings(subs.map(|s| s.reference.clone())),
                );
            }
        }
        set_path(
            &mut m,
            "kibana.alert.severity",
            Value::string(&*rule.severity),
        );
        set_path(
            &mut m,
            "kibana.alert.risk_score",
            Value::Number(Number::from_i128(rule.risk_score.into())),
        );
        set_path(
            &mut m,
            "kibana.alert.rule.tags",
            strings(rule.tags.iter().cloned()),
        );
        let sealed = m
            .iter()
            .filter(|(key, _)| is_sealed(key))
            .map(|(key, value)| {
                let mut json = String::new();
                vmext_json::write_value(&mut json, value);
                (key.clone(), json)
            })
            .collect();
        AlertTemplate { members: m, sealed }
    }

    /// The rule-only members as one compact JSON object (what translations into other
    /// languages, such as VRL, copy into every alert).
    pub fn json(&self) -> String {
        let mut out = String::new();
        vmext_json::write_value(&mut out, &Value::Object(self.members.clone()));
        out
    }

    /// Writes an alert's document: its sealed members from their JSON text, the rest as values.
    fn write(&self, doc: &[(Cow<'_, str>, Value<'_>)]) -> String {
        let sealed_len: usize = self.sealed.iter().map(|(_, json)| json.len()).sum();
        let mut out = String::with_capacity(sealed_len + 1024);
        out.push('{');
        for (i, (key, value)) in doc.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            vmext_json::write_escaped_str(&mut out, key);
            out.push(':');
            match self.sealed.iter().find(|(k, _)| k == key) {
                Some((_, json)) if matches!(value, Value::Null) => out.push_str(json),
                _ => vmext_json::write_value(&mut out, value),
            }
        }
        out.push('}');
        out
    }

    /// The alert for one matching record, given its ECS view.
    pub fn alert(
        &self,
        rule: &Rule,
        view: &Value<'_>,
        shape: Shape,
        envelope_index: Option<usize>,
        extension_family: Option<String>,
        hardening: Option<Hardening>,
    ) -> Alert {
        let timestamp = vmext_kql::eval::leaves_at(view, "@timestamp")
            .first()
            .and_then(|v| vmext_kql::eval::leaf_text(v))
            .map(Cow::into_owned);
        let mut doc: Vec<(Cow<'_, str>, Value<'_>)> = Vec::new();
        if let Some(ts) = &timestamp {
            set_path(&mut doc, "@timestamp", Value::string(ts.as_str()));
        }
        // The template's members are borrowed, not cloned. A sealed one (the rule's texts, its
        // description above all) stands in as `null` and is written from its JSON text.
        doc.extend(self.members.iter().map(|(k, v)| {
            let v = if is_sealed(k) {
                Value::Null
            } else {
                borrowed(v)
            };
            (Cow::Borrowed(k.as_ref()), v)
        }));
        let mut investigation = Vec::new();
        for field in &rule.investigation_fields {
            if field == "@timestamp" {
                // Already the alert's own `@timestamp`; listed for the typed view.
                if let Some(ts) = &timestamp {
                    investigation.push((field.clone(), vec![ts.clone()]));
                }
                continue;
            }
            if owned_by_alert(field) {
                continue;
            }
            let leaves = vmext_kql::eval::leaves_at(view, field);
            if leaves.is_empty() {
                continue;
            }
            let texts: Vec<String> = leaves
                .iter()
                .filter_map(|v| vmext_kql::eval::leaf_text(v).map(Cow::into_owned))
                .collect();
            let value = match leaves.as_slice() {
                [one] => (*one).clone(),
                many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
            };
            set_path(&mut doc, field, value);
            investigation.push((field.clone(), texts));
        }
        if let Some(family) = &extension_family {
            set_path(
                &mut doc,
                "vmext.extension_family",
                Value::string(family.as_str()),
            );
        }
        set_path(
            &mut doc,
            "vmext.record_shape",
            Value::string(shape.as_str()),
        );
        if let Some(i) = envelope_index {
            set_path(
                &mut doc,
                "vmext.envelope_index",
                Value::Number(Number::from_i128(i as i128)),
            );
        }
        if let Some(h) = hardening {
            set_path(&mut doc, "vmext.profile", Value::string("hardened"));
            set_path(
                &mut doc,
                "vmext.faithful_match",
                Value::Bool(h.faithful_match),
            );
        }
        let json = self.write(&doc);
        Alert {
            json,
            timestamp,
            extension_family,
            investigation_fields: investigation,
        }
    }
}
