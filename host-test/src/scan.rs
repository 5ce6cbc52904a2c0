//! Scanning inputs: alerts to an output stream, a summary for people.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::evaluator::{DocumentResult, Evaluator, RecordResult};
use crate::input::{Frame, InputError, frames};
use vmext_engine::documents::{ENVELOPE_SPLIT_BYTES, MEMBERS_PER_PIECE, envelope_pieces};

/// Where documents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file. Its layout is found from its content (see [`crate::input`]), whatever its name.
    File(PathBuf),
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Stdin => f.write_str("<stdin>"),
            Input::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a scan writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Alerts as NDJSON.
    Alerts,
    /// For every record, its verdict and clause-by-clause explanation, for people.
    Explain,
    /// For every record, the canonical result object (verdict, alert, explanation) as NDJSON.
    ExplainJson,
}

/// Counts for the summary. They add up: `documents = rejected + parsed + invalid`, where
/// `parsed` documents hold `records` records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// JSON documents framed in the input, valid or not (see [`crate::input`]).
    pub documents: u64,
    /// Valid documents the literal prefilter proved cannot match, so they were not parsed.
    pub rejected: u64,
    /// Records evaluated in the documents that were parsed (an envelope holds several).
    pub records: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts an exception item suppressed.
    pub suppressed: u64,
    /// Documents that could not be evaluated: not JSON, not an object, over the size cap, or
    /// failed in the evaluator.
    pub invalid: u64,
    /// Of the invalid documents, those over the size cap (skipped unread).
    pub oversized: u64,
    /// Records inside parsed envelopes that could not be evaluated.
    pub invalid_records: u64,
    /// Inputs that could not be opened or read to the end (each reported on stderr).
    pub unreadable: u64,
    /// Bytes read from the inputs (as stored: compressed bytes for a gzip file).
    pub bytes: u64,
}

/// Bits of the exit status of `scan` and `fluent-bit`, which scripts can test one by one.
pub mod exit {
    /// At least one alert was raised.
    pub const ALERTS: u8 = 1;
    /// The scan could not run at all (bad arguments, rule or exceptions); never combined.
    pub const FAILED: u8 = 2;
    /// Some documents or records were invalid (or over the size cap) and were skipped.
    pub const INVALID: u8 = 4;
    /// Some input could not be opened or read to its end.
    pub const UNREADABLE: u8 = 8;
}

impl Summary {
    /// Documents parsed by the engine (not rejected, not invalid).
    pub fn parsed(&self) -> u64 {
        self.documents.saturating_sub(self.rejected + self.invalid)
    }

    /// The exit status the summary calls for: the [`exit`] bits that hold, or 0.
    pub fn exit_status(&self) -> u8 {
        let mut status = 0;
        if self.alerts > 0 {
            status |= exit::ALERTS;
        }
        if self.invalid > 0 || self.invalid_records > 0 {
            status |= exit::INVALID;
        }
        if self.unreadable > 0 {
            status |= exit::UNREADABLE;
        }
        status
    }

    /// The one-line summary printed to stderr.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let suppressed = if self.suppressed > 0 {
            format!(" ({} more suppressed by exceptions)", self.suppressed)
        } else {
            String::new()
        };
        let oversized = if self.oversized > 0 {
            format!(" ({} over the size cap)", self.oversized)
        } else {
            String::new()
        };
        let invalid_records = if self.invalid_records > 0 {
            format!(", {} invalid records in envelopes", self.invalid_records)
        } else {
            String::new()
        };
        let unreadable = if self.unreadable > 0 {
            format!("; {} inputs could not be read", self.unreadable)
        } else {
            String::new()
        };
        format!(
            "documents {}: {} rejected by the prefilter, {} parsed holding {} records, invalid {}{}{}; alerts {}{}{}; {:.1} MB in {:.2} s: {:.0} documents/s, {:.1} MB/s",
            self.documents,
            self.rejected,
            self.parsed(),
            self.records,
            self.invalid,
            oversized,
            invalid_records,
            self.alerts,
            suppressed,
            unreadable,
            self.bytes as f64 / 1e6,
            secs,
            self.documents as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
        )
    }
}

/// A problem that stops a scan (an input that cannot be read, an output that cannot be
/// written), as opposed to a bad record, which is counted and reported.
#[derive(Debug)]
pub struct ScanError {
    /// The input being read.
    pub input: String,
    /// The I/O error.
    pub error: io::Error,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.input, self.error)
    }
}

impl std::error::Error for ScanError {}

/// How a scan reads and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// What to write.
    pub report: Report,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// The cap on one document's size, in bytes.
    pub max_document: usize,
}

/// Scans inputs in order, writing the report to `out` and errors for bad documents and
/// unreadable inputs to `log`. An input that cannot be read is reported and counted, and the
/// scan goes on; only a failure to write `out` stops it.
pub fn scan(
    inputs: &[Input],
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Summary, ScanError> {
    let stdout_error = |error: io::Error| ScanError {
        input: "<stdout>".to_owned(),
        error,
    };
    let mut summary = Summary::default();
    for input in inputs {
        let name = input.to_string();
        let read = Rc::new(Cell::new(0u64));
        let reader: Box<dyn Read> = match input {
            Input::Stdin => Box::new(Counting::new(io::stdin().lock(), &read)),
            Input::File(path) => match File::open(path) {
                Ok(file) => Box::new(Counting::new(file, &read)),
                Err(e) => {
                    summary.unreadable += 1;
                    writeln!(log, "{name}: cannot open: {e}").map_err(stdout_error)?;
                    continue;
                }
            },
        };
        let mut sink = Sink {
            input: &name,
            report: options.report,
            out: &mut *out,
            log: &mut *log,
            bar: Progress::for_input(input, options.progress),
            read: Rc::clone(&read),
            reported: 0,
        };
        let mut batch = Batch::default();
        let explain = options.report != Report::Alerts;
        let batched = evaluator.prefers_batches();
        let cap = options.max_document;
        // A failure to write the report stops the scan; it is kept apart from read errors.
        let mut write_error: Option<io::Error> = None;
        let mut handle = |frame: Frame<'_>| -> io::Result<()> {
            summary.documents += 1;
            let written = match frame {
                Frame::Document { line, text } if text.len() > ENVELOPE_SPLIT_BYTES => {
                    match vmext_engine::documents::envelope_members(text) {
                        Some(members) => {
                            flush(evaluator, &mut batch, explain, &mut sink, &mut summary).and_then(
                                |()| {
                                    split_envelope(
                                        evaluator,
                                        text,
                                        &members,
                                        line,
                                        explain,
                                        &mut sink,
                                        &mut summary,
                                    )
                                },
                            )
                        }
                        None if batched => {
                            flush(evaluator, &mut batch, explain, &mut sink, &mut summary).and_then(
                                |()| {
                                    let result = evaluator.evaluate(text, explain);
                                    sink.write(line, result, &mut summary)
                                },
                            )
                        }
                        None => {
                            let result = evaluator.evaluate(text, explain);
                            sink.write(line, result, &mut summary)
                        }
                    }
                }
                Frame::Document { line, text } if batched => {
                    batch.push(line, text);
                    if batch.is_full() {
                        flush(evaluator, &mut batch, explain, &mut sink, &mut summary)
                    } else {
                        Ok(())
                    }
                }
                Frame::Document { line, text } => {
                    // One document in, its result out: no copy.
                    let result = evaluator.evaluate(text, explain);
                    sink.write(line, result, &mut summary)
                }
                Frame::Invalid { line, reason } => {
                    flush(evaluator, &mut batch, explain, &mut sink, &mut summary).and_then(|()| {
                        sink.write(line, DocumentResult::Failed(reason), &mut summary)
                    })
                }
                Frame::Oversized { line, bytes } => {
                    summary.oversized += 1;
                    let reason = format!(
                        "document of {bytes} bytes or more is over the size cap of {cap} bytes (--max-document-bytes); skipped"
                    );
                    flush(evaluator, &mut batch, explain, &mut sink, &mut summary).and_then(|()| {
                        sink.write(line, DocumentResult::Failed(reason), &mut summary)
                    })
                }
            };
            written.map_err(|e| {
                write_error = Some(e);
                io::Error::other("the report could not be written")
            })
        };
        let outcome = frames(reader, cap, &mut handle);
        if let Some(e) = write_error.take() {
            return Err(stdout_error(e));
        }
        flush(evaluator, &mut batch, explain, &mut sink, &mut summary).map_err(stdout_error)?;
        sink.bar.finish();
        summary.bytes += read.get();
        match outcome {
            Ok(()) => {}
            Err(InputError::NotText(what)) => {
                summary.unreadable += 1;
                writeln!(log, "{name}: skipped: not JSON text: {what}").map_err(stdout_error)?;
            }
            Err(InputError::Io(e)) => {
                summary.unreadable += 1;
                writeln!(
                    log,
                    "{name}: read error, the rest of this input was not read: {e}"
                )
                .map_err(stdout_error)?;
            }
        }
    }
    out.flush().map_err(stdout_error)?;
    Ok(summary)
}

/// Evaluates a large `{"records":[…]}` envelope piece by piece, so that memory and time per
/// call are bounded by a piece (the component's memory cap and deadline then cost at most one
/// member, never the envelope), and writes the results as the envelope's.
fn split_envelope(
    evaluator: &mut dyn Evaluator,
    text: &[u8],
    members: &[std::ops::Range<usize>],
    line: u64,
    explain: bool,
    sink: &mut Sink<'_>,
    summary: &mut Summary,
) -> io::Result<()> {
    for (first, piece) in envelope_pieces(text, members, MEMBERS_PER_PIECE) {
        let results = evaluator.evaluate_members(&piece, first, explain);
        write_records(sink, line, &results, Some(first), summary)?;
    }
    Ok(())
}

/// Counts the bytes read through it, for the summary and the progress bar.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R> Counting<R> {
    fn new(inner: R, count: &Rc<Cell<u64>>) -> Self {
        Counting {
            inner,
            count: Rc::clone(count),
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Where results go: the report, the log of bad records, the progress bar.
struct Sink<'a> {
    input: &'a str,
    report: Report,
    out: &'a mut dyn Write,
    log: &'a mut dyn Write,
    bar: Progress,
    /// Bytes read from the input so far, and how many of them the bar has been told of.
    read: Rc<Cell<u64>>,
    reported: u64,
}

impl Sink<'_> {
    fn write(
        &mut self,
        line: u64,
        result: DocumentResult,
        summary: &mut Summary,
    ) -> io::Result<()> {
        write_result(
            self.input,
            line,
            result,
            self.report,
            summary,
            self.out,
            self.log,
        )?;
        let read = self.read.get();
        self.bar.advance(read.saturating_sub(self.reported));
        self.reported = read;
        Ok(())
    }
}

/// Evaluates the batch in one call and writes its results in order.
fn flush(
    evaluator: &mut dyn Evaluator,
    batch: &mut Batch,
    explain: bool,
    sink: &mut Sink<'_>,
    summary: &mut Summary,
) -> io::Result<()> {
    if batch.spans.is_empty() {
        return Ok(());
    }
    let results = evaluator.evaluate_batch(&batch.documents(), explain);
    for ((line, _, _), result) in batch.spans.iter().zip(results) {
        sink.write(*line, result, summary)?;
    }
    batch.clear();
    Ok(())
}

/// Documents waiting to be evaluated together: copies in one buffer, with their lines.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// (line, start, end) of each document in `bytes`.
    spans: Vec<(u64, usize, usize)>,
}

impl Batch {
    /// At most this many documents per call…
    const MAX_DOCUMENTS: usize = 256;
    /// …or this many bytes, so that memory stays flat whatever the input.
    const MAX_BYTES: usize = 1 << 20;

    fn push(&mut self, line: u64, doc: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(doc);
        self.spans.push((line, start, self.bytes.len()));
    }

    fn is_full(&self) -> bool {
        self.spans.len() >= Self::MAX_DOCUMENTS || self.bytes.len() >= Self::MAX_BYTES
    }

    fn documents(&self) -> Vec<&[u8]> {
        self.spans
            .iter()
            .map(|(_, start, end)| self.bytes.get(*start..*end).unwrap_or_default())
            .collect()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }
}

fn write_result(
    input: &str,
    line: u64,
    result: DocumentResult,
    report: Report,
    summary: &mut Summary,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> io::Result<()> {
    match result {
        DocumentResult::Rejected => {
            summary.rejected += 1;
        }
        DocumentResult::Failed(message) => {
            summary.invalid += 1;
            writeln!(log, "{input}:{line}: {message}")?;
            match report {
                Report::Alerts => {}
                Report::Explain => writeln!(out, "== {input}:{line}: invalid: {message}\n")?,
                Report::ExplainJson => {
                    let mut json = String::from("{\"source\":");
                    vmext_json::write_escaped_str(&mut json, &format!("{input}:{line}"));
                    json.push_str(",\"verdict\":\"invalid\",\"error\":");
                    vmext_json::write_escaped_str(&mut json, &message);
                    json.push('}');
                    writeln!(out, "{json}")?;
                }
            }
        }
        DocumentResult::Records(records) => {
            let base = (records.len() > 1).then_some(0);
            write_records_to(input, line, &records, base, report, summary, out, log)?;
        }
    }
    Ok(())
}

/// Writes the results of an envelope piece through the sink.
fn write_records(
    sink: &mut Sink<'_>,
    line: u64,
    records: &[RecordResult],
    base: Option<usize>,
    summary: &mut Summary,
) -> io::Result<()> {
    write_records_to(
        sink.input,
        line,
        records,
        base,
        sink.report,
        summary,
        sink.out,
        sink.log,
    )?;
    let read = sink.read.get();
    sink.bar.advance(read.saturating_sub(sink.reported));
    sink.reported = read;
    Ok(())
}

/// Writes record results; `base` numbers them as envelope members (`FILE:LINE#INDEX`) from
/// that index, `None` for a lone record.
#[allow(clippy::too_many_arguments)]
fn write_records_to(
    input: &str,
    line: u64,
    records: &[RecordResult],
    base: Option<usize>,
    report: Report,
    summary: &mut Summary,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> io::Result<()> {
    for (i, record) in records.iter().enumerate() {
        summary.records += 1;
        let place = match base {
            Some(base) => format!("{input}:{line}#{}", base + i),
            None => format!("{input}:{line}"),
        };
        if let Some(error) = &record.error {
            summary.invalid_records += 1;
            writeln!(log, "{place}: {error}")?;
        }
        if record.alert_json.is_some() {
            summary.alerts += 1;
        }
        if record.suppressed_by.is_some() {
            summary.suppressed += 1;
        }
        match report {
            Report::Alerts => {
                if let Some(alert) = &record.alert_json {
                    writeln!(out, "{alert}")?;
                }
            }
            Report::Explain => {
                let verdict = match (&record.alert_json, &record.error, &record.suppressed_by) {
                    (Some(_), _, _) => "ALERT".to_owned(),
                    (_, Some(_), _) => "invalid".to_owned(),
                    (_, _, Some(item)) => {
                        format!("matched, alert suppressed by exception item `{item}`")
                    }
                    _ => "no match".to_owned(),
                };
                writeln!(out, "== {place}: {verdict}")?;
                if let Some(outline) = &record.outline {
                    write!(out, "{outline}")?;
                }
                writeln!(out)?;
            }
            Report::ExplainJson => {
                let mut json = String::from("{\"source\":");
                vmext_json::write_escaped_str(&mut json, &place);
                json.push_str(",\"result\":");
                json.push_str(&record.json);
                json.push('}');
                writeln!(out, "{json}")?;
            }
        }
    }
    Ok(())
}

/// A progress bar on stderr, shown only when stderr is a terminal and the input is a file.
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Instant,
    active: bool,
}

impl Progress {
    fn for_input(input: &Input, wanted: bool) -> Progress {
        let total = match input {
            Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
        };
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            started: now,
            last_draw: now,
            active: wanted && total > 0 && io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.active && self.last_draw.elapsed() >= Duration::from_millis(100) {
            self.last_draw = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        let fraction = (self.done as f64 / self.total as f64).min(1.0);
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let rate = self.done as f64 / 1e6 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {:>5.1}% {:>8.1} MB/s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            fraction * 100.0,
            rate
        );
    }

    fn finish(&self) {
        if self.active {
            self.draw();
            eprintln!();
        }
    }
}
