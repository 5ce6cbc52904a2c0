//! Scanning inputs: alerts to an output stream, a summary for people.

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::evaluator::{DocumentResult, Evaluator};
use crate::input::{Layout, for_each_line, split_documents};

/// Where documents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input, read as NDJSON.
    Stdin,
    /// A file; `.json` files are read as JSON documents, others as NDJSON.
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

/// Counts for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// JSON documents read (lines of NDJSON, values of JSON files).
    pub documents: u64,
    /// Documents the literal prefilter rejected without parsing.
    pub rejected: u64,
    /// Records evaluated in the documents that were parsed (an envelope holds several).
    pub records: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts an exception item suppressed.
    pub suppressed: u64,
    /// Documents or records that could not be evaluated.
    pub invalid: u64,
    /// Bytes of input.
    pub bytes: u64,
}

impl Summary {
    /// The one-line summary printed to stderr.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let suppressed = if self.suppressed > 0 {
            format!(" ({} more suppressed by exceptions)", self.suppressed)
        } else {
            String::new()
        };
        format!(
            "documents {}: {} rejected by the prefilter, {} parsed holding {} records; alerts {}{}, invalid {}; {:.1} MB in {:.2} s: {:.0} documents/s, {:.1} MB/s",
            self.documents,
            self.rejected,
            self.documents - self.rejected,
            self.records,
            self.alerts,
            suppressed,
            self.invalid,
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

/// Scans inputs in order, writing the report to `out` and errors for bad records to `log`.
pub fn scan(
    inputs: &[Input],
    evaluator: &mut dyn Evaluator,
    report: Report,
    progress: bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Summary, ScanError> {
    let mut summary = Summary::default();
    for input in inputs {
        let name = input.to_string();
        let wrap = |error: io::Error| ScanError {
            input: name.clone(),
            error,
        };
        let mut sink = Sink {
            input: &name,
            report,
            out: &mut *out,
            log: &mut *log,
            bar: Progress::for_input(input, progress),
        };
        let mut batch = Batch::default();
        let explain = report != Report::Alerts;
        let batched = evaluator.prefers_batches();
        let mut handle = |line: u64, doc: &[u8]| -> io::Result<()> {
            summary.documents += 1;
            summary.bytes += doc.len() as u64 + 1;
            if !batched {
                // One document in, its result out: no copy.
                let result = evaluator.evaluate(doc, explain);
                return sink.write(line, result, doc.len(), &mut summary);
            }
            batch.push(line, doc);
            if batch.is_full() {
                flush(evaluator, &mut batch, explain, &mut sink, &mut summary)?;
            }
            Ok(())
        };
        match input {
            Input::Stdin => for_each_line(io::stdin().lock(), &mut handle).map_err(wrap)?,
            Input::File(path) => match Layout::for_path(path) {
                Layout::Ndjson => {
                    let file = File::open(path).map_err(wrap)?;
                    for_each_line(file, &mut handle).map_err(wrap)?
                }
                Layout::Json => {
                    let mut text = Vec::new();
                    File::open(path)
                        .and_then(|mut f| f.read_to_end(&mut text))
                        .map_err(wrap)?;
                    for (line, doc) in split_documents(&text) {
                        handle(line, doc).map_err(wrap)?;
                    }
                }
            },
        }
        flush(evaluator, &mut batch, explain, &mut sink, &mut summary).map_err(wrap)?;
        sink.bar.finish();
    }
    out.flush().map_err(|error| ScanError {
        input: "<stdout>".to_owned(),
        error,
    })?;
    Ok(summary)
}

/// Where results go: the report, the log of bad records, the progress bar.
struct Sink<'a> {
    input: &'a str,
    report: Report,
    out: &'a mut dyn Write,
    log: &'a mut dyn Write,
    bar: Progress,
}

impl Sink<'_> {
    fn write(
        &mut self,
        line: u64,
        result: DocumentResult,
        bytes: usize,
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
        self.bar.advance(bytes as u64 + 1);
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
    let results = evaluator.evaluate_batch(&batch.documents(), explain);
    for ((line, start, end), result) in batch.spans.iter().zip(results) {
        sink.write(*line, result, end - start, summary)?;
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
            let many = records.len() > 1;
            for (i, record) in records.iter().enumerate() {
                summary.records += 1;
                let place = if many {
                    format!("{input}:{line}#{i}")
                } else {
                    format!("{input}:{line}")
                };
                if let Some(error) = &record.error {
                    summary.invalid += 1;
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
                        let verdict =
                            match (&record.alert_json, &record.error, &record.suppressed_by) {
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
