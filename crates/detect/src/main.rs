//! `vmext-detect`: run Elastic's rule *Azure VM Extension Deployment by User* over Azure
//! Activity Log files, through the WebAssembly component under wasmtime or the native engine.
//!
//! This crate is the command line only: flags ([`clap`], one struct per subcommand), loading
//! the rule, and turning outcomes into exit statuses and messages ([`anyhow`] at this top
//! level only). Reading, evaluating and reporting live in `vmext-host`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use vmext_engine::{BuildError, Detector, ProfileName};
use vmext_host::component::{
    ComponentEvaluator, ComponentRuntime, DetectorOptions, Limits, RuleSource, find_component,
};
use vmext_host::evaluator::{Evaluator, NativeEvaluator};
use vmext_host::input::DEFAULT_MAX_DOCUMENT_BYTES;
use vmext_host::scan::{Input, Report, ScanError, ScanFilesError, ScanOptions, scan_files};

const ABOUT: &str = "Flags Azure VM extension deployments by users in Azure Activity Logs, \
with Elastic's detection rule evaluated exactly as Elastic would.";

const EXIT_STATUS: &str = "\
EXIT STATUS (scan): 0, or the sum of the bits that hold:
    0   the scan finished: no alert, every document valid, every input read
    1   at least one alert was raised
    4   some documents or records were invalid or over the size cap (reported on stderr)
    8   some input could not be opened, was not JSON text, or could not be read to its
        end (reported on stderr)
    2   the scan could not run at all, or stopped (bad arguments, rule or exceptions, or
        stdout closed or full); never combined";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "vmext-detect", version, about = ABOUT, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read records from each FILE (or stdin), write alerts as NDJSON to stdout, each bad
    /// document (with its file and line) and a summary to stderr.
    ///
    /// Records may come one per line (NDJSON, JSON Lines, Azure's PT1H.json) or as JSON
    /// documents spanning lines (a {"records":[...]} envelope), whatever the file's name;
    /// gzip-compressed input is decompressed. A broken document costs only itself: reading
    /// goes on at the next line.
    #[command(after_help = EXIT_STATUS)]
    Scan(ScanArgs),
    /// Print the rule's identity, query, warnings and prefilter literals (and check that a
    /// rule, profile and exceptions file load).
    Rule(RuleArgs),
}

/// Which rule runs, in which profile, with which exceptions.
#[derive(Debug, Args)]
struct RuleArgs {
    /// Run this Elastic detection-rules TOML file (type query, language kuery) instead of the
    /// built-in rule.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "query")]
    rule: Option<PathBuf>,
    /// Run a bare KQL query instead of the built-in rule. With `--profile hardened`, the
    /// query takes the place of the hardened profile's (its case-insensitive and derived
    /// fields, and the seed rule's metadata, are kept).
    #[arg(long, value_name = "KQL")]
    query: Option<String>,
    /// `faithful`: the rule exactly as Elastic evaluates it. `hardened`: the rule's opt-in
    /// hardened profile, which closes its blind spots (see the README).
    #[arg(long, value_enum, default_value_t = Profile::Faithful)]
    profile: Profile,
    /// Suppress alerts that an Elastic exception item in FILE matches (an item object, an
    /// array of items, or a Kibana NDJSON export). Suppressed records are counted in the
    /// summary, and explanations name the item.
    #[arg(long, value_name = "FILE")]
    exceptions: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    Faithful,
    Hardened,
}

impl From<Profile> for ProfileName {
    fn from(p: Profile) -> ProfileName {
        match p {
            Profile::Faithful => ProfileName::Faithful,
            Profile::Hardened => ProfileName::Hardened,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// The rule as the WebAssembly component under wasmtime, with a memory cap and a deadline
    /// per document.
    Component,
    /// The engine linked into this binary.
    Native,
}

/// `scan`'s flags.
#[derive(Debug, Args)]
struct ScanArgs {
    #[command(flatten)]
    rule: RuleArgs,
    /// For every record, print its verdict and why, clause by clause.
    #[arg(long, conflicts_with = "explain_json")]
    explain: bool,
    /// For every record, print the result object (verdict, alert, explanation) as NDJSON.
    #[arg(long)]
    explain_json: bool,
    /// Which engine runs the rule.
    #[arg(long, value_enum, default_value_t = Engine::Component)]
    engine: Engine,
    /// The component to run (default: $VMEXT_COMPONENT, or vmext_guest.wasm next to this
    /// executable or in its cargo target folder).
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// Skip (and report) documents longer than N bytes without holding them in memory. Both
    /// engines apply the same cap.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES,
          value_parser = positive_bytes)]
    max_document_bytes: usize,
    /// Never draw the progress bar (it is drawn only on a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Scan on up to N threads at once, each with its own evaluator (default: the number of
    /// cores): input files, and pieces of about 8 MiB of files of 16 MiB or more. The output
    /// is the same in every case: reports in input order, one summary. Explanations and
    /// standard input are scanned on one thread; a gzip file is never split into pieces.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// The inputs; none, or `-`, is standard input.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn positive_bytes(text: &str) -> Result<usize, String> {
    text.replace('_', "")
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| "needs a positive number of bytes".to_owned())
}

/// The rule, profile and exceptions the arguments name, as texts both engines load, and the
/// detector built from them natively (which validates them and gives the warnings before any
/// component runs them).
struct Loaded {
    rule: RuleSource,
    options: DetectorOptions,
    detector: Detector,
}

fn load(args: &RuleArgs) -> Result<Loaded> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let rule = match (&args.rule, &args.query) {
        (Some(path), _) => RuleSource::Toml(read(path)?),
        (None, Some(query)) => RuleSource::Query(query.clone()),
        (None, None) => RuleSource::Seed,
    };
    let exceptions = args.exceptions.as_ref().map(read).transpose()?;
    let options = DetectorOptions {
        profile: args.profile.into(),
        exceptions,
    };
    let detector = Detector::build(
        rule.for_engine(),
        options.profile,
        options.exceptions.as_deref(),
    )
    .map_err(|e| {
        // Name the file the error is in.
        let file = match &e {
            BuildError::Rule(_) => args.rule.as_deref(),
            BuildError::Exceptions(_) => args.exceptions.as_deref(),
            _ => None,
        };
        match file {
            Some(path) => anyhow::Error::new(e).context(path.display().to_string()),
            None => anyhow::Error::new(e),
        }
    })?;
    Ok(Loaded {
        rule,
        options,
        detector,
    })
}

fn run_scan(args: ScanArgs) -> Result<u8> {
    let loaded = load(&args.rule)?;
    let inputs: Vec<Input> = if args.files.is_empty() {
        vec![Input::Stdin]
    } else {
        args.files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    Input::Stdin
                } else {
                    Input::File(f.clone())
                }
            })
            .collect()
    };
    let mut log = io::stderr();
    for w in loaded.detector.query().warnings() {
        writeln!(
            log,
            "vmext-detect: warning at {}: {}",
            w.span.start, w.message
        )
        .context("cannot write to stderr")?;
    }
    let report = if args.explain {
        Report::Explain
    } else if args.explain_json {
        Report::ExplainJson
    } else {
        Report::Alerts
    };
    let options = ScanOptions {
        report,
        progress: !args.no_progress,
        max_document: args.max_document_bytes,
        piece_bytes: vmext_host::scan::PIECE_BYTES,
    };
    let threads = match args.threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    // The component is loaded (and compiled) once; each thread instantiates its own.
    let runtime = match args.engine {
        Engine::Native => None,
        Engine::Component => {
            let path = find_component(args.component.as_deref())?;
            let runtime =
                ComponentRuntime::load(&path).with_context(|| path.display().to_string())?;
            Some(Arc::new(runtime))
        }
    };
    let make = || -> Result<Box<dyn Evaluator>, String> {
        Ok(match &runtime {
            None => Box::new(NativeEvaluator::new(loaded.detector.clone())),
            Some(runtime) => Box::new(
                ComponentEvaluator::configured(
                    Arc::clone(runtime),
                    loaded.rule.clone(),
                    loaded.options.clone(),
                    Limits::default(),
                )
                .map_err(|e| e.to_string())?,
            ),
        })
    };
    let started = Instant::now();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let summary =
        scan_files(&inputs, threads, &make, options, &mut out, &mut log).map_err(|e| match e {
            ScanFilesError::Scan(e @ ScanError::Report(_)) => {
                anyhow::Error::new(e).context("stdout")
            }
            ScanFilesError::Scan(e @ ScanError::Log(_)) => anyhow::Error::new(e).context("stderr"),
            ScanFilesError::Evaluator(e) => anyhow::anyhow!(e),
        })?;
    // Flushed by `scan`; nothing is left to fail here.
    drop(out);
    writeln!(log, "{}", summary.line(started.elapsed())).context("cannot write to stderr")?;
    Ok(summary.exit_status())
}

fn describe_rule(detector: &Detector, out: &mut dyn Write) -> io::Result<()> {
    let rule = detector.rule();
    writeln!(out, "{} ({})", rule.name, rule.rule_id)?;
    writeln!(
        out,
        "severity {} · risk score {}",
        rule.severity, rule.risk_score
    )?;
    for threat in &rule.threat {
        let techniques: Vec<String> = threat
            .techniques
            .iter()
            .map(|t| format!("{} {}", t.id, t.name))
            .collect();
        writeln!(
            out,
            "  {} {}: {}",
            threat.tactic.id,
            threat.tactic.name,
            techniques.join(", ")
        )?;
    }
    writeln!(out, "profile {}", detector.profile().as_str())?;
    writeln!(
        out,
        "exception items {}",
        detector.exceptions().items().len()
    )?;
    writeln!(out, "\nquery:\n{}", detector.query().source().trim_end())?;
    for w in detector.query().warnings() {
        writeln!(out, "warning at {}: {}", w.span.start, w.message)?;
    }
    writeln!(
        out,
        "\nprefilter literals (a record must contain them to be parsed): {:?}",
        detector.prefilter().needles()
    )?;
    out.flush()
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Scan(args) => run_scan(args),
        Command::Rule(args) => {
            let loaded = load(&args)?;
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            describe_rule(&loaded.detector, &mut out).context("cannot write to stdout")?;
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    vmext_host::program::main("vmext-detect", run)
}
