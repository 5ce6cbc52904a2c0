//! `host-test`: the harness's commands, for benchmarks, measurements and development. Nothing
//! here ships; the shipped command is `vmext-detect`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use host_test::fluent_bit::{FluentBitModule, Mode, find_module, run_records};
use host_test::generate::{CorpusShape, CorpusSpec, generate};
use vmext_host::input::{DEFAULT_MAX_DOCUMENT_BYTES, InputError, Line, for_each_line, text_reader};
use vmext_host::scan::exit;

/// The harness's commands.
#[derive(Debug, Parser)]
#[command(
    name = "host-test",
    version,
    about = "The vmext-detect test harness's commands."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic synthetic corpus (NDJSON) to stdout: ECS records of about 1 KB or
    /// raw export records of about 1.8 KB.
    Generate(GenerateArgs),
    /// Generate an adversarial corpus (each category of running code on a machine through
    /// Azure's control plane, from independent sources) and a benign one (look-alikes: service
    /// principals, reads and deletes, failures, monitoring and security agents), N records of
    /// each kind in both shapes, and print each profile's recall and false positives as a
    /// Markdown table.
    Efficacy(EfficacyArgs),
    /// Run the Fluent Bit module on NDJSON records exactly as Fluent Bit's wasm filter calls it
    /// (an emulation of its calling convention under wasmtime, not Fluent Bit): each record
    /// the module returns is written to stdout, a summary to stderr.
    ///
    /// Exit status: 0, or the sum of 1 (a record carries alerts) and 4 (corrupt replies or
    /// traps); 2 when it cannot run, when an input cannot be opened or read, or when stdout
    /// cannot be written.
    FluentBit(FluentBitArgs),
    /// Serve the rule playground (DIR) on http://127.0.0.1:PORT with a strict
    /// Content-Security-Policy; build it first with `cargo xtask playground`, which also
    /// starts this server.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    Ecs,
    Raw,
}

/// `generate`'s flags.
#[derive(Debug, Args)]
struct GenerateArgs {
    /// How many records.
    #[arg(long, default_value_t = 100_000, value_parser = whole_number)]
    records: u64,
    /// The records' shape.
    #[arg(long, value_enum, default_value_t = Shape::Ecs)]
    shape: Shape,
    /// The random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = CorpusSpec::default().seed, value_parser = whole_number)]
    seed: u64,
    /// Share of records the seed rule alerts on.
    #[arg(long, default_value_t = CorpusSpec::default().true_positive_rate, value_parser = rate)]
    true_positives: f64,
    /// Share of records with the rule's operation name that fail another clause.
    #[arg(long, default_value_t = CorpusSpec::default().near_miss_rate, value_parser = rate)]
    near_misses: f64,
}

/// `efficacy`'s flags.
#[derive(Debug, Args)]
struct EfficacyArgs {
    /// Records of each kind, in each shape.
    #[arg(long, default_value_t = host_test::efficacy::DEFAULT_RECORDS, value_parser = whole_number)]
    records: u64,
    /// The random seed.
    #[arg(long, default_value_t = host_test::efficacy::DEFAULT_SEED, value_parser = whole_number)]
    seed: u64,
}

/// `fluent-bit`'s flags.
#[derive(Debug, Args)]
struct FluentBitArgs {
    /// The module (default: $VMEXT_FLUENT_BIT_MODULE, or the build in this binary's target
    /// folder).
    #[arg(long, value_name = "PATH")]
    module: Option<PathBuf>,
    /// The exported filter function Fluent Bit calls.
    #[arg(long, value_name = "NAME", default_value = "vmext_annotate")]
    function: String,
    /// Fluent Bit's `accessible_paths`: each comma-separated DIR is preopened for the module
    /// under its own name, a relative one from the working directory, and a missing one is an
    /// error, as in Fluent Bit.
    #[arg(long, value_name = "DIR,...", default_value = ".")]
    accessible_path: String,
    /// Lines over N bytes are reported and skipped, as `tail` skips lines over its buffer.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES)]
    max_document_bytes: usize,
    /// The inputs, one record per line; none, or `-`, is standard input.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// `serve`'s flags.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The folder to serve; it must hold an index.html.
    #[arg(default_value = "playground")]
    dir: PathBuf,
}

fn whole_number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| "needs a whole number".to_owned())
}

fn rate(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| "needs a rate between 0 and 1".to_owned())
}

/// The `fluent-bit` command: every input record through the module, as Fluent Bit would.
fn run_fluent_bit(args: FluentBitArgs) -> Result<u8> {
    let mode = Mode::ALL
        .into_iter()
        .find(|m| m.function_name() == args.function)
        .ok_or_else(|| {
            let known: Vec<&str> = Mode::ALL.iter().map(|m| m.function_name()).collect();
            anyhow!(
                "--function {}: not one of the filter functions this project's module exports ({})",
                args.function,
                known.join(", ")
            )
        })?;
    let path = find_module(args.module.as_deref()).map_err(|e| anyhow!(e))?;
    let module = FluentBitModule::load(&path, false)
        .map_err(anyhow::Error::from)
        .with_context(|| path.display().to_string())?;
    let files = host_test::wasi_files::WasiFiles::accessible_paths(
        &args.accessible_path,
        std::path::Path::new("."),
    )
    .map_err(|e| anyhow!(e))?;
    let mut instance = module.instantiate_with(files)?;
    let inputs: Vec<Option<PathBuf>> = if args.files.is_empty() {
        vec![None]
    } else {
        args.files
            .iter()
            .map(|f| (f.as_os_str() != "-").then(|| f.clone()))
            .collect()
    };
    let cap = args.max_document_bytes;
    let started = Instant::now();
    let mut out = StdoutWriter(io::BufWriter::with_capacity(
        256 * 1024,
        io::stdout().lock(),
    ));
    let mut records = |feed: &mut dyn FnMut(&[u8]) -> io::Result<()>| -> io::Result<()> {
        for input in &inputs {
            let name = input
                .as_ref()
                .map_or_else(|| "<stdin>".to_owned(), |p| p.display().to_string());
            let named = |e: io::Error| io::Error::new(e.kind(), format!("{name}: {e}"));
            let reader: Box<dyn io::Read> = match input {
                None => Box::new(io::stdin()),
                Some(path) => Box::new(std::fs::File::open(path).map_err(named)?),
            };
            // As Fluent Bit's `tail` input: one record per line, every non-blank line handed to
            // the module as it is (the module answers unreadable ones itself); a line over the
            // cap is reported and skipped, as `tail` skips lines over its buffer.
            let text = text_reader(reader).map_err(|e| match e {
                InputError::Io(e) => named(e),
                other => io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {other}")),
            })?;
            // `feed` fails only when writing to stdout fails, and says so itself; any other
            // error is the input's.
            let mut write_failed = false;
            for_each_line(text, cap, |n, line| match line {
                Line::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                    feed(t).inspect_err(|_| write_failed = true)
                }
                Line::TooLong(len) => {
                    let _ = writeln!(
                        io::stderr(),
                        "{name}:{n}: line of {len} bytes over the size cap; skipped"
                    );
                    Ok(())
                }
                _ => Ok(()),
            })
            .map_err(|e| if write_failed { e } else { named(e) })?;
        }
        Ok(())
    };
    let summary = run_records(&mut instance, mode, "vmext", &mut records, &mut out)?;
    drop(out);
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let _ = writeln!(
        io::stderr(),
        "records {}: {} returned, {} with alerts, {} dropped, {} corrupt replies, {} traps; {:.1} MB in {:.2} s: {:.0} records/s, {:.1} MB/s",
        summary.records,
        summary.returned,
        summary.with_alerts,
        summary.records - summary.returned - summary.corrupt - summary.traps,
        summary.corrupt,
        summary.traps,
        summary.bytes as f64 / 1e6,
        secs,
        summary.records as f64 / secs,
        summary.bytes as f64 / 1e6 / secs,
    );
    let mut status = 0;
    if summary.with_alerts > 0 {
        status |= exit::ALERTS;
    }
    if summary.corrupt > 0 || summary.traps > 0 {
        status |= exit::INVALID;
    }
    Ok(status)
}

/// Standard output for the records a command writes: a failed write or flush is reported as
/// `cannot write to stdout: …` by whichever caller passes the error on, so that it is never
/// taken for an input's error.
struct StdoutWriter<W>(W);

impl<W: Write> Write for StdoutWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(stdout_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write to stdout: {e}"))
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Generate(args) => {
            let spec = CorpusSpec {
                records: args.records,
                shape: match args.shape {
                    Shape::Ecs => CorpusShape::Ecs,
                    Shape::Raw => CorpusShape::Raw,
                },
                true_positive_rate: args.true_positives,
                near_miss_rate: args.near_misses,
                seed: args.seed,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
            generate(&spec, &mut out).context("stdout")?;
            out.flush().context("stdout")?;
            Ok(0)
        }
        Command::Efficacy(args) => {
            use host_test::efficacy::{markdown, measure};
            let table = markdown(&measure(args.records, args.seed), args.records, args.seed);
            io::stdout().write_all(table.as_bytes()).context("stdout")?;
            Ok(0)
        }
        Command::FluentBit(args) => run_fluent_bit(args),
        Command::Serve(args) => {
            if !args.dir.join("index.html").is_file() {
                bail!("{} has no index.html", args.dir.display());
            }
            host_test::serve::serve(&args.dir, args.port, |addr| {
                // Printed on stdout so that scripts and tests can wait for it (a closed stdout
                // only loses the notice).
                let mut out = io::stdout();
                let _ = writeln!(out, "serving {} on http://{addr}/", args.dir.display());
                let _ = out.flush();
            })?;
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    vmext_host::program::main("host-test", run)
}
