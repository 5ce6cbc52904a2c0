//! The interface a scan drives, and its native implementation.
//!
//! Each artefact that runs the rule (the engine linked natively, the WebAssembly component
//! under wasmtime, …) implements [`Evaluator`]. Results are reduced to [`RecordResult`], whose
//! `json` is the engine's canonical result text, so artefacts can be compared byte for byte.

use vmext_engine::{Detector, Evaluation, Outcome, Verdict};

/// What one JSON document gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentResult {
    /// The literal prefilter proved nothing in it can match; it was not parsed.
    Rejected,
    /// One result per record (several for an envelope).
    Records(Vec<RecordResult>),
    /// The document could not be evaluated at all (invalid JSON, not an object, or the
    /// evaluator failed on it); the message says why.
    Failed(String),
}

/// One record's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    /// The ECS alert, when the rule matched.
    pub alert_json: Option<String>,
    /// Why the record could not be evaluated, when it could not.
    pub error: Option<String>,
    /// The `item_id` of the exception item that suppressed the alert, when one did.
    pub suppressed_by: Option<String>,
    /// The canonical result object (see `vmext_engine::Evaluation::to_json`).
    pub json: String,
    /// A human-readable outline of the explanation, when one was asked for.
    pub outline: Option<String>,
}

/// Runs a rule on documents.
pub trait Evaluator {
    /// Evaluates one document; with `explain`, without the prefilter and with explanations.
    fn evaluate(&mut self, document: &[u8], explain: bool) -> DocumentResult;

    /// Whether documents should be gathered into batches for [`Evaluator::evaluate_batch`]:
    /// worth it behind a call boundary, a needless copy for the engine in this process.
    fn prefers_batches(&self) -> bool {
        false
    }

    /// Whether this process proves, without handing the document over, that it cannot match:
    /// the evaluator's own prefilter, run here. A scan gives such a document the verdict
    /// [`DocumentResult::Rejected`], the one [`Evaluator::evaluate`] would give it, without the
    /// call (never with `explain`, which skips the prefilter). The default proves nothing:
    /// for the engine in this process, `evaluate` runs the same prefilter without a copy.
    fn rejects(&self, _document: &[u8]) -> bool {
        false
    }

    /// Evaluates members of one `{"records":[…]}` envelope that the caller split apart (see
    /// `vmext_engine::documents::envelope_members`), numbered from `first_index`, with one
    /// result per member: the result it has in the whole envelope. A member the artefact
    /// fails on costs that member only.
    fn evaluate_members(
        &mut self,
        members: &[&[u8]],
        first_index: usize,
        explain: bool,
    ) -> Vec<RecordResult>;

    /// Evaluates the documents of a chunk, in order. An artefact behind a call boundary
    /// overrides this to cross it once per chunk instead of once per document.
    fn evaluate_batch(&mut self, chunk: &Chunk, explain: bool) -> Vec<DocumentResult> {
        chunk
            .documents()
            .map(|d| self.evaluate(d, explain))
            .collect()
    }
}

/// Documents laid end to end in one buffer, each known by where it ends: how a batch crosses
/// a call boundary as one copy, without an allocation per document on the other side.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Chunk {
    /// A chunk of these documents, in order.
    pub fn of<'a>(documents: impl IntoIterator<Item = &'a [u8]>) -> Chunk {
        let mut chunk = Chunk::default();
        for document in documents {
            chunk.push(document);
        }
        chunk
    }

    /// Appends a copy of a document.
    pub fn push(&mut self, document: &[u8]) {
        self.bytes.extend_from_slice(document);
        self.ends.push(self.bytes.len());
    }

    /// The documents' bytes, end to end.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where each document ends in [`Chunk::bytes`]; each starts where the one before ends.
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    /// The documents, in order.
    pub fn documents(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| self.bytes.get(start..*end).unwrap_or_default())
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties it, keeping its memory for the next batch.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// The engine linked into this process.
pub struct NativeEvaluator {
    detector: Detector,
}

impl NativeEvaluator {
    /// An evaluator for a detector.
    pub fn new(detector: Detector) -> Self {
        NativeEvaluator { detector }
    }
}

impl Evaluator for NativeEvaluator {
    fn evaluate(&mut self, document: &[u8], explain: bool) -> DocumentResult {
        let evaluations = match self.detector.run(document, explain) {
            Ok(Outcome::Rejected) => return DocumentResult::Rejected,
            Ok(Outcome::Evaluated(list)) => Ok(list),
            Err(e) => Err(e),
        };
        match evaluations {
            Err(e) => DocumentResult::Failed(e.to_string()),
            Ok(list) => DocumentResult::Records(list.iter().map(record_result).collect()),
        }
    }

    fn evaluate_members(
        &mut self,
        members: &[&[u8]],
        first_index: usize,
        explain: bool,
    ) -> Vec<RecordResult> {
        self.detector
            .evaluate_members(members, first_index, explain)
            .iter()
            .map(record_result)
            .collect()
    }
}

/// One evaluation as a [`RecordResult`].
fn record_result(e: &Evaluation) -> RecordResult {
    RecordResult {
        alert_json: e.alert().map(|a| a.json.clone()),
        error: match &e.verdict {
            Verdict::Invalid(err) => Some(err.to_string()),
            _ => None,
        },
        suppressed_by: match &e.verdict {
            Verdict::Suppressed(s) => Some(s.item_id.clone()),
            _ => None,
        },
        json: e.to_json(),
        outline: e.explanation.as_ref().map(|x| x.to_outline()),
    }
}

impl RecordResult {
    /// The result of an envelope member that an artefact could not evaluate at all (it
    /// trapped, ran out of memory or time): invalid, with the reason, in the canonical form.
    pub fn failed(index: usize, reason: String) -> RecordResult {
        let mut json = format!("{{\"index\":{index},\"verdict\":\"invalid\",\"error\":");
        vmext_json::write_escaped_str(&mut json, &reason);
        json.push('}');
        RecordResult {
            alert_json: None,
            error: Some(reason),
            suppressed_by: None,
            json,
            outline: None,
        }
    }
}
