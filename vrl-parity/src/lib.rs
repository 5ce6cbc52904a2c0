//! Runs the generated VRL program in the VRL runtime (the `vrl` crate, which Vector embeds)
//! and compares it with the engine.
//!
//! A Vector event is a JSON record decoded into a VRL value: object keys sorted, numbers as
//! numbers, no repeated key. [`Parity::check`] feeds the program that event and the engine the
//! same event written back as JSON, and requires the same verdicts and the same alerts (parsed
//! as JSON and compared as values). It also reports whether the engine's answer on the original
//! text differs from its answer on the decoded event, which is what Vector's decoding loses.
//!
//! This crate is its own workspace: `vrl` takes minutes to build, and nothing else should pay
//! for it.

use std::collections::BTreeMap;

use vmext_engine::{Detector, Outcome, Verdict};
use vrl::compiler::{Context, Program, TargetValue, TimeZone, state::RuntimeState};
use vrl::value::{Secrets, Value};

/// The corpus generator of `host-test generate`, compiled from its one source file: the
/// parity runs need its records, and depending on the host crate would build wasmtime here.
#[allow(missing_docs)]
#[path = "../../host-test/src/generate.rs"]
pub mod generate;

/// A compiled VRL program.
pub struct Vrl {
    program: Program,
    timezone: TimeZone,
}

impl Vrl {
    /// Compiles VRL source with the full standard library of the `stdlib-base` feature.
    pub fn compile(source: &str) -> Result<Vrl, String> {
        let functions = vrl::stdlib::all();
        match vrl::compiler::compile(source, &functions) {
            Ok(result) => Ok(Vrl {
                program: result.program,
                timezone: TimeZone::default(),
            }),
            Err(diagnostics) => {
                Err(vrl::diagnostic::Formatter::new(source, diagnostics).to_string())
            }
        }
    }

    /// The generated program for the seed rule.
    pub fn seed() -> Result<Vrl, String> {
        let source = vmext_vrl::seed_program().map_err(|e| e.to_string())?;
        Vrl::compile(&source)
    }

    /// Runs the program on an event as `remap` does; returns the event afterwards.
    pub fn run(&self, event: Value) -> Result<Value, String> {
        let mut target = TargetValue {
            value: event,
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let mut state = RuntimeState::default();
        let mut ctx = Context::new(&mut target, &mut state, &self.timezone);
        self.program
            .resolve(&mut ctx)
            .map_err(|e| format!("runtime error: {e}"))?;
        Ok(target.value)
    }
}

/// A JSON record as Vector's JSON decoder makes it an event, or `None` if Vector would not
/// make an event of it (invalid JSON, or not an object).
pub fn vector_event(text: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(text) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// An event written back as JSON (keys in the event's sorted order).
pub fn to_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The engine's alerts for a document, parsed, in order (`None` for an error).
pub fn engine_alerts(detector: &Detector, text: &[u8]) -> Option<Vec<serde_json::Value>> {
    match detector.evaluate(text) {
        Ok(Outcome::Rejected) => Some(Vec::new()),
        Ok(Outcome::Evaluated(list)) => Some(
            list.into_iter()
                .filter_map(|e| match e.verdict {
                    Verdict::Alert(alert) => serde_json::from_str(&alert.json).ok(),
                    _ => None,
                })
                .collect(),
        ),
        Err(_) => None,
    }
}

/// What one document gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// How many alerts both sides raised.
    pub alerts: usize,
    /// Whether the engine's answer on the original text differs from its answer on the event
    /// Vector decodes (key order, number spelling or a repeated key decided it).
    pub decoding_matters: bool,
}

/// The program and the engine, side by side.
pub struct Parity {
    /// The engine.
    pub detector: Detector,
    /// The generated program.
    pub program: Vrl,
}

impl Parity {
    /// The seed rule on both sides.
    pub fn seed() -> Result<Parity, String> {
        Ok(Parity {
            detector: Detector::seed(),
            program: Vrl::seed()?,
        })
    }

    /// Runs one document through both; an error describes the first difference.
    pub fn check(&self, text: &[u8]) -> Result<Checked, String> {
        let Some(event) = vector_event(text) else {
            return Err("not a JSON object: Vector would make no event of it".to_owned());
        };
        let decoded = to_json(&event);
        let expected = engine_alerts(&self.detector, decoded.as_bytes())
            .ok_or_else(|| format!("the engine refused the decoded event {decoded}"))?;
        let output = self.program.run(event.clone())?;
        let Value::Object(mut members) = output else {
            return Err("the program's output is not an object".to_owned());
        };
        let alerts = members.remove(vmext_vrl::ANNOTATION_KEY);
        if Value::Object(members) != event {
            return Err("the program changed the event beyond adding alerts".to_owned());
        }
        let actual: Vec<serde_json::Value> = match alerts {
            None => Vec::new(),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|a| serde_json::from_str(&to_json(a)).unwrap_or_default())
                .collect(),
            Some(other) => return Err(format!("`vmext_alerts` is {}", to_json(&other))),
        };
        if actual != expected {
            return Err(format!(
                "alerts differ\n  engine: {}\n  vrl:    {}",
                serde_json::to_string(&expected).unwrap_or_default(),
                serde_json::to_string(&actual).unwrap_or_default()
            ));
        }
        let original = engine_alerts(&self.detector, text);
        Ok(Checked {
            alerts: actual.len(),
            decoding_matters: original.as_ref() != Some(&expected),
        })
    }
}
