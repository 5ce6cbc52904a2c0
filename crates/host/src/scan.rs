//! Scanning inputs: alerts to an output stream, a summary for people.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::evaluator::{Chunk, DocumentResult, Evaluator, RecordResult};
use crate::input::{Frame, Framed, InputError, Start, frames_of};
use serde::Serialize;
use vmext_engine::documents::{ENVELOPE_SPLIT_BYTES, MEMBERS_PER_PIECE, envelope_pieces};
use vmext_json::visible;

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
        // A count that is zero is left out of the line.
        let only_some = |count: u64, before: &str, after: &str| {
            if count > 0 {
                format!("{before}{count}{after}")
            } else {
                String::new()
            }
        };
        let suppressed = only_some(self.suppressed, " (", " more suppressed by exceptions)");
        let oversized = only_some(self.oversized, " (", " over the size cap)");
        let invalid_records =
            only_some(self.invalid_records, ", ", " invalid records in envelopes");
        let unreadable = only_some(self.unreadable, "; ", " inputs could not be read");
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

/// A problem that stops a scan: a stream it writes to is closed or full. A bad record or an
/// unreadable input is counted and reported instead.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The report (alerts or explanations) could not be written.
    #[error("cannot write the report")]
    Report(#[source] io::Error),
    /// A line of the log (bad documents, unreadable inputs) could not be written.
    #[error("cannot write the log of bad documents")]
    Log(#[source] io::Error),
}

/// Which of the two streams a write error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Report,
    Log,
}

/// A writer that notes in `failed` which stream failed, so that one `io::Result` chain can
/// carry writes to both and the error still names the right one.
struct Tagged<'a> {
    inner: &'a mut dyn Write,
    stream: Stream,
    failed: Rc<Cell<Option<Stream>>>,
}

impl Write for Tagged<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| {
            self.failed.set(Some(self.stream));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| {
            self.failed.set(Some(self.stream));
        })
    }
}

/// How a scan reads and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// What to write.
    pub report: Report,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// The cap on one document's size, in bytes.
    pub max_document: usize,
    /// Files at least twice this long are scanned in pieces of about this many bytes on
    /// several threads ([`scan_files`]); [`PIECE_BYTES`] unless testing.
    pub piece_bytes: u64,
}

/// Scans inputs in order, writing the report to `out` and errors for bad documents and
/// unreadable inputs to `log`. An input that cannot be read is reported and counted, and the
/// scan goes on; only a failure to write `out` or `log` stops it.
pub fn scan(
    inputs: &[Input],
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Summary, ScanError> {
    let mut summary = Summary::default();
    for input in inputs {
        let reader: Box<dyn Read> = match input {
            Input::Stdin => Box::new(io::stdin().lock()),
            Input::File(path) => match File::open(path) {
                Ok(file) => Box::new(file),
                Err(e) => {
                    summary.unreadable += 1;
                    writeln!(log, "{}: cannot open: {e}", visible(&input.to_string()))
                        .map_err(ScanError::Log)?;
                    continue;
                }
            },
        };
        let bar = Progress::for_input(input, options.progress);
        scan_text(
            &input.to_string(),
            reader,
            Start::Input,
            bar,
            evaluator,
            options,
            out,
            log,
            &mut summary,
        )?;
    }
    out.flush().map_err(ScanError::Report)?;
    Ok(summary)
}

/// Scans the text of one input (or of a piece of one that starts a line, `start`) into
/// `summary`: the report to `out`, bad documents and a failure to read to `log`. Gives how
/// framing ended, unless the input was refused or could not be read to its end.
#[allow(clippy::too_many_arguments)]
fn scan_text(
    name: &str,
    reader: Box<dyn Read + '_>,
    start: Start,
    bar: Progress,
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
    summary: &mut Summary,
) -> Result<Option<Framed>, ScanError> {
    let failed = Rc::new(Cell::new(None));
    let mut out = Tagged {
        inner: out,
        stream: Stream::Report,
        failed: Rc::clone(&failed),
    };
    let mut log = Tagged {
        inner: log,
        stream: Stream::Log,
        failed: Rc::clone(&failed),
    };
    let (out, log) = (&mut out, &mut log);
    let stop = |error: io::Error| match failed.get() {
        Some(Stream::Log) => ScanError::Log(error),
        _ => ScanError::Report(error),
    };
    let read = Rc::new(Cell::new(0u64));
    let reader = Counting::new(reader, &read);
    let mut sink = Sink {
        input: name,
        report: options.report,
        out: &mut *out,
        log: BarLog {
            inner: &mut *log,
            bar: bar.bar.clone(),
            line: Vec::new(),
        },
        bar,
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
                    Some(members) => flush(evaluator, &mut batch, explain, &mut sink, summary)
                        .and_then(|()| {
                            split_envelope(
                                evaluator, text, &members, line, explain, &mut sink, summary,
                            )
                        }),
                    None if !explain && evaluator.rejects(text) => {
                        sink.write(line, DocumentResult::Rejected, summary)
                    }
                    None if batched => flush(evaluator, &mut batch, explain, &mut sink, summary)
                        .and_then(|()| {
                            let result = evaluator.evaluate(text, explain);
                            sink.write(line, result, summary)
                        }),
                    None => {
                        let result = evaluator.evaluate(text, explain);
                        sink.write(line, result, summary)
                    }
                }
            }
            // Rejected where it was framed, by the evaluator's own prefilter: only its
            // count is written, so it need not wait for the batch before it.
            Frame::Document { line, text } if !explain && evaluator.rejects(text) => {
                sink.write(line, DocumentResult::Rejected, summary)
            }
            Frame::Document { line, text } if batched => {
                batch.push(line, text);
                if batch.is_full() {
                    flush(evaluator, &mut batch, explain, &mut sink, summary)
                } else {
                    Ok(())
                }
            }
            Frame::Document { line, text } => {
                // One document in, its result out: no copy.
                let result = evaluator.evaluate(text, explain);
                sink.write(line, result, summary)
            }
            Frame::Invalid { line, reason } => {
                flush(evaluator, &mut batch, explain, &mut sink, summary)
                    .and_then(|()| sink.write(line, DocumentResult::Failed(reason), summary))
            }
            Frame::Oversized { line, bytes } => {
                summary.oversized += 1;
                let reason = format!(
                    "document of {bytes} bytes or more is over the size cap of {cap} bytes (--max-document-bytes); skipped"
                );
                flush(evaluator, &mut batch, explain, &mut sink, summary)
                    .and_then(|()| sink.write(line, DocumentResult::Failed(reason), summary))
            }
        };
        written.map_err(|e| {
            write_error = Some(e);
            io::Error::other("the report could not be written")
        })
    };
    let outcome = frames_of(reader, start, cap, &mut handle);
    if let Some(e) = write_error.take() {
        return Err(stop(e));
    }
    flush(evaluator, &mut batch, explain, &mut sink, summary).map_err(stop)?;
    sink.log.flush().map_err(stop)?;
    sink.bar.finish();
    summary.bytes += read.get();
    match outcome {
        Ok(framed) => Ok(Some(framed)),
        Err(InputError::NotText(what)) => {
            summary.unreadable += 1;
            writeln!(log, "{}: skipped: not JSON text: {what}", visible(name)).map_err(stop)?;
            Ok(None)
        }
        Err(InputError::Io(e)) => {
            read_error(log, name, &e, summary).map_err(stop)?;
            Ok(None)
        }
    }
}

/// Counts an input that could not be read to its end and says so in the log.
fn read_error(
    log: &mut dyn Write,
    name: &str,
    error: &io::Error,
    summary: &mut Summary,
) -> io::Result<()> {
    summary.unreadable += 1;
    writeln!(
        log,
        "{}: read error, the rest of this input was not read: {error}",
        visible(name)
    )
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
    log: BarLog<'a>,
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
            &mut self.log,
        )?;
        self.catch_up();
        Ok(())
    }

    /// Tells the progress bar of the bytes read since it was last told.
    fn catch_up(&mut self) {
        let read = self.read.get();
        self.bar.advance(read.saturating_sub(self.reported));
        self.reported = read;
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
    if batch.chunk.is_empty() {
        return Ok(());
    }
    let results = evaluator.evaluate_batch(&batch.chunk, explain);
    for (line, result) in batch.lines.iter().zip(results) {
        sink.write(*line, result, summary)?;
    }
    batch.clear();
    Ok(())
}

/// Documents waiting to be evaluated together: copies in one buffer, with their lines.
#[derive(Default)]
struct Batch {
    chunk: Chunk,
    /// The line each document of the chunk starts on.
    lines: Vec<u64>,
}

impl Batch {
    /// At most this many documents per call…
    const MAX_DOCUMENTS: usize = 256;
    /// …or this many bytes, so that memory stays flat whatever the input.
    const MAX_BYTES: usize = 1 << 20;

    fn push(&mut self, line: u64, doc: &[u8]) {
        self.chunk.push(doc);
        self.lines.push(line);
    }

    fn is_full(&self) -> bool {
        self.chunk.len() >= Self::MAX_DOCUMENTS || self.chunk.bytes().len() >= Self::MAX_BYTES
    }

    fn clear(&mut self) {
        self.chunk.clear();
        self.lines.clear();
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
            let shown = visible(&message);
            writeln!(log, "{}:{line}: {shown}", visible(input))?;
            match report {
                Report::Alerts => {}
                Report::Explain => {
                    writeln!(out, "== {}:{line}: invalid: {shown}\n", visible(input))?
                }
                Report::ExplainJson => {
                    let line = InvalidLine {
                        source: &format!("{input}:{line}"),
                        verdict: "invalid",
                        error: &message,
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    writeln!(out)?;
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

/// An `--explain-json` line for a document that could not be evaluated.
#[derive(Serialize)]
struct InvalidLine<'a> {
    source: &'a str,
    verdict: &'static str,
    error: &'a str,
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
        &mut sink.log,
    )?;
    sink.catch_up();
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
            writeln!(log, "{}: {}", visible(&place), visible(error))?;
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
                        format!(
                            "matched, alert suppressed by exception item `{}`",
                            visible(item)
                        )
                    }
                    _ => "no match".to_owned(),
                };
                writeln!(out, "== {}: {verdict}", visible(&place))?;
                if let Some(outline) = &record.outline {
                    write!(out, "{outline}")?;
                }
                writeln!(out)?;
            }
            Report::ExplainJson => {
                // The engine's result object is spliced in as it is (it is the engine's own
                // JSON, byte-identical across engines); only the place is serialised here.
                out.write_all(b"{\"source\":")?;
                serde_json::to_writer(&mut *out, &place)?;
                out.write_all(b",\"result\":")?;
                out.write_all(record.json.as_bytes())?;
                out.write_all(b"}\n")?;
            }
        }
    }
    Ok(())
}

/// A progress bar on stderr (indicatif), shown only when stderr is a terminal and the input is
/// a file.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn for_input(input: &Input, wanted: bool) -> Progress {
        let bar = progress_bar(
            wanted,
            input_len(input),
            visible(&input.to_string()).into_owned(),
        );
        Progress { bar }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The log stream while a progress bar may be drawn on the same terminal: each complete line
/// is written with the bar hidden (`suspend`), so log lines and the bar never interleave.
/// Without a bar, writes go straight through.
struct BarLog<'a> {
    inner: &'a mut dyn Write,
    bar: Option<ProgressBar>,
    /// The part of a line written so far.
    line: Vec<u8>,
}

impl Write for BarLog<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(bar) = &self.bar else {
            return self.inner.write(buf);
        };
        self.line.extend_from_slice(buf);
        if let Some(end) = memchr::memrchr(b'\n', &self.line) {
            let rest = self.line.split_off(end + 1);
            let lines = std::mem::replace(&mut self.line, rest);
            let inner = &mut self.inner;
            bar.suspend(|| inner.write_all(&lines))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let lines = std::mem::take(&mut self.line);
            let inner = &mut self.inner;
            match &self.bar {
                Some(bar) => bar.suspend(|| inner.write_all(&lines))?,
                None => inner.write_all(&lines)?,
            }
        }
        self.inner.flush()
    }
}

/// Makes an evaluator for one worker thread of [`scan_files`].
pub type EvaluatorFactory<'f> = dyn Fn() -> Result<Box<dyn Evaluator>, String> + Sync + 'f;

impl Summary {
    /// Adds another scan's counts to these.
    pub fn absorb(&mut self, other: &Summary) {
        self.documents += other.documents;
        self.rejected += other.rejected;
        self.records += other.records;
        self.alerts += other.alerts;
        self.suppressed += other.suppressed;
        self.invalid += other.invalid;
        self.oversized += other.oversized;
        self.invalid_records += other.invalid_records;
        self.unreadable += other.unreadable;
        self.bytes += other.bytes;
    }
}

/// Files at least twice this long are scanned in pieces of about this many bytes, on several
/// threads as separate files are ([`scan_files`]).
pub const PIECE_BYTES: u64 = 8 << 20;

/// Scans `inputs` on up to `threads` worker threads, each with its own evaluator from `make`.
/// The report and the log come out exactly as [`scan`] writes them, in input order, and the
/// summary is the same.
///
/// The work is split into units: an input, or a piece of a long file. A file of at least
/// twice [`ScanOptions::piece_bytes`] that is plain text ([`crate::input::splittable`]) is split into
/// pieces of about that size, each starting at a line. A piece is framed as if the file began
/// there, which gives what framing the whole file gives wherever the framer was between
/// documents at the piece's start. Where a document runs on past a piece's end (a
/// pretty-printed envelope, a document over the size cap), the writing thread scans that
/// piece again through the end of the next one, and the workers' later pieces stand if
/// framing is between documents there; if not, it scans the rest of the file from that piece
/// on in one go. Line numbers in a piece's log are counted from its start and made the file's
/// when the log is written.
///
/// Each unit's report and log are held until the units before it are written, in memory up
/// to 1 MiB each and then in a temporary file, and workers run at most two units per thread
/// ahead of the writer, so memory stays bounded whatever the inputs hold. After a write
/// error, workers take no new unit (each finishes the one it is on) and the error is
/// returned.
///
/// Inputs run one after another on this thread (with [`scan`]'s progress bar) when there is
/// one thread or one unit, when an input is standard input, and for the explanation reports,
/// whose output is as large as the input and is better streamed than held.
pub fn scan_files(
    inputs: &[Input],
    threads: usize,
    make: &EvaluatorFactory<'_>,
    options: ScanOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Summary, ScanFilesError> {
    let parallel =
        threads > 1 && options.report == Report::Alerts && !inputs.contains(&Input::Stdin);
    let units = if parallel {
        plan(inputs, options.piece_bytes.max(1))
    } else {
        Vec::new()
    };
    let threads = threads.min(units.len());
    if threads <= 1 {
        let mut evaluator = make().map_err(ScanFilesError::Evaluator)?;
        return Ok(scan(inputs, evaluator.as_mut(), options, out, log)?);
    }
    // One bar over all inputs, drawn here; none per input in the workers.
    let bar = FilesProgress::new(inputs, options.progress);
    let options = ScanOptions {
        progress: false,
        ..options
    };
    let order = Order::new(threads);
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::channel::<(usize, Result<Done, String>)>();
        for _ in 0..threads {
            let send = send.clone();
            let (order, units) = (&order, &units);
            scope.spawn(move || {
                let mut evaluator = match make() {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = send.send((usize::MAX, Err(e)));
                        return;
                    }
                };
                while let Some(i) = order.take() {
                    let Some(unit) = units.get(i) else { return };
                    let Some(input) = inputs.get(unit.input) else {
                        return;
                    };
                    let done = match &unit.piece {
                        None => scan_held(input, evaluator.as_mut(), options),
                        Some(piece) => {
                            scan_range(input, piece, piece.start, evaluator.as_mut(), options)
                        }
                    };
                    if send.send((i, done)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(send);
        let mut write_in_order = || {
            let mut waiting = std::collections::BTreeMap::new();
            let mut written = 0;
            let mut total = Summary::default();
            // For the pieces of the file being written: its lines before the next piece,
            // whether the rest of it is already written (or not to be read), and a piece
            // already written with the one before it.
            let mut base = 0u64;
            let mut rest_done = false;
            let mut written_with_previous: Option<usize> = None;
            // An evaluator of this thread's, made when a file must be finished here.
            let mut own: Option<Box<dyn Evaluator>> = None;
            let report_error = |e| ScanFilesError::Scan(ScanError::Report(e));
            let log_error = |e| ScanFilesError::Scan(ScanError::Log(e));
            for (i, done) in &receive {
                let done = done.map_err(ScanFilesError::Evaluator)?;
                waiting.insert(i, done);
                while let Some(mut done) = waiting.remove(&written) {
                    let unit = units.get(written);
                    let input = unit.and_then(|u| inputs.get(u.input));
                    written += 1;
                    order.written(written);
                    let Some(piece) = unit.and_then(|u| u.piece.as_ref()) else {
                        bar.suspend(|| done.lines.copy_to(log)).map_err(log_error)?;
                        done.report.copy_to(out).map_err(report_error)?;
                        total.absorb(&done.summary);
                        bar.advance(input);
                        continue;
                    };
                    if piece.index == 0 {
                        (base, rest_done, written_with_previous) = (0, false, None);
                    }
                    if written_with_previous.take() == Some(piece.index) {
                        continue;
                    }
                    let last = piece.index + 1 == piece.count;
                    if let (false, Some(input)) = (rest_done, input) {
                        let ran_on = !last && done.framed.is_some_and(|f| !f.idle);
                        // Whether the file's remaining pieces are to be thrown away.
                        let mut to_the_end = false;
                        if ran_on {
                            // A document runs on past this piece: it is framed again here
                            // ([`scan_run_on`]).
                            let evaluator = match &mut own {
                                Some(e) => e,
                                None => own.insert(make().map_err(ScanFilesError::Evaluator)?),
                            };
                            let next_end = units
                                .get(written)
                                .and_then(|u| u.piece.as_ref())
                                .and_then(|next| next.end);
                            let (again, through_next) = scan_run_on(
                                input,
                                piece,
                                next_end,
                                done.start,
                                evaluator.as_mut(),
                                options,
                            )
                            .map_err(ScanFilesError::Evaluator)?;
                            done = again;
                            if through_next {
                                written_with_previous = Some(piece.index + 1);
                            } else {
                                to_the_end = true;
                            }
                        }
                        let prefix = format!("{}:", visible(&input.to_string()));
                        bar.suspend(|| done.lines.copy_renumbered(log, &prefix, base))
                            .map_err(log_error)?;
                        done.report.copy_to(out).map_err(report_error)?;
                        total.absorb(&done.summary);
                        bar.add(done.summary.bytes);
                        match done.framed {
                            Some(framed) if !to_the_end => base += framed.lines,
                            // Refused, unreadable from here on, or finished above: nothing
                            // more of this file is read, as scanning it whole would stop here.
                            _ => rest_done = true,
                        }
                    }
                }
            }
            bar.finish();
            out.flush().map_err(report_error)?;
            Ok(total)
        };
        let result = write_in_order();
        // Before the scope waits for the workers: on an error, those waiting for the window
        // to move would wait forever. Each finishes the unit it is on, and takes no other.
        order.stop();
        drop(receive);
        result
    })
}

/// One unit of work for [`scan_files`]' workers: an input, or a piece of a file.
struct Unit {
    /// Which input.
    input: usize,
    /// The piece of it, or `None` for all of it.
    piece: Option<Piece>,
}

/// A piece of a file: from the line that starts at or after `start` to the one that starts
/// at or after `end` (for the last piece, `None`: to the end of the file). The worker finds
/// each line start by reading on from the offset; a line longer than a piece leaves a piece
/// empty.
#[derive(Clone)]
struct Piece {
    index: usize,
    count: usize,
    start: u64,
    end: Option<u64>,
    /// The file's device and inode when planned: a piece whose file is another by then
    /// (replaced under its name) is not read.
    identity: (u64, u64),
}

/// The units for `inputs`: each input whole, except plain-text files of at least twice
/// `piece_bytes`, which come as pieces.
fn plan(inputs: &[Input], piece_bytes: u64) -> Vec<Unit> {
    let mut units = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let pieces = match input {
            Input::File(path) => split(path, piece_bytes),
            Input::Stdin => None,
        };
        match pieces {
            Some(pieces) => units.extend(pieces.into_iter().map(|piece| Unit {
                input: i,
                piece: Some(piece),
            })),
            None => units.push(Unit {
                input: i,
                piece: None,
            }),
        }
    }
    units
}

/// The pieces of the file at `path`, if it is to be scanned in pieces.
#[cfg(unix)]
fn split(path: &std::path::Path, piece_bytes: u64) -> Option<Vec<Piece>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    // Most inputs are too short to split: a look at the path settles them without opening.
    let short =
        |meta: &std::fs::Metadata| !meta.is_file() || meta.len() < piece_bytes.saturating_mul(2);
    if std::fs::metadata(path).map_or(true, |meta| short(&meta)) {
        return None;
    }
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if short(&meta) {
        return None;
    }
    let mut head = vec![0; crate::input::SPLITTABLE_HEAD];
    let n = file.read_at(&mut head, 0).ok()?;
    if !crate::input::splittable(head.get(..n)?) {
        return None;
    }
    let count = usize::try_from(meta.len().div_ceil(piece_bytes)).ok()?;
    let at = |k: usize| (k as u64).saturating_mul(piece_bytes);
    Some(
        (0..count)
            .map(|index| Piece {
                index,
                count,
                start: at(index),
                end: (index + 1 < count).then(|| at(index + 1)),
                identity: (meta.dev(), meta.ino()),
            })
            .collect(),
    )
}

#[cfg(not(unix))]
fn split(_: &std::path::Path, _: u64) -> Option<Vec<Piece>> {
    None
}

/// Where the line that starts at or after `offset` starts: just after the first `\n` at or
/// after `offset - 1` (0 for 0), or the end of the file. `None` when that is at or after
/// `before`: the search stops there, so that the pieces of one long line do not each read
/// the rest of it (such a piece is empty, as its end is the same line start).
#[cfg(unix)]
fn line_start(file: &File, offset: u64, before: Option<u64>) -> io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let Some(mut at) = offset.checked_sub(1) else {
        return Ok(Some(0));
    };
    let mut buf = vec![0; 64 << 10];
    loop {
        if before.is_some_and(|before| at + 1 >= before) {
            return Ok(None);
        }
        let n = match file.read_at(&mut buf, at) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Some(at));
        }
        if let Some(i) = memchr::memchr(b'\n', buf.get(..n).unwrap_or_default()) {
            let start = at + i as u64 + 1;
            return Ok(before.is_none_or(|before| start < before).then_some(start));
        }
        at += n as u64;
    }
}

/// Reads a file by position from `at` to the end of the line that holds byte `end - 1` (the
/// piece's last line: the next piece starts after it), or to the end of the file. The end is
/// found as the text streams, so a piece's text is read once.
#[cfg(unix)]
struct RangeReader {
    file: File,
    at: u64,
    end: Option<u64>,
    done: bool,
}

#[cfg(unix)]
impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.done {
            return Ok(0);
        }
        let mut n = self.file.read_at(buf, self.at)?;
        if let Some(end) = self.end {
            // The line end to stop after is the first at or after `end - 1`.
            let from = usize::try_from(end.saturating_sub(1).saturating_sub(self.at))
                .unwrap_or(usize::MAX);
            if let Some(i) = buf
                .get(from..n)
                .and_then(|tail| memchr::memchr(b'\n', tail))
            {
                n = from + i + 1;
                self.done = true;
            }
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// Scans the file `input` from the line that starts at or after `from` to the one that starts
/// at or after the piece's end, into held output.
#[cfg(unix)]
fn scan_range(
    input: &Input,
    piece: &Piece,
    from: u64,
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
) -> Result<Done, String> {
    use std::os::unix::fs::MetadataExt;
    let mut report = Held::new();
    let mut lines = Held::new();
    let mut summary = Summary::default();
    let name = &input.to_string();
    let opened = match input {
        Input::File(path) => File::open(path),
        Input::Stdin => Err(io::Error::other("standard input is not read in pieces")),
    };
    let opened = opened.and_then(|file| {
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != piece.identity {
            return Err(io::Error::other(
                "the file was replaced while it was being read",
            ));
        }
        let start = line_start(&file, from, piece.end)?;
        Ok(start.map(|start| (file, start)))
    });
    let (framed, start) = match opened {
        // No line starts in the piece: it is empty.
        Ok(None) => (
            Some(Framed {
                lines: 0,
                idle: true,
            }),
            from,
        ),
        Ok(Some((file, start))) => {
            let reader = RangeReader {
                file,
                at: start,
                end: piece.end,
                done: false,
            };
            let kind = if start == 0 {
                Start::Input
            } else {
                Start::Line
            };
            let framed = scan_text(
                name,
                Box::new(reader),
                kind,
                Progress { bar: None },
                evaluator,
                options,
                &mut report.0,
                &mut lines.0,
                &mut summary,
            )
            .map_err(held_error)?;
            (framed, start)
        }
        Err(e) => {
            read_error(&mut lines.0, name, &e, &mut summary)
                .map_err(|e| held_error(ScanError::Log(e)))?;
            (None, from)
        }
    };
    Ok(Done {
        summary,
        report,
        lines,
        framed,
        start,
    })
}

#[cfg(not(unix))]
fn scan_range(
    _: &Input,
    _: &Piece,
    _: u64,
    _: &mut dyn Evaluator,
    _: ScanOptions,
) -> Result<Done, String> {
    Err("files are scanned in pieces only on Unix".to_owned())
}

/// Scans again, from `from` (its first line start), a piece in which a document ran on past
/// the end: through the end of the next piece (which ends at `next_end`, or is the file's
/// last). Gives the result and whether it stops there, with framing between documents, so
/// that the workers' pieces after the next one stand. A document that runs on past the next
/// piece too is rare and can be long: the rest of the file is then scanned from `from` in one
/// go. A read error stops the scan where it happened, as it would stop the whole file.
fn scan_run_on(
    input: &Input,
    piece: &Piece,
    next_end: Option<u64>,
    from: u64,
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
) -> Result<(Done, bool), String> {
    let through_next = Piece {
        end: next_end,
        ..piece.clone()
    };
    let again = scan_range(input, &through_next, from, evaluator, options)?;
    match (next_end, again.framed) {
        (Some(_), Some(framed)) if framed.idle => Ok((again, true)),
        (Some(_), Some(_)) => {
            let rest = Piece {
                end: None,
                ..piece.clone()
            };
            Ok((scan_range(input, &rest, from, evaluator, options)?, false))
        }
        _ => Ok((again, false)),
    }
}

/// Scans one input into held output, for [`scan_files`]' workers.
fn scan_held(
    input: &Input,
    evaluator: &mut dyn Evaluator,
    options: ScanOptions,
) -> Result<Done, String> {
    let mut report = Held::new();
    let mut lines = Held::new();
    scan(
        std::slice::from_ref(input),
        evaluator,
        options,
        &mut report.0,
        &mut lines.0,
    )
    .map(|summary| Done {
        summary,
        report,
        lines,
        framed: None,
        start: 0,
    })
    .map_err(held_error)
}

/// Held output goes to memory, then to a temporary file: only that can fail here.
fn held_error(e: ScanError) -> String {
    match e {
        ScanError::Report(e) | ScanError::Log(e) => {
            format!("cannot hold a scan's output in a temporary file: {e}")
        }
    }
}

/// Which input a worker of [`scan_files`] takes next: in input order, at most
/// [`Order::window`] inputs ahead of the last one written, so that held output stays bounded
/// in count (each [`Held`] is itself bounded in memory); none once stopped.
struct Order {
    state: std::sync::Mutex<OrderState>,
    changed: std::sync::Condvar,
    window: usize,
}

struct OrderState {
    next: usize,
    written: usize,
    stopped: bool,
}

impl Order {
    fn new(threads: usize) -> Order {
        Order {
            state: std::sync::Mutex::new(OrderState {
                next: 0,
                written: 0,
                stopped: false,
            }),
            changed: std::sync::Condvar::new(),
            window: threads.saturating_mul(2).max(2),
        }
    }

    /// The next input to scan, once it is within the window; `None` once stopped.
    fn take(&self) -> Option<usize> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.stopped {
                return None;
            }
            if state.next < state.written + self.window {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn written(&self, count: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.written = count;
        self.changed.notify_all();
    }

    fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped = true;
        self.changed.notify_all();
    }
}

/// Output held until it can be written in order: in memory up to [`Held::IN_MEMORY`] bytes,
/// then in an anonymous temporary file, so that an input with millions of alerts or invalid
/// lines costs disk, not memory.
struct Held(tempfile::SpooledTempFile);

impl Held {
    const IN_MEMORY: usize = 1 << 20;

    fn new() -> Held {
        Held(tempfile::SpooledTempFile::new(Self::IN_MEMORY))
    }

    /// Writes everything held to `to`.
    fn copy_to(&mut self, to: &mut dyn Write) -> io::Result<()> {
        use std::io::Seek;
        self.0.seek(io::SeekFrom::Start(0))?;
        io::copy(&mut self.0, to).map(|_| ())
    }

    /// Writes a piece's log to `to` with its line numbers made the file's: in each line that
    /// starts with `prefix` (the file's name as the log writes it, and `:`) and a line
    /// number, `base` is added to the number.
    fn copy_renumbered(&mut self, to: &mut dyn Write, prefix: &str, base: u64) -> io::Result<()> {
        use std::io::{BufRead, Seek};
        if base == 0 {
            return self.copy_to(to);
        }
        self.0.seek(io::SeekFrom::Start(0))?;
        let mut held = io::BufReader::new(&mut self.0);
        let mut line = Vec::new();
        while held.read_until(b'\n', &mut line)? > 0 {
            let numbered = line.strip_prefix(prefix.as_bytes()).and_then(|rest| {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let (number, rest) = rest.split_at_checked(digits)?;
                let number: u64 = std::str::from_utf8(number).ok()?.parse().ok()?;
                Some((number, rest))
            });
            match numbered {
                Some((number, rest)) => {
                    to.write_all(prefix.as_bytes())?;
                    write!(to, "{}", number.saturating_add(base))?;
                    to.write_all(rest)?;
                }
                None => to.write_all(&line)?,
            }
            line.clear();
        }
        Ok(())
    }
}

/// One unit's scan, held until the units before it are written.
struct Done {
    summary: Summary,
    report: Held,
    lines: Held,
    /// For a piece, how framing it ended (`None`: refused, or not read to its end).
    framed: Option<Framed>,
    /// For a piece, where in the file it started.
    start: u64,
}

/// Why [`scan_files`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanFilesError {
    /// A stream could not be written.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A worker's evaluator could not be made.
    #[error("{0}")]
    Evaluator(String),
}

/// Progress over many inputs scanned at once: bytes of whole inputs and of pieces done.
struct FilesProgress {
    bar: Option<ProgressBar>,
}

impl FilesProgress {
    fn new(inputs: &[Input], wanted: bool) -> FilesProgress {
        let total: u64 = inputs.iter().map(input_len).sum();
        let bar = progress_bar(wanted, total, format!("{} inputs", inputs.len()));
        FilesProgress { bar }
    }

    fn advance(&self, input: Option<&Input>) {
        if let Some(input) = input {
            self.add(input_len(input));
        }
    }

    /// Bytes of a piece of a file done.
    fn add(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A progress bar over `total` bytes on stderr, labelled `message`, when it is wanted and
/// stderr is a terminal.
fn progress_bar(wanted: bool, total: u64, message: String) -> Option<ProgressBar> {
    (wanted && total > 0 && io::stderr().is_terminal()).then(|| {
        let bar =
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
        if let Ok(style) = ProgressStyle::with_template(
            "[{bar:30}] {percent:>3}% {decimal_bytes_per_sec:>11} {msg}",
        ) {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar.set_message(message);
        bar
    })
}

fn input_len(input: &Input) -> u64 {
    match input {
        Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        Input::Stdin => 0,
    }
}
